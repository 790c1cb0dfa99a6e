//! Metadata, DescribeCluster and DescribeTopicPartitions: the live brokers of the metadata
//! image, and each partition's leader, epoch, replicas and ISR as this node applied them;
//! topics are auto-created on request when the broker and the request both allow it.
//! DescribeQuorum: the controller quorum, as the active controller describes it.

use std::collections::HashSet;

use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::{DescribeClusterBroker, DescribeClusterResponse};
use kafka_protocol::messages::describe_quorum_request::DescribeQuorumRequest;
use kafka_protocol::messages::describe_quorum_response::{self as quorum, DescribeQuorumResponse, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::describe_topic_partitions_request::DescribeTopicPartitionsRequest;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponse, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{Api, Request};
use crate::security::acl::{Operation, Resource};
use crate::cluster::replication::{PartitionState, ReplicaManager};
use crate::cluster::{ReplicaProgress, Topic};

/// The metadata log's name, as DescribeQuorum asks for it.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// The ACL operations of a topic (READ..ALTER_CONFIGS but CLUSTER_ACTION) and of the cluster
/// (CREATE, ALTER..IDEMPOTENT_WRITE), a bit per operation code as KIP-430 answers them.
const TOPIC_OPERATIONS: i32 = 0b1101_1111_1000;
const CLUSTER_OPERATIONS: i32 = 0b1_1111_1010_0000;

pub async fn handle(api: &Api, req: &Request, r: MetadataRequest) -> MetadataResponse {
    let brokers = api
        .cluster
        .live_brokers(&req.listener)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.map(StrBytes::from_string))
        })
        .collect();
    // Before v4 there is no allow flag and topics are always auto-created.
    let allow_create = req.version < 4 || r.allow_auto_topic_creation;
    let topic_ops = req.version >= 8 && r.include_topic_authorized_operations;
    let live = live_brokers(api);
    let describe = |t: &Topic| {
        let ops = topic_ops.then(|| api.authorized_operations(req, Resource::topic(&t.name), TOPIC_OPERATIONS));
        describe_topic(t, req.version, &api.replicas, &live, ops)
    };
    // Every topic means every topic the client may describe; one asked for by name or id that
    // it may not is answered TOPIC_AUTHORIZATION_FAILED, as Kafka does.
    let may_describe = |name: &str| api.authorize(req, Operation::Describe, Resource::topic(name));
    let all_topics = || api.cluster.topics().iter().filter(|t| may_describe(&t.name)).map(|t| describe(t)).collect();
    let topics = match r.topics {
        None => all_topics(),
        Some(list) if list.is_empty() && req.version == 0 => all_topics(),
        Some(list) => {
            let mut topics = Vec::with_capacity(list.len());
            for wanted in list {
                topics.push(match (wanted.name, wanted.topic_id) {
                    (Some(name), _) if !may_describe(&name) || !may_create(api, req, &name, allow_create) => error_topic(ResponseError::TopicAuthorizationFailed).with_name(Some(name)),
                    (Some(name), _) => match api.cluster.topic_or_create(&name, allow_create).await {
                        Ok(t) => describe(&t),
                        Err(e) => error_topic(e).with_name(Some(name)),
                    },
                    (None, id) => match api.cluster.topic_by_id(id) {
                        Some(t) if !may_describe(&t.name) => error_topic(ResponseError::TopicAuthorizationFailed).with_topic_id(id),
                        Some(t) => describe(&t),
                        None => error_topic(ResponseError::UnknownTopicId).with_topic_id(id),
                    },
                });
            }
            topics
        }
    };
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(api.cluster.cluster_id().to_string())))
        .with_controller_id(BrokerId(api.cluster.controller_id()))
        .with_topics(topics);
    if (8..=10).contains(&req.version) && r.include_cluster_authorized_operations {
        response.cluster_authorized_operations = api.authorized_operations(req, Resource::cluster(), CLUSTER_OPERATIONS);
    }
    response
}

/// Whether Metadata may auto-create `name` for this client, if it comes to that: it exists,
/// is not to be created, or the client may CREATE on the cluster or the topic.
fn may_create(api: &Api, req: &Request, name: &str, allow_create: bool) -> bool {
    api.authorizer.is_none()
        || !(allow_create && api.config.auto_create_topics)
        || api.cluster.topic(name).is_some()
        || api.authorize(req, Operation::Create, Resource::cluster())
        || api.authorize(req, Operation::Create, Resource::topic(name))
}

fn error_topic(e: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default().with_error_code(e.code())
}

/// Brokers by id, as Metadata lists them.
fn brokers(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|&id| BrokerId(id)).collect()
}

/// The unfenced brokers; the others' replicas are offline.
fn live_brokers(api: &Api) -> HashSet<i32> {
    let image = api.cluster.image();
    let mut live: HashSet<i32> = image.brokers().filter(|b| !b.fenced).map(|b| b.registration.id).collect();
    live.insert(api.cluster.node().id);
    live
}

/// LEADER_NOT_AVAILABLE for a partition without a leader (all its ISR is gone), as Kafka says.
fn leader_error(state: &PartitionState) -> i16 {
    if state.leader < 0 {
        ResponseError::LeaderNotAvailable.code()
    } else {
        0
    }
}

fn offline(state: &PartitionState, live: &HashSet<i32>) -> Vec<BrokerId> {
    state.replicas.iter().filter(|b| !live.contains(b)).map(|&b| BrokerId(b)).collect()
}

fn describe_topic(t: &Topic, version: i16, replicas: &ReplicaManager, live: &HashSet<i32>, ops: Option<i32>) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(index, &id)| {
            let state = replicas.describe(id);
            MetadataResponsePartition::default()
                .with_error_code(leader_error(&state))
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(state.leader))
                .with_leader_epoch(state.leader_epoch)
                .with_replica_nodes(brokers(&state.replicas))
                .with_isr_nodes(brokers(&state.isr))
                .with_offline_replicas(offline(&state, live))
        })
        .collect();
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_is_internal(t.name == crate::group::OFFSETS_TOPIC)
        .with_partitions(partitions);
    if version >= 10 {
        topic.topic_id = t.id;
    }
    if let Some(ops) = ops {
        topic.topic_authorized_operations = ops;
    }
    topic
}

pub fn describe_cluster(api: &Api, req: &Request, r: DescribeClusterRequest) -> DescribeClusterResponse {
    let brokers = api
        .cluster
        .live_brokers(&req.listener)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.map(StrBytes::from_string))
        })
        .collect();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(api.cluster.cluster_id().to_string()))
        .with_controller_id(BrokerId(api.cluster.controller_id()))
        .with_brokers(brokers);
    if req.version >= 1 {
        response.endpoint_type = r.endpoint_type;
        // 2 asks for the controllers (KIP-919), which a broker does not list.
        if r.endpoint_type != 1 {
            return response.with_brokers(vec![]).with_error_code(ResponseError::UnsupportedEndpointType.code()).with_error_message(Some(StrBytes::from_static_str("brokers list brokers only: ask with --bootstrap-server")));
        }
    }
    if r.include_cluster_authorized_operations {
        response.cluster_authorized_operations = api.authorized_operations(req, Resource::cluster(), CLUSTER_OPERATIONS);
    }
    response
}

/// DescribeTopicPartitions (KIP-966): the named topics, or all, in name order, paged by
/// `response_partition_limit` with a cursor. Like Metadata, all topics are those the client
/// may describe, and one named that it may not is TOPIC_AUTHORIZATION_FAILED.
pub fn describe_topic_partitions(api: &Api, req: &Request, r: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let live = live_brokers(api);
    let may_describe = |name: &str| api.authorize(req, Operation::Describe, Resource::topic(name));
    // Topics named by the client are checked one by one below; the listing checks its own.
    let named = !r.topics.is_empty();
    let mut names: Vec<String> = if !named {
        api.cluster.topics().iter().map(|t| t.name.clone()).filter(|name| may_describe(name)).collect()
    } else {
        r.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    let (start_topic, start_partition) = match &r.cursor {
        Some(c) => (c.topic_name.to_string(), c.partition_index.max(0)),
        None => (String::new(), 0),
    };
    let mut budget = r.response_partition_limit.max(1) as usize;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= start_topic) {
        let topic_name = TopicName(StrBytes::from_string(name.clone()));
        if named && !may_describe(&name) {
            topics.push(DescribeTopicPartitionsResponseTopic::default().with_name(Some(topic_name)).with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let Some(t) = api.cluster.topic(&name) else {
            topics.push(DescribeTopicPartitionsResponseTopic::default().with_name(Some(topic_name)).with_error_code(ResponseError::UnknownTopicOrPartition.code()));
            continue;
        };
        if budget == 0 {
            next_cursor = Some(Cursor::default().with_topic_name(topic_name).with_partition_index(0));
            break;
        }
        let first = if name == start_topic { start_partition } else { 0 };
        let count = t.partitions.len() as i32;
        let last = count.min(first + budget as i32);
        let partitions = (first..last)
            .map(|index| {
                // `index` is below the partition count.
                let state = api.replicas.describe(t.partitions[index as usize]);
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(leader_error(&state))
                    .with_offline_replicas(offline(&state, &live))
                    .with_partition_index(index)
                    .with_leader_id(BrokerId(state.leader))
                    .with_leader_epoch(state.leader_epoch)
                    .with_replica_nodes(brokers(&state.replicas))
                    .with_isr_nodes(brokers(&state.isr))
                    .with_eligible_leader_replicas(Some(vec![]))
                    .with_last_known_elr(Some(vec![]))
            })
            .collect();
        budget -= (last - first) as usize;
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name.clone()))
                .with_topic_id(t.id)
                .with_is_internal(t.name == crate::group::OFFSETS_TOPIC)
                .with_partitions(partitions)
                .with_topic_authorized_operations(api.authorized_operations(req, Resource::topic(&name), TOPIC_OPERATIONS)),
        );
        if last < count {
            next_cursor = Some(Cursor::default().with_topic_name(topic_name).with_partition_index(last));
            break;
        }
    }
    DescribeTopicPartitionsResponse::default().with_topics(topics).with_next_cursor(next_cursor)
}

/// DescribeQuorum (`kafka-metadata-quorum describe`): the leader, epoch and high watermark of
/// the metadata log, and how far each voter and observer has it, from the active controller.
pub async fn describe_quorum(api: &Api, req: &Request, r: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let asks_metadata_log = matches!(&r.topics[..], [t] if t.topic_name.as_str() == METADATA_TOPIC && matches!(&t.partitions[..], [p] if p.partition_index == 0));
    if !asks_metadata_log {
        return quorum_error(ResponseError::UnknownTopicOrPartition, format!("the metadata log is {METADATA_TOPIC} partition 0"));
    }
    let q = match api.cluster.describe_quorum().await {
        Ok(q) => q,
        Err((error, message)) => return quorum_error(error, message),
    };
    let state = |p: &ReplicaProgress| {
        ReplicaState::default()
            .with_replica_id(BrokerId(p.id as i32))
            .with_log_end_offset(p.log_end_offset)
            .with_last_fetch_timestamp(p.last_fetch_ms)
            .with_last_caught_up_timestamp(p.last_caught_up_ms)
    };
    let partition = PartitionData::default()
        .with_leader_id(BrokerId(q.leader as i32))
        .with_leader_epoch(q.term as i32)
        .with_high_watermark(q.high_watermark)
        .with_current_voters(q.voters.iter().map(state).collect())
        .with_observers(q.observers.iter().map(state).collect());
    let mut response = DescribeQuorumResponse::default().with_topics(vec![TopicData::default().with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC))).with_partitions(vec![partition])]);
    if req.version >= 2 {
        let name = api.config.controller_listener_names.first().cloned().unwrap_or_default();
        response.nodes = q
            .addresses
            .iter()
            .filter_map(|(id, address)| {
                let (host, port) = address.rsplit_once(':')?;
                let listener = quorum::Listener::default().with_name(StrBytes::from_string(name.clone())).with_host(StrBytes::from_string(host.to_string())).with_port(port.parse().ok()?);
                Some(quorum::Node::default().with_node_id(BrokerId(*id as i32)).with_listeners(vec![listener]))
            })
            .collect();
    }
    response
}

fn quorum_error(error: ResponseError, message: String) -> DescribeQuorumResponse {
    DescribeQuorumResponse::default().with_error_code(error.code()).with_error_message(Some(StrBytes::from_string(message)))
}
