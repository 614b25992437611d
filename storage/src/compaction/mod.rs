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
//! Module map: [`offset_map`] (the bounded map), [`swap`] (cleaning a
//! `PartitionLog` and the crash-safe segment swap), [`cleaner`] (the two
//! passes over batches, no files).
//!
//! # Invariants
//! - See each module; together: the cleaned log read in offset order
//!   holds, for every key whose latest record lies in the cleaned range,
//!   exactly that record (or nothing for an expired tombstone), at its
//!   original offset; every producer's last batch is still there.
//!
//! # Caveats
//! - No dirty-ratio trigger, no `max.compaction.lag.ms`, no I/O rate
//!   limit yet: the broker's driver (`replica::log_cleaner` in the broker)
//!   runs one pass per compacted partition at every retention check.
//!
//! # References
//! Kafka's `LogCleaner`, `SkimpyOffsetMap`, `LogCleanerManager`.

pub mod cleaner;
pub mod offset_map;
pub mod swap;

pub use cleaner::{CleaningRules, Filtered, filter_batch, map_batches};
pub use offset_map::OffsetMap;
pub use swap::{CleaningReport, CrashPoint};
