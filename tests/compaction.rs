//! Compacted topics with hand-built frames: records without keys refused as Kafka refuses them
//! (KIP-467 record errors), and the cleaner's work as a fetch sees it.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{batch_offsets, config, name, Client};
use gregor::testkit::{encode_batch, BatchSpec};
use gregor::Broker;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig, CreateTopicsRequest};
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

async fn create_compacted(client: &mut Client, topic: &str, partitions: i32) {
    let configs = [("cleanup.policy", "compact"), ("min.cleanable.dirty.ratio", "0.01")]
        .map(|(k, v)| CreatableTopicConfig::default().with_name(StrBytes::from_static_str(k)).with_value(Some(StrBytes::from_static_str(v))));
    let request = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(configs.to_vec())]);
    assert_eq!(client.call(request, 7).await.topics[0].error_code, 0);
}

#[tokio::test]
async fn records_without_keys_get_invalid_record_with_their_index_and_the_rest_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path())).await.unwrap();
    let mut client = Client::connect(&broker).await;
    create_compacted(&mut client, "compacted", 2).await;
    let keyless = encode_batch(&BatchSpec::values(2));
    let keyed = encode_batch(&BatchSpec::keyed(&[("k", Some("v"))]));
    let partition = |index, records: &Vec<u8>| PartitionProduceData::default().with_index(index).with_records(Some(Bytes::from(records.clone())));
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
        .with_name(name("compacted"))
        .with_partition_data(vec![partition(0, &keyless), partition(1, &keyed)])]);
    for version in [7, 9] {
        let response = client.call(request.clone(), version).await;
        let refused = &response.responses[0].partition_responses[0];
        assert_eq!(refused.error_code, ResponseError::InvalidRecord.code());
        let expected = "Compacted topic cannot accept message without key in topic partition compacted-0.";
        if version >= 8 {
            assert_eq!(refused.record_errors.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![0, 1]);
            assert_eq!(refused.record_errors[0].batch_index_error_message.as_deref(), Some(expected));
            assert_eq!(refused.error_message.as_deref(), Some(expected));
        }
        assert_eq!(response.responses[0].partition_responses[1].error_code, 0);
    }
    let (_, high_watermark, _) = client.fetch("compacted", 0, 0, 0).await;
    assert_eq!(high_watermark, 0, "nothing of the refused batch is stored");
    broker.shutdown().await;
}

#[tokio::test]
async fn the_cleaner_removes_superseded_records_and_fetches_skip_the_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.set_all([("log.cleaner.backoff.ms", "20")]).unwrap();
    let broker = Broker::start(cfg).await.unwrap();
    let mut client = Client::connect(&broker).await;
    create_compacted(&mut client, "table", 1).await;
    for value in ["1", "2", "3"] {
        let records = encode_batch(&BatchSpec::keyed(&[("a", Some(value)), ("b", Some(value))]));
        assert_eq!(client.produce("table", 0, records).await.0, 0);
    }
    // The head batch, never cleaned.
    assert_eq!(client.produce("table", 0, encode_batch(&BatchSpec::keyed(&[("c", Some("1"))]))).await.0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (error, _, records) = client.fetch("table", 0, 0, 0).await;
        assert_eq!(error, 0);
        // Offsets 0-3 are superseded: their batches went; the third batch (4-5) and the head stay.
        if batch_offsets(&records) == vec![4, 6] {
            break;
        }
        assert!(Instant::now() < deadline, "not compacted in time: batches at {:?}", batch_offsets(&records));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A fetch from inside the removed range gets the next batch, not an error.
    let (error, _, records) = client.fetch("table", 0, 1, 0).await;
    assert_eq!((error, batch_offsets(&records)), (0, vec![4, 6]));
    broker.shutdown().await;
}
