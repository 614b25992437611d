//! The single match from (API key, version) to a handler.
//!
//! ```text
//! frame ─► header (api key, version, correlation id) ─► version served?
//!   no  ─► ApiVersions: error 35 with our ranges, in a v0 response
//!          Produce v0–2 (advertised, not served): UNSUPPORTED_VERSION
//!          anything else: close the connection (what Kafka does)
//!   yes ─► decode body ─► handle_<api> ─► encode ─► Reply
//! ```
//!
//! A frame whose header or body does not decode closes the connection with
//! a logged reason: the stream can no longer be trusted to be in step.
//!
//! Every request with a decodable header is counted here per API and
//! version, and its latency (until its response is ready) per API
//! (`admin::metrics`: atomics only, no copy).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use sluice_protocol::header::{RequestFrame, decode_request_header};
use sluice_protocol::response::encode_response;

use crate::admin::METRICS;
use crate::broker::Broker;
use crate::client_errors::{self, RequestContext, Requester};
use crate::handlers::{self, Handled};
use crate::response::{Reply, ResponseFrame};

/// Decodes, handles and encodes one request frame from the client at
/// `peer_host` (Kafka's `/<ip>` form, which JoinGroup records). Errors
/// answered while it is handled go to the client-error log.
pub async fn dispatch(broker: &Arc<Broker>, frame: Bytes, peer_host: &Arc<str>) -> Reply {
    let request = match decode_request_header(frame) {
        Ok(r) => r,
        Err(e) => {
            let reason = format!("undecodable request header: {e}");
            let who = Requester {
                host: peer_host,
                client_id: "",
            };
            client_errors::report(who, "connection closed", &reason);
            return Reply::Close(reason);
        }
    };
    let api = request.api_key as i16;
    let version = request.api_version();
    METRICS.requests.received(api, version);
    let started = Instant::now();
    let context = RequestContext {
        host: Arc::clone(peer_host),
        client_id: request.header.client_id.clone(),
        api: request.api_key,
    };
    let reply = client_errors::within(context, route(broker, &request, peer_host)).await;
    if let Reply::Close(reason) = &reply {
        let who = Requester {
            host: peer_host,
            client_id: request.header.client_id.as_deref().unwrap_or(""),
        };
        let kind = format!("{:?} connection closed", request.api_key);
        client_errors::report(who, &kind, reason);
    }
    measured(api, version, started, reply)
}

/// Counts the reply: a close as an error, an answer with its latency (a
/// deferred answer when it is ready).
fn measured(api: i16, version: i16, started: Instant, reply: Reply) -> Reply {
    match reply {
        Reply::Close(reason) => {
            METRICS.requests.closed(api);
            Reply::Close(reason)
        }
        Reply::Later(future) => Reply::Later(Box::pin(async move {
            let out = future.await;
            METRICS.requests.answered(api, version, started.elapsed());
            out
        })),
        now @ (Reply::Now(_) | Reply::Nothing) => {
            METRICS.requests.answered(api, version, started.elapsed());
            now
        }
    }
}

/// The handler of a request whose header decoded.
async fn route(broker: &Arc<Broker>, request: &RequestFrame, peer_host: &str) -> Reply {
    let version = request.api_version();
    let served = sluice_protocol::api::served_range(request.api_key)
        .is_some_and(|(min, max)| (min..=max).contains(&version));
    if !served {
        return unserved(request);
    }
    macro_rules! serve {
        ($handler:path) => {
            match decode::<_>(request) {
                Ok(body) => finish(request, $handler(broker, version, body).await),
                Err(reply) => reply,
            }
        };
    }
    macro_rules! serve_now {
        ($handler:path) => {
            match decode::<_>(request) {
                Ok(body) => finish(request, Handled::Now($handler(broker, version, body).await)),
                Err(reply) => reply,
            }
        };
    }
    match request.api_key {
        ApiKey::ApiVersions => serve_now!(handlers::api_versions::handle_api_versions),
        ApiKey::Metadata => serve_now!(handlers::metadata::handle_metadata),
        ApiKey::Produce => serve!(handlers::produce::handle_produce),
        ApiKey::Fetch => match decode(request) {
            Ok(body) => handlers::fetch::handle_fetch(broker, request, body).await,
            Err(reply) => reply,
        },
        ApiKey::ListOffsets => serve_now!(handlers::list_offsets::handle_list_offsets),
        ApiKey::CreateTopics => serve_now!(handlers::create_topics::handle_create_topics),
        ApiKey::InitProducerId => {
            serve_now!(handlers::init_producer_id::handle_init_producer_id)
        }
        ApiKey::DeleteTopics => serve_now!(handlers::delete_topics::handle_delete_topics),
        ApiKey::CreatePartitions => {
            serve_now!(handlers::create_partitions::handle_create_partitions)
        }
        ApiKey::DescribeConfigs => serve_now!(handlers::describe_configs::handle_describe_configs),
        ApiKey::AlterConfigs => serve_now!(handlers::alter_configs::handle_alter_configs),
        ApiKey::IncrementalAlterConfigs => {
            serve_now!(handlers::incremental_alter_configs::handle_incremental_alter_configs)
        }
        ApiKey::DeleteRecords => serve_now!(handlers::delete_records::handle_delete_records),
        ApiKey::DescribeCluster => serve_now!(handlers::describe_cluster::handle_describe_cluster),
        ApiKey::OffsetForLeaderEpoch => {
            serve_now!(handlers::offset_for_leader_epoch::handle_offset_for_leader_epoch)
        }
        ApiKey::ElectLeaders => serve_now!(handlers::elect_leaders::handle_elect_leaders),
        ApiKey::AlterPartitionReassignments => {
            serve_now!(handlers::partition_reassignments::handle_alter_partition_reassignments)
        }
        ApiKey::ListPartitionReassignments => {
            serve_now!(handlers::partition_reassignments::handle_list_partition_reassignments)
        }
        ApiKey::FindCoordinator => {
            serve_now!(handlers::find_coordinator::handle_find_coordinator)
        }
        ApiKey::JoinGroup => match decode(request) {
            Ok(body) => finish(
                request,
                handlers::join_group::handle_join_group(broker, request, peer_host, body).await,
            ),
            Err(reply) => reply,
        },
        ApiKey::SyncGroup => serve!(handlers::sync_group::handle_sync_group),
        ApiKey::Heartbeat => serve_now!(handlers::heartbeat::handle_heartbeat),
        ApiKey::LeaveGroup => serve_now!(handlers::leave_group::handle_leave_group),
        ApiKey::OffsetCommit => serve!(handlers::offset_commit::handle_offset_commit),
        ApiKey::OffsetFetch => serve_now!(handlers::offset_fetch::handle_offset_fetch),
        ApiKey::ListGroups => serve_now!(handlers::list_groups::handle_list_groups),
        ApiKey::DescribeGroups => serve_now!(handlers::describe_groups::handle_describe_groups),
        ApiKey::DeleteGroups => serve_now!(handlers::delete_groups::handle_delete_groups),
        ApiKey::OffsetDelete => serve_now!(handlers::offset_delete::handle_offset_delete),
        other => Reply::Close(format!(
            "{other:?} v{version} is advertised but has no handler"
        )),
    }
}

/// A request for a version this broker does not serve.
fn unserved(request: &RequestFrame) -> Reply {
    match request.api_key {
        // KIP-511: answer with our ranges so the client can pick a version.
        ApiKey::ApiVersions => encoded(
            request,
            0,
            &handlers::api_versions::unsupported_version_response(),
        ),
        // Advertised from 0 (librdkafka stops compressing when the minimum
        // is higher) but only v3+ carries RecordBatch v2.
        ApiKey::Produce => match handlers::produce::unsupported_version_response(request) {
            Some(frame) => Reply::Now(ResponseFrame::Encoded(frame)),
            None => Reply::Close(format!(
                "Produce v{} is not served and its body does not decode",
                request.api_version()
            )),
        },
        other => Reply::Close(format!(
            "{other:?} v{} is not served",
            request.api_version()
        )),
    }
}

fn decode<M: Decodable>(request: &RequestFrame) -> Result<M, Reply> {
    request
        .decode_body::<M>()
        .map_err(|e| Reply::Close(format!("undecodable request body: {e}")))
}

fn encoded<M: Encodable>(request: &RequestFrame, version: i16, body: &M) -> Reply {
    match encode_response(request.api_key, version, request.correlation_id(), body) {
        Ok(bytes) => Reply::Now(ResponseFrame::Encoded(bytes)),
        Err(e) => {
            tracing::error!(api = ?request.api_key, version, error = %e, "response does not encode");
            Reply::Close(format!("response does not encode: {e}"))
        }
    }
}

fn finish<M: Encodable + Send + 'static>(request: &RequestFrame, handled: Handled<M>) -> Reply {
    match handled {
        Handled::Now(body) => encoded(request, request.api_version(), &body),
        Handled::Nothing => Reply::Nothing,
        Handled::Later(future) => {
            let (api_key, version, correlation_id) = (
                request.api_key,
                request.api_version(),
                request.correlation_id(),
            );
            Reply::Later(Box::pin(async move {
                let body = future.await;
                encode_response(api_key, version, correlation_id, &body)
                    .map(ResponseFrame::Encoded)
                    .map_err(|e| format!("{api_key:?} v{version} response does not encode: {e}"))
            }))
        }
    }
}
