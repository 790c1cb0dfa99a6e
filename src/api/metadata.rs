//! Metadata: this node as the only broker and the leader of every partition; topics are
//! auto-created on request when the broker and the request both allow it.

use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{Api, Request};
use crate::cluster::{Topic, LEADER_EPOCH};

/// ACL operation bits (READ..ALTER_CONFIGS, IDEMPOTENT_WRITE): with no authorizer, all allowed.
const TOPIC_OPERATIONS: i32 = 0b1101_1111_1000;
const CLUSTER_OPERATIONS: i32 = 0b1_1111_1010_0000;

pub fn handle(api: &Api, req: &Request, r: MetadataRequest) -> MetadataResponse {
    let node = api.cluster.node();
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(node.id))
        .with_host(StrBytes::from_string(node.host.clone()))
        .with_port(node.port as i32);
    // Before v4 there is no allow flag and topics are always auto-created.
    let allow_create = req.version < 4 || r.allow_auto_topic_creation;
    let topic_ops = (req.version >= 8 && r.include_topic_authorized_operations).then_some(TOPIC_OPERATIONS);
    let describe = |t: &Topic| describe_topic(t, req.version, node.id, topic_ops);
    let topics = match r.topics {
        None => api.cluster.topics().iter().map(|t| describe(t)).collect(),
        Some(list) if list.is_empty() && req.version == 0 => api.cluster.topics().iter().map(|t| describe(t)).collect(),
        Some(list) => list
            .into_iter()
            .map(|wanted| match (wanted.name, wanted.topic_id) {
                (Some(name), _) => match api.cluster.topic_or_create(&name, allow_create) {
                    Ok(t) => describe(&t),
                    Err(e) => error_topic(e).with_name(Some(name)),
                },
                (None, id) => match api.cluster.topic_by_id(id) {
                    Some(t) => describe(&t),
                    None => error_topic(ResponseError::UnknownTopicId).with_topic_id(id),
                },
            })
            .collect(),
    };
    let mut response = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_string(api.cluster.cluster_id().to_string())))
        .with_controller_id(BrokerId(node.id))
        .with_topics(topics);
    if (8..=10).contains(&req.version) && r.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_OPERATIONS;
    }
    response
}

fn error_topic(e: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default().with_error_code(e.code())
}

fn describe_topic(t: &Topic, version: i16, node_id: i32, ops: Option<i32>) -> MetadataResponseTopic {
    let partitions = (0..t.partitions.len() as i32)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(node_id))
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(node_id)])
                .with_isr_nodes(vec![BrokerId(node_id)])
        })
        .collect();
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_partitions(partitions);
    if version >= 10 {
        topic.topic_id = t.id;
    } else {
        topic.topic_id = Uuid::nil();
    }
    if let Some(ops) = ops {
        topic.topic_authorized_operations = ops;
    }
    topic
}
