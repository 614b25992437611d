//! The controller quorum: cluster metadata replicated with Raft (raft-rs).
//!
//! ```text
//!  handler ── Broker::propose ──► Controller (handle, any task)
//!                                   │ bounded queue
//!                                   ▼
//!            driver thread: ControllerNode = RawNode<RaftStorage> + image
//!              tick every 50 ms · step inbound messages · propose
//!              Ready: write entries/hard state ─► fsync ─► apply committed
//!                     entries to MetadataImage ─► send messages
//!              publish Arc<MetadataImage> (watch) · answer proposals
//!                                   │ ▲
//!                       Transport (TCP, CRC frames, per-peer bounded queues)
//!                                   ▼ │
//!                            the other voters
//! ```
//!
//! Files, one concept each: [`frame`] (the CRC frame, disk and wire),
//! [`disk`] (the file seam the simulation replaces), [`raft_storage`]
//! (raft-rs's `Storage` over our log, snapshots, compaction), [`node`] (the
//! I/O-free controller the driver and the simulation run), [`driver`] (the
//! thread and the [`Controller`] handle), [`transport`] (TCP between
//! controllers), [`limits`]. Election timeouts draw from
//! [`sluice_client::rng::SplitMix64`], seeded, as the simulation does.
//!
//! Proposals from a follower are forwarded by raft-rs itself (a follower
//! that knows the leader sends it the `MsgPropose`); the proposer learns the
//! outcome by applying the committed entry locally, like every other node.
//!
//! # Invariants
//! - Entries, hard state and snapshots are fsynced before any message of
//!   the same Ready is sent and before any entry is applied.
//! - Every node applies the same committed entries in the same order, so
//!   images agree; validation happens at apply time.
//! - Every queue is bounded ([`limits`]); a full queue drops a message or
//!   refuses a proposal with a retriable error, never blocks the Ready loop.
//!
//! # Caveats
//! - Static membership: the voter set is configuration, not conf changes.
//! - A node whose id is not among the voters is broker-only: it runs no
//!   Raft and follows the voters' committed metadata ([`observer`]).
//!
//! References: KIP-500, KIP-595 (the Raft metadata quorum), KIP-631.

pub mod balancer;
pub mod disk;
pub mod driver;
pub mod frame;
pub mod limits;
pub mod liveness;
pub mod node;
pub mod observer;
pub mod raft_storage;
pub mod transport;

pub use balancer::LeaderBalancing;
pub use driver::{Controller, ControllerConfig, LeaderBalancingConfig, Voter};
pub use liveness::Heartbeat;
pub use node::{ControllerNode, NodeConfig, NodeError, Output};
pub use raft_storage::RaftStorage;

/// raft-rs logs through `slog`; this sends those lines to `tracing`.
pub fn raft_logger() -> slog::Logger {
    slog::Logger::root(tracing_slog::TracingSlogDrain, slog::o!())
}
