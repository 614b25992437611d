//! A partition this node follows, as its replica fetcher sees it: the
//! [`FollowerLog`] implementation over [`Partition`]'s follower
//! operations, plus the group-commit flush of what the fetcher appended.
//!
//! # Invariants
//! - Every operation goes through the partition's lock and, for writes, its
//!   follower role check: a fetcher that lost a race with the reconciler
//!   (the partition now leads) is refused, never writes.
//! - Appended batches are queued for the flusher; their fsync does not hold
//!   up the next fetch (the leader counts a follower's log end offset, as
//!   Kafka does; `docs/durability.md` says what that promises).

use std::fmt;
use std::sync::Arc;

use super::fetcher_follower::{EpochEnd, FollowerEnd, FollowerLog};
use super::flusher::Flusher;
use super::partition::Partition;
use crate::error::BrokerError;

/// A followed partition and the flusher its appends go to.
pub struct FollowingPartition {
    partition: Arc<Partition>,
    flusher: Flusher,
}

impl FollowingPartition {
    pub fn new(partition: Arc<Partition>, flusher: Flusher) -> Self {
        Self { partition, flusher }
    }

    /// The partition followed.
    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }
}

impl fmt::Debug for FollowingPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FollowingPartition")
            .field("topic", self.partition.topic())
            .field("partition", &self.partition.index())
            .finish()
    }
}

impl FollowerLog for FollowingPartition {
    fn log_end(&self) -> Result<FollowerEnd, BrokerError> {
        self.partition.follower_end()
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<EpochEnd>, BrokerError> {
        self.partition.own_epoch_end(epoch)
    }

    fn append_fetched(&self, batches: &[u8]) -> Result<i64, BrokerError> {
        let appended = self.partition.append_as_follower(batches)?;
        self.flusher.request_now(&self.partition);
        Ok(appended.log_end_offset)
    }

    fn high_watermark(&self) -> i64 {
        self.partition.progress().high_watermark
    }

    fn observe_leader_high_watermark(&self, leader_high_watermark: i64) {
        self.partition
            .follower_high_watermark(leader_high_watermark);
    }

    fn truncate_to(&self, offset: i64) -> Result<i64, BrokerError> {
        self.partition.truncate_to(offset)
    }

    fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), BrokerError> {
        self.partition.truncate_fully_and_start_at(offset)
    }
}
