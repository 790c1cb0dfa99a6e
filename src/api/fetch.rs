//! Fetch: whole stored batches, long-polled until `min_bytes` arrive or `max_wait_ms` passes.
//!
//! No fetch sessions are kept (KIP-227 allows a broker to decline them): every response is a
//! full one with session id 0, which clients handle by sending full fetches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{FetchResponse, FetchableTopicResponse, PartitionData};
use kafka_protocol::ResponseError;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Api, Request};
use super::offsets::check_leader_epoch;
use crate::cluster::partition_id;
use crate::log::ReadRequest;

/// A long poll never holds a request longer than this, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub async fn handle(api: &Api, req: &Request, r: FetchRequest) -> FetchResponse {
    if r.session_id != 0 {
        return FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let wait = Duration::from_millis(r.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    // Registered before the first read, so an append between the read and the wait still wakes.
    let appended = Arc::new(Notify::new());
    let partitions: Vec<_> = r
        .topics
        .iter()
        .filter_map(|t| api.cluster.topic(&t.topic).map(|topic| (topic, t)))
        .flat_map(|(topic, t)| t.partitions.iter().filter_map(move |p| topic.partition(p.partition)))
        .collect();
    api.log.watch(&partitions, &appended);
    let mut timed_out = false;
    loop {
        let (responses, bytes, errors) = read_all(api, req, &r).await;
        // Like Kafka, a fetch of nothing (a closing consumer's last one) answers at once.
        let nothing_asked = r.topics.iter().all(|t| t.partitions.is_empty());
        if timed_out || errors || nothing_asked || bytes >= r.min_bytes.max(0) as usize || wait.is_zero() {
            return FetchResponse::default().with_responses(responses);
        }
        req.parked();
        timed_out = tokio::time::timeout_at(deadline, appended.notified()).await.is_err();
    }
}

/// Reads every requested partition once. Returns the topics, the record bytes, and whether
/// any partition has an error (which answers at once rather than waiting).
async fn read_all(api: &Api, req: &Request, r: &FetchRequest) -> (Vec<FetchableTopicResponse>, usize, bool) {
    // Each partition: where to read, or why it cannot be read.
    let wanted: Vec<Vec<Result<ReadRequest, ResponseError>>> = r
        .topics
        .iter()
        .map(|t| {
            let topic = api.cluster.topic(&t.topic);
            t.partitions
                .iter()
                .map(|p| {
                    let id = partition_id(topic.as_deref(), p.partition)?;
                    check_leader_epoch(p.current_leader_epoch)?;
                    Ok(ReadRequest { id, offset: p.fetch_offset, max_bytes: p.partition_max_bytes.max(0) as usize })
                })
                .collect()
        })
        .collect();
    let requests: Vec<ReadRequest> = wanted.iter().flatten().filter_map(|w| w.as_ref().ok().copied()).collect();
    // max_bytes bounds the whole response, but the first batch goes out whatever its size (KIP-74).
    let mut reads = api.log.read(&requests, r.max_bytes.max(0) as usize).await.into_iter();
    let mut total = 0;
    let mut errors = false;
    let topics = r
        .topics
        .iter()
        .zip(wanted)
        .map(|(t, wanted)| {
            let partitions = t
                .partitions
                .iter()
                .zip(wanted)
                .map(|(p, w)| {
                    let data = PartitionData::default().with_partition_index(p.partition);
                    let result = w.and_then(|_| reads.next().expect("one result per request"));
                    match result {
                        Ok(read) => {
                            total += read.records.len();
                            offsets(data, req.version, read.high_watermark, read.log_start).with_records(Some(read.records))
                        }
                        Err(e) => {
                            errors = true;
                            let data = data.with_error_code(e.code()).with_high_watermark(-1).with_records(Some(Bytes::new()));
                            // Out-of-range answers carry the real offsets so clients can reset.
                            let topic = api.cluster.topic(&t.topic);
                            match partition_id(topic.as_deref(), p.partition).and_then(|id| api.log.offsets(id)) {
                                Ok((start, hw)) => offsets(data, req.version, hw, start),
                                _ => data,
                            }
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default().with_topic(t.topic.clone()).with_partitions(partitions)
        })
        .collect();
    (topics, total, errors)
}

fn offsets(data: PartitionData, version: i16, high_watermark: i64, log_start: i64) -> PartitionData {
    let data = data.with_high_watermark(high_watermark).with_last_stable_offset(high_watermark);
    if version >= 5 {
        data.with_log_start_offset(log_start)
    } else {
        data
    }
}
