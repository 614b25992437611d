//! One classic-protocol consumer group: its members, generations and
//! rebalances, as an I/O-free state machine.
//!
//! Every call takes the time (`now_ms`) from the caller and appends what
//! must happen outside to an `out: &mut Vec<Output>`: answers for parked
//! JoinGroup/SyncGroup requests ([`Output::Joined`], [`Output::Synced`]) and
//! "persist the group" ([`Output::Store`]). The coordinator holds the
//! waiters and the log; this file holds no clock, channel or file, so it is
//! unit-tested and model-tested with plain calls.
//!
//! ```text
//!            join (first member)          all members joined, or the
//!   Empty ───────────────────► Preparing ─ rebalance timeout passed ─► Completing
//!     ▲                        Rebalance ◄──────────────┐              Rebalance
//!     │ last member leaves /       ▲     join / leave /  │                  │ leader's
//!     │ expires (generation + 1)   │     expiry          │                  │ SyncGroup
//!     └────────────────────────────┴──────────── Stable ◄┴──────────────────┘
//!   Dead: deleted (DeleteGroups); every request answers COORDINATOR_NOT_AVAILABLE
//! ```
//!
//! # Invariants
//! - `generation_id` only grows; it grows by one each time a join phase
//!   completes (also when it completes with no members, into `Empty`).
//! - `Empty` ⇔ no members; `leader_id` is a member whenever there are
//!   members and the state is `CompletingRebalance` or `Stable`.
//! - A `group.instance.id` maps to exactly one member (`static_members`).
//! - Members awaiting join exist only in `PreparingRebalance`; members
//!   awaiting sync only in `CompletingRebalance`.
//! - Members plus pending members never exceed `group.max.size`.
//!
//! # Caveats
//! - The initial rebalance delay is one fixed wait from the first join
//!   (Kafka extends it per joining member up to the rebalance timeout).
//! - A static member rejoining a `Stable` group keeps its assignment when
//!   its protocols are byte-identical (Kafka compares the protocol the next
//!   generation would select).
//!
//! # References
//! Kafka's `GroupCoordinator.scala` / `GroupMetadata.scala` (classic
//! protocol), KIP-345 (static membership), KIP-394 (MEMBER_ID_REQUIRED),
//! KIP-134 (initial rebalance delay).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::error::GroupError;
use super::limits::{MEMBER_ASSIGNMENT_BYTES_MAX, MEMBER_METADATA_BYTES_MAX, MEMBER_PROTOCOLS_MAX};

/// Kafka's classic group states, spelled as DescribeGroups and ListGroups
/// report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// Limits and timings a group is checked against (broker config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// `group.max.size`.
    pub max_size: usize,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i64,
}

/// One protocol (assignor) a member offers, with its subscription bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A member of the group.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    last_heartbeat_ms: i64,
    awaiting_join: bool,
    awaiting_sync: bool,
    /// Sent SyncGroup in the current generation.
    synced: bool,
    /// Order of first join: the first member becomes leader.
    join_order: u64,
}

impl Member {
    /// The metadata this member offered for `protocol`.
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }
}

/// A JoinGroup, as the state machine sees it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// v4+: a new dynamic member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// v9+: the leader of an unchanged static rejoin may skip assignment.
    pub supports_skip_assignment: bool,
    /// The id a new member gets (`client_id-uuid`), made by the caller so
    /// this file stays deterministic.
    pub fresh_member_id: String,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A successful JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub members: Vec<JoinedMember>,
}

pub type JoinResult = Result<JoinResponse, GroupError>;

/// A SyncGroup, as the state machine sees it.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// A successful SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

pub type SyncResult = Result<SyncResponse, GroupError>;

/// The immediate answer to a join or sync.
#[derive(Debug)]
pub enum Reply<T> {
    Now(T),
    /// Park the request under this member id; an [`Output`] answers it.
    Wait {
        member_id: String,
    },
}

/// What the coordinator must do after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Answer the parked JoinGroup of `member_id` (if one is parked).
    Joined {
        member_id: String,
        result: JoinResult,
    },
    /// Answer the parked SyncGroup of `member_id` (if one is parked).
    Synced {
        member_id: String,
        result: SyncResult,
    },
    /// The group's generation, protocol or membership changed: persist it.
    Store,
}

/// One consumer group. See the module docs.
#[derive(Debug, Clone)]
pub struct Group {
    group_id: String,
    state: GroupState,
    /// When the state last changed (Kafka's `currentStateTimestamp`); for an
    /// `Empty` group, the start of its offsets' retention clock.
    state_timestamp_ms: i64,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they are
    /// forgotten if the member does not rejoin (its session timeout).
    pending_members: BTreeMap<String, i64>,
    /// PreparingRebalance: when the join phase completes regardless.
    join_deadline_ms: i64,
    /// PreparingRebalance: the join phase may not complete before this
    /// (initial rebalance delay of a new group).
    join_not_before_ms: i64,
    /// CompletingRebalance: members that have not synced by then are removed.
    sync_deadline_ms: i64,
    next_join_order: u64,
    limits: GroupLimits,
}

impl Group {
    /// A new, empty group at generation 0.
    pub fn new(group_id: String, limits: GroupLimits, now_ms: i64) -> Self {
        Self {
            group_id,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeMap::new(),
            join_deadline_ms: 0,
            join_not_before_ms: 0,
            sync_deadline_ms: 0,
            next_join_order: 0,
            limits,
        }
    }

    /// A group as replayed from `__consumer_offsets`: `Empty`, at its stored
    /// generation and protocol type; members must rejoin.
    pub fn restore(
        group_id: String,
        limits: GroupLimits,
        generation_id: i32,
        protocol_type: Option<String>,
        state_timestamp_ms: i64,
    ) -> Self {
        let mut g = Self::new(group_id, limits, state_timestamp_ms);
        g.generation_id = generation_id;
        g.protocol_type = protocol_type;
        g
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }
    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }
    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    pub fn member_count(&self) -> usize {
        self.members.len()
    }
    /// Members plus member ids handed out and not yet used.
    pub fn size(&self) -> usize {
        self.members.len() + self.pending_members.len()
    }

    /// DeleteGroups: the group is gone; parked requests are answered.
    pub fn mark_dead(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            self.remove_member(&id, GroupError::CoordinatorNotAvailable, out);
        }
        self.pending_members.clear();
        self.set_state(GroupState::Dead, now_ms);
    }

    // ---- JoinGroup -------------------------------------------------------

    pub fn join(
        &mut self,
        req: JoinRequest,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Reply<JoinResult> {
        match self.try_join(req, now_ms, out) {
            Ok(reply) => reply,
            Err(e) => Reply::Now(Err(e)),
        }
    }

    fn try_join(
        &mut self,
        req: JoinRequest,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<Reply<JoinResult>, GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let (min, max) = (
            self.limits.min_session_timeout_ms,
            self.limits.max_session_timeout_ms,
        );
        if !(min..=max).contains(&req.session_timeout_ms) {
            return Err(GroupError::InvalidSessionTimeout {
                requested: req.session_timeout_ms,
                min,
                max,
            });
        }
        check_protocols(&req.protocols)?;
        if req.protocol_type.is_empty() || !self.supports(&req.protocol_type, &req.protocols) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if !req.member_id.is_empty() {
            return self.join_known_member(req, now_ms, out);
        }
        if let Some(instance) = &req.group_instance_id {
            if let Some(old) = self.static_members.get(instance).cloned() {
                return Ok(self.rejoin_static_member(&old, req, now_ms, out));
            }
            let id = req.fresh_member_id.clone();
            return self.add_member_and_rebalance(id, req, now_ms, out);
        }
        if req.require_known_member_id {
            self.check_capacity()?;
            let id = req.fresh_member_id;
            let expires = now_ms.saturating_add(i64::from(req.session_timeout_ms));
            self.pending_members.insert(id.clone(), expires);
            return Err(GroupError::MemberIdRequired(id));
        }
        let id = req.fresh_member_id.clone();
        self.add_member_and_rebalance(id, req, now_ms, out)
    }

    fn join_known_member(
        &mut self,
        req: JoinRequest,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<Reply<JoinResult>, GroupError> {
        let id = req.member_id.clone();
        if self.pending_members.remove(&id).is_some() {
            return self.add_member_and_rebalance(id, req, now_ms, out);
        }
        self.check_member(&id, req.group_instance_id.as_deref())?;
        let unchanged = self
            .members
            .get(&id)
            .is_some_and(|m| m.protocols == req.protocols);
        let is_leader = self.leader_id.as_deref() == Some(id.as_str());
        match self.state {
            GroupState::CompletingRebalance if unchanged => {
                self.touch(&id, now_ms);
                Ok(Reply::Now(Ok(self.join_response(&id, is_leader, false))))
            }
            GroupState::Stable if unchanged && !is_leader => {
                self.touch(&id, now_ms);
                Ok(Reply::Now(Ok(self.join_response(&id, false, false))))
            }
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId(id)),
            _ => {
                self.update_member(&id, &req, now_ms);
                Ok(self.rebalance_for_join(id, now_ms, out))
            }
        }
    }

    /// A static member rejoining with an empty member id: it takes over its
    /// instance id under a new member id, fencing the old one.
    fn rejoin_static_member(
        &mut self,
        old_id: &str,
        req: JoinRequest,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Reply<JoinResult> {
        let new_id = req.fresh_member_id.clone();
        let unchanged = self
            .members
            .get(old_id)
            .is_some_and(|m| m.protocols == req.protocols);
        let leader_before = self.leader_id.clone().unwrap_or_default();
        self.replace_member_id(old_id, &new_id, out);
        self.update_member(&new_id, &req, now_ms);
        if self.state == GroupState::Stable && unchanged {
            // KIP-345: no rebalance. The old leader id is returned, so a
            // rejoining leader below v9 acts as a follower and just syncs.
            let skip = req.supports_skip_assignment && self.is_leader(&new_id);
            let mut response = self.join_response(&new_id, skip, skip);
            response.leader = leader_before;
            out.push(Output::Store);
            return Reply::Now(Ok(response));
        }
        self.rebalance_for_join(new_id, now_ms, out)
    }

    fn add_member_and_rebalance(
        &mut self,
        id: String,
        req: JoinRequest,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<Reply<JoinResult>, GroupError> {
        self.check_capacity()?;
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        let join_order = self.next_join_order;
        self.next_join_order += 1;
        self.members.insert(
            id.clone(),
            Member {
                member_id: id.clone(),
                group_instance_id: req.group_instance_id.clone(),
                client_id: String::new(),
                client_host: String::new(),
                session_timeout_ms: 0,
                rebalance_timeout_ms: 0,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_heartbeat_ms: now_ms,
                awaiting_join: true,
                awaiting_sync: false,
                synced: false,
                join_order,
            },
        );
        self.update_member(&id, &req, now_ms);
        Ok(self.rebalance_for_join(id, now_ms, out))
    }

    /// Marks `id` as joined, starts a rebalance if none is running, and
    /// completes the join phase if that was the last member.
    fn rebalance_for_join(
        &mut self,
        id: String,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Reply<JoinResult> {
        if let Some(m) = self.members.get_mut(&id) {
            m.awaiting_join = true;
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now_ms, out);
        }
        self.maybe_complete_join(now_ms, out);
        Reply::Wait { member_id: id }
    }

    fn update_member(&mut self, id: &str, req: &JoinRequest, now_ms: i64) {
        if let Some(m) = self.members.get_mut(id) {
            m.client_id.clone_from(&req.client_id);
            m.client_host.clone_from(&req.client_host);
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.protocols.clone_from(&req.protocols);
            m.last_heartbeat_ms = now_ms;
        }
    }

    fn replace_member_id(&mut self, old_id: &str, new_id: &str, out: &mut Vec<Output>) {
        let Some(mut member) = self.members.remove(old_id) else {
            return;
        };
        if member.awaiting_join {
            out.push(joined_err(old_id, GroupError::fenced(&member)));
        }
        if member.awaiting_sync {
            out.push(synced_err(old_id, GroupError::fenced(&member)));
        }
        member.member_id = new_id.to_string();
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), new_id.to_string());
        }
        if self.leader_id.as_deref() == Some(old_id) {
            self.leader_id = Some(new_id.to_string());
        }
        self.members.insert(new_id.to_string(), member);
    }

    fn check_capacity(&self) -> Result<(), GroupError> {
        if self.size() >= self.limits.max_size {
            return Err(GroupError::GroupMaxSizeReached {
                max: self.limits.max_size,
            });
        }
        Ok(())
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty
    /// offer; otherwise the type must match and at least one offered
    /// protocol must be supported by every current member.
    fn supports(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|p| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|q| q.name == p.name))
        })
    }

    // ---- rebalance phases ----------------------------------------------

    fn prepare_rebalance(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        if self.state == GroupState::CompletingRebalance {
            let ids: Vec<String> = self.members.keys().cloned().collect();
            for id in ids {
                if let Some(m) = self.members.get_mut(&id) {
                    m.assignment = Bytes::new();
                    if m.awaiting_sync {
                        m.awaiting_sync = false;
                        out.push(synced_err(&id, GroupError::RebalanceInProgress));
                    }
                }
            }
        }
        let rebalance_timeout = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        let delay = if self.state == GroupState::Empty {
            self.limits
                .initial_rebalance_delay_ms
                .min(rebalance_timeout)
        } else {
            0
        };
        self.join_not_before_ms = now_ms.saturating_add(delay);
        self.join_deadline_ms = now_ms.saturating_add(rebalance_timeout);
        self.set_state(GroupState::PreparingRebalance, now_ms);
    }

    fn maybe_complete_join(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined =
            self.members.values().all(|m| m.awaiting_join) && self.pending_members.is_empty();
        if (all_joined && now_ms >= self.join_not_before_ms) || now_ms >= self.join_deadline_ms {
            self.complete_join(now_ms, out);
        }
    }

    /// Ends the join phase: members that did not rejoin are removed, the
    /// generation advances, and every joined member gets its answer.
    fn complete_join(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.member_id.clone())
            .collect();
        for id in missing {
            self.remove_member(&id, GroupError::UnknownMemberId(id.clone()), out);
        }
        self.generation_id = self.generation_id.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader_id = None;
            self.set_state(GroupState::Empty, now_ms);
            out.push(Output::Store);
            return;
        }
        self.protocol_name = self.select_protocol();
        if !self
            .leader_id
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader_id = self.first_member();
        }
        let sync_timeout = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.sync_deadline_ms = now_ms.saturating_add(sync_timeout);
        self.set_state(GroupState::CompletingRebalance, now_ms);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            if let Some(m) = self.members.get_mut(&id) {
                m.awaiting_join = false;
                m.awaiting_sync = true;
                m.synced = false;
                m.last_heartbeat_ms = now_ms;
            }
            let leader = self.is_leader(&id);
            out.push(Output::Joined {
                member_id: id.clone(),
                result: Ok(self.join_response(&id, leader, false)),
            });
        }
        out.push(Output::Store);
    }

    /// Kafka's vote: among the protocols every member supports, each member
    /// votes for the first one it lists; most votes wins, ties going to the
    /// leader's (or first member's) preference order.
    fn select_protocol(&self) -> Option<String> {
        let first = self
            .leader_id
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().min_by_key(|m| m.join_order))?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|p| p.name == *name))
            })
            .collect();
        let votes = |name: &str| {
            self.members
                .values()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .find(|p| candidates.contains(&p.name.as_str()))
                        .is_some_and(|p| p.name == name)
                })
                .count()
        };
        let mut best: Option<(&str, usize)> = None;
        for name in &candidates {
            let v = votes(name);
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((name, v));
            }
        }
        best.map(|(name, _)| name.to_string())
    }

    fn first_member(&self) -> Option<String> {
        self.members
            .values()
            .min_by_key(|m| m.join_order)
            .map(|m| m.member_id.clone())
    }

    fn is_leader(&self, id: &str) -> bool {
        self.leader_id.as_deref() == Some(id)
    }

    fn join_response(&self, id: &str, with_members: bool, skip: bool) -> JoinResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if with_members {
            let mut all: Vec<&Member> = self.members.values().collect();
            all.sort_by_key(|m| m.join_order);
            all.into_iter()
                .map(|m| JoinedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            member_id: id.to_string(),
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: skip,
            members,
        }
    }

    // ---- SyncGroup, Heartbeat, LeaveGroup ------------------------------

    pub fn sync(
        &mut self,
        req: SyncRequest,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Reply<SyncResult> {
        match self.try_sync(req, now_ms, out) {
            Ok(reply) => reply,
            Err(e) => Reply::Now(Err(e)),
        }
    }

    fn try_sync(
        &mut self,
        req: SyncRequest,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<Reply<SyncResult>, GroupError> {
        let id = req.member_id.clone();
        self.check_member(&id, req.group_instance_id.as_deref())?;
        self.check_generation(req.generation_id)?;
        if req.protocol_type.is_some() && req.protocol_type != self.protocol_type
            || req.protocol_name.is_some() && req.protocol_name != self.protocol_name
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                self.touch(&id, now_ms);
                Ok(Reply::Now(Ok(self.sync_response(&id))))
            }
            GroupState::CompletingRebalance => {
                if let Some((_, a)) = req
                    .assignments
                    .iter()
                    .find(|(_, a)| a.len() > MEMBER_ASSIGNMENT_BYTES_MAX)
                {
                    return Err(GroupError::LimitExceeded(format!(
                        "an assignment of {} bytes exceeds {MEMBER_ASSIGNMENT_BYTES_MAX}",
                        a.len()
                    )));
                }
                self.touch(&id, now_ms);
                if let Some(m) = self.members.get_mut(&id) {
                    m.synced = true;
                    m.awaiting_sync = true;
                }
                if self.is_leader(&id) {
                    self.complete_sync(&req.assignments, now_ms, out);
                }
                Ok(Reply::Wait { member_id: id })
            }
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId(id)),
        }
    }

    /// The leader's assignment arrived: store it, go Stable, answer every
    /// parked SyncGroup.
    fn complete_sync(
        &mut self,
        assignments: &[(String, Bytes)],
        now_ms: i64,
        out: &mut Vec<Output>,
    ) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        for (member, assignment) in assignments {
            if let Some(m) = self.members.get_mut(member) {
                m.assignment = assignment.clone();
            }
        }
        self.set_state(GroupState::Stable, now_ms);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            if let Some(m) = self.members.get_mut(&id) {
                m.awaiting_sync = false;
            }
            out.push(Output::Synced {
                member_id: id.clone(),
                result: Ok(self.sync_response(&id)),
            });
        }
        out.push(Output::Store);
    }

    fn sync_response(&self, id: &str) -> SyncResponse {
        SyncResponse {
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        self.check_member(member_id, group_instance_id)?;
        self.check_generation(generation_id)?;
        self.touch(member_id, now_ms);
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty | GroupState::Dead => {
                Err(GroupError::UnknownMemberId(member_id.to_string()))
            }
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id alone
    /// with an empty member id, v3+). Returns the member id that left.
    pub fn leave(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<String, GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let id = match (member_id, group_instance_id) {
            ("", Some(instance)) => self
                .static_members
                .get(instance)
                .cloned()
                .ok_or_else(|| GroupError::UnknownMemberId(String::new()))?,
            (id, _) => id.to_string(),
        };
        if self.pending_members.remove(&id).is_some() {
            self.maybe_complete_join(now_ms, out);
            return Ok(id);
        }
        self.check_member(&id, group_instance_id)?;
        self.remove_member(&id, GroupError::UnknownMemberId(id.clone()), out);
        self.after_member_removed(now_ms, out);
        Ok(id)
    }

    /// Kafka's `removeMemberAndUpdateGroup`: a departure starts a rebalance,
    /// or lets a running join phase finish without the member.
    fn after_member_removed(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, out);
                self.maybe_complete_join(now_ms, out);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn remove_member(&mut self, id: &str, error: GroupError, out: &mut Vec<Output>) {
        let Some(member) = self.members.remove(id) else {
            return;
        };
        if let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(id)
        {
            self.static_members.remove(instance);
        }
        if member.awaiting_join {
            out.push(joined_err(id, error.clone()));
        }
        if member.awaiting_sync {
            out.push(synced_err(id, error));
        }
        if self.is_leader(id) {
            self.leader_id = self.first_member();
        }
    }

    // ---- OffsetCommit ----------------------------------------------------

    /// Kafka's `doCommitOffsets` checks: a group without members accepts
    /// commits with generation -1 (the group only stores offsets); a member
    /// commits with its id and the current generation, also while a
    /// rebalance is being prepared.
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if let Some(instance) = group_instance_id
            && let Some(holder) = self.static_members.get(instance)
            && holder != member_id
        {
            return Err(GroupError::FencedInstanceId {
                instance_id: instance.to_string(),
            });
        }
        if generation_id < 0 && self.members.is_empty() {
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId(member_id.to_string()));
        }
        self.check_generation(generation_id)?;
        self.touch(member_id, now_ms);
        Ok(())
    }

    // ---- timers ----------------------------------------------------------

    /// Advances the group's timers to `now_ms`: forgets unused member ids,
    /// expires sessions, completes a join phase whose delay or deadline
    /// passed, and removes members that never synced.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        if self.state == GroupState::Dead {
            return;
        }
        let before = self.pending_members.len();
        self.pending_members.retain(|_, expires| *expires > now_ms);
        let mut changed = before != self.pending_members.len();
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                let exempt = self.state == GroupState::PreparingRebalance && m.awaiting_join;
                !exempt
                    && now_ms
                        >= m.last_heartbeat_ms
                            .saturating_add(i64::from(m.session_timeout_ms))
            })
            .map(|m| m.member_id.clone())
            .collect();
        if self.state == GroupState::CompletingRebalance && now_ms >= self.sync_deadline_ms {
            // The leader (or a follower) never synced within the rebalance
            // timeout: drop whoever did not, so the rest can move on.
            let unsynced: Vec<String> = self
                .members
                .values()
                .filter(|m| !m.synced)
                .map(|m| m.member_id.clone())
                .collect();
            for id in unsynced {
                self.remove_member(&id, GroupError::RebalanceInProgress, out);
                changed = true;
            }
        }
        for id in expired {
            self.remove_member(&id, GroupError::UnknownMemberId(id.clone()), out);
            changed = true;
        }
        if changed {
            self.after_member_removed(now_ms, out);
        }
        self.maybe_complete_join(now_ms, out);
    }

    // ---- helpers ---------------------------------------------------------

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    fn touch(&mut self, id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(id) {
            m.last_heartbeat_ms = now_ms;
        }
    }

    /// Dead group, unknown member, or a static member whose instance id now
    /// belongs to another member id.
    fn check_member(&self, id: &str, group_instance_id: Option<&str>) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if let Some(instance) = group_instance_id
            && let Some(holder) = self.static_members.get(instance)
            && holder != id
        {
            return Err(GroupError::FencedInstanceId {
                instance_id: instance.to_string(),
            });
        }
        if !self.members.contains_key(id) {
            return Err(GroupError::UnknownMemberId(id.to_string()));
        }
        Ok(())
    }

    fn check_generation(&self, generation_id: i32) -> Result<(), GroupError> {
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration {
                requested: generation_id,
                current: self.generation_id,
            });
        }
        Ok(())
    }
}

impl GroupError {
    fn fenced(member: &Member) -> Self {
        Self::FencedInstanceId {
            instance_id: member.group_instance_id.clone().unwrap_or_default(),
        }
    }
}

fn check_protocols(protocols: &[Protocol]) -> Result<(), GroupError> {
    if protocols.len() > MEMBER_PROTOCOLS_MAX {
        return Err(GroupError::LimitExceeded(format!(
            "{} protocols offered; at most {MEMBER_PROTOCOLS_MAX}",
            protocols.len()
        )));
    }
    let bytes: usize = protocols
        .iter()
        .map(|p| p.name.len() + p.metadata.len())
        .sum();
    if bytes > MEMBER_METADATA_BYTES_MAX {
        return Err(GroupError::LimitExceeded(format!(
            "{bytes} bytes of protocol metadata; at most {MEMBER_METADATA_BYTES_MAX}"
        )));
    }
    Ok(())
}

fn joined_err(id: &str, error: GroupError) -> Output {
    Output::Joined {
        member_id: id.to_string(),
        result: Err(error),
    }
}

fn synced_err(id: &str, error: GroupError) -> Output {
    Output::Synced {
        member_id: id.to_string(),
        result: Err(error),
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
