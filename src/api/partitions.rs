//! Where partitions' replicas live and which one leads: AlterPartitionReassignments,
//! ListPartitionReassignments and ElectLeaders (what `kafka-reassign-partitions` and
//! `kafka-leader-election` send). The active controller decides; this maps the requests.

use kafka_protocol::messages::alter_partition_reassignments_request::AlterPartitionReassignmentsRequest;
use kafka_protocol::messages::alter_partition_reassignments_response::{AlterPartitionReassignmentsResponse, ReassignablePartitionResponse, ReassignableTopicResponse};
use kafka_protocol::messages::elect_leaders_request::ElectLeadersRequest;
use kafka_protocol::messages::elect_leaders_response::{ElectLeadersResponse, PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use kafka_protocol::messages::list_partition_reassignments_response::{ListPartitionReassignmentsResponse, OngoingPartitionReassignment, OngoingTopicReassignment};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{Api, Request};
use crate::cluster::{AlterReassignments, ElectLeaders, ElectionType, PartitionResults, Reassign};

pub async fn alter_reassignments(api: &Api, r: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    let partitions = r
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| Reassign { topic: t.name.to_string(), index: p.partition_index, target: p.replicas.as_ref().map(|rs| rs.iter().map(|b| b.0).collect()) }))
        .collect();
    let request = AlterReassignments { partitions, allow_replication_factor_change: r.allow_replication_factor_change };
    let response = AlterPartitionReassignmentsResponse::default().with_allow_replication_factor_change(r.allow_replication_factor_change);
    match api.cluster.alter_reassignments(request).await {
        Ok(results) => {
            let responses = by_topic(results, |index, error_code, error_message| ReassignablePartitionResponse::default().with_partition_index(index).with_error_code(error_code).with_error_message(error_message))
                .into_iter()
                .map(|(name, partitions)| ReassignableTopicResponse::default().with_name(name).with_partitions(partitions))
                .collect();
            response.with_responses(responses)
        }
        Err((e, message)) => response.with_error_code(e.code()).with_error_message(Some(StrBytes::from_string(message))),
    }
}

/// The reassignments in progress, from this node's metadata image; all of them, or those of
/// the partitions named.
pub fn list_reassignments(api: &Api, r: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let image = api.cluster.image();
    let wanted = |topic: &str, index: i32| r.topics.as_ref().is_none_or(|ts| ts.iter().any(|t| t.name.as_str() == topic && t.partition_indexes.contains(&index)));
    let brokers = |ids: &[i32]| ids.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
    let topics = image
        .topics()
        .filter_map(|t| {
            let partitions: Vec<_> = t
                .reassignments
                .iter()
                .filter(|(&index, _)| wanted(&t.name, index))
                .map(|(&index, reassignment)| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(index)
                        .with_replicas(brokers(&t.partitions[&index].replicas))
                        .with_adding_replicas(brokers(&reassignment.adding))
                        .with_removing_replicas(brokers(&reassignment.removing))
                })
                .collect();
            (!partitions.is_empty()).then(|| OngoingTopicReassignment::default().with_name(TopicName(StrBytes::from_string(t.name.clone()))).with_partitions(partitions))
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

pub async fn elect_leaders(api: &Api, req: &Request, r: ElectLeadersRequest) -> ElectLeadersResponse {
    let election = match r.election_type {
        0 => ElectionType::Preferred,
        1 => ElectionType::Unclean,
        other => return failed(req, &r, ResponseError::InvalidRequest, format!("unknown election type {other}")),
    };
    let partitions = r.topic_partitions.as_ref().map(|ts| ts.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.topic.to_string(), p))).collect());
    match api.cluster.elect_leaders(ElectLeaders { election, partitions }).await {
        Ok(results) => {
            let results = by_topic(results, |index, error_code, error_message| PartitionResult::default().with_partition_id(index).with_error_code(error_code).with_error_message(error_message))
                .into_iter()
                .map(|(topic, partition_result)| ReplicaElectionResult::default().with_topic(topic).with_partition_result(partition_result))
                .collect();
            ElectLeadersResponse::default().with_replica_election_results(results)
        }
        Err((e, message)) => failed(req, &r, e, message),
    }
}

/// A whole ElectLeaders request failed: v1+ says so once, v0 (no top-level error) for every
/// partition named.
fn failed(req: &Request, r: &ElectLeadersRequest, e: ResponseError, message: String) -> ElectLeadersResponse {
    if req.version >= 1 {
        return ElectLeadersResponse::default().with_error_code(e.code());
    }
    let results = r
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            let partitions = t.partitions.iter().map(|&p| PartitionResult::default().with_partition_id(p).with_error_code(e.code()).with_error_message(Some(StrBytes::from_string(message.clone())))).collect();
            ReplicaElectionResult::default().with_topic(t.topic.clone()).with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// Per-partition results grouped by topic, in the order topics first appear.
fn by_topic<P>(results: PartitionResults, partition: impl Fn(i32, i16, Option<StrBytes>) -> P) -> Vec<(TopicName, Vec<P>)> {
    let mut topics: indexmap::IndexMap<String, Vec<P>> = indexmap::IndexMap::new();
    for ((topic, index), result) in results {
        let (code, message) = match result {
            Ok(()) => (0, None),
            Err(e) => (e.response_error().code(), Some(StrBytes::from_string(e.to_string()))),
        };
        topics.entry(topic).or_default().push(partition(index, code, message));
    }
    topics.into_iter().map(|(name, partitions)| (TopicName(StrBytes::from_string(name)), partitions)).collect()
}
