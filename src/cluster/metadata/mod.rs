//! The metadata image: the cluster state that the metadata log's records add up to (brokers,
//! topics, partitions with their leaders, ISR and epochs, dynamic configs, producer-id blocks,
//! ACLs, SCRAM credentials, client quotas).
//!
//! Every node builds the same image by applying the same records in the same order, and
//! nothing else changes it: each record type has one `apply` function below. A record that does
//! not fit the image (a partition of an unknown topic, say) is refused without changing anything,
//! on every node alike, so images never diverge. The active controller checks what it writes,
//! so a refusal points at a controller bug, and is reported to the writer.

mod records;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::quota::{ClientQuotas, QuotaEntity, QuotaKey};
use crate::security::acl::Acls;

pub use records::*;

use crate::security::scram::{ScramCredential, ScramMechanism};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    brokers: BTreeMap<BrokerId, BrokerImage>,
    topics: BTreeMap<Uuid, TopicImage>,
    /// Topic name to id, kept with `topics`.
    topic_ids: BTreeMap<String, Uuid>,
    /// Dynamic broker settings; the key `None` holds the cluster-wide defaults.
    broker_configs: BTreeMap<Option<BrokerId>, BTreeMap<String, String>>,
    /// The first producer id no block has covered yet.
    next_producer_id: i64,
    acls: Acls,
    /// SCRAM credentials by user and mechanism.
    scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// Client quotas by entity; an entity without quotas is not kept.
    client_quotas: BTreeMap<QuotaEntity, BTreeMap<QuotaKey, f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub registration: BrokerRegistration,
    pub fenced: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<i32, PartitionRecord>,
    /// The partitions being reassigned.
    pub reassignments: BTreeMap<i32, Reassignment>,
}

/// A reassignment in progress: the partition's replicas are the target ones plus `removing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
}

impl Reassignment {
    /// The replicas the partition will have once the reassignment completes.
    pub fn target(&self, replicas: &[BrokerId]) -> Vec<BrokerId> {
        replicas.iter().copied().filter(|r| !self.removing.contains(r)).collect()
    }

    /// The replicas it had before.
    pub fn original(&self, replicas: &[BrokerId]) -> Vec<BrokerId> {
        replicas.iter().copied().filter(|r| !self.adding.contains(r)).collect()
    }
}

/// The image as store format 3 kept it, before client quotas.
#[derive(Deserialize)]
pub struct MetadataImageV3 {
    brokers: BTreeMap<BrokerId, BrokerImage>,
    topics: BTreeMap<Uuid, TopicImage>,
    topic_ids: BTreeMap<String, Uuid>,
    broker_configs: BTreeMap<Option<BrokerId>, BTreeMap<String, String>>,
    next_producer_id: i64,
    acls: Acls,
    scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

impl From<MetadataImageV3> for MetadataImage {
    fn from(v3: MetadataImageV3) -> MetadataImage {
        MetadataImage {
            brokers: v3.brokers,
            topics: v3.topics,
            topic_ids: v3.topic_ids,
            broker_configs: v3.broker_configs,
            next_producer_id: v3.next_producer_id,
            acls: v3.acls,
            scram_credentials: v3.scram_credentials,
            client_quotas: BTreeMap::new(),
        }
    }
}

/// The image as store format 2 kept it, before ACLs and SCRAM credentials.
#[derive(Deserialize)]
pub struct MetadataImageV2 {
    brokers: BTreeMap<BrokerId, BrokerImage>,
    topics: BTreeMap<Uuid, TopicImage>,
    topic_ids: BTreeMap<String, Uuid>,
    broker_configs: BTreeMap<Option<BrokerId>, BTreeMap<String, String>>,
    next_producer_id: i64,
}

impl From<MetadataImageV2> for MetadataImage {
    fn from(v2: MetadataImageV2) -> MetadataImage {
        let v3 = MetadataImageV3 { brokers: v2.brokers, topics: v2.topics, topic_ids: v2.topic_ids, broker_configs: v2.broker_configs, next_producer_id: v2.next_producer_id, acls: Acls::default(), scram_credentials: BTreeMap::new() };
        v3.into()
    }
}

/// The image as store format 1 kept it, before reassignments: read once from a data directory
/// written by an older build.
#[derive(Deserialize)]
pub struct MetadataImageV1 {
    brokers: BTreeMap<BrokerId, BrokerImage>,
    topics: BTreeMap<Uuid, TopicImageV1>,
    topic_ids: BTreeMap<String, Uuid>,
    broker_configs: BTreeMap<Option<BrokerId>, BTreeMap<String, String>>,
    next_producer_id: i64,
}

#[derive(Deserialize)]
struct TopicImageV1 {
    name: String,
    id: Uuid,
    configs: BTreeMap<String, String>,
    partitions: BTreeMap<i32, PartitionRecord>,
}

impl From<MetadataImageV1> for MetadataImage {
    fn from(v1: MetadataImageV1) -> MetadataImage {
        let topics = v1
            .topics
            .into_iter()
            .map(|(id, t)| (id, TopicImage { name: t.name, id: t.id, configs: t.configs, partitions: t.partitions, reassignments: BTreeMap::new() }))
            .collect();
        MetadataImageV2 { brokers: v1.brokers, topics, topic_ids: v1.topic_ids, broker_configs: v1.broker_configs, next_producer_id: v1.next_producer_id }.into()
    }
}

impl MetadataImage {
    pub fn broker(&self, id: BrokerId) -> Option<&BrokerImage> {
        self.brokers.get(&id)
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicImage> {
        self.topics.get(&id)
    }

    /// In topic id order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    pub fn broker_configs(&self, broker: Option<BrokerId>) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(&broker)
    }

    pub fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.scram_credentials.get(user)?.get(&mechanism)
    }

    /// Users with SCRAM credentials, by name, with theirs.
    pub fn scram_users(&self) -> &BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>> {
        &self.scram_credentials
    }

    /// Every entity with quotas, with its quotas.
    pub fn client_quotas(&self) -> &BTreeMap<QuotaEntity, BTreeMap<QuotaKey, f64>> {
        &self.client_quotas
    }

    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    pub fn acls(&self) -> &Acls {
        &self.acls
    }

    /// Applies one record, or refuses it (saying why) and stays as it was.
    pub fn apply(&mut self, record: MetadataRecord) -> Result<(), String> {
        match record {
            MetadataRecord::RegisterBroker(registration) => self.register_broker(registration),
            MetadataRecord::FenceBroker { id } => self.set_fenced(id, true),
            MetadataRecord::UnfenceBroker { id } => self.set_fenced(id, false),
            MetadataRecord::Topic(topic) => self.add_topic(topic),
            MetadataRecord::Partition(partition) => self.add_partition(partition),
            MetadataRecord::PartitionChange(change) => self.change_partition(change),
            MetadataRecord::RemoveTopic { id } => self.remove_topic(id),
            MetadataRecord::ConfigChange(config) => self.change_config(config),
            MetadataRecord::ProducerIdBlock(block) => self.add_producer_id_block(block),
            MetadataRecord::Reassignment(reassignment) => self.reassign(reassignment),
            MetadataRecord::ScramCredential(record) => self.set_scram_credential(record),
            MetadataRecord::Acl(acl) => {
                self.acls.add(acl);
                Ok(())
            }
            MetadataRecord::RemoveAcl(acl) => self.acls.remove(&acl),
            MetadataRecord::ClientQuota(record) => self.set_client_quota(record),
            MetadataRecord::Batch(records) => {
                // Rare and small (admin changes): a copy to fall back on is cheap enough.
                let before = self.clone();
                let applied = records.into_iter().try_for_each(|r| self.apply(r));
                if applied.is_err() {
                    *self = before;
                }
                applied
            }
        }
    }

    fn register_broker(&mut self, registration: BrokerRegistration) -> Result<(), String> {
        if registration.endpoints.is_empty() {
            return Err(format!("broker {} registers without endpoints", registration.id));
        }
        // A restarted broker registers again; it stays fenced until it has caught up.
        self.brokers.insert(registration.id, BrokerImage { registration, fenced: true });
        Ok(())
    }

    fn set_fenced(&mut self, id: BrokerId, fenced: bool) -> Result<(), String> {
        let broker = self.brokers.get_mut(&id).ok_or_else(|| format!("broker {id} is not registered"))?;
        broker.fenced = fenced;
        Ok(())
    }

    fn add_topic(&mut self, topic: TopicRecord) -> Result<(), String> {
        if self.topic_ids.contains_key(&topic.name) || self.topics.contains_key(&topic.id) {
            return Err(format!("topic {:?} (id {}) exists already", topic.name, topic.id));
        }
        self.topic_ids.insert(topic.name.clone(), topic.id);
        let image = TopicImage { name: topic.name, id: topic.id, configs: topic.configs.into_iter().collect(), partitions: BTreeMap::new(), reassignments: BTreeMap::new() };
        self.topics.insert(topic.id, image);
        Ok(())
    }

    fn add_partition(&mut self, partition: PartitionRecord) -> Result<(), String> {
        check_assignment(&partition.replicas, &partition.isr, partition.leader)?;
        let topic = self.topics.get_mut(&partition.topic_id).ok_or_else(|| format!("partition of unknown topic id {}", partition.topic_id))?;
        if topic.partitions.contains_key(&partition.index) {
            return Err(format!("partition {}-{} exists already", topic.name, partition.index));
        }
        topic.partitions.insert(partition.index, partition);
        Ok(())
    }

    fn change_partition(&mut self, change: PartitionChange) -> Result<(), String> {
        let topic = self.topics.get_mut(&change.topic_id).ok_or_else(|| format!("change of unknown topic id {}", change.topic_id))?;
        let name = &topic.name;
        let current = topic.partitions.get_mut(&change.index).ok_or_else(|| format!("change of unknown partition {name}-{}", change.index))?;
        let replicas = change.replicas.unwrap_or_else(|| current.replicas.clone());
        let isr = change.isr.unwrap_or_else(|| current.isr.clone());
        let leader = change.leader.unwrap_or(current.leader);
        check_assignment(&replicas, &isr, leader).map_err(|e| format!("partition {name}-{}: {e}", change.index))?;
        if leader != current.leader {
            current.leader_epoch += 1;
        }
        current.partition_epoch += 1;
        (current.replicas, current.isr, current.leader) = (replicas, isr, leader);
        Ok(())
    }

    fn reassign(&mut self, record: ReassignmentRecord) -> Result<(), String> {
        let topic = self.topics.get_mut(&record.topic_id).ok_or_else(|| format!("reassignment of unknown topic id {}", record.topic_id))?;
        let name = &topic.name;
        let current = topic.partitions.get(&record.index).ok_or_else(|| format!("reassignment of unknown partition {name}-{}", record.index))?;
        if record.adding.is_empty() && record.removing.is_empty() {
            topic.reassignments.remove(&record.index);
            return Ok(());
        }
        let reassignment = Reassignment { adding: record.adding, removing: record.removing };
        let outside = reassignment.adding.iter().chain(&reassignment.removing).find(|r| !current.replicas.contains(r));
        if let Some(r) = outside {
            return Err(format!("partition {name}-{}: reassigned replica {r} is not among the replicas {:?}", record.index, current.replicas));
        }
        if reassignment.adding.iter().any(|r| reassignment.removing.contains(r)) || reassignment.target(&current.replicas).is_empty() {
            return Err(format!("partition {name}-{}: adding {:?} and removing {:?} leave no target", record.index, reassignment.adding, reassignment.removing));
        }
        topic.reassignments.insert(record.index, reassignment);
        Ok(())
    }

    fn set_scram_credential(&mut self, record: ScramCredentialRecord) -> Result<(), String> {
        match record.credential {
            Some(credential) => {
                self.scram_credentials.entry(record.user).or_default().insert(record.mechanism, credential);
            }
            None => {
                let user = self.scram_credentials.get_mut(&record.user).ok_or_else(|| format!("user {:?} has no SCRAM credential", record.user))?;
                user.remove(&record.mechanism).ok_or_else(|| format!("user {:?} has no {} credential", record.user, record.mechanism.name()))?;
                if user.is_empty() {
                    self.scram_credentials.remove(&record.user);
                }
            }
        }
        Ok(())
    }

    fn set_client_quota(&mut self, record: ClientQuotaRecord) -> Result<(), String> {
        match record.value {
            Some(value) => {
                self.client_quotas.entry(record.entity).or_default().insert(record.key, value);
            }
            None => {
                // Removing a quota that is not set changes nothing, as in Kafka.
                if let Some(quotas) = self.client_quotas.get_mut(&record.entity) {
                    quotas.remove(&record.key);
                    if quotas.is_empty() {
                        self.client_quotas.remove(&record.entity);
                    }
                }
            }
        }
        Ok(())
    }

    fn remove_topic(&mut self, id: Uuid) -> Result<(), String> {
        let topic = self.topics.remove(&id).ok_or_else(|| format!("removal of unknown topic id {id}"))?;
        self.topic_ids.remove(&topic.name);
        Ok(())
    }

    fn change_config(&mut self, config: ConfigRecord) -> Result<(), String> {
        let configs = match &config.resource {
            ConfigResource::Topic(name) => {
                let id = self.topic_ids.get(name).ok_or_else(|| format!("config of unknown topic {name:?}"))?;
                &mut self.topics.get_mut(id).expect("topic_ids follows topics").configs
            }
            ConfigResource::Broker(broker) => self.broker_configs.entry(*broker).or_default(),
        };
        match config.value {
            Some(value) => configs.insert(config.name, value),
            None => configs.remove(&config.name),
        };
        if let ConfigResource::Broker(broker) = config.resource {
            if self.broker_configs.get(&broker).is_some_and(|c| c.is_empty()) {
                self.broker_configs.remove(&broker);
            }
        }
        Ok(())
    }

    fn add_producer_id_block(&mut self, block: ProducerIdBlock) -> Result<(), String> {
        // Blocks only move forward; one may skip ids (a data directory from before the
        // metadata log had handed some out already).
        if block.first < self.next_producer_id || block.size <= 0 {
            return Err(format!("producer id block {}+{} does not follow {}", block.first, block.size, self.next_producer_id));
        }
        self.next_producer_id = block.first.checked_add(block.size).ok_or("producer ids exhausted")?;
        Ok(())
    }
}

impl ClientQuotas for MetadataImage {
    fn quota(&self, entity: &QuotaEntity, key: QuotaKey) -> Option<f64> {
        self.client_quotas.get(entity)?.get(&key).copied()
    }

    fn any_quota(&self) -> bool {
        !self.client_quotas.is_empty()
    }
}

/// Replicas distinct and non-empty, the ISR among them, the leader in the ISR (or none).
fn check_assignment(replicas: &[BrokerId], isr: &[BrokerId], leader: BrokerId) -> Result<(), String> {
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.is_empty() || sorted.len() != replicas.len() {
        return Err(format!("replicas {replicas:?} must be distinct and not empty"));
    }
    if let Some(b) = isr.iter().find(|b| !replicas.contains(b)) {
        return Err(format!("ISR member {b} is not a replica"));
    }
    if leader != NO_LEADER && !isr.contains(&leader) {
        return Err(format!("leader {leader} is not in the ISR {isr:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: BrokerId) -> MetadataRecord {
        let endpoints = vec![BrokerEndpoint { listener: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 + id as u16 }];
        MetadataRecord::RegisterBroker(BrokerRegistration { id, endpoints, rack: None })
    }

    fn topic(name: &str) -> (Uuid, MetadataRecord) {
        let id = Uuid::new_v4();
        (id, MetadataRecord::Topic(TopicRecord { name: name.into(), id, configs: vec![("cleanup.policy".into(), "compact".into())] }))
    }

    fn partition(topic_id: Uuid, index: i32) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord { topic_id, index, replicas: vec![1, 2, 3], isr: vec![1, 2, 3], leader: 1, leader_epoch: 0, partition_epoch: 0 })
    }

    #[test]
    fn brokers_register_fenced_and_are_unfenced() {
        let mut image = MetadataImage::default();
        image.apply(broker(1)).unwrap();
        assert!(image.broker(1).unwrap().fenced);
        image.apply(MetadataRecord::UnfenceBroker { id: 1 }).unwrap();
        assert!(!image.broker(1).unwrap().fenced);
        assert!(image.apply(MetadataRecord::FenceBroker { id: 7 }).is_err());
    }

    #[test]
    fn partition_changes_bump_epochs_as_kafka_does() {
        let mut image = MetadataImage::default();
        let (id, t) = topic("orders");
        image.apply(t).unwrap();
        image.apply(partition(id, 0)).unwrap();
        // ISR shrink: partition epoch only.
        image.apply(MetadataRecord::PartitionChange(PartitionChange { topic_id: id, index: 0, leader: None, isr: Some(vec![1, 2]), replicas: None })).unwrap();
        let p = &image.topic("orders").unwrap().partitions[&0];
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone()), (1, 0, 1, vec![1, 2]));
        // New leader: both.
        image.apply(MetadataRecord::PartitionChange(PartitionChange { topic_id: id, index: 0, leader: Some(2), isr: Some(vec![2]), replicas: None })).unwrap();
        let p = &image.topic_by_id(id).unwrap().partitions[&0];
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
    }

    #[test]
    fn refused_records_leave_the_image_as_it_was() {
        let mut image = MetadataImage::default();
        let (id, t) = topic("orders");
        image.apply(t.clone()).unwrap();
        image.apply(partition(id, 0)).unwrap();
        let before = image.clone();
        assert!(image.apply(t).is_err(), "same topic twice");
        assert!(image.apply(partition(Uuid::new_v4(), 0)).is_err(), "unknown topic");
        assert!(image.apply(partition(id, 0)).is_err(), "same partition twice");
        let leader_outside_isr = PartitionChange { topic_id: id, index: 0, leader: Some(3), isr: Some(vec![1]), replicas: None };
        assert!(image.apply(MetadataRecord::PartitionChange(leader_outside_isr)).is_err());
        let empty = ProducerIdBlock { broker: 1, first: 5, size: 0 };
        assert!(image.apply(MetadataRecord::ProducerIdBlock(empty)).is_err());
        let (other, t2) = topic("payments");
        assert!(image.apply(MetadataRecord::Batch(vec![t2, partition(other, 0), partition(other, 0)])).is_err(), "a batch is applied whole or not at all");
        assert_eq!(image, before);
    }

    #[test]
    fn reassignments_stay_within_the_replicas_and_go_with_their_topic() {
        let mut image = MetadataImage::default();
        let (id, t) = topic("orders");
        image.apply(t).unwrap();
        image.apply(partition(id, 0)).unwrap();
        let record = |adding: Vec<BrokerId>, removing: Vec<BrokerId>| MetadataRecord::Reassignment(ReassignmentRecord { topic_id: id, index: 0, adding, removing });
        assert!(image.apply(record(vec![4], vec![1])).is_err(), "4 is not a replica yet");
        assert!(image.apply(record(vec![], vec![1, 2, 3])).is_err(), "nothing left");
        image.apply(record(vec![3], vec![1])).unwrap();
        assert_eq!(image.topic("orders").unwrap().reassignments[&0].target(&[2, 3, 1]), vec![2, 3]);
        image.apply(MetadataRecord::RemoveTopic { id }).unwrap();
        let (id, t) = topic("orders");
        image.apply(t).unwrap();
        image.apply(partition(id, 0)).unwrap();
        assert!(image.topic("orders").unwrap().reassignments.is_empty());
    }

    #[test]
    fn client_quotas_are_set_and_removed() {
        use crate::quota::{ClientQuotas, EntityName, QuotaEntity, QuotaKey};
        let mut image = MetadataImage::default();
        let entity = QuotaEntity { user: None, client_id: Some(EntityName::Default) };
        let record = |key, value| MetadataRecord::ClientQuota(ClientQuotaRecord { entity: entity.clone(), key, value });
        image.apply(record(QuotaKey::ProducerByteRate, Some(100.0))).unwrap();
        image.apply(record(QuotaKey::ConsumerByteRate, Some(200.0))).unwrap();
        assert_eq!(image.quota(&entity, QuotaKey::ProducerByteRate), Some(100.0));
        image.apply(record(QuotaKey::ProducerByteRate, None)).unwrap();
        image.apply(record(QuotaKey::ProducerByteRate, None)).unwrap();
        assert!(image.any_quota());
        image.apply(record(QuotaKey::ConsumerByteRate, None)).unwrap();
        assert!(!image.any_quota(), "an entity without quotas is not kept");
    }

    #[test]
    fn topics_configs_and_producer_blocks() {
        let mut image = MetadataImage::default();
        let (id, t) = topic("orders");
        image.apply(t).unwrap();
        let set = |resource, value: Option<&str>| MetadataRecord::ConfigChange(ConfigRecord { resource, name: "retention.ms".into(), value: value.map(Into::into) });
        image.apply(set(ConfigResource::Topic("orders".into()), Some("1000"))).unwrap();
        image.apply(set(ConfigResource::Broker(None), Some("5000"))).unwrap();
        assert_eq!(image.topic("orders").unwrap().configs["retention.ms"], "1000");
        assert_eq!(image.topic("orders").unwrap().configs["cleanup.policy"], "compact");
        assert_eq!(image.broker_configs(None).unwrap()["retention.ms"], "5000");
        image.apply(set(ConfigResource::Broker(None), None)).unwrap();
        assert!(image.broker_configs(None).is_none());
        image.apply(MetadataRecord::ProducerIdBlock(ProducerIdBlock { broker: 1, first: 0, size: 1000 })).unwrap();
        image.apply(MetadataRecord::ProducerIdBlock(ProducerIdBlock { broker: 2, first: 1500, size: 1000 })).unwrap();
        assert_eq!(image.next_producer_id(), 2500);
        assert!(image.apply(MetadataRecord::ProducerIdBlock(ProducerIdBlock { broker: 1, first: 2000, size: 10 })).is_err(), "backwards");
        image.apply(MetadataRecord::RemoveTopic { id }).unwrap();
        assert!(image.topic("orders").is_none() && image.topic_by_id(id).is_none());
        assert!(image.apply(set(ConfigResource::Topic("orders".into()), Some("1"))).is_err());
    }
}
