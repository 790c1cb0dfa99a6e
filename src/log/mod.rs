//! The partition store on RocksDB: append, read, offsets, retention.
//!
//! Layout (see DESIGN.md): column family `log` maps (partition id u32 BE, base offset u64 BE) to
//! the v2 record batch exactly as the producer sent it, with only base offset and leader epoch
//! rewritten. Column family `meta` holds small state; this module owns the keys starting with
//! `p` (per-partition state), and hands out [`Meta`] for other modules' keys.
//!
//! Every RocksDB call runs on the store's own threads (see [`io`]); the methods here that touch
//! the disk are `async`, and no lock that a runtime thread could wait for is held across one,
//! except a partition's own writer lock, which only that partition's appends and truncations
//! take (asynchronously).

pub mod batch;
mod cleaner;
mod db;
mod dump;
mod index;
mod io;
mod meta;
mod producers;
mod raft;
pub mod records;
mod syncer;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use rocksdb::{ReadOptions, WriteBatch, DB};
use tokio::sync::Notify;

use batch::BatchHeader;
pub use cleaner::{Cleaned, CleanerLimits, Compaction};
pub use db::{Budget, RocksStats};
use db::{Db, LOG_CF, META_CF};
pub use dump::{describe_batch, ReadOnlyStore};
use index::{index_cf, BatchEntry, Entries};
pub use index::UNDEFINED_EPOCH_END;
use io::{Io, Lane};
pub use meta::Meta;
use producers::{ProducerState, Rebuild, SeqCheck};
pub use raft::{RaftLog, RaftWrite};
use syncer::Syncer;

/// Identifies a partition's log; given once and never reused.
pub type PartitionId = u32;

pub struct LogStore {
    io: Io,
    partitions: RwLock<HashMap<PartitionId, Arc<PartitionLog>>>,
    syncer: Syncer,
}

struct PartitionLog {
    id: PartitionId,
    /// Held while a batch gets its offset and is written, and while the log start moves or the
    /// log is truncated: one change in flight per partition.
    writer: tokio::sync::Mutex<WriterState>,
    /// Everything below is readable. It follows `log_end` unless `hw_by_caller` is set.
    high_watermark: AtomicI64,
    /// Everything below is written, and synced where the topic asks for it: the log end
    /// offset a replica reports.
    log_end: AtomicI64,
    /// The replication layer moves the high watermark ([`HighWatermark::Caller`]).
    hw_by_caller: AtomicBool,
    /// The high watermark as last checkpointed, -1 before any checkpoint.
    checkpointed: AtomicI64,
    /// Appends written but not yet published; a truncation waits until none is left, so no
    /// append publishes an end the truncation removed.
    publishing: AtomicUsize,
    /// Set while a truncation waits for `publishing` to reach 0, so appends notify only then.
    draining: AtomicBool,
    drained: Notify,
    /// Counts truncations from the end, so a cleaner pass that read the log before one
    /// writes nothing back.
    truncations: AtomicU64,
    log_start: AtomicI64,
    /// Bytes of the batches in the log, kept with each write (DescribeLogDirs, size retention).
    bytes: AtomicU64,
    /// The first offset of the earliest transaction still open here (i64::MAX when none is):
    /// the last stable offset is the smaller of it and the high watermark.
    first_unstable: AtomicI64,
    /// Aborted transactions by the offset of their ABORT marker: (producer id, first offset),
    /// for read_committed fetches (Kafka's aborted transaction index).
    aborted: Mutex<BTreeMap<i64, (i64, i64)>>,
    /// Long-polling fetches to wake when this partition grows. Its lock also orders the moves
    /// of `log_end` and `high_watermark`, so the high watermark never passes the log end.
    waiters: Mutex<Vec<Weak<Notify>>>,
}

struct WriterState {
    next_offset: i64,
    /// The leader epoch of the last batch, -1 for an empty log.
    last_epoch: i32,
    producers: HashMap<i64, ProducerState>,
    /// Producers with a transaction open here, and its first offset.
    open_txns: HashMap<i64, i64>,
    /// Records appended since this partition last asked for a sync (flush.messages).
    unflushed: i64,
    /// Set once the partition is deleted: an append that was waiting for the lock fails.
    deleted: bool,
    /// Set while a write is queued and not yet answered. Still set afterwards only when that
    /// append was cancelled (shutdown drops requests): its write may land, so nothing else
    /// may be written here until a restart reads the store again.
    in_doubt: bool,
}

impl WriterState {
    /// Whether the partition takes changes.
    fn usable(&self, id: PartitionId) -> Result<(), ResponseError> {
        if self.deleted {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        if self.in_doubt {
            tracing::warn!(partition = id, "an append was cancelled while being written; the partition takes no changes until a restart");
            return Err(ResponseError::KafkaStorageError);
        }
        Ok(())
    }
}

/// When appended data must reach the disk: Kafka's `flush.messages` and `flush.ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlushPolicy {
    /// Sync after this many records of a partition; the append that reaches the count is
    /// acknowledged (and, at 1, becomes readable) only after the sync.
    pub messages: i64,
    /// Sync within this many milliseconds of a write, in the background.
    pub ms: i64,
}

impl FlushPolicy {
    /// Leave syncing to RocksDB and the OS (Kafka's default).
    pub const NEVER: FlushPolicy = FlushPolicy { messages: i64::MAX, ms: i64::MAX };
}

/// How a batch is appended, from the topic's configuration.
#[derive(Debug, Clone, Copy)]
pub struct AppendOptions {
    pub max_batch_bytes: usize,
    pub leader_epoch: i32,
    /// `Some(now)` when the topic uses LogAppendTime.
    pub log_append_time: Option<i64>,
    pub flush: FlushPolicy,
    /// Every record needs a key (compacted topics).
    pub require_keys: bool,
}

/// Why an append was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendError {
    Refused(ResponseError),
    /// Records without a key, on a topic that needs them: each one's index in its batch.
    MissingKeys(Vec<i32>),
}

impl From<ResponseError> for AppendError {
    fn from(e: ResponseError) -> Self {
        AppendError::Refused(e)
    }
}

/// A transaction marker to append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
}

/// A producer as a partition remembers it (Kafka's ProducerStateEntry, as DescribeProducers
/// shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// -1 when no batch of its epoch is remembered.
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// -1 before its first marker here.
    pub coordinator_epoch: i32,
    /// The first offset of its transaction open here, -1 when none is.
    pub txn_start_offset: i64,
}

/// Who moves a partition's high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HighWatermark {
    /// It follows the log end, once appends are as durable as the topic asks (one replica;
    /// the default).
    LogEnd,
    /// Only [`LogStore::set_high_watermark`] moves it: a leader's replication layer, which
    /// keeps it at the minimum log end over the ISR.
    Caller,
}

/// How a follower appends what it fetched from its leader.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaAppendOptions {
    pub flush: FlushPolicy,
    /// Batches may start after the log end or after the batch before them: a compacted
    /// leader's log has such gaps where the cleaner removed emptied batches.
    pub allow_gaps: bool,
}

/// Why a follower's append was refused; nothing of it was written.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaAppendError {
    /// A batch does not start where the log (or the batch before it) ends: it would overlap,
    /// or leave a gap the options do not allow.
    Misplaced { expected: i64, base_offset: i64 },
    /// A batch's leader epoch is below the log's last one: the follower has data of an epoch
    /// the leader does not, and must truncate first.
    EpochRegression { last_epoch: i32, batch_epoch: i32 },
    Refused(ResponseError),
}

impl From<ResponseError> for ReplicaAppendError {
    fn from(e: ResponseError) -> Self {
        ReplicaAppendError::Refused(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Appended {
    pub base_offset: i64,
    /// The offset after the batch's last record: acks=all waits for the high watermark there.
    pub end_offset: i64,
    /// What the produce response gives as the log append time: the append time on
    /// LogAppendTime topics, else -1; for a retried batch, its original timestamp (Kafka's answer).
    pub log_append_time: i64,
    pub log_start: i64,
}

/// One partition's part of a fetch.
#[derive(Debug, Clone, Copy)]
pub struct ReadRequest {
    pub id: PartitionId,
    pub offset: i64,
    pub max_bytes: usize,
    pub isolation: FetchIsolation,
}

/// How far a fetch may read (Kafka's FetchIsolation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchIsolation {
    /// Consumers: what the high watermark says is committed.
    HighWatermark,
    /// Followers: everything written.
    LogEnd,
    /// read_committed consumers: up to the last stable offset.
    TxnCommitted,
}

#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start: i64,
    /// For [`FetchIsolation::TxnCommitted`]: the aborted transactions (producer id, first
    /// offset) that overlap the records returned, so the client can drop their records.
    pub aborted: Vec<(i64, i64)>,
}

thread_local! {
    /// Where a batch gets its offset before RocksDB copies it. Kept between appends: a fresh
    /// buffer of a batch's size costs page faults on every append.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scratch buffers above this size are given back after the append that grew them.
const SCRATCH_KEEP: usize = 4 << 20;

fn log_key(p: PartitionId, offset: i64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&p.to_be_bytes());
    key[4..].copy_from_slice(&(offset as u64).to_be_bytes());
    key
}

/// Every `meta` key of one partition starts with this.
fn partition_prefix(p: PartitionId) -> [u8; 5] {
    let mut prefix = [b'p'; 5];
    prefix[1..].copy_from_slice(&p.to_be_bytes());
    prefix
}

fn meta_key(p: PartitionId, kind: u8, suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(6 + suffix.len());
    key.extend_from_slice(&partition_prefix(p));
    key.push(kind);
    key.extend_from_slice(suffix);
    key
}
const LOG_START: u8 = b'l';
const BYTES: u8 = b'b';
const PRODUCER: u8 = b's';
/// An open transaction: producer id -> first offset.
const OPEN_TXN: u8 = b'x';
/// An aborted transaction: ABORT marker offset -> (producer id, first offset).
const ABORTED_TXN: u8 = b'a';
/// A replicated log's high watermark as last checkpointed.
const HIGH_WATERMARK: u8 = b'h';

/// A truncation reads at most this many bytes of batches back from its cut to rebuild the
/// producer states it changes; a producer not found by then is forgotten (its next batch is
/// accepted at any sequence, as after expiry).
const REBUILD_SCAN_BYTES: u64 = 64 << 20;

fn read_error(e: rocksdb::Error) -> ResponseError {
    tracing::error!("storage read failed: {e}");
    ResponseError::KafkaStorageError
}

/// An iterator over a partition's batches below `high_watermark`, placed on the batch that
/// holds `offset` (or the first one after it).
fn batches_from(db: &DB, id: PartitionId, offset: i64, high_watermark: i64) -> rocksdb::DBRawIterator<'_> {
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(log_key(id, 0).to_vec());
    opts.set_iterate_upper_bound(log_key(id, high_watermark).to_vec());
    let mut it = db.raw_iterator_cf_opt(log_cf(db), opts);
    it.seek_for_prev(log_key(id, offset));
    if !it.valid() {
        it.seek(log_key(id, offset));
    }
    it
}

fn log_cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(LOG_CF).expect("log column family exists")
}

fn meta_cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(META_CF).expect("meta column family exists")
}

impl PartitionLog {
    fn new(id: PartitionId, next_offset: i64, last_epoch: i32, log_start: i64, bytes: u64, producers: HashMap<i64, ProducerState>, txns: Txns) -> PartitionLog {
        let first_unstable = txns.open.values().copied().min().unwrap_or(i64::MAX);
        PartitionLog {
            id,
            writer: tokio::sync::Mutex::new(WriterState { next_offset, last_epoch, producers, open_txns: txns.open, unflushed: 0, deleted: false, in_doubt: false }),
            high_watermark: AtomicI64::new(next_offset),
            log_end: AtomicI64::new(next_offset),
            hw_by_caller: AtomicBool::new(false),
            checkpointed: AtomicI64::new(-1),
            publishing: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            drained: Notify::new(),
            truncations: AtomicU64::new(0),
            log_start: AtomicI64::new(log_start),
            bytes: AtomicU64::new(bytes),
            first_unstable: AtomicI64::new(first_unstable),
            aborted: Mutex::new(txns.aborted),
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// The last stable offset: read_committed consumers read below it.
    fn last_stable_offset(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire).min(self.first_unstable.load(Ordering::Acquire))
    }

    /// The aborted transactions that overlap `[from, to)`: those whose marker is at or after
    /// `from` and that began before `to`.
    fn aborted_between(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let aborted = self.aborted.lock().expect("aborted lock");
        aborted.range(from..).filter(|(_, (_, first))| *first < to).map(|(_, &txn)| txn).collect()
    }

    /// Moves the log end to `end` (and the high watermark with it unless the caller manages
    /// it), and wakes the fetches waiting: consumers for the high watermark, and (later)
    /// followers for the log end.
    fn publish(&self, end: i64) {
        let mut waiters = self.waiters.lock().expect("waiters lock");
        self.log_end.fetch_max(end, Ordering::AcqRel);
        if !self.hw_by_caller.load(Ordering::Acquire) {
            self.high_watermark.fetch_max(end, Ordering::AcqRel);
        }
        wake(&mut waiters);
    }

    /// Waits until every append written so far is published. Call with the writer held, so
    /// no new one starts.
    async fn drain(&self) {
        // SeqCst with the count: an append that brings it to 0 after this loop saw it above 0
        // sees `draining` set and notifies.
        self.draining.store(true, Ordering::SeqCst);
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.publishing.load(Ordering::SeqCst) == 0 {
                break;
            }
            drained.await;
        }
        self.draining.store(false, Ordering::SeqCst);
    }
}

fn wake(waiters: &mut Vec<Weak<Notify>>) {
    waiters.retain(|w| w.upgrade().map(|n| n.notify_one()).is_some());
}

/// Counts an append from its write until it is published (or fails), for [`PartitionLog::drain`].
struct Publishing<'a>(&'a PartitionLog);

impl<'a> Publishing<'a> {
    fn start(log: &'a PartitionLog) -> Publishing<'a> {
        log.publishing.fetch_add(1, Ordering::AcqRel);
        Publishing(log)
    }
}

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        // Notify takes a lock: only when a truncation waits.
        if self.0.publishing.fetch_sub(1, Ordering::SeqCst) == 1 && self.0.draining.load(Ordering::SeqCst) {
            self.0.drained.notify_waiters();
        }
    }
}

/// A partition's transactions as stored: the open ones and the aborted ones.
#[derive(Default)]
struct Txns {
    open: HashMap<i64, i64>,
    aborted: BTreeMap<i64, (i64, i64)>,
}

/// What an append does to a producer's transaction on the partition.
#[derive(Debug, Clone, Copy)]
enum TxnChange {
    /// Its first transactional batch: the transaction opens at this offset.
    Opened(i64),
    Committed,
    /// Aborted: (first offset, marker offset).
    Aborted(i64, i64),
}

/// One append in the making, the same for a leader's and a follower's: batches that carry
/// their final offsets and epochs, staged into one RocksDB write with their index entries and
/// the producer states they lead to.
struct Staged {
    write: WriteBatch,
    producers: Vec<(i64, ProducerState)>,
    txns: Vec<(i64, TxnChange)>,
    bytes: u64,
    next_offset: i64,
    last_epoch: i32,
}

impl Staged {
    fn new(capacity: usize, writer: &WriterState) -> Staged {
        // Sized up front: growing it would copy the batches again.
        Staged { write: WriteBatch::with_capacity_bytes(capacity), producers: Vec::new(), txns: Vec::new(), bytes: 0, next_offset: writer.next_offset, last_epoch: writer.last_epoch }
    }

    /// Adds a batch as it is to be stored.
    fn add(&mut self, db: &DB, id: PartitionId, writer: &WriterState, stored: &[u8]) {
        let header = BatchHeader::new(stored).expect("a validated batch");
        let key = log_key(id, header.base_offset());
        self.write.put_cf(log_cf(db), key, stored);
        self.write.put_cf(index_cf(db), key, BatchEntry::of(stored).expect("a validated batch").encode());
        let pid = header.producer_id();
        if pid >= 0 {
            let state = self.producers.iter().rev().find(|(p, _)| *p == pid).map(|(_, s)| s).or_else(|| writer.producers.get(&pid));
            // A control record of another kind than COMMIT/ABORT (or an unreadable one) is no
            // marker: as in Kafka, it ends no transaction.
            let marker = if header.is_control() { records::read_marker(stored).ok().flatten() } else { None };
            // The stored max timestamp: the append time on LogAppendTime topics.
            let after = if header.is_control() {
                ProducerState::after_marker(state, header.producer_epoch(), marker.map(|(_, c)| c), header.max_timestamp())
            } else {
                ProducerState::after_append(state, &header, header.base_offset(), header.max_timestamp())
            };
            self.write.put_cf(meta_cf(db), meta_key(id, PRODUCER, &pid.to_be_bytes()), after.encode());
            self.producers.push((pid, after));
            if header.is_transactional() {
                self.track_txn(db, id, writer, &header, marker.map(|(commit, _)| commit));
            }
        }
        self.bytes += stored.len() as u64;
        self.next_offset = header.last_offset() + 1;
        self.last_epoch = header.partition_leader_epoch();
    }

    /// Opens the producer's transaction at its first transactional batch, and closes it at a
    /// marker (`marker`: whether it commits), recording an abort, in the same write as the batch.
    /// Only a marker's one control record is read; data batches are never decoded.
    fn track_txn(&mut self, db: &DB, id: PartitionId, writer: &WriterState, header: &BatchHeader, marker: Option<bool>) {
        let pid = header.producer_id();
        let open = match self.txns.iter().rev().find(|(p, _)| *p == pid) {
            Some((_, TxnChange::Opened(first))) => Some(*first),
            Some(_) => None,
            None => writer.open_txns.get(&pid).copied(),
        };
        let key = meta_key(id, OPEN_TXN, &pid.to_be_bytes());
        if !header.is_control() {
            if open.is_none() {
                self.write.put_cf(meta_cf(db), key, header.base_offset().to_be_bytes());
                self.txns.push((pid, TxnChange::Opened(header.base_offset())));
            }
            return;
        }
        let (Some(first), Some(commit)) = (open, marker) else { return };
        self.write.delete_cf(meta_cf(db), key);
        if commit {
            self.txns.push((pid, TxnChange::Committed));
        } else {
            let mut value = [0u8; 16];
            value[..8].copy_from_slice(&pid.to_be_bytes());
            value[8..].copy_from_slice(&first.to_be_bytes());
            self.write.put_cf(meta_cf(db), meta_key(id, ABORTED_TXN, &header.base_offset().to_be_bytes()), value);
            self.txns.push((pid, TxnChange::Aborted(first, header.base_offset())));
        }
    }
}

impl LogStore {
    /// Opens (or creates) the database in `dir` with the default memory budget.
    pub fn open(dir: &Path) -> Result<LogStore> {
        Self::open_with_budget(dir, Budget::default())
    }

    /// Opens (or creates) the database in `dir`. Fails at once if another process holds it.
    pub fn open_with_budget(dir: &Path, budget: Budget) -> Result<LogStore> {
        let db = Arc::new(Db::open(dir, budget)?);
        Ok(LogStore { syncer: Syncer::start(db.clone()), io: Io::start(db), partitions: RwLock::new(HashMap::new()) })
    }

    /// True after a failed write, until [`LogStore::recover`] reopens the store.
    pub fn needs_recovery(&self) -> bool {
        self.io.db().needs_recovery()
    }

    /// Reopens the store after a failed write once disk space allows; true when writable.
    /// Blocks: call it off the async runtime.
    pub fn recover(&self) -> Result<bool> {
        self.io.db().recover()
    }

    /// The `meta` column family, for other modules' small records.
    pub fn meta(&self) -> Meta {
        Meta::new(self.io.clone())
    }

    /// The controller quorum's Raft log and its state.
    pub fn raft_log(&self) -> RaftLog {
        RaftLog::new(self.io.clone())
    }

    /// For start-up: makes a stored partition's log available, rebuilding its next offset from
    /// its last batch and loading its log start offset and producer states. Reads on the
    /// calling thread. Its high watermark starts at the log end.
    pub fn load_partition(&self, id: PartitionId) -> Result<()> {
        self.load_partition_in(id, HighWatermark::LogEnd)
    }

    /// [`LogStore::load_partition`], its high watermark in `mode`. A replicated log's is the
    /// one last checkpointed (or its log start), moved on by its replication layer (`Caller`):
    /// its log end may hold records the ISR never had, and nothing past the high watermark is
    /// served or compacted (a compaction against records about to be truncated would remove
    /// the acknowledged writes they hid).
    pub fn load_partition_in(&self, id: PartitionId, mode: HighWatermark) -> Result<()> {
        let meta = self.meta();
        let log_start = meta.get(&meta_key(id, LOG_START, &[]))?.map(|v| decode_i64(&v)).unwrap_or(0);
        let checkpoint = meta.get(&meta_key(id, HIGH_WATERMARK, &[]))?.map(|v| decode_i64(&v));
        let bytes = meta.get(&meta_key(id, BYTES, &[]))?.map(|v| decode_i64(&v) as u64).unwrap_or(0);
        let db = self.io.db().get()?;
        self.index_unindexed(&db, id)?;
        let last = Entries::last(&db, id).context("reading the batch index")?;
        let next_offset = last.map_or(log_start, |e| log_start.max(e.last_offset + 1));
        let mut producers = HashMap::new();
        let loaded_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        for (key, value) in meta.scan(&meta_key(id, PRODUCER, &[]))? {
            let pid = key.get(6..14).map(decode_i64);
            if let (Some(pid), Some(state)) = (pid, ProducerState::decode(&value, loaded_at)) {
                producers.insert(pid, state);
            }
        }
        let mut txns = Txns::default();
        for (key, value) in meta.scan(&meta_key(id, OPEN_TXN, &[]))? {
            if let (Some(pid), Some(first)) = (key.get(6..14), value.get(..8)) {
                txns.open.insert(decode_i64(pid), decode_i64(first));
            }
        }
        for (key, value) in meta.scan(&meta_key(id, ABORTED_TXN, &[]))? {
            if let (Some(marker), Some(pid), Some(first)) = (key.get(6..14), value.get(..8), value.get(8..16)) {
                txns.aborted.insert(decode_i64(marker), (decode_i64(pid), decode_i64(first)));
            }
        }
        let log = PartitionLog::new(id, next_offset, last.map_or(-1, |e| e.leader_epoch), log_start, bytes, producers, txns);
        if mode == HighWatermark::Caller {
            log.high_watermark.store(checkpoint.unwrap_or(log_start).clamp(log_start, next_offset), Ordering::Release);
            log.checkpointed.store(checkpoint.unwrap_or(-1), Ordering::Release);
            log.hw_by_caller.store(true, Ordering::Release);
        }
        self.insert(log);
        Ok(())
    }

    /// Indexes the batches a data directory written before the batch index holds (or whose
    /// indexing a crash interrupted): those after the last indexed one. Start-up only.
    fn index_unindexed(&self, db: &DB, id: PartitionId) -> Result<()> {
        /// Entries per write, so a large log is indexed in bounded steps.
        const STEP: usize = 10_000;
        let from = Entries::last(db, id)?.map_or(0, |e| e.base_offset + 1);
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(log_key(id, from).to_vec());
        opts.set_iterate_upper_bound(log_key(id + 1, 0).to_vec());
        let mut it = db.raw_iterator_cf_opt(log_cf(db), opts);
        it.seek_to_first();
        let mut write = WriteBatch::default();
        let mut indexed = 0;
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            let entry = BatchEntry::of(value).context("stored batch shorter than a header")?;
            write.put_cf(index_cf(db), key, entry.encode());
            indexed += 1;
            if write.len() == STEP {
                self.io.db().write(std::mem::take(&mut write)).map_err(|e| anyhow::anyhow!("indexing partition {id}: {e:?}"))?;
            }
            it.next();
        }
        it.status().context("reading the log")?;
        if !write.is_empty() {
            self.io.db().write(write).map_err(|e| anyhow::anyhow!("indexing partition {id}: {e:?}"))?;
        }
        if indexed > 0 {
            tracing::info!(partition = id, batches = indexed, "indexed batches stored before the batch index");
        }
        Ok(())
    }

    /// Makes a new, empty partition log available (its id has never been used).
    pub fn create_partition(&self, id: PartitionId) {
        self.insert(PartitionLog::new(id, 0, -1, 0, 0, HashMap::new(), Txns::default()));
    }

    fn insert(&self, log: PartitionLog) {
        self.partitions.write().expect("lock").insert(log.id, Arc::new(log));
    }

    /// Deletes partitions' batches and state for good, together with the caller's own `meta`
    /// changes (the topic record), in one atomic write.
    pub async fn delete_partitions(&self, ids: &[PartitionId], changes: &[(&[u8], Option<&[u8]>)]) -> Result<(), ResponseError> {
        for id in ids {
            let removed = self.partitions.write().expect("lock").remove(id);
            if let Some(log) = removed {
                // Waits for an append in flight; an append still waiting for the lock then fails.
                log.writer.lock().await.deleted = true;
                // Long polls on it answer now (with an error).
                wake(&mut log.waiters.lock().expect("waiters lock"));
            }
        }
        let db = self.io.db().get()?;
        let mut write = WriteBatch::default();
        for &id in ids {
            write.delete_range_cf(log_cf(&db), log_key(id, 0), log_key(id + 1, 0));
            write.delete_range_cf(index_cf(&db), log_key(id, 0), log_key(id + 1, 0));
            let prefix = partition_prefix(id);
            write.delete_range_cf(meta_cf(&db), prefix.to_vec(), meta::prefix_end(&prefix).expect("a partition prefix ends"));
        }
        meta::put_all(&db, &mut write, changes);
        drop(db);
        self.io.write(Lane::Meta, write).await
    }

    /// Drops everything a partition holds and starts it over empty, as a new one (its replica
    /// moved to other brokers).
    pub async fn empty_partition(&self, id: PartitionId) -> Result<(), ResponseError> {
        self.delete_partitions(&[id], &[]).await?;
        self.create_partition(id);
        Ok(())
    }

    fn partition(&self, id: PartitionId) -> Result<Arc<PartitionLog>, ResponseError> {
        self.partitions.read().expect("lock").get(&id).cloned().ok_or(ResponseError::UnknownTopicOrPartition)
    }

    /// Appends a producer's batch (one per partition, as Produce v3+ carries it) and syncs it
    /// as the topic's flush policy asks.
    pub async fn append(&self, id: PartitionId, records: &[u8], opts: AppendOptions) -> Result<Appended, AppendError> {
        let bytes = batch::validate_produced(records, opts.max_batch_bytes)?;
        if opts.require_keys {
            let missing = records::keyless(bytes)?;
            if !missing.is_empty() {
                return Err(AppendError::MissingKeys(missing));
            }
        }
        let log = self.partition(id)?;
        let writer = log.writer.lock().await;
        writer.usable(id)?;
        let header = BatchHeader::new(bytes).expect("validated");
        let base_offset = writer.next_offset;
        let db = self.io.db().get()?;
        let pid = header.producer_id();
        if pid >= 0 {
            if let SeqCheck::Duplicate { base_offset, timestamp } = ProducerState::check(writer.producers.get(&pid), &header)? {
                // A retry of a batch already written: acknowledged once that is as durable as
                // the topic asks, with the offset and timestamp it got (as Kafka answers).
                drop((db, writer));
                if opts.flush.messages == 1 {
                    self.syncer.wait(self.syncer.ticket()).await?;
                }
                let end_offset = base_offset + i64::from(header.last_offset_delta()) + 1;
                return Ok(Appended { base_offset, end_offset, log_append_time: timestamp, log_start: log.log_start.load(Ordering::Acquire) });
            }
        }
        let mut staged = Staged::new(bytes.len() + 256, &writer);
        SCRATCH.with_borrow_mut(|stored| {
            batch::assign(bytes, base_offset, opts.leader_epoch, stored);
            if let Some(now) = opts.log_append_time {
                batch::set_log_append_time(stored, now);
            }
            staged.add(&db, id, &writer, stored);
            if stored.capacity() > SCRATCH_KEEP {
                *stored = Vec::new();
            }
        });
        let end_offset = staged.next_offset;
        self.commit(&log, writer, db, staged, opts.flush).await?;
        Ok(Appended { base_offset, end_offset, log_append_time: opts.log_append_time.unwrap_or(-1), log_start: log.log_start.load(Ordering::Acquire) })
    }

    /// Appends a transaction marker (COMMIT or ABORT) for `producer_id`, through the same
    /// write as a produced batch. A marker of an older producer or coordinator epoch is refused
    /// as Kafka refuses it. Written only while the producer has a transaction open here, so a
    /// marker repeated (a coordinator's after a restart, a retried WriteTxnMarkers) is not
    /// written twice, and a partition the transaction never wrote to gets none. Returns the
    /// marker's offset, if written.
    pub async fn write_marker(&self, id: PartitionId, marker: &Marker, opts: AppendOptions) -> Result<Option<i64>, ResponseError> {
        let log = self.partition(id)?;
        let writer = log.writer.lock().await;
        writer.usable(id)?;
        let state = writer.producers.get(&marker.producer_id);
        ProducerState::check_marker(state, marker.producer_epoch, marker.coordinator_epoch)?;
        // With no transaction open here, a marker is still written when it raises the epoch
        // (a fencing abort), as Kafka writes every marker: a zombie's batch of the old epoch,
        // checked by the coordinator just before, then arrives too late to open a transaction
        // that the new producer's next marker would end. A repeated marker is not written.
        if !writer.open_txns.contains_key(&marker.producer_id) && state.is_some_and(|s| s.epoch() >= marker.producer_epoch) {
            return Ok(None);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let batch = records::marker(marker.producer_id, marker.producer_epoch, marker.coordinator_epoch, marker.commit, now);
        let base_offset = writer.next_offset;
        let db = self.io.db().get()?;
        let mut staged = Staged::new(batch.len() + 256, &writer);
        let mut stored = Vec::with_capacity(batch.len());
        batch::assign(&batch, base_offset, opts.leader_epoch, &mut stored);
        staged.add(&db, id, &writer, &stored);
        self.commit(&log, writer, db, staged, opts.flush).await?;
        Ok(Some(base_offset))
    }

    /// Whether a producer has a transaction open on a partition (a leader's check before it
    /// asks the producer's transaction coordinator).
    pub async fn has_open_transaction(&self, id: PartitionId, producer_id: i64) -> Result<bool, ResponseError> {
        Ok(self.partition(id)?.writer.lock().await.open_txns.contains_key(&producer_id))
    }

    /// The producers a partition remembers, in producer id order (DescribeProducers).
    pub async fn producers(&self, id: PartitionId) -> Result<Vec<ActiveProducer>, ResponseError> {
        let log = self.partition(id)?;
        let writer = log.writer.lock().await;
        let mut all: Vec<ActiveProducer> = writer
            .producers
            .iter()
            .map(|(&producer_id, state)| {
                let (epoch, last_sequence, last_timestamp, coordinator_epoch) = state.describe();
                let txn_start_offset = writer.open_txns.get(&producer_id).copied().unwrap_or(-1);
                ActiveProducer { producer_id, epoch, last_sequence, last_timestamp, coordinator_epoch, txn_start_offset }
            })
            .collect();
        all.sort_by_key(|p| p.producer_id);
        Ok(all)
    }

    /// A follower's append: stores batches fetched from the leader exactly as they are, at the
    /// leader's offsets and epochs (several, as a Fetch returns them), with the same index
    /// entries, byte count and producer states as the leader's own append (the same code).
    /// Producer sequences are not checked: the leader did. Returns the new log end.
    pub async fn append_replicated(&self, id: PartitionId, records: &[u8], opts: ReplicaAppendOptions) -> Result<i64, ReplicaAppendError> {
        let batches = batch::split_replicated(records)?;
        let log = self.partition(id)?;
        let writer = log.writer.lock().await;
        writer.usable(id)?;
        if batches.is_empty() {
            return Ok(writer.next_offset);
        }
        let db = self.io.db().get()?;
        let mut staged = Staged::new(records.len() + 256 * batches.len(), &writer);
        for stored in batches {
            let header = BatchHeader::new(stored).expect("validated");
            let expected = staged.next_offset;
            let base_offset = header.base_offset();
            if base_offset < expected || (base_offset > expected && !opts.allow_gaps) {
                return Err(ReplicaAppendError::Misplaced { expected, base_offset });
            }
            if header.partition_leader_epoch() < staged.last_epoch {
                return Err(ReplicaAppendError::EpochRegression { last_epoch: staged.last_epoch, batch_epoch: header.partition_leader_epoch() });
            }
            staged.add(&db, id, &writer, stored);
        }
        let end = staged.next_offset;
        self.commit(&log, writer, db, staged, opts.flush).await?;
        Ok(end)
    }

    /// Writes staged batches with the partition's new byte count, then syncs and publishes
    /// them as the flush policy asks. The writer is released before the sync, so the next
    /// append is written while this one waits and one sync serves both (group commit).
    async fn commit(&self, log: &PartitionLog, mut writer: tokio::sync::MutexGuard<'_, WriterState>, db: Arc<DB>, staged: Staged, flush: FlushPolicy) -> Result<(), ResponseError> {
        let Staged { mut write, producers, txns, bytes, next_offset: next, last_epoch } = staged;
        let total = log.bytes.load(Ordering::Acquire) + bytes;
        write.put_cf(meta_cf(&db), meta_key(log.id, BYTES, &[]), total.to_be_bytes());
        drop(db);
        writer.in_doubt = true;
        let written = self.io.write(Lane::Partition(log.id), write).await;
        writer.in_doubt = false;
        written?;
        writer.unflushed += next - writer.next_offset;
        writer.next_offset = next;
        writer.last_epoch = last_epoch;
        writer.producers.extend(producers);
        if !txns.is_empty() {
            let mut aborted = log.aborted.lock().expect("aborted lock");
            for (pid, change) in txns {
                match change {
                    TxnChange::Opened(first) => {
                        writer.open_txns.insert(pid, first);
                    }
                    TxnChange::Committed => {
                        writer.open_txns.remove(&pid);
                    }
                    TxnChange::Aborted(first, marker) => {
                        writer.open_txns.remove(&pid);
                        aborted.insert(marker, (pid, first));
                    }
                }
            }
            log.first_unstable.store(writer.open_txns.values().copied().min().unwrap_or(i64::MAX), Ordering::Release);
        }
        log.bytes.store(total, Ordering::Release);
        let sync = writer.unflushed >= flush.messages;
        if sync {
            writer.unflushed = 0;
        }
        let _publishing = Publishing::start(log);
        drop(writer);
        if flush.ms != i64::MAX {
            self.syncer.sync_within(flush.ms);
        }
        if sync {
            self.syncer.wait(self.syncer.ticket()).await?;
        }
        log.publish(next);
        Ok(())
    }

    /// (total, available) bytes of the file system holding the data directory.
    pub async fn disk_space(&self) -> Result<(i64, i64), ResponseError> {
        let dir = self.io.db().dir().to_path_buf();
        self.io
            .read(move |_| {
                let space = fs4::total_space(&dir).and_then(|total| Ok((total as i64, fs4::available_space(&dir)? as i64)));
                space.map_err(|e| {
                    tracing::warn!("cannot read the disk space of {}: {e}", dir.display());
                    ResponseError::KafkaStorageError
                })
            })
            .await
    }

    /// RocksDB write stalls since the store was opened (for tests of the facade).
    #[doc(hidden)]
    pub async fn write_stalls(&self) -> Result<u64, ResponseError> {
        self.io.read(db::write_stalls).await
    }

    /// RocksDB's memory, disk use and write stalls now.
    pub async fn rocks_stats(&self) -> Result<RocksStats, ResponseError> {
        self.io.read(db::rocks_stats).await
    }

    /// Bytes stored for a partition.
    pub fn size(&self, id: PartitionId) -> Result<u64, ResponseError> {
        Ok(self.partition(id)?.bytes.load(Ordering::Acquire))
    }

    /// (log start offset, high watermark) of a partition.
    pub fn offsets(&self, id: PartitionId) -> Result<(i64, i64), ResponseError> {
        let log = self.partition(id)?;
        Ok((log.log_start.load(Ordering::Acquire), log.high_watermark.load(Ordering::Acquire)))
    }

    /// The last stable offset: the first offset of the earliest open transaction, or the high
    /// watermark when that is lower (or no transaction is open).
    pub fn last_stable_offset(&self, id: PartitionId) -> Result<i64, ResponseError> {
        Ok(self.partition(id)?.last_stable_offset())
    }

    /// The log end offset: everything below is written, and synced where the topic asks for it.
    pub fn log_end_offset(&self, id: PartitionId) -> Result<i64, ResponseError> {
        Ok(self.partition(id)?.log_end.load(Ordering::Acquire))
    }

    /// The leader epoch of the log's last batch, -1 for an empty log: a follower's last
    /// fetched epoch.
    pub async fn latest_epoch(&self, id: PartitionId) -> Result<i32, ResponseError> {
        Ok(self.partition(id)?.writer.lock().await.last_epoch)
    }

    /// Says who moves the high watermark. Back to [`HighWatermark::LogEnd`], it catches up
    /// with the log end at once.
    pub fn set_high_watermark_mode(&self, id: PartitionId, mode: HighWatermark) -> Result<(), ResponseError> {
        let log = self.partition(id)?;
        let mut waiters = log.waiters.lock().expect("waiters lock");
        log.hw_by_caller.store(mode == HighWatermark::Caller, Ordering::Release);
        if mode == HighWatermark::LogEnd {
            log.high_watermark.fetch_max(log.log_end.load(Ordering::Acquire), Ordering::AcqRel);
            wake(&mut waiters);
        }
        Ok(())
    }

    /// Moves the high watermark up to `offset`, never back and never past the log end, and
    /// wakes the fetches waiting for it. Returns the high watermark now.
    pub fn set_high_watermark(&self, id: PartitionId, offset: i64) -> Result<i64, ResponseError> {
        let log = self.partition(id)?;
        let mut waiters = log.waiters.lock().expect("waiters lock");
        let target = offset.min(log.log_end.load(Ordering::Acquire));
        if log.high_watermark.fetch_max(target, Ordering::AcqRel) < target {
            wake(&mut waiters);
        }
        Ok(log.high_watermark.load(Ordering::Acquire))
    }

    /// Writes the high watermarks of the replicated logs that moved since their last
    /// checkpoint, in one write (Kafka's replication-offset checkpoint): a restarted replica
    /// then serves what was committed at once, not only once its leader answers again.
    pub async fn checkpoint_high_watermarks(&self) -> Result<(), ResponseError> {
        let logs: Vec<Arc<PartitionLog>> = self.partitions.read().expect("lock").values().cloned().collect();
        let db = self.io.db().get()?;
        let mut write = WriteBatch::default();
        let mut moved = Vec::new();
        for log in logs.iter().filter(|log| log.hw_by_caller.load(Ordering::Acquire)) {
            let hw = log.high_watermark.load(Ordering::Acquire);
            if log.checkpointed.load(Ordering::Acquire) != hw {
                write.put_cf(meta_cf(&db), meta_key(log.id, HIGH_WATERMARK, &[]), hw.to_be_bytes());
                moved.push((log, hw));
            }
        }
        drop(db);
        if moved.is_empty() {
            return Ok(());
        }
        self.io.write(Lane::Meta, write).await?;
        for (log, hw) in moved {
            log.checkpointed.store(hw, Ordering::Release);
        }
        Ok(())
    }

    /// OffsetForLeaderEpoch: (the largest leader epoch at most `epoch` among the log's
    /// batches, the offset where it ends), or [`UNDEFINED_EPOCH_END`]; from the batch index
    /// alone, in a few seeks (see [`index::end_offset_for_epoch`]).
    pub async fn end_offset_for_epoch(&self, id: PartitionId, epoch: i32) -> Result<(i32, i64), ResponseError> {
        let log = self.partition(id)?;
        let (log_start, log_end) = (log.log_start.load(Ordering::Acquire), log.log_end.load(Ordering::Acquire));
        self.io.read(move |db| index::end_offset_for_epoch(db, id, log_start, log_end, epoch).map_err(read_error)).await
    }

    /// Drops every batch at or after `offset`, the one holding it too (Kafka truncates to
    /// batch boundaries): a follower's truncation after a leader change. One atomic write
    /// removes the batches with their index entries and updates the byte count, the producer
    /// states (rebuilt from the batches left, so retries are still deduplicated) and the
    /// cleaner's checkpoint; a kill leaves the log before or after, never between. The high
    /// watermark comes down with the log end if it was above. Appends in flight finish first.
    /// Returns the new log end; refuses to go below the log start (OFFSET_OUT_OF_RANGE).
    pub async fn truncate_to(&self, id: PartitionId, offset: i64) -> Result<i64, ResponseError> {
        let log = self.partition(id)?;
        let mut writer = log.writer.lock().await;
        writer.usable(id)?;
        log.drain().await;
        let log_start = log.log_start.load(Ordering::Acquire);
        if offset < log_start {
            return Err(ResponseError::OffsetOutOfRange);
        }
        if offset >= writer.next_offset {
            return Ok(writer.next_offset);
        }
        // A copy for the reader thread; truncations are rare.
        let producers = writer.producers.clone();
        let end = writer.next_offset;
        let plan = self.io.read(move |db| plan_truncation(db, id, log_start, offset, end, producers)).await?;
        if plan.cut < log_start {
            // The batch holding `offset` also holds the log start.
            return Err(ResponseError::OffsetOutOfRange);
        }
        let total = log.bytes.load(Ordering::Acquire).saturating_sub(plan.dropped_bytes);
        let db = self.io.db().get()?;
        let mut write = WriteBatch::default();
        write.delete_range_cf(log_cf(&db), log_key(id, plan.cut), log_key(id + 1, 0));
        write.delete_range_cf(index_cf(&db), log_key(id, plan.cut), log_key(id + 1, 0));
        write.put_cf(meta_cf(&db), meta_key(id, BYTES, &[]), total.to_be_bytes());
        for (pid, state) in &plan.producers {
            let key = meta_key(id, PRODUCER, &pid.to_be_bytes());
            match state {
                Some(state) => write.put_cf(meta_cf(&db), key, state.encode()),
                None => write.delete_cf(meta_cf(&db), key),
            }
        }
        if plan.cleaned_past_cut {
            cleaner::put_clean_upto(&db, &mut write, id, plan.cut);
        }
        // Records an unclean election took back: a checkpoint past the cut would have a restart
        // serve whatever is appended there next as committed.
        let checkpoint_past_cut = log.checkpointed.load(Ordering::Acquire) > plan.cut;
        if checkpoint_past_cut {
            write.put_cf(meta_cf(&db), meta_key(id, HIGH_WATERMARK, &[]), plan.cut.to_be_bytes());
        }
        // Transactions begun past the cut are gone; one whose ABORT marker is cut is open again.
        // (One whose COMMIT marker is cut stays closed: only aborts are indexed.)
        let mut open_txns = writer.open_txns.clone();
        open_txns.retain(|_, first| *first < plan.cut);
        let reopened: Vec<(i64, (i64, i64))> = log.aborted.lock().expect("aborted lock").range(plan.cut..).map(|(&m, &t)| (m, t)).collect();
        for (marker, (pid, first)) in &reopened {
            write.delete_cf(meta_cf(&db), meta_key(id, ABORTED_TXN, &marker.to_be_bytes()));
            if *first < plan.cut {
                open_txns.insert(*pid, *first);
            }
        }
        for (pid, first) in &writer.open_txns {
            if open_txns.get(pid) != Some(first) {
                write.delete_cf(meta_cf(&db), meta_key(id, OPEN_TXN, &pid.to_be_bytes()));
            }
        }
        for (pid, first) in &open_txns {
            write.put_cf(meta_cf(&db), meta_key(id, OPEN_TXN, &pid.to_be_bytes()), first.to_be_bytes());
        }
        drop(db);
        self.io.write(Lane::Partition(id), write).await?;
        // Durable before anyone sees the shorter log: a replica must not report a log end a
        // power loss could take back.
        self.syncer.wait(self.syncer.ticket()).await?;
        if checkpoint_past_cut {
            log.checkpointed.store(plan.cut, Ordering::Release);
        }
        writer.next_offset = plan.cut;
        writer.last_epoch = plan.last_epoch;
        writer.unflushed = 0;
        for (pid, state) in plan.producers {
            match state {
                Some(state) => writer.producers.insert(pid, state),
                None => writer.producers.remove(&pid),
            };
        }
        log.first_unstable.store(open_txns.values().copied().min().unwrap_or(i64::MAX), Ordering::Release);
        writer.open_txns = open_txns;
        log.aborted.lock().expect("aborted lock").split_off(&plan.cut);
        log.bytes.store(total, Ordering::Release);
        {
            let _order = log.waiters.lock().expect("waiters lock");
            log.truncations.fetch_add(1, Ordering::AcqRel);
            log.log_end.store(plan.cut, Ordering::Release);
            let hw = log.high_watermark.load(Ordering::Acquire);
            let by_caller = log.hw_by_caller.load(Ordering::Acquire);
            log.high_watermark.store(if by_caller { hw.min(plan.cut) } else { plan.cut }, Ordering::Release);
        }
        tracing::info!(partition = id, offset, log_end = plan.cut, "truncated");
        Ok(plan.cut)
    }

    /// Reads whole batches for each request, in order, from the batch holding its offset, up to
    /// its `max_bytes` and to `max_total` for them all. The first batch of the response goes
    /// out whatever its size (KIP-74). Clients skip records below the offset they asked for.
    /// One trip to a reader thread serves every partition, and none when nothing is new.
    pub async fn read(&self, requests: &[ReadRequest], max_total: usize) -> Vec<Result<ReadResult, ResponseError>> {
        let mut placed = Vec::with_capacity(requests.len());
        for r in requests {
            placed.push(self.partition(r.id).and_then(|log| {
                let high_watermark = log.high_watermark.load(Ordering::Acquire);
                let last_stable = log.last_stable_offset();
                let limit = match r.isolation {
                    FetchIsolation::HighWatermark => high_watermark,
                    FetchIsolation::LogEnd => log.log_end.load(Ordering::Acquire),
                    FetchIsolation::TxnCommitted => last_stable,
                };
                let log_start = log.log_start.load(Ordering::Acquire);
                // Out of range only outside the log, as in Kafka. A consumer may stand past the
                // high watermark (a new leader's trails what its predecessor had shown) or a
                // read_committed one past the LSO: nothing for it yet, but no error either; an
                // error would make it reset its position, to the start or past records.
                if r.offset < log_start || r.offset > log.log_end.load(Ordering::Acquire) {
                    return Err(ResponseError::OffsetOutOfRange);
                }
                Ok((*r, high_watermark, log_start, limit, last_stable))
            }));
        }
        let empty = |&(_, high_watermark, log_start, _, last_stable_offset): &(ReadRequest, i64, i64, i64, i64)| ReadResult {
            records: Bytes::new(),
            high_watermark,
            last_stable_offset,
            log_start,
            aborted: Vec::new(),
        };
        if !placed.iter().flatten().any(|(r, _, _, limit, _)| r.offset < *limit) {
            return placed.into_iter().map(|p| p.map(|p| empty(&p))).collect();
        }
        let job = placed.clone();
        let read = self.io.read(move |db| {
            let mut budget = max_total;
            let mut first = true;
            let mut out = Vec::with_capacity(job.len());
            for p in job {
                let Ok((r, high_watermark, log_start, limit, last_stable_offset)) = p else {
                    out.push(None);
                    continue;
                };
                let (records, end) = read_batches(db, &r, limit, r.max_bytes.min(budget), first)?;
                budget = budget.saturating_sub(records.len());
                first &= records.is_empty();
                out.push(Some((ReadResult { records, high_watermark, last_stable_offset, log_start, aborted: Vec::new() }, end)));
            }
            Ok(out)
        });
        // The aborted transactions come from memory, for the offsets the records span.
        let with_aborted = |r: &ReadRequest, (mut result, end): (ReadResult, i64)| {
            if r.isolation == FetchIsolation::TxnCommitted && !result.records.is_empty() {
                if let Ok(log) = self.partition(r.id) {
                    result.aborted = log.aborted_between(r.offset, end);
                }
            }
            result
        };
        match read.await {
            Ok(results) => placed.into_iter().zip(results).map(|(p, r)| p.map(|p| r.map_or_else(|| empty(&p), |r| with_aborted(&p.0, r)))).collect(),
            Err(e) => placed.into_iter().map(|p| p.and(Err(e))).collect(),
        }
    }

    /// The first offset whose record timestamp is at least `ts`, and that timestamp
    /// (ListOffsets by time): the index finds the batch, which alone is read.
    pub async fn offset_for_timestamp(&self, id: PartitionId, ts: i64) -> Result<Option<(i64, i64)>, ResponseError> {
        let log = self.partition(id)?;
        self.io
            .read(move |db| {
                let found = readable_entries(db, &log, |entries| entries.find(|e| e.max_timestamp >= ts))?;
                match found {
                    Some(e) => record_in(db, &log, &e, |t| t >= ts),
                    None => Ok(None),
                }
            })
            .await
    }

    /// The offset and timestamp of the record with the largest timestamp (KIP-734); the earliest
    /// such record wins ties.
    pub async fn max_timestamp_offset(&self, id: PartitionId) -> Result<Option<(i64, i64)>, ResponseError> {
        let log = self.partition(id)?;
        self.io
            .read(move |db| {
                let found = readable_entries(db, &log, |entries| {
                    entries.fold(None, |best: Option<BatchEntry>, e| match best {
                        Some(b) if b.max_timestamp >= e.max_timestamp => Some(b),
                        _ => Some(e),
                    })
                })?;
                match found {
                    Some(e) => record_in(db, &log, &e, |t| t == e.max_timestamp),
                    None => Ok(None),
                }
            })
            .await
    }

    /// Drops whole batches that are entirely older than `retention_ms` or that push the
    /// partition over `retention_bytes` (-1 disables either), advancing the log start offset.
    /// The active (last) batch is always kept. Returns the new log start offset.
    pub async fn apply_retention(&self, id: PartitionId, retention_ms: i64, retention_bytes: i64, now: i64) -> Result<i64, ResponseError> {
        let log = self.partition(id)?;
        let scanned = log.clone();
        let new_start = self
            .io
            .read(move |db| {
                let mut total = scanned.bytes.load(Ordering::Acquire);
                readable_entries(db, &scanned, |entries| {
                    let mut entries = entries.peekable();
                    let mut new_start = None;
                    while let (Some(e), Some(next)) = (entries.next(), entries.peek()) {
                        let too_old = retention_ms >= 0 && e.max_timestamp < now - retention_ms;
                        let too_big = retention_bytes >= 0 && total > retention_bytes as u64;
                        if !(too_old || too_big) {
                            break;
                        }
                        total = total.saturating_sub(e.bytes as u64);
                        new_start = Some(next.base_offset);
                    }
                    new_start
                })
            })
            .await?;
        if let Some(new_start) = new_start {
            self.truncate_before(&log, new_start).await?;
        }
        Ok(log.log_start.load(Ordering::Acquire))
    }

    /// Moves the log start offset to `offset` (DeleteRecords), dropping whole batches below it.
    pub async fn delete_records(&self, id: PartitionId, offset: i64) -> Result<i64, ResponseError> {
        let log = self.partition(id)?;
        let high_watermark = log.high_watermark.load(Ordering::Acquire);
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(ResponseError::OffsetOutOfRange);
        }
        self.truncate_before(&log, target).await?;
        Ok(log.log_start.load(Ordering::Acquire))
    }

    /// Moves the log start offset up to `new_start` (never down), dropping the batches that end
    /// below it, and the aborted transactions whose ABORT marker lies below it (no fetch from
    /// the log start on needs them, as Kafka drops them with their segment).
    async fn truncate_before(&self, log: &Arc<PartitionLog>, new_start: i64) -> Result<(), ResponseError> {
        // Appends update the byte count too: hold the writer while this one changes it.
        let writer = log.writer.lock().await;
        writer.usable(log.id)?;
        if new_start <= log.log_start.load(Ordering::Acquire) {
            return Ok(());
        }
        let scanned = log.clone();
        // Batches that end below the new start go; the one holding it stays.
        let (cut, dropped) = self
            .io
            .read(move |db| {
                readable_entries(db, &scanned, |entries| {
                    let mut dropped = 0u64;
                    let mut cut = new_start;
                    for e in entries {
                        if e.last_offset >= new_start {
                            cut = e.base_offset;
                            break;
                        }
                        dropped += e.bytes as u64;
                    }
                    (cut, dropped)
                })
            })
            .await?;
        let total = log.bytes.load(Ordering::Acquire).saturating_sub(dropped);
        let db = self.io.db().get()?;
        let mut write = WriteBatch::default();
        write.delete_range_cf(log_cf(&db), log_key(log.id, 0), log_key(log.id, cut));
        write.delete_range_cf(index_cf(&db), log_key(log.id, 0), log_key(log.id, cut));
        write.put_cf(meta_cf(&db), meta_key(log.id, LOG_START, &[]), new_start.to_be_bytes());
        write.put_cf(meta_cf(&db), meta_key(log.id, BYTES, &[]), total.to_be_bytes());
        write.delete_range_cf(meta_cf(&db), meta_key(log.id, ABORTED_TXN, &0i64.to_be_bytes()), meta_key(log.id, ABORTED_TXN, &new_start.to_be_bytes()));
        drop(db);
        self.io.write(Lane::Partition(log.id), write).await?;
        log.log_start.store(new_start, Ordering::Release);
        log.bytes.store(total, Ordering::Release);
        {
            let mut aborted = log.aborted.lock().expect("aborted lock");
            *aborted = aborted.split_off(&new_start);
        }
        drop(writer);
        Ok(())
    }

    /// Forgets, in memory and in the store, every partition's producers whose last batch is
    /// `expiration_ms` old at `now_ms` (`producer.id.expiration.ms`, Kafka's
    /// removeExpiredProducers).
    pub async fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> Result<(), ResponseError> {
        let logs: Vec<Arc<PartitionLog>> = self.partitions.read().expect("lock").values().cloned().collect();
        for log in logs {
            let mut writer = log.writer.lock().await;
            // A producer with a transaction open here is kept until its marker (as Kafka does).
            let expired: Vec<i64> = producers::expired(&writer.producers, now_ms, expiration_ms).into_iter().filter(|pid| !writer.open_txns.contains_key(pid)).collect();
            if writer.usable(log.id).is_err() || expired.is_empty() {
                continue;
            }
            let db = self.io.db().get()?;
            let mut write = WriteBatch::default();
            for pid in &expired {
                write.delete_cf(meta_cf(&db), meta_key(log.id, PRODUCER, &pid.to_be_bytes()));
            }
            drop(db);
            self.io.write(Lane::Partition(log.id), write).await?;
            for pid in &expired {
                writer.producers.remove(pid);
            }
            tracing::debug!("partition {}: forgot idle producers {expired:?}", log.id);
        }
        Ok(())
    }

    /// Has `notify` woken whenever one of these partitions grows, for as long as the caller
    /// holds it. Unknown partitions are skipped.
    pub fn watch(&self, ids: &[PartitionId], notify: &Arc<Notify>) {
        let partitions = self.partitions.read().expect("lock");
        for log in ids.iter().filter_map(|id| partitions.get(id)) {
            let mut waiters = log.waiters.lock().expect("waiters lock");
            // Drop the registrations of fetches that have finished.
            waiters.retain(|w| w.strong_count() > 0);
            waiters.push(Arc::downgrade(notify));
        }
    }
}

/// What a truncation removes and leaves, read before it is written.
struct TruncationPlan {
    /// The new log end: the base offset of the first batch that goes.
    cut: i64,
    dropped_bytes: u64,
    /// The leader epoch of the last batch left, -1 if none is.
    last_epoch: i32,
    /// The producers whose states change: rebuilt, or forgotten (`None`).
    producers: Vec<(i64, Option<ProducerState>)>,
    /// The cleaner's checkpoint lies past the cut and must come down to it.
    cleaned_past_cut: bool,
}

/// Plans a truncation at `offset` of a log written up to `end`. Reads the index, and batches
/// back from the cut only for producers whose state cannot just drop its batches past the cut
/// (bounded by [`REBUILD_SCAN_BYTES`]).
fn plan_truncation(db: &DB, id: PartitionId, log_start: i64, offset: i64, end: i64, producers: HashMap<i64, ProducerState>) -> Result<TruncationPlan, ResponseError> {
    let mut entries = Entries::new(db, id, offset, end);
    let dropped: Vec<BatchEntry> = entries.by_ref().filter(|e| e.last_offset >= offset).collect();
    entries.status().map_err(read_error)?;
    let cut = dropped.first().map_or(offset, |e| e.base_offset.min(offset));
    let mut kept = Entries::new(db, id, cut - 1, cut);
    let last_epoch = kept.next().map_or(-1, |e| e.leader_epoch);
    kept.status().map_err(read_error)?;

    let mut changed = Vec::new();
    let mut unknown = Vec::new();
    for (pid, state) in producers.iter().filter(|(_, s)| s.remembers_from(cut)) {
        match state.truncated(cut) {
            Some(state) => changed.push((*pid, Some(state))),
            None => unknown.push(*pid),
        }
    }
    let mut rebuild = Rebuild::new(unknown);
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(log_key(id, 0).to_vec());
    opts.set_iterate_upper_bound(log_key(id, cut).to_vec());
    let mut it = db.raw_iterator_cf_opt(log_cf(db), opts);
    it.seek_to_last();
    let mut scanned = 0u64;
    while let Some(value) = it.value() {
        if rebuild.complete() || scanned >= REBUILD_SCAN_BYTES {
            break;
        }
        let header = BatchHeader::new(value).ok_or(ResponseError::CorruptMessage)?;
        if header.last_offset() < log_start {
            break;
        }
        rebuild.older(&header);
        scanned += value.len() as u64;
        it.prev();
    }
    it.status().map_err(read_error)?;
    changed.extend(rebuild.finish());
    let producers = changed;
    let forgotten = producers.iter().filter(|(_, s)| s.is_none()).count();
    if forgotten > 0 {
        tracing::debug!(partition = id, forgotten, "truncation: producers with no batch left before the cut are forgotten");
    }
    let cleaned_past_cut = cleaner::clean_upto(db, id)?.is_some_and(|c| c > cut);
    Ok(TruncationPlan { cut, dropped_bytes: dropped.iter().map(|e| e.bytes as u64).sum(), last_epoch, producers, cleaned_past_cut })
}

/// Runs `scan` over the index entries of a partition's readable batches (log start to high
/// watermark).
fn readable_entries<T>(db: &DB, log: &PartitionLog, scan: impl FnOnce(&mut Entries) -> T) -> Result<T, ResponseError> {
    let mut entries = Entries::new(db, log.id, log.log_start.load(Ordering::Acquire), log.high_watermark.load(Ordering::Acquire));
    let result = scan(&mut entries);
    entries.status().map_err(read_error)?;
    Ok(result)
}

/// The first record of an indexed batch, at or after the log start, whose timestamp passes
/// `wanted`: (offset, timestamp).
fn record_in(db: &DB, log: &PartitionLog, entry: &BatchEntry, wanted: impl Fn(i64) -> bool) -> Result<Option<(i64, i64)>, ResponseError> {
    let stored = db.get_pinned_cf(log_cf(db), log_key(log.id, entry.base_offset)).map_err(read_error)?;
    let Some(stored) = stored else { return Ok(None) };
    let log_start = log.log_start.load(Ordering::Acquire);
    Ok(records::offsets_and_timestamps(&stored)?.into_iter().find(|&(offset, ts)| offset >= log_start && wanted(ts)))
}

/// Whole batches of one partition below `limit`, from the one holding `r.offset`, up to `max_bytes`; with
/// `min_one`, at least one batch even if it is larger.
/// Also returns the offset after the last batch read.
fn read_batches(db: &DB, r: &ReadRequest, limit: i64, max_bytes: usize, min_one: bool) -> Result<(Bytes, i64), ResponseError> {
    let mut out = BytesMut::new();
    let mut end = r.offset;
    if r.offset >= limit || (max_bytes == 0 && !min_one) {
        return Ok((out.freeze(), end));
    }
    let mut it = batches_from(db, r.id, r.offset, limit);
    let mut largest = 0;
    while let Some(value) = it.value() {
        // A batch that ends before the offset holds nothing the client asked for.
        if BatchHeader::new(value).is_some_and(|h| h.last_offset() < r.offset) {
            it.next();
            continue;
        }
        if out.len() + value.len() > max_bytes && !(out.is_empty() && min_one) {
            break;
        }
        out.extend_from_slice(value);
        end = BatchHeader::new(value).map_or(end, |h| h.last_offset() + 1);
        largest = largest.max(value.len());
        // Only reading the next batch tells its size. When one as large as the largest so far
        // would not fit, stop rather than read it for nothing (a fetch may return less than
        // max_bytes; the next fetch starts with it).
        if out.len() + largest > max_bytes {
            break;
        }
        it.next();
    }
    it.status().map_err(read_error)?;
    Ok((out.freeze(), end))
}

fn decode_i64(bytes: &[u8]) -> i64 {
    bytes.try_into().map(i64::from_be_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{encode_batch, BatchSpec};
    use kafka_protocol::records::Compression;

    const OPTS: AppendOptions = AppendOptions { max_batch_bytes: 1 << 20, leader_epoch: 0, log_append_time: None, flush: FlushPolicy::NEVER, require_keys: false };

    /// Reads one partition as a fetch of it alone would.
    async fn read(store: &LogStore, id: PartitionId, offset: i64, max_bytes: usize) -> Result<ReadResult, ResponseError> {
        store.read(&[ReadRequest { id, offset, max_bytes, isolation: FetchIsolation::HighWatermark }], max_bytes).await.pop().unwrap()
    }

    #[tokio::test]
    async fn append_read_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            store.load_partition(1).unwrap();
            store.load_partition(2).unwrap();
            let a = store.append(1, &encode_batch(&BatchSpec::values(3)), OPTS).await.unwrap();
            assert_eq!(a.base_offset, 0);
            let b = store.append(1, &encode_batch(&BatchSpec::values(2)), OPTS).await.unwrap();
            assert_eq!(b.base_offset, 3);
            store.append(2, &encode_batch(&BatchSpec::values(1)), OPTS).await.unwrap();
            assert_eq!(store.offsets(1).unwrap(), (0, 5));
            // Offset 4 lies in the second batch; reading from it returns that batch.
            let r = read(&store, 1, 4, 1 << 20).await.unwrap();
            assert_eq!(BatchHeader::new(&r.records).unwrap().base_offset(), 3);
            assert_eq!(read(&store, 1, 6, 100).await.unwrap_err(), ResponseError::OffsetOutOfRange);
            assert!(read(&store, 1, 5, 100).await.unwrap().records.is_empty());
            // max_bytes smaller than a batch still returns one batch (KIP-74).
            assert!(!read(&store, 1, 0, 1).await.unwrap().records.is_empty());
        }
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        store.load_partition(2).unwrap();
        assert_eq!(store.offsets(1).unwrap(), (0, 5));
        assert_eq!(store.offsets(2).unwrap(), (0, 1));
        let c = store.append(1, &encode_batch(&BatchSpec::values(1)), OPTS).await.unwrap();
        assert_eq!(c.base_offset, 5);
    }

    #[tokio::test]
    async fn read_returns_whole_batches_up_to_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        let batch = encode_batch(&BatchSpec::values(2));
        for _ in 0..4 {
            store.append(1, &batch, OPTS).await.unwrap();
        }
        let n = batch.len();
        let len = |r: Result<ReadResult, ResponseError>| r.unwrap().records.len();
        assert_eq!(len(read(&store, 1, 0, n * 5 / 2).await), 2 * n);
        assert_eq!(len(read(&store, 1, 0, n * 3).await), 3 * n);
        assert_eq!(len(read(&store, 1, 0, n * 10).await), 4 * n);
        assert_eq!(len(read(&store, 1, 0, n - 1).await), n);
    }

    #[test]
    fn second_open_fails_with_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let _first = LogStore::open(dir.path()).unwrap();
        let err = LogStore::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("in use by another Gregor process"), "{err}");
    }

    #[tokio::test]
    async fn idempotent_retry_is_not_written_twice_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let batch = encode_batch(&BatchSpec { producer: Some((9, 0, 0)), ..BatchSpec::values(2) });
        {
            let store = LogStore::open(dir.path()).unwrap();
            store.load_partition(1).unwrap();
            assert_eq!(store.append(1, &batch, OPTS).await.unwrap().base_offset, 0);
            assert_eq!(store.append(1, &batch, OPTS).await.unwrap().base_offset, 0);
            assert_eq!(store.offsets(1).unwrap().1, 2);
        }
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        assert_eq!(store.append(1, &batch, OPTS).await.unwrap().base_offset, 0);
        let gap = encode_batch(&BatchSpec { producer: Some((9, 0, 5)), ..BatchSpec::values(1) });
        assert_eq!(store.append(1, &gap, OPTS).await.unwrap_err(), AppendError::Refused(ResponseError::OutOfOrderSequenceNumber));
        assert_eq!(store.offsets(1).unwrap().1, 2);
    }

    #[tokio::test]
    async fn an_append_cancelled_mid_write_stops_the_partition_until_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let batch = encode_batch(&BatchSpec { producer: Some((9, 0, 0)), ..BatchSpec::values(2) });
        {
            let store = LogStore::open(dir.path()).unwrap();
            store.load_partition(1).unwrap();
            // Polled once, an append queues its write and waits for it: dropped there, as
            // shutdown drops a request. One that finishes within its first poll counts on.
            let mut done = 0;
            loop {
                let next = encode_batch(&BatchSpec { producer: Some((9, 0, 2 * done)), ..BatchSpec::values(2) });
                use std::future::Future;
                let mut append = std::pin::pin!(store.append(1, &next, OPTS));
                match append.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
                    std::task::Poll::Ready(appended) => assert_eq!(appended.unwrap().base_offset, 2 * i64::from(done)),
                    std::task::Poll::Pending => break,
                }
                done += 1;
                assert!(done < 1000, "no append was ever cancelled mid-write");
            }
            // Its write may land: nothing may be written at the same offsets.
            assert_eq!(store.append(1, &batch, OPTS).await, Err(ResponseError::KafkaStorageError.into()));
            assert_eq!(store.truncate_to(1, 0).await, Err(ResponseError::KafkaStorageError));
        }
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        // The cancelled batch landed; the producer's next batch follows it.
        let end = store.offsets(1).unwrap().1;
        let after = encode_batch(&BatchSpec { producer: Some((9, 0, end as i32)), ..BatchSpec::values(1) });
        assert_eq!(store.append(1, &after, OPTS).await.unwrap().base_offset, end);
    }

    #[tokio::test]
    async fn flush_messages_and_flush_ms_sync_as_kafka_documents() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        let syncs = || store.syncer.test_hooks().syncs.load(SeqCst);
        let one = encode_batch(&BatchSpec::values(1));
        // Every third record.
        let every_third = AppendOptions { flush: FlushPolicy { messages: 3, ms: i64::MAX }, ..OPTS };
        for _ in 0..2 {
            store.append(1, &one, every_third).await.unwrap();
        }
        assert_eq!(syncs(), 0);
        store.append(1, &one, every_third).await.unwrap();
        assert_eq!(syncs(), 1, "the third append waited for its sync");
        // Within 300 ms, in the background.
        let timed = AppendOptions { flush: FlushPolicy { messages: i64::MAX, ms: 300 }, ..OPTS };
        store.append(1, &one, timed).await.unwrap();
        assert_eq!(syncs(), 1);
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(syncs(), 2);
    }

    #[tokio::test]
    async fn at_flush_messages_1_nothing_is_readable_before_its_sync() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        let each = AppendOptions { flush: FlushPolicy { messages: 1, ms: i64::MAX }, ..OPTS };
        let two = encode_batch(&BatchSpec::values(2));
        store.syncer.test_hooks().fail.store(true, SeqCst);
        assert_eq!(store.append(1, &two, each).await.unwrap_err(), AppendError::Refused(ResponseError::KafkaStorageError));
        assert_eq!(store.offsets(1).unwrap(), (0, 0), "written but not synced: not readable");
        store.syncer.test_hooks().fail.store(false, SeqCst);
        assert_eq!(store.append(1, &two, each).await.unwrap().base_offset, 2);
        assert_eq!(store.offsets(1).unwrap(), (0, 4));
    }

    #[tokio::test]
    async fn timestamps_inside_compressed_batches_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        for (i, compression) in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd].into_iter().enumerate() {
            let spec = BatchSpec { base_ts: 1000 * (i as i64 + 1), compression, ..BatchSpec::values(3) };
            store.append(1, &encode_batch(&spec), OPTS).await.unwrap();
        }
        // Batches: offsets 0-2 @1000,1010,1020 (gzip); 3-5 @2000.. (snappy); 6-8 (lz4); 9-11 (zstd).
        assert_eq!(store.offset_for_timestamp(1, 1015).await.unwrap(), Some((2, 1020)));
        assert_eq!(store.offset_for_timestamp(1, 2001).await.unwrap(), Some((4, 2010)));
        assert_eq!(store.offset_for_timestamp(1, 3020).await.unwrap(), Some((8, 3020)));
        assert_eq!(store.max_timestamp_offset(1).await.unwrap(), Some((11, 4020)));
    }

    #[tokio::test]
    async fn a_log_written_before_the_index_is_indexed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            store.load_partition(1).unwrap();
            for i in 0..3 {
                let spec = BatchSpec { base_ts: 1000 * (i + 1), ..BatchSpec::values(2) };
                store.append(1, &encode_batch(&spec), OPTS).await.unwrap();
            }
            // As a data directory from before the index looks: batches, no entries.
            let db = store.io.db().get().unwrap();
            db.delete_range_cf(index_cf(&db), log_key(1, 0), log_key(2, 0)).unwrap();
        }
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        assert_eq!(store.offsets(1).unwrap(), (0, 6));
        assert_eq!(store.offset_for_timestamp(1, 2005).await.unwrap(), Some((3, 2010)));
        assert_eq!(store.apply_retention(1, 1500, -1, 3100).await.unwrap(), 2);
        assert_eq!(store.append(1, &encode_batch(&BatchSpec::values(1)), OPTS).await.unwrap().base_offset, 6);
    }

    #[tokio::test]
    async fn timestamps_retention_and_delete_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        for i in 0..4 {
            let spec = BatchSpec { base_ts: 1000 * (i + 1), ..BatchSpec::values(2) };
            store.append(1, &encode_batch(&spec), OPTS).await.unwrap();
        }
        // Batches: offsets 0-1 @1000,1010; 2-3 @2000,2010; 4-5 @3000; 6-7 @4000.
        assert_eq!(store.offset_for_timestamp(1, 2005).await.unwrap(), Some((3, 2010)));
        assert_eq!(store.offset_for_timestamp(1, 9999).await.unwrap(), None);
        assert_eq!(store.max_timestamp_offset(1).await.unwrap(), Some((7, 4010)));
        // Everything older than 2500 ms before now=5000 goes: the first two batches.
        assert_eq!(store.apply_retention(1, 2500, -1, 5000).await.unwrap(), 4);
        assert_eq!(read(&store, 1, 2, 100).await.unwrap_err(), ResponseError::OffsetOutOfRange);
        assert_eq!(store.delete_records(1, 5).await.unwrap(), 5);
        let r = read(&store, 1, 5, 1 << 20).await.unwrap();
        assert_eq!(BatchHeader::new(&r.records).unwrap().base_offset(), 4);
        // Size retention never drops the last batch.
        assert_eq!(store.apply_retention(1, -1, 0, 5000).await.unwrap(), 6);
    }

    fn at_epoch(epoch: i32) -> AppendOptions {
        AppendOptions { leader_epoch: epoch, ..OPTS }
    }

    const REPLICA: ReplicaAppendOptions = ReplicaAppendOptions { flush: FlushPolicy::NEVER, allow_gaps: false };

    /// A batch as a leader stores it: at `base` in `epoch`.
    fn placed(spec: &BatchSpec, base: i64, epoch: i32) -> Vec<u8> {
        let mut out = Vec::new();
        batch::assign(&encode_batch(spec), base, epoch, &mut out);
        out
    }

    fn idempotent(pid: i64, seq: i32, count: i64) -> Vec<u8> {
        encode_batch(&BatchSpec { producer: Some((pid, 0, seq)), ..BatchSpec::values(count) })
    }

    fn txn_batch(pid: i64, epoch: i16, seq: i32, count: i64) -> Vec<u8> {
        encode_batch(&BatchSpec { producer: Some((pid, epoch, seq)), transactional: true, ..BatchSpec::values(count) })
    }

    fn marker(pid: i64, epoch: i16, commit: bool) -> Marker {
        Marker { producer_id: pid, producer_epoch: epoch, coordinator_epoch: 0, commit }
    }

    async fn read_committed(store: &LogStore, id: PartitionId, offset: i64) -> ReadResult {
        store.read(&[ReadRequest { id, offset, max_bytes: 1 << 20, isolation: FetchIsolation::TxnCommitted }], 1 << 20).await.pop().unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_fencing_marker_with_nothing_open_is_written_and_fences_the_old_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        // Producer 9's partition was added to its transaction, but its batch comes after the
        // successor's fencing abort (epoch 1): it must not open a transaction here.
        assert_eq!(store.write_marker(1, &marker(9, 1, false), OPTS).await.unwrap(), Some(0));
        assert_eq!(store.append(1, &txn_batch(9, 0, 0, 1), OPTS).await.unwrap_err(), AppendError::Refused(ResponseError::InvalidProducerEpoch));
        assert_eq!(store.write_marker(1, &marker(9, 1, false), OPTS).await.unwrap(), None, "a repeated marker is not written");
        assert!(!store.has_open_transaction(1, 9).await.unwrap());
        assert_eq!(store.last_stable_offset(1).unwrap(), 1);
        // Its successor's batches (epoch 1) go on.
        assert_eq!(store.append(1, &txn_batch(9, 1, 0, 1), OPTS).await.unwrap().base_offset, 1);
        assert!(store.has_open_transaction(1, 9).await.unwrap());
    }

    #[tokio::test]
    async fn transactions_hold_the_lso_and_aborts_are_indexed_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            store.load_partition(1).unwrap();
            // Producer 7: 0-1 then 3 (one transaction), producer 8: 2, plain 4.
            store.append(1, &txn_batch(7, 0, 0, 2), OPTS).await.unwrap();
            store.append(1, &txn_batch(8, 0, 0, 1), OPTS).await.unwrap();
            store.append(1, &txn_batch(7, 0, 2, 1), OPTS).await.unwrap();
            store.append(1, &encode_batch(&BatchSpec::values(1)), OPTS).await.unwrap();
            assert_eq!(store.last_stable_offset(1).unwrap(), 0);
            let r = read_committed(&store, 1, 0).await;
            assert_eq!((r.high_watermark, r.last_stable_offset, r.records.len()), (5, 0, 0));
            assert_eq!(store.write_marker(1, &marker(7, 0, false), OPTS).await.unwrap(), Some(5));
            assert_eq!(store.write_marker(1, &marker(7, 0, false), OPTS).await.unwrap(), None, "a repeated marker is not written");
            assert_eq!(store.last_stable_offset(1).unwrap(), 2, "8's transaction is still open");
            // 7 goes on in its next transaction with its next sequence.
            assert_eq!(store.append(1, &txn_batch(7, 0, 3, 1), OPTS).await.unwrap().base_offset, 6);
            assert_eq!(store.write_marker(1, &marker(8, 1, true), OPTS).await.unwrap(), Some(7));
            assert_eq!(store.last_stable_offset(1).unwrap(), 6);
        }
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        assert_eq!(store.last_stable_offset(1).unwrap(), 6, "the open transaction is found again");
        let r = read_committed(&store, 1, 0).await;
        assert_eq!((r.last_stable_offset, batch_bases(&r.records)), (6, vec![0, 2, 3, 4, 5]));
        assert_eq!(r.aborted, vec![(7, 0)]);
        assert!(read_committed(&store, 1, 6).await.aborted.is_empty(), "the abort lies before the fetch");
        // The commit marker of epoch 1 fenced 8's epoch 0.
        assert_eq!(store.append(1, &txn_batch(8, 0, 1, 1), OPTS).await.unwrap_err(), AppendError::Refused(ResponseError::InvalidProducerEpoch));
        assert_eq!(store.write_marker(1, &marker(7, 0, true), OPTS).await.unwrap(), Some(8));
        assert_eq!(store.last_stable_offset(1).unwrap(), 9);
        // A truncation that cuts the ABORT marker opens its transaction again.
        assert_eq!(store.truncate_to(1, 5).await.unwrap(), 5);
        assert_eq!(store.last_stable_offset(1).unwrap(), 0);
        assert_eq!(read_committed(&store, 1, 0).await.records.len(), 0);
    }

    #[tokio::test]
    async fn deleting_records_past_an_abort_marker_forgets_the_aborted_transaction() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            store.load_partition(1).unwrap();
            // Producer 7 aborts 0-1 (marker 2), then 8 aborts 3 (marker 4); a plain record at 5.
            store.append(1, &txn_batch(7, 0, 0, 2), OPTS).await.unwrap();
            assert_eq!(store.write_marker(1, &marker(7, 0, false), OPTS).await.unwrap(), Some(2));
            store.append(1, &txn_batch(8, 0, 0, 1), OPTS).await.unwrap();
            assert_eq!(store.write_marker(1, &marker(8, 0, false), OPTS).await.unwrap(), Some(4));
            store.append(1, &encode_batch(&BatchSpec::values(1)), OPTS).await.unwrap();
            assert_eq!(read_committed(&store, 1, 0).await.aborted, vec![(7, 0), (8, 3)]);
            assert_eq!(store.delete_records(1, 3).await.unwrap(), 3);
            assert_eq!(store.partition(1).unwrap().aborted.lock().unwrap().len(), 1, "the first abort's marker is gone with its records");
            assert_eq!(read_committed(&store, 1, 3).await.aborted, vec![(8, 3)]);
        }
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        assert_eq!(store.partition(1).unwrap().aborted.lock().unwrap().len(), 1, "and from the store");
        assert_eq!(read_committed(&store, 1, 3).await.aborted, vec![(8, 3)]);
    }

    #[tokio::test]
    async fn end_offset_for_epoch_answers_as_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        // Offsets 0-1 and 2-3 in epoch 0, 4-5 in epoch 1, 6-7 in epoch 3.
        for epoch in [0, 0, 1, 3] {
            store.append(1, &encode_batch(&BatchSpec::values(2)), at_epoch(epoch)).await.unwrap();
        }
        let ends: Vec<(i32, i64)> = futures_util::future::join_all((0..=4).map(|e| store.end_offset_for_epoch(1, e))).await.into_iter().map(Result::unwrap).collect();
        // 2 was never used: its floor is 1, which ends where 3 begins. The latest epoch, and any
        // above it, ends at the log end.
        assert_eq!(ends, vec![(0, 4), (1, 6), (1, 6), (3, 8), (3, 8)]);
        assert_eq!(store.end_offset_for_epoch(1, -1).await.unwrap(), UNDEFINED_EPOCH_END);

        store.load_partition(2).unwrap();
        assert_eq!(store.end_offset_for_epoch(2, 0).await.unwrap(), UNDEFINED_EPOCH_END, "an empty log");
        store.append(2, &encode_batch(&BatchSpec::values(2)), at_epoch(5)).await.unwrap();
        assert_eq!(store.end_offset_for_epoch(2, 4).await.unwrap(), (4, 0), "below every epoch: itself, ending at the first offset");

        // Many batches: the binary search over offsets lands on each boundary.
        store.load_partition(3).unwrap();
        for i in 0..100 {
            store.append(3, &encode_batch(&BatchSpec::values(1 + i % 3)), at_epoch(2 * (i as i32 / 7))).await.unwrap();
        }
        let mut starts = HashMap::new();
        let entries: Vec<BatchEntry> = store.io.read(|db| Ok(Entries::new(db, 3, 0, i64::MAX).collect())).await.unwrap();
        for e in &entries {
            starts.entry(e.leader_epoch).or_insert(e.base_offset);
        }
        let end = store.log_end_offset(3).unwrap();
        for epoch in 0..=entries.last().unwrap().leader_epoch {
            let floor = epoch - epoch % 2;
            let expected = starts.get(&(floor + 2)).copied().unwrap_or(end);
            assert_eq!(store.end_offset_for_epoch(3, epoch).await.unwrap(), (floor, expected), "epoch {epoch}");
        }
    }

    #[tokio::test]
    async fn the_high_watermark_can_be_held_back_by_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        store.append(1, &encode_batch(&BatchSpec::values(2)), OPTS).await.unwrap();
        assert_eq!((store.offsets(1).unwrap().1, store.log_end_offset(1).unwrap()), (2, 2), "by default it follows the log end");

        store.set_high_watermark_mode(1, HighWatermark::Caller).unwrap();
        store.append(1, &encode_batch(&BatchSpec::values(3)), OPTS).await.unwrap();
        store.append(1, &encode_batch(&BatchSpec::values(1)), OPTS).await.unwrap();
        assert_eq!((store.offsets(1).unwrap().1, store.log_end_offset(1).unwrap()), (2, 6));
        assert!(read(&store, 1, 2, 1 << 20).await.unwrap().records.is_empty(), "nothing above it is readable");
        assert!(read(&store, 1, 3, 100).await.unwrap().records.is_empty(), "nor from within the log past it");

        // A fetch waiting for data is woken when it moves.
        let woken = Arc::new(Notify::new());
        store.watch(&[1], &woken);
        assert_eq!(store.set_high_watermark(1, 5).unwrap(), 5);
        tokio::time::timeout(std::time::Duration::from_secs(5), woken.notified()).await.unwrap();
        let r = read(&store, 1, 2, 1 << 20).await.unwrap();
        assert_eq!((r.high_watermark, batch_bases(&r.records)), (5, vec![2]));
        assert_eq!(store.set_high_watermark(1, 3).unwrap(), 5, "never back");
        assert_eq!(store.set_high_watermark(1, 100).unwrap(), 6, "never past the log end");

        store.append(1, &encode_batch(&BatchSpec::values(1)), OPTS).await.unwrap();
        assert_eq!(store.offsets(1).unwrap().1, 6);
        store.set_high_watermark_mode(1, HighWatermark::LogEnd).unwrap();
        assert_eq!(store.offsets(1).unwrap().1, 7, "back to following the log end, at once");
    }

    /// A replicated log reopens at its checkpointed high watermark, never past its log end,
    /// and a truncation below the checkpoint takes the checkpoint down with it.
    #[tokio::test]
    async fn a_reopened_replicated_log_resumes_at_its_checkpointed_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let reopen = || {
            let store = LogStore::open(dir.path()).unwrap();
            store.load_partition_in(1, HighWatermark::Caller).unwrap();
            store
        };
        let store = reopen();
        for _ in 0..4 {
            store.append(1, &encode_batch(&BatchSpec::values(2)), OPTS).await.unwrap();
        }
        store.set_high_watermark(1, 6).unwrap();
        drop(store);
        let store = reopen();
        assert_eq!(store.offsets(1).unwrap(), (0, 0), "no checkpoint yet: the log start");
        store.set_high_watermark(1, 6).unwrap();
        store.checkpoint_high_watermarks().await.unwrap();
        store.set_high_watermark(1, 8).unwrap();
        drop(store);
        let store = reopen();
        assert_eq!(store.offsets(1).unwrap(), (0, 6), "what was checkpointed, not what was set after");
        assert!(read(&store, 1, 6, 1 << 20).await.unwrap().records.is_empty(), "nor does it serve past it");

        assert_eq!(store.truncate_to(1, 2).await.unwrap(), 2);
        store.append(1, &encode_batch(&BatchSpec::values(6)), OPTS).await.unwrap();
        drop(store);
        let store = reopen();
        assert_eq!(store.offsets(1).unwrap(), (0, 2), "the checkpoint came down with the truncation");
    }

    /// Base offsets of the batches in a read.
    fn batch_bases(mut records: &[u8]) -> Vec<i64> {
        let mut bases = Vec::new();
        while let Some(h) = BatchHeader::new(records) {
            bases.push(h.base_offset());
            records = &records[(i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize + 12)..];
        }
        bases
    }

    #[tokio::test]
    async fn a_follower_stores_the_leaders_batches_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        let (leader, follower) = (1, 2);
        store.load_partition(leader).unwrap();
        store.load_partition(follower).unwrap();
        store.append(leader, &encode_batch(&BatchSpec::values(3)), at_epoch(0)).await.unwrap();
        store.append(leader, &idempotent(9, 0, 2), at_epoch(1)).await.unwrap();
        let gzip = BatchSpec { compression: Compression::Gzip, producer: Some((9, 0, 2)), ..BatchSpec::values(4) };
        store.append(leader, &encode_batch(&gzip), at_epoch(1)).await.unwrap();
        let lat = AppendOptions { log_append_time: Some(1_800_000_000_000), ..at_epoch(4) };
        store.append(leader, &encode_batch(&BatchSpec::values(1)), lat).await.unwrap();

        // Two fetches' worth, the second holding several batches.
        let first = read(&store, leader, 0, 1).await.unwrap().records;
        assert_eq!(store.append_replicated(follower, &first, REPLICA).await.unwrap(), 3);
        let rest = read(&store, leader, 3, 1 << 20).await.unwrap().records;
        assert_eq!(store.append_replicated(follower, &rest, REPLICA).await.unwrap(), 10);

        assert_eq!(read(&store, follower, 0, 1 << 20).await.unwrap().records, read(&store, leader, 0, 1 << 20).await.unwrap().records);
        assert_eq!(store.offsets(follower).unwrap(), store.offsets(leader).unwrap());
        assert_eq!(store.size(follower).unwrap(), store.size(leader).unwrap());
        for epoch in 0..=5 {
            assert_eq!(store.end_offset_for_epoch(follower, epoch).await.unwrap(), store.end_offset_for_epoch(leader, epoch).await.unwrap());
        }
        // Its producer states are the leader's: after a failover, a retry is still recognised.
        assert_eq!(store.append(follower, &encode_batch(&gzip), OPTS).await.unwrap().base_offset, 5);
        assert_eq!(store.append(follower, &idempotent(9, 6, 1), OPTS).await.unwrap().base_offset, 10);
    }

    #[tokio::test]
    async fn a_follower_refuses_gaps_overlaps_and_older_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        let two = BatchSpec::values(2);
        let mut fetched = placed(&two, 0, 1);
        fetched.extend(placed(&two, 2, 1));
        assert_eq!(store.append_replicated(1, &fetched, REPLICA).await.unwrap(), 4);

        let refused = |r: Result<i64, ReplicaAppendError>| r.unwrap_err();
        assert_eq!(refused(store.append_replicated(1, &fetched, REPLICA).await), ReplicaAppendError::Misplaced { expected: 4, base_offset: 0 });
        assert_eq!(refused(store.append_replicated(1, &placed(&two, 3, 1), REPLICA).await), ReplicaAppendError::Misplaced { expected: 4, base_offset: 3 });
        assert_eq!(refused(store.append_replicated(1, &placed(&two, 6, 1), REPLICA).await), ReplicaAppendError::Misplaced { expected: 4, base_offset: 6 });
        // A gap between two batches of one fetch: the first is not written either.
        let mut gapped = placed(&two, 4, 1);
        gapped.extend(placed(&two, 7, 1));
        assert_eq!(refused(store.append_replicated(1, &gapped, REPLICA).await), ReplicaAppendError::Misplaced { expected: 6, base_offset: 7 });
        assert_eq!(refused(store.append_replicated(1, &placed(&two, 4, 0), REPLICA).await), ReplicaAppendError::EpochRegression { last_epoch: 1, batch_epoch: 0 });
        let mut corrupt = placed(&two, 4, 1);
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(refused(store.append_replicated(1, &corrupt, REPLICA).await), ReplicaAppendError::Refused(ResponseError::CorruptMessage));
        assert_eq!(store.log_end_offset(1).unwrap(), 4, "nothing refused was written");

        // A compacted leader's log has gaps; allowed, they are kept.
        let compacted = ReplicaAppendOptions { allow_gaps: true, ..REPLICA };
        assert_eq!(store.append_replicated(1, &gapped, compacted).await.unwrap(), 9);
        // A partial batch at the end of a fetch waits for the next one.
        let mut partial = placed(&two, 9, 2);
        let whole = partial.clone();
        partial.extend_from_slice(&placed(&two, 11, 2)[..30]);
        assert_eq!(store.append_replicated(1, &partial, REPLICA).await.unwrap(), 11);
        let r = read(&store, 1, 0, 1 << 20).await.unwrap();
        assert_eq!(batch_bases(&r.records), vec![0, 2, 4, 7, 9]);
        assert!(r.records.ends_with(&whole));
    }

    #[tokio::test]
    async fn a_consumer_past_the_high_watermark_but_within_the_log_waits_without_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        // A new leader: its high watermark (2) trails the offsets its predecessor had shown.
        store.set_high_watermark_mode(1, HighWatermark::Caller).unwrap();
        store.append(1, &encode_batch(&BatchSpec::values(5)), OPTS).await.unwrap();
        store.set_high_watermark(1, 2).unwrap();
        for offset in 2..=5 {
            let r = read(&store, 1, offset, 1 << 20).await.unwrap();
            assert!(r.records.is_empty(), "offset {offset}: nothing past the high watermark yet");
            assert_eq!(r.high_watermark, 2);
        }
        assert_eq!(read(&store, 1, 6, 1 << 20).await.unwrap_err(), ResponseError::OffsetOutOfRange, "past the log end");
    }

    #[tokio::test]
    async fn truncate_to_drops_whole_batches_from_the_one_holding_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        // Offsets 0-2 (epoch 0), 3-5 and 6-7 (epoch 1), 8 (epoch 2).
        for (count, epoch) in [(3, 0), (3, 1), (2, 1), (1, 2)] {
            store.append(1, &encode_batch(&BatchSpec::values(count)), at_epoch(epoch)).await.unwrap();
        }
        let first_batch = read(&store, 1, 0, 1).await.unwrap().records.len() as u64;
        store.set_high_watermark_mode(1, HighWatermark::Caller).unwrap();
        store.set_high_watermark(1, 6).unwrap();

        assert_eq!(store.truncate_to(1, 9).await.unwrap(), 9, "nothing at or after the log end");
        assert_eq!(store.truncate_to(1, 4).await.unwrap(), 3, "down to the base of the batch holding 4");
        assert_eq!(store.offsets(1).unwrap(), (0, 3), "the high watermark comes down with it");
        assert_eq!(store.log_end_offset(1).unwrap(), 3);
        assert_eq!(store.size(1).unwrap(), first_batch);
        assert_eq!(store.end_offset_for_epoch(1, 1).await.unwrap(), (0, 3));
        assert_eq!(store.append(1, &encode_batch(&BatchSpec::values(2)), at_epoch(3)).await.unwrap().base_offset, 3);
        store.set_high_watermark(1, 5).unwrap();
        let r = read(&store, 1, 0, 1 << 20).await.unwrap();
        assert_eq!(batch_bases(&r.records), vec![0, 3]);
        assert_eq!(store.end_offset_for_epoch(1, 1).await.unwrap(), (0, 3));
        assert_eq!(store.end_offset_for_epoch(1, 3).await.unwrap(), (3, 5));

        // Never below the log start, not even for a batch that straddles it.
        assert_eq!(store.delete_records(1, 4).await.unwrap(), 4);
        assert_eq!(store.truncate_to(1, 3).await.unwrap_err(), ResponseError::OffsetOutOfRange);
        assert_eq!(store.truncate_to(1, 4).await.unwrap_err(), ResponseError::OffsetOutOfRange);
        assert_eq!(store.log_end_offset(1).unwrap(), 5);
    }

    #[tokio::test]
    async fn producer_retries_are_deduplicated_after_truncation_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let layout = [(7, 0, 2), (8, 0, 1), (7, 2, 2), (8, 1, 1), (8, 2, 1), (8, 3, 1), (8, 4, 1), (8, 5, 1), (7, 4, 1)];
        {
            let store = LogStore::open(dir.path()).unwrap();
            store.load_partition(1).unwrap();
            // Producer 7: offsets 0-1, 3-4 and 10. Producer 8: 2, then 5..=9, so the five it
            // remembers all lie past the cut at 5 and its batch at 2 must be read back.
            for (pid, seq, count) in layout {
                store.append(1, &idempotent(pid, seq, count), OPTS).await.unwrap();
            }
            assert_eq!(store.truncate_to(1, 5).await.unwrap(), 5);
        }
        // What a kill right after the truncation leaves: one atomic write, all of it or none.
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        assert_eq!(store.offsets(1).unwrap(), (0, 5));
        let r = read(&store, 1, 0, 1 << 20).await.unwrap();
        assert_eq!(batch_bases(&r.records), vec![0, 2, 3]);
        assert_eq!(store.size(1).unwrap(), r.records.len() as u64);
        let retry = |pid, seq, count| {
            let store = &store;
            async move { store.append(1, &idempotent(pid, seq, count), OPTS).await.map(|a| a.base_offset) }
        };
        assert_eq!(retry(7, 2, 2).await, Ok(3), "a retry of a batch left is a duplicate");
        assert_eq!(retry(8, 0, 1).await, Ok(2), "found again by reading back");
        assert_eq!(retry(8, 3, 1).await, Err(AppendError::Refused(ResponseError::OutOfOrderSequenceNumber)));
        assert_eq!(retry(7, 4, 1).await, Ok(5), "a batch truncated away is written again");
        assert_eq!(retry(8, 1, 1).await, Ok(6));
        assert_eq!(retry(7, 4, 1).await, Ok(5));
        assert_eq!(retry(7, 0, 2).await, Ok(0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_truncation_waits_for_appends_in_flight_so_none_publishes_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path()).unwrap());
        store.load_partition(1).unwrap();
        // At flush.messages=1 each append waits for its sync after releasing the writer.
        let synced = AppendOptions { flush: FlushPolicy { messages: 1, ms: i64::MAX }, ..OPTS };
        for round in 0..5 {
            let appends: Vec<_> = (0..20)
                .map(|_| {
                    let store = store.clone();
                    tokio::spawn(async move { store.append(1, &encode_batch(&BatchSpec::values(1)), synced).await.unwrap() })
                })
                .collect();
            tokio::task::yield_now().await;
            let cut = store.truncate_to(1, 5 * round).await.unwrap();
            for a in appends {
                a.await.unwrap();
            }
            let end = store.log_end_offset(1).unwrap();
            let r = read(&store, 1, 0, 1 << 30).await.unwrap();
            let last = batch_bases(&r.records).last().map_or(0, |&b| b + 1);
            assert_eq!((end, store.offsets(1).unwrap().1), (last, last), "round {round}, cut at {cut}");
            assert_eq!(store.size(1).unwrap(), r.records.len() as u64);
        }
    }
}
