//! Consumer-group membership over the classic protocol: join, sync,
//! heartbeat in the background, commit, leave.
//!
//! ```text
//! FindCoordinator ─► JoinGroup (member id; MEMBER_ID_REQUIRED → again)
//!   leader: decode subscriptions ─► assignor ─► SyncGroup(assignments)
//!   others: SyncGroup(empty) ─► own assignment
//! heartbeat task: Heartbeat every interval; REBALANCE_IN_PROGRESS or a
//!   lost coordinator sets `rejoin`, which the next poll acts on
//! ```
//!
//! The coordinator gets a connection of its own (see
//! `Cluster::dedicated_coordinator`).
//!
//! # Invariants
//! - The heartbeat task never outlives the generation it heartbeats for:
//!   it is stopped before every join and on leave.
//! - `owned` is exactly the assignment of the last successful SyncGroup
//!   (minus what the consumer gave up since); cooperative rebalances send
//!   it in the subscription so the leader can keep partitions in place.
//!
//! # References
//! Kafka's `AbstractCoordinator`, `ConsumerCoordinator`; KIP-345
//! (member id required), KIP-429 (cooperative rebalancing).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, OffsetFetchRequest, SyncGroupRequest,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_protocol::error_code::{ErrorCode, ResponseError};
use tokio::task::JoinHandle;

use crate::admin::GroupOffset;
use crate::admin::groups::commit_request;
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::consumer::assignor::{Assignor, MemberSubscription, TopicPartition};
use crate::error::{Error, Result, partition_context, protocol};

/// Subscription metadata version written: v1 carries owned partitions.
const SUBSCRIPTION_VERSION: i16 = 1;
/// Assignment version written.
const ASSIGNMENT_VERSION: i16 = 1;

/// Group timing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupTimeouts {
    pub session: Duration,
    pub rebalance: Duration,
    pub heartbeat: Duration,
}

/// Member id and generation, shared with the heartbeat task.
#[derive(Debug, Default)]
struct Shared {
    member: Mutex<(String, i32)>,
    rejoin: AtomicBool,
}

impl Shared {
    fn member(&self) -> (String, i32) {
        match self.member.lock() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_member(&self, id: String, generation: i32) {
        match self.member.lock() {
            Ok(mut m) => *m = (id, generation),
            Err(p) => *p.into_inner() = (id, generation),
        }
    }
}

/// What a completed join changed.
#[derive(Debug, Default)]
pub(crate) struct AssignmentChange {
    pub added: BTreeSet<TopicPartition>,
    pub revoked: BTreeSet<TopicPartition>,
}

pub(crate) struct Membership {
    cluster: Arc<Cluster>,
    pub(crate) group_id: String,
    pub(crate) assignor: Assignor,
    timeouts: GroupTimeouts,
    topics: BTreeSet<String>,
    pub(crate) owned: BTreeSet<TopicPartition>,
    conn: Option<Arc<Connection>>,
    shared: Arc<Shared>,
    heartbeat: Option<JoinHandle<()>>,
    joined: bool,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl Membership {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        group_id: String,
        assignor: Assignor,
        timeouts: GroupTimeouts,
        topics: BTreeSet<String>,
    ) -> Self {
        Self {
            cluster,
            group_id,
            assignor,
            timeouts,
            topics,
            owned: BTreeSet::new(),
            conn: None,
            shared: Arc::new(Shared::default()),
            heartbeat: None,
            joined: false,
        }
    }

    /// Whether the next poll must (re)join before fetching.
    pub(crate) fn needs_join(&self) -> bool {
        !self.joined || self.shared.rejoin.load(Ordering::Acquire)
    }

    pub(crate) fn generation(&self) -> i32 {
        self.shared.member().1
    }

    async fn connection(&mut self) -> Result<Arc<Connection>> {
        if let Some(c) = &self.conn
            && !c.is_closed()
        {
            return Ok(Arc::clone(c));
        }
        let c = self.cluster.dedicated_coordinator(&self.group_id).await?;
        self.conn = Some(Arc::clone(&c));
        Ok(c)
    }

    fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }

    /// Joins (or rejoins) the group and returns how the assignment
    /// changed. Retries retriable failures until `rebalance` time passes.
    pub(crate) async fn join(&mut self) -> Result<AssignmentChange> {
        self.stop_heartbeat();
        self.shared.rejoin.store(false, Ordering::Release);
        let deadline = tokio::time::Instant::now() + self.timeouts.rebalance * 2;
        loop {
            match self.join_once().await {
                Ok(assigned) => return Ok(self.install(assigned)),
                Err(e) if e.is_retriable() && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(group = %self.group_id, error = %e, "rejoining");
                    if e.invalidates_metadata() {
                        self.conn = None;
                    }
                    tokio::time::sleep(self.cluster.config().retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One JoinGroup + SyncGroup round; the assignment it got.
    async fn join_once(&mut self) -> Result<BTreeSet<TopicPartition>> {
        let conn = self.connection().await?;
        let version = conn.version(ApiKey::JoinGroup)?;
        let join_timeout = self.timeouts.rebalance + self.cluster.config().request_timeout;
        let response = loop {
            let request = self.join_request();
            let response: JoinGroupResponse = conn
                .call_with_timeout(&request, version, join_timeout)
                .await?;
            match ErrorCode::from_code(response.error_code).error() {
                // KIP-394: the coordinator hands out the id to use.
                Some(ResponseError::MemberIdRequired) => {
                    self.shared.set_member(response.member_id.to_string(), -1);
                }
                Some(ResponseError::UnknownMemberId) => self.shared.set_member(String::new(), -1),
                _ => break response,
            }
        };
        Error::check(response.error_code, || {
            format!("join group '{}'", self.group_id)
        })?;
        let member_id = response.member_id.to_string();
        self.shared
            .set_member(member_id.clone(), response.generation_id);
        let protocol = response
            .protocol_name
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| self.assignor.name().to_owned());
        let assignments = if response.leader.as_str() == member_id {
            self.lead(&response, &protocol).await?
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(group_id(&self.group_id))
            .with_generation_id(response.generation_id)
            .with_member_id(StrBytes::from_string(member_id))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_string(protocol)))
            .with_assignments(assignments);
        let sync_version = conn.version(ApiKey::SyncGroup)?;
        let sync = if sync_version < 5 {
            sync.with_protocol_type(None).with_protocol_name(None)
        } else {
            sync
        };
        let response = conn
            .call_with_timeout(&sync, sync_version, join_timeout)
            .await?;
        if let Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) =
            ErrorCode::from_code(response.error_code).error()
        {
            self.shared.set_member(String::new(), -1);
        }
        Error::check(response.error_code, || {
            format!("sync group '{}'", self.group_id)
        })?;
        decode_assignment(response.assignment)
    }

    fn join_request(&self) -> JoinGroupRequest {
        let (member_id, _) = self.shared.member();
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        JoinGroupRequest::default()
            .with_group_id(group_id(&self.group_id))
            .with_session_timeout_ms(ms(self.timeouts.session))
            .with_rebalance_timeout_ms(ms(self.timeouts.rebalance))
            .with_member_id(StrBytes::from_string(member_id))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(self.assignor.name()))
                    .with_metadata(encode_subscription(&self.topics, &self.owned)),
            ])
    }

    /// As leader: runs the assignor over every member's subscription.
    async fn lead(
        &self,
        response: &JoinGroupResponse,
        protocol: &str,
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let assignor = Assignor::from_name(protocol).unwrap_or(self.assignor);
        let members: Vec<MemberSubscription> = response
            .members
            .iter()
            .map(|m| decode_subscription(m.member_id.to_string(), m.metadata.clone()))
            .collect::<Result<_>>()?;
        let topics: BTreeSet<String> = members
            .iter()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        let names: Vec<String> = topics.iter().cloned().collect();
        let meta = self.cluster.refresh_metadata(Some(&names)).await?;
        let partitions: BTreeMap<String, i32> = meta
            .topics
            .values()
            .filter(|t| topics.contains(&t.name))
            .map(|t| {
                (
                    t.name.clone(),
                    i32::try_from(t.partition_count()).unwrap_or(0),
                )
            })
            .collect();
        let plan = assignor.assign(&members, &partitions);
        tracing::debug!(group = %self.group_id, ?plan, "assigned");
        Ok(plan
            .into_iter()
            .map(|(member, tps)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(encode_assignment(&tps))
            })
            .collect())
    }

    /// Records the new assignment, starts heartbeating, and says what
    /// changed. A cooperative member that lost partitions rejoins at once
    /// so they can be handed over.
    fn install(&mut self, assigned: BTreeSet<TopicPartition>) -> AssignmentChange {
        let change = AssignmentChange {
            added: assigned.difference(&self.owned).cloned().collect(),
            revoked: self.owned.difference(&assigned).cloned().collect(),
        };
        self.owned = assigned;
        self.joined = true;
        if self.assignor.is_cooperative() && !change.revoked.is_empty() {
            self.shared.rejoin.store(true, Ordering::Release);
        }
        if let Some(conn) = self.conn.clone() {
            self.heartbeat = Some(tokio::spawn(heartbeat(
                conn,
                self.group_id.clone(),
                Arc::clone(&self.shared),
                self.timeouts.heartbeat,
            )));
        }
        change
    }

    /// Eager protocol: everything owned is given up before a join.
    pub(crate) fn revoke_all(&mut self) -> BTreeSet<TopicPartition> {
        std::mem::take(&mut self.owned)
    }

    /// Commits `offsets` under the current generation.
    pub(crate) async fn commit(&mut self, offsets: &[GroupOffset]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, generation) = self.shared.member();
        let conn = self.connection().await?;
        let request = commit_request(&self.group_id, generation, &member_id, offsets);
        let response = conn.call(&request).await?;
        for t in response.topics {
            for p in t.partitions {
                let code = ErrorCode::from_code(p.error_code);
                if matches!(
                    code.error(),
                    Some(
                        ResponseError::RebalanceInProgress
                            | ResponseError::IllegalGeneration
                            | ResponseError::UnknownMemberId
                    )
                ) {
                    self.shared.rejoin.store(true, Ordering::Release);
                }
                Error::check(p.error_code, || {
                    format!(
                        "commit for group '{}' {}",
                        self.group_id,
                        partition_context(&t.name.0, p.partition_index)
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Committed offsets of `partitions` (absent when none).
    pub(crate) async fn committed(
        &mut self,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id(&self.group_id))
            .with_topics(Some(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            ));
        let response = self.connection().await?.call(&request).await?;
        Error::check(response.error_code, || {
            format!("offsets of group '{}'", self.group_id)
        })?;
        let mut out = BTreeMap::new();
        for t in response.topics {
            for p in t.partitions {
                Error::check(p.error_code, || {
                    partition_context(&t.name.0, p.partition_index)
                })?;
                if p.committed_offset >= 0 {
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Leaves the group (LeaveGroup), so the others rebalance at once
    /// instead of after the session timeout.
    pub(crate) async fn leave(&mut self) -> Result<()> {
        self.stop_heartbeat();
        let (member_id, _) = self.shared.member();
        if !self.joined || member_id.is_empty() {
            return Ok(());
        }
        self.joined = false;
        let conn = self.connection().await?;
        let version = conn.version(ApiKey::LeaveGroup)?;
        let mut request = LeaveGroupRequest::default().with_group_id(group_id(&self.group_id));
        if version >= 3 {
            request.members =
                vec![MemberIdentity::default().with_member_id(StrBytes::from_string(member_id))];
        } else {
            request.member_id = StrBytes::from_string(member_id);
        }
        let response = conn.call_at(&request, version).await?;
        Error::check(response.error_code, || {
            format!("leave group '{}'", self.group_id)
        })
    }
}

/// Heartbeats until the member must rejoin or the task is stopped.
async fn heartbeat(conn: Arc<Connection>, group: String, shared: Arc<Shared>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let (member_id, generation) = shared.member();
        let request = HeartbeatRequest::default()
            .with_group_id(group_id(&group))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member_id));
        let code = match conn.call(&request).await {
            Ok(r) => ErrorCode::from_code(r.error_code),
            Err(e) => {
                tracing::debug!(%group, error = %e, "heartbeat failed");
                shared.rejoin.store(true, Ordering::Release);
                return;
            }
        };
        match code.error() {
            None => {}
            Some(ResponseError::RebalanceInProgress) => {
                shared.rejoin.store(true, Ordering::Release);
            }
            Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                shared.set_member(String::new(), -1);
                shared.rejoin.store(true, Ordering::Release);
                return;
            }
            Some(e) => {
                tracing::debug!(%group, error = %e, "heartbeat error; rejoining");
                shared.rejoin.store(true, Ordering::Release);
                return;
            }
        }
    }
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

fn by_topic(tps: &BTreeSet<TopicPartition>) -> BTreeMap<&str, Vec<i32>> {
    let mut out: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        out.entry(t.as_str()).or_default().push(*p);
    }
    out
}

/// `version i16 | ConsumerProtocolSubscription` (Kafka's
/// `ConsumerProtocol.serializeSubscription`).
fn encode_subscription(topics: &BTreeSet<String>, owned: &BTreeSet<TopicPartition>) -> Bytes {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_owned_partitions(
            by_topic(owned)
                .into_iter()
                .map(|(t, ps)| {
                    OwnedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_owned())))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let mut out = BytesMut::new();
    out.put_i16(SUBSCRIPTION_VERSION);
    // Encoding a struct we built ourselves at a version it supports cannot
    // fail; an empty subscription would only make the leader skip us.
    let _ = sub.encode(&mut out, SUBSCRIPTION_VERSION);
    out.freeze()
}

fn decode_subscription(member_id: String, mut bytes: Bytes) -> Result<MemberSubscription> {
    let version = read_version(&mut bytes)?;
    let sub = ConsumerProtocolSubscription::decode(&mut bytes, version.clamp(0, 3))
        .map_err(|e| protocol(format!("subscription of member {member_id}: {e}")))?;
    Ok(MemberSubscription {
        member_id,
        topics: sub.topics.iter().map(ToString::to_string).collect(),
        owned: sub
            .owned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
    })
}

fn encode_assignment(tps: &BTreeSet<TopicPartition>) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic(tps)
            .into_iter()
            .map(|(t, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.to_owned())))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(ASSIGNMENT_VERSION);
    let _ = assignment.encode(&mut out, ASSIGNMENT_VERSION);
    out.freeze()
}

fn decode_assignment(mut bytes: Bytes) -> Result<BTreeSet<TopicPartition>> {
    if bytes.is_empty() {
        return Ok(BTreeSet::new());
    }
    let version = read_version(&mut bytes)?;
    let a = ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3))
        .map_err(|e| protocol(format!("assignment: {e}")))?;
    Ok(a.assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
        .collect())
}

fn read_version(bytes: &mut Bytes) -> Result<i16> {
    let Some(&prefix) = bytes.first_chunk::<2>() else {
        return Err(protocol(
            "consumer protocol bytes shorter than their version",
        ));
    };
    let _ = bytes.split_to(2);
    Ok(i16::from_be_bytes(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_and_assignment_round_trip() {
        let topics: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let owned: BTreeSet<TopicPartition> = [("a".to_string(), 1), ("b".to_string(), 0)].into();
        let sub = decode_subscription("m".into(), encode_subscription(&topics, &owned)).unwrap();
        assert_eq!(sub.topics, topics);
        assert_eq!(sub.owned, owned);
        assert_eq!(decode_assignment(encode_assignment(&owned)).unwrap(), owned);
        assert!(decode_assignment(Bytes::new()).unwrap().is_empty());
    }
}
