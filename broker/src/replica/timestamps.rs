//! The leader's timestamp rules for a produced batch, as Kafka's
//! `LogValidator` applies them to magic-2 batches.
//!
//! | `message.timestamp.type` | record timestamps | header written |
//! |---|---|---|
//! | CreateTime | each within `[now - before.max.ms, now + after.max.ms]`, else INVALID_TIMESTAMP (whole batch) | type CreateTime, `maxTimestamp` = the records' largest |
//! | LogAppendTime | not checked | type LogAppendTime, `maxTimestamp` = the broker's clock at append |
//!
//! Kafka fixes, rather than refuses, a CreateTime batch whose header
//! `maxTimestamp` disagrees with its records (`setMaxTimestamp` after
//! recomputing it, for compressed and uncompressed batches alike); Sluice
//! does the same, since retention, the time index and ListOffsets trust
//! the header. Records keep their timestamp deltas; with LogAppendTime a
//! consumer reads every record's timestamp as the batch's `maxTimestamp`.
//!
//! # Copies
//! A batch whose header is already right is appended as sent. Otherwise
//! (every LogAppendTime batch, and a CreateTime batch with a wrong header)
//! the batch is copied once more to rewrite the header and its CRC.
//!
//! # References
//! KIP-32 (timestamps), KIP-937 (before/after bounds); Kafka's
//! `LogValidator.validateTimestamp` and `DefaultRecordBatch.setMaxTimestamp`.

use bytes::Bytes;
use sluice_protocol::RecordBatchView;
use sluice_protocol::TimestampType;
use sluice_protocol::records::BatchSummary;

use crate::error::BrokerError;
use crate::settings::TopicConfig;

/// A topic's timestamp settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampRules {
    pub timestamp_type: TimestampType,
    /// How far behind `now` a CreateTime record may be.
    pub before_max_ms: i64,
    /// How far ahead of `now` a CreateTime record may be.
    pub after_max_ms: i64,
}

impl TimestampRules {
    pub fn of(config: &TopicConfig) -> Self {
        let (before_max_ms, after_max_ms) = config.timestamp_bounds_ms();
        Self {
            timestamp_type: config.timestamp_type(),
            before_max_ms,
            after_max_ms,
        }
    }
}

impl Default for TimestampRules {
    /// Kafka's defaults: CreateTime, no bounds.
    fn default() -> Self {
        Self {
            timestamp_type: TimestampType::CreateTime,
            before_max_ms: i64::MAX,
            after_max_ms: i64::MAX,
        }
    }
}

/// Checks `view`'s record timestamps against `rules` and returns the bytes
/// to append: `None` when the batch is right as sent, else a copy with the
/// header Kafka's rules give it.
pub fn stamp(
    view: &RecordBatchView<'_>,
    summary: &BatchSummary,
    rules: &TimestampRules,
    now_ms: i64,
) -> Result<Option<Bytes>, BrokerError> {
    let max_timestamp = match rules.timestamp_type {
        TimestampType::LogAppendTime => now_ms,
        TimestampType::CreateTime => {
            check_bounds(summary, rules, now_ms)?;
            summary.max_timestamp
        }
    };
    if view.timestamp_type() == rules.timestamp_type && view.max_timestamp() == max_timestamp {
        return Ok(None);
    }
    Ok(Some(
        view.with_max_timestamp(rules.timestamp_type, max_timestamp),
    ))
}

fn check_bounds(
    summary: &BatchSummary,
    rules: &TimestampRules,
    now_ms: i64,
) -> Result<(), BrokerError> {
    let earliest = now_ms.saturating_sub(rules.before_max_ms);
    let latest = now_ms.saturating_add(rules.after_max_ms);
    for timestamp in [summary.min_timestamp, summary.max_timestamp] {
        if timestamp < earliest || timestamp > latest {
            return Err(BrokerError::InvalidTimestamp {
                timestamp,
                earliest,
                latest,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sluice_protocol::batch_builder::plain_batch;
    use sluice_protocol::records;

    use super::*;

    /// A batch of three records stamped 1000, 1010, 1020 with `header_max`
    /// written as its maxTimestamp.
    fn batch(header_max: i64) -> Bytes {
        let b = plain_batch(3, 1000, 10).unwrap();
        let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
        view.with_max_timestamp(TimestampType::CreateTime, header_max)
    }

    fn summary(b: &Bytes) -> BatchSummary {
        let view = RecordBatchView::parse(b, usize::MAX).unwrap();
        records::validate_batch(&view, usize::MAX).unwrap()
    }

    #[test]
    fn create_time_keeps_a_right_header_and_fixes_a_wrong_one() {
        let right = batch(1020);
        let view = RecordBatchView::parse(&right, usize::MAX).unwrap();
        let rules = TimestampRules::default();
        assert_eq!(stamp(&view, &summary(&right), &rules, 5000).unwrap(), None);

        let wrong = batch(9_999_999);
        let view = RecordBatchView::parse(&wrong, usize::MAX).unwrap();
        let fixed = stamp(&view, &summary(&wrong), &rules, 5000)
            .unwrap()
            .unwrap();
        let fixed = RecordBatchView::parse(&fixed, usize::MAX).unwrap();
        fixed.verify_crc().unwrap();
        assert_eq!(fixed.max_timestamp(), 1020);
        assert_eq!(fixed.timestamp_type(), TimestampType::CreateTime);
    }

    #[test]
    fn log_append_time_stamps_the_header_with_now() {
        let b = batch(1020);
        let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
        let rules = TimestampRules {
            timestamp_type: TimestampType::LogAppendTime,
            ..TimestampRules::default()
        };
        let out = stamp(&view, &summary(&b), &rules, 5000).unwrap().unwrap();
        let out = RecordBatchView::parse(&out, usize::MAX).unwrap();
        out.verify_crc().unwrap();
        assert_eq!(out.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(out.max_timestamp(), 5000);
        assert_eq!(out.base_timestamp(), view.base_timestamp());
    }

    #[test]
    fn create_time_records_outside_the_bounds_are_invalid_timestamps() {
        let b = batch(1020);
        let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
        let s = summary(&b);
        let rules = |before, after| TimestampRules {
            timestamp_type: TimestampType::CreateTime,
            before_max_ms: before,
            after_max_ms: after,
        };
        // now 1015: 1000 is 15 behind, 1020 is 5 ahead.
        assert!(stamp(&view, &s, &rules(15, 5), 1015).is_ok());
        for (before, after) in [(14, 5), (15, 4)] {
            let e = stamp(&view, &s, &rules(before, after), 1015).unwrap_err();
            assert!(matches!(e, BrokerError::InvalidTimestamp { .. }), "{e}");
            assert_eq!(e.code(), 32);
        }
    }
}
