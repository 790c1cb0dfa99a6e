//! Transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn (the
//! transactional half of InitProducerId is in `produce`), their admin side (Describe- and
//! ListTransactions), and the partitions' side: WriteTxnMarkers and DescribeProducers. The
//! coordinator is [`crate::txn`].

use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnRequest, AddPartitionsToTxnTopic};
use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequest;
use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::describe_transactions_response::{DescribeTransactionsResponse, TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_request::ListTransactionsRequest;
use kafka_protocol::messages::list_transactions_response::{self, ListTransactionsResponse};
use futures_util::future::join_all;
use kafka_protocol::messages::describe_producers_request::DescribeProducersRequest;
use kafka_protocol::messages::describe_producers_response::{self, DescribeProducersResponse};
use kafka_protocol::messages::write_txn_markers_request::WriteTxnMarkersRequest;
use kafka_protocol::messages::write_txn_markers_response::{WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult, WriteTxnMarkersResponse};
use kafka_protocol::messages::{ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::security::acl::{Operation, Resource};
use super::{now_ms, Api, Request};
use crate::cluster::{partition_id, Topic};
use crate::log::{ActiveProducer, Marker};
use crate::txn::state::TxnState;

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

/// v0-v3, the producer's form; v4+ is the brokers' batched form (KIP-890), where a partition
/// leader asks whether partitions are in a transaction (`verify_only`) before it writes a
/// transactional batch.
pub async fn add_partitions(api: &Api, req: &Request, r: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    if req.version >= 4 {
        // Only brokers send the batched form.
        if let Err(e) = api.check(req, Operation::ClusterAction, Resource::cluster()) {
            return AddPartitionsToTxnResponse::default().with_error_code(e.code());
        }
        let results = join_all(r.transactions.iter().map(|t| async move {
            let partitions = listed(&t.topics);
            let producer = (t.producer_id.0, t.producer_epoch);
            let results = if t.verify_only {
                api.txns.verify_partitions(&t.transactional_id, producer, &partitions)
            } else {
                let result = api.txns.add_partitions(&t.transactional_id, producer, &partitions).await;
                partitions.iter().map(|(topic, p)| added(api, topic, *p, result)).collect()
            };
            AddPartitionsToTxnResult::default().with_transactional_id(t.transactional_id.clone()).with_topic_results(topic_results(&partitions, &results))
        }))
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_transaction(results);
    }
    let partitions = listed(&r.v3_and_below_topics);
    let producer = (r.v3_and_below_producer_id.0, r.v3_and_below_producer_epoch);
    // As Kafka: without WRITE on the id every partition carries that error; without WRITE on
    // a topic its partitions carry TOPIC_AUTHORIZATION_FAILED and the others OPERATION_NOT_ATTEMPTED.
    let denied_topics: Vec<bool> = partitions.iter().map(|(topic, _)| !api.authorize(req, Operation::Write, Resource::topic(topic))).collect();
    let results: Vec<i16> = match api.check(req, Operation::Write, Resource::transactional_id(&r.v3_and_below_transactional_id)) {
        Err(e) => vec![e.code(); partitions.len()],
        Ok(()) if denied_topics.contains(&true) => {
            let code = |denied: &bool| if *denied { ResponseError::TopicAuthorizationFailed.code() } else { ResponseError::OperationNotAttempted.code() };
            denied_topics.iter().map(code).collect()
        }
        Ok(()) => {
            let result = api.txns.add_partitions(&r.v3_and_below_transactional_id, producer, &partitions).await.map_err(|e| fenced_for(req.version, 2, e));
            partitions.iter().map(|(topic, p)| added(api, topic, *p, result)).collect()
        }
    };
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topic_results(&partitions, &results))
}

fn listed(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p))).collect()
}

/// A partition's code when the partitions were added with `result`: as Kafka, unknown
/// partitions carry their error, the others OPERATION_NOT_ATTEMPTED.
fn added(api: &Api, topic: &str, partition: i32, result: Result<(), ResponseError>) -> i16 {
    match result {
        Ok(()) => 0,
        Err(ResponseError::UnknownTopicOrPartition) if api.cluster.topic(topic).and_then(|t| t.partition(partition)).is_some() => ResponseError::OperationNotAttempted.code(),
        Err(e) => e.code(),
    }
}

/// Per-partition codes grouped by topic, in the order listed.
fn topic_results(partitions: &[(String, i32)], codes: &[i16]) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, p), &code) in partitions.iter().zip(codes) {
        let result = AddPartitionsToTxnPartitionResult::default().with_partition_index(*p).with_partition_error_code(code);
        match results.last_mut().filter(|t| t.name.as_str() == topic) {
            Some(t) => t.results_by_partition.push(result),
            None => results.push(AddPartitionsToTxnTopicResult::default().with_name(TopicName(StrBytes::from_string(topic.clone()))).with_results_by_partition(vec![result])),
        }
    }
    results
}

pub async fn add_offsets(api: &Api, req: &Request, r: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let allowed = api.check(req, Operation::Write, Resource::transactional_id(&r.transactional_id)).and_then(|()| api.check(req, Operation::Read, Resource::group(&r.group_id)));
    let result = match allowed {
        Ok(()) => api.txns.add_offsets(&r.transactional_id, (r.producer_id.0, r.producer_epoch), &r.group_id).await,
        Err(e) => Err(e),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code(result.map_err(|e| fenced_for(req.version, 2, e))))
}

pub async fn txn_offset_commit(api: &Api, req: &Request, r: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let member = (r.member_id.as_str(), r.group_instance_id.as_deref());
    let generation = if req.version >= 3 { r.generation_id } else { -1 };
    let producer = (r.producer_id.0, r.producer_epoch);
    let guard = api.groups.guard_txn_offsets(&r.group_id, producer.0);
    let mut result = api
        .check(req, Operation::Write, Resource::transactional_id(&r.transactional_id))
        .and_then(|()| api.check(req, Operation::Read, Resource::group(&r.group_id)))
        .and_then(|()| r.topics.iter().try_for_each(|t| api.check(req, Operation::Read, Resource::topic(&t.name))))
        .and_then(|()| api.groups.check_txn_member(&r.group_id, member, generation));
    if result.is_ok() {
        // v5 (transactions v2) adds the group to the transaction: no AddOffsetsToTxn came first.
        result = api.txns.verify_offset_commit(&r.transactional_id, producer, &r.group_id, req.version >= 5).await;
    }
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
        result = api.groups.hold_txn_offsets(&r.group_id, producer, crate::txn::held_offsets(offsets), Some(&guard)).await;
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

/// DescribeTransactions v0: each id's state, producer, timeout, start time and partitions;
/// TRANSACTIONAL_ID_NOT_FOUND for an id the coordinator does not know.
pub fn describe_transactions(api: &Api, req: &Request, r: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let states = r
        .transactional_ids
        .into_iter()
        .map(|id| {
            let described = api.check(req, Operation::Describe, Resource::transactional_id(&id)).and_then(|()| api.txns.describe(&id));
            let meta = match described {
                Ok(Some(meta)) => meta,
                Ok(None) => return TransactionState::default().with_transactional_id(id).with_error_code(ResponseError::TransactionalIdNotFound.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
                Err(e) => return TransactionState::default().with_transactional_id(id).with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
            };
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, partition) in &meta.partitions {
                match topics.last_mut() {
                    Some(t) if t.topic.as_str() == topic => t.partitions.push(*partition),
                    _ => topics.push(TopicData::default().with_topic(TopicName(StrBytes::from_string(topic.clone()))).with_partitions(vec![*partition])),
                }
            }
            TransactionState::default()
                .with_transactional_id(id)
                .with_transaction_state(StrBytes::from_static_str(meta.state.name()))
                .with_transaction_timeout_ms(meta.timeout_ms)
                .with_transaction_start_time_ms(meta.txn_start_ms)
                .with_producer_id(ProducerId(meta.producer_id))
                .with_producer_epoch(meta.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions v0-1: filtered by state names (unknown ones returned as such), producer
/// ids, and (v1) how long the transaction has been open, as Kafka's coordinator filters.
pub fn list_transactions(api: &Api, req: &Request, r: ListTransactionsRequest) -> ListTransactionsResponse {
    let known = |name: &str| TxnState::ALL.iter().any(|s| s.name() == name);
    let unknown: Vec<StrBytes> = r.state_filters.iter().filter(|f| !known(f)).cloned().collect();
    let duration = if req.version >= 1 { r.duration_filter } else { -1 };
    let now = now_ms();
    let states = api
        .txns
        .list()
        .into_iter()
        .filter(|(id, _)| api.authorize(req, Operation::Describe, Resource::transactional_id(id)))
        .filter(|(_, m)| r.state_filters.is_empty() || r.state_filters.iter().any(|f| f.as_str() == m.state.name()))
        .filter(|(_, m)| r.producer_id_filters.is_empty() || r.producer_id_filters.contains(&ProducerId(m.producer_id)))
        .filter(|(_, m)| duration < 0 || now.saturating_sub(m.txn_start_ms) >= duration)
        .map(|(id, m)| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(StrBytes::from_string(id).into())
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default().with_unknown_state_filters(unknown).with_transaction_states(states)
}

pub async fn end_txn(api: &Api, req: &Request, r: EndTxnRequest) -> EndTxnResponse {
    // The markers may take a moment: like a parked request, this one frees its queue slot.
    req.parked();
    let v2 = req.version >= 5;
    let result = match api.check(req, Operation::Write, Resource::transactional_id(&r.transactional_id)) {
        Ok(()) => api.txns.end_txn(&r.transactional_id, (r.producer_id.0, r.producer_epoch), r.committed, v2).await,
        Err(e) => Err(e),
    };
    // v5 hands on the producer id and epoch of the next transaction.
    let next = result.ok().filter(|_| v2).unwrap_or((-1, -1));
    EndTxnResponse::default()
        .with_error_code(code(result.map(|_| ()).map_err(|e| fenced_for(req.version, 2, e))))
        .with_producer_id(ProducerId(next.0))
        .with_producer_epoch(next.1)
}

/// WriteTxnMarkers v0-1 (Kafka's handleWriteTxnMarkersRequest): each marker goes to every
/// partition it names through the coordinator's own marker path (acks=all), each partition
/// answered on its own. A marker on a `__consumer_offsets` partition then completes the
/// producer's transactional offsets of that partition's groups.
pub async fn write_txn_markers(api: &Api, req: &Request, r: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    // Markers wait for the ISR: like a parked request, this one frees its queue slot.
    req.parked();
    let allowed = api.check(req, Operation::ClusterAction, Resource::cluster());
    let mut results = Vec::with_capacity(r.markers.len());
    // One marker after the other: a later one for the same producer must land after.
    for m in &r.markers {
        let marker = Marker { producer_id: m.producer_id.0, producer_epoch: m.producer_epoch, coordinator_epoch: m.coordinator_epoch, commit: m.transaction_result };
        let topics = join_all(m.topics.iter().map(|t| async move {
            let topic = api.cluster.topic(&t.name);
            let partitions = join_all(t.partition_indexes.iter().map(|&index| {
                let topic = topic.as_deref();
                async move {
                    let written = match allowed {
                        Ok(()) => write_txn_marker(api, topic, index, &marker).await,
                        Err(e) => Err(e),
                    };
                    let error = code(written);
                    WritableTxnMarkerPartitionResult::default().with_partition_index(index).with_error_code(error)
                }
            }))
            .await;
            WritableTxnMarkerTopicResult::default().with_name(t.name.clone()).with_partitions(partitions)
        }))
        .await;
        results.push(WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics));
    }
    WriteTxnMarkersResponse::default().with_markers(results)
}

async fn write_txn_marker(api: &Api, topic: Option<&Topic>, index: i32, marker: &Marker) -> Result<(), ResponseError> {
    let topic = topic.ok_or(ResponseError::UnknownTopicOrPartition)?;
    let partition = partition_id(Some(topic), index)?;
    // As Kafka: no replica here is UNKNOWN_TOPIC_OR_PARTITION, a follower's NOT_LEADER_OR_FOLLOWER.
    if !api.replicas.hosts(partition) {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    api.txns.write_marker(topic, partition, index, marker).await
}

/// DescribeProducers v0: the producers each partition remembers, from any replica of it, as
/// Kafka's Partition.activeProducerState answers.
pub async fn describe_producers(api: &Api, req: &Request, r: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = join_all(r.topics.iter().map(|t| async move {
        let topic = api.check(req, Operation::Read, Resource::topic(&t.name)).map(|()| api.cluster.topic(&t.name));
        let partitions = join_all(t.partition_indexes.iter().map(|&index| {
            let topic = topic.as_ref().map(|t| t.as_deref()).map_err(|e| *e);
            async move {
                let response = describe_producers_response::PartitionResponse::default().with_partition_index(index);
                let producers = match topic {
                    Ok(topic) => producers_of(api, topic, index).await,
                    Err(e) => Err(e),
                };
                match producers {
                    Ok(producers) => response.with_active_producers(producers.iter().map(producer_state).collect()),
                    Err(e) => response.with_error_code(e.code()),
                }
            }
        }))
        .await;
        describe_producers_response::TopicResponse::default().with_name(t.name.clone()).with_partitions(partitions)
    }))
    .await;
    DescribeProducersResponse::default().with_topics(topics)
}

async fn producers_of(api: &Api, topic: Option<&Topic>, index: i32) -> Result<Vec<ActiveProducer>, ResponseError> {
    let partition = partition_id(topic, index)?;
    if !api.replicas.hosts(partition) {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    api.log.producers(partition).await
}

fn producer_state(p: &ActiveProducer) -> describe_producers_response::ProducerState {
    describe_producers_response::ProducerState::default()
        .with_producer_id(ProducerId(p.producer_id))
        .with_producer_epoch(i32::from(p.epoch))
        .with_last_sequence(p.last_sequence)
        .with_last_timestamp(p.last_timestamp)
        .with_coordinator_epoch(p.coordinator_epoch)
        .with_current_txn_start_offset(p.txn_start_offset)
}
