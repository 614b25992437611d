//! SyncGroup (v0–5): the leader hands out the assignment it computed; every
//! member gets its own share. A follower's answer waits for the leader's
//! SyncGroup, so it is a [`Handled::Later`].

use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Handled;
use crate::broker::Broker;
use crate::group::GroupError;
use crate::group::group::SyncRequest;
use crate::server::now_ms;

pub async fn handle_sync_group(
    broker: &Arc<Broker>,
    version: i16,
    request: SyncGroupRequest,
) -> Handled<SyncGroupResponse> {
    let sync = SyncRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let waiting = broker
        .groups()
        .sync(broker.replicas(), &request.group_id.0, sync, now_ms())
        .await;
    Handled::Later(Box::pin(async move {
        match waiting
            .resolve(Err(GroupError::CoordinatorNotAvailable))
            .await
        {
            Ok(r) => {
                let mut response = SyncGroupResponse::default().with_assignment(r.assignment);
                if version >= 5 {
                    response = response
                        .with_protocol_type(r.protocol_type.map(StrBytes::from_string))
                        .with_protocol_name(r.protocol_name.map(StrBytes::from_string));
                }
                response
            }
            Err(e) => {
                tracing::debug!(error = %e, "sync group refused");
                SyncGroupResponse::default().with_error_code(e.code())
            }
        }
    }))
}
