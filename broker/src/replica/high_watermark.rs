//! The one owner of a partition's high watermark and of what readers may
//! see of it ([`Progress`]).
//!
//! Every change to the published progress goes through this type; nothing
//! else holds the `watch::Sender`. Its inputs:
//!
//! ```text
//! leader:   HW = min(local end, replicated end)
//!             local end      the leader's own end that counts as written:
//!                            the durable end with durability=fsync, the
//!                            log end after each append with page_cache
//!             replicated end min log end offset over the followers the
//!                            leader waits for (`replica::isr`, set with
//!                            `set_replicated_end`; ∞ when the ISR is the
//!                            leader alone). A node that becomes leader
//!                            keeps its high watermark until its followers
//!                            have reported where they are.
//! follower: HW = min(leader's HW from the last fetch, local end)
//! both:     HW ≥ log start offset
//! ```
//!
//! # Invariants
//! - The high watermark never goes down while the partition lives, except
//!   when a follower truncates below it (Kafka's `truncateTo` lowers it
//!   too), and never exceeds what this node itself counts as written
//!   (local end).
//! - A change is published with one `watch` send and wakes long-poll
//!   fetches only when the high watermark advanced.
//! - `written_end` (this node's own written end, published for acks=1)
//!   never goes down except by a follower's truncation.
//!
//! # Lock order
//! The partition's state lock is taken before the watch's lock, never
//! after: appends, flushes and follower reads publish or read progress
//! while holding the state lock. So no guard on the watch leaves this type
//! ([`HighWatermark::progress`] and [`HighWatermark::wait_for`] return
//! copies): a produce waiting for acks=all once held the guard
//! `watch::Receiver::wait_for` returns while it asked the partition for
//! its ISR, and with a follower read holding the state lock and queued
//! behind a flush waiting to publish, the leader stopped for good
//! (docs/benchmarks.md, "A leader that stopped under acks=all").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use tokio::sync::{Notify, watch};

/// What readers may see of a partition, published after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// What this node itself counts as written (the local end of the
    /// module table): an acks=1 produce is answered once it covers the
    /// batch.
    pub written_end: i64,
    /// The leader epoch this node leads the partition at, -1 while it
    /// follows: a produce waiting for replication fails once it changes
    /// (the offsets it waits for may then hold another leader's records).
    pub leader_epoch: i32,
    /// The log's directory failed (fsync or write error): the partition
    /// answers KAFKA_STORAGE_ERROR from now on.
    pub failed: bool,
}

/// The high watermark's inputs and the published [`Progress`].
pub struct HighWatermark {
    progress: watch::Sender<Progress>,
    leading: AtomicBool,
    /// This node's own written end (see the module table).
    local_end: AtomicI64,
    /// Leader: min LEO over the ISR followers (`i64::MAX`: none tracked).
    /// Follower: the leader's high watermark from the last fetch.
    bound: AtomicI64,
    /// The log end offset after the last leader append: what a waiting
    /// follower fetch compares, without the partition's lock.
    leader_log_end: AtomicI64,
    /// Shared by every partition: notified when a high watermark advances.
    data_arrived: Arc<Notify>,
}

impl HighWatermark {
    /// Starts at `high_watermark` (clamped between the log start and
    /// `local_end`, everything a reopened log holds having passed recovery)
    /// for a partition this node leads.
    pub fn new(
        local_end: i64,
        high_watermark: i64,
        log_start_offset: i64,
        data_arrived: Arc<Notify>,
    ) -> Self {
        let (progress, _) = watch::channel(Progress {
            high_watermark: high_watermark.min(local_end).max(log_start_offset),
            log_start_offset,
            written_end: local_end,
            leader_epoch: -1,
            failed: false,
        });
        Self {
            progress,
            leading: AtomicBool::new(true),
            local_end: AtomicI64::new(local_end),
            bound: AtomicI64::new(i64::MAX),
            leader_log_end: AtomicI64::new(local_end),
            data_arrived,
        }
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Waits until `settled` holds for the published progress and returns
    /// a copy of it. No guard on the watch leaves this type (lock order,
    /// module docs): a caller may take the partition's lock right after.
    pub async fn wait_for(&self, settled: impl FnMut(&Progress) -> bool) -> Progress {
        let mut published = self.progress.subscribe();
        match published.wait_for(settled).await {
            Ok(progress) => *progress,
            // Unreachable: the sender lives in `self`, borrowed here.
            Err(_) => self.progress(),
        }
    }

    /// The partition became leader (`true`) or follower. A new leader
    /// keeps its high watermark until `set_replicated_end` says what its
    /// followers hold; a new follower waits for its leader's HW.
    pub fn set_leading(&self, leading: bool) {
        if self.leading.swap(leading, Ordering::AcqRel) != leading {
            let bound = if leading {
                self.progress().high_watermark
            } else {
                i64::MIN
            };
            self.bound.store(bound, Ordering::Release);
        }
    }

    /// The leader epoch this node now leads at, -1 when it follows.
    pub fn set_leader_epoch(&self, leader_epoch: i32) {
        self.progress.send_if_modified(|p| {
            let changed = p.leader_epoch != leader_epoch;
            p.leader_epoch = leader_epoch;
            changed
        });
    }

    /// This node's written end moved to `end` (an append with page_cache,
    /// a completed fsync with fsync).
    pub fn local_end_advanced(&self, end: i64) {
        self.local_end.fetch_max(end, Ordering::AcqRel);
        self.advance();
    }

    /// A leader appended up to `log_end`; `wake` wakes waiting follower
    /// fetches (its high watermark moves only once they have fetched).
    pub fn leader_appended(&self, log_end: i64, wake: bool) {
        self.leader_log_end.store(log_end, Ordering::Release);
        if wake {
            self.data_arrived.notify_waiters();
        }
    }

    /// The log end offset after the last leader append (a hint: it may
    /// lag a follower's truncation; waiting fetches only compare it).
    pub fn leader_log_end(&self) -> i64 {
        self.leader_log_end.load(Ordering::Acquire)
    }

    /// The leader's min log end offset over the followers it waits for
    /// (`i64::MAX` when the ISR is the leader alone).
    pub fn set_replicated_end(&self, end: i64) {
        if self.leading.load(Ordering::Acquire) {
            self.bound.store(end, Ordering::Release);
            self.advance();
        }
    }

    /// A follower learnt its leader's high watermark from a fetch answer.
    pub fn leader_high_watermark(&self, leader_hw: i64) {
        if !self.leading.load(Ordering::Acquire) {
            self.bound.fetch_max(leader_hw, Ordering::AcqRel);
            self.advance();
        }
    }

    /// The log start offset moved (retention, DeleteRecords); the high
    /// watermark is never below it.
    pub fn log_start_moved(&self, log_start_offset: i64) {
        let advanced = self.progress.send_if_modified(|p| {
            let changed = p.log_start_offset != log_start_offset;
            p.log_start_offset = log_start_offset;
            let hw = p.high_watermark.max(log_start_offset);
            let advanced = hw != p.high_watermark;
            p.high_watermark = hw;
            changed || advanced
        });
        if advanced {
            self.data_arrived.notify_waiters();
        }
    }

    /// The log was truncated to `end` (a follower only): the local end and
    /// the high watermark go back with it, as Kafka's `truncateTo` does.
    pub fn truncated(&self, end: i64) {
        self.local_end.fetch_min(end, Ordering::AcqRel);
        self.progress.send_if_modified(|p| {
            let lowered = end.max(p.log_start_offset);
            let mut changed = false;
            if lowered < p.high_watermark {
                p.high_watermark = lowered;
                changed = true;
            }
            if end < p.written_end {
                p.written_end = end;
                changed = true;
            }
            changed
        });
    }

    pub fn mark_failed(&self) {
        self.progress.send_modify(|p| p.failed = true);
    }

    fn advance(&self) {
        let local_end = self.local_end.load(Ordering::Acquire);
        let target = local_end.min(self.bound.load(Ordering::Acquire));
        let mut advanced = false;
        self.progress.send_if_modified(|p| {
            let written = local_end > p.written_end;
            if written {
                p.written_end = local_end;
            }
            if target > p.high_watermark {
                p.high_watermark = target;
                advanced = true;
            }
            written || advanced
        });
        if advanced {
            self.data_arrived.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hw(end: i64) -> HighWatermark {
        HighWatermark::new(end, end, 0, Arc::new(Notify::new()))
    }

    #[test]
    fn a_sole_leader_follows_its_local_end_and_never_goes_back() {
        let h = hw(5);
        assert_eq!(h.progress().high_watermark, 5);
        h.local_end_advanced(9);
        assert_eq!(h.progress().high_watermark, 9);
        h.local_end_advanced(7);
        assert_eq!(h.progress().high_watermark, 9);
    }

    #[test]
    fn a_leader_waits_for_the_replicated_end() {
        let h = hw(0);
        h.set_replicated_end(3);
        h.local_end_advanced(10);
        assert_eq!(h.progress().high_watermark, 3);
        h.set_replicated_end(12);
        assert_eq!(h.progress().high_watermark, 10);
    }

    #[test]
    fn a_follower_takes_the_leaders_high_watermark_up_to_its_own_end() {
        let h = hw(2);
        h.set_leading(false);
        h.local_end_advanced(6);
        assert_eq!(h.progress().high_watermark, 2, "no leader HW known yet");
        h.leader_high_watermark(4);
        assert_eq!(h.progress().high_watermark, 4);
        h.leader_high_watermark(20);
        assert_eq!(h.progress().high_watermark, 6);
        h.set_replicated_end(100);
        assert_eq!(h.progress().high_watermark, 6, "a follower has no ISR");
    }

    #[test]
    fn a_new_leader_keeps_its_high_watermark_until_followers_report() {
        let h = hw(2);
        h.set_leading(false);
        h.leader_high_watermark(2);
        h.local_end_advanced(9);
        h.set_leading(true);
        assert_eq!(h.progress().high_watermark, 2);
        h.local_end_advanced(10);
        assert_eq!(h.progress().high_watermark, 2, "followers not heard yet");
        assert_eq!(h.progress().written_end, 10);
        h.set_replicated_end(7);
        assert_eq!(h.progress().high_watermark, 7);
    }

    #[test]
    fn truncation_lowers_the_high_watermark_to_the_new_end() {
        let h = hw(8);
        h.set_leading(false);
        h.leader_high_watermark(8);
        h.truncated(5);
        assert_eq!(h.progress().high_watermark, 5);
        h.local_end_advanced(9);
        assert_eq!(h.progress().high_watermark, 8);
    }

    #[test]
    fn the_log_start_offset_lifts_the_high_watermark() {
        let h = hw(2);
        h.log_start_moved(5);
        assert_eq!(
            h.progress(),
            Progress {
                high_watermark: 5,
                log_start_offset: 5,
                written_end: 2,
                leader_epoch: -1,
                failed: false
            }
        );
    }
}
