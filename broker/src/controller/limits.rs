//! Every bound and timing of the controller, with its default and why.

use std::time::Duration;

/// One Raft tick. Election after 10–20 ticks without a leader (0.5–1 s),
/// heartbeats every 2 (100 ms): a dead active controller is replaced in
/// about a second, the goal issue 14 sets.
pub const TICK: Duration = Duration::from_millis(50);

/// Ticks before a follower campaigns (raft-rs doubles it at random).
pub const ELECTION_TICKS: usize = 10;

/// Ticks between a leader's heartbeats.
pub const HEARTBEAT_TICKS: usize = 2;

/// The shortest grace after a lost broker connection before the broker is
/// fenced (the grace is half a heartbeat interval, 250 ms by default). A
/// live broker's connection closes only when the broker itself gave up on
/// it (a write error or timeout) and it dials again with its next frame; a
/// voter sends a Raft message every [`HEARTBEAT_TICKS`]. The grace covers
/// the end of stream read after that next frame (the two connections race).
pub const LOST_CONNECTION_GRACE_TICKS_MIN: u64 = 2 * HEARTBEAT_TICKS as u64;

/// Applied entries between snapshots of the image: metadata changes are
/// rare and small, so a thousand keeps the log to a few hundred KiB.
pub const SNAPSHOT_INTERVAL: u64 = 1000;

/// Events (proposals and inbound messages) queued for the driver thread.
/// A full queue refuses proposals (retriable) and drops messages (raft-rs
/// retransmits).
pub const DRIVER_QUEUE: usize = 1024;

/// Proposals of this node waiting for their entry to apply.
pub const PENDING_PROPOSALS_MAX: usize = 1024;

/// How long a proposal waits to be committed and applied before it is
/// answered REQUEST_TIMED_OUT.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// One attempt at handing Raft leadership over at shutdown: raft-rs
/// abandons a transfer after an election timeout (at most 2 × 10 ticks).
pub const TRANSFER_ATTEMPT: Duration = Duration::from_secs(1);

/// How long a stopping active controller tries to hand leadership over
/// before it stops anyway (the others then elect after their timeout).
pub const TRANSFER_BOUND: Duration = Duration::from_secs(3);

/// Entries in one answer to a broker-only node's metadata fetch.
pub const OBSERVE_ENTRIES_MAX: usize = 1000;

/// Entry bytes in one such answer (at least one entry is sent): well
/// under [`WIRE_FRAME_BYTES_MAX`].
pub const OBSERVE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Frames queued per peer; when full, new frames are dropped.
pub const PEER_QUEUE: usize = 1024;

/// Largest frame on the controller wire: a snapshot with the whole image.
pub const WIRE_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Inbound controller connections served at once.
pub const INBOUND_CONNECTIONS_MAX: usize = 64;

/// Reconnect backoff to a peer: doubles from the first to the last.
pub const RECONNECT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(50), Duration::from_secs(1));

/// Connect and write timeout to a peer; past it the connection is dropped
/// and made again.
pub const PEER_IO_TIMEOUT: Duration = Duration::from_secs(2);
