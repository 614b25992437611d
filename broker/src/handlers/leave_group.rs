//! LeaveGroup (v0–5): members leave at once instead of waiting for their
//! session to expire. v0–2 name one member; v3+ a batch, each answered
//! separately, and a static member may leave by `group.instance.id` alone.

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::server::now_ms;

pub async fn handle_leave_group(
    broker: &Arc<Broker>,
    version: i16,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let results = broker
        .groups()
        .leave(broker.replicas(), &request.group_id.0, &members, now_ms())
        .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "leave group refused");
            return LeaveGroupResponse::default().with_error_code(e.code());
        }
    };
    if version < 3 {
        let code = results
            .first()
            .and_then(|r| r.as_ref().err())
            .map_or(0, |e| e.code());
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let responses = members
        .into_iter()
        .zip(results)
        .map(|((member_id, instance), result)| {
            MemberResponse::default()
                .with_member_id(StrBytes::from_string(member_id))
                .with_group_instance_id(instance.map(StrBytes::from_string))
                .with_error_code(result.err().map_or(0, |e| e.code()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}
