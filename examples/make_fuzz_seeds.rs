//! Writes the fuzzers' seed corpora under fuzz/seeds/: well-formed requests (as frames without
//! their size prefix) and record batches, among them keyed, compressed batches with tombstones
//! and headers for the record walker and the compacted topic the request_frame harness creates.
//! Run from the repository root: `cargo run --release --example make_fuzz_seeds`.

use bytes::{Bytes, BytesMut};
use gregor::testkit::{encode_batch, BatchSpec};
use kafka_protocol::messages::alter_configs_request::{self, AlterConfigsRequest};
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsRequest, CreatePartitionsTopic};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::describe_configs_request::{DescribeConfigsRequest, DescribeConfigsResource};
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{self, IncrementalAlterConfigsRequest};
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{ApiVersionsRequest, BrokerId, GroupId, InitProducerIdRequest, ProducerId, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use kafka_protocol::records::Compression;

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

/// The compacted topic of the request_frame harness (fuzz/fuzz_targets/request_frame.rs).
fn compacted_topic() -> TopicName {
    TopicName(StrBytes::from_static_str("compacted-topic"))
}

fn text(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

/// Config resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Keyed records with updates, a tombstone and headers (a null header value among them).
fn keyed(compression: Compression) -> Vec<u8> {
    encode_batch(&BatchSpec {
        compression,
        headers: vec![("trace", Some("abc")), ("empty", None)],
        ..BatchSpec::keyed(&[("k1", Some("v1")), ("k2", Some("v2")), ("k1", Some("v3")), ("k2", None)])
    })
}

/// Records with and without keys: refused on a compacted topic with the keyless ones' indexes.
fn half_keyless(compression: Compression) -> Vec<u8> {
    let mut spec = BatchSpec { compression, ..BatchSpec::values(3) };
    spec.keyed = vec![("k1", Some("v1"))];
    encode_batch(&spec)
}

fn produce(topic: TopicName, partition: i32, records: Vec<u8>, version: i16) -> Vec<u8> {
    frame(
        &ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![TopicProduceData::default()
            .with_name(topic)
            .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(Bytes::from(records)))])]),
        version,
    )
}

fn main() -> std::io::Result<()> {
    let batch = encode_batch(&BatchSpec::values(3));
    let idempotent = encode_batch(&BatchSpec { producer: Some((1, 0, 0)), ..BatchSpec::values(2) });
    let codecs = [("gzip", Compression::Gzip), ("snappy", Compression::Snappy), ("lz4", Compression::Lz4), ("zstd", Compression::Zstd)];
    let requests: Vec<(&str, Vec<u8>)> = vec![
        ("api_versions_v3", frame(&ApiVersionsRequest::default(), 3)),
        ("metadata_v12", frame(&MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic()))])), 12)),
        ("metadata_v1_all", frame(&MetadataRequest::default().with_topics(None), 1)),
        ("create_topics_v7", frame(&CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default().with_name(topic()).with_num_partitions(2).with_replication_factor(1)]), 7)),
        ("produce_v9", produce(topic(), 0, batch.clone(), 9)),
        ("produce_v3_compacted_snappy", produce(compacted_topic(), 0, keyed(Compression::Snappy), 3)),
        ("produce_v9_compacted_zstd", produce(compacted_topic(), 0, keyed(Compression::Zstd), 9)),
        ("produce_v11_compacted_gzip", produce(compacted_topic(), 1, keyed(Compression::Gzip), 11)),
        ("produce_v7_compacted_keyless_lz4", produce(compacted_topic(), 1, half_keyless(Compression::Lz4), 7)),
        ("produce_v11_compacted_keyless", produce(compacted_topic(), 0, half_keyless(Compression::None), 11)),
        (
            "list_offsets_v7_by_time",
            frame(
                &ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default().with_name(compacted_topic()).with_partitions(vec![
                    ListOffsetsPartition::default().with_partition_index(0).with_timestamp(1_700_000_000_015),
                    ListOffsetsPartition::default().with_partition_index(1).with_timestamp(-3),
                ])]),
                7,
            ),
        ),
        ("init_producer_id_v4_named", frame(&InitProducerIdRequest::default().with_transaction_timeout_ms(60_000).with_producer_id(ProducerId(5)).with_producer_epoch(0), 4)),
        (
            "incremental_alter_configs_v1",
            frame(
                &IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default().with_resource_type(BROKER).with_resource_name(text("1")).with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default().with_name(text("log.cleaner.delete.retention.ms")).with_value(Some(text("1000"))),
                        incremental_alter_configs_request::AlterableConfig::default().with_name(text("producer.id.expiration.ms")).with_config_operation(1),
                    ]),
                    incremental_alter_configs_request::AlterConfigsResource::default().with_resource_type(TOPIC).with_resource_name(text("compacted-topic")).with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default().with_name(text("cleanup.policy")).with_value(Some(text("compact,delete"))),
                    ]),
                ]),
                1,
            ),
        ),
        (
            "alter_configs_v2_cluster_default",
            frame(
                &AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default().with_resource_type(BROKER).with_resource_name(text("")).with_configs(vec![
                    alter_configs_request::AlterableConfig::default().with_name(text("log.cleaner.min.cleanable.ratio")).with_value(Some(text("0.1"))),
                    alter_configs_request::AlterableConfig::default().with_name(text("log.retention.bytes")).with_value(Some(text("100000"))),
                ])]),
                2,
            ),
        ),
        (
            "describe_configs_v4",
            frame(
                &DescribeConfigsRequest::default().with_include_synonyms(true).with_include_documentation(true).with_resources(vec![
                    DescribeConfigsResource::default().with_resource_type(BROKER).with_resource_name(text("1")),
                    DescribeConfigsResource::default().with_resource_type(BROKER).with_resource_name(text("")).with_configuration_keys(Some(vec![text("log.cleaner.min.cleanable.ratio")])),
                    DescribeConfigsResource::default().with_resource_type(TOPIC).with_resource_name(text("compacted-topic")),
                ]),
                4,
            ),
        ),
        (
            "create_partitions_v3_assigned",
            frame(
                &CreatePartitionsRequest::default().with_timeout_ms(1000).with_topics(vec![CreatePartitionsTopic::default().with_name(topic()).with_count(4).with_assignments(Some(vec![
                    CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)]),
                    CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)]),
                ]))]),
                3,
            ),
        ),
        (
            "delete_records_v2",
            frame(
                &DeleteRecordsRequest::default().with_timeout_ms(1000).with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(compacted_topic())
                    .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(2)])]),
                2,
            ),
        ),
        ("describe_log_dirs_v4", frame(&DescribeLogDirsRequest::default().with_topics(None), 4)),
        ("delete_topics_v6", frame(&DeleteTopicsRequest::default().with_timeout_ms(1000).with_topics(vec![DeleteTopicState::default().with_name(Some(topic()))]), 6)),
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
            "join_group_v9_static",
            frame(
                &JoinGroupRequest::default()
                    .with_group_id(GroupId(text("g")))
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(10_000)
                    .with_group_instance_id(Some(text("instance-1")))
                    .with_protocol_type(text("consumer"))
                    .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(text("range")).with_metadata(Bytes::from_static(b"\0\0"))]),
                9,
            ),
        ),
        (
            "sync_group_v5",
            frame(
                &SyncGroupRequest::default()
                    .with_group_id(GroupId(text("g")))
                    .with_generation_id(1)
                    .with_member_id(text("instance-1-member"))
                    .with_group_instance_id(Some(text("instance-1")))
                    .with_protocol_type(Some(text("consumer")))
                    .with_protocol_name(Some(text("range")))
                    .with_assignments(vec![SyncGroupRequestAssignment::default().with_member_id(text("instance-1-member")).with_assignment(Bytes::from_static(b"\0\0"))]),
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
    // Seeds this program no longer writes go too: the committed seeds are exactly its output.
    for dir in ["fuzz/seeds/request_frame", "fuzz/seeds/record_batch"] {
        if std::path::Path::new(dir).exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    for (name, bytes) in requests {
        std::fs::write(format!("fuzz/seeds/request_frame/{name}"), bytes)?;
    }
    std::fs::write("fuzz/seeds/record_batch/three_records", &batch)?;
    std::fs::write("fuzz/seeds/record_batch/idempotent", &idempotent)?;
    std::fs::write("fuzz/seeds/record_batch/two_batches", [batch.as_slice(), idempotent.as_slice()].concat())?;
    for (name, codec) in codecs {
        std::fs::write(format!("fuzz/seeds/record_batch/keyed_{name}"), keyed(codec))?;
        std::fs::write(format!("fuzz/seeds/record_batch/half_keyless_{name}"), half_keyless(codec))?;
    }
    Ok(())
}
