//! One file per Kafka API; each defines `handle_<api>` taking the decoded
//! request and returning the response (or a [`Handled`] when the answer may
//! come later or not at all).

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod partition_reassignments;
pub mod produce;
pub mod replica_fetch;
pub mod sync_group;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A request's `timeoutMs` (Produce, ElectLeaders,
/// AlterPartitionReassignments) as a duration; 0 when negative: Kafka's
/// deadline is then already past.
pub(crate) fn request_timeout(timeout_ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0))
}

/// A handler's answer.
pub enum Handled<R> {
    /// The response is ready.
    Now(R),
    /// The response completes later (durability wait, fetch long-poll);
    /// requests behind it are processed meanwhile, replies stay in order.
    Later(Pin<Box<dyn Future<Output = R> + Send + 'static>>),
    /// No response is sent (acks=0 produce).
    Nothing,
}
