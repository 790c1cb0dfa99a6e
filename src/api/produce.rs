//! Produce and InitProducerId.

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest};
use futures_util::future::join_all;
use kafka_protocol::messages::produce_response::{BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, ProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{BrokerId, ProducerId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{Api, FrameError, Request};
use crate::security::acl::{Operation, Resource, ResourceType};
use crate::cluster::{partition_id, Topic};
use crate::log::batch::BatchHeader;
use crate::cluster::replication::LeaderWrite;
use crate::log::AppendError;

/// Appends every partition's batches, all partitions at once (so the syncs that fsync-mode
/// topics wait for are shared).
pub async fn handle(api: &Api, req: &Request, r: ProduceRequest) -> ProduceResponse {
    let acks_valid = matches!(r.acks, -1..=1);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(r.timeout_ms.max(0) as u64);
    let acks = r.acks;
    let transactional_id = r.transactional_id.as_deref().map(|id| id.as_str());
    // Transactions v2 (KIP-890 part 2): a transactional batch adds its partition itself.
    let adds_partitions = req.version >= 12;
    let may_write_txn = transactional_id.is_none_or(|id| api.authorize(req, Operation::Write, Resource::transactional_id(id)));
    let appends = r.topic_data.iter().map(|topic_data| async move {
        let topic = api.cluster.topic(&topic_data.name);
        let refused = if !may_write_txn {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !api.authorize(req, Operation::Write, Resource::topic(&topic_data.name)) {
            Some(ResponseError::TopicAuthorizationFailed)
        } else if !acks_valid {
            Some(ResponseError::InvalidRequiredAcks)
        } else {
            None
        };
        let partitions = join_all(topic_data.partition_data.iter().map(|p| {
            let topic = topic.as_deref();
            async move {
                let result = match refused {
                    Some(e) => Err(e.into()),
                    None => append(api, topic, p, (acks, transactional_id, adds_partitions), deadline).await,
                };
                let mut response = partition_response(req.version, &topic_data.name, p.index, result);
                if let Some((leader, epoch)) = api.current_leader(response.error_code, || partition_id(topic, p.index).ok()).filter(|_| req.version >= 10) {
                    response.current_leader = LeaderIdAndEpoch::default().with_leader_id(BrokerId(leader)).with_leader_epoch(epoch);
                }
                response
            }
        }))
        .await;
        TopicProduceResponse::default().with_name(topic_data.name.clone()).with_partition_responses(partitions)
    });
    let responses = join_all(appends).await;
    let leaders: BTreeSet<i32> = responses.iter().flat_map(|t| &t.partition_responses).map(|p| p.current_leader.leader_id.0).filter(|&id| id >= 0).collect();
    let endpoints = api
        .broker_addresses(req, &leaders)
        .into_iter()
        .map(|b| NodeEndpoint::default().with_node_id(BrokerId(b.id)).with_host(StrBytes::from_string(b.host)).with_port(i32::from(b.port)).with_rack(b.rack.map(StrBytes::from_string)))
        .collect();
    ProduceResponse::default().with_responses(responses).with_node_endpoints(endpoints)
}

/// What becomes of an acks=0 produce's response: nothing is sent, and a failure closes the
/// connection.
pub fn unacknowledged(response: &ProduceResponse) -> Result<(), FrameError> {
    for topic in &response.responses {
        if let Some(p) = topic.partition_responses.iter().find(|p| p.error_code != 0) {
            let error = ResponseError::try_from_code(p.error_code).unwrap_or(ResponseError::UnknownServerError);
            return Err(FrameError::UnacknowledgedProduceFailed { topic: topic.name.to_string(), partition: p.index, error });
        }
    }
    Ok(())
}

/// (base offset, log append time or -1, log start offset)
type Appended = (i64, i64, i64);

/// Appends on the leader; with acks=all, answers once the high watermark passes the batch
/// (REQUEST_TIMED_OUT at the request's timeout), refusing at once when the ISR is smaller than
/// `min.insync.replicas`, as Kafka's Partition.appendRecordsToLeader does.
async fn append(api: &Api, topic: Option<&Topic>, p: &PartitionProduceData, (acks, transactional_id, add_partition): (i16, Option<&str>, bool), deadline: tokio::time::Instant) -> Result<Appended, AppendError> {
    let topic = topic.ok_or(ResponseError::UnknownTopicOrPartition)?;
    if topic.name == crate::group::OFFSETS_TOPIC {
        // Only the group coordinator writes there, as in Kafka.
        return Err(ResponseError::InvalidTopicException.into());
    }
    let partition = partition_id(Some(topic), p.index)?;
    let records = p.records.as_ref().ok_or(ResponseError::CorruptMessage)?;
    let verified = match BatchHeader::new(records).filter(|h| h.is_transactional()) {
        Some(header) => Some(api.txns.verify_produce(transactional_id, (header.producer_id(), header.producer_epoch()), &topic.name, (partition, p.index), add_partition).await?),
        None => None,
    };
    let how = LeaderWrite { epoch: None, acks_all: acks == -1, deadline };
    api.replicas
        .append_as_leader(topic, partition, how, |opts| async move {
            let appended = api.log.append(partition, records, opts).await.inspect_err(|e| {
                tracing::debug!(topic = %topic.name, partition = p.index, "produce refused: {e:?}");
            });
            // Counted once written, as Kafka does, whether or not acks=all then times out.
            if appended.is_ok() {
                api.metrics.produced(&topic.name, crate::log::batch::count_records(records), records.len() as u64);
            }
            // The transaction's check holds only until the batch is written, not while it replicates.
            drop(verified);
            appended.map(|a| ((a.base_offset, a.log_append_time, a.log_start), a.end_offset))
        })
        .await
}

fn partition_response(version: i16, topic: &str, index: i32, result: Result<Appended, AppendError>) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok((base_offset, append_time, log_start)) => {
            let response = response.with_base_offset(base_offset).with_log_append_time_ms(append_time);
            if version >= 5 {
                response.with_log_start_offset(log_start)
            } else {
                response
            }
        }
        Err(AppendError::Refused(e)) => response.with_error_code(e.code()).with_base_offset(-1),
        // KIP-467: which records were refused, and why, as Kafka words it.
        Err(AppendError::MissingKeys(indexes)) => {
            let response = response.with_error_code(ResponseError::InvalidRecord.code()).with_base_offset(-1);
            if version < 8 {
                return response;
            }
            let message = format!("Compacted topic cannot accept message without key in topic partition {topic}-{index}.");
            let record_errors = indexes
                .into_iter()
                .map(|i| BatchIndexAndErrorMessage::default().with_batch_index(i).with_batch_index_error_message(Some(StrBytes::from_string(message.clone()))))
                .collect();
            response.with_record_errors(record_errors).with_error_message(Some(StrBytes::from_string(message)))
        }
    }
}

/// Hands out producer ids. For idempotent producers, as Kafka's TransactionCoordinator does for
/// a request without a transactional id: always a fresh id with epoch 0, whatever producer id
/// and epoch the request names (Kafka bumps an epoch only for a transactional id; trusting a
/// named id would let a client take over another producer's sequences). A transactional id
/// goes to the transaction coordinator.
pub async fn init_producer_id(api: &Api, req: &Request, r: InitProducerIdRequest) -> InitProducerIdResponse {
    let refuse = |e: ResponseError| InitProducerIdResponse::default().with_error_code(e.code()).with_producer_epoch(-1);
    // Kafka's KafkaApis: a producer id without an epoch, or an epoch without an id, is malformed.
    if (r.producer_id.0 == -1) != (r.producer_epoch == -1) {
        return refuse(ResponseError::InvalidRequest);
    }
    match r.transactional_id.as_deref().map(|id| id.is_empty()) {
        None => {}
        // Kafka refuses an empty transactional id the same way.
        Some(true) => return refuse(ResponseError::InvalidRequest),
        Some(false) => {
            let named = (r.producer_id.0 != -1).then_some((r.producer_id.0, r.producer_epoch));
            let id = r.transactional_id.as_deref().map_or("", |id| id.as_str());
            if let Err(e) = api.check(req, Operation::Write, Resource::transactional_id(id)) {
                return refuse(e);
            }
            return match api.txns.init_producer_id(id, r.transaction_timeout_ms, named).await {
                Ok((pid, epoch)) => InitProducerIdResponse::default().with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
                // PRODUCER_FENCED is known from v4 (KIP-588).
                Err(e) => refuse(super::txn::fenced_for(req.version, 4, e)),
            };
        }
    }
    // Kafka 4: an idempotent producer needs IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
    if !api.authorize(req, Operation::IdempotentWrite, Resource::cluster()) && !api.authorize_any(req, Operation::Write, ResourceType::Topic) {
        return refuse(ResponseError::ClusterAuthorizationFailed);
    }
    match api.cluster.next_producer_id().await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err((e, message)) => {
            tracing::warn!("cannot allocate a producer id: {message}");
            refuse(e)
        }
    }
}
