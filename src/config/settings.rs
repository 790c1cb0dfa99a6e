//! Dynamic broker configs (Kafka's KIP-226). AlterConfigs on a BROKER resource sets this
//! broker's layer (resource name = node id, DYNAMIC_BROKER_CONFIG) or the cluster-wide default
//! (empty name, DYNAMIC_DEFAULT_BROKER_CONFIG) over the static settings. Every change is
//! resolved into a fresh [`Config`] that readers pick up at once, so a new `log.retention.ms`
//! applies to every topic without its own `retention.ms` from the next retention pass on.
//! Keeping the layers durable is the caller's part: the `persist` step of [`BrokerSettings::alter`].

use std::future::Future;
use std::sync::{Arc, RwLock};

use kafka_protocol::ResponseError;

use super::{edit_list, keys, layered, Config, ConfigChange, ConfigEntry, ConfigSource, ConfigType, Key, Layer, Synonym, Update, KEYS};

type Failure = (ResponseError, String);

/// Which dynamic layer a BROKER resource names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// This broker only: the resource name is its node id.
    Broker,
    /// The default for every broker: the empty resource name.
    Cluster,
}

/// The broker's settings as they stand, shared by everything that reads them.
#[derive(Debug)]
pub struct BrokerSettings {
    /// What the file, the environment and the flags set.
    statics: Layer,
    state: RwLock<State>,
    /// Serialises changes from their check to their install, across the persist step.
    altering: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct State {
    broker: Layer,
    cluster: Layer,
    current: Arc<Config>,
}

impl State {
    fn layer(&self, level: Level) -> &Layer {
        match level {
            Level::Broker => &self.broker,
            Level::Cluster => &self.cluster,
        }
    }
}

/// Kafka's refusals of a dynamic layer (DynamicBrokerConfig.validate), in its order, and
/// Gregor's own: a setting it cannot apply while it runs.
fn check(level: Level, layer: &Layer) -> Result<(), Failure> {
    let known: Vec<(&str, &Key)> = layer.keys().filter_map(|name| keys::find(name).map(|k| (name.as_str(), k))).collect();
    let refuse = |what: &str, names: Vec<&str>| match names.as_slice() {
        [] => Ok(()),
        _ => Err((ResponseError::InvalidRequest, format!("{what}: {}", names.join(", ")))),
    };
    // Only a setting's own name is dynamic: log.retention.ms is, log.retention.hours is not.
    refuse("Cannot update these configs dynamically", known.iter().filter(|(n, k)| k.update == Update::ReadOnly || *n != k.name).map(|(n, _)| *n).collect())?;
    if level == Level::Cluster {
        let per_broker = known.iter().filter(|(_, k)| k.update == Update::PerBroker).map(|(n, _)| *n).collect();
        refuse("Cannot update these configs at default cluster level, broker id must be specified", per_broker)?;
    }
    for (name, key) in known {
        if let Some(why) = key.restart {
            return Err((ResponseError::InvalidRequest, format!("Gregor cannot change {name} at run time ({why}); set it in the config file or with a flag and restart")));
        }
    }
    Ok(())
}

/// Each known setting's value, on its own.
fn check_values(layer: &Layer) -> Result<(), Failure> {
    for (name, value) in layer {
        if let Some(key) = keys::find(name) {
            key.normalize(name, value).map_err(|why| (ResponseError::InvalidConfig, why))?;
        }
    }
    Ok(())
}

impl BrokerSettings {
    /// `statics` under the dynamic layers read back from the store. Entries that are not valid
    /// any more (a bad value, a setting that became read-only) are dropped with a warning, as
    /// Kafka ignores them.
    pub fn new(statics: &Config, broker: Layer, cluster: Layer) -> BrokerSettings {
        let valid = |level: Level, layer: Layer| -> Layer {
            layer
                .into_iter()
                .filter(|(name, value)| {
                    let one = Layer::from([(name.clone(), value.clone())]);
                    check(level, &one).and_then(|_| check_values(&one)).map_err(|(_, why)| tracing::warn!("ignoring dynamic broker config {name}={value}: {why}")).is_ok()
                })
                .collect()
        };
        let (broker, cluster) = (valid(Level::Broker, broker), valid(Level::Cluster, cluster));
        let (broker, cluster, current) = match Config::resolve(statics.statics.clone(), &[&broker, &cluster]) {
            Ok(current) => (broker, cluster, current),
            Err(why) => {
                tracing::warn!("ignoring the dynamic broker configs: {why}");
                (Layer::new(), Layer::new(), statics.clone())
            }
        };
        BrokerSettings { statics: statics.statics.clone(), state: RwLock::new(State { broker, cluster, current: Arc::new(current) }), altering: Default::default() }
    }

    /// The settings in effect now.
    pub fn current(&self) -> Arc<Config> {
        self.state.read().expect("settings lock").current.clone()
    }

    /// What one dynamic level sets.
    pub fn layer(&self, level: Level) -> Layer {
        self.state.read().expect("settings lock").layer(level).clone()
    }

    /// Every value `key` has, most specific first.
    fn chain(&self, state: &State, key: &Key) -> Vec<Synonym> {
        let layers = [
            (ConfigSource::DynamicBrokerConfig, &state.broker),
            (ConfigSource::DynamicDefaultBrokerConfig, &state.cluster),
            (ConfigSource::StaticBrokerConfig, &self.statics),
        ];
        layered(key, &layers).into_iter().map(|(source, name, value)| Synonym::new(name, value, source)).collect()
    }

    /// The value chain of the broker setting a topic config falls back to (DescribeConfigs of a topic).
    pub fn synonyms(&self, name: &str) -> Vec<Synonym> {
        keys::find(name).map(|key| self.chain(&self.state.read().expect("settings lock"), key)).unwrap_or_default()
    }

    /// The value in effect of a broker setting, in its own unit.
    pub fn value(&self, name: &str) -> Option<String> {
        let key = keys::find(name)?;
        let first = self.synonyms(name).into_iter().next()?;
        key.normalize(&first.name, &first.value).ok()
    }

    /// DescribeConfigs on a BROKER resource: every setting of this broker, or the settings the
    /// cluster-wide level holds (with only that level as synonyms), as Kafka answers.
    pub fn describe(&self, level: Level) -> Vec<ConfigEntry> {
        let state = self.state.read().expect("settings lock");
        let mut entries = Vec::new();
        for key in KEYS {
            let mut synonyms = self.chain(&state, key);
            if level == Level::Cluster {
                synonyms.retain(|s| s.source == ConfigSource::DynamicDefaultBrokerConfig);
                if synonyms.is_empty() {
                    continue;
                }
            }
            entries.push(ConfigEntry {
                name: key.name.to_string(),
                value: synonyms.first().and_then(|s| key.normalize(&s.name, &s.value).ok()),
                source: synonyms.first().map_or(ConfigSource::Default, |s| s.source),
                config_type: key.config_type,
                doc: Some(key.doc),
                read_only: key.update == Update::ReadOnly,
                synonyms,
            });
        }
        // Keys Gregor does not know are kept and shown, as Kafka keeps custom broker configs.
        let levels: &[Level] = match level {
            Level::Broker => &[Level::Broker, Level::Cluster],
            Level::Cluster => &[Level::Cluster],
        };
        for &from in levels {
            let source = match from {
                Level::Broker => ConfigSource::DynamicBrokerConfig,
                Level::Cluster => ConfigSource::DynamicDefaultBrokerConfig,
            };
            for (name, value) in state.layer(from).iter().filter(|(name, _)| keys::find(name).is_none()) {
                let synonym = Synonym::new(name, value, source);
                match entries.iter_mut().find(|e| e.name == *name) {
                    Some(entry) => entry.synonyms.push(synonym),
                    None => entries.push(ConfigEntry {
                        name: name.clone(),
                        value: Some(value.clone()),
                        source,
                        config_type: ConfigType::Unknown,
                        doc: None,
                        read_only: true,
                        synonyms: vec![synonym],
                    }),
                }
            }
        }
        entries
    }

    /// AlterConfigs (`replace_all`) or IncrementalAlterConfigs on one level: checks the level
    /// as it would become, then (unless `validate_only`) has `persist` store it, then puts it
    /// in effect.
    pub async fn alter<F, Fut>(&self, level: Level, changes: &[ConfigChange], replace_all: bool, validate_only: bool, persist: F) -> Result<(), Failure>
    where
        F: FnOnce(Layer) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        let _altering = self.altering.lock().await;
        let (layer, config) = self.prepare(level, changes, replace_all)?;
        if validate_only {
            return Ok(());
        }
        persist(layer.clone()).await?;
        tracing::info!(?level, ?layer, "dynamic broker configs changed");
        let mut state = self.state.write().expect("settings lock");
        match level {
            Level::Broker => state.broker = layer,
            Level::Cluster => state.cluster = layer,
        }
        state.current = Arc::new(config);
        Ok(())
    }

    /// The level after `changes`, and the settings it gives, or why it is refused.
    fn prepare(&self, level: Level, changes: &[ConfigChange], replace_all: bool) -> Result<(Layer, Config), Failure> {
        let state = self.state.read().expect("settings lock");
        let mut layer = if replace_all { Layer::new() } else { state.layer(level).clone() };
        for change in changes {
            match change {
                ConfigChange::Set(name, value) => {
                    layer.insert(name.clone(), value.trim().to_string());
                }
                ConfigChange::Delete(name) => {
                    layer.remove(name);
                }
                ConfigChange::Append(name, items) | ConfigChange::Subtract(name, items) => {
                    let key = keys::find(name)
                        .filter(|k| k.config_type == ConfigType::List)
                        .ok_or_else(|| (ResponseError::InvalidConfig, format!("{name} is not a list config; APPEND and SUBTRACT apply only to lists")))?;
                    // Kafka edits this level's value, or the default when the level has none.
                    let current = layer.get(name).map(String::as_str).or(key.default).unwrap_or_default();
                    match edit_list(current, items, matches!(change, ConfigChange::Append(..))) {
                        Some(list) => layer.insert(name.clone(), list),
                        None => layer.remove(name),
                    };
                }
            }
        }
        check(level, &layer)?;
        check_values(&layer)?;
        let (broker, cluster) = match level {
            Level::Broker => (&layer, &state.cluster),
            Level::Cluster => (&state.broker, &layer),
        };
        let config = Config::resolve(self.statics.clone(), &[broker, cluster]).map_err(|why| (ResponseError::InvalidConfig, why))?;
        Ok((layer, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, value: &str) -> ConfigChange {
        ConfigChange::Set(name.into(), value.into())
    }

    async fn alter(settings: &BrokerSettings, level: Level, changes: &[ConfigChange]) -> Result<(), Failure> {
        settings.alter(level, changes, false, false, |_| async { Ok(()) }).await
    }

    #[tokio::test]
    async fn precedence_sources_and_synonym_layers() {
        let mut statics = Config::default();
        statics.set("log.retention.hours", "2").unwrap();
        let settings = BrokerSettings::new(&statics, Layer::new(), Layer::new());
        assert_eq!(settings.current().retention_ms, 7_200_000);
        alter(&settings, Level::Cluster, &[set("log.retention.ms", "5000")]).await.unwrap();
        assert_eq!(settings.current().retention_ms, 5000);
        alter(&settings, Level::Broker, &[set("log.retention.ms", "4000")]).await.unwrap();
        assert_eq!(settings.current().retention_ms, 4000);

        let entry = settings.describe(Level::Broker).into_iter().find(|e| e.name == "log.retention.ms").unwrap();
        assert_eq!((entry.value.as_deref(), entry.source, entry.read_only), (Some("4000"), ConfigSource::DynamicBrokerConfig, false));
        let chain: Vec<_> = entry.synonyms.iter().map(|s| (s.name.as_str(), s.value.as_str(), s.source as i8)).collect();
        assert_eq!(chain, [("log.retention.ms", "4000", 2), ("log.retention.ms", "5000", 3), ("log.retention.hours", "2", 4), ("log.retention.ms", "604800000", 5)]);

        let cluster = settings.describe(Level::Cluster);
        assert_eq!(cluster.len(), 1, "the cluster level shows only what it sets");
        assert_eq!((cluster[0].value.as_deref(), cluster[0].synonyms.len()), (Some("5000"), 1));

        settings.alter(Level::Broker, &[], true, false, |_| async { Ok(()) }).await.unwrap();
        assert_eq!(settings.current().retention_ms, 5000, "replacing the broker level with nothing falls back to the cluster level");
    }

    #[tokio::test]
    async fn refusals_name_the_key_and_change_nothing() {
        let settings = BrokerSettings::new(&Config::default(), Layer::new(), Layer::new());
        let refused = |r: Result<(), Failure>| r.unwrap_err();
        let (code, message) = refused(alter(&settings, Level::Broker, &[set("log.dirs", "/elsewhere")]).await);
        assert_eq!((code, message.as_str()), (ResponseError::InvalidRequest, "Cannot update these configs dynamically: log.dirs"));
        assert_eq!(refused(alter(&settings, Level::Broker, &[set("log.retention.hours", "1")]).await).0, ResponseError::InvalidRequest);
        let (code, message) = refused(alter(&settings, Level::Cluster, &[set("listeners", "PLAINTEXT://127.0.0.1:1")]).await);
        assert_eq!(code, ResponseError::InvalidRequest);
        assert!(message.contains("broker id must be specified"), "{message}");
        let (code, message) = refused(alter(&settings, Level::Broker, &[set("advertised.listeners", "PLAINTEXT://h:1")]).await);
        assert_eq!(code, ResponseError::InvalidRequest);
        assert!(message.contains("cannot change advertised.listeners at run time"), "{message}");
        assert_eq!(refused(alter(&settings, Level::Broker, &[set("message.max.bytes", "big")]).await).0, ResponseError::InvalidConfig);
        assert_eq!(refused(alter(&settings, Level::Broker, &[set("max.connections", "-1")]).await).0, ResponseError::InvalidConfig);
        assert_eq!(refused(alter(&settings, Level::Broker, &[ConfigChange::Append("max.connections".into(), "1".into())]).await).0, ResponseError::InvalidConfig);
        settings.alter(Level::Broker, &[set("message.max.bytes", "10")], false, true, |_| async { Ok(()) }).await.unwrap();
        assert_eq!(settings.current().message_max_bytes, 1_048_588, "validate_only changes nothing");
        assert!(settings.layer(Level::Broker).is_empty());
    }

    #[tokio::test]
    async fn unknown_keys_are_kept_as_kafka_keeps_custom_configs() {
        let settings = BrokerSettings::new(&Config::default(), Layer::new(), Layer::new());
        alter(&settings, Level::Broker, &[set("my.plugin.setting", "x")]).await.unwrap();
        let entry = settings.describe(Level::Broker).into_iter().find(|e| e.name == "my.plugin.setting").unwrap();
        assert_eq!((entry.value.as_deref(), entry.source, entry.config_type, entry.read_only), (Some("x"), ConfigSource::DynamicBrokerConfig, ConfigType::Unknown, true));
    }

    #[test]
    fn stored_entries_that_are_no_longer_valid_are_dropped() {
        let broker = Layer::from([("log.dirs".to_string(), "/x".to_string()), ("message.max.bytes".to_string(), "2000".to_string())]);
        let cluster = Layer::from([("max.connections".to_string(), "many".to_string())]);
        let settings = BrokerSettings::new(&Config::default(), broker, cluster);
        assert_eq!(settings.current().message_max_bytes, 2000);
        assert_eq!(settings.layer(Level::Broker).len(), 1);
        assert!(settings.layer(Level::Cluster).is_empty());
    }
}
