//! Hand-built protocol frames against an in-process broker: the happy paths clients rely on,
//! and bad input that must get a Kafka error code or a closed connection, never a crash.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gregor::testkit::{encode_batch, BatchSpec};
use gregor::Broker;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId};
use kafka_protocol::ResponseError;

fn code(e: ResponseError) -> i16 {
    e.code()
}

#[tokio::test]
async fn api_versions_and_kip511_answer_for_a_too_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    let r = c.call(ApiVersionsRequest::default(), 3).await;
    assert_eq!(r.error_code, 0);
    let produce = r.api_keys.iter().find(|k| k.api_key == ApiKey::Produce as i16).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 12));

    // ApiVersions v99: header v2 (flexible), body unknown. The answer is a v0 response.
    let mut frame = vec![];
    frame.extend_from_slice(&18i16.to_be_bytes());
    frame.extend_from_slice(&99i16.to_be_bytes());
    frame.extend_from_slice(&42i32.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0]); // empty client id, no tagged fields
    let mut sized = (frame.len() as i32).to_be_bytes().to_vec();
    sized.extend(frame);
    c.send_raw(&sized).await;
    let response = c.read_frame().await.unwrap();
    assert_eq!(i32::from_be_bytes(response[..4].try_into().unwrap()), 42);
    assert_eq!(i16::from_be_bytes(response[4..6].try_into().unwrap()), code(ResponseError::UnsupportedVersion));
    broker.shutdown().await;
}

#[tokio::test]
async fn produce_then_fetch_from_the_middle_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(c.create_topic("orders", 3).await, 0);
    assert_eq!(c.produce("orders", 1, encode_batch(&BatchSpec::values(3))).await, (0, 0));
    assert_eq!(c.produce("orders", 1, encode_batch(&BatchSpec::values(2))).await, (0, 3));
    let (err, hw, records) = c.fetch("orders", 1, 4, 0).await;
    assert_eq!((err, hw), (0, 5));
    assert_eq!(batch_offsets(&records), vec![3]);
    let (err, _, records) = c.fetch("orders", 1, 0, 0).await;
    assert_eq!((err, batch_offsets(&records)), (0, vec![0, 3]));
    let (err, hw, _) = c.fetch("orders", 1, 6, 0).await;
    assert_eq!((err, hw), (code(ResponseError::OffsetOutOfRange), 5));
    let (err, _, _) = c.fetch("orders", 7, 0, 0).await;
    assert_eq!(err, code(ResponseError::UnknownTopicOrPartition));
    broker.shutdown().await;
}

#[tokio::test]
async fn fetch_long_poll_waits_and_wakes_on_new_data() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("poll", 1).await;
    // Nothing to read: the broker holds the request for max_wait_ms.
    let started = Instant::now();
    let (err, _, records) = c.fetch("poll", 0, 0, 300).await;
    assert_eq!((err, records.len()), (0, 0));
    assert!(started.elapsed() >= Duration::from_millis(250));

    let mut waiter = Client::connect(&broker).await;
    let correlation = waiter.send(&fetch_request("poll", 0, 0, 8000), 12).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    c.produce("poll", 0, encode_batch(&BatchSpec::values(1))).await;
    let response = waiter.receive::<kafka_protocol::messages::FetchRequest>(12, correlation).await;
    assert!(started.elapsed() < Duration::from_secs(7), "the fetch woke on the append, not at its deadline");
    assert_eq!(batch_offsets(response.responses[0].partitions[0].records.as_ref().unwrap()), vec![0]);
    broker.shutdown().await;
}

#[tokio::test]
async fn fetch_byte_limits_return_whole_batches_and_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("limits", 1).await;
    for _ in 0..3 {
        c.produce("limits", 0, encode_batch(&BatchSpec::values(10))).await;
    }
    let one_batch = encode_batch(&BatchSpec::values(10)).len() as i32;
    let mut request = fetch_request("limits", 0, 0, 0);
    request.topics[0].partitions[0].partition_max_bytes = one_batch * 2;
    let r = c.call(request.clone(), 12).await;
    assert_eq!(batch_offsets(r.responses[0].partitions[0].records.as_ref().unwrap()), vec![0, 10]);
    // A limit below one batch still returns the first batch (KIP-74).
    request.topics[0].partitions[0].partition_max_bytes = 1;
    let r = c.call(request.clone(), 12).await;
    assert_eq!(batch_offsets(r.responses[0].partitions[0].records.as_ref().unwrap()), vec![0]);
    // The response-wide max_bytes caps the total too.
    request.topics[0].partitions[0].partition_max_bytes = 1 << 20;
    request.max_bytes = one_batch;
    let r = c.call(request, 12).await;
    assert_eq!(batch_offsets(r.responses[0].partitions[0].records.as_ref().unwrap()), vec![0]);
    broker.shutdown().await;
}

#[tokio::test]
async fn acks_zero_gets_no_response_and_the_next_answer_is_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("fire", 1).await;
    c.send(&produce_request("fire", 0, encode_batch(&BatchSpec::values(2)), 0), 9).await;
    let correlation = c.send(&ApiVersionsRequest::default(), 3).await;
    let r = c.receive::<ApiVersionsRequest>(3, correlation).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(c.fetch("fire", 0, 0, 0).await.1, 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_failed_acks_zero_produce_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.send(&produce_request("missing", 0, encode_batch(&BatchSpec::values(2)), 0), 9).await;
    assert!(c.read_frame().await.is_none(), "the connection is closed, as Kafka closes it");
    broker.shutdown().await;
}

#[tokio::test]
async fn corrupt_batches_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("strict", 1).await;
    let good = encode_batch(&BatchSpec::values(3));
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 0xff;
    assert_eq!(c.produce("strict", 0, bad_crc).await.0, code(ResponseError::CorruptMessage));
    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    assert_eq!(c.produce("strict", 0, bad_magic).await.0, code(ResponseError::UnsupportedForMessageFormat));
    let mut bad_length = good.clone();
    bad_length[8..12].copy_from_slice(&(good.len() as i32).to_be_bytes());
    assert_eq!(c.produce("strict", 0, bad_length).await.0, code(ResponseError::CorruptMessage));
    assert_eq!(c.produce("strict", 0, good[..30].to_vec()).await.0, code(ResponseError::CorruptMessage));
    // One batch per partition, as Kafka requires since Produce v3: a second one, whole or
    // not, gets INVALID_RECORD and nothing is written.
    let mut two = good.clone();
    two.extend_from_slice(&good);
    assert_eq!(c.produce("strict", 0, two).await.0, code(ResponseError::InvalidRecord));
    let mut mixed = good.clone();
    mixed.extend_from_slice(&good[..good.len() - 1]);
    assert_eq!(c.produce("strict", 0, mixed).await.0, code(ResponseError::InvalidRecord));
    assert_eq!(c.fetch("strict", 0, 0, 0).await.1, 0, "nothing was written");
    assert_eq!(c.produce("strict", 9, good.clone()).await.0, code(ResponseError::UnknownTopicOrPartition));
    assert_eq!(c.produce("nosuch", 0, good).await.0, code(ResponseError::UnknownTopicOrPartition));
    broker.shutdown().await;
}

#[tokio::test]
async fn oversized_batches_get_message_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.set("message.max.bytes", "200").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let mut c = Client::connect(&broker).await;
    c.create_topic("small", 1).await;
    let big = encode_batch(&BatchSpec::values(50));
    assert_eq!(c.produce("small", 0, big).await.0, code(ResponseError::MessageTooLarge));
    assert_eq!(c.produce("small", 0, encode_batch(&BatchSpec::values(1))).await.0, 0);
    broker.shutdown().await;
}

/// Each bad frame closes its own connection; a fresh connection is still served.
#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut bystander = Client::connect(&broker).await;
    bystander.create_topic("calm", 1).await;

    let mut unknown_key = Client::connect(&broker).await;
    unknown_key.send_raw(&[0, 0, 0, 10, 0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff]).await;
    assert!(unknown_key.is_closed().await);

    // Produce v2 is below the supported range.
    let mut old = Client::connect(&broker).await;
    old.send_raw(&[0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 0]).await;
    assert!(old.is_closed().await);

    let mut huge = Client::connect(&broker).await;
    huge.send_raw(&0x7fff_ffffi32.to_be_bytes()).await;
    assert!(huge.is_closed().await);

    let mut negative = Client::connect(&broker).await;
    negative.send_raw(&(-5i32).to_be_bytes()).await;
    assert!(negative.is_closed().await);

    let mut tiny = Client::connect(&broker).await;
    tiny.send_raw(&[0, 0, 0, 2, 0, 3]).await;
    assert!(tiny.is_closed().await);

    // Metadata v1 claiming 2^31-1 topics with none present.
    let mut absurd = Client::connect(&broker).await;
    let mut frame = vec![0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff];
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut sized = (frame.len() as i32).to_be_bytes().to_vec();
    sized.extend(frame);
    absurd.send_raw(&sized).await;
    assert!(absurd.is_closed().await);

    // Produce v9 (flexible) claiming ~4 billion topics in a compact array.
    let mut absurd_compact = Client::connect(&broker).await;
    // header: key, version, correlation, null client id, no tags; body: null txn id, acks -1, timeout
    let mut frame = vec![0, 0, 0, 9, 0, 0, 0, 8, 0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0, 0x13, 0x88];
    frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut sized = (frame.len() as i32).to_be_bytes().to_vec();
    sized.extend(frame);
    absurd_compact.send_raw(&sized).await;
    assert!(absurd_compact.is_closed().await);

    // Half a frame, then gone.
    {
        let mut half = Client::connect(&broker).await;
        half.send_raw(&[0, 0, 1, 0, 0, 18, 0]).await;
    }

    assert_eq!(bystander.produce("calm", 0, encode_batch(&BatchSpec::values(1))).await, (0, 0));
    let mut fresh = Client::connect(&broker).await;
    assert_eq!(fresh.call(ApiVersionsRequest::default(), 3).await.error_code, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn invalid_topic_names_get_invalid_topic_exception() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    let long = "x".repeat(250);
    for bad in ["", ".", "..", long.as_str(), "bad/name", "white space", "ünï"] {
        assert_eq!(c.create_topic(bad, 1).await, code(ResponseError::InvalidTopicException), "{bad:?}");
        let r = c
            .call(MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(bad)))])).with_allow_auto_topic_creation(true), 12)
            .await;
        assert_eq!(r.topics[0].error_code, code(ResponseError::InvalidTopicException), "{bad:?}");
    }
    assert_eq!(c.create_topic(&"y".repeat(249), 1).await, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn create_topics_validation() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(c.create_topic("dup", 2).await, 0);
    assert_eq!(c.create_topic("dup", 2).await, code(ResponseError::TopicAlreadyExists));
    assert_eq!(c.create_topic("zero", 0).await, code(ResponseError::InvalidPartitions));
    assert_eq!(c.create_topic("many", 1_000_000).await, code(ResponseError::InvalidPartitions));
    let topic = |n: &str| CreatableTopic::default().with_name(name(n)).with_num_partitions(1);
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![topic("rf").with_replication_factor(3)]), 7).await;
    assert_eq!(r.topics[0].error_code, code(ResponseError::InvalidReplicationFactor));
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![topic("dry").with_replication_factor(1)]).with_validate_only(true), 7).await;
    assert_eq!((r.topics[0].error_code, r.topics[0].num_partitions), (0, 1));
    let r = c.call(MetadataRequest::default().with_topics(None), 12).await;
    assert!(r.topics.iter().all(|t| t.name != Some(name("dry"))), "validate_only created nothing");
    let assigned = CreatableTopic::default()
        .with_name(name("assigned"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![0, 1].into_iter().map(|i| CreatableReplicaAssignment::default().with_partition_index(i).with_broker_ids(vec![BrokerId(1)])).collect());
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![assigned]), 7).await;
    assert_eq!((r.topics[0].error_code, r.topics[0].num_partitions), (0, 2));
    let bad_config = topic("cfg").with_replication_factor(1).with_configs(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
            .with_name("retention.ms".into())
            .with_value(Some("soon".into())),
    ]);
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![bad_config]), 7).await;
    assert_eq!(r.topics[0].error_code, code(ResponseError::InvalidConfig));
    broker.shutdown().await;
}

#[tokio::test]
async fn metadata_auto_creation_follows_config_and_request_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.set("num.partitions", "4").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let mut c = Client::connect(&broker).await;
    let ask = |n: &str, allow: bool| {
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(n)))])).with_allow_auto_topic_creation(allow)
    };
    let r = c.call(ask("no-create", false), 12).await;
    assert_eq!(r.topics[0].error_code, code(ResponseError::UnknownTopicOrPartition));
    let r = c.call(ask("auto", true), 12).await;
    assert_eq!((r.topics[0].error_code, r.topics[0].partitions.len()), (0, 4));
    assert_eq!(r.brokers[0].port, broker.local_addr().port() as i32);
    assert!(!r.topics[0].topic_id.is_nil());
    broker.shutdown().await;

    let mut config = common::config(dir.path());
    config.set("auto.create.topics.enable", "false").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let mut c = Client::connect(&broker).await;
    let r = c.call(ask("still-no", true), 12).await;
    assert_eq!(r.topics[0].error_code, code(ResponseError::UnknownTopicOrPartition));
    // v0 with an empty list means every topic.
    let r = c.call(MetadataRequest::default().with_topics(Some(vec![])), 0).await;
    assert_eq!(r.topics.len(), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn idempotent_producer_retries_are_not_duplicated_and_gaps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("idem", 1).await;
    let r = c.call(InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60000), 4).await;
    assert_eq!(r.error_code, 0);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let batch = |seq: i32, n: i64| encode_batch(&BatchSpec { producer: Some((pid, epoch, seq)), ..BatchSpec::values(n) });
    assert_eq!(c.produce("idem", 0, batch(0, 3)).await, (0, 0));
    assert_eq!(c.produce("idem", 0, batch(0, 3)).await, (0, 0), "a retry gets the original offset");
    assert_eq!(c.produce("idem", 0, batch(3, 2)).await, (0, 3));
    assert_eq!(c.produce("idem", 0, batch(9, 1)).await.0, code(ResponseError::OutOfOrderSequenceNumber));
    assert_eq!(c.fetch("idem", 0, 0, 0).await.1, 5);
    let other = c.call(InitProducerIdRequest::default().with_transactional_id(None), 4).await;
    assert_ne!(other.producer_id.0, pid);
    broker.shutdown().await;
}

#[tokio::test]
async fn list_offsets_and_offset_for_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("times", 1).await;
    c.produce("times", 0, encode_batch(&BatchSpec { base_ts: 1000, ..BatchSpec::values(3) })).await;
    c.produce("times", 0, encode_batch(&BatchSpec { base_ts: 5000, ..BatchSpec::values(2) })).await;
    let ask = |ts: i64| {
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("times"))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(ts)])])
    };
    let offset = |r: kafka_protocol::messages::ListOffsetsResponse| (r.topics[0].partitions[0].offset, r.topics[0].partitions[0].timestamp);
    assert_eq!(offset(c.call(ask(-2), 7).await).0, 0);
    assert_eq!(offset(c.call(ask(-1), 7).await).0, 5);
    assert_eq!(offset(c.call(ask(1015), 7).await), (2, 1020));
    assert_eq!(offset(c.call(ask(4000), 7).await), (3, 5000));
    assert_eq!(offset(c.call(ask(9000), 7).await), (-1, -1));
    assert_eq!(offset(c.call(ask(-3), 7).await), (4, 5010));

    let r = c
        .call(
            OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-2)).with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(name("times"))
                .with_partitions(vec![OffsetForLeaderPartition::default().with_partition(0).with_leader_epoch(0).with_current_leader_epoch(0)])]),
            4,
        )
        .await;
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, 0, 5));
    broker.shutdown().await;
}

#[tokio::test]
async fn offset_for_leader_epoch_answers_from_the_epochs_batches_were_written_in() {
    use gregor::log::{AppendOptions, FlushPolicy};
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("epochs", 1).await;
    // Offsets 0-4 in epoch 0 through Produce, then 5-6 in epoch 2 through the store.
    c.produce("epochs", 0, encode_batch(&BatchSpec::values(3))).await;
    c.produce("epochs", 0, encode_batch(&BatchSpec::values(2))).await;
    let (log, id) = broker.partition_log("epochs", 0).unwrap();
    let at_epoch_2 = AppendOptions { max_batch_bytes: 1 << 20, leader_epoch: 2, log_append_time: None, flush: FlushPolicy::NEVER, require_keys: false };
    assert_eq!(log.append(id, &encode_batch(&BatchSpec::values(2)), at_epoch_2).await.unwrap().base_offset, 5);
    let ask = |epochs: &[i32]| {
        let partitions = epochs.iter().map(|&e| OffsetForLeaderPartition::default().with_partition(0).with_leader_epoch(e).with_current_leader_epoch(-1)).collect();
        OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default().with_topic(name("epochs")).with_partitions(partitions)])
    };
    for version in [2, 4] {
        let r = c.call(ask(&[0, 1, 2, 5, -1]), version).await;
        let answers: Vec<(i16, i32, i64)> = r.topics[0].partitions.iter().map(|p| (p.error_code, p.leader_epoch, p.end_offset)).collect();
        // 1 was never used: its floor is 0, which ends where 2 begins; the latest ends at the log end.
        assert_eq!(answers, vec![(0, 0, 5), (0, 0, 5), (0, 2, 7), (0, 2, 7), (0, -1, -1)], "v{version}");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn data_survives_restart_and_a_second_broker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    {
        let mut c = Client::connect(&broker).await;
        c.create_topic("keep", 2).await;
        c.produce("keep", 1, encode_batch(&BatchSpec::values(4))).await;
    }
    let second = Broker::start(config(dir.path())).await;
    let err = second.err().expect("second broker on the same data dir must fail").to_string();
    assert!(err.contains("in use by another Gregor process"), "{err}");
    broker.shutdown().await;

    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    let (err, hw, records) = c.fetch("keep", 1, 0, 0).await;
    assert_eq!((err, hw, batch_offsets(&records)), (0, 4, vec![0]));
    assert_eq!(c.produce("keep", 1, encode_batch(&BatchSpec::values(1))).await, (0, 4));
    broker.shutdown().await;
}

#[tokio::test]
async fn deleted_topics_lose_their_data_and_recreation_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("gone", 1).await;
    c.produce("gone", 0, encode_batch(&BatchSpec::values(3))).await;
    let r = c.call(DeleteTopicsRequest::default().with_topic_names(vec![name("gone"), name("never")]).with_timeout_ms(5000), 5).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[1].error_code, code(ResponseError::UnknownTopicOrPartition));
    assert_eq!(c.fetch("gone", 0, 0, 0).await.0, code(ResponseError::UnknownTopicOrPartition));
    c.create_topic("gone", 1).await;
    assert_eq!(c.fetch("gone", 0, 0, 0).await.1, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn fsync_mode_acknowledges_concurrent_producers_after_a_shared_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.set("log.flush.interval.messages", "1").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let mut c = Client::connect(&broker).await;
    c.create_topic("durable", 4).await;
    let mut producers = Vec::new();
    for partition in 0..4 {
        let mut p = Client::connect(&broker).await;
        producers.push(tokio::spawn(async move {
            for i in 0..20 {
                assert_eq!(p.produce("durable", partition, encode_batch(&BatchSpec::values(2))).await, (0, i * 2));
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    for partition in 0..4 {
        assert_eq!(c.fetch("durable", partition, 0, 0).await.1, 40);
    }
    broker.shutdown().await;
}
