//! Partition reassignment (KIP-455), as pure functions of a partition's
//! image: starting one, cancelling it, and completing it once the target
//! replicas are in sync. AlterPartitionReassignments proposes the first two;
//! the active controller proposes the completions (`controller::balancer`).
//!
//! ```text
//! replicas [1,2,3] ─ reassign to [2,3,4] ─► replicas [2,3,4,1], adding [4], removing [1]
//!   4 opens as a follower, fetches from the leader, joins the ISR
//!   ─► target ⊆ ISR ─► replicas [2,3,4], ISR ∩ target, a leader from the
//!      target (the current one when it stays), adding = removing = []
//!   1 is no longer a replica: it stops and deletes its copy
//! cancel (null replicas) ─► replicas minus adding, ISR minus adding
//! ```
//!
//! # Invariants
//! - During a reassignment `replicas` is the target first, then the
//!   replicas leaving (Kafka's order), so the preferred leader is the
//!   target's first replica from the start.
//! - The switch to the target happens only when every target replica is
//!   in the ISR, so acks=all records acknowledged before it are on every
//!   replica of the target; the leader changes (if it must) to an ISR
//!   member of the target.
//! - Every change carries the partition epoch it was computed from (see
//!   [`MetadataRecord::PartitionChangesAt`]), so it never overwrites an
//!   ISR it did not see.
//!
//! [`MetadataRecord::PartitionChangesAt`]: super::MetadataRecord::PartitionChangesAt

use super::election::{Election, elect_leader};
use super::image::{MetadataImage, PartitionImage, without};
use super::records::{BrokerId, NO_LEADER, PartitionChangeAt};

/// Why a reassignment request cannot proceed (Kafka's codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignmentError {
    /// NO_REASSIGNMENT_IN_PROGRESS: a cancel for a partition that is not
    /// being reassigned.
    #[error("no reassignment is in progress for {topic}-{partition}")]
    NoneInProgress { topic: String, partition: i32 },
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("invalid replica assignment: {0}")]
    Invalid(String),
}

/// Checks a requested target replica list: non-empty, distinct, every
/// broker registered (Kafka answers INVALID_REPLICA_ASSIGNMENT otherwise).
pub fn check_target(image: &MetadataImage, target: &[BrokerId]) -> Result<(), ReassignmentError> {
    if target.is_empty() {
        return Err(ReassignmentError::Invalid(
            "the replica list is empty".into(),
        ));
    }
    for (i, b) in target.iter().enumerate() {
        if target.iter().take(i).any(|seen| seen == b) {
            return Err(ReassignmentError::Invalid(format!(
                "broker {b} appears twice in {target:?}"
            )));
        }
        if image.broker(*b).is_none() {
            return Err(ReassignmentError::Invalid(format!(
                "broker {b} is not registered"
            )));
        }
    }
    Ok(())
}

/// The change that starts reassigning `topic`-`partition` to `target`
/// (already checked), replacing a reassignment in progress. `None` when
/// nothing is to do (the target is the current set and none is in
/// progress). A target whose replicas are all in sync already completes
/// in the same change.
pub fn start(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    p: &PartitionImage,
    target: &[BrokerId],
) -> Result<Option<PartitionChangeAt>, ReassignmentError> {
    let original = p.original_replicas();
    if target == original.as_slice() {
        return if p.is_reassigning() {
            cancel(image, topic, partition, p).map(Some)
        } else {
            Ok(None)
        };
    }
    let adding = without(target, &original);
    let removing = without(&original, target);
    let mut replicas = target.to_vec();
    replicas.extend(removing.iter().copied());
    // Replicas of a replaced reassignment that are in neither set leave
    // the ISR at once.
    let isr = p
        .isr
        .iter()
        .copied()
        .filter(|b| replicas.contains(b))
        .collect::<Vec<_>>();
    let started = PartitionImage {
        replicas,
        isr,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        adding,
        removing,
    };
    let mut change = to_change(topic, partition, p, &started, image)
        .ok_or_else(|| ReassignmentError::Invalid("no replica of the target may lead".into()))?;
    // The target already in sync (a replica removed, or replicas reordered):
    // the switch comes in the same change.
    if let Some(done) = completed(&started) {
        change = to_change(topic, partition, p, &done, image).unwrap_or(change);
    }
    Ok(Some(change))
}

/// The change that cancels the reassignment of `topic`-`partition`:
/// back to the original replicas, the joining ones out of the ISR.
pub fn cancel(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    p: &PartitionImage,
) -> Result<PartitionChangeAt, ReassignmentError> {
    if !p.is_reassigning() {
        return Err(ReassignmentError::NoneInProgress {
            topic: topic.to_string(),
            partition,
        });
    }
    let replicas = p.original_replicas();
    let isr = without(&p.isr, &p.adding);
    if isr.is_empty() {
        return Err(ReassignmentError::Invalid(
            "no original replica is in sync; cancelling would leave the partition without one"
                .into(),
        ));
    }
    let reverted = PartitionImage {
        replicas,
        isr,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        adding: Vec::new(),
        removing: Vec::new(),
    };
    to_change(topic, partition, p, &reverted, image).ok_or_else(|| {
        ReassignmentError::Invalid("no original replica may lead; not cancelled".into())
    })
}

/// The partition with its reassignment completed, if its target replicas
/// are all in the ISR.
fn completed(p: &PartitionImage) -> Option<PartitionImage> {
    if !p.is_reassigning() {
        return None;
    }
    let target = p.target_replicas();
    if !target.iter().all(|b| p.isr.contains(b)) {
        return None;
    }
    Some(PartitionImage {
        isr: p
            .isr
            .iter()
            .copied()
            .filter(|b| target.contains(b))
            .collect(),
        replicas: target,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        adding: Vec::new(),
        removing: Vec::new(),
    })
}

/// The completions due in `image`: every reassignment whose target
/// replicas are all in sync (and that can keep or get a leader).
pub fn completions(image: &MetadataImage) -> Vec<PartitionChangeAt> {
    let mut out = Vec::new();
    for topic in image.topics() {
        for (index, p) in topic.partitions.iter().enumerate() {
            let Some(done) = completed(p) else {
                continue;
            };
            let partition = i32::try_from(index).unwrap_or(i32::MAX);
            if let Some(change) = to_change(&topic.name, partition, p, &done, image) {
                out.push(change);
            }
        }
    }
    out
}

/// The change from `p` to `next` (whose leader is `p`'s), electing a new
/// leader among `next`'s ISR when `p`'s leader is not in it. `None` when
/// the partition had a leader and no replica of `next` may take over.
fn to_change(
    topic: &str,
    partition: i32,
    p: &PartitionImage,
    next: &PartitionImage,
    image: &MetadataImage,
) -> Option<PartitionChangeAt> {
    let leader = if p.leader != NO_LEADER && !next.isr.contains(&p.leader) {
        match elect_leader(
            &next.replicas,
            &next.isr,
            &next.adding,
            |b| image.is_unfenced(b),
            false,
        ) {
            Election::Clean(b) => b,
            Election::Unclean(_) | Election::None => return None,
        }
    } else {
        p.leader
    };
    let mut change = PartitionChangeAt::new(topic, partition, p.partition_epoch);
    change.leader = (leader != p.leader).then_some(leader);
    change.isr = (next.isr != p.isr).then(|| next.isr.clone());
    change.replicas = (next.replicas != p.replicas).then(|| next.replicas.clone());
    change.adding = (next.adding != p.adding).then(|| next.adding.clone());
    change.removing = (next.removing != p.removing).then(|| next.removing.clone());
    Some(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataRecord;
    use crate::metadata::fixtures::{image_with_partition, registered};

    fn p(image: &MetadataImage) -> PartitionImage {
        image.partition("t", 0).unwrap().clone()
    }

    fn apply(image: &mut MetadataImage, change: PartitionChangeAt) {
        image
            .apply(&MetadataRecord::PartitionChangesAt {
                changes: vec![change],
            })
            .unwrap();
    }

    fn join_isr(image: &mut MetadataImage, broker: BrokerId) {
        let mut isr = p(image).isr;
        isr.push(broker);
        image
            .apply(&MetadataRecord::PartitionChanged {
                topic: "t".into(),
                partition: 0,
                leader: None,
                isr: Some(isr),
                replicas: None,
                partition_epoch: None,
            })
            .unwrap();
    }

    #[test]
    fn a_move_adds_then_switches_once_the_target_is_in_sync() {
        let mut image = image_with_partition(&[1, 2, 3, 4], &[1, 2, 3]);
        let target = [2, 3, 4];
        check_target(&image, &target).unwrap();
        let change = start(&image, "t", 0, &p(&image), &target).unwrap().unwrap();
        apply(&mut image, change);
        let now = p(&image);
        assert_eq!(
            (
                now.replicas.clone(),
                now.adding.clone(),
                now.removing.clone()
            ),
            (vec![2, 3, 4, 1], vec![4], vec![1])
        );
        assert_eq!((now.leader, now.isr.clone()), (1, vec![1, 2, 3]));
        assert!(completions(&image).is_empty(), "4 is not in sync yet");
        join_isr(&mut image, 4);
        let due = completions(&image);
        assert_eq!(due.len(), 1);
        apply(&mut image, due.into_iter().next().unwrap());
        let done = p(&image);
        assert_eq!(
            (done.replicas.clone(), done.isr.clone(), done.leader),
            (vec![2, 3, 4], vec![2, 3, 4], 2),
            "the leader left: the target's first in-sync replica leads"
        );
        assert!(!done.is_reassigning());
        assert!(completions(&image).is_empty());
    }

    #[test]
    fn cancelling_returns_to_the_original_replicas() {
        let mut image = image_with_partition(&[1, 2, 3, 4], &[1, 2]);
        assert_eq!(
            cancel(&image, "t", 0, &p(&image)),
            Err(ReassignmentError::NoneInProgress {
                topic: "t".into(),
                partition: 0
            })
        );
        let change = start(&image, "t", 0, &p(&image), &[3, 4]).unwrap().unwrap();
        apply(&mut image, change);
        join_isr(&mut image, 3);
        let change = cancel(&image, "t", 0, &p(&image)).unwrap();
        apply(&mut image, change);
        let now = p(&image);
        assert_eq!(
            (now.replicas.clone(), now.isr.clone(), now.leader),
            (vec![1, 2], vec![1, 2], 1)
        );
        assert!(!now.is_reassigning());
    }

    #[test]
    fn shrinking_or_reordering_completes_at_once_and_a_no_op_is_none() {
        let mut image = image_with_partition(&[1, 2, 3], &[1, 2, 3]);
        assert_eq!(start(&image, "t", 0, &p(&image), &[1, 2, 3]), Ok(None));
        let change = start(&image, "t", 0, &p(&image), &[3, 1]).unwrap().unwrap();
        apply(&mut image, change);
        let now = p(&image);
        assert_eq!(
            (now.replicas.clone(), now.isr.clone(), now.leader),
            (vec![3, 1], vec![1, 3], 1)
        );
        assert!(!now.is_reassigning());
    }

    #[test]
    fn bad_targets_are_refused() {
        let mut image = image_with_partition(&[1, 2], &[1, 2]);
        assert!(check_target(&image, &[]).is_err());
        assert!(check_target(&image, &[1, 1]).is_err());
        assert!(check_target(&image, &[1, 7]).is_err());
        image.apply(&registered(7, None)).unwrap();
        assert!(check_target(&image, &[1, 7]).is_ok());
    }
}
