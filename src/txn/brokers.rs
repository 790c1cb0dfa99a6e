//! What transactions ask of other brokers: a coordinator's markers on partitions they lead (a
//! WriteTxnMarkers to each leader, as Kafka's TransactionMarkerChannelManager), and a
//! partition leader's check with a transaction's coordinator before it writes a transactional
//! batch (AddPartitionsToTxn v4+ with `verify_only`, as Kafka's AddPartitionsToTxnManager).
//! One connection per broker and purpose, so a check never waits behind markers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnRequest, AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic, WriteTxnMarkersRequest};
use kafka_protocol::messages::{ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::cluster::broker_client::BrokerConnection;
use crate::cluster::Cluster;
use crate::log::Marker;

/// How long a connection, or one marker request, may take (the leader waits for its ISR).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a produce may wait for its transaction's coordinator.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);

type Connection = Arc<tokio::sync::Mutex<Option<BrokerConnection>>>;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Purpose {
    Markers,
    Verify,
}

pub struct Brokers {
    cluster: Arc<Cluster>,
    connections: Mutex<HashMap<(i32, Purpose), Connection>>,
}

impl Brokers {
    pub fn new(cluster: Arc<Cluster>) -> Brokers {
        Brokers { cluster, connections: Mutex::new(HashMap::new()) }
    }

    /// The connection to `broker` for `purpose`, opened if needed; `None` after a failure
    /// (logged), to be opened again next time.
    async fn connected(&self, broker: i32, purpose: Purpose, timeout: Duration) -> tokio::sync::OwnedMutexGuard<Option<BrokerConnection>> {
        let connection = self.connections.lock().expect("connections lock").entry((broker, purpose)).or_default().clone();
        let mut connection = connection.lock_owned().await;
        if connection.is_none() {
            let address = self.cluster.broker_addresses(&self.cluster.image()).remove(&broker);
            let client_id = format!("broker-{}-transactions", self.cluster.node().id);
            match address {
                None => tracing::debug!(broker, "broker {broker} is not registered"),
                Some(address) => match BrokerConnection::connect(&address, self.cluster.inter_broker(), client_id, timeout).await {
                    Ok(c) => *connection = Some(c),
                    Err(e) => tracing::debug!(broker, "connecting for transactions: {e:#}"),
                },
            }
        }
        connection
    }

    /// Writes `marker` on `partitions` (topic, index) through their leader `broker`: the
    /// result of each, in order. A failed connection fails them all (retriably) and is
    /// opened again next time.
    pub async fn send_markers(&self, broker: i32, marker: &Marker, partitions: &[(String, i32)]) -> Vec<Result<(), ResponseError>> {
        let mut connection = self.connected(broker, Purpose::Markers, REQUEST_TIMEOUT).await;
        let answered = match connection.as_mut() {
            Some(conn) => send_markers(conn, marker, partitions).await,
            None => Err(anyhow::anyhow!("no connection")),
        };
        answered.unwrap_or_else(|e| {
            tracing::debug!(broker, "sending transaction markers: {e:#}");
            *connection = None;
            vec![Err(ResponseError::NetworkException); partitions.len()]
        })
    }

    /// Asks `broker`, the coordinator of transactional id `id`, whether `partition` is in the
    /// producer's open transaction, or with `add` (transactions v2) to add it. Answers that
    /// mean "ask again" (no coordinator yet, one loading, markers being written, no
    /// connection) are NOT_ENOUGH_REPLICAS, which every producer retries, as Kafka's partition
    /// leaders answer them.
    pub async fn verify(&self, broker: i32, id: &str, producer: (i64, i16), partition: (&str, i32), add: bool) -> Result<(), ResponseError> {
        let mut connection = self.connected(broker, Purpose::Verify, VERIFY_TIMEOUT).await;
        let answered = match connection.as_mut() {
            Some(conn) => verify(conn, id, producer, partition, add).await,
            None => Err(anyhow::anyhow!("no connection")),
        };
        let code = answered.unwrap_or_else(|e| {
            tracing::debug!(broker, "verifying a transactional batch: {e:#}");
            *connection = None;
            Some(ResponseError::NetworkException)
        });
        match code {
            None => Ok(()),
            Some(
                ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::ConcurrentTransactions
                | ResponseError::NetworkException
                | ResponseError::RequestTimedOut,
            ) => Err(ResponseError::NotEnoughReplicas),
            Some(e) => Err(e),
        }
    }
}

/// One AddPartitionsToTxn (verify only, unless `add`) for one partition: its error code, if any.
async fn verify(conn: &mut BrokerConnection, id: &str, producer: (i64, i16), (topic, index): (&str, i32), add: bool) -> anyhow::Result<Option<ResponseError>> {
    let version = conn.version::<AddPartitionsToTxnRequest>(4)?;
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_verify_only(!add)
        .with_topics(vec![AddPartitionsToTxnTopic::default().with_name(TopicName(StrBytes::from_string(topic.to_string()))).with_partitions(vec![index])])]);
    let response = conn.call(&request, version, VERIFY_TIMEOUT).await?;
    if let Some(e) = ResponseError::try_from_code(response.error_code) {
        return Ok(Some(e));
    }
    let code = response
        .results_by_transaction
        .iter()
        .find(|t| t.transactional_id.as_str() == id)
        .and_then(|t| t.topic_results.iter().find(|r| r.name.as_str() == topic))
        .and_then(|r| r.results_by_partition.iter().find(|p| p.partition_index == index))
        .map(|p| p.partition_error_code)
        .ok_or_else(|| anyhow::anyhow!("the coordinator did not answer for the partition"))?;
    Ok(ResponseError::try_from_code(code))
}

async fn send_markers(conn: &mut BrokerConnection, marker: &Marker, partitions: &[(String, i32)]) -> anyhow::Result<Vec<Result<(), ResponseError>>> {
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
