//! One controller as an I/O-free state machine: raft-rs's `RawNode` over
//! the [`RaftStorage`], and the [`MetadataImage`] its committed entries
//! build. The real [driver](super::driver) and the simulation both run this
//! type; only the clock, the disk and the network around it differ.
//!
//! ```text
//! propose(record) ─► RawNode::propose (a follower forwards it to the leader)
//! step(message) / tick()
//! handle_ready(): write entries + hard state ─► sync ─► apply committed
//!                 entries to the image ─► hand back messages to send and
//!                 the results of this node's own proposals
//! ```
//!
//! # Invariants
//! - Nothing leaves `handle_ready` (no message, no apply result) before the
//!   Ready's entries, hard state and snapshot are synced.
//! - Applying is deterministic: every node applies the same entries in the
//!   same order to the same image and gets the same result, so the checks
//!   that used to run before writing (`TOPIC_ALREADY_EXISTS`, …) now run at
//!   apply time, and of two racing proposals the later one is refused
//!   everywhere.
//! - A proposal is tagged with (node id, incarnation, sequence); only the
//!   node and incarnation that made it report its result, so a restarted node
//!   never mistakes an old entry for a new proposal.
//!
//! - Broker liveness ([`BrokerLiveness`]) and partition upkeep
//!   ([`PartitionBalancer`]: reassignment completions, preferred-leader
//!   balancing) run only on the leader, clocked
//!   by this node's ticks, and acts only on an image that has applied
//!   everything this node knows to be committed; what it decides is
//!   proposed like any other record, so it is replicated and checked at
//!   apply time.
//!
//! # Limits
//! - Uncommitted bytes are bounded by raft-rs (`max_uncommitted_size`,
//!   [`UNCOMMITTED_BYTES_MAX`]); proposals past it are refused, not queued.
//! - The log is compacted into a snapshot of the image every
//!   [`NodeConfig::snapshot_interval`] applied entries.
//!
//! # Caveats
//! - raft-rs draws election timeouts from a thread-local RNG; this type
//!   overrides each fresh timeout from its own seeded generator so a
//!   simulation run is reproducible from its seed.

use std::sync::Arc;

use raft::prelude::{Entry, EntryType, Message, MessageType, Snapshot};
use raft::{Config, RawNode, SnapshotStatus, StateRole, Storage};
use serde::{Deserialize, Serialize};

use super::balancer::{LeaderBalancing, PartitionBalancer};
use super::limits::{OBSERVE_BYTES_MAX, OBSERVE_ENTRIES_MAX};
use super::liveness::{BrokerLiveness, Heartbeat};
use super::observer::ObserveReply;
use super::raft_storage::{RaftStorage, RaftStorageError};
use crate::metadata::{ApplyError, BrokerId, MetadataImage, MetadataRecord};
use sluice_client::rng::SplitMix64;

/// Marks the sequence number of a proposal the node made itself (broker
/// liveness); its result is not reported, nobody waits for it.
const INTERNAL_SEQ: u64 = 1 << 63;

/// raft-rs's bound on proposed but uncommitted entry bytes.
pub const UNCOMMITTED_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// How a controller node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id (the broker's `node.id`).
    pub id: u64,
    /// Every voter's id, this node's included.
    pub voters: Vec<u64>,
    /// Ticks without hearing from a leader before a follower campaigns (the
    /// actual timeout is drawn from `[election_tick, 2 × election_tick)`).
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_tick: usize,
    /// Applied entries between snapshots.
    pub snapshot_interval: u64,
    /// Tags this run's proposals and seeds the election timeouts.
    pub incarnation: u64,
    /// Ticks without a heartbeat before the active controller fences a
    /// broker (`broker.session.timeout.ms` over the tick).
    pub session_ticks: u64,
    /// Ticks after a broker's controller connection closed, with nothing
    /// heard from it since, before the active controller fences it (see
    /// `liveness`): one heartbeat interval plus slack.
    pub lost_grace_ticks: u64,
    /// Automatic preferred-leader balancing, `None` when disabled.
    pub leader_balancing: Option<LeaderBalancing>,
}

/// Why the controller node cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] RaftStorageError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("metadata snapshot does not decode: {0}")]
    Snapshot(String),
}

/// The payload of every Raft entry: the record and who proposed it (a
/// voter, or a broker-only node through a voter).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaggedRecord {
    pub node: u64,
    pub incarnation: u64,
    pub seq: u64,
    pub record: MetadataRecord,
}

/// The record an applied entry carries: `None` for a new leader's empty
/// entry, a configuration entry, or data that does not decode (logged;
/// every node skips the same entry, so images still agree).
fn decode_entry(entry: &Entry) -> Option<TaggedRecord> {
    if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
        return None;
    }
    match serde_json::from_slice(&entry.data) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(index = entry.index, error = %e, "raft entry does not decode; skipped");
            None
        }
    }
}

/// The outcome of a proposal made by this node and incarnation.
pub type ProposalResult = Result<Arc<MetadataImage>, ApplyError>;

/// One applied entry, for checkers: index, term, CRC-32 of its data.
pub type AppliedEntry = (u64, u64, u32);

/// What one `handle_ready` produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Raft messages to send (already safe to send: everything they depend
    /// on is synced).
    pub messages: Vec<Message>,
    /// Results of this node's own proposals, by sequence number.
    pub results: Vec<(u64, ProposalResult)>,
    /// Every entry applied, in order.
    pub applied: Vec<AppliedEntry>,
    /// The image changed (an entry applied or a snapshot installed).
    pub image_changed: bool,
}

/// One controller: Raft plus the metadata image.
pub struct ControllerNode {
    raw: RawNode<RaftStorage>,
    image: Arc<MetadataImage>,
    applied: u64,
    next_seq: u64,
    incarnation: u64,
    snapshot_interval: u64,
    rng: SplitMix64,
    liveness: BrokerLiveness,
    /// Reassignment completions and preferred-leader balancing.
    balancer: PartitionBalancer,
    /// Ticks since this node started: the liveness clock.
    ticks: u64,
    /// Whether this node led at the previous tick (a new term of
    /// leadership resets the liveness sessions).
    led: bool,
}

impl ControllerNode {
    /// Starts a node on `storage` (already opened and replayed). A single
    /// voter elects itself at once: the zero-configuration node must not
    /// wait an election timeout.
    pub fn new(
        config: &NodeConfig,
        storage: RaftStorage,
        logger: &slog::Logger,
    ) -> Result<Self, NodeError> {
        let snapshot = storage.latest_snapshot().clone();
        let image = restore_image(&snapshot)?;
        let applied = snapshot.get_metadata().index;
        let raft_config = Config {
            id: config.id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            max_uncommitted_size: UNCOMMITTED_BYTES_MAX,
            ..Config::default()
        };
        raft_config.validate()?;
        let raw = RawNode::new(&raft_config, storage, logger)?;
        let mut node = Self {
            raw,
            image: Arc::new(image),
            applied,
            next_seq: 0,
            incarnation: config.incarnation,
            snapshot_interval: config.snapshot_interval.max(1),
            rng: SplitMix64::new(config.incarnation ^ config.id),
            liveness: BrokerLiveness::new(config.session_ticks, config.lost_grace_ticks),
            balancer: PartitionBalancer::new(config.leader_balancing),
            ticks: 0,
            led: false,
        };
        node.reseed_election_timeout();
        if config.voters == [config.id] {
            node.raw.campaign()?;
        }
        Ok(node)
    }

    /// The image as of the last applied entry.
    pub fn image(&self) -> &Arc<MetadataImage> {
        &self.image
    }

    /// Index of the last applied entry.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The leader this node knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|id| *id != raft::INVALID_ID)
    }

    /// Whether this node is the leader (the active controller).
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The current Raft term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// As the leader, hands leadership to the voter whose log matches the
    /// most of this node's (raft-rs sends it the missing entries, then
    /// `MsgTimeoutNow`, and stops taking proposals meanwhile). Returns the
    /// voter asked, or `None` when this node does not lead or is alone.
    pub fn transfer_leadership(&mut self) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        let own = self.raw.raft.id;
        let transferee = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != own)
            .max_by_key(|(id, progress)| (progress.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)?;
        self.raw.transfer_leader(transferee);
        Some(transferee)
    }

    /// Index of the latest snapshot (0 when there is none).
    pub fn snapshot_index(&self) -> u64 {
        self.raw.store().latest_snapshot().get_metadata().index
    }

    /// Advances the logical clock by one tick; as the leader, proposes
    /// the liveness changes that are due.
    pub fn tick(&mut self) {
        self.raw.tick();
        self.reseed_election_timeout();
        self.ticks += 1;
        let leads = self.is_leader();
        if leads && !self.led {
            self.liveness.reset(self.ticks);
            self.balancer.reset(self.ticks);
        }
        self.led = leads;
        // A new leader may not have applied all it knows to be committed:
        // acting on an older image would undo what it has not seen yet.
        if !leads || self.applied < self.raw.raft.raft_log.committed {
            return;
        }
        for record in self.liveness.due(&self.image, self.ticks) {
            if let Err(e) = self.propose_tagged(record, INTERNAL_SEQ) {
                tracing::debug!(error = %e, "liveness change not proposed; retried later");
            }
        }
        for record in self.balancer.due(&self.image, self.ticks) {
            if let Err(e) = self.propose_tagged(record, INTERNAL_SEQ) {
                tracing::debug!(error = %e, "partition balancing change not proposed; retried later");
            }
        }
    }

    /// A broker's heartbeat, counted only while this node leads (the
    /// driver sends heartbeats to the leader it knows).
    pub fn heartbeat(&mut self, heartbeat: &Heartbeat) {
        if self.is_leader() {
            self.liveness.heartbeat(heartbeat, self.ticks);
        } else {
            self.liveness.heard_from(heartbeat.broker);
        }
    }

    /// The controller connection from `node` closed (end of stream or a
    /// reset: its process may be gone). Kept whether or not this node
    /// leads; see `liveness` for what follows.
    pub fn connection_lost(&mut self, node: u64) {
        if let Ok(broker) = BrokerId::try_from(node)
            && self.image.broker(broker).is_some()
        {
            self.liveness.connection_lost(broker, self.ticks);
        }
    }

    /// Feeds a message from a peer. A message raft-rs refuses (a stale or
    /// unknown peer) is dropped: the sender retransmits what matters.
    pub fn step(&mut self, message: Message) {
        if let Ok(broker) = BrokerId::try_from(message.from) {
            self.liveness.heard_from(broker);
        }
        if let Err(e) = self.raw.step(message) {
            tracing::debug!(error = %e, "raft message dropped");
        }
        self.reseed_election_timeout();
    }

    /// Proposes `record`; its result comes back from a later `handle_ready`
    /// under the returned sequence number. Refused (`ProposalDropped`) when
    /// no leader is known or the uncommitted bound is reached.
    pub fn propose(&mut self, record: MetadataRecord) -> Result<u64, NodeError> {
        self.propose_tagged(record, 0)
    }

    /// Proposes with `flag` or-ed into the sequence number: the node's own
    /// liveness changes carry [`INTERNAL_SEQ`] and report no result.
    fn propose_tagged(&mut self, record: MetadataRecord, flag: u64) -> Result<u64, NodeError> {
        let seq = self.next_seq | flag;
        let tagged = TaggedRecord {
            node: self.raw.raft.id,
            incarnation: self.incarnation,
            seq,
            record,
        };
        let data = serde_json::to_vec(&tagged).map_err(|e| NodeError::Snapshot(e.to_string()))?;
        self.raw.propose(Vec::new(), data)?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Proposes a broker-only node's record under its own tag (a follower
    /// forwards it to the leader; the proposer reads the outcome when it
    /// applies the entry).
    pub fn propose_foreign(&mut self, tagged: &TaggedRecord) -> Result<(), NodeError> {
        let data = serde_json::to_vec(tagged).map_err(|e| NodeError::Snapshot(e.to_string()))?;
        self.raw.propose(Vec::new(), data)?;
        Ok(())
    }

    /// What a broker-only node fetching after index `after` gets: the
    /// entries this node applied since (at most [`OBSERVE_ENTRIES_MAX`] and
    /// [`OBSERVE_BYTES_MAX`]),
    /// or its whole image when those entries are compacted away.
    pub fn observe(&self, after: u64) -> Result<ObserveReply, NodeError> {
        let mut reply = ObserveReply {
            leader: self.leader().unwrap_or(0),
            ..ObserveReply::default()
        };
        if after >= self.applied {
            return Ok(reply);
        }
        let store = self.raw.store();
        if after.saturating_add(1) < store.first_index()? {
            reply.image = Some((self.applied, (*self.image).clone()));
            return Ok(reply);
        }
        let most = u64::try_from(OBSERVE_ENTRIES_MAX).unwrap_or(u64::MAX);
        let high = self.applied.min(after.saturating_add(most));
        let entries = store.entries(
            after + 1,
            high + 1,
            OBSERVE_BYTES_MAX,
            raft::GetEntriesContext::empty(false),
        )?;
        reply.entries = entries.iter().map(|e| (e.index, decode_entry(e))).collect();
        Ok(reply)
    }

    /// Runs one Ready cycle: persist, sync, apply, collect messages.
    pub fn handle_ready(&mut self) -> Result<Output, NodeError> {
        let mut out = Output::default();
        if !self.raw.has_ready() {
            return Ok(out);
        }
        let mut ready = self.raw.ready();
        // Leader appends could go out before the local write (raft-rs allows
        // it); holding them until after the sync is simpler and costs one
        // fsync of latency on a path that is not hot.
        out.messages = ready.take_messages();
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.image = Arc::new(restore_image(&snapshot)?);
            self.applied = snapshot.get_metadata().index;
            out.image_changed = true;
            self.raw.mut_store().apply_snapshot(snapshot)?;
        }
        let committed = ready.take_committed_entries();
        let store = self.raw.mut_store();
        store.append(ready.entries())?;
        if let Some(hard_state) = ready.hs() {
            store.set_hard_state(hard_state)?;
        }
        store.sync()?;
        self.apply(committed, &mut out);
        out.messages.extend(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        out.messages.extend(light.take_messages());
        self.apply(light.take_committed_entries(), &mut out);
        self.raw.advance_apply();
        self.snapshots_sent(&out.messages);
        self.maybe_compact()?;
        self.reseed_election_timeout();
        Ok(out)
    }

    fn apply(&mut self, entries: Vec<Entry>, out: &mut Output) {
        for entry in entries {
            if entry.index <= self.applied {
                continue;
            }
            self.applied = entry.index;
            out.applied
                .push((entry.index, entry.term, crc32fast::hash(&entry.data)));
            let Some(tagged) = decode_entry(&entry) else {
                continue;
            };
            let result = Arc::make_mut(&mut self.image).apply(&tagged.record);
            out.image_changed |= result.is_ok();
            if tagged.node == self.raw.raft.id
                && tagged.incarnation == self.incarnation
                && tagged.seq & INTERNAL_SEQ == 0
            {
                let result = result.map(|()| Arc::clone(&self.image));
                out.results.push((tagged.seq, result));
            }
        }
    }

    /// A snapshot message counts as delivered once handed to the network:
    /// raft-rs then probes the follower, which rejects the probe if the
    /// snapshot was lost, and the leader sends it again. Without a report
    /// the follower would wait for the snapshot forever (the transport
    /// cannot know what was delivered).
    fn snapshots_sent(&mut self, messages: &[Message]) {
        for m in messages {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.raw.report_snapshot(m.to, SnapshotStatus::Finish);
            }
        }
    }

    fn maybe_compact(&mut self) -> Result<(), NodeError> {
        if self.applied < self.snapshot_index() + self.snapshot_interval {
            return Ok(());
        }
        let store = self.raw.store();
        let mut snapshot = Snapshot::default();
        let meta = snapshot.mut_metadata();
        meta.index = self.applied;
        meta.term = store.term(self.applied)?;
        meta.set_conf_state(store.conf_state().clone());
        let data =
            serde_json::to_vec(&*self.image).map_err(|e| NodeError::Snapshot(e.to_string()))?;
        snapshot.data = data.into();
        self.raw.mut_store().compact(snapshot)?;
        Ok(())
    }

    /// raft-rs drew a new election timeout (it zeroes `election_elapsed`
    /// whenever it does); replace it with one from the seeded generator.
    fn reseed_election_timeout(&mut self) {
        let raft = &mut self.raw.raft;
        if raft.election_elapsed != 0 {
            return;
        }
        let low = raft.election_timeout() as u64;
        let timeout = low + self.rng.below(low.max(1));
        raft.set_randomized_election_timeout(timeout as usize);
    }
}

/// The image a snapshot carries (the empty image for no snapshot).
pub fn restore_image(snapshot: &Snapshot) -> Result<MetadataImage, NodeError> {
    if snapshot.is_empty() {
        return Ok(MetadataImage::default());
    }
    serde_json::from_slice(&snapshot.data).map_err(|e| NodeError::Snapshot(e.to_string()))
}

/// A snapshot at index 1 holding `image`: how a data directory written by
/// the single-node metadata log enters the Raft log.
pub fn import_snapshot(
    image: &MetadataImage,
    storage: &RaftStorage,
) -> Result<Snapshot, NodeError> {
    let mut snapshot = Snapshot::default();
    let meta = snapshot.mut_metadata();
    meta.index = 1;
    meta.term = 1;
    meta.set_conf_state(storage.conf_state().clone());
    snapshot.data = serde_json::to_vec(image)
        .map_err(|e| NodeError::Snapshot(e.to_string()))?
        .into();
    Ok(snapshot)
}
