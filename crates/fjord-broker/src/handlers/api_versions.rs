//! ApiVersions: which APIs and versions this broker serves.

use std::sync::Arc;

use fjord_protocol::VersionTable;
use fjord_types::ErrorCode;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::broker::Broker;

fn api_keys(versions: &VersionTable) -> Vec<ApiVersion> {
    versions
        .ranges()
        .iter()
        .map(|r| ApiVersion::default().with_api_key(r.key as i16).with_min_version(r.min).with_max_version(r.max))
        .collect()
}

pub(super) fn handle(broker: &Arc<Broker>, _version: i16, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    // No supported or finalized features: tagged fields in this response break librdkafka 2.0.2.
    ApiVersionsResponse::default().with_api_keys(api_keys(&broker.versions))
}

/// The answer to an ApiVersions version the broker does not know: a v0 response carrying
/// UNSUPPORTED_VERSION and the table, so the client can pick a version and retry.
pub(crate) fn unsupported_version_response(versions: &VersionTable) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UnsupportedVersion.code())
        .with_api_keys(api_keys(versions))
}
