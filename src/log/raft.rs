//! A consensus log for the controller quorum: entries (opaque bytes, keyed by their index,
//! u64 big-endian) in the column family `raft`, and the small state that goes with them (vote,
//! committed and purged ids, the applied state) in `meta` under keys the caller chooses.
//!
//! The store knows nothing of Raft or of the cluster; it keeps entries in index order and
//! applies each [`RaftWrite`] atomically, in submission order, on a writer thread of its own
//! ([`Lane::Raft`]). Reads run on the reader threads. Nothing here blocks the async runtime.

use std::future::Future;

use anyhow::Result;
use rocksdb::{ReadOptions, WriteBatch, DB};

use super::db::{META_CF, RAFT_CF};
use super::io::{Io, Lane};

#[derive(Clone)]
pub struct RaftLog {
    io: Io,
}

/// One atomic change to the log and its state; its steps apply in the order they were added.
#[derive(Default)]
pub struct RaftWrite {
    steps: Vec<Step>,
    sync: bool,
}

enum Step {
    Append(u64, Vec<u8>),
    /// Removes the entries at this index and above.
    TruncateFrom(u64),
    /// Removes the entries at this index and below.
    PurgeUpTo(u64),
    Meta(Vec<u8>, Option<Vec<u8>>),
}

impl RaftWrite {
    /// A write that is on disk (write-ahead log synced) before it is acknowledged: what Raft
    /// needs for votes and appended entries.
    pub fn durable() -> RaftWrite {
        RaftWrite { steps: Vec::new(), sync: true }
    }

    /// A write left to the next sync; recovery replays a prefix of the write-ahead log, so a
    /// later durable write makes it durable too.
    pub fn lazy() -> RaftWrite {
        RaftWrite::default()
    }

    pub fn append(mut self, index: u64, entry: Vec<u8>) -> Self {
        self.steps.push(Step::Append(index, entry));
        self
    }

    pub fn truncate_from(mut self, index: u64) -> Self {
        self.steps.push(Step::TruncateFrom(index));
        self
    }

    pub fn purge_up_to(mut self, index: u64) -> Self {
        self.steps.push(Step::PurgeUpTo(index));
        self
    }

    /// Puts (`Some`) or deletes (`None`) a `meta` key.
    pub fn meta(mut self, key: &[u8], value: Option<Vec<u8>>) -> Self {
        self.steps.push(Step::Meta(key.to_vec(), value));
        self
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// A key above `index`'s and below every higher one's.
fn end_after(index: u64) -> Vec<u8> {
    match index.checked_add(1) {
        Some(next) => key(next).to_vec(),
        // Longer than every 8-byte key, and above them all.
        None => vec![0xff; 9],
    }
}

fn raft_cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(RAFT_CF).expect("raft column family exists")
}

fn storage_error(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::anyhow!("the store refused or failed the Raft log operation: {e:?}")
}

impl RaftLog {
    pub(super) fn new(io: Io) -> RaftLog {
        RaftLog { io }
    }

    /// Queues the write now; the future says whether it was stored.
    pub fn write(&self, write: RaftWrite) -> impl Future<Output = Result<()>> + Send + 'static {
        let batch = self.io.db().get().map(|db| {
            let (log, meta) = (raft_cf(&db), db.cf_handle(META_CF).expect("meta column family exists"));
            let mut batch = WriteBatch::default();
            for step in write.steps {
                match step {
                    Step::Append(index, entry) => batch.put_cf(log, key(index), entry),
                    Step::TruncateFrom(index) => batch.delete_range_cf(log, key(index).to_vec(), end_after(u64::MAX)),
                    Step::PurgeUpTo(index) => batch.delete_range_cf(log, key(0).to_vec(), end_after(index)),
                    Step::Meta(k, Some(v)) => batch.put_cf(meta, k, v),
                    Step::Meta(k, None) => batch.delete_cf(meta, k),
                }
            }
            batch
        });
        let written = batch.map(|batch| self.io.write_opt(Lane::Raft, batch, write.sync));
        async move { written.map_err(storage_error)?.await.map_err(storage_error) }
    }

    /// The entries with index in `from..to`, in index order.
    pub async fn entries(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.io
            .read(move |db| {
                let mut opts = ReadOptions::default();
                opts.set_iterate_lower_bound(key(from).to_vec());
                opts.set_iterate_upper_bound(end_after(to - 1));
                let mut it = db.raw_iterator_cf_opt(raft_cf(db), opts);
                it.seek_to_first();
                let mut out = Vec::new();
                while let (Some(k), Some(v)) = (it.key(), it.value()) {
                    out.push((decode_index(k)?, v.to_vec()));
                    it.next();
                }
                it.status().map_err(read_error)?;
                Ok(out)
            })
            .await
            .map_err(storage_error)
    }

    /// The entry with the highest index, if any.
    pub async fn last(&self) -> Result<Option<(u64, Vec<u8>)>> {
        self.io
            .read(|db| {
                let mut it = db.raw_iterator_cf(raft_cf(db));
                it.seek_to_last();
                let last = match (it.key(), it.value()) {
                    (Some(k), Some(v)) => Some((decode_index(k)?, v.to_vec())),
                    _ => None,
                };
                it.status().map_err(read_error)?;
                Ok(last)
            })
            .await
            .map_err(storage_error)
    }

    /// A `meta` value written with [`RaftWrite::meta`].
    pub async fn get(&self, meta_key: &[u8]) -> Result<Option<Vec<u8>>> {
        let meta_key = meta_key.to_vec();
        self.io
            .read(move |db| db.get_cf(db.cf_handle(META_CF).expect("meta column family exists"), meta_key).map_err(read_error))
            .await
            .map_err(storage_error)
    }
}

fn decode_index(k: &[u8]) -> Result<u64, kafka_protocol::ResponseError> {
    k.try_into().map(u64::from_be_bytes).map_err(|_| {
        tracing::error!("a Raft log key is {} bytes, not 8", k.len());
        kafka_protocol::ResponseError::KafkaStorageError
    })
}

fn read_error(e: rocksdb::Error) -> kafka_protocol::ResponseError {
    tracing::error!("Raft log read failed: {e}");
    kafka_protocol::ResponseError::KafkaStorageError
}
