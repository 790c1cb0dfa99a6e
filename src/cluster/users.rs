//! SCRAM users: their credentials live in the metadata image, changed through the controller,
//! so they survive restarts and every broker of a cluster knows them.

use std::time::Duration;

use kafka_protocol::ResponseError;

use super::metadata::{MetadataImage, ScramCredentialRecord};
use super::{failure, Cluster, Failure};
use crate::security::scram::{ScramCredential, ScramCredentials, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// How long an alteration waits to see itself in this node's image.
const APPLIED_TIMEOUT: Duration = Duration::from_secs(10);

/// One change of AlterUserScramCredentials, as the request gives it.
pub struct ScramAlteration {
    pub user: String,
    /// The request's mechanism code.
    pub mechanism: i8,
    /// `(iterations, salt, salted password)` to set; `None` deletes.
    pub upsert: Option<(i32, Vec<u8>, Vec<u8>)>,
}

impl Cluster {
    /// AlterUserScramCredentials: each user's changes are checked as Kafka checks them and
    /// made together; the result of each user, in the order they first appear.
    pub async fn alter_user_scram_credentials(&self, alterations: Vec<ScramAlteration>) -> Vec<(String, Result<(), Failure>)> {
        let image = self.image();
        let mut users: Vec<(String, Result<Vec<ScramCredentialRecord>, Failure>)> = Vec::new();
        for alteration in alterations {
            let index = match users.iter().position(|(u, _)| *u == alteration.user) {
                Some(i) => i,
                None => {
                    users.push((alteration.user.clone(), Ok(Vec::new())));
                    users.len() - 1
                }
            };
            let checked = check_alteration(&image, &alteration);
            let records = &mut users[index].1;
            match (records.as_mut(), checked) {
                (Err(_), _) => {}
                (Ok(_), Err(e)) => *records = Err(e),
                (Ok(list), Ok(record)) if list.iter().any(|r| r.mechanism == record.mechanism) => {
                    *records = Err((ResponseError::DuplicateResource, format!("user {:?} is altered twice for {}", record.user, record.mechanism.name())));
                }
                (Ok(list), Ok(record)) => list.push(record),
            }
        }
        let valid: Vec<ScramCredentialRecord> = users.iter().filter_map(|(_, r)| r.as_ref().ok()).flatten().cloned().collect();
        let written = if valid.is_empty() { Ok(()) } else { self.alter_scram_credentials(valid).await };
        users.into_iter().map(|(user, checked)| (user, checked.and_then(|_| written.clone()))).collect()
    }

    /// Writes checked credential changes through the controller, all or none.
    async fn alter_scram_credentials(&self, changes: Vec<ScramCredentialRecord>) -> Result<(), Failure> {
        let quorum = self.quorum.get().ok_or_else(|| (ResponseError::NotController, "the controller quorum is not started yet".to_string()))?;
        quorum.client.alter_scram_credentials(changes.clone()).await.map_err(failure)?;
        let applied = |image: &std::sync::Arc<MetadataImage>| changes.iter().all(|c| image.scram_credential(&c.user, c.mechanism) == c.credential.as_ref());
        let mut image = quorum.controller.image();
        // Answered once this node's own connections would accept the new credentials.
        if tokio::time::timeout(APPLIED_TIMEOUT, image.wait_for(applied)).await.is_err() {
            tracing::warn!("SCRAM credentials altered, but not yet applied on this node after {APPLIED_TIMEOUT:?}");
        }
        Ok(())
    }
}

fn check_alteration(image: &MetadataImage, alteration: &ScramAlteration) -> Result<ScramCredentialRecord, Failure> {
    let user = alteration.user.clone();
    if user.is_empty() {
        return Err((ResponseError::UnacceptableCredential, "Username must not be empty".into()));
    }
    let mechanism = ScramMechanism::from_code(alteration.mechanism).ok_or_else(|| (ResponseError::UnsupportedSaslMechanism, format!("Unknown SCRAM mechanism {}", alteration.mechanism)))?;
    let credential = match &alteration.upsert {
        None if image.scram_credential(&user, mechanism).is_none() => {
            return Err((ResponseError::ResourceNotFound, format!("Attempt to delete a user credential that does not exist: {user} has no {}", mechanism.name())));
        }
        None => None,
        Some((iterations, _, _)) if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(iterations) => {
            return Err((ResponseError::UnacceptableCredential, format!("Iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, got {iterations}")));
        }
        Some((_, salt, salted)) if salt.is_empty() || salted.is_empty() => {
            return Err((ResponseError::UnacceptableCredential, "Salt and salted password must not be empty".into()));
        }
        Some((iterations, salt, salted)) => Some(ScramCredential::from_salted_password(mechanism, salt.clone(), salted, *iterations)),
    };
    Ok(ScramCredentialRecord { user, mechanism, credential })
}

impl ScramCredentials for Cluster {
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.image().scram_credential(user, mechanism).cloned()
    }
}
