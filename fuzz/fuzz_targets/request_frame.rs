//! The network front end past the socket: one request frame (without its size prefix) through
//! header decoding, request decoding and the handler, against a real store in a temporary
//! directory. It must never panic, hang or allocate beyond the input; a frame is either
//! answered or refused (the connection would be closed), and every answer encodes.
//!
//! A compacted topic exists from the start (a CreateTopics and a Produce cannot share one
//! frame), so Produce frames to it meet the key check. While a request runs, the group timers
//! tick; after it, retention, offset and producer expiry and the cleaner run, as the broker's
//! background tasks would.
#![no_main]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gregor::api::{now_ms, Api, FrameError, Origin};
use gregor::cluster::replication::LocalAlterPartition;
use gregor::cluster::{Endpoint, NewTopic, Node};
use gregor::group::GroupCoordinator;
use gregor::log::{CleanerLimits, LogStore};
use gregor::Config;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tokio::sync::watch;

/// Topics and groups that inputs create pile up; start from an empty store this often.
const RUNS_PER_STORE: u32 = 5_000;

/// The compacted topic every store starts with (examples/make_fuzz_seeds.rs produces to it).
const COMPACTED: &str = "compacted-topic";

struct Harness {
    api: Arc<Api>,
    runs: u32,
    _dir: tempfile::TempDir,
    /// Kept so the broker's state does not see a shutdown.
    _shutdown: watch::Sender<bool>,
    /// Runs the controller quorum in real time: under the inputs' paused clock its writes
    /// would time out at once. Admin requests still do (REQUEST_TIMED_OUT) when an input's
    /// runtime idles before the controller answers; their checks before that are exercised.
    _quorum: Runtime,
}

/// Paused time: long polls and rebalance waits end at once instead of hanging the run. No
/// timeout around the handler: while it waits for the store's threads the paused clock jumps
/// ahead, which would cancel it halfway; a real hang is libFuzzer's -timeout to report.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime")
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.set("log.dirs", dir.path().to_str().expect("utf-8 path")).expect("valid");
        let log = Arc::new(LogStore::open(&config.data_dir).expect("store opens"));
        let node = Node { id: 1, endpoints: vec![Endpoint { listener: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }], rack: None };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let api = Arc::new(Api::open(&config, node, log, Arc::new(LocalAlterPartition), shutdown_rx.clone()).expect("state opens"));
        let quorum = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("quorum runtime");
        quorum.block_on(gregor::testkit::start_lone_quorum(&config, &api, shutdown_rx.clone())).expect("lone quorum starts");
        let compacted = NewTopic {
            name: COMPACTED.into(),
            num_partitions: 2,
            replication_factor: 1,
            assignments: None,
            configs: [("cleanup.policy", "compact"), ("min.cleanable.dirty.ratio", "0"), ("delete.retention.ms", "0")]
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .to_vec(),
        };
        quorum.block_on(api.cluster.create_topic(&compacted)).expect("compacted topic");
        Harness { api, runs: 0, _dir: dir, _shutdown: shutdown, _quorum: quorum }
    }

    /// The background work the broker would do after this input: retention, offset and
    /// producer-state expiry, and a cleaner pass over the compacted topic (without the broker's
    /// I/O limit, which inputs may set so low that the pass sleeps for an hour).
    async fn housekeeping(&self) {
        let now = now_ms();
        let broker = self.api.cluster.settings().current();
        self.api.cluster.apply_retention(now).await;
        self.api.groups.expire_offsets(now).await;
        // Errors here and below are for the broker to log (a partition deleted meanwhile).
        let _ = self.api.log.expire_producers(now, broker.producer_id_expiration_ms).await;
        let Some(topic) = self.api.cluster.topic(COMPACTED) else { return };
        let Some(policy) = topic.configs.compaction() else { return };
        let limits = CleanerLimits {
            io_max_bytes_per_second: f64::INFINITY,
            dedupe_buffer_bytes: broker.cleaner_dedupe_buffer_size,
            io_buffer_bytes: broker.cleaner_io_buffer_size,
        };
        for &p in &topic.partitions {
            let _ = self.api.log.clean(p, policy, limits, now).await;
        }
    }
}

static HARNESS: Mutex<Option<Harness>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut slot = HARNESS.lock().expect("harness lock");
    if slot.as_ref().is_none_or(|h| h.runs >= RUNS_PER_STORE) {
        *slot = None; // close the old store before opening the next
        *slot = Some(Harness::new());
    }
    let h = slot.as_mut().expect("harness");
    h.runs += 1;
    let origin = Origin { peer: "127.0.0.1:40000".parse().expect("address"), listener: "PLAINTEXT".into(), principal: std::sync::Arc::new(gregor::security::Principal::anonymous()) };
    let frame = Bytes::copy_from_slice(data);
    let runtime = runtime();
    let (stop, stopped) = watch::channel(false);
    let timers = runtime.spawn(group_timers(h.api.groups.clone(), stopped));
    let answer = runtime.block_on(h.api.handle(frame, &origin, None));
    // A response its version cannot carry is a handler bug, not bad input.
    if let Err(e @ FrameError::Encode { .. }) = answer {
        panic!("{e}");
    }
    let _ = stop.send(true);
    runtime.block_on(timers).expect("group timers");
    runtime.block_on(h.housekeeping());
});

/// The broker's group timer task, which ends a JoinGroup or SyncGroup waiting for members that
/// never come. Its period starts at the broker's 100 ms and doubles, so a rebalance timeout of
/// days (any i32 of milliseconds) comes due in a few dozen ticks of paused time.
async fn group_timers(groups: Arc<GroupCoordinator>, mut stopped: watch::Receiver<bool>) {
    let mut period = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopped.changed() => return,
        }
        groups.check_timeouts().await;
        period = (period * 2).min(Duration::from_secs(86_400));
    }
}
