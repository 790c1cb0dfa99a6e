//! ListOffsets and OffsetForLeaderEpoch.

use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};
use kafka_protocol::ResponseError;

use super::{Api, Request};
use crate::cluster::{partition_id, Topic};
use crate::log::PartitionId;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// The partition's log, if this node leads it at the client's epoch (-1: no opinion).
fn lookup(api: &Api, topic: Option<&Topic>, index: i32, client_epoch: i32) -> Result<PartitionId, ResponseError> {
    let id = partition_id(topic, index)?;
    api.replicas.check_leader(id, client_epoch)?;
    api.log.offsets(id)?;
    Ok(id)
}

pub async fn list_offsets(api: &Api, req: &Request, r: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let topic = api.cluster.topic(&t.name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let found = match lookup(api, topic.as_deref(), p.partition_index, p.current_leader_epoch) {
                Ok(id) => offset_at(api, id, p.timestamp, r.isolation_level == 1).await.map(|found| found.map(|(offset, timestamp)| (offset, timestamp, api.replicas.leader_epoch(id)))),
                Err(e) => Err(e),
            };
            partitions.push(match found {
                Ok(Some((offset, timestamp, leader_epoch))) => {
                    let response = response.with_offset(offset).with_timestamp(timestamp);
                    // The leader epoch field exists from v4 on.
                    if req.version >= 4 {
                        response.with_leader_epoch(leader_epoch)
                    } else {
                        response
                    }
                }
                Ok(None) => response.with_offset(-1).with_timestamp(-1),
                Err(e) => response.with_error_code(e.code()).with_offset(-1).with_timestamp(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for a ListOffsets target: a special value or a timestamp. The latest
/// offset of a read_committed client is the last stable offset, as in Kafka.
async fn offset_at(api: &Api, id: PartitionId, target: i64, read_committed: bool) -> Result<Option<(i64, i64)>, ResponseError> {
    let (log_start, high_watermark) = api.log.offsets(id)?;
    match target {
        LATEST if read_committed => Ok(Some((api.log.last_stable_offset(id)?, -1))),
        LATEST => Ok(Some((high_watermark, -1))),
        EARLIEST => Ok(Some((log_start, -1))),
        MAX_TIMESTAMP => api.log.max_timestamp_offset(id).await,
        ts if ts >= 0 => api.log.offset_for_timestamp(id, ts).await,
        _ => Err(ResponseError::InvalidRequest),
    }
}

/// Answers from the batch index's epochs: the largest epoch at most the one asked and where it
/// ends (the log end for the latest), as Kafka's leader does. Followers use it to find where to
/// truncate after a leader change; consumers, to detect a truncation (KIP-320).
pub async fn offset_for_leader_epoch(api: &Api, r: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let topic = api.cluster.topic(&t.topic);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let response = EpochEndOffset::default().with_partition(p.partition);
            let found = match lookup(api, topic.as_deref(), p.partition, p.current_leader_epoch) {
                Ok(id) => api.log.end_offset_for_epoch(id, p.leader_epoch).await,
                Err(e) => Err(e),
            };
            partitions.push(match found {
                Ok((epoch, end_offset)) => response.with_leader_epoch(epoch).with_end_offset(end_offset),
                Err(e) => response.with_error_code(e.code()).with_leader_epoch(-1).with_end_offset(-1),
            });
        }
        topics.push(OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions));
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
