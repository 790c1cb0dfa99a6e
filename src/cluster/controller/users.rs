//! SCRAM credentials on the active controller (Kafka's ScramControlManager): a broker's
//! AlterUserScramCredentials, checked against the image and written as one batch.

use kafka_protocol::ResponseError;

use super::topics::rejected;
use super::{Controller, WriteError};
use crate::cluster::metadata::{MetadataRecord, ScramCredentialRecord};

impl Controller {
    pub async fn alter_scram_credentials(&self, changes: Vec<ScramCredentialRecord>) -> Result<(), WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        let image = self.image.borrow().clone();
        if let Some(missing) = changes.iter().find(|c| c.credential.is_none() && image.scram_credential(&c.user, c.mechanism).is_none()) {
            return Err(rejected(ResponseError::ResourceNotFound, format!("user {:?} has no {} credential to delete", missing.user, missing.mechanism.name())));
        }
        self.write(MetadataRecord::Batch(changes.into_iter().map(MetadataRecord::ScramCredential).collect())).await?;
        Ok(())
    }
}
