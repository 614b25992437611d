//! Cluster metadata: topics, partition counts, topic configs and producer-id
//! allocation, as a log of records and the image they build.
//!
//! ```text
//! handler ── propose(record) ──► controller::Controller ──► Raft log
//!            (replicated to the voters, fsynced) ─► every node applies the
//!            committed record to its MetadataImage ─► publish Arc<MetadataImage>
//! ```
//!
//! The records and the deterministic [`MetadataImage::apply`] live here; the
//! Raft quorum that orders them lives in [`crate::controller`]. [`MetadataLog`]
//! is the single-node log of earlier versions, kept to import such a data
//! directory on first start.
//!
//! # Invariants
//! - A record is applied only once it is committed (fsynced by a majority
//!   of voters), so what a client was told survives a crash.
//! - Every node applies the same records in the same order, so a check such
//!   as "topic exists" gives the same answer everywhere.

pub mod election;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod image;
pub mod log;
pub mod placement;
pub mod reassignment;
pub mod records;
pub mod topic_name;

pub use crate::controller::Controller;
pub use image::{ApplyError, BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
pub use log::{MetadataLog, MetadataLogError};
pub use records::{
    BrokerId, Endpoint, MetadataRecord, NO_LEADER, PartitionChangeAt, PartitionRecord,
};

/// Why a proposal was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The record does not apply to the image (deterministic, the same on
    /// every node).
    #[error(transparent)]
    Rejected(#[from] ApplyError),
    /// No leader is known (an election is under way): retriable.
    #[error("no active controller is known")]
    NotController,
    /// The leader changed while the proposal waited; it may or may not
    /// have committed: retriable (NOT_CONTROLLER).
    #[error("the active controller changed; the change may or may not have been made")]
    LeaderChanged,
    /// Not committed and applied in time: retriable, and the change may
    /// still happen.
    #[error("metadata change not committed in time")]
    TimedOut,
    /// The controller's queue is full: retriable.
    #[error("controller queue is full")]
    Busy,
    /// The controller stopped (shutdown or a storage failure).
    #[error("controller is not running")]
    Stopped,
}
