//! The transaction coordinator (Kafka's TransactionCoordinator): producer ids and epochs per
//! transactional id, the partitions and groups of each open transaction, and the COMMIT/ABORT
//! markers that end it.
//!
//! State lives in memory, one entry per transactional id, and every change is queued to the
//! store under the same lock, so the stored order is the order of changes; a request is
//! answered once its change is stored. The store is a lone node's `meta` column family (keys
//! `x/<transactional id>`), or in a cluster the replicated `__transaction_state` topic (the same
//! keys), where this broker coordinates the ids of the partitions it leads, at their leader
//! epoch as coordinator epoch. A transaction found in PrepareCommit or PrepareAbort at start-up,
//! or when a broker takes over its partition, has its markers written then: the partition
//! store writes a marker only where the producer still has a transaction open, so markers are
//! written exactly once however often a crash repeats the step. Markers for partitions other
//! brokers lead go to them as WriteTxnMarkers. The offsets a transaction commits wait in their
//! group (TxnOffsetCommit) until the marker reaches it.

mod brokers;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use futures_util::future::{join_all, BoxFuture};
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::replication::{LeaderWrite, ReplicaManager};
use crate::cluster::state_topic::{StateStore, StateTopic, StateTopicSpec};
use crate::cluster::{now_ms, partition_id, Cluster, Topic};
use crate::config::Config;
use crate::group::{Committed, GroupCoordinator, TopicPartition, OFFSETS_TOPIC};
use crate::log::{LogStore, Marker, PartitionId};
use brokers::Brokers;
use state::{LegacyOffsets, PendingOffset, TxnMeta, TxnState};

const TXN_PREFIX: &[u8] = b"x/";

/// Where a cluster keeps transactions, as Kafka does.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

/// How a cluster's transaction coordinators keep `__transaction_state`. Its
/// `min.insync.replicas` is at most its replication factor, so a smaller cluster set up with
/// one replica can still write.
pub fn transaction_state_topic(config: &Config) -> StateTopicSpec {
    let min_isr = config.transaction_state_log_min_isr.min(i32::from(config.transaction_state_log_replication_factor));
    StateTopicSpec {
        name: TXN_STATE_TOPIC,
        partitions: config.transaction_state_log_num_partitions,
        replication_factor: config.transaction_state_log_replication_factor,
        replication_factor_key: "transaction.state.log.replication.factor",
        configs: vec![("min.insync.replicas".into(), Some(min_isr.to_string()))],
        write_timeout: STATE_WRITE_TIMEOUT,
        too_large: ResponseError::UnknownServerError,
    }
}

/// How long a state change may wait for the ISR of its `__transaction_state` partition
/// (Kafka's coordinator waits its request timeout).
const STATE_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed marker write is tried again after this long.
const MARKER_RETRY: Duration = Duration::from_millis(200);
/// How long a marker may wait for its partition's ISR before it is written again.
const MARKER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TxnOffsetCommit waits for the transaction's coordinator to answer while it fails over.
const OFFSET_COMMIT_VERIFY_PATIENCE: Duration = Duration::from_secs(5);

fn txn_key(id: &str) -> Vec<u8> {
    [TXN_PREFIX, id.as_bytes()].concat()
}

/// Offsets committed in a transaction as the group holds them.
pub fn held_offsets(offsets: TxnOffsets) -> Vec<(TopicPartition, Committed)> {
    let now = now_ms();
    offsets
        .into_iter()
        .map(|(topic, partition, offset, leader_epoch, metadata)| ((topic, partition), Committed { offset, leader_epoch, metadata, commit_timestamp_ms: now, expire_timestamp_ms: None }))
        .collect()
}

/// Offsets a format 1 state held, as the group holds them.
fn legacy_held_offsets(pending: Vec<PendingOffset>) -> Vec<(TopicPartition, Committed)> {
    held_offsets(pending.into_iter().map(|p| (p.topic, p.partition, p.offset, p.leader_epoch, p.metadata)).collect())
}

/// The coordinator's settings, from the broker configuration.
#[derive(Debug, Clone, Copy)]
pub struct TxnConfig {
    pub max_timeout_ms: i64,
    pub id_expiration_ms: i64,
    pub abort_interval_ms: u64,
    pub expiry_interval_ms: u64,
    /// `transaction.partition.verification.enable`.
    pub verify_partitions: bool,
}

impl TxnConfig {
    pub fn new(config: &Config) -> TxnConfig {
        TxnConfig {
            max_timeout_ms: config.transaction_max_timeout_ms,
            id_expiration_ms: config.transactional_id_expiration_ms,
            abort_interval_ms: config.transaction_abort_interval_ms,
            expiry_interval_ms: config.transaction_expiry_interval_ms,
            verify_partitions: config.transaction_partition_verification,
        }
    }
}

#[derive(Default)]
struct Txns {
    by_id: HashMap<String, TxnMeta>,
    /// Current producer id -> transactional id, for Produce's check.
    by_pid: HashMap<i64, String>,
}

impl Txns {
    fn insert(&mut self, id: &str, meta: TxnMeta) {
        if let Some(old) = self.by_id.get(id) {
            self.by_pid.remove(&old.producer_id);
        }
        self.by_pid.insert(meta.producer_id, id.to_string());
        self.by_id.insert(id.to_string(), meta);
    }
}

/// InitProducerId's answer: (producer id, epoch).
pub type ProducerIdAndEpoch = (i64, i16);

/// One group's offsets in a TxnOffsetCommit: (topic, partition, offset, leader epoch, metadata).
pub type TxnOffsets = Vec<(String, i32, i64, i32, Option<String>)>;

/// A format 1 state's offsets: (transactional id, producer, offsets by group).
type HeldByFormat1 = (String, ProducerIdAndEpoch, LegacyOffsets);

pub struct TxnCoordinator {
    store: StateStore,
    log: Arc<LogStore>,
    cluster: Arc<Cluster>,
    replicas: Arc<ReplicaManager>,
    groups: Arc<GroupCoordinator>,
    config: TxnConfig,
    txns: Mutex<Txns>,
    /// Held (shared) by a transactional batch from its check until it is written, and
    /// (exclusively) by each move to PrepareCommit/PrepareAbort: a batch that passed its check
    /// is written before the transaction can end, so no batch lands after its marker.
    appends: tokio::sync::RwLock<()>,
    /// Marker tasks in flight, by transactional id: an EndTxn waits for its own.
    ending: Mutex<HashMap<String, watch::Receiver<bool>>>,
    brokers: Brokers,
    /// Offsets format 1 states held (a data directory of an older build), for their groups.
    legacy_offsets: Mutex<Vec<HeldByFormat1>>,
    shutdown: watch::Receiver<bool>,
}

impl TxnCoordinator {
    /// Opens the coordinator on its store; a lone node reads its stored states (start-up: on
    /// the calling thread). In a cluster, ids load as this broker comes to lead their partitions.
    pub fn open(
        store: StateStore,
        log: Arc<LogStore>,
        cluster: Arc<Cluster>,
        replicas: Arc<ReplicaManager>,
        groups: Arc<GroupCoordinator>,
        config: TxnConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<TxnCoordinator> {
        let mut txns = Txns::default();
        let mut legacy_offsets = Vec::new();
        if let StateStore::Local(meta) = &store {
            for (key, value) in meta.scan(TXN_PREFIX)? {
                let id = String::from_utf8_lossy(&key[TXN_PREFIX.len()..]).into_owned();
                match TxnMeta::decode_with_offsets(&value) {
                    Some((m, held)) => {
                        if !held.is_empty() {
                            legacy_offsets.push((id.clone(), (m.producer_id, m.producer_epoch), held));
                        }
                        txns.insert(&id, m)
                    }
                    None => tracing::warn!(transactional_id = id, "unreadable transaction state skipped"),
                }
            }
        }
        let brokers = Brokers::new(cluster.clone());
        Ok(TxnCoordinator {
            store,
            log,
            cluster,
            replicas,
            groups,
            config,
            txns: Mutex::new(txns),
            appends: tokio::sync::RwLock::new(()),
            ending: Mutex::new(HashMap::new()),
            brokers,
            legacy_offsets: Mutex::new(legacy_offsets),
            shutdown,
        })
    }

    /// Queues the stored form of `id`'s state (or its removal) now; the future says whether
    /// it was stored. Called under the `txns` lock, so writes are stored in the order made.
    fn persist(&self, id: &str, meta: Option<&TxnMeta>) -> BoxFuture<'static, Result<(), ResponseError>> {
        self.store.write(id, vec![(txn_key(id), meta.map(TxnMeta::encode))])
    }

    /// FindCoordinator for a transactional id: the broker that coordinates it, `None` for this
    /// lone node.
    pub async fn coordinator(&self, id: &str) -> Result<Option<i32>, ResponseError> {
        self.store.coordinator(id).await
    }

    /// Follows the `__transaction_state` partitions this broker leads (index, leader epoch), as
    /// the metadata publisher sees them: loads the ids of new ones in the background (and
    /// finishes their prepared transactions), and forgets those of partitions it no longer leads.
    pub fn follow_partitions(self: &Arc<Self>, led: &[(i32, i32)]) {
        let StateStore::Replicated(topic) = &self.store else { return };
        let (load, forget) = topic.follow(led);
        for index in forget {
            let mut txns = self.txns.lock().expect("txns lock");
            let gone: Vec<String> = txns.by_id.keys().filter(|id| topic.partition_of(id) == index).cloned().collect();
            for id in &gone {
                if let Some(m) = txns.by_id.remove(id) {
                    txns.by_pid.remove(&m.producer_id);
                }
            }
            tracing::info!(partition = index, transactional_ids = gone.len(), "no longer coordinating the transactions of {TXN_STATE_TOPIC}-{index}");
        }
        for (index, epoch) in load {
            tokio::spawn(self.clone().load_partition(topic.clone(), index, epoch));
        }
    }

    /// Replays a partition this broker now leads and takes its ids; retried while the
    /// partition is still this broker's to load.
    async fn load_partition(self: Arc<Self>, topic: Arc<StateTopic>, index: i32, epoch: i32) {
        let entries = loop {
            if !topic.loading(index, epoch) {
                return;
            }
            match topic.read(index).await {
                Ok(entries) => break entries,
                Err(e) => {
                    tracing::warn!(partition = index, "loading {TXN_STATE_TOPIC}-{index}: {e:?}; retrying");
                    if !self.pause().await {
                        return;
                    }
                }
            }
        };
        let loaded: Vec<(String, TxnMeta)> = entries
            .into_iter()
            .filter_map(|(key, value)| {
                let id = String::from_utf8_lossy(key.strip_prefix(TXN_PREFIX)?).into_owned();
                let meta = TxnMeta::decode(&value);
                if meta.is_none() {
                    tracing::warn!(transactional_id = id, "unreadable transaction state skipped");
                }
                Some((id, meta?))
            })
            .collect();
        let prepared: Vec<String> = loaded.iter().filter(|(_, m)| m.state.is_preparing()).map(|(id, _)| id.clone()).collect();
        let count = loaded.len();
        {
            // Under the txns lock: no request finds the partition served before its ids are in.
            let mut txns = self.txns.lock().expect("txns lock");
            if !topic.loaded(index, epoch) {
                return;
            }
            for (id, meta) in loaded {
                txns.insert(&id, meta);
            }
        }
        tracing::info!(partition = index, epoch, transactional_ids = count, "coordinating the transactions of {TXN_STATE_TOPIC}-{index}");
        for id in prepared {
            tracing::info!(transactional_id = id, "completing a transaction the previous coordinator prepared");
            self.end(&id);
        }
    }

    /// InitProducerId with a transactional id (Kafka's handleInitProducerId): a new producer
    /// id at epoch 0 for a new id; otherwise the epoch is bumped, fencing the previous
    /// producer, and an open transaction of that producer is aborted first (answered with
    /// CONCURRENT_TRANSACTIONS until its markers are written; the client retries). A producer
    /// that names its id and epoch (KIP-360) must name the current or the previous ones.
    pub async fn init_producer_id(self: &Arc<Self>, id: &str, timeout_ms: i32, named: Option<ProducerIdAndEpoch>) -> Result<ProducerIdAndEpoch, ResponseError> {
        self.store.check(id)?;
        if timeout_ms <= 0 || i64::from(timeout_ms) > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        // Allocated before the lock (it is async); unused when the id keeps its producer id.
        let exhausted = self.txns.lock().expect("txns lock").by_id.get(id).is_none_or(|m| m.epoch_exhausted());
        let fresh_pid = if exhausted { Some(self.new_producer_id().await?) } else { None };
        let gate = self.appends.write().await;
        let now = now_ms();
        let (answer, written, abort) = {
            let mut txns = self.txns.lock().expect("txns lock");
            let mut meta = match txns.by_id.get(id) {
                None => {
                    let pid = fresh_pid.ok_or(ResponseError::ConcurrentTransactions)?;
                    TxnMeta::new(pid, timeout_ms, now)
                }
                Some(m) => m.clone(),
            };
            let is_new = !txns.by_id.contains_key(id);
            if !is_new {
                if meta.state.is_preparing() {
                    return Err(ResponseError::ConcurrentTransactions);
                }
                if let Some((pid, epoch)) = named {
                    let current = pid == meta.producer_id && epoch == meta.producer_epoch;
                    let previous = pid == meta.last_producer_id && epoch == meta.last_producer_epoch;
                    if previous && meta.state != TxnState::Ongoing {
                        // A retry whose answer was lost: the same answer again.
                        return Ok((meta.producer_id, meta.producer_epoch));
                    }
                    if !current && !previous {
                        return Err(ResponseError::ProducerFenced);
                    }
                }
                let abort = meta.state == TxnState::Ongoing;
                // The abort keeps the producer id: its markers must name the one that wrote.
                if meta.epoch_exhausted() && !abort {
                    meta.rotate_producer_id(fresh_pid.ok_or(ResponseError::ConcurrentTransactions)?);
                } else {
                    meta.bump_epoch();
                }
                meta.last_update_ms = now;
                if abort {
                    // The zombie is fenced by the bump; its transaction ends with the new epoch.
                    meta.state = TxnState::PrepareAbort;
                } else {
                    meta.state = TxnState::Empty;
                    meta.timeout_ms = timeout_ms;
                }
                let written = self.persist(id, Some(&meta));
                let answer = (meta.producer_id, meta.producer_epoch);
                txns.insert(id, meta);
                (answer, written, abort)
            } else {
                let written = self.persist(id, Some(&meta));
                let answer = (meta.producer_id, meta.producer_epoch);
                txns.insert(id, meta);
                (answer, written, false)
            }
        };
        drop(gate);
        written.await?;
        if abort {
            tracing::info!(transactional_id = id, "InitProducerId fenced a producer with a transaction open; aborting it");
            self.end(id);
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(answer)
    }

    async fn new_producer_id(&self) -> Result<i64, ResponseError> {
        self.cluster.next_producer_id().await.map_err(|(e, message)| {
            tracing::warn!("cannot allocate a producer id: {message}");
            e
        })
    }

    /// Runs `change` on the state of `id` after checking the producer, and stores the result.
    async fn update(&self, id: &str, producer: ProducerIdAndEpoch, change: impl FnOnce(&mut TxnMeta) -> Result<(), ResponseError>) -> Result<(), ResponseError> {
        self.update_checked(id, |m| m.check_producer(producer.0, producer.1), change).await
    }

    /// Runs `change` on the state of `id` once `check` passes, and stores the result.
    async fn update_checked(
        &self,
        id: &str,
        check: impl FnOnce(&TxnMeta) -> Result<(), ResponseError>,
        change: impl FnOnce(&mut TxnMeta) -> Result<(), ResponseError>,
    ) -> Result<(), ResponseError> {
        self.store.check(id)?;
        let written = {
            let mut txns = self.txns.lock().expect("txns lock");
            let meta = txns.by_id.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
            check(meta)?;
            let mut next = meta.clone();
            change(&mut next)?;
            if next == *meta {
                None
            } else {
                let written = self.persist(id, Some(&next));
                txns.insert(id, next);
                Some(written)
            }
        };
        match written {
            Some(written) => written.await,
            None => Ok(()),
        }
    }

    /// AddPartitionsToTxn: the partitions join the transaction, which opens if it was not.
    /// Unknown partitions fail the whole request, as in Kafka.
    pub async fn add_partitions(&self, id: &str, producer: ProducerIdAndEpoch, partitions: &[(String, i32)]) -> Result<(), ResponseError> {
        if partitions.iter().any(|(topic, index)| partition_id(self.cluster.topic(topic).as_deref(), *index).is_err()) {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        let now = now_ms();
        self.update(id, producer, |m| {
            m.check_can_add()?;
            m.begin(now);
            m.partitions.extend(partitions.iter().cloned());
            Ok(())
        })
        .await
    }

    /// AddOffsetsToTxn: the group's offsets will be committed with the transaction; in a
    /// cluster its `__consumer_offsets` partition joins the transaction, as in Kafka, so the
    /// marker there completes them.
    pub async fn add_offsets(&self, id: &str, producer: ProducerIdAndEpoch, group: &str) -> Result<(), ResponseError> {
        crate::group::check_group_id(group, false)?;
        let now = now_ms();
        let offsets_partition = self.groups.offsets_partition(group);
        self.update(id, producer, |m| {
            m.check_can_add()?;
            m.begin(now);
            m.groups.insert(group.to_string());
            if let Some(index) = offsets_partition {
                m.partitions.insert((OFFSETS_TOPIC.to_string(), index));
            }
            Ok(())
        })
        .await
    }

    /// TxnOffsetCommit's check (KIP-890 part 1, as for a transactional batch): the producer
    /// is current and its open transaction has the group (AddOffsetsToTxn). Where another
    /// broker coordinates the transaction, it is asked whether the transaction holds the
    /// group's `__consumer_offsets` partition, again for a few seconds while it answers "ask
    /// again" (a coordinator failing over): some clients' retries of this request can hang
    /// (librdkafka#5456), so they are spared the common case. Past that it is
    /// COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
    ///
    /// With `add` (TxnOffsetCommit v5, transactions v2) the group joins the transaction here
    /// instead, as AddOffsetsToTxn would have.
    pub async fn verify_offset_commit(&self, id: &str, producer: ProducerIdAndEpoch, group: &str, add: bool) -> Result<(), ResponseError> {
        let index = match self.groups.offsets_partition(group) {
            Some(index) if self.store.check(id).is_err() => index,
            _ => {
                if add {
                    self.add_offsets(id, producer, group).await?;
                }
                return self.check_offset_commit(id, producer, group);
            }
        };
        let patience = tokio::time::Instant::now() + OFFSET_COMMIT_VERIFY_PATIENCE;
        loop {
            let asked = async { self.brokers.verify(self.coordinator_broker(id)?, id, producer, (OFFSETS_TOPIC, index), add).await };
            match asked.await {
                Err(ResponseError::NotEnoughReplicas) if tokio::time::Instant::now() < patience => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(ResponseError::NotEnoughReplicas) => return Err(ResponseError::CoordinatorLoadInProgress),
                other => return other,
            }
        }
    }

    fn check_offset_commit(&self, id: &str, producer: ProducerIdAndEpoch, group: &str) -> Result<(), ResponseError> {
        let txns = self.txns.lock().expect("txns lock");
        let meta = txns.by_id.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        meta.check_producer(producer.0, producer.1)?;
        if meta.state != TxnState::Ongoing {
            return Err(if meta.state.is_preparing() { ResponseError::ConcurrentTransactions } else { ResponseError::InvalidTxnState });
        }
        if !meta.groups.contains(group) {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }

    /// The broker leading the `__transaction_state` partition of `id` (its coordinator), as
    /// this broker's metadata has it; NOT_ENOUGH_REPLICAS ("ask again") while there is none.
    fn coordinator_broker(&self, id: &str) -> Result<i32, ResponseError> {
        let StateStore::Replicated(state) = &self.store else { unreachable!("a lone node coordinates every transaction") };
        let image = self.cluster.image();
        let leader = image.topic(TXN_STATE_TOPIC).and_then(|t| t.partitions.get(&state.partition_of(id))).map_or(-1, |p| p.leader);
        if leader < 0 {
            return Err(ResponseError::NotEnoughReplicas);
        }
        Ok(leader)
    }

    /// A transactional id's state (DescribeTransactions); `Ok(None)` for an id this
    /// coordinator does not know.
    pub fn describe(&self, id: &str) -> Result<Option<TxnMeta>, ResponseError> {
        self.store.check(id)?;
        Ok(self.txns.lock().expect("txns lock").by_id.get(id).cloned())
    }

    /// Every transactional id with its state (ListTransactions), in id order.
    pub fn list(&self) -> Vec<(String, TxnMeta)> {
        let mut all: Vec<(String, TxnMeta)> = self.txns.lock().expect("txns lock").by_id.iter().map(|(id, m)| (id.clone(), m.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// EndTxn: writes the markers and, for a commit, stores the offsets; answers once done.
    /// A retry of an end already done succeeds; one still being written waits for it. In
    /// transactions v2 (`v2`) the end bumps the epoch (KIP-890 part 2); the answer is the
    /// producer id and epoch for the next transaction.
    pub async fn end_txn(self: &Arc<Self>, id: &str, producer: ProducerIdAndEpoch, commit: bool, v2: bool) -> Result<ProducerIdAndEpoch, ResponseError> {
        let now = now_ms();
        let mut markers = false;
        let gate = self.appends.write().await;
        let result = if v2 {
            let same_id = |m: &TxnMeta| if m.producer_id == producer.0 { Ok(()) } else { Err(ResponseError::InvalidProducerIdMapping) };
            self.update_checked(id, same_id, |m| {
                markers = m.prepare_end_v2(producer.1, commit, now)?;
                Ok(())
            })
            .await
        } else {
            self.update(id, producer, |m| {
                markers = m.prepare_end(commit, now)?;
                Ok(())
            })
            .await
        };
        drop(gate);
        let result = match result {
            Err(ResponseError::ConcurrentTransactions) => {
                // The same end in progress (a retry): wait for it rather than send the client away.
                let pending = self.ending.lock().expect("ending lock").get(id).cloned();
                match pending {
                    Some(mut done) => {
                        let _ = done.wait_for(|d| *d).await;
                        Ok(())
                    }
                    None => result,
                }
            }
            other => other,
        };
        result?;
        if markers {
            let mut done = self.end(id);
            let _ = done.wait_for(|d| *d).await;
        }
        if v2 {
            self.producer_after_end(id).await
        } else {
            Ok(producer)
        }
    }

    /// The producer id and epoch a transactions v2 end hands on. An epoch at its largest moves
    /// to a new producer id now, as an InitProducerId would.
    async fn producer_after_end(&self, id: &str) -> Result<ProducerIdAndEpoch, ResponseError> {
        let exhausted = self.txns.lock().expect("txns lock").by_id.get(id).is_some_and(TxnMeta::ended_at_last_epoch);
        if exhausted {
            let fresh = self.new_producer_id().await?;
            self.update_checked(id, |_| Ok(()), |m| {
                if m.ended_at_last_epoch() {
                    m.rotate_producer_id(fresh);
                }
                Ok(())
            })
            .await?;
        }
        let txns = self.txns.lock().expect("txns lock");
        let m = txns.by_id.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        Ok((m.producer_id, m.producer_epoch))
    }

    /// Writes the markers of `id`'s prepared transaction in a task of its own (so a client
    /// that goes away cannot stop it half way), stores the committed offsets, then marks it
    /// complete. The receiver turns true when that is done.
    fn end(self: &Arc<Self>, id: &str) -> watch::Receiver<bool> {
        let mut ending = self.ending.lock().expect("ending lock");
        if let Some(done) = ending.get(id) {
            return done.clone();
        }
        let (tx, rx) = watch::channel(false);
        ending.insert(id.to_string(), rx.clone());
        drop(ending);
        let coordinator = self.clone();
        let id = id.to_string();
        let _task: JoinHandle<()> = tokio::spawn(async move {
            let finished = coordinator.write_markers(&id).await;
            coordinator.ending.lock().expect("ending lock").remove(&id);
            if finished {
                let _ = tx.send(true);
            }
        });
        rx
    }

    /// The markers of a prepared transaction (and, on a lone node, its groups' offsets), then
    /// its completion. Retries until done; false when the broker shuts down first, or stops
    /// coordinating the id (the restart, or the next coordinator, finishes the job).
    async fn write_markers(&self, id: &str) -> bool {
        let Ok(coordinator_epoch) = self.store.check(id) else { return false };
        let Some(meta) = self.txns.lock().expect("txns lock").by_id.get(id).cloned() else { return true };
        let commit = match meta.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => return true,
        };
        let marker = Marker { producer_id: meta.producer_id, producer_epoch: meta.producer_epoch, coordinator_epoch, commit };
        let mut pending: Vec<(String, i32)> = meta.partitions.iter().cloned().collect();
        loop {
            pending = self.write_markers_once(id, &marker, pending).await;
            if pending.is_empty() {
                break;
            }
            if !self.pause().await || self.store.check(id) != Ok(coordinator_epoch) {
                return false;
            }
        }
        if let StateStore::Local(_) = self.store {
            for group in &meta.groups {
                while let Err(e) = self.groups.complete_txn(group, (marker.producer_id, marker.producer_epoch), commit).await {
                    tracing::warn!(transactional_id = id, group, "completing a transaction's offsets failed ({e:?}); retrying");
                    if !self.pause().await {
                        return false;
                    }
                }
            }
        }
        loop {
            let written = {
                let mut txns = self.txns.lock().expect("txns lock");
                let Some(m) = txns.by_id.get_mut(id) else { return false };
                m.complete(now_ms());
                let m = m.clone();
                self.persist(id, Some(&m))
            };
            if written.await.is_ok() {
                tracing::debug!(transactional_id = id, commit, "transaction complete");
                return true;
            }
            if !self.pause().await || self.store.check(id) != Ok(coordinator_epoch) {
                return false;
            }
        }
    }

    /// One round of a transaction's markers: each partition's leader gets it, this broker
    /// through its own append path, the others by WriteTxnMarkers, all at once. Returns the
    /// partitions to try again.
    async fn write_markers_once(&self, id: &str, marker: &Marker, partitions: Vec<(String, i32)>) -> Vec<(String, i32)> {
        let me = self.cluster.node().id;
        let image = self.cluster.image();
        let mut local = Vec::new();
        let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let mut retry = Vec::new();
        for (topic, index) in partitions {
            // A deleted topic needs no marker.
            if self.cluster.topic(&topic).and_then(|t| t.partition(index)).is_none() {
                continue;
            }
            let leader = match &self.store {
                StateStore::Local(_) => me,
                StateStore::Replicated(_) => image.topic(&topic).and_then(|t| t.partitions.get(&index)).map_or(-1, |p| p.leader),
            };
            match leader {
                l if l == me => local.push((topic, index)),
                l if l < 0 => retry.push((topic, index)),
                l => remote.entry(l).or_default().push((topic, index)),
            }
        }
        let here = join_all(local.iter().map(|(topic, index)| async move {
            let Some(t) = self.cluster.topic(topic) else { return Ok(()) };
            let partition = partition_id(Some(&t), *index)?;
            self.write_marker(&t, partition, *index, marker).await
        }));
        let there = join_all(remote.iter().map(|(&broker, partitions)| self.brokers.send_markers(broker, marker, partitions)));
        let (here, there) = tokio::join!(here, there);
        let results = local.into_iter().zip(here).chain(remote.into_values().flatten().zip(there.into_iter().flatten()));
        for ((topic, index), result) in results {
            match result {
                Ok(()) => {}
                // A newer producer or coordinator epoch wrote there: this marker is moot, as
                // Kafka's coordinator drops it.
                Err(e @ (ResponseError::InvalidProducerEpoch | ResponseError::TransactionCoordinatorFenced)) => {
                    tracing::warn!(transactional_id = id, topic, partition = index, "transaction marker refused ({e:?}); not retried");
                }
                Err(e) => {
                    tracing::debug!(transactional_id = id, topic, partition = index, "writing a transaction marker failed ({e:?}); retrying");
                    retry.push((topic, index));
                }
            }
        }
        retry
    }

    /// Waits before a retry; false when the broker is shutting down.
    async fn pause(&self) -> bool {
        let mut shutdown = self.shutdown.clone();
        if *shutdown.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(MARKER_RETRY) => true,
            _ = shutdown.changed() => false,
        }
    }

    /// One partition's marker, through the leader's append path: the coordinator's own and
    /// WriteTxnMarkers' (another coordinator's markers, an admin's abort). On a
    /// `__consumer_offsets` partition it also completes the producer's offsets held by the
    /// groups there, as Kafka's group coordinator does; a group coordinator not ready yet is
    /// answered as a partition leader would be, so the sender retries (as Kafka 4's KafkaApis).
    pub async fn write_marker(&self, topic: &Topic, partition: PartitionId, index: i32, marker: &Marker) -> Result<(), ResponseError> {
        if topic.name == OFFSETS_TOPIC {
            // No producer writes there: the groups' own (replicated) writes are the marker.
            return self.groups.complete_txn_partition(index, (marker.producer_id, marker.producer_epoch), marker.commit).await.map_err(|e| match e {
                ResponseError::CoordinatorNotAvailable | ResponseError::CoordinatorLoadInProgress | ResponseError::NotCoordinator => ResponseError::NotLeaderOrFollower,
                other => other,
            });
        }
        // Like Kafka's markers, acks=all: a marker the ISR lacks could vanish with its leader.
        let how = LeaderWrite { epoch: None, acks_all: true, deadline: tokio::time::Instant::now() + MARKER_TIMEOUT };
        self.replicas
            .append_as_leader(topic, partition, how, |opts| async move {
                // Written before (a retry): it waits for what the log holds now.
                let end = match self.log.write_marker(partition, marker, opts).await? {
                    Some(offset) => offset + 1,
                    None => self.log.log_end_offset(partition)?,
                };
                Ok(((), end))
            })
            .await
    }

    /// Produce's check of a transactional batch: its producer must be the transactional id's
    /// current one, with a transaction open that holds the partition (Kafka's verification,
    /// KIP-890 part 1), so no batch can open a transaction the coordinator would never end.
    /// The guard returned is held until the batch is written. In a cluster, a producer that
    /// another broker coordinates is checked there (AddPartitionsToTxn, verify only), unless
    /// the partition already has its transaction open. With
    /// `transaction.partition.verification.enable` off, every batch passes, as in Kafka.
    ///
    /// With `add` (Produce v12, transactions v2) the partition joins the producer's
    /// transaction here, opening it if need be, instead of being checked.
    pub async fn verify_produce(&self, id: Option<&str>, producer: ProducerIdAndEpoch, topic: &str, partition: (PartitionId, i32), add: bool) -> Result<tokio::sync::RwLockReadGuard<'_, ()>, ResponseError> {
        let gate = self.appends.read().await;
        if !self.config.verify_partitions && !add {
            return Ok(gate);
        }
        let coordinated_here = {
            let txns = self.txns.lock().expect("txns lock");
            match txns.by_pid.get(&producer.0).and_then(|id| txns.by_id.get(id).map(|meta| (id, meta))) {
                Some((id, meta)) => {
                    meta.check_producer_epoch(producer.1)?;
                    match meta.check_holds(topic, partition.1) {
                        Err(_) if add => Some(id.clone()),
                        held => return held.map(|()| gate),
                    }
                }
                None if matches!(self.store, StateStore::Local(_)) => return Err(ResponseError::InvalidProducerIdMapping),
                None => None,
            }
        };
        if let Some(id) = coordinated_here {
            // Under the gate: no end can come between the add and the write.
            self.add_partitions(&id, producer, &[(topic.to_string(), partition.1)]).await?;
            return Ok(gate);
        }
        // Not held while another broker answers: it would keep this one's EndTxn waiting.
        drop(gate);
        if let Some(id) = id {
            if !self.log.has_open_transaction(partition.0, producer.0).await? {
                self.brokers.verify(self.coordinator_broker(id)?, id, producer, (topic, partition.1), add).await?;
            }
        }
        Ok(self.appends.read().await)
    }

    /// AddPartitionsToTxn with `verify_only` (a partition leader's check): per partition,
    /// whether the producer's open transaction holds it.
    pub fn verify_partitions(&self, id: &str, producer: ProducerIdAndEpoch, partitions: &[(String, i32)]) -> Vec<i16> {
        let checked = self.store.check(id).and_then(|_| {
            let txns = self.txns.lock().expect("txns lock");
            let meta = txns.by_id.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
            meta.check_producer(producer.0, producer.1)?;
            Ok(partitions.iter().map(|(t, p)| meta.check_holds(t, *p).err().map_or(0, |e| e.code())).collect())
        });
        checked.unwrap_or_else(|e| vec![e.code(); partitions.len()])
    }

    /// Background work, until shutdown: finishes the transactions a restart found prepared,
    /// then aborts timed-out transactions and removes expired ids on their intervals.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let legacy = std::mem::take(&mut *self.legacy_offsets.lock().expect("legacy lock"));
        for (id, producer, held) in legacy {
            for (group, offsets) in held {
                if let Err(e) = self.groups.hold_txn_offsets(&group, producer, legacy_held_offsets(offsets), None).await {
                    tracing::error!(transactional_id = id, group, "moving a transaction's offsets to its group: {e:?}; they are lost");
                }
            }
        }
        let prepared: Vec<String> = self.txns.lock().expect("txns lock").by_id.iter().filter(|(_, m)| m.state.is_preparing()).map(|(id, _)| id.clone()).collect();
        for id in prepared {
            tracing::info!(transactional_id = id, "completing a transaction prepared before the restart");
            self.end(&id);
        }
        let period = |ms: u64| {
            let mut tick = tokio::time::interval(Duration::from_millis(ms));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        };
        let mut aborts = period(self.config.abort_interval_ms);
        let mut expiry = period(self.config.expiry_interval_ms);
        loop {
            tokio::select! {
                _ = aborts.tick() => self.abort_timed_out().await,
                _ = expiry.tick() => self.remove_expired().await,
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Aborts every transaction open longer than its timeout, bumping its producer's epoch
    /// first so the producer is fenced (Kafka's abortTimedOutTransactions); the producer may
    /// recover with InitProducerId naming its id and old epoch (KIP-360).
    pub async fn abort_timed_out(self: &Arc<Self>) {
        let now = now_ms();
        let mut aborted = Vec::new();
        {
            let _gate = self.appends.write().await;
            let mut txns = self.txns.lock().expect("txns lock");
            for (id, meta) in txns.by_id.iter_mut() {
                if !meta.timed_out(now) {
                    continue;
                }
                meta.bump_epoch();
                meta.state = TxnState::PrepareAbort;
                meta.last_update_ms = now;
                aborted.push((id.clone(), self.persist(id, Some(meta))));
            }
        }
        for (id, written) in aborted {
            if written.await.is_ok() {
                tracing::info!(transactional_id = id, "transaction timed out; aborting it");
                self.end(&id);
            }
        }
    }

    /// Forgets idle transactional ids (`transactional.id.expiration.ms`).
    pub async fn remove_expired(&self) {
        let now = now_ms();
        let removed: Vec<_> = {
            let mut txns = self.txns.lock().expect("txns lock");
            let expired: Vec<String> = txns.by_id.iter().filter(|(_, m)| m.expired(now, self.config.id_expiration_ms)).map(|(id, _)| id.clone()).collect();
            expired
                .into_iter()
                .map(|id| {
                    if let Some(m) = txns.by_id.remove(&id) {
                        txns.by_pid.remove(&m.producer_id);
                    }
                    let written = self.persist(&id, None);
                    (id, written)
                })
                .collect()
        };
        for (id, written) in removed {
            if written.await.is_ok() {
                tracing::debug!(transactional_id = id, "expired transactional id removed");
            }
        }
    }
}
