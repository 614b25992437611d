//! A partition leader's in-sync replica set and high watermark, free of
//! I/O (Kafka's `Partition.maybeExpandIsr`, `maybeShrinkIsr`,
//! `maybeIncrementLeaderHW`, `checkEnoughReplicasReachOffset`).
//!
//! ```text
//! follower Fetch ──on_follower_fetch──► FollowerState updated
//!                                       └─► maybe an Expand proposal
//! periodic ──maybe_shrink──► followers not caught up for lag.max ─► Shrink proposal
//! every change ──maybe_advance_high_watermark──► HW = min LEO over the
//!        maximal ISR (+ caught-up eligible followers), capped by the
//!        leader's end (its synced end in fsync mode); never backwards
//! produce acks=all ──check_acks_all(last offset + 1)──► wait / done / NER_AFTER_APPEND
//! published image ──on_image(partition_epoch, isr)──► proposal settled
//! ```
//!
//! ISR changes are proposals to the controller (AlterPartition with the
//! partition epoch they were computed from). While one is in flight no other
//! is made, and the high watermark counts the *maximal* ISR (committed ∪
//! proposed), so a follower being removed still holds the high watermark
//! back until the controller has removed it, and one being added does from
//! the moment it is proposed (Kafka's `PendingExpandIsr`/`PendingShrinkIsr`).
//!
//! # Invariants
//! - The leader is always in the ISR (the controller never removes it; a
//!   shrink never proposes it out).
//! - The high watermark never moves back while one leader epoch lasts.
//! - At most one proposal is pending.
//! - Only a follower that is eligible (registered, not fenced, not shutting
//!   down: KIP-841) and has reached both the high watermark and the start of
//!   the current leader epoch is proposed into the ISR.

use std::collections::BTreeMap;

use super::follower_state::FollowerState;

/// An ISR change for the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// The whole new ISR, leader first.
    pub isr: Vec<i32>,
    /// The partition epoch the change was computed from: the controller
    /// refuses it if the partition changed since (INVALID_UPDATE_VERSION).
    pub partition_epoch: i32,
}

/// Why a proposed ISR change did not apply, as far as the proposer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrChangeFailure {
    /// The controller refused the change itself (it would drop the
    /// leader, or add a fenced replica): nothing was applied.
    Refused,
    /// The partition moved on before the change could apply (another
    /// change, a new leader epoch): the newer state reaches this broker
    /// through the image, which settles the pending change.
    Stale,
    /// No answer (the controller changed, or the commit timed out): the
    /// change may have been applied. Only the image or a definite answer
    /// to the same change sent again can tell.
    Unknown,
}

/// How an acks=all produce stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksAll {
    /// The high watermark has not reached the batch yet.
    Waiting,
    /// Replicated to the ISR, and the ISR is at least `min.insync.replicas`.
    Done,
    /// Replicated, but the ISR shrank below `min.insync.replicas` meanwhile.
    NotEnoughReplicasAfterAppend,
}

/// What a new leader starts from: the image's partition state and its own
/// log.
#[derive(Debug, Clone)]
pub struct LeaderStart<'a> {
    pub leader: i32,
    pub replicas: &'a [i32],
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
    /// What the leader's log holds as committed when it takes over.
    pub high_watermark: i64,
    /// The first offset of the new leader epoch (the log end at takeover).
    pub leader_epoch_start_offset: i64,
}

/// The leader's ISR state for one partition and one leader epoch.
#[derive(Debug, Clone)]
pub struct LeaderIsr {
    leader: i32,
    /// The first offset written in this leader epoch: a follower joins the
    /// ISR only once it has everything before it.
    leader_epoch_start_offset: i64,
    partition_epoch: i32,
    /// The ISR of the last published image.
    isr: Vec<i32>,
    /// A proposal sent and not yet published.
    pending: Option<IsrProposal>,
    followers: BTreeMap<i32, FollowerState>,
    high_watermark: i64,
    lag_max_ms: i64,
}

impl LeaderIsr {
    /// The state of a leader that took over at `now_ms`;
    /// `lag_max_ms` is `replica.lag.time.max.ms`.
    pub fn new(start: LeaderStart<'_>, lag_max_ms: i64, now_ms: i64) -> Self {
        let followers = start
            .replicas
            .iter()
            .filter(|&&r| r != start.leader)
            .map(|&r| (r, FollowerState::new(now_ms, start.isr.contains(&r))))
            .collect();
        Self {
            leader: start.leader,
            leader_epoch_start_offset: start.leader_epoch_start_offset,
            partition_epoch: start.partition_epoch,
            isr: start.isr,
            pending: None,
            followers,
            high_watermark: start.high_watermark,
            lag_max_ms,
        }
    }

    /// Whether any replica besides the leader exists (appends must then
    /// wake waiting follower fetches).
    pub fn has_followers(&self) -> bool {
        !self.followers.is_empty()
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The ISR of the last published image.
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn pending(&self) -> Option<&IsrProposal> {
        self.pending.as_ref()
    }

    pub fn follower(&self, id: i32) -> Option<&FollowerState> {
        self.followers.get(&id)
    }

    /// Committed ISR ∪ proposed ISR: who the high watermark waits for.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut all = self.isr.clone();
        if let Some(p) = &self.pending {
            for r in &p.isr {
                if !all.contains(r) {
                    all.push(*r);
                }
            }
        }
        all
    }

    /// A published image changed this partition without changing its
    /// leader epoch: adopt its ISR and partition epoch, which settles a
    /// pending proposal (accepted or overtaken).
    pub fn on_image(&mut self, partition_epoch: i32, isr: Vec<i32>, replicas: &[i32], now_ms: i64) {
        if partition_epoch <= self.partition_epoch {
            return;
        }
        self.partition_epoch = partition_epoch;
        self.isr = isr;
        self.pending = None;
        self.followers.retain(|id, _| replicas.contains(id));
        for &r in replicas {
            if r != self.leader {
                self.followers
                    .entry(r)
                    .or_insert_with(|| FollowerState::new(now_ms, false));
            }
        }
    }

    /// The partition's published high watermark is `hw` (computed by
    /// `replica::high_watermark` from the replicated end this type gives
    /// and the leader's own written end): the ISR join rule of
    /// [`LeaderIsr::on_follower_fetch`] compares followers with it, so it
    /// must not lag behind.
    pub fn observe_high_watermark(&mut self, hw: i64) {
        self.high_watermark = self.high_watermark.max(hw);
    }

    /// The pending proposal did not apply: returns whether it is still
    /// pending (to be sent again as it is).
    ///
    /// Only a definite refusal forgets it, so the next check computes a
    /// fresh one. Otherwise it may have been applied, or the image will
    /// say what was: it stays pending, and its replicas keep counting in
    /// the maximal ISR, until an image settles it. Forgetting an expansion
    /// whose fate is unknown would let the high watermark pass a follower
    /// the controller may already have added to the ISR — one that could
    /// then be elected leader without an acknowledged record.
    pub fn on_proposal_failed(&mut self, failure: IsrChangeFailure) -> bool {
        match failure {
            IsrChangeFailure::Refused => {
                self.pending = None;
                false
            }
            IsrChangeFailure::Stale => false,
            IsrChangeFailure::Unknown => self.pending.is_some(),
        }
    }

    /// Records a follower's fetch; returns an ISR expansion to propose if
    /// the follower has now caught up and is eligible. `leader_log_end` is
    /// the leader's log end offset when the fetch is served.
    pub fn on_follower_fetch(
        &mut self,
        follower: i32,
        fetch_offset: i64,
        leader_log_end: i64,
        now_ms: i64,
        eligible: bool,
    ) -> Option<IsrProposal> {
        let state = self.followers.get_mut(&follower)?;
        state.on_fetch(fetch_offset, leader_log_end, now_ms);
        let state = *state;
        if self.pending.is_some() || self.isr.contains(&follower) || !eligible {
            return None;
        }
        let joins = state.log_end_offset >= self.high_watermark
            && state.log_end_offset >= self.leader_epoch_start_offset;
        joins.then(|| {
            let mut isr = self.isr.clone();
            isr.push(follower);
            self.propose(isr)
        })
    }

    /// Followers in the ISR that have not been caught up for
    /// `replica.lag.time.max.ms`: returns the shrink to propose, if any.
    pub fn maybe_shrink(&mut self, leader_log_end: i64, now_ms: i64) -> Option<IsrProposal> {
        if self.pending.is_some() {
            return None;
        }
        let lag = self.lag_max_ms;
        let keep: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| {
                *r == self.leader
                    || self
                        .followers
                        .get(r)
                        .is_some_and(|f| f.is_caught_up(leader_log_end, now_ms, lag))
            })
            .collect();
        (keep.len() < self.isr.len()).then(|| self.propose(keep))
    }

    fn propose(&mut self, isr: Vec<i32>) -> IsrProposal {
        let proposal = IsrProposal {
            isr,
            partition_epoch: self.partition_epoch,
        };
        self.pending = Some(proposal.clone());
        proposal
    }

    /// The smallest log end offset among the followers the high watermark
    /// waits for: the maximal ISR and the caught-up eligible followers
    /// (`i64::MAX` when there are none: the ISR is the leader alone).
    pub fn replicated_end(
        &self,
        leader_log_end: i64,
        now_ms: i64,
        eligible: impl Fn(i32) -> bool,
    ) -> i64 {
        let maximal = self.maximal_isr();
        self.followers
            .iter()
            .filter(|(id, f)| {
                maximal.contains(id)
                    || (f.is_caught_up(leader_log_end, now_ms, self.lag_max_ms) && eligible(**id))
            })
            .map(|(_, f)| f.log_end_offset)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Moves the high watermark up to [`LeaderIsr::replicated_end`], at
    /// most `leader_end` (the leader's log end offset, or in fsync mode the
    /// end of what it has synced). Returns the new high watermark if it
    /// moved.
    pub fn maybe_advance_high_watermark(
        &mut self,
        leader_end: i64,
        leader_log_end: i64,
        now_ms: i64,
        eligible: impl Fn(i32) -> bool,
    ) -> Option<i64> {
        let candidate = leader_end.min(self.replicated_end(leader_log_end, now_ms, eligible));
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            Some(candidate)
        } else {
            None
        }
    }

    pub fn enough_replicas_to_append(&self, min_insync: usize) -> bool {
        self.isr.len() >= min_insync
    }

    /// Where an acks=all produce whose last offset is `required_offset - 1`
    /// stands (Kafka's `checkEnoughReplicasReachOffset`).
    pub fn check_acks_all(&self, required_offset: i64, min_insync: usize) -> AcksAll {
        if self.high_watermark < required_offset {
            AcksAll::Waiting
        } else if self.isr.len() >= min_insync {
            AcksAll::Done
        } else {
            AcksAll::NotEnoughReplicasAfterAppend
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;

    fn leader(replicas: &[i32], isr: Vec<i32>, epoch: i32, hw: i64, start: i64) -> LeaderIsr {
        let start = LeaderStart {
            leader: 1,
            replicas,
            isr,
            partition_epoch: epoch,
            high_watermark: hw,
            leader_epoch_start_offset: start,
        };
        LeaderIsr::new(start, LAG, 0)
    }

    /// Leader 1, followers 2 and 3, all in the ISR, at partition epoch 5.
    fn three() -> LeaderIsr {
        leader(&[1, 2, 3], vec![1, 2, 3], 5, 0, 0)
    }

    fn all_eligible(_: i32) -> bool {
        true
    }

    #[test]
    fn high_watermark_is_the_smallest_isr_log_end_and_never_moves_back() {
        let mut isr = three();
        // Before followers fetch, their log end is unknown: no progress.
        assert_eq!(
            isr.maybe_advance_high_watermark(10, 10, 0, all_eligible),
            None
        );
        isr.on_follower_fetch(2, 10, 10, 100, true);
        isr.on_follower_fetch(3, 4, 10, 100, true);
        assert_eq!(
            isr.maybe_advance_high_watermark(10, 10, 100, all_eligible),
            Some(4)
        );
        isr.on_follower_fetch(3, 10, 12, 200, true);
        // Capped by the leader's synced end (fsync mode).
        assert_eq!(
            isr.maybe_advance_high_watermark(8, 12, 200, all_eligible),
            Some(8)
        );
        // A follower reporting a smaller end (truncated) never pulls it back.
        isr.on_follower_fetch(2, 3, 12, 300, true);
        assert_eq!(
            isr.maybe_advance_high_watermark(12, 12, 300, all_eligible),
            None
        );
        assert_eq!(isr.high_watermark(), 8);
    }

    #[test]
    fn a_lagging_follower_is_proposed_out_and_stops_holding_the_hw_once_removed() {
        let mut isr = three();
        isr.on_follower_fetch(2, 100, 100, 1_000, true);
        isr.on_follower_fetch(3, 50, 100, 1_000, true);
        assert_eq!(isr.maybe_shrink(100, 20_000), None);
        let shrink = isr.maybe_shrink(100, 40_000).unwrap();
        assert_eq!(shrink.isr, vec![1, 2]);
        assert_eq!(shrink.partition_epoch, 5);
        // Pending: no second proposal, and 3 still holds the HW at 50.
        assert_eq!(isr.maybe_shrink(100, 50_000), None);
        assert_eq!(
            isr.maybe_advance_high_watermark(100, 100, 40_000, |_| false),
            Some(50)
        );
        isr.on_image(6, vec![1, 2], &[1, 2, 3], 40_000);
        assert_eq!(
            isr.maybe_advance_high_watermark(100, 100, 40_000, |_| false),
            Some(100)
        );
    }

    #[test]
    fn a_caught_up_eligible_follower_is_proposed_back_in() {
        let mut isr = leader(&[1, 2, 3], vec![1, 2], 7, 100, 90);
        // Behind the HW: not yet.
        assert_eq!(isr.on_follower_fetch(3, 80, 120, 10, true), None);
        // Fenced or shutting down (KIP-841): never.
        assert_eq!(isr.on_follower_fetch(3, 120, 120, 20, false), None);
        let expand = isr.on_follower_fetch(3, 120, 120, 30, true).unwrap();
        assert_eq!(expand.isr, vec![1, 2, 3]);
        assert_eq!(expand.partition_epoch, 7);
        assert_eq!(isr.maximal_isr(), vec![1, 2, 3]);
        // Refused by the controller: a fresh proposal next time.
        assert!(!isr.on_proposal_failed(IsrChangeFailure::Refused));
        assert!(isr.on_follower_fetch(3, 120, 120, 40, true).is_some());
    }

    /// Found by the replication simulation: an expansion whose answer was
    /// lost was forgotten, the high watermark passed the joining follower,
    /// and the controller had in fact added it to the ISR.
    #[test]
    fn an_expansion_of_unknown_fate_keeps_holding_the_high_watermark() {
        let mut isr = leader(&[1, 2, 3], vec![1, 2], 7, 100, 90);
        let expand = isr.on_follower_fetch(3, 100, 100, 10, true).unwrap();
        assert!(isr.on_proposal_failed(IsrChangeFailure::Unknown));
        assert_eq!(isr.pending(), Some(&expand));
        // The leader writes up to 110, follower 2 has it all, 3 does not.
        isr.on_follower_fetch(2, 110, 110, 20, true);
        assert_eq!(
            isr.maybe_advance_high_watermark(110, 110, 20, |_| false),
            None,
            "follower 3 may be in the ISR already"
        );
        // Sent again, the change is stale: it was applied, and the image
        // carrying it settles it.
        assert!(!isr.on_proposal_failed(IsrChangeFailure::Stale));
        assert_eq!(isr.maximal_isr(), vec![1, 2, 3]);
        isr.on_image(8, vec![1, 2, 3], &[1, 2, 3], 30);
        assert_eq!(isr.pending(), None);
        assert_eq!(isr.isr(), &[1, 2, 3]);
    }

    #[test]
    fn a_follower_must_reach_the_leader_epoch_start_to_join() {
        let mut isr = leader(&[1, 2], vec![1], 1, 10, 50);
        assert_eq!(isr.on_follower_fetch(2, 40, 60, 1, true), None);
        assert!(isr.on_follower_fetch(2, 50, 60, 2, true).is_some());
    }

    #[test]
    fn acks_all_waits_for_the_hw_and_checks_min_insync() {
        let mut isr = three();
        assert!(isr.enough_replicas_to_append(2));
        assert_eq!(isr.check_acks_all(10, 2), AcksAll::Waiting);
        isr.on_follower_fetch(2, 10, 10, 1, true);
        isr.on_follower_fetch(3, 10, 10, 1, true);
        isr.maybe_advance_high_watermark(10, 10, 1, all_eligible);
        assert_eq!(isr.check_acks_all(10, 2), AcksAll::Done);
        isr.on_image(6, vec![1], &[1, 2, 3], 2);
        assert!(!isr.enough_replicas_to_append(2));
        assert_eq!(
            isr.check_acks_all(10, 2),
            AcksAll::NotEnoughReplicasAfterAppend
        );
    }

    #[test]
    fn the_leader_is_never_shrunk_out() {
        let mut isr = three();
        let shrink = isr.maybe_shrink(100, 1_000_000).unwrap();
        assert_eq!(shrink.isr, vec![1]);
    }
}
