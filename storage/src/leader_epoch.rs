//! The leader-epoch cache of a partition and its checkpoint file, Kafka's
//! `leader-epoch-checkpoint`: for each leader epoch that wrote to the log,
//! the offset of its first batch.
//!
//! `<partition dir>/leader-epoch-checkpoint`, big-endian:
//!
//! ```text
//! 0        4  magic "SLLE"
//! 4        2  version (1)
//! 6        2  reserved (0)
//! 8        4  entry count n
//! 12       12·n entries: epoch (i32), start offset (i64), ascending
//! 12+12n   4  CRC-32 (crc32fast) of everything before
//! ```
//!
//! Who updates it (all through `PartitionLog`, under the partition's lock):
//! a leader's first append in a new epoch and a follower's append of a
//! batch of a new epoch (`LeaderEpochCache::assign`); truncation of the
//! log's end (`truncate_from_end`); the log start moving up (retention,
//! DeleteRecords: `truncate_from_start`, in memory only — the file follows
//! at the next write or `flush_if_stale`).
//!
//! # Invariants
//! - Epochs and start offsets both strictly increase along the entries.
//! - Every entry's start offset is at most the log end offset (equal only
//!   when the log start moved to the log end), and at or above the log
//!   start offset once the log start moved.
//! - The file is replaced atomically (temp file, fsync, rename, directory
//!   fsync), like the partition checkpoint. A file that is missing or fails
//!   its checks is never trusted: recovery rebuilds the cache from the
//!   batch headers (`PartitionLog::open`).
//! - The file may hold entries below the log start (a truncation from the
//!   start not written yet, as Kafka since KAFKA-15046 does not flush it
//!   synchronously): harmless, as loading truncates from the recovered log
//!   start again. Every other change is on disk when its call returns.

use std::path::{Path, PathBuf};

use crate::checkpoint::{read_if_exists, write_atomically};
use crate::error::Result;
use crate::offset::{LeaderEpoch, Offset};

pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

const MAGIC: &[u8; 4] = b"SLLE";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 12;
const ENTRY_LEN: usize = 12;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One leader epoch and the offset of its first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: LeaderEpoch,
    pub start_offset: Offset,
}

/// The epochs of one partition's log, kept on disk in its directory.
#[derive(Debug)]
pub struct LeaderEpochCache {
    dir: PathBuf,
    entries: Vec<EpochEntry>,
    /// A truncation from the start is not in the file yet.
    stale_on_disk: bool,
}

impl LeaderEpochCache {
    /// The cache stored in `dir`, or `None` when the file is missing or
    /// fails its checks (then the caller rebuilds it from the log).
    pub(crate) fn load(dir: &Path) -> Result<Option<Self>> {
        let Some(bytes) = read_if_exists(&dir.join(LEADER_EPOCH_FILE))? else {
            return Ok(None);
        };
        match decode(&bytes) {
            Ok(entries) => Ok(Some(Self {
                dir: dir.to_path_buf(),
                entries,
                stale_on_disk: false,
            })),
            Err(reason) => {
                tracing::warn!(dir = %dir.display(), reason, "ignoring the leader-epoch checkpoint; rebuilding it from the log");
                Ok(None)
            }
        }
    }

    /// An empty cache for `dir` (written on its first change or
    /// [`LeaderEpochCache::flush`]).
    pub(crate) fn empty(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
            stale_on_disk: false,
        }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch that wrote to the log.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. A batch of an epoch
    /// the cache already ends with changes nothing (the cheap, common
    /// case: one comparison). Entries that would break the ordering (an
    /// epoch ≥ `epoch`, or a start ≥ `start_offset`) are removed first, as
    /// Kafka's `assign` does. Negative epochs (old-format batches) are
    /// ignored. Writes the file when anything changed.
    pub(crate) fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> Result<()> {
        if epoch.0 < 0 {
            return Ok(());
        }
        if let Some(last) = self.entries.last()
            && last.epoch == epoch
            && last.start_offset <= start_offset
        {
            return Ok(());
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.flush()
    }

    /// Rebuild helper: like [`LeaderEpochCache::assign`] without writing;
    /// the caller flushes once at the end.
    pub(crate) fn assign_in_memory(&mut self, epoch: LeaderEpoch, start_offset: Offset) {
        if epoch.0 < 0 || self.latest_epoch().is_some_and(|l| l >= epoch) {
            return;
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }

    /// The log was truncated to end at `end_offset`: epochs that started
    /// at or after it are gone.
    pub(crate) fn truncate_from_end(&mut self, end_offset: Offset) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() == before {
            return Ok(());
        }
        self.flush()
    }

    /// The log start moved up to `start_offset`: the epoch holding it now
    /// starts there, and older epochs are gone (Kafka's
    /// `truncateFromStart`). In memory only: retention calls this under the
    /// partition's lock, where a file write and three fsyncs stalled
    /// appends (up to ~90 ms measured); the file is rewritten by the next
    /// change or [`LeaderEpochCache::flush_if_stale`].
    pub(crate) fn truncate_from_start(&mut self, start_offset: Offset) {
        let below = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        let Some(holding) = below.checked_sub(1) else {
            return;
        };
        let unchanged = holding == 0
            && self
                .entries
                .first()
                .is_some_and(|e| e.start_offset == start_offset);
        if unchanged {
            return;
        }
        self.entries.drain(..holding);
        if let Some(first) = self.entries.first_mut() {
            first.start_offset = start_offset;
        }
        self.stale_on_disk = true;
    }

    /// Writes the file if a truncation from the start is not in it yet.
    pub(crate) fn flush_if_stale(&mut self) -> Result<()> {
        if self.stale_on_disk {
            self.flush()?;
        }
        Ok(())
    }

    /// Forgets every epoch (the log was emptied and restarted).
    pub(crate) fn clear(&mut self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.entries.clear();
        self.flush()
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)` for `requested`, with
    /// `log_end` the log end offset — Kafka's `LeaderEpochFileCache.endOffsetFor`:
    ///
    /// ```text
    /// requested = UNDEFINED (-1)          → (UNDEFINED, UNDEFINED_OFFSET)
    /// requested = latest epoch            → (requested, log end)
    /// no epoch above requested is known   → (UNDEFINED, UNDEFINED_OFFSET)
    /// no epoch ≤ requested is known       → (requested, start of the first)
    /// otherwise                           → (largest epoch ≤ requested,
    ///                                        start of the next epoch)
    /// ```
    pub fn end_offset_for(&self, requested: i32, log_end: Offset) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(LeaderEpoch(requested)) {
            return (requested, log_end.0);
        }
        let higher = self.entries.iter().find(|e| e.epoch.0 > requested);
        let floor = self.entries.iter().rev().find(|e| e.epoch.0 <= requested);
        match (floor, higher) {
            (_, None) => (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
            (None, Some(h)) => (requested, h.start_offset.0),
            (Some(f), Some(h)) => (f.epoch.0, h.start_offset.0),
        }
    }

    /// Writes the file atomically.
    pub(crate) fn flush(&mut self) -> Result<()> {
        write_atomically(&self.dir, LEADER_EPOCH_FILE, &encode(&self.entries))?;
        self.stale_on_disk = false;
        Ok(())
    }
}

fn encode(entries: &[EpochEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + ENTRY_LEN * entries.len() + 4);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(
        &u32::try_from(entries.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for e in entries {
        b.extend_from_slice(&e.epoch.0.to_be_bytes());
        b.extend_from_slice(&e.start_offset.0.to_be_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

fn decode(b: &[u8]) -> std::result::Result<Vec<EpochEntry>, &'static str> {
    let body_len = b.len().checked_sub(4).ok_or("too short")?;
    let (body, crc) = b.split_at(body_len);
    let crc = u32::from_be_bytes(crc.try_into().map_err(|_| "too short")?);
    if crc32fast::hash(body) != crc {
        return Err("CRC mismatch");
    }
    if body.get(0..4) != Some(MAGIC.as_slice())
        || body.get(4..6) != Some(&VERSION.to_be_bytes()[..])
    {
        return Err("unknown magic or version");
    }
    let count = body
        .get(8..12)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or("too short")?;
    let count = usize::try_from(count).map_err(|_| "wrong length")?;
    if body.len() != HEADER_LEN + ENTRY_LEN * count {
        return Err("wrong length");
    }
    let entries: Vec<EpochEntry> = body
        .get(HEADER_LEN..)
        .unwrap_or_default()
        .chunks_exact(ENTRY_LEN)
        .map(|c| {
            let (epoch, start) = c.split_at(4);
            EpochEntry {
                epoch: LeaderEpoch(i32::from_be_bytes(epoch.try_into().unwrap_or([0; 4]))),
                start_offset: Offset(i64::from_be_bytes(start.try_into().unwrap_or([0; 8]))),
            }
        })
        .collect();
    let ordered = entries
        .windows(2)
        .all(|w| matches!(w, [a, b] if a.epoch < b.epoch && a.start_offset < b.start_offset));
    if !ordered
        || entries
            .iter()
            .any(|e| e.epoch.0 < 0 || e.start_offset.0 < 0)
    {
        return Err("entries out of order");
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            dir: PathBuf::new(),
            entries: entries
                .iter()
                .map(|&(e, o)| EpochEntry {
                    epoch: LeaderEpoch(e),
                    start_offset: Offset(o),
                })
                .collect(),
            stale_on_disk: false,
        }
    }

    #[test]
    fn end_offsets_follow_kafkas_rules() {
        let c = cache(&[(1, 0), (3, 10), (6, 25)]);
        let end = Offset(40);
        assert_eq!(c.end_offset_for(-1, end), (-1, -1));
        assert_eq!(c.end_offset_for(6, end), (6, 40), "latest: the log end");
        assert_eq!(c.end_offset_for(3, end), (3, 25), "start of the next");
        assert_eq!(c.end_offset_for(1, end), (1, 10));
        assert_eq!(c.end_offset_for(4, end), (3, 25), "a hole floors");
        assert_eq!(c.end_offset_for(0, end), (0, 0), "older than all known");
        assert_eq!(c.end_offset_for(7, end), (-1, -1), "newer than all known");
        assert_eq!(cache(&[]).end_offset_for(0, end), (-1, -1));
    }

    #[test]
    fn the_file_round_trips_and_a_damaged_one_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LeaderEpochCache::load(dir.path()).unwrap().is_none());
        let mut c = LeaderEpochCache::empty(dir.path());
        c.assign(LeaderEpoch(2), Offset(0)).unwrap();
        c.assign(LeaderEpoch(2), Offset(5)).unwrap();
        c.assign(LeaderEpoch(5), Offset(9)).unwrap();
        let back = LeaderEpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.entries(), c.entries());
        assert_eq!(back.entries().len(), 2);
        let path = dir.path().join(LEADER_EPOCH_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[14] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(LeaderEpochCache::load(dir.path()).unwrap().is_none());
        std::fs::write(&path, &bytes[..7]).unwrap();
        assert!(LeaderEpochCache::load(dir.path()).unwrap().is_none());
    }

    #[test]
    fn truncation_from_both_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::empty(dir.path());
        for (e, o) in [(1, 0), (3, 10), (6, 25)] {
            c.assign(LeaderEpoch(e), Offset(o)).unwrap();
        }
        c.truncate_from_start(Offset(12));
        assert_eq!(
            c.entries(),
            cache(&[(3, 12), (6, 25)]).entries(),
            "the epoch holding the new start begins there"
        );
        let on_disk = LeaderEpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(on_disk.entries().len(), 3, "written only when flushed");
        c.flush_if_stale().unwrap();
        let on_disk = LeaderEpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(on_disk.entries(), c.entries());
        c.truncate_from_end(Offset(25)).unwrap();
        assert_eq!(c.entries(), cache(&[(3, 12)]).entries());
        let back = LeaderEpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.entries(), c.entries());
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A batch of `len` records by a leader of epoch latest + `bump`.
        Append {
            bump: i32,
            len: i64,
        },
        TruncateEnd(i64),
        TruncateStart(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3i32, 1..5i64).prop_map(|(bump, len)| Op::Append { bump, len }),
            1 => (0..60i64).prop_map(Op::TruncateEnd),
            1 => (0..60i64).prop_map(Op::TruncateStart),
        ]
    }

    proptest! {
        /// Against a model log (the epoch of every offset): the cache's
        /// answer for each epoch is the model's end of that epoch, entries
        /// stay strictly ordered, and the file always reloads equal.
        #[test]
        fn the_cache_matches_a_model_log(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut c = LeaderEpochCache::empty(dir.path());
            // epochs[i - start] = epoch of offset i.
            let mut epochs: Vec<i32> = Vec::new();
            let mut start = 0i64;
            let mut epoch = 0i32;
            for op in ops {
                match op {
                    Op::Append { bump, len } => {
                        epoch += bump;
                        let base = start + epochs.len() as i64;
                        c.assign(LeaderEpoch(epoch), Offset(base)).unwrap();
                        epochs.extend(std::iter::repeat_n(epoch, len as usize));
                    }
                    Op::TruncateEnd(to) => {
                        let end = start + epochs.len() as i64;
                        if to >= start && to < end {
                            epochs.truncate((to - start) as usize);
                            c.truncate_from_end(Offset(to)).unwrap();
                        }
                    }
                    Op::TruncateStart(to) => {
                        let end = start + epochs.len() as i64;
                        if to > start && to <= end {
                            epochs.drain(..(to - start) as usize);
                            start = to;
                            c.truncate_from_start(Offset(to));
                        }
                    }
                }
                let end = start + epochs.len() as i64;
                let entries = c.entries();
                prop_assert!(entries.windows(2).all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset));
                prop_assert!(entries.iter().all(|e| e.start_offset.0 >= start && e.start_offset.0 <= end));
                // Every epoch present in the log: its end is where the next
                // epoch present starts, or the log end for the latest.
                for (i, &e) in epochs.iter().enumerate() {
                    let next_start = epochs
                        .iter()
                        .skip(i)
                        .position(|x| *x > e)
                        .map_or(end, |p| start + (i + p) as i64);
                    prop_assert_eq!(c.end_offset_for(e, Offset(end)), (e, next_start));
                }
                // The file may still hold a truncation from the start's
                // old entries: loading fits it to the log start, as
                // `PartitionLog::open` does.
                match LeaderEpochCache::load(dir.path()).unwrap() {
                    Some(mut back) => {
                        back.truncate_from_start(Offset(start));
                        prop_assert_eq!(back.entries, c.entries.clone());
                    }
                    None => prop_assert!(c.entries.is_empty()),
                }
            }
        }
    }
}
