//! AlterUserScramCredentials and DescribeUserScramCredentials (what `kafka-configs
//! --entity-type users` sends for SCRAM-SHA-256 and SCRAM-SHA-512).

use std::collections::HashSet;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{Api, Request};
use crate::security::acl::Operation;
use crate::cluster::users::ScramAlteration;

/// Needs ALTER on the cluster, as in Kafka.
pub async fn alter(api: &Api, req: &Request, r: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse {
    if let Err((error, message)) = api.authorize_cluster(req, Operation::Alter) {
        let users: HashSet<&str> = r.deletions.iter().map(|d| d.name.as_str()).chain(r.upsertions.iter().map(|u| u.name.as_str())).collect();
        let refused = |user: &str| AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user.to_string())).with_error_code(error.code()).with_error_message(Some(StrBytes::from_string(message.clone())));
        return AlterUserScramCredentialsResponse::default().with_results(users.into_iter().map(refused).collect());
    }
    let deletions = r.deletions.into_iter().map(|d| ScramAlteration { user: d.name.to_string(), mechanism: d.mechanism, upsert: None });
    let upsertions = r.upsertions.into_iter().map(|u| ScramAlteration { user: u.name.to_string(), mechanism: u.mechanism, upsert: Some((u.iterations, u.salt.to_vec(), u.salted_password.to_vec())) });
    let results = api.cluster.alter_user_scram_credentials(deletions.chain(upsertions).collect()).await;
    let results = results
        .into_iter()
        .map(|(user, result)| {
            let (code, message) = match result {
                Ok(()) => (0, None),
                Err((error, message)) => (error.code(), Some(StrBytes::from_string(message))),
            };
            AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user)).with_error_code(code).with_error_message(message)
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Needs DESCRIBE on the cluster, as in Kafka.
pub fn describe(api: &Api, req: &Request, r: DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse {
    if let Err((error, message)) = api.authorize_cluster(req, Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default().with_error_code(error.code()).with_error_message(Some(StrBytes::from_string(message)));
    }
    let image = api.cluster.image();
    let users = image.scram_users();
    let result = |name: &str| {
        let result = DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(name.to_string()));
        match users.get(name) {
            Some(credentials) => result.with_credential_infos(
                credentials.iter().map(|(mechanism, c)| CredentialInfo::default().with_mechanism(mechanism.code()).with_iterations(c.iterations)).collect(),
            ),
            None => result
                .with_error_code(ResponseError::ResourceNotFound.code())
                .with_error_message(Some(StrBytes::from_string(format!("Attempt to describe a user credential that does not exist: {name}")))),
        }
    };
    let results = match r.users.filter(|u| !u.is_empty()) {
        None => users.keys().map(|name| result(name)).collect(),
        Some(names) => {
            let mut seen = HashSet::new();
            let duplicated: HashSet<&str> = names.iter().map(|n| n.name.as_str()).filter(|n| !seen.insert(*n)).collect();
            let mut answered = HashSet::new();
            names
                .iter()
                .map(|n| n.name.as_str())
                .filter(|n| answered.insert(*n))
                .map(|name| match duplicated.contains(name) {
                    true => DescribeUserScramCredentialsResult::default()
                        .with_user(StrBytes::from_string(name.to_string()))
                        .with_error_code(ResponseError::DuplicateResource.code())
                        .with_error_message(Some(StrBytes::from_string(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {name}")))),
                    false => result(name),
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
