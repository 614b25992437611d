//! The broker's log cleaner: which partitions are compacted, and one
//! cleaning pass over each, run by the maintenance task at every
//! retention check (`log.retention.check.interval.ms`).
//!
//! ```text
//! per partition whose topic lists compact in cleanup.policy:
//!   limit      = high watermark (never clean what consumers cannot read)
//!   newest     = now - min.compaction.lag.ms
//!   tombstones = removed once now - delete.retention.ms passes their batch
//!   PartitionLog::clean(map, rules, limit, newest)   (storage::compaction)
//! ```
//!
//! # Which logs, which segments
//! Every local log of a compacted topic, whether this node leads or
//! follows it (as Kafka cleans every local replica): cleaning never
//! changes what a consumer reads at an offset, only which superseded
//! records are left, so replicas cleaned at different times serve the
//! same latest value per key. The cleaner never touches the active
//! segment, nor a segment that does not end at or below the high
//! watermark (the leader's, or the one a follower learnt from it): what
//! may still be truncated by a leader change is never rewritten.
//!
//! # Limits
//! - One key → offset map for the whole broker, allocated the first time
//!   a compacted partition is cleaned and reused (`log.cleaner.dedupe.buffer.size`).
//!   One pass cleans as much of a partition as the map holds; the next
//!   continues.
//!
//! # Caveats
//! - No dirty-ratio trigger (`min.cleanable.dirty.ratio`), no
//!   `max.compaction.lag.ms`, no I/O rate limit
//!   (`log.cleaner.io.max.bytes.per.second`) yet: each check re-reads the
//!   inactive segments of every compacted partition and rewrites those
//!   that lose records (issue 16).
//!
//! # References
//! Kafka's `LogCleaner`, `LogCleanerManager`.

use std::sync::Mutex;

use sluice_storage::compaction::{CleaningRules, OffsetMap};

use crate::decompression_budget::DecompressionBudget;
use crate::error::BrokerError;
use crate::replica::Partition;
use crate::settings::Compaction;

/// The broker's one cleaner.
#[derive(Debug)]
pub struct LogCleaner {
    map: Mutex<Option<OffsetMap>>,
    memory: usize,
}

impl LogCleaner {
    /// A cleaner whose map will take `memory` bytes once first used.
    pub fn new(memory: usize) -> Self {
        Self {
            map: Mutex::new(None),
            memory,
        }
    }

    /// One cleaning pass over `p`.
    pub fn clean(
        &self,
        p: &Partition,
        compaction: Compaction,
        budget: &DecompressionBudget,
        now_ms: i64,
    ) -> Result<(), BrokerError> {
        let mut guard = self.map.lock().map_err(|_| BrokerError::StatePoisoned)?;
        let map = guard.get_or_insert_with(|| OffsetMap::with_memory(self.memory));
        let rules = CleaningRules {
            tombstone_horizon_ms: Some(now_ms.saturating_sub(compaction.delete_retention_ms)),
            records_bytes_max: budget.batch_bytes_max(),
        };
        let newest = now_ms.saturating_sub(compaction.min_compaction_lag_ms);
        let report = p.clean_log(map, &rules, newest)?;
        if report.segments_cleaned > 0 {
            tracing::info!(
                topic = %p.topic(),
                partition = p.index(),
                segments = report.segments_cleaned,
                bytes_before = report.bytes_before,
                bytes_after = report.bytes_after,
                "compacted"
            );
        }
        Ok(())
    }
}
