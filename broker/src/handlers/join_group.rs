//! JoinGroup (v0–9): a member joins (or rejoins) a group. The answer
//! usually waits for the rebalance to complete — every member rejoined, or
//! the rebalance timeout passed — so it is a [`Handled::Later`].
//!
//! From v4 a member joining with an empty member id is answered
//! MEMBER_ID_REQUIRED with a fresh id and rejoins with it (KIP-394); static
//! members (`group.instance.id`, v5+) skip that step (KIP-345). v0 has no
//! rebalance timeout: the session timeout stands in, as in Kafka.
//!
//! # Limits
//! - A `group.instance.id` or member id longer than `ID_BYTES_MAX` is
//!   refused (INVALID_REQUEST and UNKNOWN_MEMBER_ID) before the group is
//!   touched; the client id kept in a member (and in its generated member
//!   id) is cut to `MEMBER_CLIENT_ID_BYTES_MAX`.

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::RequestFrame;

use super::Handled;
use crate::broker::Broker;
use crate::group::GroupError;
use crate::group::coordinator::Waiting;
use crate::group::group::{JoinRequest, JoinResult, Protocol};
use crate::group::limits::{ID_BYTES_MAX, MEMBER_CLIENT_ID_BYTES_MAX};
use crate::server::now_ms;

pub async fn handle_join_group(
    broker: &Arc<Broker>,
    frame: &RequestFrame,
    client_host: &str,
    request: JoinGroupRequest,
) -> Handled<JoinGroupResponse> {
    let version = frame.api_version();
    let client_id = frame
        .header
        .client_id
        .as_ref()
        .map_or_else(String::new, |c| {
            truncate_at_char(c, MEMBER_CLIENT_ID_BYTES_MAX).to_string()
        });
    let member_id = request.member_id.to_string();
    let rebalance_timeout_ms = if version == 0 {
        request.session_timeout_ms
    } else {
        request.rebalance_timeout_ms
    };
    let join = JoinRequest {
        member_id: member_id.clone(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        fresh_member_id: format!("{client_id}-{}", uuid::Uuid::new_v4()),
        client_id,
        client_host: client_host.to_string(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata.clone(),
            })
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let refused = if join.member_id.len() > ID_BYTES_MAX {
        Some(GroupError::UnknownMemberId(join.member_id.clone()))
    } else if join
        .group_instance_id
        .as_ref()
        .is_some_and(|id| id.len() > ID_BYTES_MAX)
    {
        Some(GroupError::LimitExceeded(format!(
            "group.instance.id longer than {ID_BYTES_MAX} bytes"
        )))
    } else {
        None
    };
    let waiting = match refused {
        Some(e) => Waiting::Now(Err(e)),
        None => {
            broker
                .groups()
                .join(broker.replicas(), &request.group_id.0, join, now_ms())
                .await
        }
    };
    Handled::Later(Box::pin(async move {
        let result = waiting
            .resolve(Err(GroupError::CoordinatorNotAvailable))
            .await;
        response(version, &member_id, result)
    }))
}

fn response(version: i16, member_id: &str, result: JoinResult) -> JoinGroupResponse {
    let empty_name = (version < 7).then(StrBytes::default);
    match result {
        Ok(r) => {
            let members = r
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(
                            m.group_instance_id
                                .filter(|_| version >= 5)
                                .map(StrBytes::from_string),
                        )
                        .with_metadata(m.metadata)
                })
                .collect();
            JoinGroupResponse::default()
                .with_generation_id(r.generation_id)
                .with_protocol_type(r.protocol_type.map(StrBytes::from_string))
                .with_protocol_name(r.protocol_name.map(StrBytes::from_string).or(empty_name))
                .with_leader(StrBytes::from_string(r.leader))
                .with_skip_assignment(r.skip_assignment && version >= 9)
                .with_member_id(StrBytes::from_string(r.member_id))
                .with_members(members)
        }
        Err(e) => {
            tracing::debug!(error = %e, "join group refused");
            let member_id = match &e {
                GroupError::MemberIdRequired(id) => id.clone(),
                _ => member_id.to_string(),
            };
            JoinGroupResponse::default()
                .with_error_code(e.code())
                .with_generation_id(-1)
                .with_protocol_name(empty_name)
                .with_member_id(StrBytes::from_string(member_id))
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary.
fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let end = (0..=max)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_cut_on_char_boundaries() {
        assert_eq!(truncate_at_char("abc", 5), "abc");
        assert_eq!(truncate_at_char("abcdef", 3), "abc");
        assert_eq!(truncate_at_char("aé", 2), "a", "é is two bytes");
    }
}
