//! Client quotas over the wire: AlterClientQuotas checks and validate_only, DescribeClientQuotas
//! filters, a producer and a consumer over their byte rates and a client over its request
//! percentage throttled and muted (KIP-219).

mod common;

use std::time::{Duration, Instant};

use common::*;
use gregor::testkit::{encode_batch, BatchSpec};
use kafka_protocol::messages::alter_client_quotas_request::{AlterClientQuotasRequest, EntityData, EntryData, OpData};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::describe_client_quotas_request::{ComponentData, DescribeClientQuotasRequest};
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// One entry setting (or, with `None`, removing) `key` on the entity of `(type, name)` pairs.
fn entry(entity: &[(&str, Option<&str>)], key: &str, value: Option<f64>) -> EntryData {
    let entity = entity.iter().map(|(kind, name)| EntityData::default().with_entity_type(text(kind)).with_entity_name(name.map(text))).collect();
    let op = OpData::default().with_key(text(key)).with_value(value.unwrap_or(0.0)).with_remove(value.is_none());
    EntryData::default().with_entity(entity).with_ops(vec![op])
}

async fn alter(c: &mut Client, entries: Vec<EntryData>, validate_only: bool) -> Vec<(i16, String)> {
    let response = c.call(AlterClientQuotasRequest::default().with_entries(entries).with_validate_only(validate_only), 1).await;
    response.entries.into_iter().map(|e| (e.error_code, e.error_message.map(|m| m.to_string()).unwrap_or_default())).collect()
}

/// The entities matching a filter of `(type, match type, match)`, as `type=name` strings.
async fn describe(c: &mut Client, components: &[(&str, i8, Option<&str>)], strict: bool) -> Result<Vec<String>, i16> {
    let components = components.iter().map(|(kind, match_type, name)| ComponentData::default().with_entity_type(text(kind)).with_match_type(*match_type).with_match(name.map(text))).collect();
    let response = c.call(DescribeClientQuotasRequest::default().with_components(components).with_strict(strict), 1).await;
    if response.error_code != 0 {
        return Err(response.error_code);
    }
    let entry = |e: &kafka_protocol::messages::describe_client_quotas_response::EntryData| {
        let entity: Vec<String> = e.entity.iter().map(|d| format!("{}={}", d.entity_type.as_str(), d.entity_name.as_deref().unwrap_or("<default>"))).collect();
        let values: Vec<String> = e.values.iter().map(|v| format!("{}:{}", v.key.as_str(), v.value)).collect();
        format!("{} {}", entity.join(","), values.join(","))
    };
    Ok(response.entries.unwrap_or_default().iter().map(entry).collect())
}

const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const SPECIFIED: i8 = 2;

#[tokio::test]
async fn quotas_are_checked_set_and_described_with_kafkas_filters() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    let invalid = ResponseError::InvalidRequest.code();

    assert_eq!(alter(&mut c, vec![entry(&[("client-id", Some("app"))], "producer_byte_rate", Some(100.0))], true).await, vec![(0, String::new())]);
    assert_eq!(describe(&mut c, &[], false).await, Ok(vec![]), "validate_only writes nothing");

    let results = alter(
        &mut c,
        vec![
            entry(&[("client-id", Some("app"))], "producer_byte_rate", Some(100.0)),
            entry(&[("user", None)], "consumer_byte_rate", Some(200.0)),
            entry(&[("user", Some("alice")), ("client-id", Some("app"))], "request_percentage", Some(12.5)),
            entry(&[("client-id", Some("app"))], "bogus", Some(1.0)),
            entry(&[("client-id", Some("app"))], "consumer_byte_rate", Some(-1.0)),
            entry(&[("client-id", Some(""))], "consumer_byte_rate", Some(1.0)),
            entry(&[("ip", Some("10.0.0.1"))], "connection_creation_rate", Some(1.0)),
        ],
        false,
    )
    .await;
    assert_eq!(results[..3], [(0, String::new()), (0, String::new()), (0, String::new())]);
    assert_eq!(results[3], (invalid, "Invalid configuration key bogus".to_string()));
    assert_eq!(results[4].0, invalid);
    assert_eq!(results[5], (invalid, "Empty client-id not supported".to_string()));
    assert_eq!(results[6].0, invalid);

    assert_eq!(describe(&mut c, &[("client-id", EXACT, Some("app"))], true).await, Ok(vec!["client-id=app producer_byte_rate:100".to_string()]));
    assert_eq!(
        describe(&mut c, &[("client-id", EXACT, Some("app"))], false).await,
        Ok(vec!["client-id=app producer_byte_rate:100".to_string(), "user=alice,client-id=app request_percentage:12.5".to_string()])
    );
    assert_eq!(describe(&mut c, &[("user", DEFAULT, None)], false).await, Ok(vec!["user=<default> consumer_byte_rate:200".to_string()]));
    assert_eq!(describe(&mut c, &[("user", SPECIFIED, None)], false).await.map(|e| e.len()), Ok(2));
    assert_eq!(describe(&mut c, &[("user", EXACT, None)], false).await, Err(invalid));
    assert_eq!(describe(&mut c, &[("group", SPECIFIED, None)], false).await, Err(ResponseError::UnsupportedVersion.code()));

    assert_eq!(alter(&mut c, vec![entry(&[("client-id", Some("app"))], "producer_byte_rate", None)], false).await, vec![(0, String::new())]);
    assert_eq!(describe(&mut c, &[("client-id", SPECIFIED, None)], true).await, Ok(vec![]), "an entity without quotas is gone");
    broker.shutdown().await;
}

/// Milliseconds until an ApiVersions sent now is answered: how long the connection is muted.
async fn muted_for(c: &mut Client) -> Duration {
    let started = Instant::now();
    c.call(ApiVersionsRequest::default(), 3).await;
    started.elapsed()
}

#[tokio::test]
async fn clients_over_their_byte_rates_are_throttled_and_muted() {
    let dir = tempfile::tempdir().unwrap();
    // Two windows of a second: rates are judged over at least one second.
    let broker = start_with(dir.path(), &[("quota.window.num", "2")]).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(c.create_topic("metered", 1).await, 0);
    let results = alter(
        &mut c,
        vec![entry(&[("client-id", Some("gregor-tests"))], "producer_byte_rate", Some(20_000.0)), entry(&[("client-id", None)], "consumer_byte_rate", Some(20_000.0))],
        false,
    )
    .await;
    assert!(results.iter().all(|(code, _)| *code == 0), "{results:?}");

    // 15 KB is within 20 KB/s; 30 KB within a second is 10 KB over: half a second's throttle.
    let batch = || encode_batch(&BatchSpec { value_bytes: 3000, ..BatchSpec::values(5) });
    let response = c.call(produce_request("metered", 0, batch(), -1), 9).await;
    assert_eq!(response.throttle_time_ms, 0);
    let response = c.call(produce_request("metered", 0, batch(), -1), 9).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0, "a throttled produce is written");
    let throttle = response.throttle_time_ms;
    assert!((400..=700).contains(&throttle), "throttle {throttle} ms");
    assert!(muted_for(&mut c).await >= Duration::from_millis(throttle as u64 - 50), "the connection reads nothing while throttled");
    c.produce("metered", 0, batch()).await;

    // The consumer's own rate: the first fetch is capped at 20 KB (one batch), the second puts it
    // over and is answered empty, the third (after the mute) gets the batch.
    let fetch = |offset| fetch_request("metered", 0, offset, 0).with_max_bytes(1 << 20);
    let response = c.call(fetch(0), 12).await;
    let p = &response.responses[0].partitions[0];
    assert_eq!((response.throttle_time_ms, batch_offsets(p.records.as_deref().unwrap_or_default())), (0, vec![0]));
    let response = c.call(fetch(5), 12).await;
    assert!(response.throttle_time_ms > 0, "the second fetch is over the quota");
    assert_eq!(response.responses[0].partitions[0].records.as_deref().unwrap_or_default(), b"", "and carries no records");
    let response = c.call(fetch(5), 12).await;
    assert_eq!(batch_offsets(response.responses[0].partitions[0].records.as_deref().unwrap_or_default()), vec![5], "what was held back comes next");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_over_its_request_percentage_is_throttled_and_muted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("quota.window.num", "2")]).await;
    let mut c = Client::connect(&broker).await;
    // A hundredth of a percent of a thread: 100 µs of handling a second.
    let results = alter(&mut c, vec![entry(&[("client-id", None)], "request_percentage", Some(0.01))], false).await;
    assert!(results.iter().all(|(code, _)| *code == 0), "{results:?}");
    // Until the throttle is long enough to measure the mute against.
    let mut throttle = 0;
    for _ in 0..1000 {
        throttle = c.call(MetadataRequest::default(), 12).await.throttle_time_ms;
        if throttle >= 100 {
            break;
        }
    }
    assert!(throttle >= 100, "Metadata requests never went far over 100 µs of handling a second");
    assert!(muted_for(&mut c).await >= Duration::from_millis(throttle as u64 - 50), "the connection reads nothing while throttled");
    broker.shutdown().await;
}
