//! A hosted partition's role — leader or follower — with the leader epoch
//! and partition epoch the metadata image gives it.
//!
//! The reconciler (`replica::reconciler`) sets a partition's role from each
//! image it applies ([`PartitionRole::from_image`]); the partition keeps it
//! under the lock its appends and reads already take, so checking the
//! role costs the request path nothing extra.
//!
//! ```text
//! client request with current_leader_epoch e (-1: not checked)
//!   e ≥ 0 and e < leader epoch  → FENCED_LEADER_EPOCH
//!   e > leader epoch            → UNKNOWN_LEADER_EPOCH
//!   role is Follower            → NOT_LEADER_OR_FOLLOWER (with the leader)
//!   role is Leader              → served, batches stamped with the epoch
//! ```
//!
//! # Invariants
//! - The epoch is checked before the role, as Kafka's
//!   `Partition.localLogWithEpochOrThrow` does.
//! - Epochs only come from the image: a partition never makes one up.

use sluice_storage::LeaderEpoch;

use super::leadership::check_epoch;
use crate::error::BrokerError;
use crate::metadata::{BrokerId, NO_LEADER, PartitionImage};

/// Whether this node leads the partition or follows another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Follows `leader` ([`NO_LEADER`] when the partition has none).
    Follower {
        leader: BrokerId,
    },
}

/// The role and epochs of one hosted partition, as of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRole {
    pub role: Role,
    /// Stamped into every batch this node appends as leader.
    pub leader_epoch: LeaderEpoch,
    /// Bumped by every change to the partition (AlterPartition checks it).
    pub partition_epoch: i32,
}

impl PartitionRole {
    /// The role `node` has in `partition` as the image describes it.
    pub fn from_image(node: BrokerId, partition: &PartitionImage) -> Self {
        let role = if partition.leader == node {
            Role::Leader
        } else {
            Role::Follower {
                leader: partition.leader,
            }
        };
        Self {
            role,
            leader_epoch: LeaderEpoch(partition.leader_epoch),
            partition_epoch: partition.partition_epoch,
        }
    }

    /// The role of a partition led here at epoch 0 (tests, single nodes).
    pub fn sole_leader() -> Self {
        Self {
            role: Role::Leader,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The leader a client should go to, or -1 when none is known.
    pub fn leader_id(&self, node: BrokerId) -> BrokerId {
        match self.role {
            Role::Leader => node,
            Role::Follower { leader } if leader == NO_LEADER => -1,
            Role::Follower { leader } => leader,
        }
    }

    /// Whether a client request stating `current_leader_epoch` may be
    /// served here as by the leader (see the module table).
    pub fn check_leader(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
    ) -> Result<LeaderEpoch, BrokerError> {
        check_epoch(current_leader_epoch, self.leader_epoch.0)?;
        match self.role {
            Role::Leader => Ok(self.leader_epoch),
            Role::Follower { leader } => Err(BrokerError::NotLeaderOrFollower {
                topic: topic.to_string(),
                partition,
                leader: if leader == NO_LEADER { -1 } else { leader },
                leader_epoch: self.leader_epoch.0,
            }),
        }
    }

    /// Whether the replica fetcher may append here (this node follows).
    pub fn check_follower(&self, topic: &str, partition: i32) -> Result<(), BrokerError> {
        match self.role {
            Role::Follower { .. } => Ok(()),
            // A leader's log is written by clients only; a fetcher still
            // running for it lost a race with the reconciler.
            Role::Leader => Err(BrokerError::NotLeaderOrFollower {
                topic: topic.to_string(),
                partition,
                leader: -1,
                leader_epoch: self.leader_epoch.0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(leader: BrokerId, epoch: i32) -> PartitionImage {
        PartitionImage {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader,
            leader_epoch: epoch,
            partition_epoch: epoch + 3,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    #[test]
    fn the_image_decides_role_and_epochs() {
        let r = PartitionRole::from_image(1, &image(1, 4));
        assert!(r.is_leader());
        assert_eq!((r.leader_epoch, r.partition_epoch), (LeaderEpoch(4), 7));
        let f = PartitionRole::from_image(2, &image(1, 4));
        assert_eq!(f.role, Role::Follower { leader: 1 });
        assert_eq!(f.leader_id(2), 1);
    }

    #[test]
    fn a_follower_refuses_client_requests_naming_the_leader() {
        let f = PartitionRole::from_image(2, &image(3, 5));
        assert!(matches!(
            f.check_leader("t", 0, -1),
            Err(BrokerError::NotLeaderOrFollower {
                leader: 3,
                leader_epoch: 5,
                ..
            })
        ));
        assert!(f.check_follower("t", 0).is_ok());
        let none = PartitionRole::from_image(2, &image(NO_LEADER, 5));
        assert!(matches!(
            none.check_leader("t", 0, -1),
            Err(BrokerError::NotLeaderOrFollower { leader: -1, .. })
        ));
    }

    #[test]
    fn epochs_are_checked_before_the_role() {
        let f = PartitionRole::from_image(2, &image(3, 5));
        assert!(matches!(
            f.check_leader("t", 0, 4),
            Err(BrokerError::FencedLeaderEpoch { .. })
        ));
        let l = PartitionRole::from_image(3, &image(3, 5));
        assert!(matches!(
            l.check_leader("t", 0, 6),
            Err(BrokerError::UnknownLeaderEpoch { .. })
        ));
        assert_eq!(l.check_leader("t", 0, 5).unwrap(), LeaderEpoch(5));
        assert!(l.check_follower("t", 0).is_err());
    }
}
