//! The broker's log cleaner: which compacted partitions are due, and one
//! cleaning pass over each, run by its own task at every retention check
//! (`log.retention.check.interval.ms`), apart from the maintenance pass so
//! a throttled or long cleaning never delays flushes or retention.
//!
//! ```text
//! per partition whose topic lists compact in cleanup.policy:
//!   input      = its inactive segments ending ≤ high watermark and older
//!                than now - min.compaction.lag.ms       (partition lock, short)
//!   due        ⇔ dirty / (clean + dirty) ≥ min.cleanable.dirty.ratio
//!                ∨ (dirty > 0 ∧ first dirty batch older than now - max.compaction.lag.ms)
//!   map        keys of the dirty section                 (no lock)
//!   per segment below the mapped end:
//!     build    the cleaned copy in <base>.swap/          (no lock)
//!     swap     rename it in                              (partition lock, short)
//!   first dirty offset := the end of the last segment covered
//! ```
//!
//! # Which logs, which segments
//! Every local log of a compacted topic, whether this node leads or
//! follows it (as Kafka cleans every local replica): cleaning never
//! changes what a consumer reads at an offset, only which superseded
//! records are left, so replicas cleaned at different times serve the
//! same latest value per key. The cleaner never touches the active
//! segment, nor a segment that does not end at or below the high
//! watermark (the leader's, or the one a follower learnt from it): what
//! may still be truncated by a leader change is never rewritten.
//!
//! # Locking
//! Appends to a partition being cleaned wait only for the read of its
//! segment list and for each swap, never for a segment being rewritten
//! (`sluice_storage::compaction::pass`).
//!
//! # Limits
//! - One key → offset map for the whole broker, allocated the first time
//!   a compacted partition is cleaned and reused (`log.cleaner.dedupe.buffer.size`).
//!   One pass cleans as much of a partition as the map holds; the next
//!   continues.
//! - Reads and writes together are throttled to
//!   `log.cleaner.io.max.bytes.per.second`; a shutdown stops a throttled
//!   pass within one sleep slice.
//! - The first dirty offset of each partition is kept in memory, one entry
//!   per compacted partition hosted (entries of partitions gone are
//!   dropped each round).
//!
//! # The cleaner offset checkpoint
//! Each round that moved a first dirty offset ends by writing them all to
//! `<log dir>/cleaner-offset-checkpoint` (Kafka's file of that name, in its
//! offset checkpoint format: `replica::offset_checkpoint`); a starting
//! broker reads it, so a restart does not clean every compacted partition
//! again. A lost or stale file only makes a partition look dirtier than it
//! is (one more pass, as without it). A checkpointed offset beyond the
//! log's end (the topic was deleted and made again, or the log was
//! truncated) is not used: the whole log counts as dirty.
//!
//! # Tombstones
//! A tombstone goes only in a pass that runs `delete.retention.ms` or more
//! after the pass that first cleaned it (`replica::clean_history`: the
//! clean point's history, in memory), never in that first pass: a
//! consumer that reads from the start within `delete.retention.ms` sees
//! every delete, as Kafka promises for that setting (KIP-534).
//! A partition whose last pass ran `delete.retention.ms` ago is due again
//! as a whole (dirty or not), so the tombstones that pass kept go once
//! their time has passed.
//!
//! # Caveats
//! - When the last pass over a partition ran, and when its clean point
//!   moved, are not checkpointed: after a restart they count from the
//!   start, so tombstones may stay up to `delete.retention.ms` longer than
//!   without the restart (never less).
//!
//! # References
//! Kafka's `LogCleaner`, `LogCleanerManager` (`grabFilthiestCompactedLog`,
//! `needCompactionNow`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sluice_storage::Offset;
use sluice_storage::compaction::{CleaningRules, OffsetMap, Rewritten, Throttle};

use crate::decompression_budget::DecompressionBudget;
use crate::error::BrokerError;
use crate::replica::Partition;
use crate::replica::clean_history::CleanHistory;
use crate::replica::offset_checkpoint;
use crate::settings::Compaction;

/// What one cleaning of one partition did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CleanOutcome {
    /// The partition was due (ratio or lag) and a pass ran.
    pub ran: bool,
    /// Segments and bytes rewritten, and what they became (fewer
    /// segments: merged).
    pub rewritten: Rewritten,
    /// The dirty ratio that was judged.
    pub dirty_ratio: f64,
}

/// (topic, partition index).
type PartitionKey = (Arc<str>, i32);

/// What the cleaner remembers of a partition it cleaned.
#[derive(Debug, Clone)]
struct Cleaned {
    /// Where the dirty section starts.
    first_dirty: Offset,
    /// The sweep that last saw the partition.
    round: u64,
    /// When a pass last ran over it.
    ran_ms: i64,
    /// When the clean point passed which offset: where tombstones may go.
    history: CleanHistory,
}

/// The broker's one cleaner.
#[derive(Debug)]
pub struct LogCleaner {
    map: Mutex<Option<OffsetMap>>,
    memory: usize,
    io_bytes_per_second: f64,
    stop: Arc<AtomicBool>,
    /// (topic, partition) → first dirty offset, and the round it was seen.
    first_dirty: Mutex<HashMap<PartitionKey, Cleaned>>,
    /// `<log dir>/cleaner-offset-checkpoint`.
    checkpoint: PathBuf,
    /// A first dirty offset moved, came or went since the checkpoint was
    /// last written.
    checkpoint_stale: AtomicBool,
}

/// The cleaner's checkpoint file in `log_dir`.
pub fn checkpoint_path(log_dir: &Path) -> PathBuf {
    log_dir.join("cleaner-offset-checkpoint")
}

impl LogCleaner {
    /// A cleaner whose map will take `memory` bytes once first used, whose
    /// passes stop when `stop` is set, and which starts from the first
    /// dirty offsets checkpointed in `log_dir` (taken as cleaned at
    /// `now_ms`).
    pub fn new(
        memory: usize,
        io_bytes_per_second: f64,
        stop: Arc<AtomicBool>,
        log_dir: &Path,
        now_ms: i64,
    ) -> Self {
        let checkpoint = checkpoint_path(log_dir);
        let loaded = offset_checkpoint::load_or_empty(
            &checkpoint,
            "cleaner offset checkpoint",
            "compacted partitions count as wholly dirty",
        );
        let first_dirty = loaded
            .into_iter()
            .map(|((topic, index), offset)| {
                let cleaned = Cleaned {
                    first_dirty: Offset(offset),
                    round: 0,
                    ran_ms: now_ms,
                    history: CleanHistory::starting_at(Offset(offset), now_ms),
                };
                ((Arc::from(topic), index), cleaned)
            })
            .collect();
        Self {
            map: Mutex::new(None),
            memory,
            io_bytes_per_second,
            stop,
            first_dirty: Mutex::new(first_dirty),
            checkpoint,
            checkpoint_stale: AtomicBool::new(false),
        }
    }

    /// Writes the first dirty offsets to the checkpoint file when they
    /// changed since it was last written.
    pub fn store_checkpoint(&self) -> Result<(), BrokerError> {
        if !self.checkpoint_stale.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let first_dirty = self
            .first_dirty
            .lock()
            .map_err(|_| BrokerError::StatePoisoned)?;
        let entries = first_dirty
            .iter()
            .map(|((topic, index), c)| (&**topic, *index, c.first_dirty.0));
        if let Err(e) = offset_checkpoint::store(&self.checkpoint, entries) {
            // Tried again after the next round.
            self.checkpoint_stale.store(true, Ordering::Release);
            tracing::warn!(file = %self.checkpoint.display(), error = %e, "cleaner offset checkpoint not written");
        }
        Ok(())
    }

    /// Forgets the first dirty offsets of partitions not cleaned since
    /// `round` (gone, or no longer compacted).
    pub fn forget_older_than(&self, round: u64) -> Result<(), BrokerError> {
        let mut first_dirty = self
            .first_dirty
            .lock()
            .map_err(|_| BrokerError::StatePoisoned)?;
        let before = first_dirty.len();
        first_dirty.retain(|_, c| c.round >= round);
        if first_dirty.len() != before {
            self.checkpoint_stale.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Cleans `p` if it is due (see the module doc); `round` numbers the
    /// caller's sweep over all partitions.
    pub fn clean(
        &self,
        p: &Partition,
        compaction: Compaction,
        budget: &DecompressionBudget,
        now_ms: i64,
        round: u64,
    ) -> Result<CleanOutcome, BrokerError> {
        let key = (Arc::clone(p.topic()), p.index());
        let log_end = Offset(p.log_end_offset()?);
        // An offset past the log's end belongs to another log of that
        // name, or to records truncated since: not this log's.
        let known = self
            .first_dirty
            .lock()
            .map_err(|_| BrokerError::StatePoisoned)?
            .get(&key)
            .cloned()
            .filter(|c| c.first_dirty <= log_end);
        // Tombstones go only where the log was first cleaned at least
        // delete.retention.ms ago (`replica::clean_history`).
        let mut history = known
            .as_ref()
            .map(|c| c.history.clone())
            .unwrap_or_default();
        history.forget_past(log_end);
        let tombstones_removable_below =
            history.removable_below(now_ms, compaction.delete_retention_ms);
        // Tombstones kept by the last pass have all passed
        // delete.retention.ms once that long has gone by since it ran: the
        // whole log is then cleaned again, dirty or not, to remove them.
        let tombstones_due = known
            .as_ref()
            .is_some_and(|c| c.ran_ms.saturating_add(compaction.delete_retention_ms) <= now_ms);
        let known_first_dirty = known.as_ref().map(|c| c.first_dirty);
        let known_ran_ms = known.as_ref().map(|c| c.ran_ms);
        let first_dirty = known_first_dirty.filter(|_| !tombstones_due);
        let remember = |offset: Option<Offset>, ran: bool| -> Result<(), BrokerError> {
            let mut map = self
                .first_dirty
                .lock()
                .map_err(|_| BrokerError::StatePoisoned)?;
            let ran_ms = if ran {
                now_ms
            } else {
                known_ran_ms.unwrap_or(now_ms)
            };
            let before = match offset.or(known_first_dirty) {
                Some(first_dirty) => {
                    let mut history = history.clone();
                    history.advanced(first_dirty, now_ms);
                    map.insert(
                        key.clone(),
                        Cleaned {
                            first_dirty,
                            round,
                            ran_ms,
                            history,
                        },
                    )
                }
                None => map.remove(&key),
            };
            let now_dirty = map.get(&key).map(|c| c.first_dirty);
            if before.map(|c| c.first_dirty) != now_dirty {
                self.checkpoint_stale.store(true, Ordering::Release);
            }
            Ok(())
        };
        let newest = now_ms.saturating_sub(compaction.min_compaction_lag_ms);
        let Some(input) = p.cleaning_input(newest)? else {
            remember(None, false)?;
            return Ok(CleanOutcome::default());
        };
        let storage = |e| BrokerError::Storage {
            topic: p.topic().to_string(),
            partition: p.index(),
            source: e,
        };
        let share = input.dirty_share(first_dirty).map_err(storage)?;
        let overdue = share.dirty_bytes > 0
            && share
                .first_dirty_timestamp
                .is_some_and(|ts| ts <= now_ms.saturating_sub(compaction.max_compaction_lag_ms));
        let mut outcome = CleanOutcome {
            dirty_ratio: share.ratio(),
            ..CleanOutcome::default()
        };
        if share.dirty_bytes == 0
            || (share.ratio() < compaction.min_cleanable_dirty_ratio && !overdue)
        {
            remember(None, false)?;
            return Ok(outcome);
        }
        outcome.ran = true;
        let mut guard = self.map.lock().map_err(|_| BrokerError::StatePoisoned)?;
        let map = guard.get_or_insert_with(|| OffsetMap::with_memory(self.memory));
        let rules = CleaningRules {
            tombstones_removable_below: tombstones_removable_below.map(|o| o.0),
            records_bytes_max: budget.batch_bytes_max(),
        };
        let mut throttle = Throttle::new(self.io_bytes_per_second, Arc::clone(&self.stop));
        let Some(mapped_end) = input
            .map_keys(map, &rules, first_dirty, &mut throttle)
            .map_err(storage)?
        else {
            remember(None, true)?;
            return Ok(outcome);
        };
        for built in input.builds(mapped_end, map, &rules, &mut throttle) {
            let built = built.map_err(storage)?;
            let rewritten = built.rewritten();
            if p.swap_in_cleaned(built)? {
                outcome.rewritten += rewritten;
            }
        }
        drop(guard);
        // Everything up to the end of the last segment the map covered is
        // clean now (a stopped pass leaves the offset where it was).
        let end_of_covered = input.end_of_segments_below(mapped_end);
        if !self.stop.load(Ordering::Relaxed) {
            remember(end_of_covered, true)?;
        }
        let Rewritten {
            segments_cleaned,
            segments_after,
            bytes_before,
            bytes_after,
        } = outcome.rewritten;
        if segments_cleaned > 0 {
            tracing::info!(
                topic = %p.topic(),
                partition = p.index(),
                segments = segments_cleaned,
                into = segments_after,
                bytes_before,
                bytes_after,
                dirty_ratio = outcome.dirty_ratio,
                overdue,
                throttled_ms = throttle.slept().as_millis() as u64,
                "compacted"
            );
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use sluice_protocol::batch_builder::ProducerIdentity;
    use sluice_protocol::batch_writer::{BatchWriter, RecordParts};
    use sluice_protocol::record_batch::CompressionType;
    use sluice_storage::{LeaderEpoch, PartitionLog};

    use super::*;
    use crate::replica::producer_snapshot::tests::{config, partition};
    use crate::replica::role::Role;

    const TS: i64 = 1_700_000_000_000;

    /// One batch of one record of key `key` (a tombstone when `value` is
    /// `None`) at `timestamp`.
    fn one_record(key: u8, value: Option<&[u8]>, timestamp: i64) -> bytes::Bytes {
        let mut w = BatchWriter::new(1024);
        assert!(w.try_append(&RecordParts {
            timestamp,
            key: Some(&[b'k', key]),
            value,
            headers: &[],
        }));
        w.finish(CompressionType::None, ProducerIdentity::NONE, -1)
            .unwrap()
    }

    /// `versions` versions of 4 keys, one record per batch, at `TS + version`.
    fn append(dir: &std::path::Path, versions: std::ops::Range<u32>) {
        let mut log = PartitionLog::open(dir, config()).unwrap();
        for version in versions {
            for key in 0..4u8 {
                let value = format!("{key}-{version}-").repeat(8);
                let b = one_record(key, Some(value.as_bytes()), TS + i64::from(version));
                log.append_as_leader(&b, LeaderEpoch(1), TS).unwrap();
            }
        }
        log.close().unwrap();
    }

    /// One record of key `key` (a tombstone when `value` is `None`),
    /// written at `TS`.
    fn append_one(dir: &std::path::Path, key: u8, value: Option<&[u8]>) {
        let mut log = PartitionLog::open(dir, config()).unwrap();
        log.append_as_leader(&one_record(key, value, TS), LeaderEpoch(1), TS)
            .unwrap();
        log.close().unwrap();
    }

    /// How many records with key `key` the log holds, and how many of them
    /// are tombstones.
    fn records_of_key(p: &Partition, key: u8) -> (usize, usize) {
        let (mut all, mut tombstones) = (0, 0);
        for region in p.read_whole_log().unwrap() {
            let bytes = region.bytes();
            for item in sluice_protocol::BatchIter::new(&bytes, usize::MAX) {
                let (_, view) = item.unwrap();
                let records = sluice_protocol::records::BatchRecords::new(view, 1 << 20).unwrap();
                for r in records.iter() {
                    let r = r.unwrap();
                    if r.key == Some(&[b'k', key][..]) {
                        all += 1;
                        tombstones += usize::from(r.value.is_none());
                    }
                }
            }
        }
        (all, tombstones)
    }

    fn compaction(ratio: f64, max_lag_ms: i64) -> Compaction {
        Compaction {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: max_lag_ms,
            min_cleanable_dirty_ratio: ratio,
        }
    }

    fn cleaner(log_dir: &std::path::Path) -> LogCleaner {
        LogCleaner::new(
            1 << 16,
            f64::MAX,
            Arc::new(AtomicBool::new(false)),
            log_dir,
            TS,
        )
    }

    #[test]
    fn a_partition_is_cleaned_once_its_dirty_share_reaches_the_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let budget = DecompressionBudget::new(1 << 24, 1 << 20);
        let now = TS + 1_000;
        append(dir.path(), 0..40);
        let log_dir = tempfile::tempdir().unwrap();
        let c = cleaner(log_dir.path());
        let p = partition(dir.path(), Role::Leader);
        // Never cleaned: all of it is dirty.
        let first = c
            .clean(&p, compaction(0.5, i64::MAX), &budget, now, 1)
            .unwrap();
        assert!(
            first.ran && first.rewritten.segments_cleaned > 0,
            "{first:?}"
        );
        assert_eq!(first.dirty_ratio, 1.0);
        // Nothing written since: nothing is dirty, nothing runs.
        let again = c
            .clean(&p, compaction(0.0, i64::MAX), &budget, now, 2)
            .unwrap();
        assert!(!again.ran, "{again:?}");
        p.close().unwrap();
        // More is written: its share of the cleanable bytes is below a 0.9
        // ratio, which waits ...
        append(dir.path(), 40..44);
        let p = partition(dir.path(), Role::Leader);
        let waits = c
            .clean(&p, compaction(0.9, i64::MAX), &budget, now, 3)
            .unwrap();
        assert!(!waits.ran, "{waits:?}");
        assert!(
            waits.dirty_ratio > 0.0 && waits.dirty_ratio < 0.9,
            "{waits:?}"
        );
        // ... and a ratio below it lets it run.
        let runs = c
            .clean(&p, compaction(0.3, i64::MAX), &budget, now, 4)
            .unwrap();
        assert!(runs.ran, "{runs:?}");
        p.close().unwrap();
    }

    #[test]
    fn a_tombstone_stays_delete_retention_after_the_pass_that_first_cleaned_it() {
        let dir = tempfile::tempdir().unwrap();
        let budget = DecompressionBudget::new(1 << 24, 1 << 20);
        // Key 9: a value, later its tombstone, then more of other keys so
        // that the tombstone's segment is sealed and cleanable.
        append_one(dir.path(), 9, Some(b"nine"));
        append(dir.path(), 0..40);
        append_one(dir.path(), 9, None);
        append(dir.path(), 40..60);
        let log_dir = tempfile::tempdir().unwrap();
        let c = cleaner(log_dir.path());
        let p = partition(dir.path(), Role::Leader);
        let retention = 60_000;
        let rules = |ratio| Compaction {
            delete_retention_ms: retention,
            ..compaction(ratio, i64::MAX)
        };
        // The first pass runs long after the tombstone was written (its
        // timestamp is far past the retention): it removes the values the
        // tombstone supersedes, and keeps the tombstone.
        let late = TS + 10 * retention;
        let first = c.clean(&p, rules(0.5), &budget, late, 1).unwrap();
        assert!(
            first.ran && first.rewritten.segments_cleaned > 0,
            "{first:?}"
        );
        assert_eq!(records_of_key(&p, 9), (1, 1), "only the tombstone is left");
        // Just under the retention after that pass, whole-log passes keep it.
        let early = c
            .clean(&p, rules(0.0), &budget, late + retention - 1, 2)
            .unwrap();
        assert!(!early.ran || records_of_key(&p, 9) == (1, 1), "{early:?}");
        assert_eq!(records_of_key(&p, 9), (1, 1));
        // The retention after the first cleaning: the tombstone goes.
        let due = c
            .clean(&p, rules(1.0), &budget, late + retention, 3)
            .unwrap();
        assert!(due.ran, "{due:?}");
        assert_eq!(records_of_key(&p, 9), (0, 0), "the tombstone is gone");
        p.close().unwrap();
    }

    #[test]
    fn max_compaction_lag_cleans_a_dirty_section_whatever_its_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let budget = DecompressionBudget::new(1 << 24, 1 << 20);
        append(dir.path(), 0..40);
        let log_dir = tempfile::tempdir().unwrap();
        let c = cleaner(log_dir.path());
        let p = partition(dir.path(), Role::Leader);
        let first = c.clean(&p, compaction(0.5, i64::MAX), &budget, TS + 1_000, 1);
        assert!(first.unwrap().ran);
        p.close().unwrap();
        append(dir.path(), 40..44);
        let p = partition(dir.path(), Role::Leader);
        // The new records were written at TS + 40..: 10 s later, a 60 s lag
        // is not reached and the ratio (1.0 needed) holds it back ...
        let young = c
            .clean(&p, compaction(1.0, 60_000), &budget, TS + 10_000, 2)
            .unwrap();
        assert!(!young.ran, "{young:?}");
        // ... 61 s later the lag is passed: it is cleaned.
        let overdue = c
            .clean(&p, compaction(1.0, 60_000), &budget, TS + 61_000, 3)
            .unwrap();
        assert!(overdue.ran, "{overdue:?}");
        p.close().unwrap();
        // Entries of partitions not seen since a round are forgotten.
        c.forget_older_than(4).unwrap();
        assert!(c.first_dirty.lock().unwrap().is_empty());
    }

    #[test]
    fn a_restarted_cleaner_starts_from_the_checkpointed_dirty_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = tempfile::tempdir().unwrap();
        let budget = DecompressionBudget::new(1 << 24, 1 << 20);
        let now = TS + 1_000;
        append(dir.path(), 0..40);
        let p = partition(dir.path(), Role::Leader);
        let c = cleaner(log_dir.path());
        let first = c
            .clean(&p, compaction(0.5, i64::MAX), &budget, now, 1)
            .unwrap();
        assert!(
            first.ran && first.rewritten.segments_cleaned > 0,
            "{first:?}"
        );
        c.store_checkpoint().unwrap();
        let written = std::fs::read_to_string(checkpoint_path(log_dir.path())).unwrap();
        assert!(written.starts_with("0\n1\nt 0 "), "{written:?}");
        drop(c);
        // A new cleaner (a restarted broker) reads it: nothing is dirty,
        // so even a ratio of 0 runs nothing ...
        let restarted = cleaner(log_dir.path());
        let again = restarted
            .clean(&p, compaction(0.0, i64::MAX), &budget, now, 1)
            .unwrap();
        assert!(!again.ran && again.dirty_ratio == 0.0, "{again:?}");
        // ... where one without the file cleans the whole log again.
        let forgetful = cleaner(tempfile::tempdir().unwrap().path());
        let whole = forgetful
            .clean(&p, compaction(0.5, i64::MAX), &budget, now, 1)
            .unwrap();
        assert!(whole.ran && whole.dirty_ratio == 1.0, "{whole:?}");
        p.close().unwrap();
        // An offset past the log's end (another log of that name) is not
        // used: the new log counts as wholly dirty.
        let other = tempfile::tempdir().unwrap();
        append(other.path(), 0..20);
        let p = partition(other.path(), Role::Leader);
        let stale = cleaner(log_dir.path());
        let share = stale
            .clean(&p, compaction(1.0, i64::MAX), &budget, now, 1)
            .unwrap();
        assert_eq!(share.dirty_ratio, 1.0, "{share:?}");
        p.close().unwrap();
    }
}
