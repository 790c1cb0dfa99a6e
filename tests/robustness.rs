//! Hostile and careless clients: tricklers, silent sockets, huge size claims, floods of
//! pipelined requests and too many connections are cut off or slowed down, and everyone else
//! keeps being served.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gregor::testkit::{encode_batch, BatchSpec};
use gregor::BrokerHandle;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::ResponseError;

async fn still_served(broker: &BrokerHandle) {
    let mut c = Client::connect(broker).await;
    assert_eq!(c.call(ApiVersionsRequest::default(), 3).await.error_code, 0);
}

#[tokio::test]
async fn tricklers_and_silent_connections_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("connections.max.idle.ms", "300")]).await;
    let mut silent = Client::connect(&broker).await;
    let mut trickler = Client::connect(&broker).await;
    let started = Instant::now();
    // One byte of a 100-byte frame every 100 ms: never a whole request.
    let frame = [&[0u8, 0, 0, 100][..], &[0; 100][..]].concat();
    for byte in frame.iter().take(8) {
        if !trickler.try_send_raw(&[*byte]).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(trickler.is_closed().await);
    assert!(silent.is_closed().await);
    assert!(started.elapsed() < Duration::from_secs(5));
    still_served(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_huge_size_claim_waits_for_bytes_and_half_frames_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("connections.max.idle.ms", "500")]).await;
    let mut claimer = Client::connect(&broker).await;
    claimer.send_raw(&(100i32 << 20).to_be_bytes()).await;
    claimer.send_raw(&[0, 18, 0, 3]).await;
    for _ in 0..3 {
        let mut half = Client::connect(&broker).await;
        half.send_raw(&[0, 0, 0, 50, 0, 18]).await;
    }
    still_served(&broker).await;
    assert!(claimer.is_closed().await, "closed once idle");
    broker.shutdown().await;
}

#[tokio::test]
async fn pipelined_floods_are_answered_in_order_without_starving_others() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut flood = Client::connect(&broker).await;
    let mut first = None;
    for _ in 0..5000 {
        let id = flood.send(&ApiVersionsRequest::default(), 3).await;
        first.get_or_insert(id);
    }
    // Nobody reads the flood's answers yet; others are still served.
    still_served(&broker).await;
    let first = first.unwrap();
    for i in 0..5000 {
        flood.receive::<ApiVersionsRequest>(3, first + i).await;
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn connection_limits_per_ip_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("max.connections.per.ip", "3")]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(&broker).await;
        assert_eq!(c.call(ApiVersionsRequest::default(), 3).await.error_code, 0);
        open.push(c);
    }
    let mut extra = Client::connect(&broker).await;
    assert!(extra.is_closed().await, "a fourth connection from one address is refused");
    open.pop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    still_served(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn absurd_request_values_get_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("t", 1).await;
    c.produce("t", 0, encode_batch(&BatchSpec::values(3))).await;
    assert_eq!(c.fetch("t", 0, -5, 0).await.0, ResponseError::OffsetOutOfRange.code());
    assert_eq!(c.fetch("t", -1, 0, 0).await.0, ResponseError::UnknownTopicOrPartition.code());
    let mut request = fetch_request("t", 0, 0, 0);
    request.max_bytes = i32::MAX;
    request.topics[0].partitions[0].partition_max_bytes = i32::MAX;
    let r = c.call(request.clone(), 12).await;
    assert_eq!(batch_offsets(r.responses[0].partitions[0].records.as_ref().unwrap()), vec![0]);
    request.max_bytes = -1;
    request.topics[0].partitions[0].partition_max_bytes = -7;
    let r = c.call(request, 12).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert_eq!(c.create_topic("wide", i32::MAX).await, ResponseError::InvalidPartitions.code());
    assert_eq!(c.create_topic("negative", -3).await, ResponseError::InvalidPartitions.code());
    broker.shutdown().await;
}

#[tokio::test]
async fn parked_requests_do_not_hold_queue_slots() {
    use bytes::Bytes;
    use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
    use kafka_protocol::messages::GroupId;
    use kafka_protocol::protocol::StrBytes;

    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("queued.max.requests", "1"), ("group.initial.rebalance.delay.ms", "4000")]).await;
    let mut producer = Client::connect(&broker).await;
    assert_eq!(producer.create_topic("parked", 1).await, 0);
    // A long poll on an empty partition and a join that waits out the rebalance delay: both park.
    let mut poller = Client::connect(&broker).await;
    let poll = poller.send(&fetch_request("parked", 0, 0, 8000), 12).await;
    let mut joiner = Client::connect(&broker).await;
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("parked-group")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range")).with_metadata(Bytes::from_static(b"m"))]);
    let joined = joiner.send(&join, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // With one slot, a parked request that kept it would hold this answer for seconds.
    let started = Instant::now();
    still_served(&broker).await;
    assert!(started.elapsed() < Duration::from_secs(2), "answered in {:?}", started.elapsed());
    assert_eq!(producer.produce("parked", 0, encode_batch(&BatchSpec::values(3))).await, (0, 0));
    let fetched = poller.receive::<kafka_protocol::messages::FetchRequest>(12, poll).await;
    assert_eq!(batch_offsets(fetched.responses[0].partitions[0].records.as_ref().unwrap()), vec![0]);
    assert_eq!(joiner.receive::<JoinGroupRequest>(3, joined).await.error_code, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn one_queue_slot_serves_many_pipelining_connections() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("queued.max.requests", "1")]).await;
    let mut admin = Client::connect(&broker).await;
    assert_eq!(admin.create_topic("slots", 1).await, 0);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = Client::connect(&broker).await;
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..50 {
                ids.push(c.send(&produce_request("slots", 0, encode_batch(&BatchSpec::values(1)), -1), 9).await);
            }
            let mut offsets = Vec::new();
            for id in ids {
                let r = c.receive::<kafka_protocol::messages::ProduceRequest>(9, id).await;
                let p = &r.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0);
                offsets.push(p.base_offset);
            }
            offsets
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (0..400).collect::<Vec<i64>>());
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_responses_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("connections.max.idle.ms", "500"), ("max.connections", "1")]).await;
    let mut admin = Client::connect(&broker).await;
    assert_eq!(admin.create_topic("unread", 1).await, 0);
    let batch = encode_batch(&BatchSpec::values(40_000));
    assert!(batch.len() > 500_000);
    assert_eq!(admin.produce("unread", 0, batch).await.0, 0);
    drop(admin);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Far more response bytes than the socket buffers hold, and the client reads none of them.
    let mut stuck = Client::connect(&broker).await;
    const FETCHES: usize = 64;
    for _ in 0..FETCHES {
        stuck.send(&fetch_request("unread", 0, 0, 0), 12).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The stuck connection no longer holds the one place max.connections allows.
    still_served(&broker).await;
    let mut answered = 0;
    while stuck.read_frame().await.is_some() {
        answered += 1;
    }
    assert!(answered < FETCHES, "the broker kept writing to a client that did not read ({answered} responses)");
    broker.shutdown().await;
}
