//! ApiVersions (v0–3): the APIs and version ranges this broker serves.
//!
//! The list comes from `sluice_protocol::api`, the one table that also
//! drives the dispatcher's version check and `docs/compatibility.md`, so
//! what is advertised is what is served. A request for an ApiVersions
//! version above ours is answered (by the dispatcher) in v0 with
//! UNSUPPORTED_VERSION and our ranges, as KIP-511 asks. Feature fields are
//! left at their defaults, which the encoder does not write (clients before
//! librdkafka 2.1.1 mis-skip them otherwise).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::broker::Broker;

/// Whether the consumer-group APIs are served (and so advertised).
pub const GROUP_APIS_SERVED: bool = true;

pub async fn handle_api_versions(
    _broker: &Arc<Broker>,
    _version: i16,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_api_keys(sluice_protocol::api::api_versions_keys(GROUP_APIS_SERVED))
}

/// The v0 answer to an ApiVersions version we do not serve.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(sluice_protocol::api::api_versions_keys(GROUP_APIS_SERVED))
}
