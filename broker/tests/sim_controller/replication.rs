//! Partition replication inside the simulation (issue 15): every node
//! hosts its replicas of topic [`TOPIC`] (RF 3, `min.insync.replicas` 2)
//! as its own metadata image assigns them, and the production code moves
//! the data:
//!
//! - replicas are real [`Partition`]s over real `PartitionLog`s in a temp
//!   dir, given their roles by [`Partition::apply_role`] from each node's
//!   image (as `ReplicaManager::reconcile` does, on every image change);
//! - a leader answers follower fetches with [`Partition::read_for_follower`]
//!   (the handler's call, with the leader node's image for eligibility),
//!   encoded as the Fetch answer's `PartitionData`;
//! - a follower reads that answer with [`fetcher_state::decide`] and acts as
//!   `replica::fetcher` does, through [`FollowingPartition`]
//!   (`append_fetched` + `observe_leader_high_watermark`,
//!   [`fetcher::truncate_by_epoch`], [`fetcher_state::out_of_range_reset`]),
//!   and only while it still follows at the fetch's leader epoch (the
//!   fetcher's `still_assigned`);
//! - ISR changes the leader computes (on fetches and in the maintenance
//!   pass, [`Partition::maybe_shrink_isr`]) travel as
//!   `MetadataRecord::IsrChanged` to the node it thinks is the active
//!   controller; one not applied in time has an unknown fate
//!   ([`Partition::isr_change_failed`]) and is sent again as it is while
//!   still pending, as `alter_partition` does on a timed-out proposal;
//! - an acks=all produce is appended with [`Partition::append_as_leader`]
//!   (which checks the ISR against `min.insync.replicas`), and counts as acknowledged
//!   only when [`acks_outcome`] (the produce handler's decision) says Done.
//!
//! Fetches, their answers and ISR proposals are messages on the simulation's
//! faulty network (dropped, delayed, reordered, cut), and a paused node
//! neither sends nor receives. As `server.rs` starts a node, its reconciler
//! and its own fetchers run from the start, but it takes produce requests
//! and follower fetches only once its registration applied and it is
//! unfenced. A crash is a kill -9
//! ([`Partition::simulate_crash`]: no flush, no checkpoint, no clean
//! marker; the written bytes stay in the page cache, so recovery runs on
//! the next open). Power loss of partition data is not simulated: with
//! `durability = page_cache` (the mode used here, so the high watermark
//! needs no flusher task) acks=all promises survival of kill -9 only
//! (`docs/durability.md`). The controller's Raft disk still loses its
//! unsynced bytes on every crash.
//!
//! Shortcuts, each a stand-in for a protocol round trip: an out-of-range
//! answer carries the leader's log start and end (the fetcher asks
//! ListOffsets for them); the flusher handle exists but is never driven
//! (page_cache mode does not wait for it).
//!
//! # Invariants, after every step
//! - every acknowledged record (values are unique) is at its offset on the
//!   leader and on every live member of the ISR of the active controller's
//!   image;
//! - a leader's high watermark never goes back within one leader epoch of
//!   one incarnation;
//! - two live replicas hold identical records below the smaller of their
//!   high watermarks, and a leader's high watermark never exceeds the log
//!   end offset of a live member of the ISR it knows.
//!
//! # High watermark at reopen
//! The broker reopens a replicated partition at the high watermark of its
//! checkpoint (`replica::hw_checkpoint`), clamped to its log end, or at its
//! log start when the checkpoint lacks it. The simulation does not model
//! the checkpoint file: a replica reopens as with it lost, at its log
//! start, the lowest the broker can start from. (Starting at the log end,
//! as Sluice once did, let a restarted leader acknowledge a retried batch
//! its ISR did not hold: `SLUICE_SEED=0` showed it here, and the fault test
//! lost records that way.)
//!
//! After healing: every replica of each partition holds the same log, and
//! every acknowledged record is in it at its offset, exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use sluice_broker::config::DurabilityMode;
use sluice_broker::handlers::produce::{AcksOutcome, Until, acks_outcome};
use sluice_broker::metadata::{BrokerId, MetadataImage, MetadataRecord, PartitionImage};
use sluice_broker::replica::fetcher::truncate_by_epoch;
use sluice_broker::replica::fetcher_follower::FollowerLog;
use sluice_broker::replica::fetcher_state::{
    FetchDecision, OutOfRangeReset, decide, out_of_range_reset, whole_batches_len,
};
use sluice_broker::replica::following::FollowingPartition;
use sluice_broker::replica::isr::IsrChangeFailure;
use sluice_broker::replica::{
    Flusher, FollowerFetch, FollowerRead, IsrChange, Partition, PartitionRole, ReplicaSet, Role,
};
use sluice_protocol::batch_builder::{self, ProducerIdentity};
use sluice_protocol::{BatchIter, CompressionType, RecordBatchView};
use sluice_storage::{LogConfig, PartitionLog};
use tokio::sync::Notify;

fn trace() -> bool {
    std::env::var_os("SLUICE_SIM_TRACE").is_some()
}

/// The replicated topic.
pub const TOPIC: &str = "r";
pub const PARTITIONS: i32 = 3;
pub const REPLICATION_FACTOR: usize = 3;
pub const MIN_INSYNC: usize = 2;
/// Simulated milliseconds per step (the partitions' clock).
pub const MS_PER_STEP: i64 = 10;
/// `replica.lag.time.max.ms`, in simulated milliseconds.
const LAG_MAX_MS: i64 = 600;
/// Steps after which a fetch with no answer is given up (socket timeout).
const FETCH_TIMEOUT_STEPS: u64 = 15;
/// Steps after which an ISR proposal not yet in the image is forgotten.
const ISR_PROPOSAL_TIMEOUT_STEPS: u64 = 60;
/// Steps an acks=all produce waits before it times out.
const PRODUCE_TIMEOUT_STEPS: u64 = 150;

/// One node's replicas, for one incarnation.
pub struct NodeData {
    flusher: Flusher,
    /// The image last applied to the roles.
    image: Option<Arc<MetadataImage>>,
    partitions: BTreeMap<i32, Arc<Partition>>,
    followers: BTreeMap<i32, Arc<FollowingPartition>>,
    /// Partition → step its fetch in flight was sent.
    fetching: BTreeMap<i32, u64>,
    /// Partition → the ISR change proposed and the step it was sent.
    proposals: BTreeMap<i32, (IsrChange, u64)>,
    /// Leader epoch → the highest high watermark seen while leading at it.
    leader_hw: BTreeMap<(i32, i32), i64>,
}

/// A message of the data plane.
pub enum DataMessage {
    Fetch {
        partition: i32,
        fetch: FollowerFetch,
        /// The step the follower sent it at: which of its fetches this is.
        sent_at: u64,
    },
    Answer {
        partition: i32,
        leader_epoch: i32,
        /// The offset the answered fetch asked from.
        fetch_offset: i64,
        /// The answered fetch's `sent_at`.
        sent_at: u64,
        data: PartitionData,
        leader_log_start: i64,
        leader_log_end: i64,
    },
    /// To the node the proposer thinks is the active controller.
    AlterIsr(MetadataRecord),
}

pub struct DataInFlight {
    pub at: u64,
    pub from: u64,
    pub to: u64,
    pub message: DataMessage,
}

/// An acks=all produce waiting for its answer.
pub struct WaitingProduce {
    pub node: u64,
    partition_index: i32,
    partition: Arc<Partition>,
    last_offset: i64,
    leader_epoch: i32,
    value: i64,
    deadline: u64,
}

fn log_config() -> LogConfig {
    LogConfig {
        // Small segments and indexes: rolls happen, files stay small.
        segment_bytes: 4 * 1024,
        segment_index_bytes: 4 * 1024,
        retention_ms: None,
        retention_bytes: None,
        ..LogConfig::default()
    }
}

/// The records `value` stands for: one record, `value` as its timestamp
/// (one record per batch, so a batch's base offset is the record's).
pub fn batch(value: i64) -> Bytes {
    let mut records = vec![batch_builder::record(
        value,
        None,
        Some(Bytes::from(value.to_be_bytes().to_vec())),
        [],
    )];
    batch_builder::encode_batch(
        &mut records,
        CompressionType::None,
        ProducerIdentity::NONE,
        -1,
    )
    .unwrap()
}

/// offset → value of every record in a replica's log.
pub fn contents(p: &Partition) -> BTreeMap<i64, i64> {
    let mut out = BTreeMap::new();
    for region in p.read_whole_log().unwrap_or_default() {
        let bytes = region.bytes();
        for item in BatchIter::new(&bytes, usize::MAX) {
            let Ok((_, view)) = item else { break };
            out.insert(view.base_offset(), view.base_timestamp());
        }
    }
    out
}

impl NodeData {
    pub fn new(flusher: Flusher) -> Self {
        Self {
            flusher,
            image: None,
            partitions: BTreeMap::new(),
            followers: BTreeMap::new(),
            fetching: BTreeMap::new(),
            proposals: BTreeMap::new(),
            leader_hw: BTreeMap::new(),
        }
    }

    pub fn partitions(&self) -> &BTreeMap<i32, Arc<Partition>> {
        &self.partitions
    }

    /// kill -9: every replica closed without flush or checkpoint.
    pub fn crash(self) {
        for p in self.partitions.values() {
            // The page cache keeps what was written: nothing is cut.
            drop(p.simulate_crash());
        }
    }

    /// Applies `image` to this node's replicas, as the reconciler does.
    pub fn reconcile(&mut self, me: u64, dir: &Path, image: &Arc<MetadataImage>, now_ms: i64) {
        if self.image.as_ref().is_some_and(|i| Arc::ptr_eq(i, image)) {
            return;
        }
        self.image = Some(Arc::clone(image));
        let Some(topic) = image.topic(TOPIC) else {
            return;
        };
        let me = me as BrokerId;
        for (index, part) in topic.partitions.iter().enumerate() {
            let index = index as i32;
            if !part.replicas.contains(&me) {
                continue;
            }
            let role = PartitionRole::from_image(me, part);
            let set = ReplicaSet::of(me, part, LAG_MAX_MS, now_ms);
            let p = match self.partitions.get(&index) {
                Some(p) => Arc::clone(p),
                None => {
                    let path = dir.join(format!("{TOPIC}-{index}-{}", topic.topic_id));
                    let log = PartitionLog::open(&path, log_config()).unwrap();
                    // The broker's high-watermark checkpoint is not
                    // modelled: a replica reopens as with it lost, its
                    // high watermark at its log start.
                    let start = log.log_start_offset().0;
                    let p = Arc::new(
                        Partition::new(
                            Arc::from(TOPIC),
                            index,
                            log,
                            DurabilityMode::PageCache,
                            Arc::new(Notify::new()),
                            role,
                            Some(start),
                        )
                        .unwrap(),
                    );
                    self.partitions.insert(index, Arc::clone(&p));
                    p
                }
            };
            if trace() {
                eprintln!(
                    "  node {me} p{index}: role {role:?} isr {:?} end {:?} hw {}",
                    part.isr,
                    p.log_end_offset(),
                    p.progress().high_watermark
                );
            }
            p.apply_role(role, &set).unwrap();
            match role.role {
                Role::Follower { leader } if leader >= 0 => {
                    let same = self
                        .followers
                        .get(&index)
                        .is_some_and(|f| Arc::ptr_eq(f.partition(), &p));
                    if !same {
                        self.followers.insert(
                            index,
                            Arc::new(FollowingPartition::new(
                                Arc::clone(&p),
                                self.flusher.clone(),
                            )),
                        );
                    }
                }
                _ => {
                    self.followers.remove(&index);
                }
            }
        }
    }
}

/// The follower's next Fetch of `index`, if it follows a leader and has
/// none in flight.
pub fn next_fetch(
    data: &mut NodeData,
    me: u64,
    index: i32,
    now: u64,
) -> Option<(u64, DataMessage)> {
    if data
        .fetching
        .get(&index)
        .is_some_and(|at| now < at + FETCH_TIMEOUT_STEPS)
    {
        return None;
    }
    let follower = data.followers.get(&index)?;
    let role = follower.partition().role().ok()?;
    let Role::Follower { leader } = role.role else {
        return None;
    };
    if leader < 0 || leader as u64 == me {
        return None;
    }
    let end = follower.log_end().ok()?;
    data.fetching.insert(index, now);
    Some((
        leader as u64,
        DataMessage::Fetch {
            partition: index,
            sent_at: now,
            fetch: FollowerFetch {
                follower: me as BrokerId,
                fetch_offset: end.log_end_offset,
                last_fetched_epoch: end.last_epoch.unwrap_or(-1),
                current_leader_epoch: role.leader_epoch.0,
                // Set by the leader from its image, as the handler does.
                follower_eligible: false,
                max_bytes: 1024,
                min_one_batch: true,
                now_ms: 0,
            },
        },
    ))
}

/// The leader side of a follower fetch: `Partition::read_for_follower`,
/// encoded as the answer's `PartitionData`; any ISR change to propose.
pub fn serve_fetch(
    data: &NodeData,
    image: &MetadataImage,
    index: i32,
    mut fetch: FollowerFetch,
    sent_at: u64,
    now_ms: i64,
) -> (DataMessage, Option<IsrChange>) {
    fetch.follower_eligible = image.is_unfenced(fetch.follower);
    fetch.now_ms = now_ms;
    let mut answer = PartitionData::default().with_partition_index(index);
    let (mut start, mut end) = (-1, -1);
    let mut change = None;
    match data.partitions.get(&index) {
        None => {
            answer.error_code = 6; // NOT_LEADER_OR_FOLLOWER
        }
        Some(p) => {
            if let Ok(e) = p.follower_end() {
                (start, end) = (e.log_start_offset, e.log_end_offset);
            }
            match p.read_for_follower(&fetch, |b| image.is_unfenced(b)) {
                Ok((FollowerRead::Records(read), c)) => {
                    change = c;
                    let mut bytes = BytesMut::new();
                    for r in &read.regions {
                        bytes.extend_from_slice(&r.bytes());
                    }
                    answer.high_watermark = read.high_watermark;
                    answer.log_start_offset = read.log_start_offset;
                    answer.records = Some(bytes.freeze());
                }
                Ok((
                    FollowerRead::Diverging {
                        epoch,
                        end_offset,
                        high_watermark,
                        log_start_offset,
                    },
                    _,
                )) => {
                    answer.high_watermark = high_watermark;
                    answer.log_start_offset = log_start_offset;
                    answer.diverging_epoch.epoch = epoch;
                    answer.diverging_epoch.end_offset = end_offset;
                }
                Err(e) => answer.error_code = e.error_code().code(),
            }
        }
    }
    (
        DataMessage::Answer {
            partition: index,
            leader_epoch: fetch.current_leader_epoch,
            fetch_offset: fetch.fetch_offset,
            sent_at,
            data: answer,
            leader_log_start: start,
            leader_log_end: end,
        },
        change,
    )
}

/// The follower applies a fetch answer, as `replica::fetcher` does, if it
/// still follows at the epoch it fetched at.
#[allow(clippy::too_many_arguments)]
pub fn apply_answer(
    data: &mut NodeData,
    index: i32,
    leader_epoch: i32,
    fetch_offset: i64,
    sent_at: u64,
    answer: &PartitionData,
    leader_log_start: i64,
    leader_log_end: i64,
) {
    // Only the answer to the fetch in flight counts: the real fetcher
    // sends one fetch at a time on a connection and, when one times out,
    // closes that connection, so an older fetch's answer (one given up on,
    // or one a previous incarnation sent) is never read. Its log end may
    // equal today's while holding other records (truncated and fetched
    // again), so the offset check below alone cannot tell.
    if data.fetching.get(&index) != Some(&sent_at) {
        return;
    }
    data.fetching.remove(&index);
    let Some(follower) = data.followers.get(&index) else {
        return;
    };
    let still = follower
        .partition()
        .role()
        .is_ok_and(|r| !r.is_leader() && r.leader_epoch.0 == leader_epoch);
    // An answer to a fetch from another log end (one sent by this node's
    // previous incarnation, whose connection died with it) says nothing
    // about this log: the fetcher has one fetch per partition in flight,
    // on one connection, and Kafka's drops an answer whose fetch offset
    // is no longer the partition's.
    let same_fetch = follower
        .log_end()
        .is_ok_and(|e| e.log_end_offset == fetch_offset);
    if !still || !same_fetch {
        return;
    }
    match decide(answer) {
        FetchDecision::Append {
            records,
            high_watermark,
        } => {
            let whole = whole_batches_len(&records);
            if let Some(batches) = records.get(..whole).filter(|b| !b.is_empty())
                && follower.append_fetched(batches).is_ok()
            {
                follower.observe_leader_high_watermark(high_watermark);
            }
        }
        FetchDecision::HighWatermark(hw) => follower.observe_leader_high_watermark(hw),
        FetchDecision::Diverging(leader) => {
            let before = follower.log_end().map(|e| (e.log_end_offset, e.last_epoch));
            let t = truncate_by_epoch(follower.as_ref(), leader);
            if trace() {
                eprintln!(
                    "  p{index}: diverging {leader:?} at epoch {leader_epoch}, own end {before:?} hw {} -> {t:?}",
                    follower.high_watermark()
                );
            }
        }
        FetchDecision::OutOfRange => {
            if leader_log_start < 0 {
                return;
            }
            if trace() {
                eprintln!(
                    "  p{index}: out of range, leader [{leader_log_start}, {leader_log_end})"
                );
            }
            if let Ok(own) = follower.log_end() {
                let _ = match out_of_range_reset(
                    leader_log_start,
                    leader_log_end,
                    own.log_end_offset,
                ) {
                    OutOfRangeReset::TruncateTo(o) => follower.truncate_to(o).map(|_| ()),
                    OutOfRangeReset::StartAt(o) => follower.truncate_fully_and_start_at(o),
                    OutOfRangeReset::Retry => Ok(()),
                };
            }
        }
        FetchDecision::Backoff(_) => {}
    }
}

/// Records an ISR change to propose; returns the record if none of this
/// partition is in flight.
pub fn isr_record(
    data: &mut NodeData,
    me: u64,
    index: i32,
    change: IsrChange,
    now: u64,
) -> MetadataRecord {
    let record = MetadataRecord::IsrChanged {
        topic: TOPIC.to_string(),
        partition: index,
        leader: me as BrokerId,
        leader_epoch: change.leader_epoch,
        partition_epoch: change.proposal.partition_epoch,
        isr: change.proposal.isr.clone(),
    };
    data.proposals.insert(index, (change, now));
    record
}

/// ISR proposals that did not land in time: their answer is lost, so, as
/// `alter_partition` does, each is sent again as it is while its partition
/// still has it pending. Returns the records to send again.
pub fn expire_proposals(data: &mut NodeData, me: u64, now: u64) -> Vec<MetadataRecord> {
    let expired: Vec<i32> = data
        .proposals
        .iter()
        .filter(|(_, (_, at))| now >= at + ISR_PROPOSAL_TIMEOUT_STEPS)
        .map(|(i, _)| *i)
        .collect();
    let mut again = Vec::new();
    for i in expired {
        if let (Some((change, _)), Some(p)) = (data.proposals.remove(&i), data.partitions.get(&i))
            && p.isr_change_failed(&change, IsrChangeFailure::Unknown)
        {
            again.push(isr_record(data, me, i, change, now));
        }
    }
    again
}

/// The maintenance pass of a leader: ISR members that stopped keeping up.
pub fn shrink_changes(data: &NodeData, now_ms: i64) -> Vec<(i32, IsrChange)> {
    data.partitions
        .iter()
        .filter_map(|(i, p)| p.maybe_shrink_isr(now_ms).ok().flatten().map(|c| (*i, c)))
        .collect()
}

/// An acks=all produce of `value` to this node's replica of `index`.
pub fn produce(
    data: &NodeData,
    node: u64,
    index: i32,
    value: i64,
    now: u64,
) -> Option<WaitingProduce> {
    let p = data.partitions.get(&index)?;
    let bytes = batch(value);
    let view = RecordBatchView::parse(&bytes, usize::MAX).unwrap();
    let outcome = p
        .append_as_leader(&view, now as i64 * MS_PER_STEP, Some(MIN_INSYNC))
        .ok()?;
    Some(WaitingProduce {
        node,
        partition_index: index,
        partition: Arc::clone(p),
        last_offset: outcome.last_offset,
        leader_epoch: outcome.leader_epoch,
        value,
        deadline: now + PRODUCE_TIMEOUT_STEPS,
    })
}

/// Where a waiting produce stands: `Some(true)` acknowledged, `Some(false)`
/// answered with an error (or timed out), `None` still waiting.
pub fn produce_answer(w: &WaitingProduce, now: u64) -> Option<bool> {
    let outcome = acks_outcome(
        &w.partition.progress(),
        Until::Replicated {
            min_insync: MIN_INSYNC,
        },
        w.last_offset,
        w.leader_epoch,
        || w.partition.isr().map_or(0, |isr| isr.len()),
    );
    match outcome {
        AcksOutcome::Done => Some(true),
        AcksOutcome::Waiting if now < w.deadline => None,
        _ => Some(false),
    }
}

impl WaitingProduce {
    /// (partition, offset, value) of the acknowledged record.
    pub fn record(&self) -> (i32, i64, i64) {
        (self.partition_index, self.last_offset, self.value)
    }
}

/// Checks a leader's high watermark against its history and its ISR's log
/// ends; `ends` has the log end offset of every live replica.
pub fn check_leader_hw(
    data: &mut NodeData,
    me: u64,
    ends: &BTreeMap<(u64, i32), i64>,
) -> Result<(), String> {
    for (i, p) in &data.partitions {
        let Ok(role) = p.role() else { continue };
        if !role.is_leader() {
            continue;
        }
        let hw = p.progress().high_watermark;
        let key = (*i, role.leader_epoch.0);
        if let Some(last) = data.leader_hw.get(&key)
            && hw < *last
        {
            return Err(format!(
                "node {me}: {TOPIC}-{i} high watermark went back from {last} to {hw} in leader epoch {}",
                role.leader_epoch.0
            ));
        }
        data.leader_hw.insert(key, hw);
        for member in p.isr().unwrap_or_default() {
            if let Some(end) = ends.get(&(member as u64, *i))
                && hw > *end
            {
                return Err(format!(
                    "node {me}: {TOPIC}-{i} high watermark {hw} above ISR member {member}'s log end {end}"
                ));
            }
        }
    }
    Ok(())
}

/// Every replica's directory of one node.
pub fn node_dir(base: &Path, id: u64) -> PathBuf {
    base.join(format!("node-{id}"))
}

/// The set of (partition, offset, value) acknowledged so far.
#[derive(Default)]
pub struct Acked {
    by_offset: BTreeMap<(i32, i64), i64>,
    values: BTreeSet<i64>,
}

impl Acked {
    pub fn insert(&mut self, (p, offset, value): (i32, i64, i64)) -> Result<(), String> {
        if let Some(v) = self.by_offset.insert((p, offset), value)
            && v != value
        {
            return Err(format!(
                "{TOPIC}-{p} offset {offset} acknowledged for two records: {v} and {value}"
            ));
        }
        self.values.insert(value);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.by_offset.len()
    }

    /// Every acknowledged record of `index` missing from `log`.
    pub fn missing(&self, index: i32, log: &BTreeMap<i64, i64>) -> Option<(i64, i64)> {
        self.by_offset
            .range((index, i64::MIN)..=(index, i64::MAX))
            .find(|((_, o), v)| log.get(o) != Some(v))
            .map(|((_, o), v)| (*o, *v))
    }

    /// The acknowledged values of `index` found more than once in `log`.
    pub fn duplicated(&self, index: i32, log: &BTreeMap<i64, i64>) -> Option<i64> {
        let mut seen = BTreeSet::new();
        for v in log.values() {
            if self.values.contains(v) && !seen.insert(*v) {
                return Some(*v);
            }
        }
        let _ = index;
        None
    }
}

/// The replicas of `index` in an image.
pub fn partition_of(image: &MetadataImage, index: i32) -> Option<&PartitionImage> {
    image.topic(TOPIC)?.partitions.get(index as usize)
}
