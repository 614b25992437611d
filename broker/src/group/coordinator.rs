//! The group coordinator: every group of this broker, their parked
//! JoinGroup/SyncGroup replies, their committed offsets, and the records in
//! `__consumer_offsets` that make all of it survive a restart.
//!
//! ```text
//! handler ─► Coordinator::join/sync/… ─► lock ─► Group (state machine)
//!                                              ─► Outputs: answer parked waiters,
//!                                                 Store ─► GroupMetadata record
//!                                              ─► OffsetTable (commits, tombstones)
//!                                              ─► append one RecordBatch to the
//!                                                 group's __consumer_offsets partition
//!                                        unlock ─► flush request ─► wait for the
//!                                                 high watermark (commits, deletes)
//! tick task (every TICK_MS) ─► Group::tick for every group; offsets retention
//! start ─► create __consumer_offsets if absent ─► load the partitions led here
//! reconciler (each image) ─► follow_leadership: load a partition whose
//!                            leadership arrived, unload one that left
//! ```
//!
//! # Coordination follows leadership
//! The coordinator of a group is the leader of its `__consumer_offsets`
//! partition (FindCoordinator answers from the image). A partition's
//! groups are loaded (replayed from its log) when this node becomes its
//! leader and dropped when it stops leading it. A request for a group of
//! a partition this node does not lead answers NOT_COORDINATOR; while the
//! partition loads, COORDINATOR_LOAD_IN_PROGRESS.
//!
//! # Ownership
//! One `Coordinator` per broker, owned by `Broker`. All groups live in one
//! map under one `std::sync::Mutex`; nothing awaits while holding it. The
//! lock order is coordinator → partition (an append under the coordinator
//! lock takes the partition lock); nothing takes them the other way round.
//! Parked replies are `oneshot` senders held here, never in `Group`.
//!
//! # Invariants
//! - Records are appended and applied to the in-memory state in the same
//!   critical section, in log order: the live committed offsets and stored
//!   group generations always equal a replay of the log (model-tested in
//!   `tests/group_model.rs`).
//! - An OffsetCommit is acknowledged only once its record is below the
//!   partition's high watermark (fsynced, in `durability = fsync`), and
//!   OffsetFetch shows it only from then on: until then it is pending
//!   (`offsets.rs`), and a commit whose append or fsync failed is never
//!   shown. Pending commits are promoted lazily, up to the partition's
//!   current high watermark, by the next commit, fetch or tick of the group.
//! - The group for `group_id` lives in partition
//!   `partition_for(group_id, offsets.topic.num.partitions)`.
//! - The live state holds exactly the groups of the partitions marked
//!   `Loaded` in `owned`; a partition is `Loading` only while its replay
//!   runs, outside the state lock.
//!
//! # Limits
//! [`GROUPS_MAX`] groups, [`MEMBERS_MAX`] members across groups (pending
//! member ids handed out by MEMBER_ID_REQUIRED included), and the
//! per-group bounds of `limits.rs`.
//!
//! # Caveats
//! - A commit that timed out (`offsets.commit.timeout.ms`) but becomes
//!   durable later is then shown, as its record will be replayed after a
//!   restart anyway.
//! - Group metadata (generations, members) is appended without waiting for
//!   durability: after a crash, members rejoin anyway.
//! - `__consumer_offsets` is compacted; replay reads what the cleaner
//!   left, in offset order: a commit or group record is the latest of its
//!   key, a tombstone (null value) removes the offset or the group, and a
//!   batch the cleaner emptied holds no record. Offset gaps and empty
//!   batches need nothing special: the read continues at each batch's
//!   last offset + 1. Replay still reads the whole (compacted) log.
//!
//! # References
//! Kafka's `GroupCoordinator.scala`, `GroupMetadataManager.scala`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Buf;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use sluice_protocol::{BatchIter, BatchRecords, RecordBatchView};
use tokio::sync::oneshot;

use super::error::{GroupError, OffsetsStorageFault};
use super::group::{
    Group, GroupLimits, GroupState, JoinRequest, JoinResult, Output, Reply, SyncRequest, SyncResult,
};
use super::limits::{
    COMMIT_TIMEOUT_MS, GROUPS_MAX, ID_BYTES_MAX, MEMBERS_MAX, REPLAY_RECORDS_BYTES_MAX,
};
use super::offsets::{CommittedOffset, OffsetTable};
use super::records::{
    GroupMetadataValue, MemberMetadata, OFFSETS_TOPIC, OffsetsRecord, build_batch, partition_for,
};
use crate::config::DurabilityMode;
use crate::error::BrokerError;
use crate::metadata::MetadataImage;
use crate::replica::{Partition, ReplicaManager};

/// The coordinator's settings (broker config).
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    pub limits: GroupLimits,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
}

/// A JoinGroup or SyncGroup answer: now, or when the rebalance gets there.
pub enum Waiting<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

impl<T> Waiting<T> {
    /// Resolves the answer; a waiter dropped without an answer (the
    /// coordinator stopped) reads as `gone`.
    pub async fn resolve(self, gone: T) -> T {
        match self {
            Self::Now(t) => t,
            Self::Later(rx) => rx.await.unwrap_or(gone),
        }
    }
}

/// A record batch appended to an offsets partition.
struct Written {
    partition: Arc<Partition>,
    last_offset: i64,
    /// The offsets partition's leader epoch at the append.
    leader_epoch: i32,
}

/// Where an offsets partition led by this node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Loading,
    Loaded,
}

/// Records of an OffsetCommit, appended and waiting to become durable.
pub struct Durable(Written);

impl Durable {
    /// Resolves once the records are below the high watermark (replicated
    /// to the ISR), or after `offsets.commit.timeout.ms`. If this node
    /// stops leading the offsets partition first, the commit fails with
    /// COORDINATOR_NOT_AVAILABLE: the offsets waited for may by then hold
    /// the new leader's records, and the client commits again there.
    pub async fn wait(self) -> Result<(), GroupError> {
        let w = self.0;
        let timeout = Duration::from_millis(COMMIT_TIMEOUT_MS);
        let deposed = |p: &crate::replica::Progress| p.leader_epoch != w.leader_epoch;
        match tokio::time::timeout(
            timeout,
            w.partition
                .wait_for_progress(|p| p.high_watermark > w.last_offset || p.failed || deposed(p)),
        )
        .await
        {
            Ok(p) if deposed(&p) => Err(GroupError::CoordinatorNotAvailable),
            Ok(p) if !p.failed => Ok(()),
            Ok(_) => Err(OffsetsStorageFault::PartitionFailed.into()),
            Err(_) => Err(GroupError::RequestTimedOut),
        }
    }
}

struct Entry {
    group: Group,
    offsets: OffsetTable,
    /// A group metadata record exists for this group in the log.
    stored: bool,
    joins: HashMap<String, oneshot::Sender<JoinResult>>,
    syncs: HashMap<String, oneshot::Sender<SyncResult>>,
}

#[derive(Default)]
struct State {
    groups: HashMap<String, Entry>,
    members_total: usize,
    last_retention_ms: i64,
}

/// What survives a restart, for comparing a live coordinator with one
/// rebuilt from the log: per group, the stored (generation, protocol type)
/// and the committed offsets.
pub type DurableView = BTreeMap<String, (Option<(i32, Option<String>)>, OffsetTable)>;

/// The group coordinator. See the module docs.
pub struct Coordinator {
    config: GroupConfig,
    partitions: std::sync::atomic::AtomicI32,
    state: Mutex<State>,
    /// The offsets partitions this node leads, by index. Taken before, never
    /// while holding, the state lock.
    owned: Mutex<HashMap<i32, Load>>,
    /// Serialises leadership changes (start-up load and the reconciler).
    following: Mutex<()>,
    loaded: AtomicBool,
    stopped: AtomicBool,
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Self {
        Self {
            config,
            partitions: std::sync::atomic::AtomicI32::new(1),
            state: Mutex::new(State::default()),
            owned: Mutex::new(HashMap::new()),
            following: Mutex::new(()),
            loaded: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Partitions of `__consumer_offsets` (known once loaded).
    pub fn offsets_partitions(&self) -> i32 {
        self.partitions.load(Ordering::Acquire)
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, GroupError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if !self.loaded.load(Ordering::Acquire) {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        self.state
            .lock()
            .map_err(|_| GroupError::CoordinatorNotAvailable)
    }

    /// The state lock, for a request about `group_id`: NOT_COORDINATOR
    /// unless this node leads the group's offsets partition and has loaded
    /// it, COORDINATOR_LOAD_IN_PROGRESS while it loads.
    fn lock_group(&self, group_id: &str) -> Result<MutexGuard<'_, State>, GroupError> {
        let index = partition_for(group_id, self.offsets_partitions());
        let load = self
            .owned
            .lock()
            .map_err(|_| GroupError::CoordinatorNotAvailable)?
            .get(&index)
            .copied();
        match load {
            Some(Load::Loaded) => self.lock(),
            Some(Load::Loading) => Err(GroupError::CoordinatorLoadInProgress),
            None if !self.loaded.load(Ordering::Acquire) => {
                Err(GroupError::CoordinatorLoadInProgress)
            }
            None => Err(GroupError::NotCoordinator),
        }
    }

    /// Whether requests about `group_id` can be served here now
    /// (FindCoordinator, when the image names this node).
    pub fn check_available(&self, group_id: &str) -> Result<(), GroupError> {
        self.lock_group(group_id).map(drop)
    }

    /// Stops serving (broker shutdown): parked requests are dropped, and
    /// later calls answer COORDINATOR_NOT_AVAILABLE.
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Ok(mut state) = self.state.lock() {
            for entry in state.groups.values_mut() {
                entry.joins.clear();
                entry.syncs.clear();
            }
        }
    }

    // ---- loading ---------------------------------------------------------

    /// Starts coordinating: `__consumer_offsets` has `partitions`
    /// partitions, and the groups of those this node leads are rebuilt by
    /// replaying them (groups come back `Empty`). Returns the groups
    /// loaded. Blocking (reads the logs): call it off the reactor.
    pub fn load(&self, replicas: &ReplicaManager, partitions: i32) -> Result<usize, BrokerError> {
        self.partitions.store(partitions.max(1), Ordering::Release);
        self.loaded.store(true, Ordering::Release);
        self.follow_leadership(replicas)?;
        let groups = self.lock().map(|s| s.groups.len()).unwrap_or(0);
        tracing::info!(partitions, groups, "group coordinator started");
        Ok(groups)
    }

    /// Loads the offsets partitions this node now leads and unloads those
    /// it no longer leads (the reconciler calls it after each image). The
    /// first failure is returned; the partition stays unloaded and is
    /// tried again at the next call. Blocking.
    pub fn follow_leadership(&self, replicas: &ReplicaManager) -> Result<(), BrokerError> {
        if !self.loaded.load(Ordering::Acquire) {
            return Ok(());
        }
        let _serial = self
            .following
            .lock()
            .map_err(|_| BrokerError::StatePoisoned)?;
        let mut first_error = None;
        for index in 0..self.offsets_partitions() {
            let leads = replicas
                .partition(OFFSETS_TOPIC, index)
                .and_then(|p| p.role().ok())
                .is_some_and(|r| r.is_leader());
            let owned = self
                .owned
                .lock()
                .map_err(|_| BrokerError::StatePoisoned)?
                .contains_key(&index);
            if leads && !owned {
                if let Err(e) = self.load_partition(replicas, index) {
                    tracing::error!(partition = index, error = %e, "loading the groups of an offsets partition failed");
                    first_error.get_or_insert(e);
                }
            } else if !leads && owned {
                self.unload_partition(index)?;
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Replays offsets partition `index` into the live state (replacing
    /// whatever of it was there), marked `Loading` meanwhile.
    fn load_partition(&self, replicas: &ReplicaManager, index: i32) -> Result<(), BrokerError> {
        let set = |load: Option<Load>| -> Result<(), BrokerError> {
            let mut owned = self.owned.lock().map_err(|_| BrokerError::StatePoisoned)?;
            match load {
                Some(l) => owned.insert(index, l),
                None => owned.remove(&index),
            };
            Ok(())
        };
        set(Some(Load::Loading))?;
        let mut fresh = State::default();
        let replayed = replicas
            .partition_or_error(OFFSETS_TOPIC, index)
            .and_then(|partition| {
                replay_partition(&partition, &mut |record| {
                    self.apply_replayed(&mut fresh, record)
                })
            });
        let records = match replayed {
            Ok(n) => n,
            Err(e) => {
                set(None)?;
                return Err(e);
            }
        };
        let partitions = self.offsets_partitions();
        let groups = fresh.groups.len();
        let mut live = self.state.lock().map_err(|_| BrokerError::StatePoisoned)?;
        live.groups
            .retain(|id, _| partition_for(id, partitions) != index);
        live.groups.extend(fresh.groups);
        live.members_total = live.groups.values().map(|e| e.group.size()).sum();
        drop(live);
        set(Some(Load::Loaded))?;
        tracing::info!(
            partition = index,
            records,
            groups,
            "groups of an offsets partition loaded: this node is their coordinator"
        );
        Ok(())
    }

    /// Drops the groups of offsets partition `index` (this node stopped
    /// leading it); their parked JoinGroup/SyncGroup requests are answered
    /// as the coordinator being gone, and their members find the new
    /// coordinator.
    fn unload_partition(&self, index: i32) -> Result<(), BrokerError> {
        self.owned
            .lock()
            .map_err(|_| BrokerError::StatePoisoned)?
            .remove(&index);
        let partitions = self.offsets_partitions();
        let mut live = self.state.lock().map_err(|_| BrokerError::StatePoisoned)?;
        let before = live.groups.len();
        live.groups
            .retain(|id, _| partition_for(id, partitions) != index);
        live.members_total = live.groups.values().map(|e| e.group.size()).sum();
        let dropped = before - live.groups.len();
        drop(live);
        tracing::info!(
            partition = index,
            groups = dropped,
            "groups of an offsets partition unloaded: another node coordinates them"
        );
        Ok(())
    }

    fn apply_replayed(&self, state: &mut State, record: OffsetsRecord) {
        match record {
            OffsetsRecord::OffsetCommit {
                group,
                topic,
                partition,
                value,
            } => {
                let entry = self.entry_for_replay(state, &group);
                match value {
                    Some(v) => entry.offsets.put(topic, partition, v.into()),
                    None => {
                        entry.offsets.remove(&topic, partition);
                    }
                }
                forget_if_unused(state, &group);
            }
            OffsetsRecord::GroupMetadata { group, value: None } => {
                state.groups.remove(&group);
            }
            OffsetsRecord::GroupMetadata {
                group,
                value: Some(v),
            } => {
                let protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
                let limits = self.config.limits;
                let entry = self.entry_for_replay(state, &group);
                entry.group = Group::restore(
                    group,
                    limits,
                    v.generation,
                    protocol_type,
                    v.current_state_timestamp_ms,
                );
                entry.stored = true;
            }
        }
    }

    fn entry_for_replay<'s>(&self, state: &'s mut State, group: &str) -> &'s mut Entry {
        let limits = self.config.limits;
        state
            .groups
            .entry(group.to_string())
            .or_insert_with(|| new_entry(group, limits, -1))
    }

    // ---- membership ------------------------------------------------------

    pub async fn join(
        &self,
        replicas: &ReplicaManager,
        group_id: &str,
        req: JoinRequest,
        now_ms: i64,
    ) -> Waiting<JoinResult> {
        let new_member = req.member_id.is_empty();
        let result = self.with_group(replicas, group_id, true, now_ms, |state, entry, out| {
            if new_member && state_members(state) >= MEMBERS_MAX {
                return Waiting::Now(Err(GroupError::LimitExceeded(format!(
                    "the broker already holds {MEMBERS_MAX} group members"
                ))));
            }
            match entry.group.join(req, now_ms, out) {
                Reply::Now(r) => Waiting::Now(r),
                Reply::Wait { member_id } => {
                    let (tx, rx) = oneshot::channel();
                    if let Some(old) = entry.joins.insert(member_id, tx) {
                        let _ = old.send(Err(GroupError::RebalanceInProgress));
                    }
                    Waiting::Later(rx)
                }
            }
        });
        self.finish(replicas, result)
            .await
            .unwrap_or_else(|e| Waiting::Now(Err(e)))
    }

    pub async fn sync(
        &self,
        replicas: &ReplicaManager,
        group_id: &str,
        req: SyncRequest,
        now_ms: i64,
    ) -> Waiting<SyncResult> {
        let member_id = req.member_id.clone();
        let result = self.with_group(
            replicas,
            group_id,
            false,
            now_ms,
            |_, entry, out| match entry.group.sync(req, now_ms, out) {
                Reply::Now(r) => Waiting::Now(r),
                Reply::Wait { member_id } => {
                    let (tx, rx) = oneshot::channel();
                    if let Some(old) = entry.syncs.insert(member_id, tx) {
                        let _ = old.send(Err(GroupError::RebalanceInProgress));
                    }
                    Waiting::Later(rx)
                }
            },
        );
        match self.finish(replicas, result).await {
            Ok(w) => w,
            Err(GroupError::GroupIdNotFound(_)) => {
                Waiting::Now(Err(GroupError::UnknownMemberId(member_id)))
            }
            Err(e) => Waiting::Now(Err(e)),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let mut state = self.lock_group(group_id)?;
        let entry = state
            .groups
            .get_mut(group_id)
            .ok_or_else(|| GroupError::UnknownMemberId(member_id.to_string()))?;
        entry
            .group
            .heartbeat(member_id, group_instance_id, generation_id, now_ms)
    }

    /// LeaveGroup for several members; one result per member, in order.
    pub async fn leave(
        &self,
        replicas: &ReplicaManager,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> Result<Vec<Result<String, GroupError>>, GroupError> {
        let result = self.with_group(replicas, group_id, false, now_ms, |_, entry, out| {
            members
                .iter()
                .map(|(id, instance)| entry.group.leave(id, instance.as_deref(), now_ms, out))
                .collect()
        });
        match self.finish(replicas, result).await {
            Err(GroupError::GroupIdNotFound(_)) => Ok(members
                .iter()
                .map(|(id, _)| Err(GroupError::UnknownMemberId(id.clone())))
                .collect()),
            other => other,
        }
    }

    // ---- offsets ---------------------------------------------------------

    /// OffsetCommit: validates the member and appends one record per
    /// offset; the returned [`Durable`] resolves once they are durable, so
    /// the connection can go on reading requests meanwhile.
    pub async fn commit_offsets(
        &self,
        replicas: &ReplicaManager,
        group_id: &str,
        member: (&str, Option<&str>, i32),
        offsets: Vec<(String, i32, CommittedOffset)>,
        now_ms: i64,
    ) -> Result<Durable, GroupError> {
        let create = member.2 < 0;
        let written = {
            let mut state = self.lock_group(group_id)?;
            let state = &mut *state;
            if !state.groups.contains_key(group_id) && !create {
                return Err(GroupError::IllegalGeneration {
                    requested: member.2,
                    current: -1,
                });
            }
            let written = self.commit_locked(replicas, state, group_id, member, offsets, now_ms);
            forget_if_unused(state, group_id);
            written?
        };
        request_flush(replicas, &written.partition).await;
        Ok(Durable(written))
    }

    fn commit_locked(
        &self,
        replicas: &ReplicaManager,
        state: &mut State,
        group_id: &str,
        (member_id, instance_id, generation_id): (&str, Option<&str>, i32),
        offsets: Vec<(String, i32, CommittedOffset)>,
        now_ms: i64,
    ) -> Result<Written, GroupError> {
        let index = partition_for(group_id, self.offsets_partitions());
        let entry = self.entry(state, group_id, now_ms)?;
        promote_durable(replicas, index, entry);
        entry
            .group
            .validate_commit(member_id, instance_id, generation_id, now_ms)?;
        if entry
            .offsets
            .would_overflow(offsets.iter().map(|(t, p, _)| (t.as_str(), *p)))
        {
            return Err(GroupError::LimitExceeded(
                "too many committed partitions in one group".into(),
            ));
        }
        let records: Vec<OffsetsRecord> = offsets
            .iter()
            .map(|(topic, partition, c)| OffsetsRecord::OffsetCommit {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: Some(c.into()),
            })
            .collect();
        let written = self.append(replicas, group_id, &records, now_ms)?;
        for (topic, partition, c) in offsets {
            entry
                .offsets
                .put_pending(written.last_offset, topic, partition, c);
        }
        Ok(written)
    }

    /// OffsetFetch: the committed offsets of `topics` (all when `None`);
    /// `None` entries have no committed offset. Commits not yet durable are
    /// not shown.
    #[allow(clippy::type_complexity)]
    pub fn fetch_offsets(
        &self,
        replicas: &ReplicaManager,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>, GroupError> {
        let mut state = self.lock_group(group_id)?;
        let index = partition_for(group_id, self.offsets_partitions());
        if let Some(entry) = state.groups.get_mut(group_id) {
            promote_durable(replicas, index, entry);
        }
        let table = state.groups.get(group_id).map(|e| &e.offsets);
        let Some(topics) = topics else {
            let mut all: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> = BTreeMap::new();
            for (topic, partition, c) in table.into_iter().flat_map(OffsetTable::iter) {
                all.entry(topic.to_string())
                    .or_default()
                    .push((partition, Some(c.clone())));
            }
            return Ok(all.into_iter().collect());
        };
        Ok(topics
            .into_iter()
            .map(|(topic, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| (p, table.and_then(|t| t.get(&topic, p)).cloned()))
                    .collect();
                (topic, found)
            })
            .collect())
    }

    /// OffsetDelete: removes offsets of topics no member is subscribed to.
    pub async fn delete_offsets(
        &self,
        replicas: &ReplicaManager,
        group_id: &str,
        partitions: Vec<(String, i32)>,
        now_ms: i64,
    ) -> Result<Vec<(String, i32, Result<(), GroupError>)>, GroupError> {
        let (results, written) = {
            let mut state = self.lock_group(group_id)?;
            let entry = state
                .groups
                .get_mut(group_id)
                .filter(|e| e.group.state() != GroupState::Dead)
                .ok_or_else(|| GroupError::GroupIdNotFound(group_id.to_string()))?;
            let subscribed = subscribed_topics(&entry.group);
            let mut results = Vec::with_capacity(partitions.len());
            let mut records = Vec::new();
            for (topic, partition) in partitions {
                if subscribed.contains(&topic) {
                    let e = GroupError::GroupSubscribedToTopic(topic.clone());
                    results.push((topic, partition, Err(e)));
                    continue;
                }
                if entry.offsets.get(&topic, partition).is_some() {
                    records.push(OffsetsRecord::OffsetCommit {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition,
                        value: None,
                    });
                }
                results.push((topic, partition, Ok(())));
            }
            let written = if records.is_empty() {
                None
            } else {
                let w = self.append(replicas, group_id, &records, now_ms)?;
                apply_tombstones(entry, &records);
                Some(w)
            };
            forget_if_unused(&mut state, group_id);
            (results, written)
        };
        if let Some(w) = written {
            request_flush(replicas, &w.partition).await;
            Durable(w).wait().await?;
        }
        Ok(results)
    }

    /// DeleteGroups for one group: only an `Empty` group can be deleted; its
    /// offsets and metadata get tombstones.
    pub async fn delete_group(
        &self,
        replicas: &ReplicaManager,
        group_id: &str,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let written = {
            let mut state = self.lock_group(group_id)?;
            let entry = state
                .groups
                .get_mut(group_id)
                .filter(|e| e.group.state() != GroupState::Dead)
                .ok_or_else(|| GroupError::GroupIdNotFound(group_id.to_string()))?;
            if entry.group.state() != GroupState::Empty {
                return Err(GroupError::NonEmptyGroup);
            }
            let records = group_tombstones(group_id, entry);
            let written = self.append(replicas, group_id, &records, now_ms)?;
            let mut out = Vec::new();
            entry.group.mark_dead(now_ms, &mut out);
            state.groups.remove(group_id);
            written
        };
        request_flush(replicas, &written.partition).await;
        Durable(written).wait().await
    }

    // ---- inspection --------------------------------------------------------

    /// Runs `f` on the group (`None` if unknown), under the lock.
    pub fn inspect<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(Option<&Group>) -> T,
    ) -> Result<T, GroupError> {
        let state = self.lock_group(group_id)?;
        Ok(f(state.groups.get(group_id).map(|e| &e.group)))
    }

    /// Runs `f` on every group, under the lock.
    pub fn list<T>(
        &self,
        f: impl FnOnce(&mut dyn Iterator<Item = &Group>) -> T,
    ) -> Result<T, GroupError> {
        let state = self.lock()?;
        let mut groups = state.groups.values().map(|e| &e.group);
        Ok(f(&mut groups))
    }

    /// Durable committed offsets as (group, topic, partition, offset), at
    /// most `limit` of them in group order (the lag metric's input). As
    /// for OffsetFetch, commits that became durable are promoted first;
    /// those still waiting are not counted.
    pub fn committed_offsets(
        &self,
        replicas: &ReplicaManager,
        limit: usize,
    ) -> Result<Vec<(String, String, i32, i64)>, GroupError> {
        let mut state = self.lock()?;
        let partitions = self.offsets_partitions();
        for (id, entry) in state.groups.iter_mut() {
            promote_durable(replicas, partition_for(id, partitions), entry);
        }
        let mut groups: Vec<(&String, &Entry)> = state.groups.iter().collect();
        groups.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Ok(groups
            .into_iter()
            .flat_map(|(id, e)| {
                e.offsets.iter().map(move |(topic, partition, c)| {
                    (id.clone(), topic.to_string(), partition, c.offset)
                })
            })
            .take(limit)
            .collect())
    }

    /// What a restart would rebuild from the log (see [`DurableView`]).
    pub fn durable_view(&self) -> Result<DurableView, GroupError> {
        let state = self.lock()?;
        Ok(state
            .groups
            .iter()
            .filter(|(_, e)| e.stored || !e.offsets.is_empty())
            .map(|(id, e)| {
                let stored = e.stored.then(|| {
                    (
                        e.group.generation_id(),
                        e.group.protocol_type().map(str::to_string),
                    )
                });
                (id.clone(), (stored, e.offsets.with_pending_applied()))
            })
            .collect())
    }

    // ---- timers ------------------------------------------------------------

    /// Advances every group's timers to `now_ms`, and every
    /// `offsets.retention.check.interval.ms` removes expired offsets and
    /// the offsets of topics `image` no longer has.
    pub async fn tick(&self, replicas: &ReplicaManager, image: &MetadataImage, now_ms: i64) {
        let written = match self.tick_locked(replicas, image, now_ms) {
            Ok(w) => w,
            Err(GroupError::CoordinatorLoadInProgress | GroupError::CoordinatorNotAvailable) => {
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "group coordinator tick failed");
                return;
            }
        };
        for w in written {
            request_flush(replicas, &w.partition).await;
        }
    }

    fn tick_locked(
        &self,
        replicas: &ReplicaManager,
        image: &MetadataImage,
        now_ms: i64,
    ) -> Result<Vec<Written>, GroupError> {
        let mut state = self.lock()?;
        let state = &mut *state;
        let retention_due = now_ms
            >= state
                .last_retention_ms
                .saturating_add(self.config.offsets_retention_check_interval_ms);
        if retention_due {
            state.last_retention_ms = now_ms;
        }
        let ids: Vec<String> = state.groups.keys().cloned().collect();
        let mut written = Vec::new();
        for id in ids {
            let Some(entry) = state.groups.get_mut(&id) else {
                continue;
            };
            promote_durable(
                replicas,
                partition_for(&id, self.offsets_partitions()),
                entry,
            );
            let before = entry.group.size();
            let mut out = Vec::new();
            entry.group.tick(now_ms, &mut out);
            let mut records = self.dispatch(&id, entry, out);
            if retention_due {
                records.extend(self.expired_offsets(&id, entry, image, now_ms));
            }
            adjust_members(&mut state.members_total, before, entry.group.size());
            if !records.is_empty() {
                match self.append(replicas, &id, &records, now_ms) {
                    Ok(w) => {
                        if let Some(entry) = state.groups.get_mut(&id) {
                            apply_tombstones(entry, &records);
                        }
                        written.push(w);
                    }
                    Err(e) => {
                        tracing::error!(group = %id, error = %e, "cannot write group records")
                    }
                }
            }
            forget_if_unused(state, &id);
        }
        Ok(written)
    }

    /// Tombstones for offsets past retention or of deleted topics, and for
    /// the group itself once it is empty with no offsets left.
    fn expired_offsets(
        &self,
        group_id: &str,
        entry: &Entry,
        image: &MetadataImage,
        now_ms: i64,
    ) -> Vec<OffsetsRecord> {
        let g = &entry.group;
        let empty_since = (g.state() == GroupState::Empty).then(|| g.state_timestamp_ms());
        let mut gone: HashSet<(String, i32)> = entry
            .offsets
            .expired(
                now_ms,
                self.config.offsets_retention_ms,
                empty_since,
                g.protocol_type().is_some(),
            )
            .into_iter()
            .collect();
        gone.extend(
            entry
                .offsets
                .iter()
                .filter(|(t, p, _)| {
                    image
                        .topic(t)
                        .is_none_or(|topic| topic.partition(*p).is_none())
                })
                .map(|(t, p, _)| (t.to_string(), p)),
        );
        let mut records: Vec<OffsetsRecord> = gone
            .into_iter()
            .map(|(topic, partition)| OffsetsRecord::OffsetCommit {
                group: group_id.to_string(),
                topic,
                partition,
                value: None,
            })
            .collect();
        let all_gone = records.len() == entry.offsets.len() && entry.offsets.pending_len() == 0;
        if entry.stored
            && all_gone
            && empty_since.is_some_and(|since| {
                now_ms >= since.saturating_add(self.config.offsets_retention_ms)
            })
        {
            records.push(OffsetsRecord::GroupMetadata {
                group: group_id.to_string(),
                value: None,
            });
        }
        records
    }

    // ---- plumbing ------------------------------------------------------------

    /// Runs `f` on the group under the lock, then answers parked requests
    /// and appends the records the outputs ask for.
    fn with_group<T>(
        &self,
        replicas: &ReplicaManager,
        group_id: &str,
        create: bool,
        now_ms: i64,
        f: impl FnOnce(&State, &mut Entry, &mut Vec<Output>) -> T,
    ) -> Result<(T, Option<Written>), GroupError> {
        if group_id.is_empty() || group_id.len() > ID_BYTES_MAX {
            return Err(GroupError::InvalidGroupId(group_id.to_string()));
        }
        let mut state = self.lock_group(group_id)?;
        let state = &mut *state;
        if !create && !state.groups.contains_key(group_id) {
            return Err(GroupError::GroupIdNotFound(group_id.to_string()));
        }
        // Take the entry out so `f` may read the rest of the state.
        let mut entry = match state.groups.remove(group_id) {
            Some(e) => e,
            None if state.groups.len() >= GROUPS_MAX => {
                return Err(GroupError::LimitExceeded(format!(
                    "the broker already holds {GROUPS_MAX} groups"
                )));
            }
            None => new_entry(group_id, self.config.limits, now_ms),
        };
        let before = entry.group.size();
        let mut out = Vec::new();
        let value = f(state, &mut entry, &mut out);
        let records = self.dispatch(group_id, &mut entry, out);
        adjust_members(&mut state.members_total, before, entry.group.size());
        state.groups.insert(group_id.to_string(), entry);
        let written = if records.is_empty() {
            None
        } else {
            match self.append(replicas, group_id, &records, now_ms) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::error!(group = group_id, error = %e, "cannot store group metadata");
                    None
                }
            }
        };
        forget_if_unused(state, group_id);
        Ok((value, written))
    }

    async fn finish<T>(
        &self,
        replicas: &ReplicaManager,
        result: Result<(T, Option<Written>), GroupError>,
    ) -> Result<T, GroupError> {
        let (value, written) = result?;
        if let Some(w) = written {
            request_flush(replicas, &w.partition).await;
        }
        Ok(value)
    }

    /// Answers parked requests; returns the records the outputs ask for.
    fn dispatch(&self, group_id: &str, entry: &mut Entry, out: Vec<Output>) -> Vec<OffsetsRecord> {
        let mut store = false;
        for o in out {
            match o {
                Output::Joined { member_id, result } => {
                    if let Some(tx) = entry.joins.remove(&member_id) {
                        let _ = tx.send(result);
                    }
                }
                Output::Synced { member_id, result } => {
                    if let Some(tx) = entry.syncs.remove(&member_id) {
                        let _ = tx.send(result);
                    }
                }
                Output::Store => store = true,
            }
        }
        if !store {
            return Vec::new();
        }
        entry.stored = true;
        vec![OffsetsRecord::GroupMetadata {
            group: group_id.to_string(),
            value: Some(metadata_value(&entry.group)),
        }]
    }

    fn entry<'s>(
        &self,
        state: &'s mut State,
        group_id: &str,
        now_ms: i64,
    ) -> Result<&'s mut Entry, GroupError> {
        if group_id.is_empty() || group_id.len() > ID_BYTES_MAX {
            return Err(GroupError::InvalidGroupId(group_id.to_string()));
        }
        if !state.groups.contains_key(group_id) && state.groups.len() >= GROUPS_MAX {
            return Err(GroupError::LimitExceeded(format!(
                "the broker already holds {GROUPS_MAX} groups"
            )));
        }
        let limits = self.config.limits;
        Ok(state
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| new_entry(group_id, limits, now_ms)))
    }

    /// Appends `records` as one batch to the group's offsets partition.
    fn append(
        &self,
        replicas: &ReplicaManager,
        group_id: &str,
        records: &[OffsetsRecord],
        now_ms: i64,
    ) -> Result<Written, GroupError> {
        let index = partition_for(group_id, self.offsets_partitions());
        let partition = replicas
            .partition(OFFSETS_TOPIC, index)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        let encode = |e: String| GroupError::from(OffsetsStorageFault::Encode(e));
        let batch = build_batch(records, now_ms).map_err(|e| encode(e.to_string()))?;
        let view =
            RecordBatchView::parse(&batch, batch.len()).map_err(|e| encode(e.to_string()))?;
        // The records must form exactly one batch: one append, one offset
        // range, all or nothing.
        if view.size() != batch.len() {
            return Err(encode("more than one batch".into()));
        }
        let outcome = partition
            .append_as_leader(&view, now_ms, None)
            .map_err(|e| GroupError::from(OffsetsStorageFault::append(&e)))?;
        Ok(Written {
            partition,
            last_offset: outcome.last_offset,
            leader_epoch: outcome.leader_epoch,
        })
    }
}

/// Makes the group's pending commits below its offsets partition's high
/// watermark visible. A failed partition promotes nothing, ever.
fn promote_durable(replicas: &ReplicaManager, index: i32, entry: &mut Entry) {
    if entry.offsets.pending_len() == 0 {
        return;
    }
    if let Some(partition) = replicas.partition(OFFSETS_TOPIC, index) {
        let progress = partition.progress();
        if !progress.failed {
            entry.offsets.promote_below(progress.high_watermark);
        }
    }
}

async fn request_flush(replicas: &ReplicaManager, partition: &Arc<Partition>) {
    if replicas.durability() == DurabilityMode::Fsync {
        replicas.flusher().request(partition).await;
    }
}

fn new_entry(group_id: &str, limits: GroupLimits, now_ms: i64) -> Entry {
    Entry {
        group: Group::new(group_id.to_string(), limits, now_ms),
        offsets: OffsetTable::default(),
        stored: false,
        joins: HashMap::new(),
        syncs: HashMap::new(),
    }
}

fn state_members(state: &State) -> usize {
    state.members_total
}

fn adjust_members(total: &mut usize, before: usize, after: usize) {
    *total = total.saturating_sub(before).saturating_add(after);
}

/// Drops a group that holds nothing: no members or pending ids, no
/// offsets, no stored metadata (a refused first join, say).
fn forget_if_unused(state: &mut State, group_id: &str) {
    if state.groups.get(group_id).is_some_and(|e| {
        !e.stored && e.offsets.is_empty() && e.group.size() == 0 && e.joins.is_empty()
    }) {
        state.groups.remove(group_id);
    }
}

fn apply_tombstones(entry: &mut Entry, records: &[OffsetsRecord]) {
    for r in records {
        match r {
            OffsetsRecord::OffsetCommit {
                topic,
                partition,
                value: None,
                ..
            } => {
                entry.offsets.remove(topic, *partition);
            }
            OffsetsRecord::GroupMetadata { value: None, .. } => entry.stored = false,
            _ => {}
        }
    }
}

fn group_tombstones(group_id: &str, entry: &Entry) -> Vec<OffsetsRecord> {
    let mut records: Vec<OffsetsRecord> = entry
        .offsets
        .iter()
        .map(|(topic, partition, _)| OffsetsRecord::OffsetCommit {
            group: group_id.to_string(),
            topic: topic.to_string(),
            partition,
            value: None,
        })
        .collect();
    records.push(OffsetsRecord::GroupMetadata {
        group: group_id.to_string(),
        value: None,
    });
    records
}

fn metadata_value(g: &Group) -> GroupMetadataValue {
    GroupMetadataValue {
        protocol_type: g.protocol_type().unwrap_or_default().to_string(),
        generation: g.generation_id(),
        protocol: g.protocol_name().map(str::to_string),
        leader: g.leader_id().map(str::to_string),
        current_state_timestamp_ms: g.state_timestamp_ms(),
        members: g
            .members()
            .map(|m| MemberMetadata {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
            })
            .collect(),
    }
}

/// Topics the members of a `consumer` group subscribe to, read from their
/// metadata for the group's protocol (ConsumerProtocolSubscription).
fn subscribed_topics(group: &Group) -> HashSet<String> {
    let mut topics = HashSet::new();
    if group.protocol_type() != Some("consumer") {
        return topics;
    }
    let protocol = group.protocol_name().unwrap_or_default();
    for m in group.members() {
        let mut bytes = m.metadata_for(protocol);
        if bytes.remaining() < 2 {
            continue;
        }
        let version = bytes.get_i16();
        if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut bytes, version.clamp(0, 3)) {
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
    }
    topics
}

/// Feeds every record of one offsets partition to `apply`, in log order,
/// up to its log end (see `Partition::read_to_log_end`).
fn replay_partition(
    partition: &Partition,
    apply: &mut dyn FnMut(OffsetsRecord),
) -> Result<usize, BrokerError> {
    let mut next = partition.progress().log_start_offset;
    let mut count = 0usize;
    loop {
        let read = partition.read_to_log_end(next, 16 * 1024 * 1024)?;
        if read.regions.is_empty() {
            return Ok(count);
        }
        let before = next;
        for region in &read.regions {
            let bytes = region.bytes();
            for item in BatchIter::new(&bytes, REPLAY_RECORDS_BYTES_MAX) {
                let Ok((_, view)) = item else { break };
                next = view.last_offset() + 1;
                count += replay_batch(view, partition, apply);
            }
        }
        if next <= before {
            return Ok(count);
        }
    }
}

fn replay_batch(
    view: RecordBatchView<'_>,
    partition: &Partition,
    apply: &mut dyn FnMut(OffsetsRecord),
) -> usize {
    if view.is_control() {
        return 0;
    }
    let base_offset = view.base_offset();
    let records = match BatchRecords::new(view, REPLAY_RECORDS_BYTES_MAX) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(partition = partition.index(), base_offset, error = %e, "unreadable __consumer_offsets batch skipped");
            return 0;
        }
    };
    let mut count = 0;
    for record in records.iter() {
        let Ok(record) = record else { break };
        let Some(key) = record.key else { continue };
        match OffsetsRecord::decode(key, record.value) {
            Ok(Some(r)) => {
                apply(r);
                count += 1;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(partition = partition.index(), base_offset, error = %e, "malformed __consumer_offsets record skipped");
            }
        }
    }
    count
}
