//! The metadata publisher (Kafka's BrokerMetadataPublisher): the one place where the
//! controller's metadata image reaches this broker. After every change of the image it makes
//! the local topics and partition logs follow it, and hands each changed partition's leader,
//! ISR and epochs to the [`ReplicaManager`], which leads or follows accordingly.
//!
//! Partition states (and the `__consumer_offsets` partitions the group coordinator serves) are
//! handed on only once the broker has caught up with the metadata log (its first unfencing), as
//! Kafka's broker waits for its initial catch-up: a restarted node's image is the one it had
//! when it stopped, and acting on it would make it lead partitions it no longer leads, serving
//! its unreplicated records and stale committed offsets until the log caught up.
//!
//! Also here: [`QuorumAlterPartition`], which sends the leaders' ISR changes to the active
//! controller.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use uuid::Uuid;

use super::controller::{ControllerClient, IsrChange, WriteError};
use super::metadata::{MetadataImage, PartitionRecord};
use super::replication::{AlterPartition, AlterPartitionSender, BrokerAddresses, CommittedIsr, PartitionState, ReplicaManager, TopicPartition};
use super::Cluster;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::txn::{TxnCoordinator, TXN_STATE_TOPIC};

/// How long to wait before asking the controller again to register this node's old topics.
const MIGRATION_RETRY: Duration = Duration::from_secs(1);

/// Registers the topics this node kept before the metadata log with the controller, so that
/// publishing does not delete them; then publishes every image until shutdown, partition states
/// once `caught_up`. Without `replicas`, partition states are left to whoever plays the
/// controller (tests of the replication layer).
pub async fn run(
    cluster: Arc<Cluster>,
    replicas: Option<Arc<ReplicaManager>>,
    groups: Arc<GroupCoordinator>,
    txns: Arc<TxnCoordinator>,
    mut image: watch::Receiver<Arc<MetadataImage>>,
    mut caught_up: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let current = image.borrow().clone();
        let Err(e) = migrate(&cluster, &current).await else { break };
        tracing::warn!("registering this node's topics with the controller: {e}; retrying");
        tokio::select! {
            _ = tokio::time::sleep(MIGRATION_RETRY) => {}
            _ = shutdown.changed() => return,
        }
    }
    let mut publisher = Publisher { cluster, replicas, groups, txns, applied: HashMap::new(), addresses: BrokerAddresses::new() };
    loop {
        let current = image.borrow_and_update().clone();
        let partitions_too = *caught_up.borrow_and_update();
        publisher.publish(&current, partitions_too).await;
        tokio::select! {
            changed = image.changed() => if changed.is_err() { return },
            changed = caught_up.changed(), if !partitions_too => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Topics of a data directory from before the metadata log join it, this node their only
/// replica, under the ids they have. A name the image has under another id is the image's.
pub async fn migrate(cluster: &Cluster, image: &MetadataImage) -> Result<(), WriteError> {
    let unregistered = cluster.unregistered_topics(image).map_err(|e| WriteError::Stopped(format!("reading this node's topics: {e:#}")))?;
    let Some(unregistered) = unregistered else { return Ok(()) };
    for request in unregistered {
        let name = request.name.clone();
        let Some(client) = cluster.controller_client() else { return Err(WriteError::Stopped("no controller client".into())) };
        match client.create_topic(request).await {
            Ok(_) => tracing::info!(topic = name, "registered a topic of this data directory with the controller"),
            Err(WriteError::Rejected { code, message }) if code == ResponseError::TopicAlreadyExists.code() => {
                tracing::warn!(topic = name, "the cluster has another topic of this name: {message}; this node's copy is deleted")
            }
            Err(e) => return Err(e),
        }
    }
    cluster.mark_migrated().await.map_err(|e| WriteError::Stopped(format!("storing that this node's topics are registered: {e:#}")))
}

struct Publisher {
    cluster: Arc<Cluster>,
    replicas: Option<Arc<ReplicaManager>>,
    groups: Arc<GroupCoordinator>,
    txns: Arc<TxnCoordinator>,
    /// Each partition's record as last handed to the replica manager.
    applied: HashMap<(Uuid, i32), PartitionRecord>,
    addresses: BrokerAddresses,
}

impl Publisher {
    async fn publish(&mut self, image: &MetadataImage, partitions_too: bool) {
        self.apply(image, partitions_too).await;
        self.cluster.published_image();
    }

    async fn apply(&mut self, image: &MetadataImage, partitions_too: bool) {
        let removed = self.cluster.publish(image).await;
        for (topic, partitions) in &removed {
            // Committed offsets go with their topic, also when a crash cut the deletion short
            // and it finishes here at the next start.
            self.groups.remove_topic_offsets(topic).await;
            if let Some(replicas) = &self.replicas {
                replicas.remove(partitions).await;
            }
        }
        let Some(replicas) = &self.replicas else { return };
        if !partitions_too {
            return;
        }
        let addresses = self.cluster.broker_addresses(image);
        // A broker that moved makes every partition's state worth applying again.
        let moved = addresses != self.addresses;
        self.addresses = addresses;
        self.applied.retain(|(topic, index), _| image.topic_by_id(*topic).is_some_and(|t| t.partitions.contains_key(index)));
        for topic in image.topics() {
            for (&index, record) in &topic.partitions {
                let key = (topic.id, index);
                if !moved && self.applied.get(&key) == Some(record) {
                    continue;
                }
                let partition = TopicPartition { topic: topic.name.clone(), topic_id: topic.id, partition: index };
                let state = PartitionState { leader: record.leader, leader_epoch: record.leader_epoch, partition_epoch: record.partition_epoch, replicas: record.replicas.clone(), isr: record.isr.clone() };
                match replicas.apply(&partition, state, &self.addresses).await {
                    Ok(()) => {
                        self.applied.insert(key, record.clone());
                    }
                    Err(e) => tracing::warn!(?partition, "applying the partition's state: {e:?}; retrying with the next metadata change"),
                }
            }
        }
        // The coordinators serve the keys of the state partitions this node leads.
        let me = self.cluster.node().id;
        let led = |topic: &str| -> Vec<(i32, i32)> {
            image.topic(topic).map(|t| t.partitions.iter().filter(|(_, p)| p.leader == me).map(|(&index, p)| (index, p.leader_epoch)).collect()).unwrap_or_default()
        };
        self.groups.follow_partitions(&led(OFFSETS_TOPIC));
        self.txns.follow_partitions(&led(TXN_STATE_TOPIC));
    }
}

/// Leaders' ISR changes go to the active controller as AlterPartition requests, once the
/// broker attached its controller client.
#[derive(Default)]
pub struct QuorumAlterPartition {
    client: OnceLock<Arc<ControllerClient>>,
}

impl QuorumAlterPartition {
    pub fn attach(&self, client: Arc<ControllerClient>) {
        let _ = self.client.set(client);
    }
}

impl AlterPartitionSender for QuorumAlterPartition {
    fn alter_partition(&self, request: AlterPartition) -> BoxFuture<'static, Result<CommittedIsr, ResponseError>> {
        let client = self.client.get().cloned();
        Box::pin(async move {
            let client = client.ok_or(ResponseError::NotController)?;
            let change = IsrChange {
                topic_id: request.partition.topic_id,
                index: request.partition.partition,
                leader: request.leader_id,
                leader_epoch: request.leader_epoch,
                partition_epoch: request.partition_epoch,
                isr: request.new_isr,
            };
            let (leader_epoch, partition_epoch, isr) = client.alter_partition(change).await.map_err(|e| e.response_error())?;
            Ok(CommittedIsr { leader_epoch, partition_epoch, isr })
        })
    }
}
