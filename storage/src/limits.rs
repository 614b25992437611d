//! Every bound the storage crate enforces, its default, and why.
//!
//! Kafka's names are given for the values a topic can configure; those
//! defaults live in [`crate::LogConfig::default`] and are re-stated here so
//! every number has one home.
//!
//! # Invariants
//! - A `.log` file never exceeds [`MAX_SEGMENT_BYTES`], so every position in
//!   it fits the 4-byte [`crate::FilePosition`] stored in `.index` entries.

/// `segment.bytes` ceiling: positions are stored as 4-byte values, and Kafka
/// caps the setting at `Integer.MAX_VALUE`.
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// `segment.bytes` floor.
///
/// Kafka 3.x allows 14 (a v0 message's overhead, smaller than any v2 batch
/// header) and Kafka 4.0 raised it to 1 MiB (KIP-1030). Sluice takes
/// 1 KiB: every segment holds a batch header with records behind it, and
/// small segments stay usable for tests of rolling and retention.
pub const MIN_SEGMENT_BYTES: u64 = 1024;

// A segment must be able to hold at least one batch header.
const _: () = assert!(MIN_SEGMENT_BYTES >= sluice_protocol::RECORD_BATCH_HEADER_BYTES as u64);

/// Kafka's default `segment.bytes` (1 GiB).
pub const DEFAULT_SEGMENT_BYTES: u64 = 1 << 30;

/// Bytes past the checkpointed recovery point at which a roll writes the
/// checkpoint itself (`PartitionLog::roll`), rather than leaving it to the
/// periodic `log.flush.offset.checkpoint.interval.ms`: after a crash,
/// recovery scans at most this much besides the segment holding the
/// recovery point. One default segment; sixteen of 64 MiB.
pub const RECOVERY_SCAN_BYTES_MAX: u64 = 1 << 30;

/// Kafka's default `segment.ms` (7 days).
pub const DEFAULT_SEGMENT_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Kafka's default `segment.index.bytes` (10 MiB), per index file.
pub const DEFAULT_SEGMENT_INDEX_BYTES: u64 = 10 * 1024 * 1024;

/// `segment.index.bytes` floor: room for a few entries of either index, so
/// an index-full roll cannot loop on an empty segment. (Kafka's floor is 4
/// bytes, less than one entry; Sluice refuses 4..47.)
pub const MIN_SEGMENT_INDEX_BYTES: u64 = 4 * crate::time_index::TIME_INDEX_ENTRY_BYTES as u64;

/// `index.interval.bytes` floor, Kafka's: 0 adds an index entry for every
/// batch (as 1 does, since an entry is added once at least this many bytes
/// were appended since the last one).
pub const MIN_INDEX_INTERVAL_BYTES: u32 = 0;

/// `segment.ms` floor, Kafka's: a segment lives at least 1 ms.
pub const MIN_SEGMENT_MS: u64 = 1;

/// Kafka's default `index.interval.bytes`: one sparse index entry per 4 KiB.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u32 = 4096;

/// Kafka's default `retention.ms` (7 days).
pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Kafka's default `max.message.bytes` (1 MiB + 12 bytes of batch prefix).
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 1_048_588;

/// Largest batch the log will parse when it reads its own files back.
///
/// Not `max.message.bytes`: that setting may be lowered after larger batches
/// were stored, and stored batches must stay readable. A batch can never be
/// larger than its segment, so the segment ceiling is the bound.
pub const MAX_STORED_BATCH_BYTES: usize = MAX_SEGMENT_BYTES as usize;

/// Threads that open, create or close partitions side by side
/// (`parallel.rs`). The work waits on fsyncs, which the file system commits
/// together: on this machine's ext4 disk one fsync alone took 3.8 ms, while
/// eight or more threads brought it to about 0.15 ms each. Sixteen keeps the
/// journal busy without a thread (and its stack and maps) per partition.
pub const PARALLEL_FILE_THREADS: usize = 16;
