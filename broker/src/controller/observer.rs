//! Broker-only nodes: a node whose id is not among the controller voters
//! runs no Raft. Like KRaft's observers it follows the committed metadata
//! by fetching it from the voters over the controller transport, applies it
//! to its own image and publishes that image as a voter does.
//!
//! ```text
//! observer ── ObserveRequest{after} ──► the leader (any voter until one
//!                                       is known; one connection, request/reply)
//!          ◄── ObserveReply{leader, entries (after, applied] | its image}
//!          apply the records in order ─► publish the image
//! propose  ── ProposeFrame{tagged record} ──► the leader it knows (raft-rs
//!             forwards a follower's proposal) ─► committed ─► the observer
//!             finds its own tag when it applies the entry: the result
//! heartbeat ─► the leader, as a voter's broker does
//! ```
//!
//! Why fetch rather than a raft-rs learner: the voter set is static
//! configuration and the voters know no address but each other's; a
//! learner would need a membership change through the log and every voter
//! dialling brokers it was never told about. Fetching needs neither: the
//! observer dials a voter it knows, and the voter answers from the entries
//! it has applied (committed, so never taken back). An observer keeps no
//! metadata on disk: at start it fetches the image again (entries, or the
//! voter's whole image when the entries it needs are compacted away).
//!
//! # Invariants
//! - An observer applies only entries a voter has applied, in index order,
//!   each once: its image is a prefix of every voter's.
//! - [`Observer::start`] returns only after a fetch from the leader itself
//!   found nothing newer, so the broker never reconciles its logs against
//!   an image older than the committed metadata it had seen (a lagging
//!   voter's empty answer does not count).
//! - A proposal is answered exactly once: with its apply result (from the
//!   observer's own apply), NOT_CONTROLLER when no leader is known, or
//!   REQUEST_TIMED_OUT after [`PROPOSE_TIMEOUT`] (it may still commit).
//!
//! # Limits
//! [`OBSERVE_ENTRIES_MAX`] entries per reply, [`PENDING_PROPOSALS_MAX`]
//! waiting proposals; polls every [`TICK`] when caught up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

use super::driver::{ControllerError, Voter};
use super::limits::{
    OBSERVE_ENTRIES_MAX, PEER_IO_TIMEOUT, PENDING_PROPOSALS_MAX, PROPOSE_TIMEOUT,
    RECONNECT_BACKOFF, TICK,
};
use super::liveness::Heartbeat;
use super::node::TaggedRecord;
use super::transport::{self, Transport};
use crate::metadata::{ApplyError, MetadataImage, MetadataRecord, ProposeError};

/// An observer asks voter `to` for what it applied after index `after`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ObserveRequest {
    pub to: u64,
    pub after: u64,
}

/// A voter's answer to an [`ObserveRequest`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ObserveReply {
    /// The leader the voter knows (0: none).
    pub leader: u64,
    /// The voter's whole image and the index it is at, when the entries
    /// after `after` are compacted away.
    pub image: Option<(u64, MetadataImage)>,
    /// Applied entries after `after` (or after `image`), in index order;
    /// `None` for an entry that carries no record.
    pub entries: Vec<(u64, Option<TaggedRecord>)>,
}

/// A record an observer proposes, tagged with its node and incarnation.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProposeFrame {
    pub to: u64,
    pub tagged: TaggedRecord,
}

type Reply = oneshot::Sender<Result<Arc<MetadataImage>, ApplyError>>;

/// What the fetch task and the handle share.
struct Shared {
    id: u64,
    incarnation: u64,
    pending: Mutex<HashMap<u64, Reply>>,
}

/// A broker-only node's metadata follower.
pub struct Observer {
    shared: Arc<Shared>,
    next_seq: AtomicU64,
    transport: Transport,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Starts following `voters` and waits until the first fetch found
    /// nothing newer (logging while no voter answers). Blocking: call it
    /// off the runtime's workers.
    pub fn start(
        id: u64,
        voters: &[Voter],
        runtime: &tokio::runtime::Handle,
        publish: watch::Sender<Arc<MetadataImage>>,
        leader: Arc<AtomicU64>,
    ) -> Result<Self, ControllerError> {
        let shared = Arc::new(Shared {
            id,
            incarnation: uuid::Uuid::new_v4().as_u64_pair().0,
            pending: Mutex::new(HashMap::new()),
        });
        let peers: Vec<(u64, std::net::SocketAddr)> =
            voters.iter().map(|v| (v.id, v.addr)).collect();
        // No listener: nothing dials an observer.
        let transport = Transport::start(
            runtime,
            id,
            None,
            &peers,
            Arc::new(|_: transport::Inbound| {}),
        );
        let (caught_up, first) = std::sync::mpsc::sync_channel(1);
        let task = runtime.spawn(follow(
            Arc::clone(&shared),
            voters.to_vec(),
            publish,
            leader,
            caught_up,
        ));
        let mut waited = 0u32;
        loop {
            match first.recv_timeout(std::time::Duration::from_secs(5)) {
                Ok(()) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    waited += 5;
                    tracing::warn!(
                        waited_s = waited,
                        "broker-only node: waiting for a controller voter to send the metadata"
                    );
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(ControllerError::Io(std::io::Error::other(
                        "the metadata follower stopped",
                    )));
                }
            }
        }
        tracing::info!(
            node_id = id,
            "broker-only node: following the controller quorum's metadata"
        );
        Ok(Self {
            shared,
            next_seq: AtomicU64::new(0),
            transport,
            task,
        })
    }

    /// Sends `record` to `leader` and waits for this node to apply it.
    pub async fn propose(
        &self,
        leader: u64,
        record: MetadataRecord,
    ) -> Result<Arc<MetadataImage>, ProposeError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .map_err(|_| ProposeError::Stopped)?;
            if pending.len() >= PENDING_PROPOSALS_MAX {
                return Err(ProposeError::Busy);
            }
            pending.insert(seq, reply);
        }
        let tagged = TaggedRecord {
            node: self.shared.id,
            incarnation: self.shared.incarnation,
            seq,
            record,
        };
        self.transport.send_proposal(leader, tagged);
        match tokio::time::timeout(PROPOSE_TIMEOUT, answer).await {
            Ok(Ok(result)) => result.map_err(ProposeError::Rejected),
            Ok(Err(_)) => Err(ProposeError::Stopped),
            Err(_) => {
                if let Ok(mut pending) = self.shared.pending.lock() {
                    pending.remove(&seq);
                }
                Err(ProposeError::TimedOut)
            }
        }
    }

    /// Sends this broker's heartbeat to the active controller.
    pub fn heartbeat(&self, leader: u64, heartbeat: Heartbeat) {
        self.transport.send_heartbeat(leader, heartbeat);
    }

    /// Stops following.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

/// Fetches from one voter after another until the observer is dropped.
async fn follow(
    shared: Arc<Shared>,
    voters: Vec<Voter>,
    publish: watch::Sender<Arc<MetadataImage>>,
    leader: Arc<AtomicU64>,
    caught_up: std::sync::mpsc::SyncSender<()>,
) {
    let mut image = Arc::clone(&publish.borrow());
    let mut applied = 0u64;
    let mut backoff = RECONNECT_BACKOFF.0;
    let mut next = 0usize;
    loop {
        // The leader when one is known (its applied entries are the
        // newest), else the voters in turn.
        let known = leader.load(Ordering::Relaxed);
        let Some(voter) = voters
            .iter()
            .find(|v| v.id == known)
            .or_else(|| voters.get(next % voters.len().max(1)))
            .copied()
        else {
            return;
        };
        next = next.wrapping_add(1);
        let connected = tokio::time::timeout(PEER_IO_TIMEOUT, TcpStream::connect(voter.addr)).await;
        let Ok(Ok(mut stream)) = connected else {
            // A leader that cannot be reached may be gone: ask the voters
            // in turn who leads now.
            leader.store(0, Ordering::Relaxed);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_BACKOFF.1);
            continue;
        };
        let _ = stream.set_nodelay(true);
        backoff = RECONNECT_BACKOFF.0;
        loop {
            let reply = match transport::observe(&mut stream, voter.id, applied).await {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::debug!(voter = voter.id, error = %e, "metadata fetch failed; trying another voter");
                    leader.store(0, Ordering::Relaxed);
                    break;
                }
            };
            leader.store(reply.leader, Ordering::Relaxed);
            let from_leader = reply.leader == voter.id;
            let full = reply.entries.len() >= OBSERVE_ENTRIES_MAX;
            let mut changed = false;
            let mut results = Vec::new();
            if let Some((index, whole)) = reply.image
                && index > applied
            {
                image = Arc::new(whole);
                applied = index;
                changed = true;
            }
            for (index, tagged) in reply.entries {
                if index <= applied {
                    continue;
                }
                applied = index;
                let Some(tagged) = tagged else { continue };
                let result = Arc::make_mut(&mut image).apply(&tagged.record);
                changed |= result.is_ok();
                if tagged.node == shared.id && tagged.incarnation == shared.incarnation {
                    results.push((tagged.seq, result));
                }
            }
            if changed {
                publish.send_replace(Arc::clone(&image));
            }
            if !results.is_empty()
                && let Ok(mut pending) = shared.pending.lock()
            {
                for (seq, result) in results {
                    if let Some(reply) = pending.remove(&seq) {
                        let _ = reply.send(result.map(|()| Arc::clone(&image)));
                    }
                }
            }
            if !full && !changed {
                // Caught up with the leader itself, not with a voter that
                // may lag (a restarting one has applied nothing yet).
                if from_leader {
                    let _ = caught_up.try_send(());
                } else if reply.leader != 0 {
                    break; // go to the leader
                }
                tokio::time::sleep(TICK).await;
            }
        }
    }
}
