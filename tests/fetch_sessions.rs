//! Incremental fetch sessions (KIP-227) and the broker's fetch.max.bytes, with hand-built
//! Fetch frames: a full fetch creates a session, incremental fetches name only what changed
//! and get only what changed, forgotten partitions leave, epochs and ids are checked, the
//! cache is bounded, and long polls wait on every partition of the session.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gregor::testkit::{encode_batch, BatchSpec};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::ResponseError;
use uuid::Uuid;

const VERSION: i16 = 12;

/// A fetch of `partitions` (index, offset) of `topic`, with a session id and epoch.
fn fetch(topic: &str, partitions: &[(i32, i64)], session_id: i32, epoch: i32, max_wait_ms: i32) -> FetchRequest {
    let topics = if partitions.is_empty() {
        vec![]
    } else {
        let partitions = partitions.iter().map(|&(p, offset)| FetchPartition::default().with_partition(p).with_fetch_offset(offset).with_partition_max_bytes(1 << 20)).collect();
        vec![FetchTopic::default().with_topic(name(topic)).with_partitions(partitions)]
    };
    FetchRequest::default().with_max_wait_ms(max_wait_ms).with_min_bytes(1).with_session_id(session_id).with_session_epoch(epoch).with_topics(topics)
}

/// (partition, high watermark, batch base offsets) of every partition in a response, in order.
fn answered(r: &FetchResponse) -> Vec<(i32, i64, Vec<i64>)> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.high_watermark, batch_offsets(p.records.as_deref().unwrap_or_default())))
        .collect()
}

async fn produce_one(c: &mut Client, topic: &str, partition: i32) {
    assert_eq!(c.produce(topic, partition, encode_batch(&BatchSpec::values(1))).await.0, 0);
}

#[tokio::test]
async fn a_session_answers_only_what_changed_and_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("s", 3).await;
    produce_one(&mut c, "s", 0).await;

    // INITIAL epoch: a full answer (every partition) and a new session.
    let r = c.call(fetch("s", &[(0, 0), (1, 0), (2, 0)], 0, 0, 0), VERSION).await;
    assert_eq!(r.error_code, 0);
    assert_ne!(r.session_id, 0, "a full fetch with epoch 0 creates a session");
    assert_eq!(answered(&r), vec![(0, 1, vec![0]), (1, 0, vec![]), (2, 0, vec![])]);
    let id = r.session_id;

    // Epoch 1 names only partition 0's new position; partition 2 got a record meanwhile.
    produce_one(&mut c, "s", 2).await;
    let r = c.call(fetch("s", &[(0, 1)], id, 1, 0), VERSION).await;
    assert_eq!((r.error_code, r.session_id), (0, id));
    assert_eq!(answered(&r), vec![(2, 1, vec![0])], "only the partition with news");

    // Epoch 2: nothing changed, so a long poll waits on every partition of the session, and
    // wakes on a record to partition 1, which no request since the first has named.
    let mut waiter = Client::connect(&broker).await;
    let correlation = waiter.send(&fetch("s", &[(2, 1)], id, 2, 8000), VERSION).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    produce_one(&mut c, "s", 1).await;
    let r = waiter.receive::<FetchRequest>(VERSION, correlation).await;
    assert!(started.elapsed() < Duration::from_secs(5), "the long poll woke on the append");
    assert_eq!(answered(&r), vec![(1, 1, vec![0])]);

    // Epoch 3: partition 1 is forgotten; its new records are not fetched any more.
    produce_one(&mut c, "s", 1).await;
    let forget = ForgottenTopic::default().with_topic(name("s")).with_partitions(vec![1]);
    let request = fetch("s", &[], id, 3, 300).with_forgotten_topics_data(vec![forget]);
    let started = Instant::now();
    let r = c.call(request, VERSION).await;
    assert_eq!((r.error_code, r.session_id), (0, id));
    assert_eq!(answered(&r), vec![], "nothing new in partitions 0 and 2");
    assert!(started.elapsed() >= Duration::from_millis(250), "waited for max_wait_ms");

    // Epoch 4 adds it back at offset 1: it is answered (new to the session) with its record.
    let r = c.call(fetch("s", &[(1, 1)], id, 4, 0), VERSION).await;
    assert_eq!(answered(&r), vec![(1, 2, vec![1])]);

    // Forgetting every partition closes the session: the answer has no session id.
    let forget = ForgottenTopic::default().with_topic(name("s")).with_partitions(vec![0, 1, 2]);
    let r = c.call(fetch("s", &[], id, 5, 0).with_forgotten_topics_data(vec![forget]), VERSION).await;
    assert_eq!((r.error_code, r.session_id), (0, 0));
    let r = c.call(fetch("s", &[], id, 6, 0), VERSION).await;
    assert_eq!(r.error_code, ResponseError::FetchSessionIdNotFound.code());
    broker.shutdown().await;
}

#[tokio::test]
async fn session_errors_and_closing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("e", 1).await;

    // FINAL epoch (what clients without sessions send): a full answer and no session.
    let r = c.call(fetch("e", &[(0, 0)], 0, -1, 0), VERSION).await;
    assert_eq!((r.error_code, r.session_id, answered(&r).len()), (0, 0, 1));

    let unknown = c.call(fetch("e", &[], 12345, 1, 0), VERSION).await;
    assert_eq!((unknown.error_code, unknown.session_id), (ResponseError::FetchSessionIdNotFound.code(), 0));
    assert!(unknown.responses.is_empty());

    let id = c.call(fetch("e", &[(0, 0)], 0, 0, 0), VERSION).await.session_id;
    assert_ne!(id, 0);
    let wrong = c.call(fetch("e", &[], id, 2, 0), VERSION).await;
    assert_eq!((wrong.error_code, wrong.session_id), (ResponseError::InvalidFetchSessionEpoch.code(), 0));
    assert_eq!(c.call(fetch("e", &[], id, 1, 0), VERSION).await.error_code, 0, "the right epoch still works");
    let replayed = c.call(fetch("e", &[], id, 1, 0), VERSION).await;
    assert_eq!(replayed.error_code, ResponseError::InvalidFetchSessionEpoch.code(), "an epoch is used once");

    // A full fetch naming the session closes it; with epoch 0 it opens a new one.
    let r = c.call(fetch("e", &[(0, 0)], id, 0, 0), VERSION).await;
    let id2 = r.session_id;
    assert!(id2 != 0 && id2 != id);
    assert_eq!(c.call(fetch("e", &[], id, 3, 0), VERSION).await.error_code, ResponseError::FetchSessionIdNotFound.code());
    // FINAL with the id closes it for good.
    let r = c.call(fetch("e", &[(0, 0)], id2, -1, 0), VERSION).await;
    assert_eq!((r.error_code, r.session_id, answered(&r).len()), (0, 0, 1));
    assert_eq!(c.call(fetch("e", &[], id2, 1, 0), VERSION).await.error_code, ResponseError::FetchSessionIdNotFound.code());

    // Fetch v6 has no sessions: a full answer as before.
    let r = c.call(fetch("e", &[(0, 0)], 0, -1, 0), 6).await;
    assert_eq!((r.error_code, answered(&r).len()), (0, 1));
    broker.shutdown().await;
}

async fn topic_id(c: &mut Client, topic: &str) -> Uuid {
    let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]));
    c.call(request, 12).await.topics[0].topic_id
}

/// A fetch of Fetch v13+, which names topics by id.
fn fetch_by_id(topic: Uuid, partitions: &[(i32, i64)], session_id: i32, epoch: i32) -> FetchRequest {
    let mut request = fetch("", partitions, session_id, epoch, 0);
    for t in &mut request.topics {
        t.topic = Default::default();
        t.topic_id = topic;
    }
    request
}

#[tokio::test]
async fn fetch_v13_and_later_name_topics_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("ids", 2).await;
    let id = topic_id(&mut c, "ids").await;
    assert!(!id.is_nil());
    for version in [13, 17] {
        produce_one(&mut c, "ids", 0).await;
        let r = c.call(fetch_by_id(id, &[(0, 0), (1, 0)], 0, 0), version).await;
        assert_eq!((r.error_code, r.responses.len()), (0, 1));
        assert_eq!((r.responses[0].topic_id, r.responses[0].topic.as_str()), (id, ""));
        let session = r.session_id;
        assert_ne!(session, 0);
        let hw = r.responses[0].partitions[0].high_watermark;
        // Incremental by id: only the partition with news; then it is forgotten by id.
        produce_one(&mut c, "ids", 1).await;
        let r = c.call(fetch_by_id(id, &[(0, hw)], session, 1), version).await;
        assert_eq!(r.responses.iter().map(|t| t.topic_id).collect::<Vec<_>>(), vec![id]);
        assert_eq!(answered(&r).iter().map(|a| a.0).collect::<Vec<_>>(), vec![1]);
        let forget = ForgottenTopic::default().with_topic_id(id).with_partitions(vec![0, 1]);
        let r = c.call(fetch_by_id(id, &[], session, 2).with_forgotten_topics_data(vec![forget]), version).await;
        assert_eq!((r.error_code, r.session_id), (0, 0), "forgetting every partition by id closes the session");
    }
    // An id no topic has gets UNKNOWN_TOPIC_ID, under that id.
    let unknown = Uuid::new_v4();
    let r = c.call(fetch_by_id(unknown, &[(0, 0)], 0, -1), 13).await;
    assert_eq!(r.responses[0].topic_id, unknown);
    assert_eq!(r.responses[0].partitions[0].error_code, ResponseError::UnknownTopicId.code());
    // A session keeps the naming it began with: v12 (names) on a v13 session (ids) is refused.
    let session = c.call(fetch_by_id(id, &[(0, 0)], 0, 0), 13).await.session_id;
    let r = c.call(fetch("ids", &[], session, 1, 0), 12).await;
    assert_eq!(r.error_code, ResponseError::FetchSessionTopicIdError.code());
    broker.shutdown().await;
}

#[tokio::test]
async fn an_unknown_partition_stays_in_the_session_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("u", 1).await;
    let r = c.call(fetch("u", &[(0, 0), (5, 0)], 0, 0, 0), VERSION).await;
    let id = r.session_id;
    assert_ne!(id, 0);
    let errors: Vec<i16> = r.responses[0].partitions.iter().map(|p| p.error_code).collect();
    assert_eq!(errors, vec![0, ResponseError::UnknownTopicOrPartition.code()]);
    // Errors are answered every time (and answer at once); the healthy partition only when it changes.
    let r = c.call(fetch("u", &[], id, 1, 5000), VERSION).await;
    let answered: Vec<(i32, i16)> = r.responses.iter().flat_map(|t| &t.partitions).map(|p| (p.partition_index, p.error_code)).collect();
    assert_eq!(answered, vec![(5, ResponseError::UnknownTopicOrPartition.code())]);
    broker.shutdown().await;
}

#[tokio::test]
async fn the_session_cache_is_bounded_and_followers_outrank_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("max.incremental.fetch.session.cache.slots", "2")]).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("b", 3).await;
    let first = c.call(fetch("b", &[(0, 0)], 0, 0, 0), VERSION).await.session_id;
    let second = c.call(fetch("b", &[(0, 0), (1, 0)], 0, 0, 0), VERSION).await.session_id;
    assert!(first != 0 && second != 0);
    // Full: a third consumer gets a full answer and no session, and the others live on.
    let third = c.call(fetch("b", &[(0, 0), (1, 0), (2, 0)], 0, 0, 0), VERSION).await;
    assert_eq!((third.error_code, third.session_id, answered(&third).len()), (0, 0, 3));
    assert_eq!(c.call(fetch("b", &[], first, 1, 0), VERSION).await.error_code, 0);
    // A follower's session (replica id >= 0) takes the slot of the smallest consumer session.
    let follower = c.call(fetch("b", &[(2, 0)], 0, 0, 0).with_replica_id(BrokerId(2)), VERSION).await;
    assert_ne!(follower.session_id, 0);
    assert_eq!(c.call(fetch("b", &[], first, 2, 0), VERSION).await.error_code, ResponseError::FetchSessionIdNotFound.code());
    assert_eq!(c.call(fetch("b", &[], second, 1, 0), VERSION).await.error_code, 0);
    broker.shutdown().await;

    // No slots: no sessions, and every fetch is answered in full.
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("max.incremental.fetch.session.cache.slots", "0")]).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("b", 1).await;
    let r = c.call(fetch("b", &[(0, 0)], 0, 0, 0), VERSION).await;
    assert_eq!((r.error_code, r.session_id, answered(&r).len()), (0, 0, 1));
    broker.shutdown().await;
}

#[tokio::test]
async fn fetch_max_bytes_caps_responses_whatever_the_client_asks() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("fetch.max.bytes", "1024")]).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("cap", 2).await;
    let batch = encode_batch(&BatchSpec::values(40));
    assert!(batch.len() > 512 && batch.len() < 1024, "{} bytes", batch.len());
    for _ in 0..3 {
        c.produce("cap", 0, batch.clone()).await;
        c.produce("cap", 1, batch.clone()).await;
    }
    // The client allows far more; the broker sends one batch (two would pass 1024 bytes).
    let r = c.call(fetch("cap", &[(0, 0), (1, 0)], 0, -1, 0).with_max_bytes(i32::MAX), VERSION).await;
    assert_eq!(answered(&r), vec![(0, 120, vec![0]), (1, 120, vec![])]);
    // A client limit below the broker's still holds; a batch larger than both still goes out.
    let big = encode_batch(&BatchSpec::values(200));
    assert!(big.len() > 1024);
    c.produce("cap", 1, big).await;
    let r = c.call(fetch("cap", &[(1, 120)], 0, -1, 0).with_max_bytes(i32::MAX), VERSION).await;
    assert_eq!(answered(&r), vec![(1, 320, vec![120])], "the first batch goes out whole (KIP-74)");
    broker.shutdown().await;
}

#[tokio::test]
async fn fetch_max_bytes_is_a_read_only_broker_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    assert!(config.set("fetch.max.bytes", "1023").is_err(), "Kafka's minimum is 1024");
    config.set("fetch.max.bytes", "4096").unwrap();
    assert_eq!(config.fetch_max_bytes, 4096);
    let key = gregor::config::find("fetch.max.bytes").unwrap();
    assert_eq!(key.update, gregor::config::Update::ReadOnly);
    let slots = gregor::config::find("max.incremental.fetch.session.cache.slots").unwrap();
    assert_eq!((slots.update, slots.default), (gregor::config::Update::ReadOnly, Some("1000")));
}
