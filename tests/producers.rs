//! Idempotent producers with hand-built frames: InitProducerId hands out a fresh id whatever
//! producer the request names, Produce answers every sequence case as Kafka does, and an idle
//! producer's state expires (`producer.id.expiration.ms`) in memory and in the store.

mod common;

use std::time::Duration;

use common::*;
use gregor::api::now_ms;
use gregor::testkit::{encode_batch, BatchSpec};
use gregor::Broker;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig, CreateTopicsRequest};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest};
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// InitProducerId naming `transactional_id` and (producer id, epoch); returns (error code,
/// producer id, epoch).
async fn init(c: &mut Client, version: i16, transactional_id: Option<&str>, (id, epoch): (i64, i16)) -> (i16, i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|t| s(t).into()))
        .with_transaction_timeout_ms(60000)
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch);
    let r = c.call(request, version).await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

async fn new_producer(c: &mut Client) -> i64 {
    let (error, id, epoch) = init(c, 4, None, (-1, -1)).await;
    assert_eq!((error, epoch), (0, 0));
    id
}

/// One batch of `count` records from producer `pid` (epoch, first sequence), max timestamp
/// `ts + 10 * (count - 1)`; returns (error code, base offset, log append time).
async fn produce(c: &mut Client, topic: &str, (pid, epoch, seq): (i64, i16, i32), count: i64, ts: i64) -> (i16, i64, i64) {
    let batch = encode_batch(&BatchSpec { producer: Some((pid, epoch, seq)), base_ts: ts, ..BatchSpec::values(count) });
    let r = c.call(produce_request(topic, 0, batch, -1), 9).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset, p.log_append_time_ms)
}

/// IncrementalAlterConfigs SET of one cluster-wide broker config; returns the error code.
async fn set_cluster_config(c: &mut Client, key: &str, value: &str) -> i16 {
    let config = AlterableConfig::default().with_name(s(key)).with_config_operation(0).with_value(Some(s(value)));
    let resource = AlterConfigsResource::default().with_resource_type(4).with_resource_name(s("")).with_configs(vec![config]);
    c.call(IncrementalAlterConfigsRequest::default().with_resources(vec![resource]), 1).await.responses[0].error_code
}

#[tokio::test]
async fn init_producer_id_gives_a_fresh_id_whatever_producer_the_request_names() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("owned", 1).await;
    let a = new_producer(&mut c).await;
    let ts = now_ms();
    assert_eq!(produce(&mut c, "owned", (a, 0, 0), 3, ts).await, (0, 0, -1));

    // Another client names A's id and epoch (the KIP-360 epoch-bump form), or any id at all:
    // as Kafka does without a transactional id, it gets a new id at epoch 0.
    let mut seen = vec![a];
    for (version, named) in [(4, (a, 0)), (3, (a, 0)), (4, (a, i16::MAX - 1)), (4, (987_654, 7))] {
        let (error, id, epoch) = init(&mut c, version, None, named).await;
        assert_eq!((error, epoch), (0, 0), "InitProducerId v{version} naming {named:?}");
        assert!(!seen.contains(&id), "id {id} handed out twice (naming {named:?})");
        seen.push(id);
    }
    // So nobody took over A's sequences: A goes on where it was.
    assert_eq!(produce(&mut c, "owned", (a, 0, 3), 2, ts).await, (0, 3, -1));
    broker.shutdown().await;
}

#[tokio::test]
async fn init_producer_id_refusals_are_kafkas() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    let a = new_producer(&mut c).await;
    let invalid = (code(ResponseError::InvalidRequest), -1, -1);
    // An id without an epoch, or an epoch without an id (Kafka's KafkaApis check).
    assert_eq!(init(&mut c, 4, None, (a, -1)).await, invalid);
    assert_eq!(init(&mut c, 4, None, (-1, 0)).await, invalid);
    // Kafka refuses an empty transactional id as an invalid request.
    assert_eq!(init(&mut c, 4, Some(""), (-1, -1)).await, invalid);
    broker.shutdown().await;
}

#[tokio::test]
async fn produce_answers_every_sequence_case_as_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("seq", 1).await;
    let p = new_producer(&mut c).await;
    let ts = now_ms();
    // A producer the partition does not know may begin at any sequence: one whose state
    // expired goes on with its next one (Kafka has not answered UNKNOWN_PRODUCER_ID since 2.5).
    assert_eq!(produce(&mut c, "seq", (p, 0, 5), 2, ts).await, (0, 0, -1));
    // A retry gets the original offset and, as Kafka answers it, the batch's max timestamp as
    // log append time.
    assert_eq!(produce(&mut c, "seq", (p, 0, 5), 2, ts).await, (0, 0, ts + 10));
    assert_eq!(produce(&mut c, "seq", (p, 0, 7), 1, ts).await, (0, 2, -1));
    let out_of_order = (code(ResponseError::OutOfOrderSequenceNumber), -1, -1);
    assert_eq!(produce(&mut c, "seq", (p, 0, 9), 1, ts).await, out_of_order, "a gap");
    assert_eq!(produce(&mut c, "seq", (p, 0, 6), 1, ts).await, out_of_order, "inside a written batch");
    assert_eq!(produce(&mut c, "seq", (p, 1, 3), 1, ts).await, out_of_order, "a new epoch must start at 0");
    assert_eq!(produce(&mut c, "seq", (p, 1, 0), 1, ts).await, (0, 3, -1));
    let fenced = (code(ResponseError::InvalidProducerEpoch), -1, -1);
    assert_eq!(produce(&mut c, "seq", (p, 0, 8), 1, ts).await, fenced, "an older epoch");
    assert_eq!(produce(&mut c, "seq", (p, 0, 5), 2, ts).await, fenced, "a retry from an older epoch");
    // Five more batches push epoch 1's first one out of the remembered five: its retry is
    // out of order (Kafka's answer; it has no DUPLICATE_SEQUENCE_NUMBER any more).
    for seq in 1..=5 {
        assert_eq!(produce(&mut c, "seq", (p, 1, seq), 1, ts).await.0, 0);
    }
    assert_eq!(produce(&mut c, "seq", (p, 1, 5), 1, ts).await, (0, 8, ts), "still one of the last five");
    assert_eq!(produce(&mut c, "seq", (p, 1, 0), 1, ts).await, out_of_order);
    assert_eq!(c.fetch("seq", 0, 0, 0).await.1, 9, "only the appended batches are in the log");

    // On a LogAppendTime topic a retry answers the original append time, not a new one.
    let topic = CreatableTopic::default().with_name(name("stamped")).with_num_partitions(1).with_replication_factor(1).with_configs(vec![
        CreatableTopicConfig::default().with_name(s("message.timestamp.type")).with_value(Some(s("LogAppendTime"))),
    ]);
    assert_eq!(c.call(CreateTopicsRequest::default().with_topics(vec![topic]), 7).await.topics[0].error_code, 0);
    let (error, offset, appended_at) = produce(&mut c, "stamped", (p, 0, 0), 2, 1000).await;
    assert_eq!((error, offset), (0, 0));
    assert!(appended_at >= ts, "log append time {appended_at}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(produce(&mut c, "stamped", (p, 0, 0), 2, 1000).await, (0, 0, appended_at));
    broker.shutdown().await;
}

#[tokio::test]
async fn an_idle_producer_is_forgotten_in_memory_and_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.set("producer.id.expiration.ms", "1000").unwrap();
    config.set("producer.id.expiration.check.interval.ms", "50").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let mut c = Client::connect(&broker).await;
    c.create_topic("idle", 1).await;
    let p = new_producer(&mut c).await;
    // Expiry counts from the batch's max timestamp, as in Kafka.
    let ts = now_ms();
    assert_eq!(produce(&mut c, "idle", (p, 0, 0), 3, ts).await.1, 0);
    assert_eq!(produce(&mut c, "idle", (p, 0, 0), 3, ts).await.1, 0, "remembered at first");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(produce(&mut c, "idle", (p, 0, 0), 3, ts).await, (0, 3, -1), "forgotten: the same batch is new again");
    // That state is already old by its timestamp: it goes at the next check, from the store too.
    tokio::time::sleep(Duration::from_millis(600)).await;
    broker.shutdown().await;

    // Restarted with the default expiration (a day), a state still in the store would come back.
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(produce(&mut c, "idle", (p, 0, 0), 3, ts).await, (0, 6, -1));
    assert_eq!(produce(&mut c, "idle", (p, 0, 0), 3, ts).await, (0, 6, ts + 20), "remembered again, across this restart");
    broker.shutdown().await;
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(produce(&mut c, "idle", (p, 0, 0), 3, ts).await, (0, 6, ts + 20), "stored states that have not expired are loaded");
    broker.shutdown().await;
}

#[tokio::test]
async fn producer_id_expiration_ms_changes_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.set("producer.id.expiration.check.interval.ms", "50").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let mut c = Client::connect(&broker).await;
    c.create_topic("dynamic", 1).await;
    let p = new_producer(&mut c).await;
    let ts = now_ms();
    assert_eq!(produce(&mut c, "dynamic", (p, 0, 0), 1, ts).await.1, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(produce(&mut c, "dynamic", (p, 0, 0), 1, ts).await.1, 0, "a day has not passed");
    assert_eq!(set_cluster_config(&mut c, "producer.id.expiration.ms", "100").await, 0);
    assert_eq!(set_cluster_config(&mut c, "producer.id.expiration.ms", "0").await, code(ResponseError::InvalidConfig), "at least 1, as in Kafka");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(produce(&mut c, "dynamic", (p, 0, 0), 1, ts).await.1, 1, "forgotten under the new expiration");
    broker.shutdown().await;
}
