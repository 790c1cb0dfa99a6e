//! Topic administration with hand-built frames: configs, partitions, records, log dirs,
//! cluster description, and retention that really deletes.

mod common;

use std::time::Duration;

use common::*;
use gregor::testkit::{encode_batch, BatchSpec};
use gregor::Broker;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsRequest, AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsRequest, CreatePartitionsTopic};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig, CreateTopicsRequest};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic};
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_quorum_request::{self, DescribeQuorumRequest};
use kafka_protocol::messages::describe_configs_request::{DescribeConfigsRequest, DescribeConfigsResource};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::describe_topic_partitions_request::{DescribeTopicPartitionsRequest, TopicRequest};
use kafka_protocol::messages::incremental_alter_configs_request::{self, IncrementalAlterConfigsRequest};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

async fn describe(c: &mut Client, resource_type: i8, name: &str) -> DescribeConfigsResult {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_configuration_keys(None);
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]).with_include_synonyms(true).with_include_documentation(true);
    c.call(request, 4).await.results.remove(0)
}

/// (value, source) of one config in a DescribeConfigs result.
fn entry(result: &DescribeConfigsResult, key: &str) -> (String, i8) {
    let entry = result.configs.iter().find(|c| c.name.as_str() == key).unwrap_or_else(|| panic!("{key} is described"));
    (entry.value.as_deref().unwrap_or_default().to_string(), entry.config_source)
}

async fn incremental(c: &mut Client, topic: &str, op: i8, key: &str, value: &str) -> i16 {
    let config = incremental_alter_configs_request::AlterableConfig::default()
        .with_name(StrBytes::from_string(key.to_string()))
        .with_config_operation(op)
        .with_value(Some(StrBytes::from_string(value.to_string())));
    let resource = incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(StrBytes::from_string(topic.to_string()))
        .with_configs(vec![config]);
    c.call(IncrementalAlterConfigsRequest::default().with_resources(vec![resource]), 1).await.responses[0].error_code
}

#[tokio::test]
async fn configs_are_described_altered_persisted_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    let topic = CreatableTopic::default().with_name(name("cfg")).with_num_partitions(1).with_replication_factor(1).with_configs(vec![
        CreatableTopicConfig::default().with_name("retention.ms".into()).with_value(Some("60000".into())),
    ]);
    // Validate-only answers as the creation would, with nothing created (Kafka does the same).
    let validated = c.call(CreateTopicsRequest::default().with_topics(vec![topic.clone().with_num_partitions(3)]).with_validate_only(true), 7).await.topics.remove(0);
    assert_eq!((validated.error_code, validated.num_partitions, validated.replication_factor), (0, 3, 1));
    assert!(validated.configs.as_ref().unwrap().iter().any(|e| e.name.as_str() == "retention.ms" && e.value.as_deref() == Some("60000")));
    let created = c.call(CreateTopicsRequest::default().with_topics(vec![topic]), 7).await;
    assert_eq!(created.topics[0].num_partitions, 1, "the validation created nothing");
    let configs = created.topics[0].configs.as_ref().unwrap();
    assert!(configs.iter().any(|e| e.name.as_str() == "retention.ms" && e.value.as_deref() == Some("60000") && e.config_source == 1));

    let d = describe(&mut c, TOPIC, "cfg").await;
    assert_eq!(entry(&d, "retention.ms"), ("60000".to_string(), 1));
    assert_eq!(entry(&d, "cleanup.policy"), ("delete".to_string(), 5));
    let retention = d.configs.iter().find(|e| e.name.as_str() == "retention.ms").unwrap();
    assert_eq!(retention.synonyms.len(), 2, "the topic value, then the broker's log.retention.ms");
    assert_eq!(retention.synonyms[1].name.as_str(), "log.retention.ms");
    assert!(d.configs.iter().all(|e| e.documentation.is_some() && e.value.is_some()));

    assert_eq!(incremental(&mut c, "cfg", 0, "retention.bytes", "1000").await, 0);
    assert_eq!(incremental(&mut c, "cfg", 2, "cleanup.policy", "compact").await, 0);
    assert_eq!(incremental(&mut c, "cfg", 1, "retention.ms", "").await, 0);
    assert_eq!(incremental(&mut c, "cfg", 0, "retention.ms", "soon").await, ResponseError::InvalidConfig.code());
    assert_eq!(incremental(&mut c, "cfg", 0, "no.such.config", "1").await, ResponseError::InvalidConfig.code());
    assert_eq!(incremental(&mut c, "nosuch", 0, "retention.ms", "1").await, ResponseError::UnknownTopicOrPartition.code());
    let d = describe(&mut c, TOPIC, "cfg").await;
    assert_eq!(entry(&d, "retention.bytes"), ("1000".to_string(), 1));
    assert_eq!(entry(&d, "cleanup.policy"), ("delete,compact".to_string(), 1));
    assert_eq!(entry(&d, "retention.ms").1, 5, "deleted: back to the broker default");

    // Legacy AlterConfigs replaces the whole set.
    let resource = AlterConfigsResource::default().with_resource_type(TOPIC).with_resource_name("cfg".into()).with_configs(vec![
        AlterableConfig::default().with_name("max.message.bytes".into()).with_value(Some("2048".into())),
    ]);
    let r = c.call(AlterConfigsRequest::default().with_resources(vec![resource]), 2).await;
    assert_eq!(r.responses[0].error_code, 0);
    broker.shutdown().await;

    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    let d = describe(&mut c, TOPIC, "cfg").await;
    assert_eq!(entry(&d, "max.message.bytes"), ("2048".to_string(), 1));
    assert_eq!(entry(&d, "retention.bytes").1, 5);
    // The new limit is honored.
    c.create_topic("other", 1).await;
    let big = encode_batch(&BatchSpec::values(300));
    assert!(big.len() > 2048);
    assert_eq!(c.produce("cfg", 0, big.clone()).await.0, ResponseError::MessageTooLarge.code());
    assert_eq!(c.produce("other", 0, big).await.0, 0);

    let b = describe(&mut c, BROKER, "1").await;
    assert_eq!((b.error_code, entry(&b, "num.partitions").0), (0, "1".to_string()));
    assert_eq!(describe(&mut c, BROKER, "7").await.error_code, ResponseError::InvalidRequest.code());
    assert_eq!(describe(&mut c, TOPIC, "nosuch").await.error_code, ResponseError::UnknownTopicOrPartition.code());
    broker.shutdown().await;
}

#[tokio::test]
async fn partitions_records_log_dirs_and_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("grow", 2).await;
    // No assignments (null), as clients send increaseTo(count).
    let grow = |count: i32| CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default().with_name(name("grow")).with_count(count).with_assignments(None)]);
    assert_eq!(c.call(grow(2), 3).await.results[0].error_code, ResponseError::InvalidPartitions.code());
    assert_eq!(c.call(grow(5).with_validate_only(true), 3).await.results[0].error_code, 0);
    assert_eq!(c.call(grow(5), 3).await.results[0].error_code, 0);
    assert_eq!(c.produce("grow", 4, encode_batch(&BatchSpec::values(3))).await, (0, 0));

    for _ in 0..3 {
        c.produce("grow", 0, encode_batch(&BatchSpec::values(2))).await;
    }
    let delete = |offset: i64| {
        DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name("grow"))
            .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(offset)])])
    };
    let r = c.call(delete(3), 2).await;
    assert_eq!((r.topics[0].partitions[0].error_code, r.topics[0].partitions[0].low_watermark), (0, 3));
    assert_eq!(c.fetch("grow", 0, 1, 0).await.0, ResponseError::OffsetOutOfRange.code());
    let (err, _, records) = c.fetch("grow", 0, 3, 0).await;
    assert_eq!((err, batch_offsets(&records)), (0, vec![2, 4]), "the batch holding offset 3 stays");
    assert_eq!(c.call(delete(99), 2).await.topics[0].partitions[0].error_code, ResponseError::OffsetOutOfRange.code());

    let r = c.call(DescribeLogDirsRequest::default().with_topics(None), 4).await;
    let logdir = &r.results[0];
    assert_eq!(logdir.log_dir.as_str(), dir.path().to_str().unwrap());
    assert!(logdir.total_bytes > 0 && logdir.usable_bytes > 0);
    let grow_sizes: Vec<i64> = logdir.topics.iter().find(|t| t.name.as_str() == "grow").unwrap().partitions.iter().map(|p| p.partition_size).collect();
    assert_eq!(grow_sizes.len(), 5);
    assert!(grow_sizes[0] > 0 && grow_sizes[4] > 0 && grow_sizes[1] == 0);

    let r = c.call(DescribeClusterRequest::default(), 1).await;
    assert_eq!((r.error_code, r.brokers.len(), r.controller_id.0), (0, 1, 1));
    assert_eq!(r.brokers[0].port, broker.local_addr().port() as i32);
    // Controller endpoints (KIP-919) are not a broker's to list.
    let r = c.call(DescribeClusterRequest::default().with_endpoint_type(2), 1).await;
    assert_eq!((r.error_code, r.brokers.len()), (ResponseError::UnsupportedEndpointType.code(), 0));

    // DescribeQuorum: the lone node leads its metadata log and is its only voter.
    let metadata_log = |topic: &str, partition: i32| {
        let p = describe_quorum_request::PartitionData::default().with_partition_index(partition);
        DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default().with_topic_name(name(topic)).with_partitions(vec![p])])
    };
    let r = c.call(metadata_log("__cluster_metadata", 0), 2).await;
    assert_eq!(r.error_code, 0);
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.leader_id.0, p.current_voters.len(), p.observers.len()), (1, 1, 0));
    assert!(p.high_watermark > 0 && p.current_voters[0].log_end_offset >= p.high_watermark, "{p:?}");
    for (topic, partition) in [("__cluster_metadata", 1), ("grow", 0)] {
        assert_eq!(c.call(metadata_log(topic, partition), 2).await.error_code, ResponseError::UnknownTopicOrPartition.code());
    }
    assert!(c.call(ListPartitionReassignmentsRequest::default().with_topics(None), 0).await.topics.is_empty());

    // Paging: a limit of 3 partitions over "grow" (5) and "more" (2).
    c.create_topic("more", 2).await;
    let mut request = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![TopicRequest::default().with_name(name("grow")), TopicRequest::default().with_name(name("more"))])
        .with_response_partition_limit(3);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let r = c.call(request.clone(), 0).await;
        for t in &r.topics {
            seen.extend(t.partitions.iter().map(|p| (t.name.as_ref().unwrap().to_string(), p.partition_index)));
        }
        match r.next_cursor {
            Some(cursor) => request.cursor = Some(kafka_protocol::messages::describe_topic_partitions_request::Cursor::default().with_topic_name(cursor.topic_name).with_partition_index(cursor.partition_index)),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[5], ("more".to_string(), 0));
    broker.shutdown().await;
}

#[tokio::test]
async fn create_partitions_checks_explicit_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("assigned", 1).await;
    let node = 1; // the test config's node.id
    let grow = |count: i32, assignments: &[&[i32]]| {
        let assignments = assignments.iter().map(|ids| CreatePartitionsAssignment::default().with_broker_ids(ids.iter().map(|&b| BrokerId(b)).collect())).collect();
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default().with_name(name("assigned")).with_count(count).with_assignments(Some(assignments))])
    };
    let refused = [
        (grow(3, &[&[node]]), "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."),
        (grow(2, &[&[node], &[node]]), "Attempted to add 1 additional partition(s), but only 2 assignment(s) were specified."),
        (grow(2, &[]), "Attempted to add 1 additional partition(s), but only 0 assignment(s) were specified."),
        (grow(2, &[&[]]), "The manual partition assignment includes an empty replica list."),
        (grow(2, &[&[7]]), "The manual partition assignment includes broker 7, but no such broker is registered."),
        (grow(3, &[&[node], &[node, 0]]), "The manual partition assignment includes broker 0, but no such broker is registered."),
        (grow(2, &[&[node, node]]), "The manual partition assignment includes the broker 1 more than once."),
    ];
    for (request, message) in refused {
        for validate_only in [true, false] {
            let r = c.call(request.clone().with_validate_only(validate_only), 3).await.results.remove(0);
            assert_eq!((r.error_code, r.error_message.as_deref()), (ResponseError::InvalidReplicaAssignment.code(), Some(message)));
        }
    }
    // A count that is no increase is reported as such, before the assignments are looked at.
    let r = c.call(grow(1, &[&[7]]), 3).await.results.remove(0);
    assert_eq!(r.error_code, ResponseError::InvalidPartitions.code());

    let metadata = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("assigned")))]));
    assert_eq!(c.call(metadata.clone(), 12).await.topics[0].partitions.len(), 1, "nothing refused was applied");
    assert_eq!(c.call(grow(3, &[&[node], &[node]]), 3).await.results[0].error_code, 0);
    assert_eq!(c.call(metadata, 12).await.topics[0].partitions.len(), 3);
    broker.shutdown().await;
}

#[tokio::test]
async fn retention_deletes_old_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.set("log.retention.check.interval.ms", "50").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let mut c = Client::connect(&broker).await;
    c.create_topic("old", 1).await;
    // Timestamps from 2023: older than the 7-day default, but the last batch always stays.
    for _ in 0..3 {
        c.produce("old", 0, encode_batch(&BatchSpec::values(2))).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while c.fetch("old", 0, 0, 0).await.0 != ResponseError::OffsetOutOfRange.code() {
        assert!(tokio::time::Instant::now() < deadline, "retention did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (err, _, records) = c.fetch("old", 0, 4, 0).await;
    assert_eq!((err, batch_offsets(&records)), (0, vec![4]));
    broker.shutdown().await;
}

#[tokio::test]
async fn default_replication_factor_applies_to_topics_created_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("default.replication.factor", "3")]).await;
    let mut c = Client::connect(&broker).await;
    let create = |name: &str, replication_factor: i16| {
        CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default().with_name(common::name(name)).with_num_partitions(1).with_replication_factor(replication_factor)])
            .with_timeout_ms(5000)
    };
    // Three replicas asked for by default, one broker: refused, as Kafka refuses it.
    assert_eq!(c.call(create("defaulted", -1), 7).await.topics[0].error_code, ResponseError::InvalidReplicationFactor.code());
    assert_eq!(c.call(create("explicit", 1), 7).await.topics[0].error_code, 0);
    broker.shutdown().await;
}
