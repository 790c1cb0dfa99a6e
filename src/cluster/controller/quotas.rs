//! Client quotas on the active controller (Kafka's ClientQuotaControlManager): a broker's
//! checked AlterClientQuotas changes, written as one batch.

use super::{Controller, WriteError};
use crate::cluster::metadata::{ClientQuotaRecord, MetadataRecord};

impl Controller {
    pub async fn alter_client_quotas(&self, changes: Vec<ClientQuotaRecord>) -> Result<(), WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        self.write(MetadataRecord::Batch(changes.into_iter().map(MetadataRecord::ClientQuota).collect())).await?;
        Ok(())
    }
}
