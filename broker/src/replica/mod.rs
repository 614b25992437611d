//! Partitions this node hosts — as leader or follower, as the metadata
//! image says — their logs, producer state, high watermarks, the
//! reconciler that applies each image to them, and the group-commit
//! flusher.
//!
//! ```text
//! controller ── publish image ──► reconciler (one task) ──► ReplicaManager
//!                                   │ open / set aside / delete logs,
//!                                   │ apply roles and epochs
//!                                   └─► publishes what it applied (Applied)
//! Broker::propose ── waits for Applied ≥ its image, reads its topic's result
//! handlers ── named Partition operations (role and epoch checked inside)
//! ```

pub mod alter_partition;
pub mod budget_reservation;
pub mod clean_history;
pub mod fetcher;
pub mod fetcher_follower;
pub mod fetcher_manager;
pub mod fetcher_state;
pub mod flusher;
pub mod follower_state;
pub mod following;
pub mod high_watermark;
pub mod hw_checkpoint;
pub mod isr;
pub mod leadership;
pub mod log_cleaner;
pub mod manager;
pub mod offset_checkpoint;
pub mod partition;
pub mod partition_metadata;
pub mod producer_snapshot;
pub mod producer_state;
pub mod reconciler;
pub mod role;
pub mod sync_crew;
pub mod timestamps;

pub use flusher::Flusher;
pub use high_watermark::{HighWatermark, Progress};
pub use manager::ReplicaManager;
pub use partition::{
    AppendOutcome, FollowerAppend, FollowerFetch, FollowerRead, IsrChange, Partition, ReadOutcome,
    ReplicaSet,
};
pub use reconciler::Reconciler;
pub use role::{PartitionRole, Role};
