//! The metadata records: every change of cluster state is one of these, appended by the active
//! controller to the metadata log and applied in log order by every node (Kafka's
//! `__cluster_metadata` records, as typed serde values).
//!
//! They are stored and sent with bincode, which encodes an enum variant by its position: new
//! variants and new record types go at the end, and a field is never removed or reordered.

use crate::security::scram::{ScramCredential, ScramMechanism};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::quota::{QuotaEntity, QuotaKey};
use crate::security::acl::AclBinding;

/// Kafka's `node.id` of a broker.
pub type BrokerId = i32;

/// `leader` of a partition that has none (all its ISR is gone), as Kafka writes it.
pub const NO_LEADER: BrokerId = -1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)registers: it starts fenced, and is unfenced once it has caught up.
    RegisterBroker(BrokerRegistration),
    /// The broker's heartbeats stopped (or it shuts down): it leads and follows nothing.
    FenceBroker { id: BrokerId },
    UnfenceBroker { id: BrokerId },
    Topic(TopicRecord),
    /// A new partition, with its first assignment.
    Partition(PartitionRecord),
    PartitionChange(PartitionChange),
    RemoveTopic { id: Uuid },
    ConfigChange(ConfigRecord),
    ProducerIdBlock(ProducerIdBlock),
    /// Records applied together or not at all (a topic with its partitions, say).
    Batch(Vec<MetadataRecord>),
    /// A partition's reassignment starts (or is replaced), or ends with both lists empty
    /// (Kafka's adding/removing replicas of a PartitionChangeRecord).
    Reassignment(ReassignmentRecord),
    /// Sets or removes a user's SCRAM credential (Kafka's UserScramCredentialRecord and
    /// RemoveUserScramCredentialRecord).
    ScramCredential(ScramCredentialRecord),
    /// An ACL is added (Kafka's AccessControlEntryRecord).
    Acl(AclBinding),
    /// An ACL is removed (Kafka's RemoveAccessControlEntryRecord).
    RemoveAcl(AclBinding),
    /// Sets or removes one client quota (Kafka's ClientQuotaRecord).
    ClientQuota(ClientQuotaRecord),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: BrokerId,
    /// One per listener clients and replicas may use, in `listeners` order.
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    /// Only the settings given for this topic; the rest follow the broker's.
    pub configs: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub index: i32,
    /// The preferred leader first.
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// [`NO_LEADER`] when none.
    pub leader: BrokerId,
    pub leader_epoch: i32,
    /// Bumped by every change of the partition (AlterPartition requests carry the one they saw).
    pub partition_epoch: i32,
}

/// What changes for a partition; `None` keeps the current value. Applying it bumps the
/// partition epoch, and the leader epoch when the leader changes, as Kafka's controller does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionChange {
    pub topic_id: Uuid,
    pub index: i32,
    pub leader: Option<BrokerId>,
    pub isr: Option<Vec<BrokerId>>,
    pub replicas: Option<Vec<BrokerId>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// `None`: the cluster-wide default of every broker.
    Broker(Option<BrokerId>),
}

/// Sets (`Some`) or removes (`None`) one dynamic setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub resource: ConfigResource,
    pub name: String,
    pub value: Option<String>,
}

/// Producer ids `first .. first + size`, handed to `broker` for InitProducerId; blocks follow
/// each other, so no id is ever given twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    pub broker: BrokerId,
    pub first: i64,
    pub size: i64,
}

/// The replicas a reassignment adds and removes; the partition's replicas hold both meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentRecord {
    pub topic_id: Uuid,
    pub index: i32,
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
}

/// A user's SCRAM credential for one mechanism: set (`Some`) or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentialRecord {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub credential: Option<ScramCredential>,
}

/// One quota of an entity: set (`Some`) or removed (`None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientQuotaRecord {
    pub entity: QuotaEntity,
    pub key: QuotaKey,
    pub value: Option<f64>,
}
