//! A broker on a free port with a temporary data directory, and a raw protocol client that
//! sends hand-built frames.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use gregor::{Broker, BrokerHandle, Config};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::describe_producers_request::{DescribeProducersRequest, TopicRequest};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic, WriteTxnMarkersRequest};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kafka_protocol::messages::{GroupId, ProducerId, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.set("listeners", "127.0.0.1:0").unwrap();
    config.set("log.dirs", dir.to_str().unwrap()).unwrap();
    config
}

pub async fn start(dir: &Path) -> BrokerHandle {
    Broker::start(config(dir)).await.expect("broker starts")
}

/// A broker with these settings over the test defaults.
pub async fn start_with(dir: &Path, settings: &[(&str, &str)]) -> BrokerHandle {
    let mut config = config(dir);
    for (key, value) in settings {
        config.set(key, value).unwrap();
    }
    Broker::start(config).await.expect("broker starts")
}

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub struct Client {
    stream: TcpStream,
    next_correlation: i32,
}

impl Client {
    pub async fn connect(broker: &BrokerHandle) -> Client {
        Client::connect_to(broker.local_addr()).await
    }

    pub async fn connect_to(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client { stream, next_correlation: 1 }
    }

    /// Writes bytes as they are, no size prefix added.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        assert!(self.try_send_raw(bytes).await, "write failed");
    }

    /// Like `send_raw`, but false when the broker has closed the connection.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Encodes and sends a request; returns its correlation id.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("gregor-tests")))
            .encode(&mut buf, R::header_version(version))
            .unwrap();
        request.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.send_raw(&buf).await;
        correlation
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let size = self.stream.read_i32().await.ok()?;
            let mut buf = vec![0u8; size as usize];
            self.stream.read_exact(&mut buf).await.ok()?;
            Some(Bytes::from(buf))
        };
        tokio::time::timeout(TIMEOUT, read).await.expect("broker answered in time")
    }

    pub async fn receive<R: Request>(&mut self, version: i16, correlation: i32) -> R::Response {
        let mut frame = self.read_frame().await.expect("a response, not a closed connection");
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation);
        let response = R::Response::decode(&mut frame, version).unwrap();
        assert_eq!(frame.remaining(), 0, "response has trailing bytes");
        response
    }

    pub async fn call<R: Request>(&mut self, request: R, version: i16) -> R::Response {
        let correlation = self.send(&request, version).await;
        self.receive::<R>(version, correlation).await
    }

    /// True if the broker closed this connection.
    pub async fn is_closed(&mut self) -> bool {
        self.read_frame().await.is_none()
    }

    pub async fn create_topic(&mut self, topic: &str, partitions: i32) -> i16 {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default().with_name(name(topic)).with_num_partitions(partitions).with_replication_factor(1)])
            .with_timeout_ms(5000);
        self.call(request, 7).await.topics[0].error_code
    }

    /// Produces one record set to one partition; returns (error code, base offset).
    pub async fn produce(&mut self, topic: &str, partition: i32, records: Vec<u8>) -> (i16, i64) {
        let response = self.call(produce_request(topic, partition, records, -1), 9).await;
        let p = &response.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    /// Fetches one partition; returns (error code, high watermark, record bytes).
    pub async fn fetch(&mut self, topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> (i16, i64, Bytes) {
        let response = self.call(fetch_request(topic, partition, offset, max_wait_ms), 12).await;
        let p = &response.responses[0].partitions[0];
        (p.error_code, p.high_watermark, p.records.clone().unwrap_or_default())
    }
}

pub fn produce_request(topic: &str, partition: i32, records: Vec<u8>, acks: i16) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(Bytes::from(records)))])])
}

pub fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default().with_max_wait_ms(max_wait_ms).with_min_bytes(1).with_topics(vec![FetchTopic::default()
        .with_topic(name(topic))
        .with_partitions(vec![FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(1 << 20)])])
}

/// The base offset of each batch in a fetched record set.
pub fn batch_offsets(mut records: &[u8]) -> Vec<i64> {
    let mut out = Vec::new();
    while records.len() >= 12 {
        let base = i64::from_be_bytes(records[..8].try_into().unwrap());
        let len = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize + 12;
        out.push(base);
        records = &records[len.min(records.len())..];
    }
    out
}

/// A commit outside group membership (generation -1, no member id) with OffsetCommit v2,
/// whose `retention_time_ms` may give the offset its own retention (-1: the broker's).
pub async fn simple_commit(c: &mut Client, group_id: &str, topic: &str, offset: i64, retention_ms: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_retention_time_ms(retention_ms)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset)])]);
    c.call(request, 2).await.topics[0].partitions[0].error_code
}

/// (offset, metadata) committed for partition 0 of `topic`, via OffsetFetch v7.
pub async fn committed(c: &mut Client, group_id: &str, topic: &str) -> (i64, String, i16) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default().with_name(name(topic)).with_partition_indexes(vec![0])]));
    let r = c.call(request, 7).await;
    let p = &r.topics[0].partitions[0];
    (p.committed_offset, p.metadata.as_deref().unwrap_or_default().to_string(), r.error_code)
}

/// WriteTxnMarkers v1 of one marker to `partitions` of `topic`; each partition's error code.
pub async fn write_marker(c: &mut Client, topic: &str, partitions: Vec<i32>, (pid, epoch): (i64, i16), coordinator_epoch: i32, commit: bool) -> Vec<i16> {
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_coordinator_epoch(coordinator_epoch)
        .with_transaction_result(commit)
        .with_topics(vec![WritableTxnMarkerTopic::default().with_name(name(topic)).with_partition_indexes(partitions)]);
    let r = c.call(WriteTxnMarkersRequest::default().with_markers(vec![marker]), 1).await;
    assert_eq!(r.markers[0].producer_id.0, pid);
    r.markers[0].topics[0].partitions.iter().map(|p| p.error_code).collect()
}

/// DescribeProducers of one partition: (error code, producers as (id, epoch, last sequence,
/// coordinator epoch, transaction start offset)).
pub async fn producers(c: &mut Client, topic: &str, partition: i32) -> (i16, Vec<(i64, i32, i32, i32, i64)>) {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default().with_name(name(topic)).with_partition_indexes(vec![partition])]);
    let r = c.call(request, 0).await;
    let p = &r.topics[0].partitions[0];
    assert!(p.active_producers.iter().all(|s| s.last_timestamp > 0));
    (p.error_code, p.active_producers.iter().map(|s| (s.producer_id.0, s.producer_epoch, s.last_sequence, s.coordinator_epoch, s.current_txn_start_offset)).collect())
}
