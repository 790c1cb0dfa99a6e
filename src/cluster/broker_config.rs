//! Dynamic broker configs in the `meta` column family: one record per level, `b/<default>` for
//! the cluster-wide default (Kafka's name for it) and `b/<node id>` for one broker, each a JSON
//! object of settings. Read back at start; a change is stored before it takes effect.

use std::sync::Arc;

use anyhow::{Context, Result};
use kafka_protocol::ResponseError;

use super::Cluster;
use crate::config::{BrokerSettings, Config, ConfigChange, Layer, Level};
use crate::log::Meta;

type Failure = (ResponseError, String);

fn record_key(level: Level, node_id: i32) -> Vec<u8> {
    match level {
        Level::Cluster => "b/<default>".to_string(),
        Level::Broker => format!("b/{node_id}"),
    }
    .into_bytes()
}

/// The broker's settings: `config` under the dynamic levels stored for this node.
pub(super) fn load(config: &Config, meta: &Meta, node_id: i32) -> Result<BrokerSettings> {
    let read = |level| -> Result<Layer> {
        match meta.get(&record_key(level, node_id))? {
            Some(bytes) => serde_json::from_slice(&bytes).context("dynamic broker config record"),
            None => Ok(Layer::new()),
        }
    };
    Ok(BrokerSettings::new(config, read(Level::Broker)?, read(Level::Cluster)?))
}

impl Cluster {
    /// The broker settings in effect, static and dynamic.
    pub fn settings(&self) -> &Arc<BrokerSettings> {
        &self.settings
    }

    /// The level a BROKER resource name means, or Kafka's answer to a name it refuses.
    pub fn broker_level(&self, name: &str) -> Result<Level, Failure> {
        if name.is_empty() {
            return Ok(Level::Cluster);
        }
        let id: i32 = name.parse().map_err(|_| (ResponseError::InvalidRequest, format!("Broker id must be an integer, but it is: {name}")))?;
        if id != self.node.id {
            return Err((ResponseError::InvalidRequest, format!("Unexpected broker id, expected {} or empty string, but received {name}", self.node.id)));
        }
        Ok(Level::Broker)
    }

    /// AlterConfigs / IncrementalAlterConfigs on a BROKER resource; takes effect at once.
    pub async fn alter_broker_configs(&self, level: Level, changes: &[ConfigChange], replace_all: bool, validate_only: bool) -> Result<(), Failure> {
        let (meta, key) = (self.meta.clone(), record_key(level, self.node.id));
        let persist = |layer: Layer| async move {
            let value = serde_json::to_vec(&layer).expect("a map of strings encodes");
            // An emptied level leaves no record behind.
            meta.write(&[(&key, (!layer.is_empty()).then_some(value.as_slice()))]).await.map_err(|e| {
                tracing::error!("storing dynamic broker configs: {e:#}");
                (ResponseError::KafkaStorageError, format!("could not store the broker configs: {e}"))
            })
        };
        self.settings.alter(level, changes, replace_all, validate_only, persist).await
    }
}
