//! The driver: one thread that owns the [`ControllerNode`], ticks it, feeds
//! it messages and proposals, runs its Ready loop, sends what it produced
//! and publishes each new image; and [`Controller`], the handle the rest of
//! the broker holds.
//!
//! The driver is a plain thread because every Ready ends in an fsync: it
//! must not sit on a runtime worker, and nothing else may wait on it.
//!
//! # Invariants
//! - The driver never blocks on the network: sends go to the transport's
//!   bounded per-peer queues.
//! - A proposal is answered exactly once: with its apply result, with
//!   NOT_CONTROLLER when no leader is known or the leader changed while it
//!   waited, with REQUEST_TIMED_OUT after
//!   [`PROPOSE_TIMEOUT`], or with the driver's failure.
//! - [`Controller::start`] returns only once the image includes every entry
//!   this node knew to be committed, so the broker never reconciles its
//!   partition logs against an image older than its own log.
//!
//! # Limits
//! [`DRIVER_QUEUE`] events, [`PENDING_PROPOSALS_MAX`] waiting proposals.
//!
//! # Caveats
//! - A proposal that times out may still commit later (as in Kafka, a
//!   timeout does not say the change did not happen); retrying a
//!   CreateTopics then answers TOPIC_ALREADY_EXISTS.
//! - A storage failure stops the driver: the node keeps serving the last
//!   image read-only and every proposal fails with KAFKA_STORAGE_ERROR.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use raft::prelude::Message;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use super::balancer::LeaderBalancing;
use super::disk::FileDisk;
use super::limits::{
    DRIVER_QUEUE, ELECTION_TICKS, HEARTBEAT_TICKS, LOST_CONNECTION_GRACE_TICKS_MIN,
    PENDING_PROPOSALS_MAX, PROPOSE_TIMEOUT, SNAPSHOT_INTERVAL, TICK, TRANSFER_ATTEMPT,
};
use super::liveness::Heartbeat;
use super::node::{ControllerNode, NodeConfig, NodeError, Output, TaggedRecord, import_snapshot};
use super::observer::{ObserveReply, Observer};
use super::raft_storage::{RaftStorage, RaftStorageError};
use super::transport::{Inbound, Transport};
use crate::metadata::{
    BrokerId, MetadataImage, MetadataLog, MetadataLogError, MetadataRecord, ProposeError,
};

/// One voter of the controller quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Voter {
    pub id: u64,
    pub addr: SocketAddr,
}

/// How this node's controller starts.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: u64,
    /// Every voter, this node included. A single voter needs no listener.
    pub voters: Vec<Voter>,
    /// The data directory; the Raft log lives in `__cluster_metadata/`.
    pub data_dir: PathBuf,
    /// `broker.session.timeout.ms`: as the active controller, fence a
    /// broker whose heartbeats stop for this long.
    pub session_timeout: std::time::Duration,
    /// `broker.heartbeat.interval.ms` (the cluster's, assumed the same on
    /// every broker): sets the grace of a lost connection (see liveness).
    pub heartbeat_interval: std::time::Duration,
    /// `auto.leader.rebalance.enable` with its interval and threshold:
    /// as the active controller, move leaderships back to preferred
    /// replicas. `None` when disabled.
    pub leader_balancing: Option<LeaderBalancingConfig>,
}

/// Automatic preferred-leader balancing, in wall-clock terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderBalancingConfig {
    /// `leader.imbalance.check.interval.seconds`.
    pub interval: std::time::Duration,
    /// `leader.imbalance.per.broker.percentage`.
    pub max_imbalance_percent: u32,
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Storage(#[from] RaftStorageError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("importing the single-node metadata log: {0}")]
    Legacy(#[from] MetadataLogError),
    #[error(
        "{0} holds a metadata log written by single-node Sluice; start it as a single voter once to import it"
    )]
    LegacyNeedsSingleVoter(PathBuf),
    #[error("controller i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("node id {0} is not a positive integer")]
    InvalidNodeId(i32),
    #[error(transparent)]
    Voters(#[from] crate::config::VotersError),
    #[error("cannot listen for controllers on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the controller needs a tokio runtime: {0}")]
    NoRuntime(#[from] tokio::runtime::TryCurrentError),
}

type Reply = oneshot::Sender<Result<Arc<MetadataImage>, ProposeError>>;

enum Event {
    Propose(MetadataRecord, Reply),
    Raft(Message),
    /// A heartbeat of this node's broker (`local`) or from a peer.
    Heartbeat {
        heartbeat: Heartbeat,
        local: bool,
    },
    /// Hand Raft leadership to another voter (controlled shutdown); the
    /// answer names the voter asked, if this node led.
    TransferLeadership(oneshot::Sender<Option<u64>>),
    /// A broker-only node's metadata fetch.
    Observe {
        after: u64,
        reply: oneshot::Sender<ObserveReply>,
    },
    /// A broker-only node's proposal.
    Foreign(TaggedRecord),
    /// The controller connection from this node closed.
    ConnectionLost(u64),
    Stop,
}

struct Pending {
    reply: Reply,
    deadline: Instant,
}

/// The handle to this node's controller.
pub struct Controller {
    own_id: u64,
    role: Role,
    published: watch::Receiver<Arc<MetadataImage>>,
    leader: Arc<AtomicU64>,
}

/// A voter runs Raft on the driver thread; a broker-only node follows the
/// voters (see [`super::observer`]).
enum Role {
    Voter {
        events: SyncSender<Event>,
        thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    },
    Observer(Observer),
}

impl Controller {
    /// Opens the Raft log (importing a single-node metadata log on first
    /// start), catches the image up to the committed entries on disk, and
    /// starts the driver thread and, for several voters, the transport on
    /// `listener`. Blocking.
    pub fn start(
        config: &ControllerConfig,
        runtime: &tokio::runtime::Handle,
        listener: Option<TcpListener>,
    ) -> Result<Self, ControllerError> {
        let ids: Vec<u64> = config.voters.iter().map(|v| v.id).collect();
        if !ids.contains(&config.node_id) {
            return Self::start_observer(config, runtime);
        }
        let dir = config.data_dir.join("__cluster_metadata");
        let disk = FileDisk::open(&dir, "raft.log")?;
        let mut storage = RaftStorage::open(Box::new(disk), &ids)?;
        import_legacy(&config.data_dir, &mut storage, ids.len(), config.node_id)?;
        let committed = storage.hard_state().commit;
        let node_config = NodeConfig {
            id: config.node_id,
            voters: ids,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            snapshot_interval: SNAPSHOT_INTERVAL,
            incarnation: uuid::Uuid::new_v4().as_u64_pair().0,
            session_ticks: session_ticks(config.session_timeout),
            lost_grace_ticks: lost_grace_ticks(config.heartbeat_interval),
            leader_balancing: config.leader_balancing.map(|b| LeaderBalancing {
                interval_ticks: session_ticks(b.interval),
                max_imbalance_percent: b.max_imbalance_percent,
            }),
        };
        let mut node = ControllerNode::new(&node_config, storage, &super::raft_logger())?;
        let early = catch_up(&mut node, committed)?;
        let (events, inbox) = std::sync::mpsc::sync_channel(DRIVER_QUEUE);
        let deliver_to = events.clone();
        let deliver = Arc::new(move |inbound: Inbound| {
            // A full queue drops the message; Raft retransmits, and the
            // broker heartbeats again.
            let event = match inbound {
                Inbound::Raft(m) => Event::Raft(m),
                Inbound::Heartbeat(heartbeat) => Event::Heartbeat {
                    heartbeat,
                    local: false,
                },
                Inbound::Observe { after, reply } => Event::Observe { after, reply },
                Inbound::Propose(tagged) => Event::Foreign(tagged),
                Inbound::ConnectionLost(node) => Event::ConnectionLost(node),
            };
            let _ = deliver_to.try_send(event);
        });
        let peers: Vec<(u64, SocketAddr)> = config
            .voters
            .iter()
            .filter(|v| v.id != config.node_id)
            .map(|v| (v.id, v.addr))
            .collect();
        let transport = Transport::start(runtime, config.node_id, listener, &peers, deliver);
        for m in &early.messages {
            transport.send(m);
        }
        let (publish, published) = watch::channel(Arc::clone(node.image()));
        let leader = Arc::new(AtomicU64::new(node.leader().unwrap_or(0)));
        let driver = Driver {
            node,
            inbox,
            transport,
            publish,
            leader: Arc::clone(&leader),
            pending: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("controller-{}", config.node_id))
            .spawn(move || driver.run())?;
        Ok(Self {
            own_id: config.node_id,
            role: Role::Voter {
                events,
                thread: Mutex::new(Some(thread)),
            },
            published,
            leader,
        })
    }

    /// A broker-only node: no Raft, no metadata on disk; follows the
    /// voters (see [`super::observer`]). Blocking until it caught up.
    fn start_observer(
        config: &ControllerConfig,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self, ControllerError> {
        let (publish, published) = watch::channel(Arc::new(MetadataImage::default()));
        let leader = Arc::new(AtomicU64::new(0));
        let observer = Observer::start(
            config.node_id,
            &config.voters,
            runtime,
            publish,
            Arc::clone(&leader),
        )?;
        Ok(Self {
            own_id: config.node_id,
            role: Role::Observer(observer),
            published,
            leader,
        })
    }

    /// The latest published image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.published.borrow().clone()
    }

    /// Every image published from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.published.clone()
    }

    /// The active controller (the Raft leader) as this node knows it.
    pub fn leader(&self) -> Option<u64> {
        Some(self.leader.load(Ordering::Relaxed)).filter(|id| *id != 0)
    }

    /// Replicates `record` and waits until it is applied here; returns the
    /// image that includes it, or why it was not applied.
    ///
    /// While no leader is known (an election), it waits for one up to
    /// [`PROPOSE_TIMEOUT`] before answering NOT_CONTROLLER: an election
    /// takes about a second, and a client's request should ride it out.
    pub async fn propose(
        &self,
        record: MetadataRecord,
    ) -> Result<Arc<MetadataImage>, ProposeError> {
        // Config values are checked against the settings table here, not
        // at apply time, so a record written under older bounds still
        // replays (see `MetadataImage::check`). The structural checks run
        // again when the entry applies, on the image it applies to.
        self.image().check(&record)?;
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        loop {
            match self.propose_once(record.clone()).await {
                Err(ProposeError::NotController) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(TICK).await;
                }
                other => return other,
            }
        }
    }

    async fn propose_once(
        &self,
        record: MetadataRecord,
    ) -> Result<Arc<MetadataImage>, ProposeError> {
        let events = match &self.role {
            Role::Voter { events, .. } => events,
            Role::Observer(observer) => {
                let leader = self.leader().ok_or(ProposeError::NotController)?;
                return observer.propose(leader, record).await;
            }
        };
        let (reply, answer) = oneshot::channel();
        match events.try_send(Event::Propose(record, reply)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ProposeError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(ProposeError::Stopped),
        }
        answer.await.map_err(|_| ProposeError::Stopped)?
    }

    /// Sends this node's broker heartbeat to the active controller (this
    /// node's own, or over the controller transport). Never blocks; a
    /// heartbeat that cannot be queued is dropped, the next one follows.
    pub fn heartbeat(&self, heartbeat: Heartbeat) {
        match &self.role {
            Role::Voter { events, .. } => {
                let _ = events.try_send(Event::Heartbeat {
                    heartbeat,
                    local: true,
                });
            }
            Role::Observer(observer) => {
                if let Some(leader) = self.leader() {
                    observer.heartbeat(leader, heartbeat);
                }
            }
        }
    }

    /// Waits until a leader is known, logging while it waits: a node
    /// starting without a quorum of voters up waits for them.
    pub async fn wait_for_leader(&self) {
        let mut waited = 0u32;
        while self.leader().is_none() {
            if waited % 100 == 99 {
                tracing::warn!("waiting for a quorum of controller voters to elect a leader");
            }
            waited += 1;
            tokio::time::sleep(TICK).await;
        }
    }

    /// Moves Raft leadership away from this node before it stops, so the
    /// metadata stays writable without waiting for an election timeout
    /// (KIP-595's `EndQuorumEpoch` does this for KRaft). Asks once per
    /// [`TRANSFER_ATTEMPT`] until another node leads or `bound` passes;
    /// returns the new leader, or `None` when this node did not lead (or
    /// still does at the bound: the others then elect after their timeout).
    pub async fn transfer_leadership(&self, bound: std::time::Duration) -> Option<u64> {
        let own = self.own_id;
        let Role::Voter { events, .. } = &self.role else {
            return None;
        };
        if self.leader() != Some(own) {
            return None;
        }
        let deadline = tokio::time::Instant::now() + bound;
        while tokio::time::Instant::now() < deadline {
            let (reply, asked) = oneshot::channel();
            if events.try_send(Event::TransferLeadership(reply)).is_err() {
                tokio::time::sleep(TICK).await;
                continue;
            }
            let Ok(Some(transferee)) = asked.await else {
                // Not the leader any more (or the driver stopped).
                return self.leader().filter(|l| *l != own);
            };
            tracing::info!(
                to = transferee,
                "transferring raft leadership before shutdown"
            );
            let attempt = tokio::time::Instant::now() + TRANSFER_ATTEMPT;
            while tokio::time::Instant::now() < attempt.min(deadline) {
                if let Some(leader) = self.leader().filter(|l| *l != own) {
                    return Some(leader);
                }
                tokio::time::sleep(TICK).await;
            }
        }
        self.leader().filter(|l| *l != own)
    }

    /// Stops the driver thread and waits for it (clean shutdown).
    pub fn shutdown(&self) {
        let (events, thread) = match &self.role {
            Role::Voter { events, thread } => (events, thread),
            Role::Observer(observer) => {
                observer.shutdown();
                return;
            }
        };
        let _ = events.try_send(Event::Stop);
        let thread = thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("controller thread panicked");
        }
    }
}

/// The grace after a lost broker connection (see `liveness`): half a
/// heartbeat interval, and at least [`LOST_CONNECTION_GRACE_TICKS_MIN`].
fn lost_grace_ticks(heartbeat_interval: std::time::Duration) -> u64 {
    (session_ticks(heartbeat_interval) / 2).max(LOST_CONNECTION_GRACE_TICKS_MIN)
}

/// A duration in controller ticks (at least one).
fn session_ticks(timeout: std::time::Duration) -> u64 {
    let tick = TICK.as_millis().max(1);
    u64::try_from(timeout.as_millis() / tick)
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Applies the entries this node already knew to be committed, so the
/// first published image is not older than the node's own log.
fn catch_up(node: &mut ControllerNode, committed: u64) -> Result<Output, NodeError> {
    let mut first = node.handle_ready()?;
    while node.applied() < committed {
        let more = node.handle_ready()?;
        if more.applied.is_empty() {
            break;
        }
        first.messages.extend(more.messages);
    }
    Ok(first)
}

/// Moves a metadata log written by single-node Sluice into the Raft log as
/// the initial snapshot, and keeps the old file as `metadata.log.imported`.
fn import_legacy(
    data_dir: &Path,
    storage: &mut RaftStorage,
    voters: usize,
    node_id: u64,
) -> Result<(), ControllerError> {
    let dir = data_dir.join("__cluster_metadata");
    let legacy = dir.join("metadata.log");
    if !legacy.exists() {
        return Ok(());
    }
    let fresh = storage.hard_state().term == 0 && storage.latest_snapshot().is_empty();
    if fresh {
        if voters != 1 {
            return Err(ControllerError::LegacyNeedsSingleVoter(data_dir.into()));
        }
        let (_, records) = MetadataLog::open(data_dir)?;
        let mut image = MetadataImage::default();
        // The log was written by this node alone: its partitions are
        // brought forward onto it (`MetadataImage::upgrade`).
        let owner = BrokerId::try_from(node_id).map_err(|_| ControllerError::InvalidNodeId(-1))?;
        let count = records.len();
        for (index, record) in records.into_iter().enumerate() {
            let record = image.upgrade(record, owner);
            if let Err(e) = image.apply(&record) {
                tracing::error!(index, error = %e, "legacy metadata record does not replay; skipped");
            }
        }
        let snapshot = import_snapshot(&image, storage)?;
        storage.apply_snapshot(snapshot)?;
        tracing::info!(records = count, "imported the single-node metadata log");
    }
    std::fs::rename(&legacy, dir.join("metadata.log.imported"))?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

struct Driver {
    node: ControllerNode,
    inbox: Receiver<Event>,
    transport: Transport,
    publish: watch::Sender<Arc<MetadataImage>>,
    leader: Arc<AtomicU64>,
    pending: HashMap<u64, Pending>,
}

impl Driver {
    /// The leader changed: a proposal forwarded to the old one may be lost
    /// with it, so every waiting proposal is answered NOT_CONTROLLER now
    /// rather than REQUEST_TIMED_OUT later. It may still commit (the old
    /// leader may have replicated it); the client's retry then sees the
    /// outcome. Not retried here: a re-proposed record could apply twice.
    fn leader_changed(&mut self) {
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(ProposeError::LeaderChanged));
        }
    }

    /// Runs until `Stop`, the handle is dropped, or storage fails.
    fn run(mut self) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(wait) {
                Ok(Event::Propose(record, reply)) => self.propose(record, reply),
                Ok(Event::Raft(message)) => self.node.step(message),
                Ok(Event::Heartbeat { heartbeat, local }) => self.heartbeat(heartbeat, local),
                Ok(Event::ConnectionLost(node)) => self.node.connection_lost(node),
                Ok(Event::TransferLeadership(reply)) => {
                    let _ = reply.send(self.node.transfer_leadership());
                }
                Ok(Event::Observe { after, reply }) => match self.node.observe(after) {
                    Ok(answer) => {
                        let _ = reply.send(answer);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metadata fetch of a broker-only node not answered")
                    }
                },
                Ok(Event::Foreign(tagged)) => {
                    if let Err(e) = self.node.propose_foreign(&tagged) {
                        tracing::debug!(error = %e, "broker-only node's proposal refused; it times out and retries");
                    }
                }
                Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if now >= next_tick {
                self.node.tick();
                next_tick = now + TICK;
                self.expire(now);
            }
            if let Err(e) = self.ready() {
                tracing::error!(error = %e, "controller storage failed; the controller stops");
                break;
            }
        }
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(ProposeError::Stopped));
        }
        tracing::info!("controller stopped");
    }

    /// Counts a heartbeat here if this node leads; forwards this node's
    /// own broker's heartbeat to the leader it knows. A peer's heartbeat
    /// that reached a node that no longer leads is dropped (not passed on,
    /// so two nodes with stale views cannot bounce it between them).
    fn heartbeat(&mut self, heartbeat: Heartbeat, local: bool) {
        if self.node.is_leader() {
            self.node.heartbeat(&heartbeat);
        } else if local && let Some(leader) = self.node.leader() {
            self.transport.send_heartbeat(leader, heartbeat);
        }
    }

    fn propose(&mut self, record: MetadataRecord, reply: Reply) {
        if self.pending.len() >= PENDING_PROPOSALS_MAX {
            let _ = reply.send(Err(ProposeError::Busy));
            return;
        }
        match self.node.propose(record) {
            Ok(seq) => {
                let deadline = Instant::now() + PROPOSE_TIMEOUT;
                self.pending.insert(seq, Pending { reply, deadline });
            }
            Err(e) => {
                tracing::debug!(error = %e, "proposal refused");
                let _ = reply.send(Err(ProposeError::NotController));
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            if let Some(p) = self.pending.remove(&seq) {
                let _ = p.reply.send(Err(ProposeError::TimedOut));
            }
        }
    }

    fn ready(&mut self) -> Result<(), NodeError> {
        let out = self.node.handle_ready()?;
        for m in &out.messages {
            self.transport.send(m);
        }
        if out.image_changed {
            self.publish.send_replace(Arc::clone(self.node.image()));
        }
        for (seq, result) in out.results {
            if let Some(p) = self.pending.remove(&seq) {
                let _ = p.reply.send(result.map_err(ProposeError::Rejected));
            }
        }
        let leader = self.node.leader().unwrap_or(0);
        if self.leader.swap(leader, Ordering::Relaxed) != leader {
            self.leader_changed();
        }
        Ok(())
    }
}
