//! Where a leader-only request for a partition (Produce, a consumer's
//! Fetch, ListOffsets, OffsetForLeaderEpoch, DeleteRecords) goes — Kafka's
//! `ReplicaManager.getPartitionOrError` and `Partition.localLogWithEpochOrThrow`.
//!
//! A partition this node hosts answers for itself: its role and epochs
//! (`replica::role`), applied by the reconciler, are checked by each
//! partition operation under the lock the operation takes anyway. A
//! partition this node does not host is answered from the image, with
//! the same rules:
//!
//! ```text
//! partition in the image?            no  → UNKNOWN_TOPIC_OR_PARTITION
//! current_leader_epoch ≥ 0 and
//!   < the image's leader epoch           → FENCED_LEADER_EPOCH
//!   > the image's leader epoch           → UNKNOWN_LEADER_EPOCH
//! image leader is this node?         no  → NOT_LEADER_OR_FOLLOWER
//!                                          (with the leader and its epoch,
//!                                           for KIP-951 responses)
//! ```
//!
//! # Invariants
//! - The epoch is checked before leadership, as Kafka does, so a client
//!   with a stale epoch learns to refresh metadata whatever the leader.
//! - Only the image decides (directly, or through the role the reconciler
//!   applied from it); the request path takes no extra lock here.

use std::sync::Arc;

use super::{Partition, ReplicaManager};
use crate::error::BrokerError;
use crate::metadata::{BrokerId, MetadataImage};

/// The leader epoch of `topic`-`partition` when this node (`node`) leads
/// it and `current_leader_epoch` (-1: not checked) agrees.
pub fn check_leader(
    image: &MetadataImage,
    node: BrokerId,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
) -> Result<i32, BrokerError> {
    let p =
        image
            .partition(topic, partition)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
                topic: topic.to_string(),
                partition,
            })?;
    check_epoch(current_leader_epoch, p.leader_epoch)?;
    if p.leader != node {
        return Err(BrokerError::NotLeaderOrFollower {
            topic: topic.to_string(),
            partition,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
        });
    }
    Ok(p.leader_epoch)
}

/// The hosted replica a leader-only request works on (its operations
/// check role and epoch), or, for a partition not hosted here, the error
/// the image gives: what every leader-only handler starts with.
pub fn leader_partition(
    image: &MetadataImage,
    node: BrokerId,
    replicas: &ReplicaManager,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
) -> Result<Arc<Partition>, BrokerError> {
    if let Some(hosted) = replicas.partition(topic, partition) {
        return Ok(hosted);
    }
    let epoch = check_leader(image, node, topic, partition, current_leader_epoch)?;
    // The image names this node leader but the reconciler has not opened
    // the replica (yet, or a resource limit): retriable, as Kafka answers
    // for a partition it knows but does not host.
    Err(BrokerError::NotLeaderOrFollower {
        topic: topic.to_string(),
        partition,
        leader: node,
        leader_epoch: epoch,
    })
}

/// KIP-320 fencing: a client that states the epoch it believes current
/// (≥ 0; negative means "not checked") must agree with the partition.
pub fn check_epoch(requested: i32, current: i32) -> Result<(), BrokerError> {
    if requested < 0 || requested == current {
        Ok(())
    } else if requested < current {
        Err(BrokerError::FencedLeaderEpoch { requested, current })
    } else {
        Err(BrokerError::UnknownLeaderEpoch { requested, current })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataRecord;
    use crate::metadata::fixtures::image_with_partition;

    fn image() -> MetadataImage {
        let mut image = image_with_partition(&[1, 2], &[1, 2]);
        // Leader 2 at epoch 1.
        image
            .apply(&MetadataRecord::PartitionChanged {
                topic: "t".into(),
                partition: 0,
                leader: Some(2),
                isr: None,
                replicas: None,
                partition_epoch: None,
            })
            .unwrap();
        image
    }

    #[test]
    fn produce_to_follower_returns_not_leader_with_the_leader() {
        let image = image();
        assert_eq!(check_leader(&image, 2, "t", 0, -1).unwrap(), 1);
        assert!(matches!(
            check_leader(&image, 1, "t", 0, -1),
            Err(BrokerError::NotLeaderOrFollower {
                leader: 2,
                leader_epoch: 1,
                ..
            })
        ));
        assert!(matches!(
            check_leader(&image, 1, "t", 1, -1),
            Err(BrokerError::UnknownTopicOrPartition { .. })
        ));
    }

    #[test]
    fn stale_or_future_epochs_are_fenced_before_leadership() {
        let image = image();
        assert!(matches!(
            check_leader(&image, 1, "t", 0, 0),
            Err(BrokerError::FencedLeaderEpoch { .. })
        ));
        assert!(matches!(
            check_leader(&image, 2, "t", 0, 2),
            Err(BrokerError::UnknownLeaderEpoch { .. })
        ));
        assert!(check_leader(&image, 2, "t", 0, 1).is_ok());
    }
}
