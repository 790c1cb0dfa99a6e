//! The markers a coordinator writes on partitions other brokers lead: a WriteTxnMarkers request
//! to each leader (Kafka's TransactionMarkerChannelManager), over one connection per broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic, WriteTxnMarkersRequest};
use kafka_protocol::messages::{ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::cluster::broker_client::BrokerConnection;
use crate::cluster::Cluster;
use crate::log::Marker;

/// How long a connection, or one marker request, may take (the leader waits for its ISR).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type Connection = Arc<tokio::sync::Mutex<Option<BrokerConnection>>>;

pub struct MarkerSender {
    cluster: Arc<Cluster>,
    connections: Mutex<HashMap<i32, Connection>>,
}

impl MarkerSender {
    pub fn new(cluster: Arc<Cluster>) -> MarkerSender {
        MarkerSender { cluster, connections: Mutex::new(HashMap::new()) }
    }

    /// Writes `marker` on `partitions` (topic, index) through their leader `broker`: the
    /// result of each, in order. A failed connection fails them all (retriably) and is
    /// opened again next time.
    pub async fn send(&self, broker: i32, marker: &Marker, partitions: &[(String, i32)]) -> Vec<Result<(), ResponseError>> {
        let connection = self.connections.lock().expect("connections lock").entry(broker).or_default().clone();
        let mut connection = connection.lock().await;
        match self.exchange(&mut connection, broker, marker, partitions).await {
            Ok(results) => results,
            Err(e) => {
                tracing::debug!(broker, "sending transaction markers: {e:#}");
                *connection = None;
                vec![Err(ResponseError::NetworkException); partitions.len()]
            }
        }
    }

    async fn exchange(&self, connection: &mut Option<BrokerConnection>, broker: i32, marker: &Marker, partitions: &[(String, i32)]) -> anyhow::Result<Vec<Result<(), ResponseError>>> {
        if connection.is_none() {
            let address = self.cluster.broker_addresses(&self.cluster.image()).remove(&broker).ok_or_else(|| anyhow::anyhow!("broker {broker} is not registered"))?;
            let client_id = format!("broker-{}-txn-coordinator", self.cluster.node().id);
            *connection = Some(BrokerConnection::connect(&address, client_id, REQUEST_TIMEOUT).await?);
        }
        let conn = connection.as_mut().expect("connected above");
        let version = conn.version::<WriteTxnMarkersRequest>(0)?;
        let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
        for (topic, index) in partitions {
            match topics.iter_mut().find(|t| t.name.as_str() == topic) {
                Some(t) => t.partition_indexes.push(*index),
                None => topics.push(WritableTxnMarkerTopic::default().with_name(TopicName(StrBytes::from_string(topic.clone()))).with_partition_indexes(vec![*index])),
            }
        }
        let request = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(topics)]);
        let response = conn.call(&request, version, REQUEST_TIMEOUT).await?;
        let answered = |topic: &str, index: i32| {
            let p = response.markers.first()?.topics.iter().find(|t| t.name.as_str() == topic)?.partitions.iter().find(|p| p.partition_index == index)?;
            Some(match ResponseError::try_from_code(p.error_code) {
                None => Ok(()),
                Some(e) => Err(e),
            })
        };
        Ok(partitions.iter().map(|(topic, index)| answered(topic, *index).unwrap_or(Err(ResponseError::UnknownServerError))).collect())
    }
}
