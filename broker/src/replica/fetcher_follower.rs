//! What the replica fetcher needs from a partition this node follows: the
//! small surface between [`super::fetcher`] (network) and the partition
//! (log, epochs, high watermark).
//!
//! The fetcher never holds a partition's log: it asks where the log ends,
//! hands over fetched batches, and asks for truncation, each through one
//! named operation here. A follower partition implements [`FollowerLog`];
//! tests implement it over a bare `PartitionLog`.
//!
//! # Contract
//! - [`FollowerLog::append_fetched`] appends batches exactly as the leader
//!   wrote them (offsets and leader epochs kept, every CRC checked) and
//!   must continue the log end offset; anything else is an error, never a
//!   gap.
//! - [`FollowerLog::truncate_to`] removes every record at or above the
//!   offset and is durable when it returns; it is only called with an
//!   offset the leader's epoch history justifies (see
//!   [`super::fetcher_state`]).
//! - The follower's high watermark is `min(leader's high watermark, own
//!   log end offset)` and never moves back while the partition follows one
//!   leader epoch.

use std::fmt;

use crate::error::BrokerError;

/// Where a follower's log ends: what the next Fetch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerEnd {
    /// The log end offset: the next Fetch's `fetch_offset`.
    pub log_end_offset: i64,
    /// The leader epoch of the last batch in the log (`last_fetched_epoch`),
    /// `None` for an empty log.
    pub last_epoch: Option<i32>,
    /// Sent as the Fetch's `log_start_offset`.
    pub log_start_offset: i64,
}

/// The end of one leader epoch in a log: the start offset of the next
/// epoch, or the log end offset for the latest epoch (Kafka's
/// `LeaderEpochFileCache.endOffsetFor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    /// The largest epoch in the log that is `≤` the one asked about.
    pub epoch: i32,
    pub end_offset: i64,
}

/// A partition this node follows, as the fetcher sees it.
pub trait FollowerLog: Send + Sync + fmt::Debug {
    /// Where the log ends now.
    fn log_end(&self) -> Result<FollowerEnd, BrokerError>;

    /// The end of `epoch` in this log: `None` when the log holds no epoch
    /// `≤ epoch` (Kafka's UNDEFINED_EPOCH answer).
    fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<EpochEnd>, BrokerError>;

    /// Appends batches fetched from the leader (offsets and epochs kept,
    /// CRCs checked) and returns the new log end offset.
    fn append_fetched(&self, batches: &[u8]) -> Result<i64, BrokerError>;

    /// The follower's high watermark.
    fn high_watermark(&self) -> i64;

    /// Moves the follower's high watermark to `min(leader_high_watermark,
    /// log end offset)` when that is higher than it is.
    fn observe_leader_high_watermark(&self, leader_high_watermark: i64);

    /// Removes every record at or above `offset` (a batch boundary at or
    /// below it), durably; returns the new log end offset.
    fn truncate_to(&self, offset: i64) -> Result<i64, BrokerError>;

    /// Empties the log and starts it at `offset` (the leader's log start
    /// offset moved past everything this log holds), durably.
    fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), BrokerError>;
}
