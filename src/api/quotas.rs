//! AlterClientQuotas and DescribeClientQuotas (what `kafka-configs --entity-type users /
//! clients` sends for quota settings).

use kafka_protocol::messages::alter_client_quotas_response::{EntityData as AlteredEntity, EntryData as AlteredEntry};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Api, Request};
use crate::cluster::quotas::QuotaAlteration;
use crate::quota::QuotaFilter;
use crate::security::acl::Operation;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Needs ALTER_CONFIGS on the cluster, as in Kafka.
pub async fn alter(api: &Api, req: &Request, r: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let entities: Vec<Vec<AlteredEntity>> = r
        .entries
        .iter()
        .map(|e| e.entity.iter().map(|c| AlteredEntity::default().with_entity_type(c.entity_type.clone()).with_entity_name(c.entity_name.clone())).collect())
        .collect();
    let results = match api.authorize_cluster(req, Operation::AlterConfigs) {
        Err(refused) => vec![Err(refused); r.entries.len()],
        Ok(()) => {
            let alterations = r
                .entries
                .into_iter()
                .map(|e| QuotaAlteration {
                    entity: e.entity.into_iter().map(|c| (c.entity_type.to_string(), c.entity_name.map(|n| n.to_string()))).collect(),
                    ops: e.ops.into_iter().map(|op| (op.key.to_string(), op.value, op.remove)).collect(),
                })
                .collect();
            api.cluster.alter_client_quotas(alterations, r.validate_only).await
        }
    };
    let entries = entities
        .into_iter()
        .zip(results)
        .map(|(entity, result)| {
            let entry = AlteredEntry::default().with_entity(entity);
            match result {
                Ok(()) => entry,
                Err((error, message)) => entry.with_error_code(error.code()).with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// Needs DESCRIBE_CONFIGS on the cluster, as in Kafka.
pub fn describe(api: &Api, req: &Request, r: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let components: Vec<(String, i8, Option<String>)> = r.components.iter().map(|c| (c.entity_type.to_string(), c.match_type, c._match.as_ref().map(|m| m.to_string()))).collect();
    let filter = api.authorize_cluster(req, Operation::DescribeConfigs).and_then(|()| QuotaFilter::new(&components, r.strict));
    let filter = match filter {
        Ok(filter) => filter,
        Err((error, message)) => return DescribeClientQuotasResponse::default().with_error_code(error.code()).with_error_message(Some(StrBytes::from_string(message))),
    };
    let entries = api
        .cluster
        .describe_client_quotas(&filter)
        .into_iter()
        .map(|(entity, quotas)| {
            let entity = entity.components().into_iter().map(|(kind, name)| EntityData::default().with_entity_type(text(kind)).with_entity_name(name.map(text))).collect();
            let values = quotas.into_iter().map(|(key, value)| ValueData::default().with_key(text(key.name())).with_value(value)).collect();
            EntryData::default().with_entity(entity).with_values(values)
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}
