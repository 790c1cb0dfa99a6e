//! The batch index: for every stored batch, column family `index` holds what housekeeping and
//! offset lookups need, under the same key as the batch (partition id, base offset), written in
//! the same RocksDB write. Retention, DeleteRecords, ListOffsets by time, start-up and the
//! cleaner scan these small entries instead of the batches; the leader epoch is here for the
//! cluster's truncation.

use rocksdb::{ReadOptions, DB};

use super::batch::BatchHeader;
use super::db::INDEX_CF;
use super::{log_key, PartitionId};

const VERSION: u8 = 1;
const ENCODED_LEN: usize = 23;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    /// Bytes of the stored batch.
    pub bytes: u32,
    pub leader_epoch: i32,
    pub attributes: i16,
}

impl BatchEntry {
    /// The entry of a batch as it is stored (base offset and leader epoch assigned).
    pub fn of(stored: &[u8]) -> Option<BatchEntry> {
        let h = BatchHeader::new(stored)?;
        Some(BatchEntry {
            base_offset: h.base_offset(),
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp(),
            bytes: u32::try_from(stored.len()).ok()?,
            leader_epoch: h.partition_leader_epoch(),
            attributes: h.attributes(),
        })
    }

    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[0] = VERSION;
        out[1..5].copy_from_slice(&((self.last_offset - self.base_offset) as i32).to_be_bytes());
        out[5..13].copy_from_slice(&self.max_timestamp.to_be_bytes());
        out[13..17].copy_from_slice(&self.bytes.to_be_bytes());
        out[17..21].copy_from_slice(&self.leader_epoch.to_be_bytes());
        out[21..23].copy_from_slice(&self.attributes.to_be_bytes());
        out
    }

    /// Reads an entry back from its key and value; `None` if either is malformed.
    pub fn decode(key: &[u8], value: &[u8]) -> Option<BatchEntry> {
        let base_offset = i64::from_be_bytes(key.get(4..12)?.try_into().ok()?);
        if value.len() != ENCODED_LEN || value[0] != VERSION {
            return None;
        }
        let field = |range: std::ops::Range<usize>| &value[range];
        Some(BatchEntry {
            base_offset,
            last_offset: base_offset + i32::from_be_bytes(field(1..5).try_into().ok()?) as i64,
            max_timestamp: i64::from_be_bytes(field(5..13).try_into().ok()?),
            bytes: u32::from_be_bytes(field(13..17).try_into().ok()?),
            leader_epoch: i32::from_be_bytes(field(17..21).try_into().ok()?),
            attributes: i16::from_be_bytes(field(21..23).try_into().ok()?),
        })
    }
}

pub fn index_cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(INDEX_CF).expect("index column family exists")
}

/// The entries of one partition's batches that hold offsets in `[from, to)`, in order: the
/// first is the batch holding `from` (or the first after it).
pub struct Entries<'a> {
    it: rocksdb::DBRawIterator<'a>,
}

impl<'a> Entries<'a> {
    pub fn new(db: &'a DB, id: PartitionId, from: i64, to: i64) -> Entries<'a> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(log_key(id, 0).to_vec());
        opts.set_iterate_upper_bound(log_key(id, to.max(0)).to_vec());
        let mut it = db.raw_iterator_cf_opt(index_cf(db), opts);
        it.seek_for_prev(log_key(id, from));
        if !it.valid() {
            it.seek(log_key(id, from));
        }
        Entries { it }
    }

    /// The last entry of a partition, if it has any.
    pub fn last(db: &DB, id: PartitionId) -> Result<Option<BatchEntry>, rocksdb::Error> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(log_key(id, 0).to_vec());
        opts.set_iterate_upper_bound(log_key(id + 1, 0).to_vec());
        let mut it = db.raw_iterator_cf_opt(index_cf(db), opts);
        it.seek_to_last();
        let last = it.key().zip(it.value()).and_then(|(k, v)| BatchEntry::decode(k, v));
        it.status().map(|_| last)
    }

    /// Why the iteration stopped early, if it did.
    pub fn status(self) -> Result<(), rocksdb::Error> {
        self.it.status()
    }
}

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH_END: (i32, i64) = (-1, -1);

/// OffsetForLeaderEpoch from the index (Kafka's LeaderEpochFileCache.endOffsetFor) over the
/// batches in `[log_start, log_end)`: the largest epoch at most `epoch`, and where it ends,
/// which is the base offset of the first batch of a larger epoch, or `log_end` when none is
/// larger. An epoch below every batch's gets itself and the log's first offset (Kafka's
/// answer when older epochs are gone); an empty log or epoch -1 gets [`UNDEFINED_EPOCH_END`].
/// Epochs never decrease along a log, so a binary search finds the boundary in at most 64
/// seeks whatever the log's length.
pub fn end_offset_for_epoch(db: &DB, id: PartitionId, log_start: i64, log_end: i64, epoch: i32) -> Result<(i32, i64), rocksdb::Error> {
    if epoch < 0 || log_end <= log_start {
        return Ok(UNDEFINED_EPOCH_END);
    }
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(log_key(id, 0).to_vec());
    opts.set_iterate_upper_bound(log_key(id, log_end).to_vec());
    let mut it = db.raw_iterator_cf_opt(index_cf(db), opts);
    fn entry(it: &rocksdb::DBRawIterator) -> Result<Option<BatchEntry>, rocksdb::Error> {
        let e = it.key().zip(it.value()).and_then(|(k, v)| BatchEntry::decode(k, v));
        it.status().map(|_| e)
    }
    it.seek_to_last();
    let Some(last) = entry(&it)? else { return Ok(UNDEFINED_EPOCH_END) };
    if last.leader_epoch <= epoch {
        return Ok((last.leader_epoch, log_end));
    }
    it.seek_for_prev(log_key(id, log_start));
    if !it.valid() {
        it.seek(log_key(id, log_start));
    }
    let Some(first) = entry(&it)? else { return Ok(UNDEFINED_EPOCH_END) };
    if first.leader_epoch > epoch {
        return Ok((epoch, first.base_offset.max(log_start)));
    }
    // The first batch of a larger epoch starts in (first.base_offset, last.base_offset]: find
    // the smallest offset whose next batch (at or after it) has a larger epoch.
    let (mut lo, mut hi) = (first.base_offset + 1, last.base_offset);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        it.seek(log_key(id, mid));
        let e = entry(&it)?.expect("a batch at or after mid: the last one");
        if e.leader_epoch > epoch {
            hi = mid;
        } else {
            lo = e.base_offset + 1;
        }
    }
    it.seek(log_key(id, lo));
    let higher = entry(&it)?.expect("the last batch at least");
    it.seek_for_prev(log_key(id, higher.base_offset - 1));
    let floor = entry(&it)?.expect("the first batch at least");
    Ok((floor.leader_epoch, higher.base_offset))
}

impl Iterator for Entries<'_> {
    type Item = BatchEntry;

    fn next(&mut self) -> Option<BatchEntry> {
        let entry = self.it.key().zip(self.it.value()).and_then(|(k, v)| BatchEntry::decode(k, v));
        if entry.is_some() {
            self.it.next();
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let e = BatchEntry { base_offset: 10, last_offset: 14, max_timestamp: 1234, bytes: 99, leader_epoch: 3, attributes: 4 };
        assert_eq!(BatchEntry::decode(&log_key(7, 10), &e.encode()), Some(e));
        assert_eq!(BatchEntry::decode(&log_key(7, 10), &e.encode()[..5]), None);
    }
}
