//! What a partition leader knows about one follower: its log end offset
//! and when it was last caught up (Kafka's `Replica` state), updated from
//! each Fetch the follower sends.
//!
//! # Caught up
//! A follower is caught up at a fetch when it asks for the leader's log end
//! offset (it has everything), or for at least the leader's log end offset
//! at its previous fetch (it had everything as of then). The lag that
//! decides ISR membership is the time since it was last caught up, not an
//! offset distance (KIP-16: `replica.lag.time.max.ms`).
//!
//! # Invariants
//! - `last_caught_up_ms` never moves back.
//! - A follower whose log end offset equals the leader's is never out of
//!   sync, however long ago it last fetched.

/// Kafka's default `replica.lag.time.max.ms`.
pub const REPLICA_LAG_TIME_MAX_MS_DEFAULT: i64 = 30_000;

/// The leader's view of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset (its last fetch offset); -1 before its
    /// first fetch.
    pub log_end_offset: i64,
    /// When the follower was last caught up (ms); starts at the time the
    /// leader began tracking it (Kafka resets it on a leader change).
    pub last_caught_up_ms: i64,
    /// The leader's log end offset at the follower's previous fetch.
    last_fetch_leader_log_end: i64,
    /// When the previous fetch arrived.
    last_fetch_ms: i64,
}

impl FollowerState {
    /// A follower the leader starts tracking at `now_ms` (a new leader
    /// epoch): its log end is unknown until it fetches. One the image has
    /// in the ISR counts as caught up now; any other has never been
    /// (Kafka's `resetReplicaState`).
    pub fn new(now_ms: i64, in_isr: bool) -> Self {
        Self {
            log_end_offset: -1,
            last_caught_up_ms: if in_isr { now_ms } else { i64::MIN },
            last_fetch_leader_log_end: -1,
            last_fetch_ms: now_ms,
        }
    }

    /// Records a fetch at `fetch_offset` arriving at `now_ms` while the
    /// leader's log ends at `leader_log_end` (Kafka's
    /// `Replica.updateFetchStateOrThrow`).
    pub fn on_fetch(&mut self, fetch_offset: i64, leader_log_end: i64, now_ms: i64) {
        if fetch_offset >= leader_log_end {
            self.last_caught_up_ms = self.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= self.last_fetch_leader_log_end {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.log_end_offset = fetch_offset;
        self.last_fetch_leader_log_end = leader_log_end;
        self.last_fetch_ms = now_ms;
    }

    /// Whether the follower counts as caught up at `now_ms` (Kafka's
    /// `isCaughtUp`): it has the leader's whole log, or it was caught up
    /// within `lag_max_ms`.
    pub fn is_caught_up(&self, leader_log_end: i64, now_ms: i64, lag_max_ms: i64) -> bool {
        self.log_end_offset == leader_log_end
            || now_ms.saturating_sub(self.last_caught_up_ms) <= lag_max_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_at_the_leader_end_is_caught_up_now() {
        let mut f = FollowerState::new(0, true);
        f.on_fetch(100, 100, 5_000);
        assert_eq!(f.last_caught_up_ms, 5_000);
        assert!(f.is_caught_up(100, 1_000_000, 30_000));
    }

    #[test]
    fn reaching_the_previous_leader_end_counts_from_the_previous_fetch() {
        let mut f = FollowerState::new(0, true);
        f.on_fetch(50, 100, 1_000); // behind: not caught up at 1 000
        assert_eq!(f.last_caught_up_ms, 0);
        f.on_fetch(100, 150, 2_000); // has what the leader had at 1 000
        assert_eq!(f.last_caught_up_ms, 1_000);
        f.on_fetch(120, 200, 3_000); // behind the previous leader end again
        assert_eq!(f.last_caught_up_ms, 1_000);
    }

    #[test]
    fn lagging_longer_than_the_limit_is_out_of_sync() {
        let mut f = FollowerState::new(0, true);
        f.on_fetch(10, 100, 1_000);
        assert!(f.is_caught_up(100, 30_000, 30_000));
        assert!(!f.is_caught_up(100, 30_001, 30_000));
        // A follower that stopped fetching but has everything stays in.
        let mut idle = FollowerState::new(0, true);
        idle.on_fetch(100, 100, 0);
        assert!(idle.is_caught_up(100, 1_000_000, 30_000));
        assert!(!idle.is_caught_up(101, 1_000_000, 30_000));
    }

    #[test]
    fn a_follower_outside_the_isr_is_not_caught_up_until_it_fetches() {
        let f = FollowerState::new(1_000, false);
        assert!(!f.is_caught_up(1, 1_000, 30_000));
        let mut f = f;
        f.on_fetch(1, 1, 2_000);
        assert!(f.is_caught_up(1, 2_000, 30_000));
    }
}
