//! Topic administration: CreateTopics and DeleteTopics.

use std::collections::HashSet;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{DeletableTopicResult, DeleteTopicsResponse};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsRequest;
use kafka_protocol::messages::create_partitions_response::{CreatePartitionsResponse, CreatePartitionsTopicResult};
use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult};
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResponse, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use uuid::Uuid;

use super::{Api, Request};
use crate::cluster::{partition_id, NewTopic, TopicConfigs};
use crate::security::acl::{Operation, Resource};

type Failure = (ResponseError, String);

pub async fn create_topics(api: &Api, req: &Request, r: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicated: HashSet<TopicName> = r.topics.iter().filter(|t| !seen.insert(t.name.clone())).map(|t| t.name.clone()).collect();
    let mut topics = Vec::with_capacity(r.topics.len());
    // CREATE on the cluster allows every topic, as in Kafka; otherwise CREATE on each.
    let may_create_all = api.authorize(req, Operation::Create, Resource::cluster());
    for t in &r.topics {
        let result = if !may_create_all && !api.authorize(req, Operation::Create, Resource::topic(&t.name)) {
            Err((ResponseError::TopicAuthorizationFailed, format!("{} may not create topic {:?}", req.principal, &*t.name)))
        } else if duplicated.contains(&t.name) {
            Err((ResponseError::InvalidRequest, format!("topic {:?} appears more than once in the request", &*t.name)))
        } else {
            match new_topic(t) {
                Ok(new) if r.validate_only => api.cluster.check_new_topic(&new).await.map(|(partitions, replication_factor, configs)| NewTopicResult { id: Uuid::nil(), partitions, replication_factor, configs }),
                Ok(new) => api.cluster.create_topic(&new).await.map(|topic| NewTopicResult {
                    id: topic.id,
                    partitions: topic.partitions.len() as i32,
                    replication_factor: api.cluster.replication_factor(&topic.name),
                    configs: topic.configs.clone(),
                }),
                Err(e) => Err(e),
            }
        };
        topics.push(create_result(req.version, t.name.clone(), result));
    }
    CreateTopicsResponse::default().with_topics(topics)
}

/// Turns the request's topic into a [`NewTopic`], checking an explicit replica assignment.
fn new_topic(t: &CreatableTopic) -> Result<NewTopic, Failure> {
    let configs = t.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))).collect();
    let new = NewTopic {
        name: t.name.to_string(),
        num_partitions: t.num_partitions,
        replication_factor: t.replication_factor,
        assignments: None,
        configs,
    };
    if t.assignments.is_empty() {
        return Ok(new);
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        let msg = "with a replica assignment, partition count and replication factor must be -1";
        return Err((ResponseError::InvalidRequest, msg.to_string()));
    }
    for (i, a) in t.assignments.iter().enumerate() {
        if a.partition_index != i as i32 {
            return Err((ResponseError::InvalidReplicaAssignment, "partitions must be assigned in order from 0".into()));
        }
    }
    // The controller checks the brokers named.
    let assignments = t.assignments.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect();
    Ok(NewTopic { assignments: Some(assignments), ..new })
}

/// A topic created, or one a validate-only request would create, as CreateTopics reports it.
struct NewTopicResult {
    /// Nil when only validated.
    id: Uuid,
    partitions: i32,
    replication_factor: i16,
    configs: TopicConfigs,
}

fn create_result(version: i16, name: TopicName, result: Result<NewTopicResult, Failure>) -> CreatableTopicResult {
    let response = CreatableTopicResult::default().with_name(name);
    match result {
        Ok(topic) => {
            let mut response = response;
            if version >= 5 {
                // Every config of the topic, as DescribeConfigs would show it.
                let configs = topic
                    .configs
                    .describe()
                    .into_iter()
                    .map(|e| CreatableTopicConfigs::default().with_name(StrBytes::from_string(e.name)).with_value(e.value.map(StrBytes::from_string)).with_config_source(e.source as i8))
                    .collect();
                response = response.with_num_partitions(topic.partitions).with_replication_factor(topic.replication_factor).with_configs(Some(configs));
            }
            if version >= 7 {
                response.topic_id = topic.id;
            }
            response
        }
        Err((e, message)) => {
            let response = response.with_error_code(e.code()).with_error_message(Some(StrBytes::from_string(message)));
            if version >= 5 {
                response.with_num_partitions(-1).with_replication_factor(-1)
            } else {
                response
            }
        }
    }
}

pub async fn delete_topics(api: &Api, req: &Request, r: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v6 names topics by name or id; older versions by name only.
    let wanted: Vec<(Option<TopicName>, Uuid)> = if req.version >= 6 {
        r.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        r.topic_names.into_iter().map(|n| (Some(n), Uuid::nil())).collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let topic = match &name {
            Some(n) => api.cluster.topic(n).ok_or((ResponseError::UnknownTopicOrPartition, format!("topic {:?} does not exist", &**n))),
            None => api.cluster.topic_by_id(id).ok_or((ResponseError::UnknownTopicId, format!("no topic has id {id}"))),
        };
        let denied = |t: &crate::cluster::Topic| (ResponseError::TopicAuthorizationFailed, format!("{} may not delete topic {:?}", req.principal, t.name));
        let topic = topic.and_then(|t| if api.authorize(req, Operation::Delete, Resource::topic(&t.name)) { Ok(t) } else { Err(denied(&t)) });
        // The publisher drops the topic's committed offsets before the deletion is answered.
        let result = match topic {
            Ok(t) => api.cluster.delete_topic(&t.name).await.map(|()| t),
            Err(e) => Err(e),
        };
        let mut response = DeletableTopicResult::default().with_name(name.clone());
        if req.version >= 6 {
            response.topic_id = result.as_ref().map(|t| t.id).unwrap_or(id);
            if response.name.is_none() {
                response.name = result.as_ref().ok().map(|t| TopicName(StrBytes::from_string(t.name.clone())));
            }
        }
        if let Err((e, message)) = result {
            response.error_code = e.code();
            if req.version >= 5 {
                response.error_message = Some(StrBytes::from_string(message));
            }
        }
        responses.push(response);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(api: &Api, req: &Request, r: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let assignments: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|list| list.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect());
        let result = match api.check(req, Operation::Alter, Resource::topic(&t.name)) {
            Ok(()) => api.cluster.create_partitions(&t.name, t.count, assignments.as_deref(), r.validate_only).await,
            Err(e) => Err((e, format!("{} may not alter topic {:?}", req.principal, &*t.name))),
        };
        let response = CreatePartitionsTopicResult::default().with_name(t.name);
        results.push(match result {
            Ok(()) => response,
            Err((e, message)) => response.with_error_code(e.code()).with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

pub async fn delete_records(api: &Api, req: &Request, r: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let topic = api.check(req, Operation::Delete, Resource::topic(&t.name)).map(|()| api.cluster.topic(&t.name));
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let result = match topic.as_ref().map(|topic| partition_id(topic.as_deref(), p.partition_index)) {
                Ok(Ok(id)) => api.log.delete_records(id, p.offset).await,
                Ok(Err(e)) | Err(&e) => Err(e),
            };
            let response = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            partitions.push(match result {
                Ok(low_watermark) => response.with_low_watermark(low_watermark),
                Err(e) => response.with_low_watermark(-1).with_error_code(e.code()),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// One log directory: the data directory, with the stored bytes of every partition this
/// broker holds a replica of.
pub async fn describe_log_dirs(api: &Api, req: &Request, r: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    if let Err(e) = api.check(req, Operation::Describe, Resource::cluster()) {
        return DescribeLogDirsResponse::default().with_error_code(e.code());
    }
    let wanted = |topic: &str, partition: i32| {
        r.topics.as_ref().is_none_or(|ts| ts.iter().any(|t| t.topic.as_str() == topic && t.partitions.contains(&partition)))
    };
    let node = api.cluster.node().id;
    let topics = api
        .cluster
        .topics()
        .into_iter()
        .filter_map(|t| {
            let partitions: Vec<_> = t
                .partitions
                .iter()
                .enumerate()
                .filter(|&(i, &id)| wanted(&t.name, i as i32) && api.replicas.describe(id).replicas.contains(&node))
                .map(|(i, &id)| {
                    let size = api.log.size(id).unwrap_or(0);
                    DescribeLogDirsPartition::default().with_partition_index(i as i32).with_partition_size(size as i64)
                })
                .collect();
            (!partitions.is_empty()).then(|| DescribeLogDirsTopic::default().with_name(TopicName(StrBytes::from_string(t.name.clone()))).with_partitions(partitions))
        })
        .collect();
    let (total, usable) = api.log.disk_space().await.unwrap_or((-1, -1));
    let dir = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(api.config.data_dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![dir])
}
