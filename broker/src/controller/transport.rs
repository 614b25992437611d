//! TCP between controllers: Raft messages as CRC-checked frames on the
//! controller listener.
//!
//! ```text
//! connection (one direction: the sender dials, the receiver only reads)
//!   frame (see frame.rs), kind 1 = raft-proto Message (protobuf)
//!                         kind 2 = broker heartbeat (JSON `Addressed`)
//!                         kind 5 = a broker-only node's proposal (JSON)
//! observer connection (request/reply on one connection, see observer.rs)
//!   kind 3 = ObserveRequest ─► kind 4 = ObserveReply (JSON)
//! ```
//!
//! Heartbeats ride the controller transport rather than Kafka's
//! BrokerHeartbeat API (key 63) on the client listener: every node already
//! knows every voter's controller address and holds a connection to it,
//! a heartbeat needs no answer (the broker reads the outcome, unfenced or
//! fenced, from the metadata it follows), and the Kafka listener stays for
//! clients. Like a Raft message, a lost heartbeat is simply sent again at
//! the next interval.
//!
//! Each peer has one outbound task with a bounded queue. `send` never
//! blocks: on a full queue the frame is dropped (Raft retransmits what is
//! lost). The task dials with exponential backoff, writes with a timeout,
//! and on any error drops the connection and dials again.
//!
//! # Invariants
//! - A frame is checked (length bound before allocating, CRC, `to` = this
//!   node) before its message reaches the driver; a bad frame closes the
//!   connection with a logged reason.
//!
//! # Limits
//! [`PEER_QUEUE`] frames per peer, [`WIRE_FRAME_BYTES_MAX`] per frame,
//! [`INBOUND_CONNECTIONS_MAX`] inbound connections, [`PEER_IO_TIMEOUT`].
//!
//! # Caveats
//! No authentication or TLS: the controller listener belongs on a trusted
//! network (as Kafka's PLAINTEXT controller listener).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use raft::prelude::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::frame::{self, FrameError};
use super::limits::{
    INBOUND_CONNECTIONS_MAX, PEER_IO_TIMEOUT, PEER_QUEUE, RECONNECT_BACKOFF, WIRE_FRAME_BYTES_MAX,
};
use super::liveness::Heartbeat;
use super::node::TaggedRecord;
use super::observer::{ObserveReply, ObserveRequest, ProposeFrame};

const KIND_RAFT: u8 = 1;
const KIND_HEARTBEAT: u8 = 2;
const KIND_OBSERVE: u8 = 3;
const KIND_OBSERVED: u8 = 4;
const KIND_PROPOSE: u8 = 5;

/// One inbound message from a peer.
#[derive(Debug)]
pub enum Inbound {
    Raft(Message),
    Heartbeat(Heartbeat),
    /// A broker-only node asks what this voter applied after `after`.
    Observe {
        after: u64,
        reply: oneshot::Sender<ObserveReply>,
    },
    /// A broker-only node's proposal.
    Propose(TaggedRecord),
    /// The connection that carried frames from this node ended by end of
    /// stream or an I/O error (not by a frame this side refused): the
    /// node's process may be gone (see `liveness`).
    ConnectionLost(u64),
}

/// A heartbeat on the wire, with the node it is meant for.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Addressed {
    to: u64,
    heartbeat: Heartbeat,
}

/// Where inbound messages go (the driver's queue).
pub type Deliver = Arc<dyn Fn(Inbound) + Send + Sync>;

/// The sending side to every peer, and the listener's task.
pub struct Transport {
    peers: HashMap<u64, mpsc::Sender<Vec<u8>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Transport {
    /// Starts serving `listener` (may be `None` for a single voter) and one
    /// outbound task per peer, on `runtime`.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        id: u64,
        listener: Option<TcpListener>,
        peers: &[(u64, SocketAddr)],
        deliver: Deliver,
    ) -> Self {
        let mut tasks = Vec::new();
        if let Some(listener) = listener {
            tasks.push(runtime.spawn(accept_loop(listener, id, deliver)));
        }
        let mut senders = HashMap::new();
        for &(peer, addr) in peers {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            senders.insert(peer, tx);
            tasks.push(runtime.spawn(outbound(peer, addr, rx)));
        }
        Self {
            peers: senders,
            tasks,
        }
    }

    /// Queues `message` for its peer; drops it when the queue is full or
    /// the peer is unknown.
    pub fn send(&self, message: &Message) {
        let Some(queue) = self.peers.get(&message.to) else {
            tracing::debug!(to = message.to, "raft message for an unknown peer dropped");
            return;
        };
        let mut bytes = Vec::new();
        if let Err(e) = frame::encode_message(&mut bytes, KIND_RAFT, message, WIRE_FRAME_BYTES_MAX)
        {
            tracing::warn!(to = message.to, error = %e, "raft message not sent");
            return;
        }
        if queue.try_send(bytes).is_err() {
            tracing::debug!(to = message.to, "peer queue full; raft message dropped");
        }
    }

    /// Queues a broker-only node's proposal for voter `to` (dropped like a
    /// Raft message; the proposer times out and retries).
    pub fn send_proposal(&self, to: u64, tagged: TaggedRecord) {
        self.send_json(to, KIND_PROPOSE, &ProposeFrame { to, tagged }, "proposal");
    }

    /// Queues a broker heartbeat for controller `to`; dropped like a Raft
    /// message when it cannot be queued (the next one follows).
    pub fn send_heartbeat(&self, to: u64, heartbeat: Heartbeat) {
        self.send_json(
            to,
            KIND_HEARTBEAT,
            &Addressed { to, heartbeat },
            "heartbeat",
        );
    }

    /// Queues `value` as a JSON frame of `kind` for controller `to`;
    /// dropped (and logged as `what`) when it cannot be encoded or queued.
    fn send_json(&self, to: u64, kind: u8, value: &impl serde::Serialize, what: &str) {
        let Some(queue) = self.peers.get(&to) else {
            tracing::debug!(to, what, "frame for an unknown controller dropped");
            return;
        };
        let mut bytes = Vec::new();
        let encoded = serde_json::to_vec(value)
            .map_err(|e| FrameError::Decode(e.to_string()))
            .and_then(|payload| frame::encode(&mut bytes, kind, &payload, WIRE_FRAME_BYTES_MAX));
        if let Err(e) = encoded {
            tracing::warn!(to, what, error = %e, "frame not sent");
            return;
        }
        if queue.try_send(bytes).is_err() {
            tracing::debug!(to, what, "peer queue full; frame dropped");
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Accepts controller connections; runs until the transport is dropped.
async fn accept_loop(listener: TcpListener, id: u64, deliver: Deliver) {
    let permits = Arc::new(Semaphore::new(INBOUND_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let deliver = Arc::clone(&deliver);
                tokio::spawn(async move {
                    let mut sender = None;
                    if let Err(e) = read_frames(stream, id, &deliver, &mut sender).await {
                        tracing::debug!(%peer, error = %e, "controller connection closed");
                        if let (ReadError::Io(_), Some(node)) = (&e, sender) {
                            deliver(Inbound::ConnectionLost(node));
                        }
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller accept failed");
                tokio::time::sleep(RECONNECT_BACKOFF.0).await;
            }
        }
    }
}

/// Why a controller connection closed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("message for node {0} arrived at node {1}")]
    WrongNode(u64, u64),
    #[error("no answer within the controller i/o timeout")]
    TimedOut,
    #[error("the controller stopped")]
    Stopped,
}

/// Reads one frame: its kind and payload (length bound before allocating,
/// CRC checked).
async fn read_frame(stream: &mut TcpStream) -> Result<(u8, Vec<u8>), ReadError> {
    let mut header = [0u8; frame::HEADER_BYTES];
    stream.read_exact(&mut header).await?;
    let (size, crc) = frame::body_len(header, WIRE_FRAME_BYTES_MAX)?;
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body).await?;
    let (kind, payload) = frame::check_body(&body, crc)?;
    Ok((kind, payload.to_vec()))
}

/// Writes one JSON frame of `kind`, within [`PEER_IO_TIMEOUT`].
async fn write_json(
    stream: &mut TcpStream,
    kind: u8,
    value: &impl serde::Serialize,
) -> Result<(), ReadError> {
    let payload = serde_json::to_vec(value).map_err(|e| FrameError::Decode(e.to_string()))?;
    let mut bytes = Vec::new();
    frame::encode(&mut bytes, kind, &payload, WIRE_FRAME_BYTES_MAX)?;
    tokio::time::timeout(PEER_IO_TIMEOUT, stream.write_all(&bytes))
        .await
        .map_err(|_| ReadError::TimedOut)??;
    Ok(())
}

/// An observer's fetch on its connection to voter `to`: what the voter
/// applied after `after`.
pub async fn observe(
    stream: &mut TcpStream,
    to: u64,
    after: u64,
) -> Result<ObserveReply, ReadError> {
    write_json(stream, KIND_OBSERVE, &ObserveRequest { to, after }).await?;
    let (kind, payload) = tokio::time::timeout(PEER_IO_TIMEOUT, read_frame(stream))
        .await
        .map_err(|_| ReadError::TimedOut)??;
    if kind != KIND_OBSERVED {
        return Err(FrameError::UnknownKind(kind).into());
    }
    serde_json::from_slice(&payload).map_err(|e| FrameError::Decode(e.to_string()).into())
}

/// Reads frames until the connection ends; `sender` is the node the
/// frames came from once one named it (a Raft message's `from`, a
/// heartbeat's broker, a proposal's node).
async fn read_frames(
    mut stream: TcpStream,
    id: u64,
    deliver: &Deliver,
    sender: &mut Option<u64>,
) -> Result<(), ReadError> {
    loop {
        let (kind, payload) = read_frame(&mut stream).await?;
        let payload = payload.as_slice();
        let (to, from, inbound) = match kind {
            KIND_RAFT => {
                let message: Message = frame::decode_message(payload)?;
                (message.to, Some(message.from), Inbound::Raft(message))
            }
            KIND_HEARTBEAT => {
                let addressed: Addressed = serde_json::from_slice(payload)
                    .map_err(|e| FrameError::Decode(e.to_string()))?;
                let from = u64::try_from(addressed.heartbeat.broker).ok();
                (addressed.to, from, Inbound::Heartbeat(addressed.heartbeat))
            }
            KIND_PROPOSE => {
                let proposal: ProposeFrame = serde_json::from_slice(payload)
                    .map_err(|e| FrameError::Decode(e.to_string()))?;
                let from = Some(proposal.tagged.node);
                (proposal.to, from, Inbound::Propose(proposal.tagged))
            }
            KIND_OBSERVE => {
                let request: ObserveRequest = serde_json::from_slice(payload)
                    .map_err(|e| FrameError::Decode(e.to_string()))?;
                if request.to != id {
                    return Err(ReadError::WrongNode(request.to, id));
                }
                let (reply, answer) = oneshot::channel();
                deliver(Inbound::Observe {
                    after: request.after,
                    reply,
                });
                // A dropped request (full driver queue) closes the
                // connection; the observer dials again.
                let answer = tokio::time::timeout(PEER_IO_TIMEOUT, answer)
                    .await
                    .map_err(|_| ReadError::TimedOut)?
                    .map_err(|_| ReadError::Stopped)?;
                write_json(&mut stream, KIND_OBSERVED, &answer).await?;
                continue;
            }
            other => return Err(FrameError::UnknownKind(other).into()),
        };
        if to != id {
            return Err(ReadError::WrongNode(to, id));
        }
        if from.is_some() {
            *sender = from;
        }
        deliver(inbound);
    }
}

/// Sends one peer's frames; runs until the transport is dropped.
async fn outbound(peer: u64, addr: SocketAddr, mut queue: mpsc::Receiver<Vec<u8>>) {
    let mut backoff = RECONNECT_BACKOFF.0;
    let mut stream: Option<TcpStream> = None;
    while let Some(bytes) = queue.recv().await {
        if stream.is_none() {
            match tokio::time::timeout(PEER_IO_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                    backoff = RECONNECT_BACKOFF.0;
                }
                _ => {
                    // The frame is dropped; wait before the next attempt
                    // and skip what queued meanwhile (it is stale).
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF.1);
                    while queue.try_recv().is_ok() {}
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        match tokio::time::timeout(PEER_IO_TIMEOUT, s.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            _ => {
                tracing::debug!(peer, %addr, "controller connection lost; will dial again");
                stream = None;
            }
        }
    }
}
