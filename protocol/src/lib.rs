//! `sluice-protocol`: the Kafka wire formats Sluice speaks, and nothing else.
//!
//! This crate owns formats only: no files, no sockets, no async runtime.
//!
//! - [`record_batch`]: the RecordBatch v2 header view (zero-copy field
//!   access, CRC-32C check, in-place rewrite of the fields outside the CRC).
//!   It is both the wire and the disk format, so it lives here once.
//!
//! # Invariants
//! - Nothing here allocates an amount read from the wire before checking it
//!   against the bytes actually present.

pub mod error;
pub mod record_batch;

pub use error::{DecodeError, Result};
pub use record_batch::{
    BatchIter, CompressionType, RECORD_BATCH_HEADER_BYTES, RecordBatchView, TimestampType,
};
