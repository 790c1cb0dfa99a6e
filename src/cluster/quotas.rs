//! Client quotas: kept in the metadata image, changed through the controller, so they survive
//! restarts and every broker of a cluster enforces the same ones.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;

use super::metadata::{ClientQuotaRecord, MetadataImage};
use super::{failure, Cluster, Failure};
use crate::quota::{check_op, ClientQuotas, QuotaEntity, QuotaFilter, QuotaKey};

/// How long an alteration waits to see itself in this node's image.
const APPLIED_TIMEOUT: Duration = Duration::from_secs(10);

/// One entry of AlterClientQuotas, as the request gives it.
pub struct QuotaAlteration {
    /// `(entity type, name)`; a `None` name is the default entity.
    pub entity: Vec<(String, Option<String>)>,
    /// `(key, value, remove)`.
    pub ops: Vec<(String, f64, bool)>,
}

impl Cluster {
    /// AlterClientQuotas: each entry checked as Kafka checks it; the valid ones are written
    /// together (unless `validate_only`). One result per entry, in request order.
    pub async fn alter_client_quotas(&self, alterations: Vec<QuotaAlteration>, validate_only: bool) -> Vec<Result<(), Failure>> {
        let checked: Vec<Result<Vec<ClientQuotaRecord>, Failure>> = alterations.iter().map(check_alteration).collect();
        let valid: Vec<ClientQuotaRecord> = checked.iter().filter_map(|r| r.as_ref().ok()).flatten().cloned().collect();
        let written = if validate_only || valid.is_empty() { Ok(()) } else { self.write_client_quotas(valid).await };
        checked.into_iter().map(|c| c.and_then(|_| written.clone())).collect()
    }

    /// DescribeClientQuotas: the entities the filter matches, with their quotas.
    pub fn describe_client_quotas(&self, filter: &QuotaFilter) -> Vec<(QuotaEntity, BTreeMap<QuotaKey, f64>)> {
        let image = self.image();
        image.client_quotas().iter().filter(|(entity, _)| filter.matches(entity)).map(|(e, q)| (e.clone(), q.clone())).collect()
    }

    /// Writes checked quota changes through the controller, all or none.
    async fn write_client_quotas(&self, changes: Vec<ClientQuotaRecord>) -> Result<(), Failure> {
        let quorum = self.quorum.get().ok_or_else(|| (ResponseError::NotController, "the controller quorum is not started yet".to_string()))?;
        quorum.client.alter_client_quotas(changes.clone()).await.map_err(failure)?;
        // The last change of an entity's key is the one the image ends with.
        let applied = |image: &Arc<MetadataImage>| {
            let mut last = BTreeMap::new();
            for c in &changes {
                last.insert((&c.entity, c.key), c.value);
            }
            last.into_iter().all(|((entity, key), value)| image.quota(entity, key) == value)
        };
        let mut image = quorum.controller.image();
        // Answered once this node's own connections are measured against the new quotas.
        if tokio::time::timeout(APPLIED_TIMEOUT, image.wait_for(applied)).await.is_err() {
            tracing::warn!("client quotas altered, but not yet applied on this node after {APPLIED_TIMEOUT:?}");
        }
        Ok(())
    }
}

fn check_alteration(alteration: &QuotaAlteration) -> Result<Vec<ClientQuotaRecord>, Failure> {
    let entity = QuotaEntity::from_components(&alteration.entity)?;
    alteration
        .ops
        .iter()
        .map(|(key, value, remove)| check_op(key, *value, *remove).map(|(key, value)| ClientQuotaRecord { entity: entity.clone(), key, value }))
        .collect()
}
