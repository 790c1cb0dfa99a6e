//! Where a cluster's coordinators keep their state: a compacted internal topic replicated like
//! any other, as Kafka keeps groups in `__consumer_offsets` and transactions in
//! `__transaction_state`. Key `k` lives in partition `abs(hash(k)) % partitions` (Java's String
//! hash, so a group or transactional id maps where it would in Kafka), and the broker leading
//! that partition coordinates it.
//!
//! Every change a coordinator persists is a keyed record (the key a lone node uses in `meta`,
//! its value or a tombstone), appended by the leader and acknowledged once the ISR has it. A
//! broker that becomes leader replays the partition before it answers for its keys
//! (COORDINATOR_LOAD_IN_PROGRESS meanwhile); one that stops leading forgets them
//! (NOT_COORDINATOR), and their clients find the new coordinator.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use kafka_protocol::ResponseError;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::replication::{LeaderWrite, ReplicaManager};
use crate::cluster::{partition_id, Cluster, NewTopic, Topic};
use crate::log::{records, AppendError, FetchIsolation, LogStore, Meta, ReadRequest};

/// Keys and values (`None`: a tombstone) to persist, in order.
pub type Changes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// How much of the partition one read brings while loading.
const LOAD_READ_BYTES: usize = 1 << 20;

/// Where a coordinator keeps its state: a lone node's `meta` column family (nothing to
/// replicate to; it coordinates every key), or a cluster's state topic.
pub enum StateStore {
    Local(Meta),
    Replicated(Arc<StateTopic>),
}

impl StateStore {
    /// The coordinator epoch when this broker answers for `key` now (0 on a lone node), else
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS.
    pub fn check(&self, key: &str) -> Result<i32, ResponseError> {
        match self {
            StateStore::Local(_) => Ok(0),
            StateStore::Replicated(topic) => topic.check(key),
        }
    }

    /// FindCoordinator: the broker that coordinates `key`, `None` for this lone node.
    pub async fn coordinator(&self, key: &str) -> Result<Option<i32>, ResponseError> {
        match self {
            StateStore::Local(_) => Ok(None),
            StateStore::Replicated(topic) => topic.coordinator(key).await.map(Some),
        }
    }

    /// Queues `key`'s changes (stored in the order of calls) and returns the wait for them.
    pub fn write(&self, key: &str, changes: Changes) -> BoxFuture<'static, Result<(), ResponseError>> {
        match self {
            StateStore::Local(meta) => {
                let writes: Vec<(&[u8], Option<&[u8]>)> = changes.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect();
                let written = meta.write(&writes);
                let key = key.to_string();
                Box::pin(async move {
                    written.await.map_err(|e| {
                        tracing::error!(key, "cannot store a coordinator's changes: {e:#}");
                        ResponseError::KafkaStorageError
                    })
                })
            }
            StateStore::Replicated(topic) => Box::pin(topic.write(key, changes)),
        }
    }
}

/// Which topic a coordinator keeps its state in, and how it writes there.
pub struct StateTopicSpec {
    pub name: &'static str,
    pub partitions: i32,
    pub replication_factor: i16,
    /// The setting that names the replication factor, for the message when brokers are too few.
    pub replication_factor_key: &'static str,
    /// Configs the topic is created with, besides `cleanup.policy=compact`.
    pub configs: Vec<(String, Option<String>)>,
    /// How long a write may wait for the ISR.
    pub write_timeout: Duration,
    /// What a write too large for the log is answered with.
    pub too_large: ResponseError,
}

/// One coordinator's state topic as this broker holds it: the partitions it leads, and the log.
pub struct StateTopic {
    log: Arc<LogStore>,
    cluster: Arc<Cluster>,
    replicas: Arc<ReplicaManager>,
    spec: StateTopicSpec,
    owned: Mutex<HashMap<i32, Ownership>>,
}

/// This broker's hold on a partition it leads.
enum Ownership {
    /// Replaying the partition, at this leader epoch.
    Loading(i32),
    /// Serving its keys; changes go through `writes`, appended in the order they are sent.
    Loaded { epoch: i32, writes: mpsc::UnboundedSender<Write> },
}

struct Write {
    changes: Changes,
    done: oneshot::Sender<Result<(), ResponseError>>,
}

/// Kafka's `Utils.abs(key.hashCode) % partitions`.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let hash = key.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

impl StateTopic {
    pub fn new(spec: StateTopicSpec, log: Arc<LogStore>, cluster: Arc<Cluster>, replicas: Arc<ReplicaManager>) -> StateTopic {
        StateTopic { log, cluster, replicas, spec, owned: Mutex::new(HashMap::new()) }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    fn topic(&self) -> Option<Arc<Topic>> {
        self.cluster.topic(self.spec.name)
    }

    /// A failed append as the coordinator answers it (Kafka's GroupMetadataManager and
    /// TransactionStateManager mapping).
    fn coordinator_error(&self, e: ResponseError) -> ResponseError {
        use ResponseError::*;
        match e {
            UnknownTopicOrPartition | NotEnoughReplicas | NotEnoughReplicasAfterAppend | RequestTimedOut => CoordinatorNotAvailable,
            NotLeaderOrFollower | KafkaStorageError => NotCoordinator,
            MessageTooLarge | RecordListTooLarge | InvalidFetchSize => self.spec.too_large,
            other => other,
        }
    }

    /// The partition of a key (in the topic as it will be created, before it is).
    pub fn partition_of(&self, key: &str) -> i32 {
        partition_for(key, self.topic().map_or(self.spec.partitions, |t| t.partitions.len() as i32))
    }

    /// Whether this broker answers for the key now; the leader epoch it holds the key's
    /// partition at if so (a transaction coordinator's epoch).
    pub fn check(&self, key: &str) -> Result<i32, ResponseError> {
        self.check_partition(self.partition_of(key))
    }

    /// Whether this broker serves a partition's keys now (a marker for them, say).
    pub fn check_partition(&self, index: i32) -> Result<i32, ResponseError> {
        match self.owned.lock().expect("owned lock").get(&index) {
            Some(Ownership::Loaded { epoch, .. }) => Ok(*epoch),
            Some(Ownership::Loading(_)) => Err(ResponseError::CoordinatorLoadInProgress),
            None => Err(ResponseError::NotCoordinator),
        }
    }

    /// FindCoordinator: the broker leading the key's partition. The topic is created the first
    /// time it is asked for, as Kafka does.
    pub async fn coordinator(&self, key: &str) -> Result<i32, ResponseError> {
        let name = self.spec.name;
        let topic = match self.topic() {
            Some(topic) => topic,
            None => {
                let mut configs = vec![("cleanup.policy".into(), Some("compact".into()))];
                configs.extend(self.spec.configs.iter().cloned());
                let new = NewTopic { name: name.to_string(), num_partitions: self.spec.partitions, replication_factor: self.spec.replication_factor, assignments: None, configs };
                self.cluster.topic_or_create_as(&new).await.map_err(|(e, message)| {
                    tracing::warn!("cannot create {name}: {message} ({e:?}); its coordinators wait for it ({} is {})", self.spec.replication_factor_key, self.spec.replication_factor);
                    ResponseError::CoordinatorNotAvailable
                })?
            }
        };
        let index = partition_for(key, topic.partitions.len() as i32);
        let image = self.cluster.image();
        let leader = image.topic(name).and_then(|t| t.partitions.get(&index)).map_or(-1, |p| p.leader);
        if leader < 0 {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        Ok(leader)
    }

    /// Queues a key's changes; they are appended in the order queued (callers queue under the
    /// key's lock) and the future ends once the ISR has them.
    pub fn write(&self, key: &str, changes: Changes) -> impl Future<Output = Result<(), ResponseError>> + Send + 'static {
        self.write_partition(self.partition_of(key), changes)
    }

    /// [`Self::write`] to a partition by its index.
    pub fn write_partition(&self, index: i32, changes: Changes) -> impl Future<Output = Result<(), ResponseError>> + Send + 'static {
        let queued = self.queue(index, changes);
        async move { queued?.await.unwrap_or(Err(ResponseError::NotCoordinator)) }
    }

    /// The topics that exist (offsets of others are dropped at load).
    pub fn topic_names(&self) -> std::collections::HashSet<String> {
        self.cluster.topics().iter().map(|t| t.name.clone()).collect()
    }

    fn queue(&self, index: i32, changes: Changes) -> Result<oneshot::Receiver<Result<(), ResponseError>>, ResponseError> {
        let owned = self.owned.lock().expect("owned lock");
        let writes = match owned.get(&index) {
            Some(Ownership::Loaded { writes, .. }) => writes,
            Some(Ownership::Loading(_)) => return Err(ResponseError::CoordinatorLoadInProgress),
            None => return Err(ResponseError::NotCoordinator),
        };
        let (done, rx) = oneshot::channel();
        writes.send(Write { changes, done }).map_err(|_| ResponseError::NotCoordinator)?;
        Ok(rx)
    }

    /// Given the partitions this broker leads now (index, leader epoch): the ones to load, each
    /// marked as loading, and the ones to forget, no longer held.
    pub fn follow(&self, led: &[(i32, i32)]) -> (Vec<(i32, i32)>, Vec<i32>) {
        let mut owned = self.owned.lock().expect("owned lock");
        let held_epoch = |o: &Ownership| match o {
            Ownership::Loading(epoch) | Ownership::Loaded { epoch, .. } => *epoch,
        };
        let led: HashMap<i32, i32> = led.iter().copied().collect();
        // A partition led again at another epoch may have changed meanwhile: it is reloaded.
        let forget: Vec<i32> = owned.iter().filter(|(index, o)| led.get(index) != Some(&held_epoch(o))).map(|(&index, _)| index).collect();
        for index in &forget {
            owned.remove(index);
        }
        let load: Vec<(i32, i32)> = led.into_iter().filter(|(index, _)| !owned.contains_key(index)).collect();
        for &(index, epoch) in &load {
            owned.insert(index, Ownership::Loading(epoch));
        }
        (load, forget)
    }

    /// Whether the partition is still being loaded at `epoch` (not lost meanwhile).
    pub fn loading(&self, index: i32, epoch: i32) -> bool {
        matches!(self.owned.lock().expect("owned lock").get(&index), Some(Ownership::Loading(e)) if *e == epoch)
    }

    /// Every key's latest value in the partition, from its start to its log end.
    pub async fn read(&self, index: i32) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ResponseError> {
        let id = partition_id(self.topic().as_deref(), index)?;
        let (mut offset, _) = self.log.offsets(id)?;
        let end = self.log.log_end_offset(id)?;
        let mut entries = BTreeMap::new();
        while offset < end {
            let request = ReadRequest { id, offset, max_bytes: LOAD_READ_BYTES, isolation: FetchIsolation::LogEnd };
            let read = self.log.read(&[request], LOAD_READ_BYTES).await.remove(0)?;
            let next = records::keyed_records(&read.records, |key, value| match value {
                Some(value) => {
                    entries.insert(key.to_vec(), value.to_vec());
                }
                None => {
                    entries.remove(key);
                }
            })?;
            let Some(next) = next else { break };
            offset = next;
        }
        Ok(entries)
    }

    /// Marks a loaded partition as serving and starts its writer, unless it was lost meanwhile.
    pub fn loaded(self: &Arc<Self>, index: i32, epoch: i32) -> bool {
        let mut owned = self.owned.lock().expect("owned lock");
        if !matches!(owned.get(&index), Some(Ownership::Loading(e)) if *e == epoch) {
            return false;
        }
        let (writes, queued) = mpsc::unbounded_channel();
        owned.insert(index, Ownership::Loaded { epoch, writes });
        tokio::spawn(self.clone().run_writer(index, epoch, queued));
        true
    }

    /// Appends a partition's queued changes in order, all those waiting in one batch, until the
    /// partition is forgotten (its sender dropped).
    async fn run_writer(self: Arc<Self>, index: i32, epoch: i32, mut queued: mpsc::UnboundedReceiver<Write>) {
        while let Some(first) = queued.recv().await {
            let mut writes = vec![first];
            while let Ok(more) = queued.try_recv() {
                writes.push(more);
            }
            let changes: Changes = writes.iter_mut().flat_map(|w| std::mem::take(&mut w.changes)).collect();
            let result = self.append(index, epoch, &changes).await.map_err(|e| self.coordinator_error(e));
            if let Err(e) = &result {
                tracing::warn!(partition = index, "writing coordinator changes to {}: {e:?}", self.spec.name);
            }
            for w in writes {
                let _ = w.done.send(result);
            }
        }
    }

    /// One batch on the leader at `epoch`, acknowledged by the ISR (acks=all).
    async fn append(&self, index: i32, epoch: i32, changes: &Changes) -> Result<(), ResponseError> {
        let topic = self.topic().ok_or(ResponseError::UnknownTopicOrPartition)?;
        let id = partition_id(Some(&topic), index)?;
        let how = LeaderWrite { epoch: Some(epoch), acks_all: true, deadline: tokio::time::Instant::now() + self.spec.write_timeout };
        let batch = records::keyed_batch(changes, crate::api::now_ms());
        self.replicas
            .append_as_leader(&topic, id, how, |opts| async move {
                let appended = self.log.append(id, &batch, opts).await.map_err(|e| match e {
                    AppendError::Refused(e) => e,
                    AppendError::MissingKeys(_) => ResponseError::InvalidRecord,
                })?;
                Ok(((), appended.end_offset))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_the_partitions_kafka_gives_them() {
        // String.hashCode in Java: -1906497762, 158455506 and Integer.MIN_VALUE (abs gives 0).
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("console-consumer-12345", 50), 6);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
        assert!((0..1000).all(|i| (0..7).contains(&partition_for(&format!("group-{i}"), 7))));
    }
}
