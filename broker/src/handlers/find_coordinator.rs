//! FindCoordinator (v0–4): which broker coordinates a group. On one node it
//! is always this node, once `__consumer_offsets` is loaded.
//!
//! Key type 0 (group) is served; key type 1 (transaction) answers
//! COORDINATOR_NOT_AVAILABLE, since transactions are not served yet (a
//! transactional producer retries rather than failing on a code it does
//! not expect); any other key type is INVALID_REQUEST. v4 batches keys in
//! `coordinator_keys` and answers one `Coordinator` per key.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle_find_coordinator(
    broker: &Arc<Broker>,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let error = lookup(broker, request.key_type);
    let identity = broker.identity();
    let message = error.map(|e| StrBytes::from_string(e.to_string()));
    let code = error.map_or(0, |e| e.code());
    let (node, host, port) = if error.is_none() {
        (
            identity.node_id,
            StrBytes::from_string(identity.host.clone()),
            identity.port,
        )
    } else {
        (-1, StrBytes::default(), -1)
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(host.clone())
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message.clone())
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_error_message(message)
        .with_node_id(BrokerId(node))
        .with_host(host)
        .with_port(port)
}

fn lookup(broker: &Broker, key_type: i8) -> Option<ResponseError> {
    match key_type {
        KEY_TYPE_GROUP => broker
            .groups()
            .check_available()
            .err()
            .map(|e| e.error_code()),
        KEY_TYPE_TRANSACTION => Some(ResponseError::CoordinatorNotAvailable),
        _ => Some(ResponseError::InvalidRequest),
    }
}
