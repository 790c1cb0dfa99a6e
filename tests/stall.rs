//! The store keeps RocksDB off the async runtime: while produce floods the broker until RocksDB
//! stalls its writes, another connection's ApiVersions and a group member's Heartbeats are still
//! answered at once.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use gregor::testkit::{encode_batch, BatchSpec};
use gregor::Broker;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::sync_group_request::SyncGroupRequest;
use kafka_protocol::messages::GroupId;
use kafka_protocol::protocol::StrBytes;

const TOPIC: &str = "flood";
/// Connections producing at once, each to its own partition.
const PRODUCERS: i32 = 4;
const FLOOD: Duration = Duration::from_secs(3);
/// A control-plane p99 below this is served: with the facade it is 2-20 ms on a 2-core machine
/// busy with other work; a RocksDB write on a runtime thread makes it 120-230 ms, a stall's length.
const SERVED: Duration = Duration::from_millis(50);

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap()
}

/// Sends 64 KiB of 1 KiB records at a time until `stop`; returns the requests sent.
async fn flood(mut c: Client, partition: i32, stop: Arc<AtomicBool>) -> u64 {
    let records = encode_batch(&BatchSpec { value_bytes: 1024, ..BatchSpec::values(64) });
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        let (error, _) = c.produce(TOPIC, partition, records.clone()).await;
        assert_eq!(error, 0);
        sent += 1;
    }
    sent
}

/// Times `call` every `period` until `stop`.
async fn round_trips(period: Duration, stop: &AtomicBool, mut call: impl AsyncFnMut()) -> Vec<Duration> {
    let mut times = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        call().await;
        times.push(start.elapsed());
        tokio::time::sleep(period).await;
    }
    times
}

/// Joins group `g` as its only member; returns (member id, generation).
async fn join_alone(c: &mut Client) -> (StrBytes, i32) {
    let group = GroupId(StrBytes::from_static_str("g"));
    let mut join = JoinGroupRequest::default()
        .with_group_id(group.clone())
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range"))]);
    // v5 asks for a member id first (MEMBER_ID_REQUIRED), then joins with it.
    join.member_id = c.call(join.clone(), 5).await.member_id;
    let joined = c.call(join, 5).await;
    assert_eq!(joined.error_code, 0);
    let sync = SyncGroupRequest::default().with_group_id(group).with_generation_id(joined.generation_id).with_member_id(joined.member_id.clone());
    assert_eq!(c.call(sync, 3).await.error_code, 0);
    (joined.member_id, joined.generation_id)
}

/// (p50, p99, max) of round-trip times, nearest rank.
fn percentiles(mut times: Vec<Duration>) -> [Duration; 3] {
    assert!(!times.is_empty());
    times.sort();
    let rank = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    [rank(0.5), rank(0.99), rank(1.0)]
}

#[test]
fn control_plane_stays_fast_while_rocksdb_stalls_writes() {
    // The broker gets a runtime of its own with the binary's worker count on 2 cores, the clients
    // another: a blocked broker worker then shows as a slow answer.
    let broker_runtime = runtime(2);
    let clients = runtime(2);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // Two 8 MiB memtables for the log: the flood fills them faster than they are flushed, and a
    // stall lasts as long as an 8 MiB flush (a smaller budget stalls as often, but too briefly
    // to tell a blocked runtime from a busy one).
    config.set("rocksdb.memtable.bytes", "16777216").unwrap();
    let broker = broker_runtime.block_on(Broker::start(config)).unwrap();
    let addr = broker.local_addr();
    clients.block_on(async {
        let mut admin = Client::connect_to(addr).await;
        assert_eq!(admin.create_topic(TOPIC, PRODUCERS).await, 0);
        let mut member = Client::connect_to(addr).await;
        let (member_id, generation) = join_alone(&mut member).await;
        let stalls_before = broker.write_stalls().await;

        let stop = Arc::new(AtomicBool::new(false));
        let mut floods = Vec::new();
        for p in 0..PRODUCERS {
            floods.push(tokio::spawn(flood(Client::connect_to(addr).await, p, stop.clone())));
        }
        let mut api = Client::connect_to(addr).await;
        let api_versions = round_trips(Duration::from_millis(2), &stop, async || {
            api.call(ApiVersionsRequest::default(), 3).await;
        });
        let heartbeats = round_trips(Duration::from_millis(10), &stop, async || {
            let request = HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id(generation)
                .with_member_id(member_id.clone());
            assert_eq!(member.call(request, 3).await.error_code, 0);
        });
        let flood_for = async {
            tokio::time::sleep(FLOOD).await;
            stop.store(true, Ordering::Relaxed);
        };
        // The probes run on this thread, the producers on the clients' workers.
        let (api_times, heartbeat_times, ()) = tokio::join!(api_versions, heartbeats, flood_for);
        let sent: u64 = futures_util::future::join_all(floods).await.into_iter().map(Result::unwrap).sum();
        let stalls = broker.write_stalls().await - stalls_before;
        let (api_count, heartbeat_count) = (api_times.len(), heartbeat_times.len());
        let [api_p50, api_p99, api_max] = percentiles(api_times);
        let [heartbeat_p50, heartbeat_p99, heartbeat_max] = percentiles(heartbeat_times);
        let summary = format!(
            "{} MiB produced, {stalls} RocksDB write stalls; {api_count} ApiVersions: p50 {api_p50:?}, p99 {api_p99:?}, \
             max {api_max:?}; {heartbeat_count} Heartbeats: p50 {heartbeat_p50:?}, p99 {heartbeat_p99:?}, max {heartbeat_max:?}",
            sent * 64 / 1024
        );
        eprintln!("{summary}");
        assert!(stalls > 0, "RocksDB never stalled, so this proves nothing: {summary}");
        assert!(api_p99 < SERVED && heartbeat_p99 < SERVED, "control plane frozen behind stalled writes: {summary}");
    });
    clients.block_on(broker.shutdown());
}
