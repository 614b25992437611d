//! Log compaction (`cleanup.policy=compact`): keep the latest record of
//! every key, drop older ones and, after `delete.retention.ms`, tombstones.
//!
//! ```text
//! segments:  [ clean (compacted before) | dirty (never cleaned) | active ]
//!                                                                 ^ never touched
//! 1. offset_map  key hash → latest offset over the dirty section,
//!                bounded by log.cleaner.dedupe.buffer.size
//! 2. cleaner     every batch of the clean and dirty sections below the
//!                mapped end is kept, dropped or rewritten with the
//!                records that survive (offsets kept, gaps allowed)
//! ```
//!
//! Module map: [`offset_map`] (the bounded map), [`cleaner`] (the two
//! passes over batches, no files), [`pass`] (one pass over a
//! `PartitionLog`'s segments, outside its lock), [`swap`] (the crash-safe
//! segment swap, under it), [`throttle`] (the I/O rate limit).
//!
//! # Invariants
//! - See each module; together: the cleaned log read in offset order
//!   holds, for every key whose latest record lies in the cleaned range,
//!   exactly that record (or nothing for an expired tombstone), at its
//!   original offset; every producer's last batch is still there.
//!
//! When a partition is cleaned (`min.cleanable.dirty.ratio`,
//! `max.compaction.lag.ms`) is the broker's driver's decision
//! (`replica::log_cleaner`), from [`DirtyShare`].
//!
//! # References
//! Kafka's `LogCleaner`, `SkimpyOffsetMap`, `LogCleanerManager`.

pub mod cleaner;
pub mod offset_map;
pub mod pass;
pub mod swap;
pub mod throttle;

pub use cleaner::{CleaningRules, Filtered, filter_batch, map_batches};
pub use offset_map::OffsetMap;
pub use pass::{CleanedSegment, CleaningInput, DirtyShare, Rewritten};
pub use swap::{CleaningReport, CrashPoint};
pub use throttle::Throttle;
