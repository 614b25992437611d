//! ListGroups (v0–4): every group this broker coordinates, with its
//! protocol type and (v4+) state, optionally filtered by state.

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub async fn handle_list_groups(
    broker: &Arc<Broker>,
    version: i16,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let filter: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let listed = broker.groups().list(|groups| {
        groups
            .filter(|g| {
                filter.is_empty() || filter.contains(&g.state().name().to_ascii_lowercase())
            })
            .map(|g| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.group_id().to_string())))
                    .with_protocol_type(StrBytes::from_string(
                        g.protocol_type().unwrap_or_default().to_string(),
                    ));
                if version >= 4 {
                    listed = listed.with_group_state(StrBytes::from_static_str(g.state().name()));
                }
                listed
            })
            .collect::<Vec<_>>()
    });
    match listed {
        Ok(mut groups) => {
            groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
            ListGroupsResponse::default().with_groups(groups)
        }
        Err(e) => ListGroupsResponse::default().with_error_code(e.code()),
    }
}
