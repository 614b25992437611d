//! Partitions this node hosts: their logs, producer state, high watermarks
//! and the group-commit flusher.
//!
//! Today every partition is led by this node (a cluster of one). The
//! replication work adds followers, the ISR and leader epochs here, behind
//! the same `Partition` surface handlers use.

pub mod fetcher;
pub mod fetcher_follower;
pub mod fetcher_manager;
pub mod fetcher_state;
pub mod flusher;
pub mod follower_state;
pub mod isr;
pub mod leadership;
pub mod manager;
pub mod partition;
pub mod partition_metadata;
pub mod producer_state;
pub mod timestamps;

pub use flusher::Flusher;
pub use manager::ReplicaManager;
pub use partition::{AppendOutcome, Partition, Progress, ReadOutcome};
