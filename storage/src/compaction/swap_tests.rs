//! Cleaning a real partition log: the latest value of every key survives
//! at its offset, segments shrink, and a crash at each step of the swap
//! reopens to a log that has lost nothing and duplicated nothing.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use sluice_protocol::BatchIter;
use sluice_protocol::batch_builder::ProducerIdentity;
use sluice_protocol::batch_writer::{BatchWriter, RecordParts};
use sluice_protocol::record_batch::CompressionType;
use sluice_protocol::records::BatchRecords;

use super::*;
use crate::offset::LeaderEpoch;
use crate::test_util::{TS, small_config};

type Records = BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)>;

fn keyed_batch(
    key: u8,
    version: u32,
    codec: CompressionType,
    producer: Option<(i64, i32)>,
) -> Bytes {
    let mut w = BatchWriter::new(1024);
    let value = format!("{key}-v{version}-").repeat(10);
    assert!(w.try_append(&RecordParts {
        timestamp: TS + i64::from(version),
        key: Some(&[b'k', key]),
        value: Some(value.as_bytes()),
        headers: &[],
    }));
    let (identity, sequence) = producer.map_or((ProducerIdentity::NONE, -1), |(id, seq)| {
        (ProducerIdentity { id, epoch: 0 }, seq)
    });
    w.finish(codec, identity, sequence).unwrap()
}

/// 6 keys × 30 versions, one record per batch, codecs and one idempotent
/// producer mixed in; small segments roll every few batches.
fn filled(dir: &Path) -> PartitionLog {
    let mut log = PartitionLog::open(dir, small_config()).unwrap();
    let codecs = [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Lz4,
    ];
    for version in 0..30u32 {
        for key in 0..6u8 {
            let producer = (key == 5).then_some((9, version as i32));
            let b = keyed_batch(key, version, codecs[(version % 3) as usize], producer);
            log.append_as_leader(&b, LeaderEpoch(1), TS).unwrap();
        }
    }
    log
}

/// Every record readable from the log start: offset → (key, value).
fn read_all(log: &PartitionLog) -> Records {
    let info = log
        .read(log.log_start_offset(), u32::MAX, log.log_end_offset(), true)
        .unwrap();
    let mut out = Records::new();
    let mut expected_base = log.log_start_offset().0;
    for r in &info.regions {
        let b = r.bytes();
        for item in BatchIter::new(&b, 1 << 20) {
            let (_, v) = item.unwrap();
            v.verify_crc().unwrap();
            assert_eq!(v.base_offset(), expected_base, "batch offsets stay dense");
            expected_base = v.last_offset() + 1;
            for rec in BatchRecords::new(v, 1 << 20).unwrap().iter() {
                let rec = rec.unwrap();
                let offset = v.base_offset() + i64::from(rec.offset_delta);
                let prev = out.insert(
                    offset,
                    (rec.key.unwrap().to_vec(), rec.value.map(<[u8]>::to_vec)),
                );
                assert!(prev.is_none(), "offset {offset} read twice");
            }
        }
    }
    assert_eq!(expected_base, log.log_end_offset().0);
    out
}

fn latest_per_key(records: &Records) -> BTreeMap<Vec<u8>, i64> {
    let mut latest = BTreeMap::new();
    for (offset, (key, _)) in records {
        latest.insert(key.clone(), *offset);
    }
    latest
}

fn rules() -> CleaningRules {
    CleaningRules {
        tombstones_removable_below: None,
        records_bytes_max: 1 << 20,
    }
}

#[test]
fn cleaning_keeps_the_latest_per_key_and_shrinks_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path());
    let before = read_all(&log);
    let size_before = log.size_bytes();
    let end = log.log_end_offset();
    let active_base = *log.segment_base_offsets().last().unwrap();
    let segments_before = log.segment_base_offsets().len();
    let mut map = OffsetMap::with_memory(1 << 16);
    let report = log.clean(&mut map, &rules(), end, i64::MAX).unwrap();
    assert!(report.rewritten.segments_cleaned > 0, "{report:?}");
    assert!(
        report.rewritten.bytes_after < report.rewritten.bytes_before,
        "{report:?}"
    );
    // Cleaned segments are merged while they fit segment.bytes.
    assert!(
        report.rewritten.segments_after < report.rewritten.segments_cleaned,
        "{report:?}"
    );
    assert_eq!(
        log.segment_base_offsets().len(),
        segments_before - report.rewritten.segments_cleaned + report.rewritten.segments_after
    );
    let after = read_all(&log);
    assert!(log.size_bytes() < size_before);
    // Every record kept is the one that was at that offset.
    for (offset, rec) in &after {
        assert_eq!(before.get(offset), Some(rec), "offset {offset} changed");
    }
    // Below the active segment only the latest version of each key is left.
    let latest = latest_per_key(&before);
    for (offset, (key, _)) in after.range(..active_base.0) {
        let newest_below_active = before
            .range(..active_base.0)
            .filter(|(_, (k, _))| k == key)
            .map(|(o, _)| *o)
            .max();
        assert_eq!(Some(*offset), newest_below_active, "key {key:?}");
    }
    for (key, offset) in &latest {
        assert!(
            after.contains_key(offset),
            "latest of {key:?} at {offset} lost"
        );
    }
    // The producer's last batch is still there (it is in the active
    // segment or kept); a second pass changes nothing.
    let report = log.clean(&mut map, &rules(), end, i64::MAX).unwrap();
    assert_eq!(report.rewritten.segments_cleaned, 0, "{report:?}");
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(read_all(&log), after);
}

#[test]
fn a_crash_at_each_swap_step_loses_and_duplicates_nothing() {
    for crash in [
        CrashPoint::AfterSwapBuilt,
        CrashPoint::AfterIndexesRemoved,
        CrashPoint::AfterLogRenamed,
        CrashPoint::AfterOneCoveredDeleted,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (before, end, _) = crashed_while_cleaning(dir.path(), crash);
        if matches!(
            crash,
            CrashPoint::AfterLogRenamed | CrashPoint::AfterOneCoveredDeleted
        ) {
            // The merge committed, with segments it covers still there.
            assert!(overlapping_segments(dir.path()) > 0, "{crash:?}");
        }
        let mut log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_end_offset(), end, "{crash:?}");
        assert_eq!(overlapping_segments(dir.path()), 0, "{crash:?}");
        // read_all fails on an offset read twice: a covered segment left
        // in the log would be one.
        assert_nothing_lost(&before, &read_all(&log), &format!("{crash:?}"));
        assert!(
            std::fs::read_dir(dir.path()).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".swap")),
            "{crash:?}: the swap directory is removed at open"
        );
        // The next pass finishes the job.
        let mut map = OffsetMap::with_memory(1 << 16);
        log.clean(&mut map, &rules(), end, i64::MAX).unwrap();
        let cleaned = read_all(&log);
        assert!(cleaned.len() < before.len(), "{crash:?}");
        log.close().unwrap();
    }
}

#[test]
fn nothing_at_or_above_the_limit_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path());
    let before = read_all(&log);
    let mut map = OffsetMap::with_memory(1 << 16);
    let report = log
        .clean(&mut map, &rules(), crate::Offset(0), i64::MAX)
        .unwrap();
    assert_eq!(report, CleaningReport::default());
    assert_eq!(read_all(&log), before);
}

#[test]
fn segments_newer_than_the_lag_bound_are_not_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path());
    let before = read_all(&log);
    let end = log.log_end_offset();
    let mut map = OffsetMap::with_memory(1 << 16);
    // Every batch is at TS + version >= TS: none is older than TS - 1.
    let report = log.clean(&mut map, &rules(), end, TS - 1).unwrap();
    assert_eq!(report.rewritten.segments_cleaned, 0);
    assert_eq!(read_all(&log), before);
}

/// How many `.log` files start inside the offsets of the one before them
/// (by their names and the batches they hold).
fn overlapping_segments(dir: &Path) -> usize {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut prev_end = i64::MIN;
    let mut overlapping = 0;
    for path in logs {
        let bytes = std::fs::read(&path).unwrap();
        let mut end = None;
        for item in BatchIter::new(&bytes, 1 << 20) {
            // The active segment's preallocated zeros end it.
            let Ok((_, v)) = item else { break };
            if end.is_none() && v.base_offset() < prev_end {
                overlapping += 1;
            }
            end = Some(v.last_offset() + 1);
        }
        prev_end = prev_end.max(end.unwrap_or(prev_end));
    }
    overlapping
}

/// Every segment cleaned in the given pass, with `log` changed by `meanwhile`
/// between the build (no lock) and the swap (under the lock).
fn build_all(log: &PartitionLog, map: &mut OffsetMap) -> Vec<CleanedSegment> {
    let input = log
        .cleaning_input(log.log_end_offset(), i64::MAX)
        .unwrap()
        .unwrap();
    let mut throttle = Throttle::unlimited();
    let end = input
        .map_keys(map, &rules(), None, &mut throttle)
        .unwrap()
        .unwrap();
    let rules = rules();
    input
        .builds(end, map, &rules, &mut throttle)
        .map(Result::unwrap)
        .collect()
}

#[test]
fn appends_go_on_while_segments_are_built_and_the_swap_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path());
    let mut map = OffsetMap::with_memory(1 << 16);
    let built = build_all(&log, &mut map);
    assert!(!built.is_empty());
    // The partition takes appends between the build and the swap (the
    // broker holds no lock while building).
    for version in 30..40u32 {
        let b = keyed_batch(1, version, CompressionType::None, None);
        log.append_as_leader(&b, LeaderEpoch(1), TS).unwrap();
    }
    let before = read_all(&log);
    for b in built {
        assert!(log.swap_in_cleaned(b, None).unwrap());
    }
    let after = read_all(&log);
    assert!(after.len() < before.len());
    for (offset, rec) in &after {
        assert_eq!(before.get(offset), Some(rec), "offset {offset} changed");
    }
    // The appends made meanwhile are all there.
    let end = log.log_end_offset().0;
    assert!(after.range(end - 10..).count() == 10);
}

#[test]
fn a_segment_removed_or_truncated_meanwhile_is_not_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path());
    let mut map = OffsetMap::with_memory(1 << 16);
    let built = build_all(&log, &mut map);
    let first = built.first().unwrap().base();
    // DeleteRecords moves the log start past the first built segment.
    let second_base = log.segment_base_offsets()[1];
    drop(log.advance_log_start_offset(second_base).unwrap());
    let before = read_all(&log);
    for b in built {
        let base = b.base();
        let swap_dir = dir.path().join(format!("{:020}.swap", base.0));
        let ok = log.swap_in_cleaned(b, None).unwrap();
        // The group holding the deleted segment is refused, any other not.
        assert_eq!(ok, base != first, "segment {base:?}");
        assert!(!swap_dir.exists(), "a refused swap leaves no directory");
    }
    for (offset, rec) in &read_all(&log) {
        assert_eq!(before.get(offset), Some(rec));
    }
    // A new pass over the log as it is now cleans it.
    let mut swapped = 0;
    for b in build_all(&log, &mut map) {
        swapped += usize::from(log.swap_in_cleaned(b, None).unwrap());
    }
    assert!(swapped > 0);
    let after = read_all(&log);
    assert!(after.len() < before.len());
    for (offset, rec) in &after {
        assert_eq!(before.get(offset), Some(rec));
    }
    // After a truncation nothing built before it is swapped in.
    let built = build_all(&log, &mut OffsetMap::with_memory(1 << 16));
    let end = log.log_end_offset();
    let cut = log.segment_base_offsets().last().copied().unwrap();
    log.truncate_to(crate::Offset(cut.0 + 1)).unwrap();
    for b in built {
        assert!(!log.swap_in_cleaned(b, None).unwrap());
    }
    assert!(log.log_end_offset() <= end);
}

#[test]
fn the_dirty_share_counts_bytes_around_the_first_dirty_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let input = log
        .cleaning_input(log.log_end_offset(), i64::MAX)
        .unwrap()
        .unwrap();
    let all = input.dirty_share(None).unwrap();
    assert_eq!(all.clean_bytes, 0);
    assert!(all.dirty_bytes > 0);
    assert_eq!(all.ratio(), 1.0);
    assert_eq!(all.first_dirty_timestamp, Some(TS));
    let bases = log.segment_base_offsets();
    let half = input.dirty_share(Some(bases[bases.len() / 2])).unwrap();
    assert_eq!(half.clean_bytes + half.dirty_bytes, all.dirty_bytes);
    assert!(half.ratio() > 0.0 && half.ratio() < 1.0, "{half:?}");
    assert!(half.first_dirty_timestamp.unwrap() > TS);
    // Mapping from the first dirty offset maps only the dirty section.
    let mut map = OffsetMap::with_memory(1 << 16);
    let mut throttle = Throttle::unlimited();
    input
        .map_keys(
            &mut map,
            &rules(),
            Some(bases[bases.len() / 2]),
            &mut throttle,
        )
        .unwrap();
    let dirty_only = map.len();
    input
        .map_keys(&mut map, &rules(), None, &mut throttle)
        .unwrap();
    assert!(dirty_only <= map.len());
}

#[test]
fn a_torn_segment_left_inside_a_committed_merge_is_deleted_at_open() {
    // page_cache durability: a segment the merge covers may never have
    // been fsynced, and a power cut after the commit can tear it. The
    // merged segment was fdatasynced before the commit and holds it all.
    let dir = tempfile::tempdir().unwrap();
    let (before, end, bases) = crashed_while_cleaning(dir.path(), CrashPoint::AfterLogRenamed);
    // The swap stopped before the list in memory changed: [1] is covered.
    let second = bases[1];
    let path = crate::segment::segment_path(dir.path(), second, crate::segment::LOG_EXT);
    let mut bytes = std::fs::read(&path).unwrap();
    let torn = bytes.len() - 40;
    bytes[torn..].fill(0xAB);
    std::fs::write(&path, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(overlapping_segments(dir.path()), 0);
    assert!(!path.exists(), "the covered segment is deleted");
    assert_nothing_lost(&before, &read_all(&log), "torn");
}

/// A filled log, flushed, then cleaned until `crash` and dropped as a
/// kill -9 would: what it held, its end, its segments' bases.
fn crashed_while_cleaning(
    dir: &Path,
    crash: CrashPoint,
) -> (Records, crate::Offset, Vec<crate::Offset>) {
    let mut log = filled(dir);
    log.flush().unwrap();
    let before = read_all(&log);
    let end = log.log_end_offset();
    let mut map = OffsetMap::with_memory(1 << 16);
    log.clean_until_crash(&mut map, &rules(), (end, i64::MAX), Some(crash))
        .unwrap();
    let bases = log.segment_base_offsets();
    assert!(log.simulate_crash().is_empty(), "everything was flushed");
    (before, end, bases)
}

/// Every record in `after` is the one that was at its offset in `before`,
/// and every key's latest record in `before` is still there.
fn assert_nothing_lost(before: &Records, after: &Records, what: &str) {
    for (offset, rec) in after {
        assert_eq!(
            before.get(offset),
            Some(rec),
            "{what}: offset {offset} changed"
        );
    }
    for (key, offset) in latest_per_key(before) {
        assert!(
            after.contains_key(&offset),
            "{what}: latest of {key:?} lost"
        );
    }
}
