//! A partition's producer state across restarts and truncations: loaded
//! from its latest producer-state snapshot (`sluice_storage::producer_snapshot`)
//! and the log above it, and snapshotted where Kafka does.
//!
//! ```text
//! open / truncate ─► delete snapshots above the log end (durable)
//!                 ─► latest snapshot S ≤ log end (or none)
//!                 ─► its producers, batches below the log start dropped
//!                 ─► replay batch headers from max(S, log start) to the end
//! segment roll    ─► snapshot at the new segment's base (before its first batch)
//! clean close     ─► snapshot at the log end (none when one is there already)
//! ```
//!
//! # Invariants
//! - Loading gives the same table as a replay of the whole log (the
//!   producers, their epochs and the batches of theirs still in the log,
//!   in the same least-recently-written order), except that batches the
//!   cleaner removed stay known (as in the live table before the
//!   restart). The refusal memory (`producer_state`) is never saved: a
//!   restarted partition remembers no refusal.
//! - A snapshot is taken under the partition's lock at the exact offset
//!   its state covers, so it never holds a batch at or above its offset.
//! - A failed snapshot write is logged and costs only replay time at the
//!   next open; a failed read falls back to an older snapshot or to the
//!   log start.
//!
//! # Costs
//! - Open after a clean shutdown: one small file read, no batch read.
//! - Open after a kill -9: the headers of the batches written since the
//!   last roll (at most one segment plus what followed), from the mapping.
//! - A roll: one file of ~200 bytes per producer (at most
//!   `PRODUCERS_PER_PARTITION_MAX`), written under the lock, no fsync.

use std::path::Path;

use sluice_protocol::RecordBatchView;
use sluice_storage::producer_snapshot::{self, Snapshot, SnapshotWriter};
use sluice_storage::{Offset, PartitionLog};

use super::producer_state::{ProducerBatch, ProducerStateTable, WrittenBatch, last_sequence};

/// What opening found.
#[derive(Debug)]
pub struct Loaded {
    pub table: ProducerStateTable,
    /// The offset of the snapshot used, if any.
    pub snapshot: Option<Offset>,
    /// Batch headers read from the log above it.
    pub batches_replayed: u64,
}

/// The producer state of `log`, from its latest usable snapshot and the
/// batches above it; snapshots above the log end are deleted first.
pub fn load(log: &PartitionLog) -> sluice_storage::Result<Loaded> {
    let dir = log.dir();
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    producer_snapshot::delete_above(dir, end)?;
    let snapshot = match producer_snapshot::latest_at_or_below(dir, end) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "producer snapshots unreadable; replaying from the log start");
            None
        }
    };
    let used = snapshot.as_ref().map(|s| s.offset);
    let (mut table, from) = match snapshot {
        Some(s) => (from_snapshot(&s, start), s.offset.max(start)),
        None => (ProducerStateTable::default(), start),
    };
    let batches_replayed = replay(&mut table, log, from)?;
    Ok(Loaded {
        table,
        snapshot: used,
        batches_replayed,
    })
}

/// The snapshot's producers, without the batches below `log_start` (gone
/// with retention or DeleteRecords, as a replay from the log start would
/// not see them), in its least-recently-written order.
fn from_snapshot(snapshot: &Snapshot, log_start: Offset) -> ProducerStateTable {
    let mut table = ProducerStateTable::default();
    for p in &snapshot.producers {
        for b in p.batches.iter().filter(|b| b.last_offset >= log_start.0) {
            table.record(
                &ProducerBatch {
                    producer_id: p.producer_id,
                    producer_epoch: p.epoch,
                    base_sequence: b.first_sequence,
                    last_sequence: b.last_sequence,
                },
                WrittenBatch {
                    base_offset: b.base_offset,
                    last_offset: b.last_offset,
                    log_append_time_ms: b.log_append_time_ms,
                    max_timestamp: b.max_timestamp,
                },
            );
        }
    }
    table
}

/// Records the batch headers of `log` from `from` to its end into
/// `table`; returns how many it read. Headers only, from the mapping.
pub fn replay(
    table: &mut ProducerStateTable,
    log: &PartitionLog,
    from: Offset,
) -> sluice_storage::Result<u64> {
    let mut replayed = 0u64;
    let mut next = from;
    let end = log.log_end_offset();
    while next < end {
        let read = log.read(next, 16 * 1024 * 1024, end, true)?;
        let before = next;
        for region in &read.regions {
            let bytes = region.bytes();
            for item in sluice_protocol::BatchIter::new(&bytes, usize::MAX) {
                let Ok((_, view)) = item else { break };
                // A read starts at the batch holding `next`: skip what
                // was replayed already.
                if view.last_offset() >= next.0 {
                    record_batch(table, &view);
                    replayed += 1;
                    next = Offset(view.last_offset() + 1);
                }
            }
        }
        if next <= before {
            break;
        }
    }
    Ok(replayed)
}

/// Records one batch as it lies in the log (a follower's append, a replay).
pub fn record_batch(table: &mut ProducerStateTable, view: &RecordBatchView<'_>) {
    table.record(
        &ProducerBatch {
            producer_id: view.producer_id(),
            producer_epoch: view.producer_epoch(),
            base_sequence: view.base_sequence(),
            last_sequence: last_sequence(view.base_sequence(), view.last_offset_delta()),
        },
        WrittenBatch {
            base_offset: view.base_offset(),
            last_offset: view.last_offset(),
            log_append_time_ms: -1,
            max_timestamp: view.max_timestamp(),
        },
    );
}

/// Writes `table` as the snapshot at `offset` in `dir`; a failure is
/// logged (see the module docs).
pub fn take(table: &ProducerStateTable, dir: &Path, offset: Offset) {
    let mut writer = SnapshotWriter::new(offset, table.producer_count());
    table.write_snapshot(&mut writer);
    if let Err(e) = writer.write(dir) {
        tracing::warn!(dir = %dir.display(), offset = offset.0, error = %e, "producer snapshot not written; the next open replays more of the log");
    }
}

/// At a clean close: a snapshot at the log end, unless one is there.
pub fn take_at_close(table: &ProducerStateTable, log: &PartitionLog) {
    let end = log.log_end_offset();
    if !producer_snapshot::snapshot_path(log.dir(), end).exists() {
        take(table, log.dir(), end);
    }
}

/// After the log start moved to `log_start`: the snapshots below it but
/// the latest go. Unlinks: the maintenance pass calls it out of the
/// partition's lock.
pub fn log_start_moved(dir: &Path, log_start: Offset) {
    if let Err(e) = producer_snapshot::delete_below(dir, log_start) {
        tracing::warn!(dir = %dir.display(), error = %e, "old producer snapshots not deleted");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use sluice_protocol::batch_builder::ProducerIdentity;
    use sluice_protocol::batch_writer::{BatchWriter, RecordParts};
    use sluice_protocol::record_batch::CompressionType;
    use sluice_storage::producer_snapshot::offsets;
    use sluice_storage::{LeaderEpoch, LogConfig};
    use tokio::sync::Notify;

    use super::*;
    use crate::config::DurabilityMode;
    use crate::replica::Partition;
    use crate::replica::role::{PartitionRole, Role};

    const TS: i64 = 1_700_000_000_000;

    /// 2 KiB segments: a few batches roll one.
    pub(crate) fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 2048,
            ..LogConfig::default()
        }
    }

    /// Three records of producer `pid` from sequence `seq`.
    fn idempotent(pid: i64, seq: i32) -> Bytes {
        let mut w = BatchWriter::new(4096);
        for i in 0..3 {
            let value = format!("{pid}-{seq}-{i}").repeat(6);
            assert!(w.try_append(&RecordParts {
                timestamp: TS + i64::from(seq),
                key: None,
                value: Some(value.as_bytes()),
                headers: &[],
            }));
        }
        w.finish(
            CompressionType::None,
            ProducerIdentity { id: pid, epoch: 0 },
            seq,
        )
        .unwrap()
    }

    /// The log in `dir` as a partition in `role` (as leader, its high
    /// watermark is its end).
    pub(crate) fn partition(dir: &Path, role: Role) -> Partition {
        let log = PartitionLog::open(dir, config()).unwrap();
        Partition::new(
            Arc::from("t"),
            0,
            log,
            DurabilityMode::PageCache,
            Arc::new(Notify::new()),
            PartitionRole {
                role,
                leader_epoch: LeaderEpoch(1),
                partition_epoch: 1,
            },
            None,
        )
        .unwrap()
    }

    /// `batches` batches as leader, producers 1..=3 in turn, each
    /// continuing its sequence from `first`.
    fn write(p: &Partition, first: i32, batches: i32) {
        for i in 0..batches {
            let pid = i64::from(i % 3) + 1;
            let seq = first + (i / 3) * 3;
            let b = idempotent(pid, seq);
            let view = RecordBatchView::parse(&b, 1 << 20).unwrap();
            let out = p.append_as_leader(&view, TS, None).unwrap();
            assert!(!out.duplicate);
        }
    }

    /// The log in `dir` loaded from its snapshots, checked against a
    /// replay of the whole log; returns what loading found.
    fn load_matches_full_replay(dir: &Path) -> (Option<Offset>, u64) {
        let log = PartitionLog::open(dir, config()).unwrap();
        let loaded = load(&log).unwrap();
        let mut full = ProducerStateTable::default();
        replay(&mut full, &log, log.log_start_offset()).unwrap();
        assert_eq!(loaded.table.entries(), full.entries());
        assert!(loaded.table.producer_count() > 0);
        let found = (loaded.snapshot, loaded.batches_replayed);
        log.close().unwrap();
        found
    }

    #[test]
    fn loading_equals_a_full_replay_after_close_crash_delete_records_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path(), Role::Leader);
        write(&p, 0, 60);
        let rolls = offsets(dir.path()).unwrap();
        assert!(rolls.len() >= 3, "{rolls:?}");
        let end = p.log_end_offset().unwrap();
        p.close().unwrap();

        // Clean close: the snapshot at the log end, nothing replayed.
        assert_eq!(load_matches_full_replay(dir.path()), (Some(Offset(end)), 0));

        // A crash after more rolls: the last roll's snapshot, and only the
        // batches after it.
        let p = partition(dir.path(), Role::Leader);
        write(&p, 60, 30);
        let end = p.log_end_offset().unwrap();
        drop(p.simulate_crash());
        let last_roll = *offsets(dir.path()).unwrap().last().unwrap();
        assert!(last_roll.0 < end);
        let (snapshot, replayed) = load_matches_full_replay(dir.path());
        assert_eq!(snapshot, Some(last_roll));
        assert!(
            replayed > 0 && replayed * 3 == (end - last_roll.0) as u64,
            "{replayed}"
        );

        // DeleteRecords past the first snapshots: the batches below the
        // log start are gone from the loaded state as from a replay, and
        // so are the snapshots below it but the latest.
        let p = partition(dir.path(), Role::Leader);
        let start = p.delete_records_below(end / 2).unwrap();
        let kept = offsets(dir.path()).unwrap();
        assert_eq!(kept.iter().filter(|o| o.0 < start).count(), 1, "{kept:?}");
        p.close().unwrap();
        load_matches_full_replay(dir.path());

        // A follower truncated below some snapshots: they are deleted and
        // the state is the truncated log's.
        let p = partition(dir.path(), Role::Follower { leader: 2 });
        let cut = (start + end) / 2;
        let truncated = p.truncate_to(cut).unwrap();
        assert!(
            offsets(dir.path())
                .unwrap()
                .iter()
                .all(|o| o.0 <= truncated)
        );
        drop(p.simulate_crash());
        let (snapshot, _) = load_matches_full_replay(dir.path());
        assert!(snapshot.is_some_and(|s| s.0 <= truncated));
    }
}
