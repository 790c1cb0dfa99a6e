//! Syncing the write-ahead log for `flush.messages` and `flush.ms`: appends that must be on disk
//! before they are acknowledged take a ticket, and one thread syncs the write-ahead log for every
//! ticket issued so far, so concurrent producers share one fsync (group commit). Appends that
//! must only reach the disk within some time set a deadline the same thread honours. The async
//! runtime never waits on the disk; it awaits the thread's progress.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::db::Db;
use tokio::sync::watch;

#[derive(Default)]
struct Requests {
    /// The newest ticket handed out.
    issued: u64,
    /// Sync by then even if no ticket asks for it.
    deadline: Option<Instant>,
    stop: bool,
}

/// How far syncing has got: every ticket up to `synced` is durable; tickets in
/// (synced, failed] were covered by a sync that failed.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    synced: u64,
    failed: u64,
}

pub struct Syncer {
    requests: Arc<(Mutex<Requests>, Condvar)>,
    progress: watch::Receiver<Progress>,
    thread: Option<JoinHandle<()>>,
    #[cfg(test)]
    test: Arc<TestHooks>,
}

/// Lets tests count syncs and make them fail.
#[cfg(test)]
#[derive(Default)]
pub struct TestHooks {
    pub syncs: std::sync::atomic::AtomicU64,
    pub fail: std::sync::atomic::AtomicBool,
}

impl Syncer {
    pub fn start(db: Arc<Db>) -> Syncer {
        let requests = Arc::new((Mutex::new(Requests::default()), Condvar::new()));
        let (tx, progress) = watch::channel(Progress::default());
        let shared = requests.clone();
        #[cfg(test)]
        let test = Arc::new(TestHooks::default());
        #[cfg(test)]
        let hooks = test.clone();
        let thread = std::thread::Builder::new()
            .name("gregor-wal-sync".into())
            .spawn(move || {
                let (lock, wake) = &*shared;
                let mut done = 0;
                loop {
                    let target = {
                        let mut r = lock.lock().expect("sync lock");
                        loop {
                            if r.stop {
                                return;
                            }
                            let now = Instant::now();
                            match r.deadline {
                                _ if r.issued != done => break,
                                Some(at) if at <= now => break,
                                Some(at) => r = wake.wait_timeout(r, at - now).expect("sync lock").0,
                                None => r = wake.wait(r).expect("sync lock"),
                            }
                        }
                        // This sync covers everything written so far, whatever asked for it.
                        r.deadline = None;
                        r.issued
                    };
                    let synced = db.get().and_then(|handle| {
                        handle.flush_wal(true).map_err(|e| {
                            tracing::error!("syncing the write-ahead log failed: {e}");
                            ResponseError::KafkaStorageError
                        })
                    });
                    #[cfg(test)]
                    let synced = {
                        use std::sync::atomic::Ordering::SeqCst;
                        hooks.syncs.fetch_add(1, SeqCst);
                        synced.and_then(|_| if hooks.fail.load(SeqCst) { Err(ResponseError::KafkaStorageError) } else { Ok(()) })
                    };
                    match synced {
                        Ok(()) => tx.send_modify(|p| p.synced = target),
                        Err(_) => tx.send_modify(|p| p.failed = target),
                    }
                    done = target;
                }
            })
            .expect("spawn the WAL sync thread");
        Syncer {
            requests,
            progress,
            thread: Some(thread),
            #[cfg(test)]
            test,
        }
    }

    #[cfg(test)]
    pub fn test_hooks(&self) -> &TestHooks {
        &self.test
    }

    /// A ticket for everything written so far; call after the write.
    pub fn ticket(&self) -> u64 {
        let (lock, wake) = &*self.requests;
        let mut r = lock.lock().expect("sync lock");
        r.issued += 1;
        wake.notify_one();
        r.issued
    }

    /// Has everything written so far synced within `ms` milliseconds, without waiting for it.
    pub fn sync_within(&self, ms: i64) {
        // A deadline past what the clock can express is never.
        let Some(at) = Instant::now().checked_add(Duration::from_millis(ms.max(0) as u64)) else { return };
        let (lock, wake) = &*self.requests;
        let mut r = lock.lock().expect("sync lock");
        if r.deadline.is_none_or(|d| at < d) {
            r.deadline = Some(at);
            wake.notify_one();
        }
    }

    /// Waits until the ticket's writes are on disk.
    pub async fn wait(&self, ticket: u64) -> Result<(), ResponseError> {
        let mut progress = self.progress.clone();
        let outcome = progress.wait_for(|p| p.synced >= ticket || p.failed >= ticket).await;
        match outcome {
            Ok(p) if p.synced >= ticket => Ok(()),
            _ => Err(ResponseError::KafkaStorageError),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.requests;
        lock.lock().expect("sync lock").stop = true;
        wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
