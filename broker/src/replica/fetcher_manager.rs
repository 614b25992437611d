//! The replica fetchers of one broker: one [`ReplicaFetcher`] per source
//! broker, created when a first partition follows a leader there and
//! stopped when its last partition leaves (Kafka's
//! `ReplicaFetcherManager`, with one fetcher per source broker rather than
//! `num.replica.fetchers` of them).
//!
//! The reconciler calls [`ReplicaFetcherManager::follow`] for every
//! partition the image says this node follows, and
//! [`ReplicaFetcherManager::unfollow`] before the partition becomes a
//! leader (or is deleted): once `unfollow` returns, no fetcher appends to
//! it any more.
//!
//! # Invariants
//! - A partition is assigned to at most one fetcher: following it from a
//!   new leader removes it from the old leader's fetcher first.
//! - A fetcher exists only while it has partitions, so the number of
//!   fetchers is at most the number of other brokers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::fetcher::{FetcherConfig, ReplicaFetcher, SourceBroker, TopicPartition};
use super::fetcher_follower::FollowerLog;

/// Which fetcher copies which partition.
#[derive(Debug, Default)]
struct Fetchers {
    /// Source node id → its fetcher.
    by_source: HashMap<i32, ReplicaFetcher>,
    /// Partition → the source node its fetcher is on.
    source_of: HashMap<TopicPartition, i32>,
    /// Partition → what [`ReplicaFetcherManager::follow_if_changed`] last
    /// assigned: (leader epoch, identity of the followed object).
    assigned: HashMap<TopicPartition, (i32, usize)>,
}

/// The fetchers of this broker.
#[derive(Debug)]
pub struct ReplicaFetcherManager {
    config: FetcherConfig,
    fetchers: Mutex<Fetchers>,
}

impl ReplicaFetcherManager {
    pub fn new(config: FetcherConfig) -> Self {
        Self {
            config,
            fetchers: Mutex::new(Fetchers::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Fetchers> {
        // Every change below leaves `Fetchers` consistent between
        // statements, so a poisoned lock still holds a usable map.
        match self.fetchers.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Follows `tp` from `leader` at `leader_epoch`, moving it off any other
    /// fetcher. A fetcher for `leader` is started if none runs, or
    /// restarted if the leader's address changed.
    pub fn follow(
        &self,
        tp: TopicPartition,
        leader: SourceBroker,
        leader_epoch: i32,
        follower: Arc<dyn FollowerLog>,
    ) {
        let mut f = self.lock();
        if let Some(old) = f.source_of.get(&tp).copied()
            && old != leader.node_id
        {
            remove_from(&mut f, &tp, old);
        }
        let restart = f
            .by_source
            .get(&leader.node_id)
            .is_some_and(|r| r.source().address != leader.address || r.is_finished());
        if restart && let Some(old) = f.by_source.remove(&leader.node_id) {
            // Carry nothing over: the reconciler assigns every partition
            // again from the image that named the new address.
            let gone = old.source().node_id;
            let Fetchers {
                source_of,
                assigned,
                ..
            } = &mut *f;
            source_of.retain(|tp, source| {
                let keep = *source != gone;
                if !keep {
                    assigned.remove(tp);
                }
                keep
            });
        }
        let fetcher = f
            .by_source
            .entry(leader.node_id)
            .or_insert_with(|| ReplicaFetcher::start(leader.clone(), self.config.clone()));
        fetcher.assign(tp.clone(), leader_epoch, follower);
        f.source_of.insert(tp, leader.node_id);
    }

    /// [`ReplicaFetcherManager::follow`] unless `tp` is already followed
    /// from `leader` (same address, fetcher running) at `leader_epoch` for
    /// the same partition object `key` (a re-created topic is a new one):
    /// then its fetch state (backoffs, epoch checks) is kept.
    pub fn follow_if_changed<T>(
        &self,
        tp: TopicPartition,
        leader: SourceBroker,
        leader_epoch: i32,
        key: &Arc<T>,
        follower: impl FnOnce() -> Arc<dyn FollowerLog>,
    ) {
        let identity = Arc::as_ptr(key) as *const () as usize;
        {
            let f = self.lock();
            let same = f.source_of.get(&tp) == Some(&leader.node_id)
                && f.assigned.get(&tp) == Some(&(leader_epoch, identity))
                && f.by_source
                    .get(&leader.node_id)
                    .is_some_and(|r| r.source().address == leader.address && !r.is_finished());
            if same {
                return;
            }
        }
        self.follow(tp.clone(), leader, leader_epoch, follower());
        self.lock().assigned.insert(tp, (leader_epoch, identity));
    }

    /// Every partition some fetcher follows.
    pub fn followed_partitions(&self) -> Vec<TopicPartition> {
        self.lock().source_of.keys().cloned().collect()
    }

    /// Stops following `tp`. Once this returns nothing appends to it.
    pub fn unfollow(&self, tp: &TopicPartition) {
        let mut f = self.lock();
        f.assigned.remove(tp);
        if let Some(source) = f.source_of.get(tp).copied() {
            remove_from(&mut f, tp, source);
        }
    }

    /// The partitions followed, per source node (for tests and metrics).
    pub fn followed(&self) -> HashMap<i32, usize> {
        self.lock()
            .by_source
            .iter()
            .map(|(node, r)| (*node, r.partition_count()))
            .collect()
    }

    /// Stops every fetcher.
    pub fn shutdown(&self) {
        let mut f = self.lock();
        f.source_of.clear();
        f.assigned.clear();
        f.by_source.clear();
    }
}

/// Removes `tp` from the fetcher on `source`; stops that fetcher if it has
/// nothing left.
fn remove_from(f: &mut Fetchers, tp: &TopicPartition, source: i32) {
    f.source_of.remove(tp);
    let idle = match f.by_source.get(&source) {
        Some(fetcher) => {
            fetcher.remove(tp);
            fetcher.partition_count() == 0
        }
        None => false,
    };
    if idle {
        f.by_source.remove(&source);
    }
}
