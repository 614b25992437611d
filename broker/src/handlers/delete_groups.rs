//! DeleteGroups (v0–2): delete empty groups and their committed offsets
//! (tombstones in `__consumer_offsets`). A group with members answers
//! NON_EMPTY_GROUP; an unknown one GROUP_ID_NOT_FOUND.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::broker::Broker;
use crate::server::now_ms;

pub async fn handle_delete_groups(
    broker: &Arc<Broker>,
    _version: i16,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for id in request.groups_names {
        let outcome = broker
            .groups()
            .delete_group(broker.replicas(), &id, now_ms())
            .await;
        if let Err(e) = &outcome {
            tracing::debug!(group = %id.as_str(), error = %e, "delete group refused");
        }
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(outcome.err().map_or(0, |e| e.code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
