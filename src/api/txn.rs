//! Transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn (the
//! transactional half of InitProducerId is in `produce`). The coordinator is [`crate::txn`].

use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnRequest;
use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequest;
use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::ResponseError;

use super::{Api, Request};

/// KIP-588 gave PRODUCER_FENCED its own code; clients of the request versions before it know
/// only INVALID_PRODUCER_EPOCH (Kafka's KafkaApis translates the same way).
pub fn fenced_for(version: i16, first_fenced_version: i16, e: ResponseError) -> ResponseError {
    if e == ResponseError::ProducerFenced && version < first_fenced_version {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

fn code(result: Result<(), ResponseError>) -> i16 {
    result.err().map_or(0, |e| e.code())
}

/// v0-v3, the producer's form (v4+ is the brokers' batched form, KIP-890, which no client sends).
pub async fn add_partitions(api: &Api, req: &Request, r: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let partitions: Vec<(String, i32)> = r.v3_and_below_topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p))).collect();
    let producer = (r.v3_and_below_producer_id.0, r.v3_and_below_producer_epoch);
    let result = api.txns.add_partitions(&r.v3_and_below_transactional_id, producer, &partitions).await.map_err(|e| fenced_for(req.version, 2, e));
    let results = r
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    // As Kafka: unknown partitions carry their error, the others OPERATION_NOT_ATTEMPTED.
                    let error = match result {
                        Ok(()) => 0,
                        Err(ResponseError::UnknownTopicOrPartition) if api.cluster.topic(&t.name).and_then(|topic| topic.partition(p)).is_some() => ResponseError::OperationNotAttempted.code(),
                        Err(e) => e.code(),
                    };
                    AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(error)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(t.name.clone()).with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

pub async fn add_offsets(api: &Api, req: &Request, r: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let result = api.txns.add_offsets(&r.transactional_id, (r.producer_id.0, r.producer_epoch), &r.group_id).await;
    AddOffsetsToTxnResponse::default().with_error_code(code(result.map_err(|e| fenced_for(req.version, 2, e))))
}

pub async fn txn_offset_commit(api: &Api, req: &Request, r: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let member = (r.member_id.as_str(), r.group_instance_id.as_deref());
    let generation = if req.version >= 3 { r.generation_id } else { -1 };
    let mut result = api.groups.check_txn_member(&r.group_id, member, generation);
    if result.is_ok() {
        let offsets = r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    let leader_epoch = if req.version >= 2 { p.committed_leader_epoch } else { -1 };
                    (t.name.to_string(), p.partition_index, p.committed_offset, leader_epoch, p.committed_metadata.as_ref().map(|m| m.to_string()))
                })
            })
            .collect();
        result = api.txns.commit_offsets(&r.transactional_id, (r.producer_id.0, r.producer_epoch), &r.group_id, offsets).await;
    }
    let error = code(result.map_err(|e| fenced_for(req.version, 3, e)));
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| TxnOffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(error)).collect();
            TxnOffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub async fn end_txn(api: &Api, req: &Request, r: EndTxnRequest) -> EndTxnResponse {
    // The markers may take a moment: like a parked request, this one frees its queue slot.
    req.parked();
    let result = api.txns.end_txn(&r.transactional_id, (r.producer_id.0, r.producer_epoch), r.committed).await;
    EndTxnResponse::default().with_error_code(code(result.map_err(|e| fenced_for(req.version, 2, e))))
}
