//! The RocksDB database behind the store: how it is opened, and how it is reopened after a
//! write fails (typically a full disk). RocksDB stops taking writes after such an error until
//! it is reopened; reads go on meanwhile, and reopening replays the write-ahead log, in which
//! every acknowledged write is complete.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use kafka_protocol::ResponseError;
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, FlushOptions, LruCacheOptions, Options, WriteBatch, WriteOptions, DB};

pub const LOG_CF: &str = "log";
pub const META_CF: &str = "meta";
pub const INDEX_CF: &str = "index";
/// The controller quorum's Raft log (see `raft.rs`).
pub const RAFT_CF: &str = "raft";

/// Batches at least this large go to blob files, out of compaction's way.
const MIN_BLOB_SIZE: u64 = 4096;

/// Writes are refused, and recovery waits, while less than this much disk is free.
const MIN_FREE_BYTES: u64 = 8 << 20;

pub struct Db {
    /// `None` only if a reopen failed; then every operation reports a storage error.
    current: RwLock<Option<Arc<DB>>>,
    dir: PathBuf,
    budget: Budget,
    /// Set when a write failed; cleared by a successful reopen.
    failed: AtomicBool,
}

/// Memory the store may use: explicit budgets, not RocksDB's server-sized defaults.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// All memtables together; a flush starts when they reach it.
    pub memtable_bytes: usize,
    /// Index blocks and batches read back from blob files.
    pub block_cache_bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { memtable_bytes: 64 << 20, block_cache_bytes: 16 << 20 }
    }
}

fn open_rocksdb(dir: &Path, budget: Budget) -> Result<DB> {
    let mut db_opts = Options::default();
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    db_opts.set_max_background_jobs(2);
    db_opts.set_keep_log_file_num(3);
    db_opts.set_max_log_file_size(8 << 20);
    db_opts.set_db_write_buffer_size(budget.memtable_bytes);
    // Reused log files overwrite pages already allocated in the page cache and on disk, which
    // made 1 KiB produce about 15% faster than allocating new ones.
    db_opts.set_recycle_log_file_num(4);
    // With more than one column family, RocksDB fsyncs every closed write-ahead log before each
    // memtable flush, unless the families flush together. Flushing them together keeps them
    // consistent without that sync: 1 KiB produce after a few GiB went from ~350k to ~500k+ rec/s.
    db_opts.set_atomic_flush(true);
    // A file write that fits RocksDB's write buffer is copied into it first. With a buffer smaller
    // than a batch, flushes write batches to blob files straight from the memtable: the flush
    // thread's CPU per byte fell by about half.
    db_opts.set_writable_file_max_buffer_size(256 << 10);
    let cache = shared_cache(budget.block_cache_bytes);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);

    let mut log_opts = Options::default();
    log_opts.set_write_buffer_size(budget.memtable_bytes / 2);
    log_opts.set_max_write_buffer_number(2);
    log_opts.set_block_based_table_factory(&table);
    // Producers compress; compressing again buys little and costs CPU on the hot path.
    log_opts.set_compression_type(DBCompressionType::None);
    log_opts.set_enable_blob_files(true);
    log_opts.set_min_blob_size(MIN_BLOB_SIZE);
    log_opts.set_blob_file_size(64 << 20);
    log_opts.set_enable_blob_gc(true);
    // Batches read back stay cached for the next reader of the same data.
    log_opts.set_blob_cache(&cache);

    let mut meta_opts = Options::default();
    meta_opts.set_write_buffer_size(4 << 20);
    meta_opts.set_max_write_buffer_number(2);
    meta_opts.set_block_based_table_factory(&table);

    // Small fixed-size entries, one per batch, scanned in key order.
    let mut index_opts = Options::default();
    index_opts.set_write_buffer_size(4 << 20);
    index_opts.set_max_write_buffer_number(2);
    index_opts.set_block_based_table_factory(&table);
    index_opts.set_compression_type(DBCompressionType::Lz4);

    // Small metadata records, appended at the end and dropped from the front.
    let mut raft_opts = Options::default();
    raft_opts.set_write_buffer_size(4 << 20);
    raft_opts.set_max_write_buffer_number(2);
    raft_opts.set_block_based_table_factory(&table);

    let families = vec![
        ColumnFamilyDescriptor::new(LOG_CF, log_opts),
        ColumnFamilyDescriptor::new(META_CF, meta_opts),
        ColumnFamilyDescriptor::new(INDEX_CF, index_opts),
        ColumnFamilyDescriptor::new(RAFT_CF, raft_opts),
    ];
    DB::open_cf_descriptors(&db_opts, dir, families).map_err(|e| {
        let text = e.to_string();
        if text.contains("lock") || text.contains("LOCK") {
            anyhow::anyhow!(
                "data directory {} is in use by another Gregor process ({text}); stop that broker or pass a different --log-dirs",
                dir.display()
            )
        } else {
            anyhow::anyhow!("cannot open the store in {}: {text}", dir.display())
        }
    })
}

/// One cache for blocks and blobs (RocksDB evicts blobs first). Each shard must hold a whole
/// batch, so shards are at least 8 MiB rather than RocksDB's 512 KiB.
fn shared_cache(bytes: usize) -> Cache {
    let mut opts = LruCacheOptions::default();
    opts.set_capacity(bytes);
    opts.set_num_shard_bits((bytes >> 23).max(1).ilog2().min(4) as i32);
    Cache::new_lru_cache_opts(&opts)
}

/// How many times RocksDB has stopped or slowed writes (memtables full, too many L0 files,
/// compaction behind) since the store was opened, over both column families.
pub fn write_stalls(db: &DB) -> Result<u64, ResponseError> {
    let mut stalls = 0;
    for name in [LOG_CF, META_CF, INDEX_CF] {
        let cf = db.cf_handle(name).ok_or(ResponseError::KafkaStorageError)?;
        // "Write Stall (count): <cause>: <n>, ..., total-delays: <n>, total-stops: <n>"
        let text = db.property_value_cf(cf, "rocksdb.cf-write-stall-stats").map_err(|_| ResponseError::KafkaStorageError)?.unwrap_or_default();
        for item in text.trim().split(", ") {
            if let Some(n) = item.strip_prefix("total-delays: ").or_else(|| item.strip_prefix("total-stops: ")) {
                stalls += n.parse::<u64>().map_err(|_| ResponseError::KafkaStorageError)?;
            }
        }
    }
    Ok(stalls)
}

/// What RocksDB uses and how it keeps up, summed over the column families (the block cache
/// is shared, so read once), for metrics.
#[derive(Debug, Default, Clone)]
pub struct RocksStats {
    pub memtable_bytes: u64,
    pub block_cache_bytes: u64,
    /// RocksDB's estimate of the live data, after what compaction would drop.
    pub live_data_bytes: u64,
    pub sst_files_bytes: u64,
    pub blob_files_bytes: u64,
    /// Writes are stopped now (not merely slowed).
    pub write_stopped: bool,
    /// Bytes per second writes are slowed to; 0 when they are not.
    pub delayed_write_rate: u64,
    /// As [`write_stalls`] counts them.
    pub write_stalls: u64,
}

pub fn rocks_stats(db: &DB) -> Result<RocksStats, ResponseError> {
    let mut stats = RocksStats { write_stalls: write_stalls(db)?, ..RocksStats::default() };
    // A property RocksDB does not know reads as 0 rather than failing the scrape.
    let int = |value: Result<Option<u64>, rocksdb::Error>| value.ok().flatten().unwrap_or(0);
    for name in [LOG_CF, META_CF, INDEX_CF, RAFT_CF] {
        let cf = db.cf_handle(name).ok_or(ResponseError::KafkaStorageError)?;
        stats.memtable_bytes += int(db.property_int_value_cf(cf, "rocksdb.cur-size-all-mem-tables"));
        stats.live_data_bytes += int(db.property_int_value_cf(cf, "rocksdb.estimate-live-data-size"));
        stats.sst_files_bytes += int(db.property_int_value_cf(cf, "rocksdb.total-sst-files-size"));
        stats.blob_files_bytes += int(db.property_int_value_cf(cf, "rocksdb.total-blob-file-size"));
        if name == LOG_CF {
            stats.block_cache_bytes = int(db.property_int_value_cf(cf, "rocksdb.block-cache-usage"));
        }
    }
    stats.write_stopped = int(db.property_int_value("rocksdb.is-write-stopped")) != 0;
    stats.delayed_write_rate = int(db.property_int_value("rocksdb.actual-delayed-write-rate"));
    Ok(stats)
}

impl Db {
    pub fn open(dir: &Path, budget: Budget) -> Result<Db> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", dir.display()))?;
        let db = open_rocksdb(dir, budget)?;
        Ok(Db { current: RwLock::new(Some(Arc::new(db))), dir: dir.to_path_buf(), budget, failed: AtomicBool::new(false) })
    }

    /// The database as it is now; hold it only for the duration of one operation.
    pub fn get(&self) -> Result<Arc<DB>, ResponseError> {
        self.current.read().expect("db lock").clone().ok_or(ResponseError::KafkaStorageError)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a batch, or says why not (blocking: the store's writer threads call it). After a
    /// failure, writes are refused at once (instead of each failing in RocksDB and flooding
    /// the log) until [`Db::recover`] succeeds.
    pub fn write(&self, batch: WriteBatch) -> Result<(), ResponseError> {
        self.write_opt(batch, false)
    }

    /// [`Db::write`], and with `sync` the write-ahead log is on disk before it returns (and so
    /// is every write before it: recovery replays a prefix of the log).
    pub fn write_opt(&self, batch: WriteBatch, sync: bool) -> Result<(), ResponseError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(ResponseError::KafkaStorageError);
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.get()?.write_opt(batch, &opts).map_err(|e| {
            if !self.failed.swap(true, Ordering::AcqRel) {
                tracing::error!("storage write failed: {e}; refusing writes until the store recovers (free disk space if it is full)");
            }
            ResponseError::KafkaStorageError
        })
    }

    pub fn needs_recovery(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Reopens the database once enough disk is free. Returns whether writes are possible.
    pub fn recover(&self) -> Result<bool> {
        if !self.needs_recovery() {
            return Ok(true);
        }
        if fs4::available_space(&self.dir)? < MIN_FREE_BYTES {
            return Ok(false);
        }
        // Taken out first, so that operations meanwhile fail at once instead of waiting.
        let old = self.current.write().expect("db lock").take();
        if let Some(old) = old {
            // Readers hold the old handle only for one operation; wait for them to finish.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Arc::strong_count(&old) > 1 {
                if Instant::now() > deadline {
                    *self.current.write().expect("db lock") = Some(old);
                    bail!("the store is still in use; will retry");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // The old database must be closed (releasing its lock file) before reopening.
            drop(old);
        }
        let db = open_rocksdb(&self.dir, self.budget)?;
        *self.current.write().expect("db lock") = Some(Arc::new(db));
        self.failed.store(false, Ordering::Release);
        tracing::info!("store reopened after a write failure; accepting writes again");
        Ok(true)
    }
}

impl Drop for Db {
    /// A clean stop writes the memtables out, so the next start has no write-ahead log to replay.
    fn drop(&mut self) {
        let Ok(db) = self.get() else { return };
        if self.needs_recovery() {
            return;
        }
        // One flush of every family, as atomic_flush does them anyway.
        let families: Vec<_> = [LOG_CF, META_CF, INDEX_CF, RAFT_CF].into_iter().filter_map(|name| db.cf_handle(name)).collect();
        if let Err(e) = db.flush_cfs_opt(&families, &FlushOptions::default()) {
            tracing::warn!("flushing at shutdown failed: {e}; the next start replays the write-ahead log");
        }
    }
}
