//! DescribeGroups (v0–5): state, protocol and members of groups. As in
//! Kafka, member metadata and assignments are shown only for a `Stable`
//! group, and an unknown group is described as `Dead` with no error.

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::group::{Group, GroupState};

pub async fn handle_describe_groups(
    broker: &Arc<Broker>,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let base = DescribedGroup::default().with_group_id(id.clone());
            match broker.groups().inspect(id, |g| describe(g, version)) {
                Ok(d) => d.with_group_id(id.clone()),
                Err(e) => base
                    .with_error_code(e.code())
                    .with_group_state(StrBytes::from_static_str(GroupState::Dead.name())),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

fn describe(group: Option<&Group>, version: i16) -> DescribedGroup {
    let Some(g) = group else {
        return DescribedGroup::default()
            .with_group_state(StrBytes::from_static_str(GroupState::Dead.name()));
    };
    let stable = g.state() == GroupState::Stable;
    let protocol = if stable {
        g.protocol_name().unwrap_or_default()
    } else {
        ""
    };
    let members = g
        .members()
        .map(|m| {
            let mut member = DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(m.member_id.clone()))
                .with_client_id(StrBytes::from_string(m.client_id.clone()))
                .with_client_host(StrBytes::from_string(m.client_host.clone()));
            if version >= 4 {
                member = member
                    .with_group_instance_id(m.group_instance_id.clone().map(StrBytes::from_string));
            }
            if stable {
                member = member
                    .with_member_metadata(m.metadata_for(protocol))
                    .with_member_assignment(m.assignment.clone());
            }
            member
        })
        .collect();
    DescribedGroup::default()
        .with_group_state(StrBytes::from_static_str(g.state().name()))
        .with_protocol_type(StrBytes::from_string(
            g.protocol_type().unwrap_or_default().to_string(),
        ))
        .with_protocol_data(StrBytes::from_string(protocol.to_string()))
        .with_members(members)
}
