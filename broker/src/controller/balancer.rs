//! The active controller's partition upkeep beyond liveness: completing
//! reassignments whose target replicas are in sync (KIP-455), and Kafka's
//! automatic preferred-leader balancing (`auto.leader.rebalance.enable`,
//! `leader.imbalance.check.interval.seconds`,
//! `leader.imbalance.per.broker.percentage`).
//!
//! I/O-free and clocked in controller ticks like [`super::liveness`]; the
//! decisions themselves are the pure functions of
//! [`crate::metadata::reassignment`] and [`crate::metadata::election`].
//!
//! # Invariants
//! - Everything is proposed as [`MetadataRecord::PartitionChangesAt`], so a
//!   decision made on an image older than a concurrent ISR change is
//!   skipped at apply, never applied over it.
//! - The same completion (partition and partition epoch) is proposed at
//!   most once per [`RETRY_TICKS`]; the map remembering them holds only
//!   partitions still being reassigned.
//! - At most [`CHANGES_PER_RECORD`] changes per record, so a record stays
//!   far below the Raft message bound whatever the partition count.

use std::collections::HashMap;
use std::sync::Arc;

use super::liveness::RETRY_TICKS;
use crate::metadata::election::preferred_rebalance;
use crate::metadata::reassignment::completions;
use crate::metadata::{MetadataImage, MetadataRecord, PartitionChangeAt};

/// Most partition changes one proposed record carries.
pub const CHANGES_PER_RECORD: usize = 1_000;

/// Kafka's `leader.imbalance.check.interval.seconds` default.
pub const LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT: u64 = 300;

/// Kafka's `leader.imbalance.per.broker.percentage` default.
pub const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT: u32 = 10;

/// Automatic preferred-leader balancing, when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderBalancing {
    /// Ticks between two checks.
    pub interval_ticks: u64,
    /// A broker whose share of preferred-but-not-led partitions is above
    /// this percentage gets them back.
    pub max_imbalance_percent: u32,
}

/// The active controller's balancing state.
#[derive(Debug)]
pub struct PartitionBalancer {
    balancing: Option<LeaderBalancing>,
    /// Tick of the next leader-balance check.
    next_check: u64,
    /// Completions proposed: partition → (partition epoch, tick).
    proposed: HashMap<(String, i32), (i32, u64)>,
    /// The image last scanned for completions, and when.
    scanned: Option<(Arc<MetadataImage>, u64)>,
}

impl PartitionBalancer {
    pub fn new(balancing: Option<LeaderBalancing>) -> Self {
        Self {
            balancing,
            next_check: 0,
            proposed: HashMap::new(),
            scanned: None,
        }
    }

    /// This controller became leader at tick `now`: the first balance
    /// check is one interval away (Kafka's controller waits too), and
    /// nothing proposed in an earlier term is remembered.
    pub fn reset(&mut self, now: u64) {
        self.next_check = self
            .balancing
            .map_or(u64::MAX, |b| now.saturating_add(b.interval_ticks.max(1)));
        self.proposed.clear();
        self.scanned = None;
    }

    /// The records due at tick `now` given `image`.
    pub fn due(&mut self, image: &Arc<MetadataImage>, now: u64) -> Vec<MetadataRecord> {
        let mut changes = Vec::new();
        let rescan = self.scanned.as_ref().is_none_or(|(seen, at)| {
            !Arc::ptr_eq(seen, image) || now >= at.saturating_add(RETRY_TICKS)
        });
        if rescan {
            self.scanned = Some((Arc::clone(image), now));
            let due = completions(image);
            self.proposed.retain(|(topic, partition), _| {
                image
                    .partition(topic, *partition)
                    .is_some_and(|p| p.is_reassigning())
            });
            for change in due {
                let key = (change.topic.clone(), change.partition);
                let recent = self.proposed.get(&key).is_some_and(|(epoch, at)| {
                    *epoch == change.partition_epoch && now < at.saturating_add(RETRY_TICKS)
                });
                if !recent {
                    self.proposed.insert(key, (change.partition_epoch, now));
                    changes.push(change);
                }
            }
        }
        if let Some(b) = self.balancing
            && now >= self.next_check
        {
            self.next_check = now.saturating_add(b.interval_ticks.max(1));
            let moves = preferred_rebalance(image, b.max_imbalance_percent);
            if !moves.is_empty() {
                tracing::info!(
                    partitions = moves.len(),
                    "leader imbalance above leader.imbalance.per.broker.percentage: electing preferred leaders"
                );
            }
            changes.extend(moves);
        }
        records(changes)
    }
}

/// `changes` as records of at most [`CHANGES_PER_RECORD`] changes each.
pub fn records(changes: Vec<PartitionChangeAt>) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    let mut changes = changes.into_iter().peekable();
    while changes.peek().is_some() {
        out.push(MetadataRecord::PartitionChangesAt {
            changes: changes.by_ref().take(CHANGES_PER_RECORD).collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::fixtures::image_with_partition;
    use crate::metadata::reassignment::start;

    #[test]
    fn a_completion_is_proposed_once_per_retry_interval() {
        let mut image = image_with_partition(&[1, 2, 3], &[1, 2]);
        let p = image.partition("t", 0).unwrap().clone();
        let change = start(&image, "t", 0, &p, &[1, 3]).unwrap().unwrap();
        image
            .apply(&MetadataRecord::PartitionChangesAt {
                changes: vec![change],
            })
            .unwrap();
        image
            .apply(&MetadataRecord::PartitionChanged {
                topic: "t".into(),
                partition: 0,
                leader: None,
                isr: Some(vec![1, 2, 3]),
                replicas: None,
                partition_epoch: None,
            })
            .unwrap();
        let image = Arc::new(image);
        let mut balancer = PartitionBalancer::new(None);
        balancer.reset(0);
        assert_eq!(balancer.due(&image, 1).len(), 1);
        assert!(balancer.due(&image, 2).is_empty());
        assert!(balancer.due(&Arc::new((*image).clone()), 3).is_empty());
        assert_eq!(balancer.due(&image, 1 + RETRY_TICKS).len(), 1);
    }

    #[test]
    fn records_are_chunked() {
        let changes = (0..2_500)
            .map(|p| PartitionChangeAt::new("t", p, 0))
            .collect::<Vec<_>>();
        let sizes: Vec<usize> = records(changes)
            .iter()
            .map(|r| match r {
                MetadataRecord::PartitionChangesAt { changes } => changes.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![1_000, 1_000, 500]);
    }
}
