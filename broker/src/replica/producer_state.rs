//! Idempotent-producer state of one partition: for each producer id, its
//! epoch and the last few batches it wrote, so a retried batch is answered
//! with its original offsets instead of being written twice.
//!
//! I/O-free: the partition feeds it batch headers, from produce requests
//! (`check` then `record`) and from the log on open (`record` only);
//! `replica::producer_snapshot` saves it to and loads it from
//! producer-state snapshots (all of it but the refusal memory, which lives
//! in memory only).
//!
//! # Rules (Kafka's `ProducerStateManager` and `ProducerAppendInfo`)
//! - A batch with producer id -1 is not idempotent and is not tracked.
//! - An epoch below the producer's current one → INVALID_PRODUCER_EPOCH.
//! - A higher epoch resets the producer: its first batch must have base
//!   sequence 0.
//! - Same epoch: a batch equal (first and last sequence) to one of the last
//!   [`BATCHES_PER_PRODUCER`] is a duplicate; the next batch must start at
//!   last sequence + 1 (wrapping at i32::MAX); anything else →
//!   OUT_OF_ORDER_SEQUENCE_NUMBER.
//! - An unknown producer (new, or whose state was evicted, or whose batches
//!   all left the log) is accepted at any sequence, as Kafka has done since
//!   2.5 (KIP-360): refusing it with UNKNOWN_PRODUCER_ID makes librdkafka
//!   bump its epoch for *every* partition it writes, which renumbers and
//!   writes again the batches whose answers it lost on the others.
//! - A batch refused before the sequence check with a retriable error
//!   (NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS: nothing written) is
//!   remembered per producer; until it comes back, a later batch of the
//!   same producer and epoch whose gap it lies in (it cannot be written
//!   before the refused one) gets the same refusal, not
//!   OUT_OF_ORDER_SEQUENCE_NUMBER. A producer pipelines up to
//!   five requests, so when leadership or the ISR changes between two of
//!   them the first is refused and the next would see a gap: Kafka answers
//!   that gap OUT_OF_ORDER_SEQUENCE_NUMBER, and librdkafka bumps its epoch
//!   for every partition (the duplicates above). The same refusal instead
//!   makes it send both again, in order.
//!
//! # Limits
//! - [`PRODUCERS_PER_PARTITION_MAX`] producers are tracked per partition;
//!   beyond it the one that wrote least recently is forgotten. So are
//!   remembered refusals: beyond the same number, new ones are not kept.
//! - A producer whose newest batch's max timestamp is
//!   `producer.id.expiration.ms` old is forgotten by the maintenance pass
//!   ([`ProducerStateTable::expire`], Kafka's `removeExpiredProducers`),
//!   with its remembered refusal.
//!
//! # Caveats
//! - A retry of a forgotten producer's batch cannot be told from new data
//!   and is appended again (Kafka has the same window). It takes
//!   [`PRODUCERS_PER_PARTITION_MAX`] other producers writing to the same
//!   partition between the first attempt and its retry.

use std::collections::{HashMap, VecDeque};

use sluice_storage::producer_snapshot::{SnapshotBatch, SnapshotWriter};

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
    /// The batch's max timestamp (what `producer.id.expiration.ms` counts
    /// from, as Kafka's `lastTimestamp`).
    pub max_timestamp: i64,
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
    /// The batch would skip over an earlier one of the same producer that
    /// was refused with this retriable error: refuse it the same way.
    Refused(Refusal),
}

/// A retriable refusal before anything was written (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotLeader,
    NotEnoughReplicas,
}

/// The batch a producer last had refused, until it comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RefusedBatch {
    epoch: i16,
    base_sequence: i32,
    refusal: Refusal,
}

/// A remembered batch: first and last sequence, where it was written.
pub type RememberedBatch = (i32, i32, WrittenBatch);

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first; at most [`BATCHES_PER_PRODUCER`].
    batches: VecDeque<RememberedBatch>,
    last_written_seq: u64,
}

/// Producer state of one partition.
#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// Per producer id: at most [`PRODUCERS_PER_PARTITION_MAX`].
    refused: HashMap<i64, RefusedBatch>,
    write_counter: u64,
}

impl ProducerStateTable {
    /// Decides what to do with `batch`; changes nothing.
    pub fn check(&self, batch: &ProducerBatch) -> SequenceCheck {
        if batch.producer_id < 0 {
            return SequenceCheck::Append;
        }
        // A refused batch of this producer and epoch, other than `batch`.
        let refused_before = self
            .refused
            .get(&batch.producer_id)
            .filter(|r| r.epoch == batch.producer_epoch && r.base_sequence != batch.base_sequence);
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return match refused_before {
                Some(r) => SequenceCheck::Refused(r.refusal),
                None => SequenceCheck::Append,
            };
        };
        if batch.producer_epoch < entry.epoch {
            return SequenceCheck::StaleEpoch {
                current: entry.epoch,
            };
        }
        if batch.producer_epoch > entry.epoch {
            return match refused_before {
                Some(r) if r.base_sequence < batch.base_sequence => {
                    SequenceCheck::Refused(r.refusal)
                }
                _ if batch.base_sequence == 0 => SequenceCheck::Append,
                _ => SequenceCheck::OutOfOrder { expected: 0 },
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
            return SequenceCheck::Append;
        }
        // The refused batch lies in the gap: this one cannot be written
        // before it comes back.
        match refused_before {
            Some(r)
                if sequence_distance(expected, r.base_sequence)
                    < sequence_distance(expected, batch.base_sequence) =>
            {
                SequenceCheck::Refused(r.refusal)
            }
            _ => SequenceCheck::OutOfOrder { expected },
        }
    }

    /// Remembers that `batch` was refused with `refusal` before anything
    /// was written, so later batches of its producer do not skip it.
    pub fn note_refused(&mut self, batch: &ProducerBatch, refusal: Refusal) {
        if batch.producer_id < 0 {
            return;
        }
        let known = self.refused.contains_key(&batch.producer_id);
        if !known && self.refused.len() >= PRODUCERS_PER_PARTITION_MAX {
            return;
        }
        // A later batch refused after an earlier one of the same epoch
        // keeps the earlier: that is the one the producer must send first.
        if let Some(r) = self.refused.get(&batch.producer_id)
            && r.epoch == batch.producer_epoch
        {
            return;
        }
        self.refused.insert(
            batch.producer_id,
            RefusedBatch {
                epoch: batch.producer_epoch,
                base_sequence: batch.base_sequence,
                refusal,
            },
        );
    }

    /// Remembers that `batch` was written at `written`.
    pub fn record(&mut self, batch: &ProducerBatch, written: WrittenBatch) {
        if batch.producer_id < 0 {
            return;
        }
        self.refused.remove(&batch.producer_id);
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
        self.refused.clear();
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Forgets the producers whose newest batch's max timestamp is at
    /// least `expiration_ms` before `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let horizon = now_ms.saturating_sub(expiration_ms);
        self.producers.retain(|_, e| {
            e.batches
                .back()
                .is_some_and(|(_, _, w)| w.max_timestamp > horizon)
        });
        let producers = &self.producers;
        self.refused.retain(|pid, _| producers.contains_key(pid));
        before - self.producers.len()
    }

    /// Adds every producer to `writer`, least recently written first (the
    /// order that rebuilds the same eviction order when loaded).
    pub fn write_snapshot(&self, writer: &mut SnapshotWriter) {
        let mut entries: Vec<(&i64, &ProducerEntry)> = self.producers.iter().collect();
        entries.sort_unstable_by_key(|(_, e)| e.last_written_seq);
        for (pid, e) in entries {
            let batches: Vec<SnapshotBatch> = e
                .batches
                .iter()
                .map(|(first, last, w)| SnapshotBatch {
                    first_sequence: *first,
                    last_sequence: *last,
                    base_offset: w.base_offset,
                    last_offset: w.last_offset,
                    log_append_time_ms: w.log_append_time_ms,
                    max_timestamp: w.max_timestamp,
                })
                .collect();
            writer.producer(*pid, e.epoch, batches.iter());
        }
    }

    /// Every producer's epoch and batches, least recently written first
    /// (tests compare tables with it).
    #[cfg(test)]
    pub fn entries(&self) -> Vec<(i64, i16, Vec<RememberedBatch>)> {
        let mut entries: Vec<(&i64, &ProducerEntry)> = self.producers.iter().collect();
        entries.sort_unstable_by_key(|(_, e)| e.last_written_seq);
        entries
            .into_iter()
            .map(|(pid, e)| (*pid, e.epoch, e.batches.iter().copied().collect()))
            .collect()
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

/// How far `to` is after `from` in sequence space (which wraps from
/// i32::MAX to 0).
fn sequence_distance(from: i32, to: i32) -> i64 {
    (i64::from(to) - i64::from(from)).rem_euclid(i64::from(i32::MAX) + 1)
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
            max_timestamp: 1_000 + offset,
        }
    }

    #[test]
    fn producers_expire_by_their_newest_batch_timestamp() {
        let mut t = ProducerStateTable::default();
        t.record(&batch(1, 0, 0, 10), at(0)); // max timestamp 1 000
        t.record(&batch(2, 0, 0, 10), at(10)); // 1 010
        t.record(&batch(1, 0, 10, 10), at(20)); // producer 1 now 1 020
        t.note_refused(&batch(2, 0, 10, 10), Refusal::NotLeader);
        // Expiration 100 at 1 110: 1 010 is at the horizon, 1 020 is not.
        assert_eq!(t.expire(1_110, 100), 1);
        assert_eq!(t.producer_count(), 1);
        assert!(
            t.refused.is_empty(),
            "the expired producer's refusal goes too"
        );
        // The expired producer is unknown: any sequence is accepted.
        assert_eq!(t.check(&batch(2, 0, 99, 1)), SequenceCheck::Append);
        assert_eq!(
            t.check(&batch(1, 0, 10, 10)),
            SequenceCheck::Duplicate(at(20))
        );
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
    fn unknown_producers_are_accepted_at_any_sequence() {
        let t = ProducerStateTable::default();
        assert_eq!(t.check(&batch(9, 0, 0, 3)), SequenceCheck::Append);
        assert_eq!(t.check(&batch(9, 0, 3, 3)), SequenceCheck::Append);
        assert_eq!(t.check(&batch(9, 2, 7, 1)), SequenceCheck::Append);
        assert_eq!(t.check(&batch(-1, -1, -1, 1)), SequenceCheck::Append);
    }

    #[test]
    fn an_evicted_producer_writes_on_where_it_stood() {
        let mut t = ProducerStateTable::default();
        // Producer 0 writes two batches, then every other slot fills up and
        // one more producer evicts producer 0 (the least recent writer).
        t.record(&batch(0, 0, 0, 5), at(0));
        t.record(&batch(0, 0, 5, 5), at(5));
        for pid in 1..=PRODUCERS_PER_PARTITION_MAX as i64 {
            t.record(&batch(pid, 0, 0, 1), at(10 + pid));
        }
        assert_eq!(t.producer_count(), PRODUCERS_PER_PARTITION_MAX);
        // Unknown now: its next batch is accepted where it stood (a retry
        // of sequence 5 would be too: the documented window).
        assert_eq!(t.check(&batch(0, 0, 10, 5)), SequenceCheck::Append);
        // The producers still tracked keep their dedup.
        let last = PRODUCERS_PER_PARTITION_MAX as i64;
        assert_eq!(
            t.check(&batch(last, 0, 0, 1)),
            SequenceCheck::Duplicate(at(10 + last))
        );
    }

    /// The race behind the duplicates the fault test found: a pipelined
    /// batch must not be told OUT_OF_ORDER because the one before it was
    /// refused a moment earlier.
    #[test]
    fn a_batch_behind_a_refused_one_gets_the_same_refusal() {
        let mut t = ProducerStateTable::default();
        t.record(&batch(7, 0, 0, 5), at(0));
        let refused = batch(7, 0, 5, 5);
        t.note_refused(&refused, Refusal::NotEnoughReplicas);
        // The ISR grew back before the next batch arrived.
        let next = batch(7, 0, 10, 5);
        assert_eq!(
            t.check(&next),
            SequenceCheck::Refused(Refusal::NotEnoughReplicas)
        );
        // A later refusal keeps the first one: that batch goes first.
        t.note_refused(&next, Refusal::NotLeader);
        assert_eq!(
            t.check(&next),
            SequenceCheck::Refused(Refusal::NotEnoughReplicas)
        );
        // The refused batch comes back and is written; then the next.
        assert_eq!(t.check(&refused), SequenceCheck::Append);
        t.record(&refused, at(5));
        assert_eq!(t.check(&next), SequenceCheck::Append);
        // A real gap is still out of order.
        assert_eq!(
            t.check(&batch(7, 0, 20, 1)),
            SequenceCheck::OutOfOrder { expected: 10 }
        );
        // The refused batch anywhere in the gap holds back what follows it
        // (the batch before it is still on its way from another broker).
        t.record(&next, at(10));
        t.note_refused(&batch(7, 0, 16, 2), Refusal::NotEnoughReplicas);
        assert_eq!(
            t.check(&batch(7, 0, 18, 2)),
            SequenceCheck::Refused(Refusal::NotEnoughReplicas)
        );
        assert_eq!(t.check(&batch(7, 0, 15, 1)), SequenceCheck::Append);
        // A new producer's refused first batch holds back its second, and
        // a new epoch is not held back by the old epoch's refusal.
        t.note_refused(&batch(8, 0, 0, 2), Refusal::NotLeader);
        assert_eq!(
            t.check(&batch(8, 0, 2, 2)),
            SequenceCheck::Refused(Refusal::NotLeader)
        );
        assert_eq!(t.check(&batch(8, 1, 0, 2)), SequenceCheck::Append);
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
