//! Topics, partitions and ISR changes on the active controller (Kafka's
//! ReplicationControlManager): creating a topic with its replica assignment, deleting one,
//! adding partitions, topic config changes, leaders' AlterPartition requests and producer-id
//! blocks. Each checks the image and writes its records as one batch while holding the
//! controller's write lock, so no two read-check-write sequences interleave.

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Controller, WriteError};
use crate::cluster::metadata::{BrokerId, ConfigRecord, ConfigResource, MetadataImage, MetadataRecord, PartitionChange, PartitionRecord, ProducerIdBlock, TopicRecord};

/// How many producer ids a broker takes at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTopic {
    pub name: String,
    /// `None`: the controller makes one. A broker registering the topics of a data directory
    /// from before the metadata log keeps their ids.
    pub id: Option<Uuid>,
    pub partitions: i32,
    pub replication_factor: i16,
    /// The replicas of each partition, when the request names them.
    pub assignments: Option<Vec<Vec<BrokerId>>>,
    /// Checked by the broker that took the request.
    pub configs: Vec<(String, String)>,
    pub validate_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatePartitions {
    pub topic: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<BrokerId>>>,
    pub validate_only: bool,
}

/// Sets (`Some`) or removes (`None`) topic configs; checked by the broker that took the request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlterTopicConfigs {
    pub topic: String,
    pub changes: Vec<(String, Option<String>)>,
}

/// A leader's ISR change (Kafka's AlterPartition).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsrChange {
    pub topic_id: Uuid,
    pub index: i32,
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<BrokerId>,
}

/// The partition as the controller committed it: (leader epoch, partition epoch, ISR).
pub type CommittedPartition = (i32, i32, Vec<BrokerId>);

/// A refusal with Kafka's error code and message.
pub(super) fn rejected(error: ResponseError, message: impl Into<String>) -> WriteError {
    WriteError::Rejected { code: error.code(), message: message.into() }
}

impl Controller {
    /// Creates a topic with every partition assigned; returns its id.
    pub async fn create_topic(&self, request: CreateTopic) -> Result<Uuid, WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        let image = self.image.borrow().clone();
        if image.topic(&request.name).is_some() {
            return Err(rejected(ResponseError::TopicAlreadyExists, format!("Topic '{}' already exists.", request.name)));
        }
        let assignments = match request.assignments {
            Some(given) => {
                check_assignments(&image, &given, None)?;
                given
            }
            None => assign(&image, 0, request.partitions, request.replication_factor)?,
        };
        if request.validate_only {
            return Ok(Uuid::nil());
        }
        let id = request.id.unwrap_or_else(Uuid::new_v4);
        let mut records = vec![MetadataRecord::Topic(TopicRecord { name: request.name.clone(), id, configs: request.configs })];
        records.extend(partition_records(&image, id, 0, assignments));
        self.write(MetadataRecord::Batch(records)).await?;
        tracing::info!(topic = request.name, %id, partitions = request.partitions, "created topic");
        Ok(id)
    }

    pub async fn delete_topic(&self, name: String) -> Result<(), WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        let image = self.image.borrow().clone();
        let topic = image.topic(&name).ok_or_else(|| unknown_topic(&name))?;
        self.write(MetadataRecord::RemoveTopic { id: topic.id }).await?;
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    pub async fn create_partitions(&self, request: CreatePartitions) -> Result<(), WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        let image = self.image.borrow().clone();
        let topic = image.topic(&request.topic).ok_or_else(|| unknown_topic(&request.topic))?;
        let current = topic.partitions.len() as i32;
        if request.count <= current {
            return Err(rejected(ResponseError::InvalidPartitions, format!("Topic currently has {current} partitions, which is higher than the requested {}.", request.count)));
        }
        let replication_factor = topic.partitions.values().next().map_or(1, |p| p.replicas.len()) as i16;
        let assignments = match request.assignments {
            Some(given) => {
                if given.len() as i64 != (request.count - current) as i64 {
                    return Err(rejected(ResponseError::InvalidReplicaAssignment, format!("Attempted to add {} additional partition(s), but only {} assignment(s) were specified.", request.count - current, given.len())));
                }
                check_assignments(&image, &given, Some(replication_factor as usize))?;
                given
            }
            None => assign(&image, current, request.count - current, replication_factor)?,
        };
        if request.validate_only {
            return Ok(());
        }
        let records = partition_records(&image, topic.id, current, assignments);
        self.write(MetadataRecord::Batch(records)).await?;
        tracing::info!(topic = request.topic, partitions = request.count, "added partitions");
        Ok(())
    }

    pub async fn alter_topic_configs(&self, request: AlterTopicConfigs) -> Result<(), WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        if self.image.borrow().topic(&request.topic).is_none() {
            return Err(unknown_topic(&request.topic));
        }
        let resource = ConfigResource::Topic(request.topic.clone());
        let records = request.changes.into_iter().map(|(name, value)| MetadataRecord::ConfigChange(ConfigRecord { resource: resource.clone(), name, value })).collect();
        self.write(MetadataRecord::Batch(records)).await?;
        Ok(())
    }

    /// A leader's ISR change, checked as Kafka's controller checks AlterPartition: from the
    /// current leader at its epoch, based on the current partition epoch, with only unfenced
    /// replicas joining.
    pub async fn alter_partition(&self, change: IsrChange) -> Result<CommittedPartition, WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        let image = self.image.borrow().clone();
        let current = image
            .topic_by_id(change.topic_id)
            .and_then(|t| t.partitions.get(&change.index))
            .ok_or_else(|| rejected(ResponseError::UnknownTopicOrPartition, "no such partition"))?;
        if change.leader != current.leader {
            return Err(rejected(ResponseError::NotLeaderOrFollower, format!("broker {} does not lead the partition; {} does", change.leader, current.leader)));
        }
        if change.leader_epoch != current.leader_epoch {
            return Err(rejected(ResponseError::FencedLeaderEpoch, format!("leader epoch {} is not the current {}", change.leader_epoch, current.leader_epoch)));
        }
        if change.partition_epoch != current.partition_epoch {
            return Err(rejected(ResponseError::InvalidUpdateVersion, format!("partition epoch {} is not the current {}", change.partition_epoch, current.partition_epoch)));
        }
        let joining_fenced = change.isr.iter().find(|b| !current.isr.contains(b) && image.broker(**b).is_none_or(|b| b.fenced));
        if let Some(b) = joining_fenced {
            return Err(rejected(ResponseError::IneligibleReplica, format!("broker {b} is fenced and cannot join the ISR")));
        }
        if change.isr.iter().any(|b| !current.replicas.contains(b)) || !change.isr.contains(&change.leader) {
            return Err(rejected(ResponseError::InvalidRequest, format!("ISR {:?} must hold the leader and only replicas {:?}", change.isr, current.replicas)));
        }
        let record = MetadataRecord::PartitionChange(PartitionChange { topic_id: change.topic_id, index: change.index, leader: None, isr: Some(change.isr), replicas: None });
        // The ISR change that brings in a reassignment's last new replica completes it.
        let mut after = (*image).clone();
        after.apply(record.clone()).map_err(WriteError::Refused)?;
        let topic = after.topic_by_id(change.topic_id).expect("checked above");
        let completed = topic.reassignments.get(&change.index).and_then(|r| super::replicas::completion(&after, change.topic_id, &topic.partitions[&change.index], r));
        match completed {
            Some(done) => {
                self.write(MetadataRecord::Batch([record].into_iter().chain(done).collect())).await?;
                tracing::info!(topic = topic.name, partition = change.index, "reassignment completed");
            }
            None => {
                self.write(record).await?;
            }
        }
        let image = self.image.borrow().clone();
        let committed = &image.topic_by_id(change.topic_id).expect("just changed").partitions[&change.index];
        Ok((committed.leader_epoch, committed.partition_epoch, committed.isr.clone()))
    }

    /// The next block of producer ids for `broker`.
    pub async fn allocate_producer_ids(&self, broker: BrokerId, at_least: i64) -> Result<ProducerIdBlock, WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        let first = self.image.borrow().next_producer_id().max(at_least);
        let block = ProducerIdBlock { broker, first, size: PRODUCER_ID_BLOCK_SIZE };
        self.write(MetadataRecord::ProducerIdBlock(block.clone())).await?;
        Ok(block)
    }
}

fn unknown_topic(name: &str) -> WriteError {
    rejected(ResponseError::UnknownTopicOrPartition, format!("Topic '{name}' does not exist."))
}

/// Records for partitions `first..` with their replicas: the first live replica leads, the
/// live ones form the ISR.
fn partition_records(image: &MetadataImage, topic_id: Uuid, first: i32, assignments: Vec<Vec<BrokerId>>) -> Vec<MetadataRecord> {
    let live = |b: &BrokerId| image.broker(*b).is_some_and(|b| !b.fenced);
    assignments
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| {
            let isr: Vec<BrokerId> = replicas.iter().copied().filter(live).collect();
            let isr = if isr.is_empty() { replicas.clone() } else { isr };
            let leader = isr.iter().copied().find(live).unwrap_or(crate::cluster::metadata::NO_LEADER);
            MetadataRecord::Partition(PartitionRecord { topic_id, index: first + i as i32, replicas, isr, leader, leader_epoch: 0, partition_epoch: 0 })
        })
        .collect()
}

/// Assignments named in a request, checked as Kafka's controller checks them: each non-empty,
/// of registered brokers, none twice, all of one size.
fn check_assignments(image: &MetadataImage, assignments: &[Vec<BrokerId>], size: Option<usize>) -> Result<(), WriteError> {
    let invalid = |message: String| Err(rejected(ResponseError::InvalidReplicaAssignment, message));
    let size = size.or_else(|| assignments.first().map(Vec::len));
    for replicas in assignments {
        if replicas.is_empty() {
            return invalid("The manual partition assignment includes an empty replica list.".into());
        }
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        for (i, &broker) in sorted.iter().enumerate() {
            if image.broker(broker).is_none() {
                return invalid(format!("The manual partition assignment includes broker {broker}, but no such broker is registered."));
            }
            if i > 0 && sorted[i - 1] == broker {
                return invalid(format!("The manual partition assignment includes the broker {broker} more than once."));
            }
        }
        if Some(replicas.len()) != size {
            return invalid("All partitions in the manual partition assignment must have the same number of replicas.".into());
        }
    }
    Ok(())
}

/// Replicas for `count` partitions from index `first`, round robin over the unfenced brokers
/// with racks alternating (so a partition's replicas spread over racks when there are enough),
/// each partition led by a different broker in turn.
fn assign(image: &MetadataImage, first: i32, count: i32, replication_factor: i16) -> Result<Vec<Vec<BrokerId>>, WriteError> {
    let brokers = rack_alternated(image);
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 {
        return Err(rejected(ResponseError::InvalidReplicationFactor, "Replication factor must be larger than 0."));
    }
    if rf > brokers.len() {
        return Err(rejected(
            ResponseError::InvalidReplicationFactor,
            format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.", brokers.len()),
        ));
    }
    // Where the first partition's leader falls depends on the topic, so that many small topics
    // do not all lead on the same broker.
    let start = (Uuid::new_v4().as_u128() % brokers.len() as u128) as usize;
    Ok((0..count)
        .map(|i| {
            let lead = start + first as usize + i as usize;
            (0..rf).map(|r| brokers[(lead + r) % brokers.len()]).collect()
        })
        .collect())
}

/// The unfenced brokers, one of each rack in turn (Kafka's rack-alternated list); brokers
/// without a rack form one rack of their own.
fn rack_alternated(image: &MetadataImage) -> Vec<BrokerId> {
    let mut racks: std::collections::BTreeMap<Option<String>, Vec<BrokerId>> = Default::default();
    for b in image.brokers().filter(|b| !b.fenced) {
        racks.entry(b.registration.rack.clone()).or_default().push(b.registration.id);
    }
    let longest = racks.values().map(Vec::len).max().unwrap_or(0);
    (0..longest).flat_map(|i| racks.values().filter_map(move |ids| ids.get(i).copied()).collect::<Vec<_>>()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::metadata::{BrokerEndpoint, BrokerRegistration};

    fn image(brokers: &[(BrokerId, Option<&str>, bool)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for &(id, rack, fenced) in brokers {
            let endpoints = vec![BrokerEndpoint { listener: "PLAINTEXT".into(), host: "h".into(), port: 9092 }];
            image.apply(MetadataRecord::RegisterBroker(BrokerRegistration { id, endpoints, rack: rack.map(Into::into) })).unwrap();
            if !fenced {
                image.apply(MetadataRecord::UnfenceBroker { id }).unwrap();
            }
        }
        image
    }

    #[test]
    fn replicas_spread_over_live_brokers_and_leaders_rotate() {
        let image = image(&[(1, None, false), (2, None, false), (3, None, false), (4, None, true)]);
        let assigned = assign(&image, 0, 6, 3).unwrap();
        for replicas in &assigned {
            let mut sorted = replicas.clone();
            sorted.sort();
            assert_eq!(sorted, vec![1, 2, 3], "fenced broker 4 gets nothing: {assigned:?}");
        }
        let leaders: std::collections::BTreeSet<_> = assigned.iter().map(|r| r[0]).collect();
        assert_eq!(leaders.len(), 3, "every live broker leads some partition: {assigned:?}");
        let err = assign(&image, 0, 1, 4).unwrap_err();
        assert!(matches!(err, WriteError::Rejected { code, ref message } if code == ResponseError::InvalidReplicationFactor.code() && message.contains("only 3 broker(s)")), "{err:?}");
    }

    #[test]
    fn racks_alternate_so_replicas_span_racks() {
        let image = image(&[(1, Some("a"), false), (2, Some("a"), false), (3, Some("b"), false), (4, Some("b"), false)]);
        let rack = |b: BrokerId| if b <= 2 { "a" } else { "b" };
        for replicas in assign(&image, 0, 8, 2).unwrap() {
            assert_ne!(rack(replicas[0]), rack(replicas[1]), "{replicas:?}");
        }
    }

    #[test]
    fn named_assignments_are_checked_as_kafka_does() {
        let image = image(&[(1, None, false), (2, None, false)]);
        assert!(check_assignments(&image, &[vec![1, 2], vec![2, 1]], None).is_ok());
        for (bad, says) in [(vec![vec![]], "empty replica list"), (vec![vec![1, 7]], "broker 7"), (vec![vec![1, 1]], "more than once"), (vec![vec![1, 2], vec![1]], "same number")] {
            match check_assignments(&image, &bad, None) {
                Err(WriteError::Rejected { message, .. }) => assert!(message.contains(says), "{bad:?}: {message}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
