//! The replica fetcher's decisions for one partition, free of I/O: what a
//! leader's answer means for the follower's log.
//!
//! ```text
//! Fetch answer (per partition)          decision
//! ─────────────────────────────────     ──────────────────────────────────
//! NONE, diverging_epoch set (v12+)  →   Truncate(truncation_offset(…))
//! NONE, records                     →   Append(records), then the HW
//! NONE, no records                  →   HighWatermark only
//! OFFSET_OUT_OF_RANGE               →   Reset (ask the leader's log start
//!                                        and end with ListOffsets)
//! NOT_LEADER_OR_FOLLOWER, FENCED_…,
//! UNKNOWN_LEADER_EPOCH, anything else → Backoff (the metadata image moves
//!                                        the partition; retry after
//!                                        `replica.fetch.backoff.ms`)
//! ```
//!
//! [`truncation_offset`] is Kafka's `AbstractFetcherThread
//! .getOffsetTruncationState` (KIP-101, KIP-279, KIP-595): given the
//! leader's end offset for an epoch and the follower's own end for that
//! epoch, the offset to truncate to, and whether that settles it or the
//! follower must ask again with an older epoch.
//!
//! # Invariants
//! - A truncation offset is never above the follower's log end offset.
//! - A truncation that is not `complete` leaves the partition asking again
//!   (the next Fetch carries the new `last_fetched_epoch`), so a follower
//!   never appends after an unresolved divergence.

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::PartitionData;
use sluice_protocol::error_code::ErrorCode;

use super::fetcher_follower::EpochEnd;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// Where a follower truncates after comparing epochs with its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub offset: i64,
    /// False when the follower's epoch at that point differs from the
    /// leader's: it truncates to its own end of that epoch and asks again.
    pub complete: bool,
}

/// The leader's end offset for an epoch, as a diverging epoch (Fetch v12+)
/// or an OffsetForLeaderEpoch answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderEpochEnd {
    pub epoch: i32,
    pub end_offset: i64,
}

/// Kafka's `getOffsetTruncationState`.
///
/// - The leader knows no end offset (UNDEFINED_EPOCH_OFFSET): truncate to
///   the follower's high watermark, the only offset known to be committed.
/// - The leader knows no epoch `≤` the one asked (UNDEFINED_EPOCH), or the
///   follower has no epoch `≤` the leader's: truncate to the leader's end
///   offset.
/// - The follower's largest epoch `≤` the leader's is the leader's: the
///   logs agree up to the leader's end offset.
/// - It is an older epoch: truncate to the follower's end of that epoch
///   and ask again (not complete).
///
/// Never above `log_end_offset`.
pub fn truncation_offset(
    leader: LeaderEpochEnd,
    follower_for_leader_epoch: Option<EpochEnd>,
    log_end_offset: i64,
    high_watermark: i64,
) -> Truncation {
    let complete = |offset: i64| Truncation {
        offset: offset.min(log_end_offset),
        complete: true,
    };
    if leader.end_offset == UNDEFINED_EPOCH_OFFSET {
        return complete(high_watermark);
    }
    if leader.epoch == UNDEFINED_EPOCH {
        return complete(leader.end_offset);
    }
    match follower_for_leader_epoch {
        None => complete(leader.end_offset),
        Some(own) if own.epoch == leader.epoch => complete(leader.end_offset.min(own.end_offset)),
        Some(own) => Truncation {
            offset: own.end_offset.min(log_end_offset),
            complete: false,
        },
    }
}

/// What one partition of a Fetch answer asks the follower to do.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchDecision {
    /// Append `records` (whole batches, possibly a partial last one the
    /// caller must drop), then observe the leader's high watermark.
    Append { records: Bytes, high_watermark: i64 },
    /// Nothing new: observe the leader's high watermark only.
    HighWatermark(i64),
    /// The logs diverge (KIP-595 diverging epoch): compare epochs and
    /// truncate before fetching again.
    Diverging(LeaderEpochEnd),
    /// The fetch offset is outside the leader's log.
    OutOfRange,
    /// The leader refused: wait and retry (the image will move the
    /// partition if leadership changed).
    Backoff(ErrorCode),
}

/// Reads one partition of a Fetch answer.
pub fn decide(partition: &PartitionData) -> FetchDecision {
    let error = ErrorCode::from_code(partition.error_code);
    if error.is_none() {
        let diverging = &partition.diverging_epoch;
        if diverging.epoch != UNDEFINED_EPOCH || diverging.end_offset != UNDEFINED_EPOCH_OFFSET {
            return FetchDecision::Diverging(LeaderEpochEnd {
                epoch: diverging.epoch,
                end_offset: diverging.end_offset,
            });
        }
        return match &partition.records {
            Some(records) if !records.is_empty() => FetchDecision::Append {
                records: records.clone(),
                high_watermark: partition.high_watermark,
            },
            _ => FetchDecision::HighWatermark(partition.high_watermark),
        };
    }
    if error == ErrorCode::of(kafka_protocol::error::ResponseError::OffsetOutOfRange) {
        return FetchDecision::OutOfRange;
    }
    FetchDecision::Backoff(error)
}

/// Where a follower whose fetch offset is out of range starts again
/// (Kafka's `AbstractFetcherThread.fetchOffsetAndTruncate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfRangeReset {
    /// The leader's log ends below ours (possible only after an unclean
    /// election): truncate to the leader's end.
    TruncateTo(i64),
    /// The leader's log starts above our end: empty ours and start there.
    StartAt(i64),
    /// Our end is inside the leader's log after all (it moved meanwhile):
    /// fetch again from our end.
    Retry,
}

/// Kafka's reset rule, given the leader's log start and end offsets.
pub fn out_of_range_reset(
    leader_log_start: i64,
    leader_log_end: i64,
    log_end_offset: i64,
) -> OutOfRangeReset {
    if leader_log_end < log_end_offset {
        OutOfRangeReset::TruncateTo(leader_log_end)
    } else if leader_log_start > log_end_offset {
        OutOfRangeReset::StartAt(leader_log_start)
    } else {
        OutOfRangeReset::Retry
    }
}

/// Keeps only the whole batches at the front of `records` (a leader may
/// cut the last batch at the partition byte limit, as Kafka does). Returns
/// the length of the whole-batch prefix; a prefix of 0 with non-empty
/// `records` means one batch larger than the fetch size.
pub fn whole_batches_len(records: &[u8]) -> usize {
    /// `baseOffset` (8) + `batchLength` (4): what precedes the length-counted
    /// part of a RecordBatch.
    const LOG_OVERHEAD: usize = 12;
    let mut at = 0usize;
    loop {
        let Some(header) = records.get(at..at + LOG_OVERHEAD) else {
            return at;
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(header.get(8..12).unwrap_or(&[0; 4]));
        let Ok(body) = usize::try_from(i32::from_be_bytes(len)) else {
            return at;
        };
        let end = at + LOG_OVERHEAD + body;
        if body == 0 || end > records.len() {
            return at;
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::EpochEndOffset;

    use super::*;

    fn leader(epoch: i32, end_offset: i64) -> LeaderEpochEnd {
        LeaderEpochEnd { epoch, end_offset }
    }

    fn own(epoch: i32, end_offset: i64) -> Option<EpochEnd> {
        Some(EpochEnd { epoch, end_offset })
    }

    #[test]
    fn same_epoch_truncates_to_the_smaller_end() {
        // Leader's epoch 3 ends at 100; ours ends at 120 → cut to 100.
        assert_eq!(
            truncation_offset(leader(3, 100), own(3, 120), 150, 90),
            Truncation {
                offset: 100,
                complete: true
            }
        );
        // Ours ends first: keep everything up to our end of epoch 3.
        assert_eq!(
            truncation_offset(leader(3, 100), own(3, 80), 150, 50).offset,
            80
        );
    }

    #[test]
    fn older_epoch_truncates_to_our_end_and_asks_again() {
        // We never saw epoch 4; our largest ≤ 4 is 2, ending at 70.
        assert_eq!(
            truncation_offset(leader(4, 100), own(2, 70), 150, 50),
            Truncation {
                offset: 70,
                complete: false
            }
        );
    }

    #[test]
    fn unknown_epochs_fall_back_as_kafka_does() {
        // No epoch ≤ the leader's in our log: the leader's end.
        assert_eq!(truncation_offset(leader(4, 100), None, 150, 50).offset, 100);
        // The leader has no epoch ≤ ours: the leader's end offset.
        assert_eq!(
            truncation_offset(leader(UNDEFINED_EPOCH, 40), own(1, 90), 150, 50).offset,
            40
        );
        // No end offset at all: the high watermark.
        assert_eq!(
            truncation_offset(
                leader(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
                own(1, 90),
                150,
                50
            ),
            Truncation {
                offset: 50,
                complete: true
            }
        );
    }

    #[test]
    fn truncation_never_exceeds_the_log_end() {
        for (l, o) in [
            (leader(3, 500), own(3, 600)),
            (leader(UNDEFINED_EPOCH, 900), None),
            (leader(5, 700), own(4, 800)),
        ] {
            assert!(truncation_offset(l, o, 150, 100).offset <= 150);
        }
    }

    #[test]
    fn decide_reads_divergence_before_records() {
        let mut p = PartitionData::default()
            .with_high_watermark(10)
            .with_records(Some(Bytes::from_static(b"x")));
        p.diverging_epoch = EpochEndOffset::default().with_epoch(2).with_end_offset(7);
        assert_eq!(decide(&p), FetchDecision::Diverging(leader(2, 7)));
        p.diverging_epoch = EpochEndOffset::default()
            .with_epoch(UNDEFINED_EPOCH)
            .with_end_offset(UNDEFINED_EPOCH_OFFSET);
        assert!(matches!(
            decide(&p),
            FetchDecision::Append {
                high_watermark: 10,
                ..
            }
        ));
        p.records = Some(Bytes::new());
        assert_eq!(decide(&p), FetchDecision::HighWatermark(10));
        p.error_code = 1;
        assert_eq!(decide(&p), FetchDecision::OutOfRange);
        p.error_code = 6;
        assert!(matches!(decide(&p), FetchDecision::Backoff(_)));
    }

    #[test]
    fn out_of_range_follows_kafka() {
        assert_eq!(
            out_of_range_reset(0, 50, 80),
            OutOfRangeReset::TruncateTo(50)
        );
        assert_eq!(
            out_of_range_reset(200, 300, 80),
            OutOfRangeReset::StartAt(200)
        );
        assert_eq!(out_of_range_reset(0, 300, 80), OutOfRangeReset::Retry);
    }

    #[test]
    fn whole_batches_drops_a_cut_tail() {
        let mut two = Vec::new();
        for body in [20u8, 30] {
            two.extend_from_slice(&[0; 8]);
            two.extend_from_slice(&i32::from(body).to_be_bytes());
            two.extend(std::iter::repeat_n(7u8, usize::from(body)));
        }
        assert_eq!(whole_batches_len(&two), two.len());
        assert_eq!(whole_batches_len(&two[..two.len() - 1]), 32);
        assert_eq!(whole_batches_len(&two[..5]), 0);
        assert_eq!(whole_batches_len(&[]), 0);
    }
}
