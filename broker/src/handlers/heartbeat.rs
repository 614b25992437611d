//! Heartbeat (v0–4): a member is alive; the answer tells it whether a
//! rebalance started (REBALANCE_IN_PROGRESS) or it was removed.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;
use crate::server::now_ms;

pub async fn handle_heartbeat(
    broker: &Arc<Broker>,
    _version: i16,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let result = broker.groups().heartbeat(
        &request.group_id.0,
        &request.member_id,
        request.group_instance_id.as_deref(),
        request.generation_id,
        now_ms(),
    );
    match result {
        Ok(()) => HeartbeatResponse::default(),
        Err(e) => {
            tracing::debug!(error = %e, "heartbeat refused");
            HeartbeatResponse::default().with_error_code(e.code())
        }
    }
}
