//! The network front end past the socket: one request frame (without its size prefix) through
//! header decoding, request decoding and the handler, against a real store in a temporary
//! directory. It must never panic, hang or allocate beyond the input; a frame is either
//! answered or refused (the connection would be closed).
#![no_main]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gregor::api::{Api, Origin};
use gregor::cluster::{Endpoint, Node};
use gregor::log::LogStore;
use gregor::Config;
use libfuzzer_sys::fuzz_target;

/// Topics and groups that inputs create pile up; start from an empty store this often.
const RUNS_PER_STORE: u32 = 5_000;

struct Harness {
    api: Arc<Api>,
    runs: u32,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.set("log.dirs", dir.path().to_str().expect("utf-8 path")).expect("valid");
        let log = Arc::new(LogStore::open(&config.data_dir).expect("store opens"));
        let node = Node { id: 1, endpoints: vec![Endpoint { listener: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }] };
        let api = Arc::new(Api::open(&config, node, log).expect("state opens"));
        Harness { api, runs: 0, _dir: dir }
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
    // Paused time: long polls and rebalance waits end at once instead of hanging the run. No
    // timeout around the handler: while it waits for the store's threads the paused clock jumps
    // ahead, which would cancel it halfway; a real hang is libFuzzer's -timeout to report.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
    let origin = Origin { peer: "127.0.0.1:40000".parse().expect("address"), listener: "PLAINTEXT".into() };
    let frame = Bytes::copy_from_slice(data);
    let _ = runtime.block_on(h.api.handle(frame, &origin, None));
});
