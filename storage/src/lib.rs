//! `sluice-storage`: the partition log.
//!
//! A [`PartitionLog`] is one partition's directory of segments: RecordBatch
//! v2 frames stored exactly as producers sent them (offsets and leader
//! epoch rewritten on the way in), in reserved (fallocate) memory-mapped
//! `.log` files written with `pwrite` and read through the mapping
//! with sparse `.index` and `.timeindex` files, recovered batch by batch
//! (CRC-32C) after a crash. A [`LogDir`] holds the partitions of one disk
//! and the health flag they share. No networking, no async runtime.
//!
//! Module map: [`offset`] (newtypes), `error`, `config`, `limits`,
//! `mmap` (the only `unsafe`), `segment`, `sparse_index` (what `offset_index`
//! and `time_index` share), `offset_index`, `time_index`,
//! `log` (open, append, roll, close), `read`, `recovery`, `retention` (retention,
//! DeleteRecords, truncation), [`compaction`] (the cleaner and its segment swap), [`producer_snapshot`] (producer-state snapshot files), `checkpoint`, `flush`, `log_dir`, `region`, `budget` (the partition budget from process limits), `file_budget` (inactive segments' files opened on demand, closed LRU), [`reclaim`] (removed files freed in steps on a thread of its own), `mapped_inodes` (which files are mapped now).
//! The on-disk formats are specified in `docs/formats.md`; what each call
//! makes durable is in `log.rs` and `docs/durability.md`.
//!
//! # Invariants
//! - Appends to one partition are serialised by `&mut PartitionLog`;
//!   different partitions are independent.
//! - Bytes handed to readers ([`FileRegion`], `Bytes`) never change and
//!   stay readable for as long as the reader holds them, even after the
//!   segment is deleted or truncated away.

pub mod budget;
mod checkpoint;
pub mod compaction;
mod config;
mod error;
mod fault;
pub mod file_budget;
mod flush;
pub mod leader_epoch;
pub mod limits;
mod log;
mod log_dir;
mod mapped_inodes;
mod mmap;
pub mod offset;
mod offset_index;
pub mod parallel;
pub mod producer_snapshot;
mod read;
pub mod reclaim;
mod recovery;
mod region;
mod removed_segments;
mod retention;
mod sealed_files;
mod segment;
mod spare_segment;
mod sparse_index;
mod time_index;

pub use budget::{PartitionBudget, ProcessLimits};
pub use config::LogConfig;
pub use error::{Error, Result};
pub use file_budget::{FileBudget, FileBudgetStats};
pub use flush::PendingFlush;
pub use leader_epoch::{EpochEntry, LeaderEpochCache};
pub use log::{AppendInfo, PartitionLog, UnflushedFile};
pub use log_dir::{LogDir, LogDirHealth, TopicPartition};
pub use offset::{FilePosition, LeaderEpoch, Offset, RelativeOffset};
pub use reclaim::{ReclaimStats, Reclaimer};
pub use region::{FileRegion, ReadInfo};
pub use removed_segments::RemovedSegments;
pub use sealed_files::SealedFiles;

#[cfg(test)]
mod test_util;
