//! Consumer-group administration: list, describe, delete, read committed
//! offsets, reset them.
//!
//! Resetting commits offsets with generation -1 and an empty member id,
//! which the coordinator accepts only while the group has no members
//! (Kafka's `kafka-consumer-groups --reset-offsets` rule): resetting a
//! live group fails with the coordinator's error.

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::Admin;
use crate::error::{Error, Result, partition_context};

/// One group, as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty when the broker's ListGroups version does not report it.
    pub state: String,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    /// `(topic, partitions)` assigned to it.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group's state and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl Admin {
    /// Every group on every broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let meta = self.cluster().refresh_metadata(Some(&[])).await?;
        let mut out = Vec::new();
        for &node in meta.brokers.keys() {
            let response = self
                .cluster()
                .node(node)
                .await?
                .call(&ListGroupsRequest::default())
                .await?;
            Error::check(response.error_code, || {
                format!("list groups on node {node}")
            })?;
            out.extend(response.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// State and members of `group`.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let conn = self.cluster().coordinator(group).await?;
        let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
        let response = conn.call(&request).await?;
        let g = response
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol(format!("no description of group '{group}'")))?;
        super::check_with_message(g.error_code, g.error_message, || format!("group '{group}'"))?;
        let members = g
            .members
            .into_iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: decode_assignment(m.member_assignment),
            })
            .collect();
        Ok(GroupDescription {
            group_id: group.to_owned(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        })
    }

    /// Deletes `group` (it must have no members).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let conn = self.cluster().coordinator(group).await?;
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
        let response = conn.call(&request).await?;
        for r in response.results {
            Error::check(r.error_code, || format!("delete group '{group}'"))?;
        }
        Ok(())
    }

    /// Offsets `group` has committed (all topics).
    pub async fn group_offsets(&self, group: &str) -> Result<Vec<GroupOffset>> {
        let conn = self.cluster().coordinator(group).await?;
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(None);
        let response = conn.call(&request).await?;
        Error::check(response.error_code, || {
            format!("offsets of group '{group}'")
        })?;
        let mut out = Vec::new();
        for t in response.topics {
            let topic = t.name.0.to_string();
            for p in t.partitions {
                Error::check(p.error_code, || {
                    partition_context(&topic, p.partition_index)
                })?;
                if p.committed_offset >= 0 {
                    out.push(GroupOffset {
                        topic: topic.clone(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// Commits `offsets` for `group`, which must be empty (no members).
    pub async fn reset_group_offsets(&self, group: &str, offsets: &[GroupOffset]) -> Result<()> {
        let conn = self.cluster().coordinator(group).await?;
        let _ = conn.version(ApiKey::OffsetCommit)?;
        let request = commit_request(group, -1, "", offsets);
        let response = conn.call(&request).await?;
        for t in response.topics {
            for p in t.partitions {
                Error::check(p.error_code, || {
                    format!(
                        "reset offset of group '{group}' {}",
                        partition_context(&t.name.0, p.partition_index)
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// An OffsetCommit request for `offsets`.
pub(crate) fn commit_request(
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[GroupOffset],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for o in offsets {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(o.partition)
            .with_committed_offset(o.offset);
        match topics.iter_mut().find(|t| t.name.0.as_str() == o.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(o.topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_topics(topics)
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

/// The `(topic, partitions)` of a consumer-protocol assignment; empty when
/// it does not decode (a non-consumer protocol).
pub(crate) fn decode_assignment(mut bytes: Bytes) -> Vec<(String, Vec<i32>)> {
    let Some(&prefix) = bytes.first_chunk::<2>() else {
        return Vec::new();
    };
    let version = i16::from_be_bytes(prefix);
    let _ = bytes.split_to(2);
    match ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions))
            .collect(),
        Err(_) => Vec::new(),
    }
}
