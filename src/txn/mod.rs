//! The transaction coordinator (Kafka's TransactionCoordinator), single node: producer ids and
//! epochs per transactional id, the partitions and groups of each open transaction, and the
//! COMMIT/ABORT markers that end it.
//!
//! State lives in memory, one entry per transactional id, and every change is queued to the
//! store's `meta` column family (keys `x/<transactional id>`) under the same lock, so the
//! stored order is the order of changes; a request is answered once its change is stored.
//! At start-up the states are read back and a transaction found in PrepareCommit or
//! PrepareAbort has its markers written then: the partition store writes a marker only where
//! the producer still has a transaction open, so markers are written exactly once however
//! often a crash repeats the step.

pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::replication::{LeaderWrite, ReplicaManager};
use crate::cluster::{now_ms, partition_id, Cluster, Topic};
use crate::config::Config;
use crate::group::{Committed, GroupCoordinator, TopicPartition};
use crate::log::{LogStore, Marker, Meta, PartitionId};
use state::{PendingOffset, TxnMeta, TxnState};

const TXN_PREFIX: &[u8] = b"x/";

/// Markers carry the coordinator epoch; a single node's coordinator never changes.
const COORDINATOR_EPOCH: i32 = 0;

/// A failed marker write is tried again after this long.
const MARKER_RETRY: Duration = Duration::from_millis(200);
/// How long a marker may wait for its partition's ISR before it is written again.
const MARKER_TIMEOUT: Duration = Duration::from_secs(30);

fn txn_key(id: &str) -> Vec<u8> {
    [TXN_PREFIX, id.as_bytes()].concat()
}

/// A transaction's pending offsets as the group stores them once committed.
fn committed(pending: &[PendingOffset]) -> Vec<(TopicPartition, Committed)> {
    pending
        .iter()
        .map(|p| {
            let committed = Committed { offset: p.offset, leader_epoch: p.leader_epoch, metadata: p.metadata.clone(), commit_timestamp_ms: now_ms(), expire_timestamp_ms: None };
            ((p.topic.clone(), p.partition), committed)
        })
        .collect()
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

pub struct TxnCoordinator {
    meta: Meta,
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
    shutdown: watch::Receiver<bool>,
}

impl TxnCoordinator {
    /// Reads the stored states (start-up: on the calling thread).
    pub fn open(
        meta: Meta,
        log: Arc<LogStore>,
        cluster: Arc<Cluster>,
        replicas: Arc<ReplicaManager>,
        groups: Arc<GroupCoordinator>,
        config: TxnConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<TxnCoordinator> {
        let mut txns = Txns::default();
        for (key, value) in meta.scan(TXN_PREFIX)? {
            let id = String::from_utf8_lossy(&key[TXN_PREFIX.len()..]).into_owned();
            match TxnMeta::decode(&value) {
                Some(m) => txns.insert(&id, m),
                None => tracing::warn!(transactional_id = id, "unreadable transaction state skipped"),
            }
        }
        Ok(TxnCoordinator { meta, log, cluster, replicas, groups, config, txns: Mutex::new(txns), appends: tokio::sync::RwLock::new(()), ending: Mutex::new(HashMap::new()), shutdown })
    }

    /// Queues the stored form of `id`'s state (or its removal) now; the future says whether
    /// it was stored. Called under the `txns` lock, so writes are stored in the order made.
    fn persist(&self, id: &str, meta: Option<&TxnMeta>) -> impl std::future::Future<Output = Result<(), ResponseError>> + Send + 'static {
        let key = txn_key(id);
        let value = meta.map(TxnMeta::encode);
        let written = self.meta.write(&[(&key, value.as_deref())]);
        let id = id.to_string();
        async move {
            written.await.map_err(|e| {
                tracing::error!(transactional_id = id, "cannot store the transaction state: {e:#}");
                ResponseError::KafkaStorageError
            })
        }
    }

    /// InitProducerId with a transactional id (Kafka's handleInitProducerId): a new producer
    /// id at epoch 0 for a new id; otherwise the epoch is bumped, fencing the previous
    /// producer, and an open transaction of that producer is aborted first (answered with
    /// CONCURRENT_TRANSACTIONS until its markers are written; the client retries). A producer
    /// that names its id and epoch (KIP-360) must name the current or the previous ones.
    pub async fn init_producer_id(self: &Arc<Self>, id: &str, timeout_ms: i32, named: Option<ProducerIdAndEpoch>) -> Result<ProducerIdAndEpoch, ResponseError> {
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
        let written = {
            let mut txns = self.txns.lock().expect("txns lock");
            let meta = txns.by_id.get_mut(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
            meta.check_producer(producer.0, producer.1)?;
            let mut next = meta.clone();
            change(&mut next)?;
            if next == *meta {
                None
            } else {
                let written = self.persist(id, Some(&next));
                *meta = next;
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

    /// AddOffsetsToTxn: the group's offsets will be committed with the transaction.
    pub async fn add_offsets(&self, id: &str, producer: ProducerIdAndEpoch, group: &str) -> Result<(), ResponseError> {
        crate::group::check_group_id(group, false)?;
        let now = now_ms();
        self.update(id, producer, |m| {
            m.check_can_add()?;
            m.begin(now);
            m.offsets.entry(group.to_string()).or_default();
            Ok(())
        })
        .await
    }

    /// TxnOffsetCommit: the offsets are held with the transaction, visible to OffsetFetch
    /// only once it commits. The group must have been added (AddOffsetsToTxn).
    pub async fn commit_offsets(&self, id: &str, producer: ProducerIdAndEpoch, group: &str, offsets: TxnOffsets) -> Result<(), ResponseError> {
        self.update(id, producer, |m| {
            if m.state != TxnState::Ongoing {
                return Err(if m.state.is_preparing() { ResponseError::ConcurrentTransactions } else { ResponseError::InvalidTxnState });
            }
            let pending = m.offsets.get_mut(group).ok_or(ResponseError::InvalidTxnState)?;
            for (topic, partition, offset, leader_epoch, metadata) in offsets {
                pending.retain(|p| !(p.topic == topic && p.partition == partition));
                pending.push(PendingOffset { topic, partition, offset, leader_epoch, metadata });
            }
            Ok(())
        })
        .await
    }

    /// Whether a group has offsets waiting in an open transaction for a partition (OffsetFetch
    /// with require_stable answers UNSTABLE_OFFSET_COMMIT then, KIP-447).
    pub fn has_pending_offsets(&self, group: &str, topic: &str, partition: i32) -> bool {
        let txns = self.txns.lock().expect("txns lock");
        txns.by_id.values().any(|m| m.offsets.get(group).is_some_and(|o| o.iter().any(|p| p.topic == topic && p.partition == partition)))
    }

    /// A transactional id's state (DescribeTransactions).
    pub fn describe(&self, id: &str) -> Option<TxnMeta> {
        self.txns.lock().expect("txns lock").by_id.get(id).cloned()
    }

    /// Every transactional id with its state (ListTransactions), in id order.
    pub fn list(&self) -> Vec<(String, TxnMeta)> {
        let mut all: Vec<(String, TxnMeta)> = self.txns.lock().expect("txns lock").by_id.iter().map(|(id, m)| (id.clone(), m.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// EndTxn: writes the markers and, for a commit, stores the offsets; answers once done.
    /// A retry of an end already done succeeds; one still being written waits for it.
    pub async fn end_txn(self: &Arc<Self>, id: &str, producer: ProducerIdAndEpoch, commit: bool) -> Result<(), ResponseError> {
        let now = now_ms();
        let mut markers = false;
        let gate = self.appends.write().await;
        let result = self
            .update(id, producer, |m| {
                markers = m.prepare_end(commit, now)?;
                Ok(())
            })
            .await;
        drop(gate);
        if let Err(ResponseError::ConcurrentTransactions) = result {
            // The same end in progress (a retry): wait for it rather than send the client away.
            let pending = self.ending.lock().expect("ending lock").get(id).cloned();
            if let Some(mut done) = pending {
                let _ = done.wait_for(|d| *d).await;
                return Ok(());
            }
        }
        result?;
        if markers {
            let mut done = self.end(id);
            let _ = done.wait_for(|d| *d).await;
        }
        Ok(())
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

    /// The markers and offsets of a prepared transaction, then its completion. Retries until
    /// done; false only when the broker shuts down first (the restart finishes the job).
    async fn write_markers(&self, id: &str) -> bool {
        let Some(meta) = self.txns.lock().expect("txns lock").by_id.get(id).cloned() else { return true };
        let commit = match meta.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => return true,
        };
        let marker = Marker { producer_id: meta.producer_id, producer_epoch: meta.producer_epoch, coordinator_epoch: COORDINATOR_EPOCH, commit };
        for (topic, index) in &meta.partitions {
            // A deleted topic needs no marker.
            let Some(topic) = self.cluster.topic(topic) else { continue };
            let Ok(partition) = partition_id(Some(&topic), *index) else { continue };
            loop {
                match self.write_marker(&topic, partition, &marker).await {
                    Ok(()) => break,
                    // A newer producer or coordinator epoch wrote there: this marker is moot, as
                    // Kafka's coordinator drops it.
                    Err(e @ (ResponseError::InvalidProducerEpoch | ResponseError::TransactionCoordinatorFenced)) => {
                        tracing::warn!(transactional_id = id, topic = topic.name, partition = index, "transaction marker refused ({e:?}); not retried");
                        break;
                    }
                    Err(e) => tracing::warn!(transactional_id = id, topic = topic.name, partition = index, "writing a transaction marker failed ({e:?}); retrying"),
                }
                if !self.pause().await {
                    return false;
                }
            }
        }
        if commit {
            // A group with nothing left to store (none committed, or a marker completed them)
            // gets no write: an empty batch would be refused.
            for (group, offsets) in meta.offsets.iter().filter(|(_, o)| !o.is_empty()) {
                let offsets = committed(offsets);
                while let Err(e) = self.groups.commit_transactional(group, offsets.clone()).await {
                    tracing::warn!(transactional_id = id, group, "storing a transaction's offsets failed ({e:?}); retrying");
                    if !self.pause().await {
                        return false;
                    }
                }
            }
        }
        loop {
            let written = {
                let mut txns = self.txns.lock().expect("txns lock");
                let Some(m) = txns.by_id.get_mut(id) else { return true };
                m.complete(now_ms());
                let m = m.clone();
                self.persist(id, Some(&m))
            };
            if written.await.is_ok() {
                tracing::debug!(transactional_id = id, commit, "transaction complete");
                return true;
            }
            if !self.pause().await {
                return false;
            }
        }
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
    /// WriteTxnMarkers' (an admin's abort, another coordinator's markers).
    pub async fn write_marker(&self, topic: &Topic, partition: PartitionId, marker: &Marker) -> Result<(), ResponseError> {
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

    /// A marker on a `__consumer_offsets` partition (WriteTxnMarkers): the offsets the
    /// producer's open transaction holds for the groups of that partition are stored (COMMIT)
    /// or dropped (ABORT), as Kafka's group coordinator completes them. Here they wait in the
    /// transaction's state, not the group's; a producer with none has nothing to complete.
    pub async fn complete_offsets(&self, offsets_partition: i32, partitions: i32, marker: &Marker) -> Result<(), ResponseError> {
        let on_partition = |group: &str| crate::group::partition_for(group, partitions) == offsets_partition;
        let (id, pending) = {
            let txns = self.txns.lock().expect("txns lock");
            let Some((id, meta)) = txns.by_pid.get(&marker.producer_id).and_then(|id| txns.by_id.get(id).map(|m| (id.clone(), m))) else { return Ok(()) };
            if marker.producer_epoch < meta.producer_epoch {
                return Err(ResponseError::InvalidProducerEpoch);
            }
            let pending: Vec<(String, Vec<PendingOffset>)> = meta.offsets.iter().filter(|(g, o)| on_partition(g) && !o.is_empty()).map(|(g, o)| (g.clone(), o.clone())).collect();
            (id, pending)
        };
        if pending.is_empty() {
            return Ok(());
        }
        if marker.commit {
            for (group, offsets) in &pending {
                self.groups.commit_transactional(group, committed(offsets)).await?;
            }
        }
        let written = {
            let mut txns = self.txns.lock().expect("txns lock");
            let Some(meta) = txns.by_id.get_mut(&id).filter(|m| m.producer_id == marker.producer_id) else { return Ok(()) };
            for (group, offsets) in &pending {
                if let Some(held) = meta.offsets.get_mut(group) {
                    held.retain(|p| !offsets.contains(p));
                }
            }
            let meta = meta.clone();
            self.persist(&id, Some(&meta))
        };
        tracing::info!(transactional_id = id, commit = marker.commit, groups = pending.len(), "a transaction marker completed the transaction's offsets");
        written.await
    }

    /// Produce's check of a transactional batch: its producer must be the transactional id's
    /// current one, with a transaction open that holds the partition (Kafka's verification,
    /// KIP-890 part 1), so no batch can open a transaction the coordinator would never end.
    /// The guard returned is held until the batch is written. With
    /// `transaction.partition.verification.enable` off, every batch passes, as in Kafka.
    pub async fn verify_produce(&self, producer_id: i64, producer_epoch: i16, topic: &str, partition: i32) -> Result<tokio::sync::RwLockReadGuard<'_, ()>, ResponseError> {
        let gate = self.appends.read().await;
        if !self.config.verify_partitions {
            return Ok(gate);
        }
        let txns = self.txns.lock().expect("txns lock");
        let meta = txns.by_pid.get(&producer_id).and_then(|id| txns.by_id.get(id)).ok_or(ResponseError::InvalidProducerIdMapping)?;
        if producer_epoch < meta.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if producer_epoch > meta.producer_epoch || meta.state != TxnState::Ongoing || !meta.partitions.iter().any(|(t, p)| t == topic && *p == partition) {
            return Err(ResponseError::InvalidTxnState);
        }
        drop(txns);
        Ok(gate)
    }

    /// Background work, until shutdown: finishes the transactions a restart found prepared,
    /// then aborts timed-out transactions and removes expired ids on their intervals.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
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
