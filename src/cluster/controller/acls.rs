//! ACL changes on the active controller (Kafka's AclControlManager): checked against the image
//! and written as one batch under the controller's write lock.

use crate::cluster::metadata::MetadataRecord;
use crate::security::acl::{AclBinding, AclFilter};

use super::{Controller, WriteError};

impl Controller {
    /// Adds the bindings the image lacks (adding one twice changes nothing, as in Kafka).
    pub async fn create_acls(&self, acls: Vec<AclBinding>) -> Result<(), WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        let image = self.image.borrow().clone();
        let mut new: Vec<AclBinding> = Vec::new();
        for acl in acls {
            if !image.acls().contains(&acl) && !new.contains(&acl) {
                new.push(acl);
            }
        }
        if !new.is_empty() {
            self.write(MetadataRecord::Batch(new.into_iter().map(MetadataRecord::Acl).collect())).await?;
        }
        Ok(())
    }

    /// Removes every binding a filter matches; returns what each filter matched. A binding
    /// two filters match is removed once and reported for both.
    pub async fn delete_acls(&self, filters: Vec<AclFilter>) -> Result<Vec<Vec<AclBinding>>, WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        let image = self.image.borrow().clone();
        let matched: Vec<Vec<AclBinding>> = filters.iter().map(|f| image.acls().matching(f).cloned().collect()).collect();
        let mut removed: Vec<&AclBinding> = matched.iter().flatten().collect();
        removed.sort();
        removed.dedup();
        if !removed.is_empty() {
            self.write(MetadataRecord::Batch(removed.into_iter().map(|a| MetadataRecord::RemoveAcl(a.clone())).collect())).await?;
        }
        Ok(matched)
    }
}
