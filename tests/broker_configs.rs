//! Dynamic broker configs with hand-built frames: AlterConfigs and IncrementalAlterConfigs on a
//! BROKER resource (this node's id, or the empty name for the cluster-wide default), the sources
//! and read-only flags DescribeConfigs reports, persistence, and changes taking effect at once.

mod common;

use std::time::Duration;

use common::*;
use gregor::testkit::{encode_batch, BatchSpec};
use gregor::Broker;
use kafka_protocol::messages::alter_configs_request::{self, AlterConfigsRequest};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::describe_configs_request::{DescribeConfigsRequest, DescribeConfigsResource};
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const DYNAMIC_BROKER: i8 = 2;
const DYNAMIC_DEFAULT: i8 = 3;
const STATIC: i8 = 4;
const DEFAULT: i8 = 5;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

async fn describe(c: &mut Client, resource_type: i8, name: &str) -> DescribeConfigsResult {
    let resource = DescribeConfigsResource::default().with_resource_type(resource_type).with_resource_name(s(name)).with_configuration_keys(None);
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]).with_include_synonyms(true).with_include_documentation(true);
    c.call(request, 4).await.results.remove(0)
}

fn entry<'a>(result: &'a DescribeConfigsResult, key: &str) -> &'a DescribeConfigsResourceResult {
    result.configs.iter().find(|c| c.name.as_str() == key).unwrap_or_else(|| panic!("{key} is described"))
}

/// (value, source) of a described config.
fn value(result: &DescribeConfigsResult, key: &str) -> (Option<String>, i8) {
    let e = entry(result, key);
    (e.value.as_ref().map(|v| v.to_string()), e.config_source)
}

/// IncrementalAlterConfigs on one broker resource; returns (error code, message).
async fn incremental(c: &mut Client, name: &str, ops: &[(i8, &str, Option<&str>)], validate_only: bool) -> (i16, String) {
    let configs = ops.iter().map(|(op, key, value)| AlterableConfig::default().with_name(s(key)).with_config_operation(*op).with_value(value.map(s))).collect();
    let resource = AlterConfigsResource::default().with_resource_type(BROKER).with_resource_name(s(name)).with_configs(configs);
    let r = c.call(IncrementalAlterConfigsRequest::default().with_resources(vec![resource]).with_validate_only(validate_only), 1).await;
    (r.responses[0].error_code, r.responses[0].error_message.as_deref().unwrap_or_default().to_string())
}

async fn set(c: &mut Client, name: &str, key: &str, value: &str) -> i16 {
    incremental(c, name, &[(SET, key, Some(value))], false).await.0
}

#[tokio::test]
async fn levels_sources_synonyms_and_read_only_flags() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.set("log.retention.hours", "2").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let mut c = Client::connect(&broker).await;

    let d = describe(&mut c, BROKER, "1").await;
    assert_eq!(value(&d, "log.retention.ms"), (Some("7200000".into()), STATIC));
    assert_eq!(value(&d, "num.partitions"), (Some("1".into()), DEFAULT));
    assert_eq!(value(&d, "advertised.listeners"), (None, DEFAULT), "unset, as Kafka reports it");
    assert!(!entry(&d, "log.retention.ms").read_only && !entry(&d, "advertised.listeners").read_only, "dynamic in Kafka");
    assert!(entry(&d, "log.dirs").read_only && entry(&d, "num.partitions").read_only);
    assert!(describe(&mut c, BROKER, "").await.configs.is_empty(), "no cluster-wide dynamic configs yet");

    assert_eq!(set(&mut c, "", "log.retention.ms", "5000").await, 0);
    assert_eq!(set(&mut c, "1", "log.retention.ms", "4000").await, 0);
    let d = describe(&mut c, BROKER, "1").await;
    assert_eq!(value(&d, "log.retention.ms"), (Some("4000".into()), DYNAMIC_BROKER));
    let layers: Vec<_> = entry(&d, "log.retention.ms").synonyms.iter().map(|s| (s.name.to_string(), s.value.as_deref().unwrap_or_default().to_string(), s.source)).collect();
    assert_eq!(
        layers,
        [
            ("log.retention.ms".into(), "4000".into(), DYNAMIC_BROKER),
            ("log.retention.ms".into(), "5000".into(), DYNAMIC_DEFAULT),
            ("log.retention.hours".into(), "2".into(), STATIC),
            ("log.retention.ms".into(), "604800000".into(), DEFAULT),
        ]
    );
    let cluster = describe(&mut c, BROKER, "").await;
    assert_eq!(cluster.configs.len(), 1);
    assert_eq!(value(&cluster, "log.retention.ms"), (Some("5000".into()), DYNAMIC_DEFAULT));
    assert_eq!(entry(&cluster, "log.retention.ms").synonyms.len(), 1, "only the cluster-wide level");

    // A topic without its own retention.ms reports the broker's chain.
    c.create_topic("plain", 1).await;
    let t = describe(&mut c, TOPIC, "plain").await;
    assert_eq!(value(&t, "retention.ms"), (Some("4000".into()), DYNAMIC_BROKER));
    assert_eq!(entry(&t, "retention.ms").synonyms.len(), 4);

    // Deleting the per-broker value falls back to the cluster-wide one.
    assert_eq!(incremental(&mut c, "1", &[(DELETE, "log.retention.ms", None)], false).await.0, 0);
    assert_eq!(value(&describe(&mut c, BROKER, "1").await, "log.retention.ms"), (Some("5000".into()), DYNAMIC_DEFAULT));
    broker.shutdown().await;
}

#[tokio::test]
async fn refusals_are_kafkas_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    let invalid_request = ResponseError::InvalidRequest.code();
    let (code, message) = incremental(&mut c, "1", &[(SET, "log.dirs", Some("/elsewhere"))], false).await;
    assert_eq!((code, message.as_str()), (invalid_request, "Cannot update these configs dynamically: log.dirs"));
    assert_eq!(set(&mut c, "1", "log.retention.hours", "1").await, invalid_request, "only the ms form is dynamic");
    let (code, message) = incremental(&mut c, "", &[(SET, "listeners", Some("PLAINTEXT://127.0.0.1:1"))], false).await;
    assert_eq!(code, invalid_request);
    assert!(message.contains("broker id must be specified"), "{message}");
    let (code, message) = incremental(&mut c, "1", &[(SET, "advertised.listeners", Some("PLAINTEXT://elsewhere:1"))], false).await;
    assert_eq!(code, invalid_request);
    assert!(message.contains("cannot change advertised.listeners at run time"), "{message}");
    assert_eq!(set(&mut c, "1", "message.max.bytes", "big").await, ResponseError::InvalidConfig.code());
    assert_eq!(set(&mut c, "", "num.partitions", "3").await, invalid_request, "read-only in Kafka");
    assert_eq!(incremental(&mut c, "1", &[(APPEND, "message.max.bytes", Some("1"))], false).await.0, ResponseError::InvalidConfig.code());
    assert_eq!(incremental(&mut c, "1", &[(SET, "message.max.bytes", None)], false).await.0, invalid_request);
    assert_eq!(incremental(&mut c, "1", &[(SET, "message.max.bytes", Some("1")), (DELETE, "message.max.bytes", None)], false).await.0, invalid_request);
    let (code, message) = incremental(&mut c, "7", &[(SET, "message.max.bytes", Some("100"))], false).await;
    assert_eq!((code, message.as_str()), (invalid_request, "Unexpected broker id, expected 1 or empty string, but received 7"));
    assert_eq!(set(&mut c, "one", "message.max.bytes", "100").await, invalid_request);
    assert_eq!(describe(&mut c, BROKER, "7").await.error_code, invalid_request);
    // validate_only checks and changes nothing.
    assert_eq!(incremental(&mut c, "1", &[(SET, "message.max.bytes", Some("100"))], true).await.0, 0);
    assert_eq!(incremental(&mut c, "1", &[(SET, "message.max.bytes", Some("-5"))], true).await.0, ResponseError::InvalidConfig.code());
    let d = describe(&mut c, BROKER, "1").await;
    assert_eq!(value(&d, "message.max.bytes"), (Some("1048588".into()), DEFAULT));
    // Keys Kafka does not know are kept, as Kafka keeps custom broker configs.
    assert_eq!(set(&mut c, "1", "custom.plugin.key", "x").await, 0);
    let d = describe(&mut c, BROKER, "1").await;
    assert_eq!(value(&d, "custom.plugin.key"), (Some("x".into()), DYNAMIC_BROKER));
    assert!(entry(&d, "custom.plugin.key").read_only);
    broker.shutdown().await;
}

#[tokio::test]
async fn changes_take_effect_at_once_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start_broker = || {
        let mut config = config(dir.path());
        config.set("log.retention.check.interval.ms", "50").unwrap();
        Broker::start(config)
    };
    let broker = start_broker().await.unwrap();
    let mut c = Client::connect(&broker).await;
    c.create_topic("plain", 1).await;
    let batch = encode_batch(&BatchSpec::values(100));
    assert_eq!(c.produce("plain", 0, batch.clone()).await.0, 0);

    // message.max.bytes, cluster-wide: the next produce is held to it.
    assert_eq!(set(&mut c, "", "message.max.bytes", "200").await, 0);
    assert_eq!(c.produce("plain", 0, batch.clone()).await.0, ResponseError::MessageTooLarge.code());

    // log.retention.ms for this broker: topics without their own value lose old batches at the
    // next pass. A minute-old batch is well within the 7-day default.
    c.create_topic("recent", 1).await;
    let minute_old = BatchSpec { base_ts: gregor::api::now_ms() - 60_000, ..BatchSpec::values(1) };
    for _ in 0..2 {
        assert_eq!(c.produce("recent", 0, encode_batch(&minute_old)).await.0, 0);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.fetch("recent", 0, 0, 0).await.0, 0, "kept under the default retention");
    assert_eq!(set(&mut c, "1", "log.retention.ms", "1000").await, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while c.fetch("recent", 0, 0, 0).await.0 != ResponseError::OffsetOutOfRange.code() {
        assert!(tokio::time::Instant::now() < deadline, "retention did not use the new log.retention.ms");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // max.connections, cluster-wide: this connection counts; the next one is turned away.
    assert_eq!(set(&mut c, "", "max.connections", "1").await, 0);
    let mut refused = Client::connect(&broker).await;
    assert!(refused.is_closed().await);
    assert_eq!(incremental(&mut c, "", &[(DELETE, "max.connections", None)], false).await.0, 0);
    let mut admitted = Client::connect(&broker).await;
    assert_eq!(admitted.call(ApiVersionsRequest::default(), 3).await.error_code, 0);
    drop(admitted);
    broker.shutdown().await;

    let broker = start_broker().await.unwrap();
    let mut c = Client::connect(&broker).await;
    let d = describe(&mut c, BROKER, "1").await;
    assert_eq!(value(&d, "message.max.bytes"), (Some("200".into()), DYNAMIC_DEFAULT));
    assert_eq!(value(&d, "log.retention.ms"), (Some("1000".into()), DYNAMIC_BROKER));
    assert_eq!(value(&d, "max.connections"), (Some("2147483647".into()), DEFAULT));
    assert_eq!(c.produce("plain", 0, batch).await.0, ResponseError::MessageTooLarge.code(), "still in effect after a restart");

    // Legacy AlterConfigs replaces a level's whole set.
    let resource = alter_configs_request::AlterConfigsResource::default().with_resource_type(BROKER).with_resource_name(s("1")).with_configs(vec![
        alter_configs_request::AlterableConfig::default().with_name(s("log.retention.bytes")).with_value(Some(s("1000000"))),
    ]);
    let r = c.call(AlterConfigsRequest::default().with_resources(vec![resource]), 2).await;
    assert_eq!(r.responses[0].error_code, 0);
    let d = describe(&mut c, BROKER, "1").await;
    assert_eq!(value(&d, "log.retention.bytes"), (Some("1000000".into()), DYNAMIC_BROKER));
    assert_eq!(value(&d, "log.retention.ms"), (Some("604800000".into()), DEFAULT), "replaced away");
    broker.shutdown().await;
}
