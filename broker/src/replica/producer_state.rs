//! Idempotent-producer state of one partition: for each producer id, its
//! epoch and the last few batches it wrote, so a retried batch is answered
//! with its original offsets instead of being written twice.
//!
//! I/O-free: the partition feeds it batch headers, from produce requests
//! (`check` then `record`) and from the log on open (`record` only).
//!
//! # Rules (Kafka's `ProducerStateManager`)
//! - A batch with producer id -1 is not idempotent and is not tracked.
//! - An epoch below the producer's current one → INVALID_PRODUCER_EPOCH.
//! - A higher epoch resets the producer: its first batch must have base
//!   sequence 0 (unless the producer was unknown).
//! - Same epoch: a batch equal (first and last sequence) to one of the last
//!   [`BATCHES_PER_PRODUCER`] is a duplicate; the next batch must start at
//!   last sequence + 1 (wrapping at i32::MAX); anything else →
//!   OUT_OF_ORDER_SEQUENCE_NUMBER.
//! - An unknown producer (new, or whose state was evicted, or whose batches
//!   all left the log) must start at sequence 0; any other sequence →
//!   UNKNOWN_PRODUCER_ID, and nothing is appended. Appending it would write
//!   a retried batch a second time, since the batches it could duplicate
//!   are no longer remembered; the error makes the client reset its
//!   producer (librdkafka and the Java client bump the epoch and restart
//!   at sequence 0), as Kafka's brokers make it after retention removed a
//!   producer's records.
//!
//! # Limits
//! - [`PRODUCERS_PER_PARTITION_MAX`] producers are tracked per partition;
//!   beyond it the one that wrote least recently is forgotten, and its
//!   next batch is answered UNKNOWN_PRODUCER_ID (above).
//!
//! # Caveats
//! - A retry of a forgotten producer's *first* batch (sequence 0, same
//!   epoch) cannot be told from a new producer and is appended again. It
//!   takes [`PRODUCERS_PER_PARTITION_MAX`] other producers writing to the
//!   same partition between the first attempt and its retry.

use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer: librdkafka and the Java client keep at
/// most five requests in flight with idempotence on.
pub const BATCHES_PER_PRODUCER: usize = 5;

/// Producers tracked per partition before the least recent is evicted.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

/// The header fields of one idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// `base_sequence + last_offset_delta`, wrapping.
    pub last_sequence: i32,
}

/// Where a batch was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data: append it.
    Append,
    /// Already written: answer with where it was written, append nothing.
    Duplicate(WrittenBatch),
    /// INVALID_PRODUCER_EPOCH.
    StaleEpoch { current: i16 },
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    OutOfOrder { expected: i32 },
    /// UNKNOWN_PRODUCER_ID: no state for this producer, and the batch does
    /// not start at sequence 0.
    UnknownProducer,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first; at most [`BATCHES_PER_PRODUCER`].
    batches: VecDeque<(i32, i32, WrittenBatch)>,
    last_written_seq: u64,
}

/// Producer state of one partition.
#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    write_counter: u64,
}

impl ProducerStateTable {
    /// Decides what to do with `batch`; changes nothing.
    pub fn check(&self, batch: &ProducerBatch) -> SequenceCheck {
        if batch.producer_id < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return if batch.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::UnknownProducer
            };
        };
        if batch.producer_epoch < entry.epoch {
            return SequenceCheck::StaleEpoch {
                current: entry.epoch,
            };
        }
        if batch.producer_epoch > entry.epoch {
            return if batch.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder { expected: 0 }
            };
        }
        if let Some((_, _, written)) = entry
            .batches
            .iter()
            .find(|(first, last, _)| *first == batch.base_sequence && *last == batch.last_sequence)
        {
            return SequenceCheck::Duplicate(*written);
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |(_, last, _)| next_sequence(*last));
        if batch.base_sequence == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::OutOfOrder { expected }
        }
    }

    /// Remembers that `batch` was written at `written`.
    pub fn record(&mut self, batch: &ProducerBatch, written: WrittenBatch) {
        if batch.producer_id < 0 {
            return;
        }
        self.write_counter += 1;
        if !self.producers.contains_key(&batch.producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX
        {
            self.evict_least_recent();
        }
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.producer_epoch,
                batches: VecDeque::with_capacity(BATCHES_PER_PRODUCER),
                last_written_seq: 0,
            });
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry
            .batches
            .push_back((batch.base_sequence, batch.last_sequence, written));
        entry.last_written_seq = self.write_counter;
    }

    /// Forgets everything (the log was truncated or deleted).
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    fn evict_least_recent(&mut self) {
        if let Some(pid) = self
            .producers
            .iter()
            .min_by_key(|(_, e)| e.last_written_seq)
            .map(|(pid, _)| *pid)
        {
            self.producers.remove(&pid);
        }
    }
}

/// The sequence after `seq`: sequences wrap from i32::MAX to 0.
fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

/// `base + delta` in sequence space (wrapping past i32::MAX to 0).
pub fn last_sequence(base_sequence: i32, last_offset_delta: i32) -> i32 {
    let sum = i64::from(base_sequence) + i64::from(last_offset_delta);
    // Both are non-negative i32 in valid batches, so the sum fits i64 and
    // the modulo brings it back into i32 range.
    (sum % (i64::from(i32::MAX) + 1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, first: i32, count: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: first,
            last_sequence: last_sequence(first, count - 1),
        }
    }

    fn at(offset: i64) -> WrittenBatch {
        WrittenBatch {
            base_offset: offset,
            last_offset: offset + 9,
            log_append_time_ms: -1,
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut t = ProducerStateTable::default();
        let b0 = batch(7, 0, 0, 10);
        assert_eq!(t.check(&b0), SequenceCheck::Append);
        t.record(&b0, at(100));
        let b1 = batch(7, 0, 10, 10);
        assert_eq!(t.check(&b1), SequenceCheck::Append);
        t.record(&b1, at(110));
        assert_eq!(t.check(&b0), SequenceCheck::Duplicate(at(100)));
        assert_eq!(t.check(&b1), SequenceCheck::Duplicate(at(110)));
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused() {
        let mut t = ProducerStateTable::default();
        t.record(&batch(7, 3, 0, 5), at(0));
        assert_eq!(
            t.check(&batch(7, 3, 9, 1)),
            SequenceCheck::OutOfOrder { expected: 5 }
        );
        assert_eq!(
            t.check(&batch(7, 2, 5, 1)),
            SequenceCheck::StaleEpoch { current: 3 }
        );
        assert_eq!(
            t.check(&batch(7, 4, 3, 1)),
            SequenceCheck::OutOfOrder { expected: 0 }
        );
        assert_eq!(t.check(&batch(7, 4, 0, 1)), SequenceCheck::Append);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut t = ProducerStateTable::default();
        for i in 0..6 {
            t.record(&batch(1, 0, i * 2, 2), at(i64::from(i) * 2));
        }
        // The first batch fell out of the window: it is now out of order.
        assert_eq!(
            t.check(&batch(1, 0, 0, 2)),
            SequenceCheck::OutOfOrder { expected: 12 }
        );
        assert_eq!(t.check(&batch(1, 0, 2, 2)), SequenceCheck::Duplicate(at(2)));
    }

    #[test]
    fn unknown_producers_must_start_at_sequence_zero() {
        let t = ProducerStateTable::default();
        assert_eq!(t.check(&batch(9, 0, 0, 3)), SequenceCheck::Append);
        assert_eq!(t.check(&batch(9, 0, 3, 3)), SequenceCheck::UnknownProducer);
        assert_eq!(t.check(&batch(9, 2, 7, 1)), SequenceCheck::UnknownProducer);
        assert_eq!(t.check(&batch(-1, -1, -1, 1)), SequenceCheck::Append);
    }

    #[test]
    fn an_evicted_producers_retry_is_refused_not_appended() {
        let mut t = ProducerStateTable::default();
        // Producer 0 writes two batches, then every other slot fills up and
        // one more producer evicts producer 0 (the least recent writer).
        t.record(&batch(0, 0, 0, 5), at(0));
        t.record(&batch(0, 0, 5, 5), at(5));
        for pid in 1..=PRODUCERS_PER_PARTITION_MAX as i64 {
            t.record(&batch(pid, 0, 0, 1), at(10 + pid));
        }
        assert_eq!(t.producer_count(), PRODUCERS_PER_PARTITION_MAX);
        // Its retry of sequence 5 would be a duplicate; unknown now, it is
        // refused so the client resets, and so is its next batch.
        assert_eq!(t.check(&batch(0, 0, 5, 5)), SequenceCheck::UnknownProducer);
        assert_eq!(t.check(&batch(0, 0, 10, 5)), SequenceCheck::UnknownProducer);
        // After the client's reset (new epoch, sequence 0) it writes again.
        assert_eq!(t.check(&batch(0, 1, 0, 5)), SequenceCheck::Append);
        // The producers still tracked keep their dedup.
        let last = PRODUCERS_PER_PARTITION_MAX as i64;
        assert_eq!(
            t.check(&batch(last, 0, 0, 1)),
            SequenceCheck::Duplicate(at(10 + last))
        );
    }

    #[test]
    fn sequences_wrap_and_non_idempotent_batches_are_ignored() {
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        let mut t = ProducerStateTable::default();
        let wrap = batch(1, 0, i32::MAX - 1, 2);
        t.record(&wrap, at(0));
        assert_eq!(t.check(&batch(1, 0, 0, 1)), SequenceCheck::Append);
        assert_eq!(
            t.check(&batch(1, 0, 1, 1)),
            SequenceCheck::OutOfOrder { expected: 0 }
        );
        t.record(&batch(-1, -1, -1, 1), at(5));
        assert_eq!(t.producer_count(), 1);
    }
}
