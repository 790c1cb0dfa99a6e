//! ApiVersions: generated from the one version table, with the finalized features.

use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse, FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::SUPPORTED;

/// The transaction protocol's feature (KIP-890 part 2 at level 2), which clients read here.
const TRANSACTION_VERSION: &str = "transaction.version";
const MAX_TRANSACTION_VERSION: i16 = 2;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| ApiVersion::default().with_api_key(key as i16).with_min_version(min).with_max_version(max))
        .collect()
}

/// The versions, and `transaction.version` finalized at `transaction_version`. Its epoch never
/// changes: the level is fixed while a broker runs, and clients only compare epochs. Below
/// ApiVersions v4 a supported range starts at 1, as Kafka answers (KIP-1022): older clients
/// refuse a minimum of 0, and Kafka 3.4's admin client dies of it.
pub fn handle(transaction_version: i16, request_version: i16) -> ApiVersionsResponse {
    let name = || StrBytes::from_static_str(TRANSACTION_VERSION);
    let min = if request_version >= 4 { 0 } else { 1 };
    ApiVersionsResponse::default()
        .with_api_keys(api_keys())
        .with_supported_features(vec![SupportedFeatureKey::default().with_name(name()).with_min_version(min).with_max_version(MAX_TRANSACTION_VERSION)])
        .with_finalized_features_epoch(1)
        .with_finalized_features(vec![FinalizedFeatureKey::default().with_name(name()).with_min_version_level(transaction_version).with_max_version_level(transaction_version)])
}

/// The KIP-511 answer to a too-new ApiVersions request (sent in v0 form, without features).
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys()).with_error_code(ResponseError::UnsupportedVersion.code())
}
