//! A data directory read from outside the broker, for `gregor dump-log` (Kafka's
//! kafka-dump-log). RocksDB's read-only mode takes no lock and writes nothing, so it also opens
//! the directory of a running broker; it sees the store as it was when opened (the write-ahead
//! log included), not what is written after.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rocksdb::{Options, DB};

use super::batch::{crc_matches, BatchHeader};
use super::db::{LOG_CF, META_CF};
use super::records::{GZIP, LZ4, NONE, SNAPPY, ZSTD};
use super::{batches_from, meta_cf, PartitionId};

pub struct ReadOnlyStore {
    db: DB,
}

impl ReadOnlyStore {
    pub fn open(dir: &Path) -> Result<ReadOnlyStore> {
        let opts = Options::default();
        // Opened with the families it has: a directory from before a family was added lacks it.
        let families = DB::list_cf(&opts, dir).with_context(|| format!("no Gregor store in {}", dir.display()))?;
        if ![LOG_CF, META_CF].iter().all(|f| families.iter().any(|have| have == f)) {
            bail!("{} holds a RocksDB database, but not a Gregor store (column families {families:?})", dir.display());
        }
        let db = DB::open_cf_for_read_only(&opts, dir, &families, false).with_context(|| format!("cannot open the store in {} read-only", dir.display()))?;
        Ok(ReadOnlyStore { db })
    }

    /// A record of the `meta` column family.
    pub fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(meta_cf(&self.db), key).context("reading metadata")
    }

    /// Calls `each` with every stored batch of a partition's log, in offset order.
    pub fn for_each_batch(&self, id: PartitionId, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut batches = batches_from(&self.db, id, 0, i64::MAX);
        while let Some(stored) = batches.value() {
            each(stored)?;
            batches.next();
        }
        batches.status().context("reading the log")
    }
}

/// One line for a stored batch, with kafka-dump-log's field names.
pub fn describe_batch(stored: &[u8]) -> String {
    let Some(h) = BatchHeader::new(stored) else { return format!("corrupt batch: {} bytes, shorter than a batch header", stored.len()) };
    let codec = match h.compression() {
        NONE => "none",
        GZIP => "gzip",
        SNAPPY => "snappy",
        LZ4 => "lz4",
        ZSTD => "zstd",
        _ => "unknown",
    };
    let timestamp_type = if h.log_append_time() { "LogAppendTime" } else { "CreateTime" };
    format!(
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} {timestamp_type}: {} size: {} compresscodec: {codec} crc: {} isvalid: {}",
        h.base_offset(),
        h.last_offset(),
        h.record_count(),
        h.base_sequence(),
        h.producer_id(),
        h.producer_epoch(),
        h.partition_leader_epoch(),
        h.is_transactional(),
        h.is_control(),
        h.max_timestamp(),
        stored.len(),
        h.crc(),
        crc_matches(stored),
    )
}
