//! `LogConfig`: the per-partition settings, under Kafka's topic-config names.
//!
//! | field | Kafka key | default |
//! |---|---|---|
//! | `segment_bytes` | `segment.bytes` | 1 GiB |
//! | `segment_ms` | `segment.ms` | 7 days |
//! | `segment_index_bytes` | `segment.index.bytes` | 10 MiB |
//! | `index_interval_bytes` | `index.interval.bytes` | 4096 |
//! | `retention_ms` | `retention.ms` | 7 days (`None` = -1, keep forever) |
//! | `retention_bytes` | `retention.bytes` | `None` (-1, unlimited) |
//! | `flush_messages` | `flush.messages` | `None` (Long.MAX: leave it to the OS) |
//! | `flush_ms` | `flush.ms` | `None` (Long.MAX) |
//! | `max_message_bytes` | `max.message.bytes` | 1048588 |
//!
//! # Invariants
//! - A validated config has `MIN_SEGMENT_BYTES <= segment_bytes <=
//!   MAX_SEGMENT_BYTES`. `max_message_bytes` may exceed `segment_bytes`, as
//!   in Kafka: a batch larger than `segment.bytes` gets a segment of its
//!   own, grown to hold it (`Segment::fits`).
//! - Every bound checked here is a constant of [`crate::limits`]; the
//!   broker's settings table (`broker/src/settings/`) validates topic
//!   configs against the same constants, so a value a client was allowed
//!   to set always opens a log.

use crate::error::{Error, Result};
use crate::limits;

/// Settings of one partition log. `Default` is Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active `.log` would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty active segment this long after its
    /// first batch's max timestamp (or its creation).
    pub segment_ms: u64,
    /// `segment.index.bytes`: preallocated size of each index file; a full
    /// index rolls the segment.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of batches between sparse index entries.
    pub index_interval_bytes: u32,
    /// `retention.ms`: delete segments whose largest timestamp is older.
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: delete old segments while the log exceeds this.
    pub retention_bytes: Option<u64>,
    /// `flush.messages`: `maybe_flush` fsyncs after this many unflushed records.
    pub flush_messages: Option<u64>,
    /// `flush.ms`: `maybe_flush` fsyncs when the last flush is this old.
    pub flush_ms: Option<u64>,
    /// `max.message.bytes`: the largest batch an append accepts.
    pub max_message_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: limits::DEFAULT_SEGMENT_BYTES,
            segment_ms: limits::DEFAULT_SEGMENT_MS,
            segment_index_bytes: limits::DEFAULT_SEGMENT_INDEX_BYTES,
            index_interval_bytes: limits::DEFAULT_INDEX_INTERVAL_BYTES,
            retention_ms: Some(limits::DEFAULT_RETENTION_MS),
            retention_bytes: None,
            flush_messages: None,
            flush_ms: None,
            max_message_bytes: limits::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

impl LogConfig {
    /// Checks every bound; `PartitionLog::open` calls it.
    pub fn validate(&self) -> Result<()> {
        let bad = |key, value: u64, reason| {
            Err(Error::InvalidConfig {
                key,
                value: value.to_string(),
                reason,
            })
        };
        if !(limits::MIN_SEGMENT_BYTES..=limits::MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return bad(
                "segment.bytes",
                self.segment_bytes,
                "must lie between the batch header size and i32::MAX",
            );
        }
        if !(limits::MIN_SEGMENT_INDEX_BYTES..=limits::MAX_SEGMENT_BYTES)
            .contains(&self.segment_index_bytes)
        {
            return bad(
                "segment.index.bytes",
                self.segment_index_bytes,
                "must hold a few index entries and stay below i32::MAX",
            );
        }
        // index.interval.bytes: every u32 is valid; its floor
        // (limits::MIN_INDEX_INTERVAL_BYTES) is 0, as in Kafka.
        if self.segment_ms < limits::MIN_SEGMENT_MS {
            return bad("segment.ms", self.segment_ms, "must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let c = LogConfig::default();
        c.validate().unwrap();
        assert_eq!(c.segment_bytes, 1 << 30);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.segment_index_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn out_of_bounds_values_are_rejected_with_their_key() {
        let c = LogConfig {
            segment_bytes: u64::from(u32::MAX),
            ..LogConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(Error::InvalidConfig {
                key: "segment.bytes",
                ..
            })
        ));
        let c = LogConfig {
            segment_bytes: 4096,
            max_message_bytes: 8192,
            ..LogConfig::default()
        };
        c.validate()
            .expect("a batch above segment.bytes gets a segment of its own, as in Kafka");
    }

    #[test]
    fn an_index_entry_per_batch_is_a_valid_config() {
        let c = LogConfig {
            index_interval_bytes: limits::MIN_INDEX_INTERVAL_BYTES,
            ..LogConfig::default()
        };
        c.validate().unwrap();
    }
}
