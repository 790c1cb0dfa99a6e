//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs, for topics and this broker.

use kafka_protocol::messages::alter_configs_request::AlterConfigsRequest;
use kafka_protocol::messages::alter_configs_response::{AlterConfigsResourceResponse, AlterConfigsResponse};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_request::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::incremental_alter_configs_response::{self, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{Api, Request};
use crate::config::{ConfigChange, ConfigEntry};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

type Failure = (ResponseError, String);

fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

/// The configs of one resource, or why there are none.
fn entries(api: &Api, resource_type: i8, name: &str) -> Result<Vec<ConfigEntry>, Failure> {
    match resource_type {
        TOPIC => api
            .cluster
            .topic(name)
            .map(|t| t.configs.describe())
            .ok_or_else(|| (ResponseError::UnknownTopicOrPartition, format!("topic {name:?} does not exist"))),
        // The node id describes this broker's settings; an empty name the cluster-wide dynamic ones.
        BROKER => api.cluster.broker_level(name).map(|level| api.cluster.settings().describe(level)),
        other => Err((ResponseError::InvalidRequest, format!("resource type {other} has no configs here"))),
    }
}

fn describe_entry(e: ConfigEntry, version: i16, synonyms: bool, documentation: bool) -> DescribeConfigsResourceResult {
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(s(e.name))
        .with_value(e.value.map(s))
        .with_read_only(e.read_only)
        .with_config_source(e.source as i8);
    if synonyms {
        result.synonyms = e
            .synonyms
            .into_iter()
            .map(|syn| DescribeConfigsSynonym::default().with_name(s(syn.name)).with_value(Some(s(syn.value))).with_source(syn.source as i8))
            .collect();
    }
    if version >= 3 {
        result.config_type = e.config_type as i8;
        if documentation {
            result.documentation = e.doc.map(s);
        }
    }
    result
}

pub fn describe_configs(api: &Api, req: &Request, r: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let documentation = req.version >= 3 && r.include_documentation;
    let results = r
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match entries(api, resource.resource_type, &resource.resource_name) {
                Err((e, message)) => result.with_error_code(e.code()).with_error_message(Some(s(message))),
                Ok(all) => {
                    let wanted = |name: &str| resource.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| k.as_str() == name));
                    let configs = all
                        .into_iter()
                        .filter(|e| wanted(&e.name))
                        .map(|e| describe_entry(e, req.version, r.include_synonyms, documentation))
                        .collect();
                    result.with_configs(configs)
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// One resource's changes as requested: the changes, or why they cannot be read, and each
/// config name with whether it lacks a value it needs.
struct Requested {
    changes: Result<Vec<ConfigChange>, Failure>,
    names: Vec<(String, bool)>,
}

/// Kafka's first checks of a broker resource's configs (ConfigAdminManager.preprocess).
fn check_broker_request(names: &[(String, bool)]) -> Result<(), Failure> {
    let mut seen = std::collections::HashSet::new();
    if !names.iter().all(|(name, _)| seen.insert(name)) {
        return Err((ResponseError::InvalidRequest, "Error due to duplicate config keys".into()));
    }
    let nulls: Vec<&str> = names.iter().filter(|(_, null)| *null).map(|(name, _)| name.as_str()).collect();
    if !nulls.is_empty() {
        return Err((ResponseError::InvalidRequest, format!("Null value not supported for : {}", nulls.join(", "))));
    }
    Ok(())
}

/// Applies changes to a topic or to a dynamic broker level.
async fn alter(api: &Api, resource_type: i8, name: &str, requested: Requested, replace_all: bool, validate_only: bool) -> Result<(), Failure> {
    match resource_type {
        TOPIC => api.cluster.alter_topic_configs(name, &requested.changes?, replace_all, validate_only).await,
        BROKER => {
            check_broker_request(&requested.names)?;
            let level = api.cluster.broker_level(name)?;
            api.cluster.alter_broker_configs(level, &requested.changes?, replace_all, validate_only).await
        }
        other => Err((ResponseError::InvalidRequest, format!("resource type {other} has no configs here"))),
    }
}

/// Error code and message of an alter result, as both alter responses carry them.
fn outcome(result: Result<(), Failure>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((e, message)) => (e.code(), Some(s(message))),
    }
}

pub async fn alter_configs(api: &Api, r: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in r.resources {
        // AlterConfigs replaces the whole set: what is not named goes back to its default.
        let changes = resource
            .configs
            .iter()
            .map(|c| match &c.value {
                Some(v) => ConfigChange::Set(c.name.to_string(), v.to_string()),
                None => ConfigChange::Delete(c.name.to_string()),
            })
            .collect();
        let names = resource.configs.iter().map(|c| (c.name.to_string(), c.value.is_none())).collect();
        let requested = Requested { changes: Ok(changes), names };
        let (code, message) = outcome(alter(api, resource.resource_type, &resource.resource_name, requested, true, r.validate_only).await);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(api: &Api, r: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    const DELETE: i8 = 1;
    let mut responses = Vec::new();
    for resource in r.resources {
        let changes = resource
            .configs
            .iter()
            .map(|c| {
                let (name, value) = (c.name.to_string(), c.value.as_deref().unwrap_or_default().to_string());
                match c.config_operation {
                    0 => Ok(ConfigChange::Set(name, value)),
                    DELETE => Ok(ConfigChange::Delete(name)),
                    2 => Ok(ConfigChange::Append(name, value)),
                    3 => Ok(ConfigChange::Subtract(name, value)),
                    op => Err((ResponseError::InvalidRequest, format!("unknown config operation {op}"))),
                }
            })
            .collect();
        let names = resource.configs.iter().map(|c| (c.name.to_string(), c.value.is_none() && c.config_operation != DELETE)).collect();
        let requested = Requested { changes, names };
        let (code, message) = outcome(alter(api, resource.resource_type, &resource.resource_name, requested, false, r.validate_only).await);
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
