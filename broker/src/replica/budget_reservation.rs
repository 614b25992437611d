//! Replicas held in this node's partition budget while the change that
//! adds them is in flight (proposed, committed, not yet in the image the
//! budget is checked against).
//!
//! Invariants:
//! - A change's replicas are counted exactly once: by its reservation
//!   while no image holds the change, by the image as soon as one does
//!   (a big creation can take a minute to open on this node; the image
//!   already counts it all that time, so the reservation must not).
//! - Checking and reserving happen under one lock, so two concurrent
//!   creates cannot both pass the budget.
//! - A reservation is released when its guard drops, whatever became of
//!   the change.

use std::sync::Mutex;

use sluice_storage::PartitionBudget;
use uuid::Uuid;

use crate::error::BrokerError;
use crate::metadata::{BrokerId, MetadataImage, MetadataRecord};

/// The new replicas one change adds to this node, and how to tell that an
/// image holds the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicasInFlight {
    topic: String,
    /// The created topic's id (a creation); `None` for partitions added to
    /// an existing topic.
    topic_id: Option<Uuid>,
    /// The topic's partition count once the change is applied.
    partitions: usize,
    /// Replicas the change puts on this node.
    count: u64,
}

impl ReplicasInFlight {
    /// What `record` adds to node `node`: `None` for records that add no
    /// partitions.
    pub fn of(record: &MetadataRecord, node: BrokerId) -> Option<Self> {
        let (topic, topic_id, partitions, assignments) = match record {
            MetadataRecord::TopicCreated {
                name,
                topic_id,
                assignments,
                ..
            } => (name, Some(*topic_id), assignments.len(), assignments),
            MetadataRecord::PartitionsAdded {
                name,
                partitions,
                assignments,
            } => (
                name,
                None,
                usize::try_from(*partitions).unwrap_or(0),
                assignments,
            ),
            _ => return None,
        };
        let count = assignments
            .iter()
            .filter(|a| a.replicas.contains(&node))
            .count() as u64;
        Some(Self {
            topic: topic.clone(),
            topic_id,
            partitions,
            count,
        })
    }

    /// Replicas the change puts on this node.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether `image` already holds the change (and so counts its
    /// replicas itself).
    fn applied_in(&self, image: &MetadataImage) -> bool {
        image.topic(&self.topic).is_some_and(|t| {
            self.topic_id.is_none_or(|id| id == t.topic_id) && t.partitions.len() >= self.partitions
        })
    }
}

/// The changes in flight on this node, each with a key its guard removes.
#[derive(Debug, Default)]
pub struct BudgetReservations {
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    next_key: u64,
    changes: Vec<(u64, ReplicasInFlight)>,
}

impl BudgetReservations {
    /// Reserves `change` when this node's replicas in `image` (`hosted`),
    /// plus the reserved changes `image` does not hold yet, plus `change`
    /// fit `budget`; POLICY_VIOLATION naming the budget otherwise.
    pub fn reserve(
        &self,
        budget: &PartitionBudget,
        image: &MetadataImage,
        hosted: u64,
        change: ReplicasInFlight,
    ) -> Result<BudgetReservation<'_>, BrokerError> {
        let mut held = self.held.lock().map_err(|_| BrokerError::StatePoisoned)?;
        let in_flight: u64 = held
            .changes
            .iter()
            .filter(|(_, c)| !c.applied_in(image))
            .map(|(_, c)| c.count)
            .sum();
        budget
            .check(hosted.saturating_add(in_flight), change.count)
            .map_err(BrokerError::PolicyViolation)?;
        let key = held.next_key;
        held.next_key = held.next_key.wrapping_add(1);
        held.changes.push((key, change));
        Ok(BudgetReservation { owner: self, key })
    }
}

/// One change's replicas held in the budget; released when dropped.
pub struct BudgetReservation<'a> {
    owner: &'a BudgetReservations,
    key: u64,
}

impl Drop for BudgetReservation<'_> {
    fn drop(&mut self) {
        if let Ok(mut held) = self.owner.held.lock() {
            held.changes.retain(|(key, _)| *key != self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::fixtures::{created_on, registered};

    fn budget(partitions: u64) -> PartitionBudget {
        PartitionBudget {
            partitions,
            reason: "test".into(),
        }
    }

    fn image_of(records: &[MetadataRecord]) -> MetadataImage {
        let mut image = MetadataImage::default();
        image.apply(&registered(1, None)).unwrap();
        for r in records {
            image.apply(r).unwrap();
        }
        image
    }

    #[test]
    fn a_change_is_counted_once_while_it_applies_and_once_after() {
        let reservations = BudgetReservations::default();
        let big = created_on("big", &[&[1][..]; 8]);
        let change = ReplicasInFlight::of(&big, 1).unwrap();
        assert_eq!(change.count(), 8);
        let before = image_of(&[]);
        let _held = reservations
            .reserve(&budget(10), &before, 0, change)
            .unwrap();
        // Not yet in the image: the reservation counts, 8 + 3 > 10.
        let small = ReplicasInFlight::of(&created_on("small", &[&[1][..]; 3]), 1).unwrap();
        assert!(matches!(
            reservations.reserve(&budget(10), &before, 0, small.clone()),
            Err(BrokerError::PolicyViolation(_))
        ));
        // Committed (the image holds it) while the reservation is still
        // held: the image counts the 8, the reservation no longer does.
        let after = image_of(&[big]);
        assert!(
            reservations
                .reserve(&budget(11), &after, 8, small.clone())
                .is_ok()
        );
        assert!(reservations.reserve(&budget(10), &after, 8, small).is_err());
    }

    #[test]
    fn a_dropped_reservation_frees_its_replicas() {
        let reservations = BudgetReservations::default();
        let image = image_of(&[]);
        let five = || ReplicasInFlight::of(&created_on("five", &[&[1][..]; 5]), 1).unwrap();
        let held = reservations.reserve(&budget(6), &image, 0, five()).unwrap();
        assert!(reservations.reserve(&budget(6), &image, 0, five()).is_err());
        drop(held);
        assert!(reservations.reserve(&budget(6), &image, 0, five()).is_ok());
    }

    #[test]
    fn added_partitions_count_until_the_image_has_the_new_count() {
        let reservations = BudgetReservations::default();
        let topic = created_on("t", &[&[1]]);
        let image = image_of(std::slice::from_ref(&topic));
        let added = MetadataRecord::PartitionsAdded {
            name: "t".into(),
            partitions: 3,
            assignments: vec![
                crate::metadata::PartitionRecord::new(1, vec![1]),
                crate::metadata::PartitionRecord::new(2, vec![1]),
            ],
        };
        let change = ReplicasInFlight::of(&added, 1).unwrap();
        assert_eq!(change.count(), 2);
        let _held = reservations.reserve(&budget(3), &image, 1, change).unwrap();
        let one = || ReplicasInFlight::of(&created_on("one", &[&[1]]), 1).unwrap();
        assert!(reservations.reserve(&budget(3), &image, 1, one()).is_err());
        let grown = image_of(&[topic, added]);
        assert!(reservations.reserve(&budget(4), &grown, 3, one()).is_ok());
    }
}
