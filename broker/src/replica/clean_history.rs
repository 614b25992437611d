//! When a compacted partition's clean point passed each offset: what lets
//! the cleaner keep a tombstone for `delete.retention.ms` after the pass
//! that first cleaned it (Kafka's KIP-534 delete horizon), not after the
//! tombstone was written.
//!
//! Why: a consumer that starts at offset 0 and reads to the end within
//! `delete.retention.ms` must see every delete (Kafka's promise for that
//! setting). Judged by the tombstone's own timestamp, a pass that runs
//! late removes a value and the tombstone that supersedes it at once, and
//! a reader that already read the value never learns of the delete.
//!
//! ```text
//! pass at t advances the clean point to X ─► advanced(X, t): (X, t) kept
//! next pass at now: removable_below(now, R) = the largest X recorded at
//!   t ≤ now − R: every batch below it was first cleaned ≥ R ago, so its
//!   tombstones may go; tombstones above it stay
//! ```
//!
//! # Invariants
//! - Entries are in increasing offset and time order; an offset recorded
//!   at time t was passed by the clean point no later than t, so
//!   `removable_below` never lets a tombstone go sooner than R after its
//!   first cleaning.
//! - Bounded: at most [`ENTRIES_MAX`] entries; when full, every other
//!   entry is dropped, which only makes `removable_below` smaller (a
//!   tombstone kept longer, never shorter).
//! - In memory only: a restarted broker starts a partition's history at
//!   its checkpointed clean point and its start time, so tombstones may
//!   stay up to R longer across a restart, never less.

use sluice_storage::Offset;

/// Most entries kept per partition.
pub const ENTRIES_MAX: usize = 32;

/// (clean point, when it was reached) pairs of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanHistory {
    entries: Vec<(Offset, i64)>,
}

impl CleanHistory {
    /// A history whose clean point was `at` by `now_ms`.
    pub fn starting_at(at: Offset, now_ms: i64) -> Self {
        Self {
            entries: vec![(at, now_ms)],
        }
    }

    /// The clean point reached `to` at `now_ms` (ignored unless it moved
    /// past the last one recorded).
    pub fn advanced(&mut self, to: Offset, now_ms: i64) {
        if self.entries.last().is_some_and(|(o, _)| *o >= to) {
            return;
        }
        if self.entries.len() >= ENTRIES_MAX {
            let mut i = 0;
            self.entries.retain(|_| {
                i += 1;
                i % 2 == 0
            });
        }
        self.entries.push((to, now_ms));
    }

    /// The offset below which every batch was first cleaned at least
    /// `retention_ms` before `now_ms`: tombstones there may be removed.
    /// Entries older than needed to answer this are dropped.
    pub fn removable_below(&mut self, now_ms: i64, retention_ms: i64) -> Option<Offset> {
        let horizon = now_ms.saturating_sub(retention_ms);
        let old = self
            .entries
            .iter()
            .take_while(|(_, t)| *t <= horizon)
            .count();
        // The newest of the old entries answers; older ones never will again.
        if old > 1 {
            self.entries.drain(..old - 1);
        }
        self.entries
            .first()
            .filter(|(_, t)| *t <= horizon)
            .map(|(o, _)| *o)
    }

    /// The log was cut at `log_end` (truncated or replaced): clean points
    /// beyond it say nothing about it any more.
    pub fn forget_past(&mut self, log_end: Offset) {
        self.entries.retain(|(o, _)| *o <= log_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_go_only_below_what_was_cleaned_a_retention_ago() {
        let mut h = CleanHistory::default();
        assert_eq!(h.removable_below(1_000_000, 100), None);
        h.advanced(Offset(50), 1_000);
        h.advanced(Offset(80), 1_050);
        // 99 ms after the first pass: nothing has been clean long enough.
        assert_eq!(h.removable_below(1_099, 100), None);
        assert_eq!(h.removable_below(1_100, 100), Some(Offset(50)));
        assert_eq!(h.removable_below(1_149, 100), Some(Offset(50)));
        assert_eq!(h.removable_below(1_150, 100), Some(Offset(80)));
        // A pass that did not move the clean point records nothing.
        h.advanced(Offset(80), 2_000);
        assert_eq!(h.removable_below(2_000, 100), Some(Offset(80)));
    }

    #[test]
    fn a_full_history_thins_out_towards_keeping_tombstones_longer() {
        let mut h = CleanHistory::default();
        for i in 0..(ENTRIES_MAX as i64 * 3) {
            h.advanced(Offset(i * 10), i * 100);
            assert!(h.entries.len() <= ENTRIES_MAX);
        }
        // Whatever was dropped, the answer is never above the exact one.
        for now in (0..30_000i64).step_by(37) {
            let exact = (now - 500).div_euclid(100) * 10;
            if let Some(o) = h.clone().removable_below(now, 500) {
                assert!(o.0 <= exact, "{now}: {o:?} above {exact}");
            }
        }
    }

    #[test]
    fn a_cut_log_forgets_clean_points_past_its_end() {
        let mut h = CleanHistory::starting_at(Offset(10), 0);
        h.advanced(Offset(90), 10);
        h.forget_past(Offset(40));
        assert_eq!(h.removable_below(1_000, 100), Some(Offset(10)));
    }
}
