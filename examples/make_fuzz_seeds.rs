//! Writes the fuzzers' seed corpora under fuzz/seeds/: a well-formed request of each supported
//! API (as a frame without its size prefix) and a few record batches. Run from the repository
//! root: `cargo run --release --example make_fuzz_seeds`.

use bytes::{Bytes, BytesMut};
use gregor::testkit::{encode_batch, BatchSpec};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kafka_protocol::messages::{ApiVersionsRequest, GroupId, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};

fn frame<R: Request>(request: &R, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("seed")))
        .encode(&mut buf, R::header_version(version))
        .expect("header encodes");
    request.encode(&mut buf, version).expect("request encodes");
    buf.to_vec()
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("seed-topic"))
}

fn main() -> std::io::Result<()> {
    let batch = encode_batch(&BatchSpec::values(3));
    let idempotent = encode_batch(&BatchSpec { producer: Some((1, 0, 0)), ..BatchSpec::values(2) });
    let requests: Vec<(&str, Vec<u8>)> = vec![
        ("api_versions_v3", frame(&ApiVersionsRequest::default(), 3)),
        ("metadata_v12", frame(&MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic()))])), 12)),
        ("metadata_v1_all", frame(&MetadataRequest::default().with_topics(None), 1)),
        ("create_topics_v7", frame(&CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default().with_name(topic()).with_num_partitions(2).with_replication_factor(1)]), 7)),
        (
            "produce_v9",
            frame(
                &ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic())
                    .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(batch.clone())))])]),
                9,
            ),
        ),
        (
            "fetch_v12",
            frame(
                &FetchRequest::default().with_max_wait_ms(100).with_min_bytes(1).with_topics(vec![FetchTopic::default()
                    .with_topic(topic())
                    .with_partitions(vec![FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20)])]),
                12,
            ),
        ),
        (
            "fetch_v12_new_session",
            frame(
                &FetchRequest::default().with_max_wait_ms(100).with_min_bytes(1).with_session_epoch(0).with_topics(vec![FetchTopic::default()
                    .with_topic(topic())
                    .with_partitions(vec![FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20)])]),
                12,
            ),
        ),
        (
            "fetch_v17_incremental",
            frame(
                &FetchRequest::default()
                    .with_max_wait_ms(100)
                    .with_min_bytes(1)
                    .with_session_id(1)
                    .with_session_epoch(1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic_id(uuid::Uuid::from_u128(1))
                        .with_partitions(vec![FetchPartition::default().with_partition(1).with_fetch_offset(2).with_partition_max_bytes(1 << 20)])])
                    .with_forgotten_topics_data(vec![ForgottenTopic::default().with_topic_id(uuid::Uuid::from_u128(1)).with_partitions(vec![0])]),
                17,
            ),
        ),
        (
            "join_group_v5",
            frame(
                &JoinGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(10_000)
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range")).with_metadata(Bytes::from_static(b"\0\0"))]),
                5,
            ),
        ),
        (
            "offset_commit_v8",
            frame(
                &OffsetCommitRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(topic())
                        .with_partitions(vec![OffsetCommitRequestPartition::default().with_committed_offset(3)])]),
                8,
            ),
        ),
    ];
    std::fs::create_dir_all("fuzz/seeds/request_frame")?;
    for (name, bytes) in requests {
        std::fs::write(format!("fuzz/seeds/request_frame/{name}"), bytes)?;
    }
    std::fs::create_dir_all("fuzz/seeds/record_batch")?;
    std::fs::write("fuzz/seeds/record_batch/three_records", &batch)?;
    std::fs::write("fuzz/seeds/record_batch/idempotent", &idempotent)?;
    std::fs::write("fuzz/seeds/record_batch/two_batches", [batch.as_slice(), idempotent.as_slice()].concat())?;
    Ok(())
}
