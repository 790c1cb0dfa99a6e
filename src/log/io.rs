//! The asynchronous facade in front of RocksDB: every read and write of the store runs on a
//! thread of its own, never on the async runtime, and handlers `.await` the outcome. A RocksDB
//! write stall (memtables full, flushes behind) then delays the writes that wait for it, while
//! heartbeats, metadata and every connection that does not write go on being served.
//!
//! - Writers: one thread takes every `meta` write, in the order they were submitted, so the
//!   last committed offset or group state submitted is the one stored. Partition appends go to
//!   [`PARTITION_WRITERS`] more threads (each partition always to the same one); a partition
//!   has at most one append in flight (its writer lock), and RocksDB folds the writes that
//!   arrive together from these threads into one group commit of its write-ahead log.
//! - The controller quorum's Raft log and its state go to one more thread of their own
//!   ([`Lane::Raft`]), in submission order; its synced writes (a vote, appended entries) then
//!   never hold up the `meta` writes of groups and topics.
//! - Readers: [`READERS`] threads run reads (fetches, index scans, disk statistics). Their
//!   queue, like the writers', holds at most one job per request being handled, and requests
//!   are bounded by `queued.max.requests`.
//! - Housekeeping: one thread runs long jobs (a compaction pass), so they never take a
//!   reader from fetches; such a job checks [`Io::stopping`] between steps.
//!
//! A write is queued when [`Io::write`] is called, not when its future is first polled: a
//! caller that must keep an order (committed offsets of one group) submits under its own lock
//! and awaits after releasing it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kafka_protocol::ResponseError;
use rocksdb::{WriteBatch, DB};
use tokio::sync::oneshot;

use super::db::Db;
use super::PartitionId;

/// Threads that write partition batches.
const PARTITION_WRITERS: usize = 2;
/// Threads that run reads.
const READERS: usize = 4;

/// Which writer thread a write goes to; writes of one lane are applied in submission order.
#[derive(Debug, Clone, Copy)]
pub enum Lane {
    /// Small records: topics, groups, committed offsets, counters.
    Meta,
    Partition(PartitionId),
    /// The controller quorum's Raft log, vote and state machine.
    Raft,
}

struct WriteJob {
    batch: WriteBatch,
    sync: bool,
    done: oneshot::Sender<Result<(), ResponseError>>,
}

type ReadJob = Box<dyn FnOnce() + Send>;

/// Cheap to clone; the threads stop when the last clone is dropped.
#[derive(Clone)]
pub struct Io {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Db>,
    meta_writer: Option<Sender<WriteJob>>,
    raft_writer: Option<Sender<WriteJob>>,
    partition_writers: Vec<Sender<WriteJob>>,
    readers: Option<Sender<ReadJob>>,
    housekeeping: Option<Sender<ReadJob>>,
    /// Set when the store closes: long jobs stop at their next step.
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new().name(name).spawn(body).expect("spawn a store thread")
}

fn writer(db: Arc<Db>, jobs: Receiver<WriteJob>) {
    while let Ok(job) = jobs.recv() {
        let _ = job.done.send(db.write_opt(job.batch, job.sync));
    }
}

impl Io {
    pub fn start(db: Arc<Db>) -> Io {
        let mut threads = Vec::new();
        let mut start_writer = |name: String| {
            let (tx, rx) = channel();
            let db = db.clone();
            threads.push(spawn(name, move || writer(db, rx)));
            tx
        };
        let meta_writer = start_writer("gregor-meta-writer".into());
        let raft_writer = start_writer("gregor-raft-writer".into());
        let partition_writers = (0..PARTITION_WRITERS).map(|i| start_writer(format!("gregor-log-writer-{i}"))).collect();
        let (readers, jobs) = channel::<ReadJob>();
        let jobs = Arc::new(Mutex::new(jobs));
        let (housekeeping, long_jobs) = channel::<ReadJob>();
        threads.push(spawn("gregor-housekeeping".into(), move || {
            while let Ok(job) = long_jobs.recv() {
                job();
            }
        }));
        for i in 0..READERS {
            let jobs = jobs.clone();
            threads.push(spawn(format!("gregor-reader-{i}"), move || loop {
                // The lock is held only while taking a job, never while running it.
                let job = jobs.lock().expect("reader queue lock").recv();
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            }));
        }
        Io {
            inner: Arc::new(Inner {
                db,
                meta_writer: Some(meta_writer),
                raft_writer: Some(raft_writer),
                partition_writers,
                readers: Some(readers),
                housekeeping: Some(housekeeping),
                stopping: Arc::new(AtomicBool::new(false)),
                threads,
            }),
        }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Queues `batch` now; the future says whether it was written.
    pub fn write(&self, lane: Lane, batch: WriteBatch) -> impl Future<Output = Result<(), ResponseError>> + Send + 'static {
        self.write_opt(lane, batch, false)
    }

    /// Queues `batch` now; with `sync`, the future resolves once it is on disk.
    pub fn write_opt(&self, lane: Lane, batch: WriteBatch, sync: bool) -> impl Future<Output = Result<(), ResponseError>> + Send + 'static {
        let (done, outcome) = oneshot::channel();
        let queue = match lane {
            Lane::Meta => self.inner.meta_writer.as_ref(),
            Lane::Partition(p) => self.inner.partition_writers.get(p as usize % PARTITION_WRITERS),
            Lane::Raft => self.inner.raft_writer.as_ref(),
        };
        let queued = queue.is_some_and(|q| q.send(WriteJob { batch, sync, done }).is_ok());
        async move {
            if !queued {
                return Err(ResponseError::KafkaStorageError);
            }
            outcome.await.unwrap_or(Err(ResponseError::KafkaStorageError))
        }
    }

    /// Runs `read` on a reader thread with the database as it is now.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&DB) -> Result<T, ResponseError> + Send + 'static,
    ) -> Result<T, ResponseError> {
        let db = self.inner.db.clone();
        run(self.inner.readers.as_ref(), move || db.get().and_then(|handle| read(&handle))).await
    }

    /// Runs a long job on the housekeeping thread. It may block (it is not on the runtime) and
    /// writes through [`Db::write`] itself.
    pub async fn housekeeping<T: Send + 'static>(&self, job: impl FnOnce() -> Result<T, ResponseError> + Send + 'static) -> Result<T, ResponseError> {
        run(self.inner.housekeeping.as_ref(), job).await
    }

    /// Turns true once the store closes. A long job holds this, not the store, which it would
    /// keep open.
    pub fn stopping(&self) -> Arc<AtomicBool> {
        self.inner.stopping.clone()
    }

    pub fn db_arc(&self) -> Arc<Db> {
        self.inner.db.clone()
    }
}

/// Queues `job` and awaits its outcome.
async fn run<T: Send + 'static>(queue: Option<&Sender<ReadJob>>, job: impl FnOnce() -> Result<T, ResponseError> + Send + 'static) -> Result<T, ResponseError> {
    let (done, outcome) = oneshot::channel();
    let job: ReadJob = Box::new(move || {
        let _ = done.send(job());
    });
    if queue.is_none_or(|q| q.send(job).is_err()) {
        return Err(ResponseError::KafkaStorageError);
    }
    outcome.await.unwrap_or(Err(ResponseError::KafkaStorageError))
}

impl Drop for Inner {
    /// Closes the queues; the threads finish what was queued, then exit.
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.meta_writer.take();
        self.raft_writer.take();
        self.partition_writers.clear();
        self.readers.take();
        self.housekeeping.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
