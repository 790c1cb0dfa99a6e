//! Log compaction (`cleanup.policy=compact`): the latest record of each key stays, older ones go,
//! offsets never change (gaps are normal), tombstones go once `delete.retention.ms` has passed.
//!
//! A pass over one partition, on the store's housekeeping thread:
//! 1. The cleanable range runs from the log start to the first uncleanable batch: the last
//!    batch (the head, still being written after) or the first one with a record younger than
//!    `min.compaction.lag.ms`. It is cleaned when its not-yet-cleaned ("dirty") part is at least
//!    `min.cleanable.dirty.ratio` of its bytes, its oldest dirty record is older than
//!    `max.compaction.lag.ms`, or a tombstone a pass kept has outlived `delete.retention.ms`.
//! 2. Every key of the dirty part maps to its last offset (bounded by
//!    `log.cleaner.dedupe.buffer.size`; a partition with more keys takes several passes).
//! 3. Each batch of the range keeps the records that are the latest of their key (and, for a
//!    tombstone, younger than `delete.retention.ms`), rewritten with the same base offset, last
//!    offset delta, producer fields and codec; an emptied batch goes.
//!
//! Rewrites are written in bounded chunks, each one atomic with its index entries and the
//! partition's byte count; the last one also records how far the log is clean. A `kill -9`
//! mid-pass leaves some batches rewritten: every key's latest record is still there (only
//! records something later supersedes are ever dropped, oldest first), and the next pass does
//! the rest. Transactional and control batches are kept as they are (the transaction rules
//! for them come with transactions).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use rocksdb::{WriteBatch, DB};

use super::batch::BatchHeader;
use super::db::Db;
use super::index::{index_cf, BatchEntry, Entries};
use super::records::{self, RawRecord};
use super::{decode_i64, log_cf, log_key, meta_cf, meta_key, read_error, LogStore, PartitionId, PartitionLog, BYTES};

/// `meta` key kinds: the offset below which a partition is clean, and when the first tombstone
/// a pass kept may go.
const CLEANED: u8 = b'c';
const TOMBSTONES_DUE: u8 = b't';

/// The stored offset below which a partition is clean.
pub(super) fn clean_upto(db: &DB, id: PartitionId) -> Result<Option<i64>, ResponseError> {
    db.get_cf(meta_cf(db), meta_key(id, CLEANED, &[])).map_err(read_error).map(|v| v.map(|v| decode_i64(&v)))
}

/// Brings the clean offset down to a truncation's cut, so batches appended after it are dirty.
pub(super) fn put_clean_upto(db: &DB, write: &mut WriteBatch, id: PartitionId, offset: i64) {
    write.put_cf(meta_cf(db), meta_key(id, CLEANED, &[]), offset.to_be_bytes());
}

/// Bytes a key costs in the dedupe map besides its own: the map's entry and bookkeeping.
const MAP_OVERHEAD: u64 = 48;

/// A topic's compaction settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compaction {
    pub min_lag_ms: i64,
    pub max_lag_ms: i64,
    pub min_dirty_ratio: f64,
    pub delete_retention_ms: i64,
}

/// The broker's limits on the cleaner (`log.cleaner.*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerLimits {
    pub io_max_bytes_per_second: f64,
    pub dedupe_buffer_bytes: u64,
    /// Rewritten bytes per atomic write (`log.cleaner.io.buffer.size`).
    pub io_buffer_bytes: usize,
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cleaned {
    /// The offset below which the partition is now clean.
    pub clean_upto: i64,
    pub batches_rewritten: usize,
    pub batches_removed: usize,
    pub records_removed: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl LogStore {
    /// Compacts a partition if it is due (`None` if not), off the async runtime.
    pub async fn clean(&self, id: PartitionId, policy: Compaction, limits: CleanerLimits, now: i64) -> Result<Option<Cleaned>, ResponseError> {
        let log = self.partition(id)?;
        let (db, stopping) = (self.io.db_arc(), self.io.stopping());
        self.io.housekeeping(move || Pass { db: &db, log: &log, policy, limits, now, stopping: &stopping }.run()).await
    }
}

struct Pass<'a> {
    db: &'a Db,
    log: &'a PartitionLog,
    policy: Compaction,
    limits: CleanerLimits,
    now: i64,
    stopping: &'a AtomicBool,
}

/// A batch of the cleanable range, as the pass will write it.
enum Rewrite {
    Keep,
    Remove,
    Replace(Vec<u8>),
}

impl Pass<'_> {
    fn run(&self) -> Result<Option<Cleaned>, ResponseError> {
        let handle = self.db.get()?;
        let db: &DB = &handle;
        let id = self.log.id;
        // Taken with the writer held, so a truncation is wholly before or after it.
        let truncations = { let _writer = self.log.writer.blocking_lock(); self.log.truncations.load(Ordering::Acquire) };
        let log_start = self.log.log_start.load(Ordering::Acquire);
        let high_watermark = self.log.high_watermark.load(Ordering::Acquire);
        let clean_upto = clean_upto(db, id)?.unwrap_or(log_start).max(log_start);
        let tombstones_due = db.get_cf(meta_cf(db), meta_key(id, TOMBSTONES_DUE, &[])).map_err(read_error)?.is_some_and(|due| decode_i64(&due) <= self.now);
        // Nothing new before the head, and no tombstone due: no need to look further.
        let head = Entries::last(db, id).map_err(read_error)?;
        if head.is_none_or(|h| h.base_offset <= clean_upto) && !tombstones_due {
            return Ok(None);
        }
        let mut entries = Entries::new(db, id, log_start, high_watermark);
        let all: Vec<BatchEntry> = entries.by_ref().collect();
        entries.status().map_err(read_error)?;
        // The head (last batch) and anything younger than the minimum lag stay as they are.
        let young = all.iter().position(|e| e.max_timestamp > self.now.saturating_sub(self.policy.min_lag_ms)).unwrap_or(all.len());
        let cleanable = &all[..young.min(all.len().saturating_sub(1))];
        let first_dirty = cleanable.iter().position(|e| e.last_offset >= clean_upto).unwrap_or(cleanable.len());
        let dirty = &cleanable[first_dirty..];
        let bytes = |entries: &[BatchEntry]| entries.iter().map(|e| e.bytes as u64).sum::<u64>();
        let ratio = bytes(dirty) as f64 / bytes(cleanable).max(1) as f64;
        let overdue = dirty.first().is_some_and(|oldest| self.policy.max_lag_ms != i64::MAX && oldest.max_timestamp < self.now.saturating_sub(self.policy.max_lag_ms));
        let due = (!dirty.is_empty() && (ratio >= self.policy.min_dirty_ratio || overdue)) || tombstones_due;
        if !due {
            return Ok(None);
        }
        let mut throttle = Throttle::new(self.limits.io_max_bytes_per_second);
        let (latest, mapped) = self.latest_offsets(db, dirty, &mut throttle)?;
        let range = &cleanable[..first_dirty + mapped];
        let end = all.get(first_dirty + mapped).map_or(high_watermark, |e| e.base_offset);
        let mut cleaned = Cleaned { clean_upto: end, bytes_before: bytes(range), bytes_after: bytes(range), ..Cleaned::default() };
        let mut chunk: Vec<(BatchEntry, Rewrite)> = Vec::new();
        let mut chunk_bytes = 0;
        let mut next_tombstone_due = None;
        for (i, entry) in range.iter().enumerate() {
            if self.stopping.load(Ordering::Acquire) {
                return Ok(None);
            }
            let stored = db.get_pinned_cf(log_cf(db), log_key(id, entry.base_offset)).map_err(read_error)?;
            let Some(stored) = stored else { continue };
            throttle.account(stored.len());
            let (rewrite, removed, tombstone_due) = self.rewrite(&stored, &latest)?;
            cleaned.records_removed += removed;
            next_tombstone_due = [next_tombstone_due, tombstone_due].into_iter().flatten().min();
            chunk_bytes += match &rewrite {
                Rewrite::Replace(b) => b.len(),
                _ => 0,
            };
            chunk.push((*entry, rewrite));
            let last = i + 1 == range.len();
            if chunk_bytes >= self.limits.io_buffer_bytes || last {
                if !self.write_chunk(db, truncations, std::mem::take(&mut chunk), last.then_some((end, next_tombstone_due)), &mut cleaned)? {
                    return Ok(None);
                }
                throttle.account(chunk_bytes);
                chunk_bytes = 0;
            }
        }
        if range.is_empty() && !self.write_chunk(db, truncations, Vec::new(), Some((end, None)), &mut cleaned)? {
            return Ok(None);
        }
        Ok(Some(cleaned))
    }

    /// The last offset of each key in `dirty`, and how many of its batches that covers (fewer
    /// than all when the dedupe buffer fills).
    fn latest_offsets(&self, db: &DB, dirty: &[BatchEntry], throttle: &mut Throttle) -> Result<(HashMap<Vec<u8>, i64>, usize), ResponseError> {
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut used = 0u64;
        for (i, entry) in dirty.iter().enumerate() {
            if used > self.limits.dedupe_buffer_bytes {
                return Ok((latest, i));
            }
            let stored = db.get_pinned_cf(log_cf(db), log_key(self.log.id, entry.base_offset)).map_err(read_error)?;
            let Some(stored) = stored else { continue };
            throttle.account(stored.len());
            let header = BatchHeader::new(&stored).ok_or(ResponseError::CorruptMessage)?;
            if header.is_control() || header.is_transactional() {
                continue;
            }
            let section = records::section(&header)?;
            for record in records::walk(&section, header.record_count()) {
                let record = record?;
                let Some(key) = record.key else { continue };
                let offset = header.base_offset() + record.offset_delta;
                match latest.get_mut(key) {
                    Some(last) => *last = offset,
                    None => {
                        used += key.len() as u64 + MAP_OVERHEAD;
                        latest.insert(key.to_vec(), offset);
                    }
                }
            }
        }
        Ok((latest, dirty.len()))
    }

    /// What becomes of one stored batch, how many of its records go, and when the first
    /// tombstone it keeps may go.
    fn rewrite(&self, stored: &[u8], latest: &HashMap<Vec<u8>, i64>) -> Result<(Rewrite, usize, Option<i64>), ResponseError> {
        let header = BatchHeader::new(stored).ok_or(ResponseError::CorruptMessage)?;
        if header.is_control() || header.is_transactional() {
            return Ok((Rewrite::Keep, 0, None));
        }
        let section = records::section(&header)?;
        let all: Vec<RawRecord> = records::walk(&section, header.record_count()).collect::<Result<_, _>>()?;
        let tombstone_horizon = self.now.saturating_sub(self.policy.delete_retention_ms);
        let kept: Vec<RawRecord> = all
            .iter()
            .filter(|r| {
                let Some(key) = r.key else { return true };
                let offset = header.base_offset() + r.offset_delta;
                let superseded = latest.get(key).is_some_and(|&last| offset < last);
                let expired_tombstone = r.value.is_none() && header.base_timestamp() + r.timestamp_delta < tombstone_horizon;
                !superseded && !expired_tombstone
            })
            .copied()
            .collect();
        let removed = all.len() - kept.len();
        let tombstone_due = kept
            .iter()
            .filter(|r| r.value.is_none())
            .map(|r| (header.base_timestamp() + r.timestamp_delta).saturating_add(self.policy.delete_retention_ms))
            .min();
        let rewrite = match removed {
            0 => Rewrite::Keep,
            _ => match records::rebuild(stored, &kept)? {
                Some(rebuilt) => Rewrite::Replace(rebuilt),
                None => Rewrite::Remove,
            },
        };
        Ok((rewrite, removed, tombstone_due))
    }

    /// Writes one chunk atomically with the partition's byte count (and, for the last one, how
    /// far the log is clean and when its first tombstone may go), under the partition's writer
    /// lock so no append or truncation interleaves. Batches retention removed meanwhile are
    /// left alone; after a truncation from the end since the pass began (`truncations`
    /// changed) nothing is written and the pass stops: false. The batches it read may be gone,
    /// or replaced by others at the same offsets.
    fn write_chunk(&self, db: &DB, truncations: u64, chunk: Vec<(BatchEntry, Rewrite)>, finish: Option<(i64, Option<i64>)>, cleaned: &mut Cleaned) -> Result<bool, ResponseError> {
        let id = self.log.id;
        let writer = self.log.writer.blocking_lock();
        writer.usable(id)?;
        if self.log.truncations.load(Ordering::Acquire) != truncations {
            return Ok(false);
        }
        let log_start = self.log.log_start.load(Ordering::Acquire);
        let mut write = WriteBatch::default();
        // Signed: a rewritten batch can come out larger than it was (the producer compressed
        // at a higher level than the cleaner does).
        let mut growth = 0i64;
        for (entry, rewrite) in chunk.iter().filter(|(e, _)| e.last_offset >= log_start) {
            let key = log_key(id, entry.base_offset);
            match rewrite {
                Rewrite::Keep => {}
                Rewrite::Remove => {
                    write.delete_cf(log_cf(db), key);
                    write.delete_cf(index_cf(db), key);
                    growth -= i64::from(entry.bytes);
                    cleaned.batches_removed += 1;
                }
                Rewrite::Replace(rebuilt) => {
                    let new_entry = BatchEntry::of(rebuilt).ok_or(ResponseError::CorruptMessage)?;
                    write.put_cf(log_cf(db), key, rebuilt);
                    write.put_cf(index_cf(db), key, new_entry.encode());
                    growth += i64::from(new_entry.bytes) - i64::from(entry.bytes);
                    cleaned.batches_rewritten += 1;
                }
            }
        }
        let total = self.log.bytes.load(Ordering::Acquire).saturating_add_signed(growth);
        write.put_cf(meta_cf(db), meta_key(id, BYTES, &[]), total.to_be_bytes());
        if let Some((clean_upto, tombstone_due)) = finish {
            write.put_cf(meta_cf(db), meta_key(id, CLEANED, &[]), clean_upto.to_be_bytes());
            match tombstone_due {
                Some(due) => write.put_cf(meta_cf(db), meta_key(id, TOMBSTONES_DUE, &[]), due.to_be_bytes()),
                None => write.delete_cf(meta_cf(db), meta_key(id, TOMBSTONES_DUE, &[])),
            }
        }
        self.db.write(write)?;
        self.log.bytes.store(total, Ordering::Release);
        cleaned.bytes_after = cleaned.bytes_after.saturating_add_signed(growth);
        drop(writer);
        Ok(true)
    }
}

/// Keeps the cleaner's reads and writes under `log.cleaner.io.max.bytes.per.second`.
struct Throttle {
    max_bytes_per_second: f64,
    start: Instant,
    bytes: f64,
}

impl Throttle {
    fn new(max_bytes_per_second: f64) -> Throttle {
        Throttle { max_bytes_per_second, start: Instant::now(), bytes: 0.0 }
    }

    /// Counts `bytes` of I/O, sleeping as long as it takes to stay under the rate.
    fn account(&mut self, bytes: usize) {
        self.bytes += bytes as f64;
        let due = Duration::from_secs_f64((self.bytes / self.max_bytes_per_second).min(3600.0));
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{AppendError, AppendOptions, FetchIsolation, FlushPolicy, HighWatermark, ReadRequest};
    use crate::testkit::{encode_batch, BatchSpec};
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    const OPTS: AppendOptions = AppendOptions { max_batch_bytes: 1 << 20, leader_epoch: 0, log_append_time: None, flush: FlushPolicy::NEVER, require_keys: true };
    const NOW: i64 = 1_700_000_100_000;
    const EAGER: Compaction = Compaction { min_lag_ms: 0, max_lag_ms: i64::MAX, min_dirty_ratio: 0.0, delete_retention_ms: 86_400_000 };
    const LIMITS: CleanerLimits = CleanerLimits { io_max_bytes_per_second: f64::MAX, dedupe_buffer_bytes: 1 << 20, io_buffer_bytes: 512 << 10 };

    async fn store_with(batches: &[BatchSpec]) -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition(1).unwrap();
        for spec in batches {
            store.append(1, &encode_batch(spec), OPTS).await.unwrap();
        }
        (dir, store)
    }

    /// (offset, key, value) of every record readable from `offset`.
    async fn records_from(store: &LogStore, offset: i64) -> Vec<(i64, String, Option<String>)> {
        let read = store.read(&[ReadRequest { id: 1, offset, max_bytes: 1 << 20, isolation: FetchIsolation::HighWatermark }], 1 << 20).await.pop().unwrap().unwrap();
        let mut bytes = read.records;
        let text = |b: Option<bytes::Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
        RecordBatchDecoder::decode_all(&mut bytes)
            .unwrap()
            .into_iter()
            .flat_map(|set| set.records)
            .filter(|r| r.offset >= offset)
            .map(|r| (r.offset, text(r.key).unwrap(), text(r.value)))
            .collect()
    }

    fn keyed(records: &[(&'static str, Option<&'static str>)], compression: Compression) -> BatchSpec {
        BatchSpec { compression, ..BatchSpec::keyed(records) }
    }

    /// A replica restarted after it led: a2 it appended but never replicated (its new leader
    /// lacks it), a1 acknowledged. Reopened as a replicated log, nothing counts as committed
    /// until its leader says so, so no pass removes a1 for a2, and a1 survives the truncation.
    #[tokio::test]
    async fn a_reopened_replicated_log_keeps_writes_hidden_only_by_records_past_its_high_watermark() {
        let none = Compression::None;
        let (dir, store) = store_with(&[keyed(&[("a", Some("a1"))], none), keyed(&[("b", Some("b1"))], none), keyed(&[("a", Some("a2"))], none), keyed(&[("c", Some("c1"))], none)]).await;
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        store.load_partition_in(1, HighWatermark::Caller).unwrap();
        assert_eq!(store.offsets(1).unwrap(), (0, 0));
        assert!(store.clean(1, EAGER, LIMITS, NOW).await.unwrap().is_none(), "nothing to clean below the high watermark");
        assert_eq!(store.truncate_to(1, 2).await.unwrap(), 2);
        store.set_high_watermark(1, 2).unwrap();
        let all = records_from(&store, 0).await;
        assert_eq!(all, [(0, "a".to_string(), Some("a1".to_string())), (1, "b".to_string(), Some("b1".to_string()))]);
    }

    #[tokio::test]
    async fn keeps_the_latest_record_of_each_key_at_its_offset_and_the_codec() {
        let (_dir, store) = store_with(&[
            keyed(&[("a", Some("a1")), ("b", Some("b1")), ("c", Some("c1")), ("d", Some("d1"))], Compression::Lz4),
            keyed(&[("a", Some("a2")), ("c", None)], Compression::Gzip),
            keyed(&[("b", Some("b2"))], Compression::None),
            // The head: never cleaned.
            keyed(&[("a", Some("a3"))], Compression::None),
        ])
        .await;
        let pass = store.clean(1, EAGER, LIMITS, NOW).await.unwrap().unwrap();
        assert_eq!((pass.clean_upto, pass.records_removed, pass.batches_rewritten, pass.batches_removed), (7, 3, 1, 0));
        assert!(pass.bytes_after < pass.bytes_before);
        // a1, b1, c1 went; the tombstone stays until delete.retention.ms; the head keeps a3.
        let all = records_from(&store, 0).await;
        let expected = [(3, "d", Some("d1")), (4, "a", Some("a2")), (5, "c", None), (6, "b", Some("b2")), (7, "a", Some("a3"))];
        assert_eq!(all, expected.map(|(o, k, v)| (o, k.to_string(), v.map(String::from))));
        // The rewritten batches kept their codecs.
        let read = store.read(&[ReadRequest { id: 1, offset: 0, max_bytes: 1 << 20, isolation: FetchIsolation::HighWatermark }], 1 << 20).await.pop().unwrap().unwrap();
        let codecs: Vec<Compression> = RecordBatchDecoder::decode_batch_info(&mut read.records.clone()).unwrap().into_iter().map(|b| b.compression).collect();
        assert_eq!(codecs, vec![Compression::Lz4, Compression::Gzip, Compression::None, Compression::None]);
        // A consumer inside the removed range moves on to the next record.
        assert_eq!(records_from(&store, 1).await[0].0, 3);
        // Nothing more to do until new data comes.
        assert_eq!(store.clean(1, EAGER, LIMITS, NOW).await.unwrap(), None);
        // Offsets go on from the head; start-up finds the same end.
        assert_eq!(store.offsets(1).unwrap(), (0, 8));
    }

    #[tokio::test]
    async fn a_pass_written_in_many_chunks_keeps_every_latest_record() {
        let mut batches: Vec<BatchSpec> = Vec::new();
        for round in ["1", "2", "3"] {
            for key in ["a", "b", "c"] {
                batches.push(keyed(&[(key, Some(round)), ("z", Some(round))], Compression::Snappy));
            }
        }
        batches.push(keyed(&[("head", Some("h"))], Compression::None));
        let (_dir, store) = store_with(&batches).await;
        // Every rewritten batch in a write of its own.
        let one_by_one = CleanerLimits { io_buffer_bytes: 1, ..LIMITS };
        let pass = store.clean(1, EAGER, one_by_one, NOW).await.unwrap().unwrap();
        assert_eq!((pass.batches_rewritten, pass.batches_removed), (2, 6));
        let left: Vec<(i64, String)> = records_from(&store, 0).await.into_iter().map(|(o, k, _)| (o, k)).collect();
        let expected = [(12, "a"), (14, "b"), (16, "c"), (17, "z"), (18, "head")];
        assert_eq!(left, expected.map(|(o, k)| (o, k.to_string())));
        assert_eq!(store.size(1).unwrap(), pass.bytes_after + encode_batch(&batches[9]).len() as u64);
    }

    #[tokio::test]
    async fn tombstones_go_after_delete_retention_and_emptied_batches_go() {
        let (_dir, store) = store_with(&[
            keyed(&[("a", Some("a1"))], Compression::None),
            keyed(&[("a", None)], Compression::None),
            keyed(&[("b", Some("b1"))], Compression::None),
        ])
        .await;
        // A tombstone younger than delete.retention.ms stays, and comes due later.
        let keep = Compaction { delete_retention_ms: 200_000, ..EAGER };
        assert_eq!(store.clean(1, keep, LIMITS, NOW).await.unwrap().unwrap().records_removed, 1);
        assert_eq!(store.clean(1, keep, LIMITS, NOW).await.unwrap(), None);
        assert_eq!(records_from(&store, 0).await[0], (1, "a".to_string(), None));
        let later = NOW + 200_000;
        let pass = store.clean(1, keep, LIMITS, later).await.unwrap().unwrap();
        assert_eq!((pass.batches_removed, pass.bytes_after), (1, 0));
        assert_eq!(records_from(&store, 0).await, vec![(2, "b".to_string(), Some("b1".to_string()))]);
        // Only the head's bytes are left.
        assert_eq!(store.size(1).unwrap(), encode_batch(&keyed(&[("b", Some("b1"))], Compression::None)).len() as u64);
    }

    #[tokio::test]
    async fn young_records_wait_for_the_minimum_lag_and_clean_logs_for_the_dirty_ratio() {
        let batches = [
            keyed(&[("a", Some("a1"))], Compression::None),
            keyed(&[("a", Some("a2"))], Compression::None),
            keyed(&[("b", Some("b1"))], Compression::None),
        ];
        let (_dir, store) = store_with(&batches).await;
        // The records are ~100 s old at NOW: a 200 s lag makes them all uncleanable.
        let lagging = Compaction { min_lag_ms: 200_000, ..EAGER };
        assert_eq!(store.clean(1, lagging, LIMITS, NOW).await.unwrap(), None);
        let choosy = Compaction { min_dirty_ratio: 0.9, ..EAGER };
        assert!(store.clean(1, choosy, LIMITS, NOW).await.unwrap().is_some());
        // Now clean: a new duplicate makes it only partly dirty.
        store.append(1, &encode_batch(&keyed(&[("b", Some("b2"))], Compression::None)), OPTS).await.unwrap();
        store.append(1, &encode_batch(&keyed(&[("c", Some("c1"))], Compression::None)), OPTS).await.unwrap();
        assert_eq!(store.clean(1, choosy, LIMITS, NOW).await.unwrap(), None);
        // Unless it waited longer than the maximum lag.
        let overdue = Compaction { max_lag_ms: 1000, ..choosy };
        assert!(store.clean(1, overdue, LIMITS, NOW).await.unwrap().is_some());
        assert_eq!(records_from(&store, 0).await.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3, 4]);
    }

    #[tokio::test]
    async fn a_small_dedupe_buffer_takes_several_passes() {
        let mut batches: Vec<BatchSpec> = Vec::new();
        for _ in 0..2 {
            for key in ["k1", "k2", "k3", "k4"] {
                batches.push(keyed(&[(key, Some("v"))], Compression::None));
            }
        }
        batches.push(keyed(&[("head", Some("v"))], Compression::None));
        let (_dir, store) = store_with(&batches).await;
        // Room for about two keys per pass.
        let tight = CleanerLimits { dedupe_buffer_bytes: 2 * (2 + MAP_OVERHEAD) - 1, ..LIMITS };
        let mut passes = 0;
        while store.clean(1, EAGER, tight, NOW).await.unwrap().is_some() {
            passes += 1;
            assert!(passes < 10);
        }
        assert!(passes > 1);
        assert_eq!(records_from(&store, 0).await.iter().map(|r| r.0).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8]);
    }

    #[tokio::test]
    async fn a_record_of_length_zero_is_refused_and_fails_a_pass_without_a_panic() {
        let (_dir, store) = store_with(&[]).await;
        let template = encode_batch(&BatchSpec::values(1));
        // A record whose length varint says 0 (no attributes byte), under a valid CRC.
        let empty = crate::log::batch::with_records(&template, 1, 1_700_000_000_000, &[0x00]);
        assert_eq!(store.append(1, &empty, OPTS).await.unwrap_err(), AppendError::from(ResponseError::CorruptMessage));
        // A topic that was not compacted when it came in stores it; the cleaner meets it later.
        store.append(1, &empty, AppendOptions { require_keys: false, ..OPTS }).await.unwrap();
        store.append(1, &encode_batch(&keyed(&[("head", Some("h"))], Compression::None)), OPTS).await.unwrap();
        assert_eq!(store.clean(1, EAGER, LIMITS, NOW).await, Err(ResponseError::CorruptMessage));
    }

    #[tokio::test]
    async fn records_without_a_key_are_refused_with_their_index() {
        let (_dir, store) = store_with(&[]).await;
        let mixed = encode_batch(&BatchSpec::values(3));
        assert_eq!(store.append(1, &mixed, OPTS).await.unwrap_err(), AppendError::MissingKeys(vec![0, 1, 2]));
        assert_eq!(store.offsets(1).unwrap(), (0, 0));
    }

    #[tokio::test]
    async fn a_truncation_below_the_clean_offset_makes_what_follows_dirty_again() {
        let (_dir, store) = store_with(&[
            keyed(&[("a", Some("a1"))], Compression::None),
            keyed(&[("a", Some("a2"))], Compression::None),
            keyed(&[("a", Some("a3"))], Compression::None),
            keyed(&[("b", Some("b1"))], Compression::None),
        ])
        .await;
        assert_eq!(store.clean(1, EAGER, LIMITS, NOW).await.unwrap().unwrap().clean_upto, 3);
        assert_eq!(store.truncate_to(1, 2).await.unwrap(), 2);
        let stored = store.io.read(|db| clean_upto(db, 1)).await.unwrap();
        assert_eq!(stored, Some(2), "the checkpoint comes down with the log");
        // A follower appends the new leader's records there: they get cleaned like any others.
        for value in ["a4", "a5"] {
            store.append(1, &encode_batch(&keyed(&[("a", Some(value))], Compression::None)), OPTS).await.unwrap();
        }
        store.append(1, &encode_batch(&keyed(&[("c", Some("c1"))], Compression::None)), OPTS).await.unwrap();
        store.clean(1, EAGER, LIMITS, NOW).await.unwrap().unwrap();
        let all: Vec<(i64, String)> = records_from(&store, 0).await.into_iter().map(|(o, k, _)| (o, k)).collect();
        assert_eq!(all, vec![(3, "a".to_string()), (4, "c".to_string())]);
    }
}
