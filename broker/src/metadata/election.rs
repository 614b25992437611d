//! Partition leader election: who leads a partition after a broker is
//! fenced, shuts down, or comes back — as pure functions of the image, so
//! fencing, controlled shutdown and the simulation all decide alike.
//!
//! # Invariants
//! - A clean election picks only a broker that is both in the ISR and
//!   unfenced, the first such in replica (preferred) order; so a leader
//!   always holds every record acknowledged with acks=all.
//! - An unclean election (only when `unclean.leader.election.enable` is
//!   true for the topic, default false as in Kafka) may pick an unfenced
//!   replica outside the ISR, and then the ISR becomes just that leader.
//!   A replica still joining a reassignment (`adding`, never in sync) is
//!   never picked that way: it may hold nothing of the partition, and
//!   leading would make the other replicas truncate to it.
//! - The ISR never becomes empty: when its last member goes, the member
//!   stays listed and the partition has no leader (Kafka KRaft keeps it so
//!   that the last in-sync replica can lead again when it returns).
//! - Asked-for elections (ElectLeaders, the controller's preferred-leader
//!   balancing) follow Kafka: PREFERRED moves leadership to the first
//!   replica only when it is in the ISR and unfenced; UNCLEAN acts only on
//!   a partition with no leader and prefers an ISR member.

use std::collections::BTreeMap;

use super::image::{MetadataImage, PartitionImage, TopicImage};
use super::records::{BrokerId, MetadataRecord, NO_LEADER, PartitionChangeAt};

/// Kafka's topic key allowing an out-of-sync replica to lead.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// The outcome of an election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// An ISR member leads.
    Clean(BrokerId),
    /// A replica outside the ISR leads; acknowledged records may be lost.
    Unclean(BrokerId),
    /// No eligible replica: the partition is offline.
    None,
}

/// Elects a leader for a partition whose replicas are `replicas` and ISR
/// `isr`, among brokers for which `eligible` holds (unfenced and not
/// shutting down). `joining` are replicas a reassignment is still adding:
/// never elected uncleanly.
pub fn elect_leader(
    replicas: &[BrokerId],
    isr: &[BrokerId],
    joining: &[BrokerId],
    eligible: impl Fn(BrokerId) -> bool,
    unclean_allowed: bool,
) -> Election {
    if let Some(&b) = replicas.iter().find(|b| isr.contains(b) && eligible(**b)) {
        return Election::Clean(b);
    }
    if unclean_allowed
        && let Some(&b) = replicas
            .iter()
            .find(|b| !joining.contains(b) && eligible(**b))
    {
        return Election::Unclean(b);
    }
    Election::None
}

/// Whether `topic` allows unclean leader election.
pub fn unclean_allowed(topic: &TopicImage) -> bool {
    topic
        .configs
        .get(UNCLEAN_LEADER_ELECTION_ENABLE)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The partition changes that take `broker` out of every ISR and every
/// leadership, as fencing and controlled shutdown need. Partitions whose
/// leader is lost get a new one by [`elect_leader`] among brokers that are
/// unfenced in `image` and are not `broker`.
pub fn changes_removing_broker(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    let eligible = |b: BrokerId| b != broker && image.is_unfenced(b);
    let mut out = Vec::new();
    for topic in image.topics() {
        for (index, p) in topic.partitions.iter().enumerate() {
            if !p.isr.contains(&broker) && p.leader != broker {
                continue;
            }
            let mut isr: Vec<_> = p.isr.iter().copied().filter(|b| *b != broker).collect();
            if isr.is_empty() {
                isr = p.isr.clone();
            }
            let (leader, isr) = if p.leader == broker || p.leader == NO_LEADER {
                choose(p, isr, &eligible, unclean_allowed(topic))
            } else {
                (p.leader, isr)
            };
            out.extend(change(topic, index, p, leader, isr));
        }
    }
    out
}

/// Leaders for every partition that has none, among the unfenced brokers
/// of `image` — what follows a broker's unfencing.
pub fn changes_electing_offline(image: &MetadataImage) -> Vec<MetadataRecord> {
    let eligible = |b: BrokerId| image.is_unfenced(b);
    let mut out = Vec::new();
    for topic in image.topics() {
        for (index, p) in topic.partitions.iter().enumerate() {
            if p.leader != NO_LEADER {
                continue;
            }
            let (leader, isr) = choose(p, p.isr.clone(), &eligible, unclean_allowed(topic));
            out.extend(change(topic, index, p, leader, isr));
        }
    }
    out
}

fn choose(
    p: &PartitionImage,
    isr: Vec<BrokerId>,
    eligible: &impl Fn(BrokerId) -> bool,
    unclean: bool,
) -> (BrokerId, Vec<BrokerId>) {
    match elect_leader(&p.replicas, &isr, &p.adding, eligible, unclean) {
        Election::Clean(b) => (b, isr),
        Election::Unclean(b) => (b, vec![b]),
        Election::None => (NO_LEADER, isr),
    }
}

/// A PartitionChanged naming only the fields that differ, if any do.
fn change(
    topic: &TopicImage,
    index: usize,
    p: &PartitionImage,
    leader: BrokerId,
    isr: Vec<BrokerId>,
) -> Option<MetadataRecord> {
    let leader = (leader != p.leader).then_some(leader);
    let isr = (isr != p.isr).then_some(isr);
    if leader.is_none() && isr.is_none() {
        return None;
    }
    Some(MetadataRecord::PartitionChanged {
        topic: topic.name.clone(),
        partition: i32::try_from(index).unwrap_or(i32::MAX),
        leader,
        isr,
        replicas: None,
        // Whole values from `p`: they apply only to the state they were
        // computed from.
        partition_epoch: Some(p.partition_epoch),
    })
}

/// ElectLeaders' election types (KIP-460), as numbered on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred = 0,
    Unclean = 1,
}

impl ElectionType {
    pub fn from_wire(value: i8) -> Option<Self> {
        match value {
            0 => Some(Self::Preferred),
            1 => Some(Self::Unclean),
            _ => None,
        }
    }
}

/// Why an asked-for election leaves a partition as it is (Kafka's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoElection {
    /// ELECTION_NOT_NEEDED: the preferred replica already leads
    /// (preferred), or the partition has a leader (unclean).
    NotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE: the preferred replica is out of
    /// the ISR, fenced or unregistered.
    PreferredNotAvailable,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE: no replica may lead.
    NoEligibleLeader,
}

/// The change an ElectLeaders of `kind` asks for on `topic`-`partition`
/// as it stands in `image`.
pub fn asked_election(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    p: &PartitionImage,
    kind: ElectionType,
) -> Result<PartitionChangeAt, NoElection> {
    let eligible = |b: BrokerId| image.is_unfenced(b);
    let mut change = PartitionChangeAt::new(topic, partition, p.partition_epoch);
    match kind {
        ElectionType::Preferred => {
            let preferred = p.replicas.first().copied().unwrap_or(NO_LEADER);
            if p.leader == preferred {
                return Err(NoElection::NotNeeded);
            }
            if !p.isr.contains(&preferred) || !eligible(preferred) {
                return Err(NoElection::PreferredNotAvailable);
            }
            change.leader = Some(preferred);
        }
        ElectionType::Unclean => {
            if p.leader != NO_LEADER {
                return Err(NoElection::NotNeeded);
            }
            match elect_leader(&p.replicas, &p.isr, &p.adding, eligible, true) {
                Election::Clean(b) => change.leader = Some(b),
                Election::Unclean(b) => {
                    change.leader = Some(b);
                    change.isr = Some(vec![b]);
                }
                Election::None => return Err(NoElection::NoEligibleLeader),
            }
        }
    }
    Ok(change)
}

/// Kafka's automatic leader balancing (`auto.leader.rebalance.enable`):
/// for every broker whose share of partitions it prefers but does not
/// lead is above `max_imbalance_percent`, preferred elections for those
/// of its partitions it may lead now. Partitions being reassigned are
/// left alone.
pub fn preferred_rebalance(
    image: &MetadataImage,
    max_imbalance_percent: u32,
) -> Vec<PartitionChangeAt> {
    // Per preferred broker: partitions it prefers, and the ones it could
    // take back now.
    let mut preferred: BTreeMap<BrokerId, (u64, Vec<PartitionChangeAt>, u64)> = BTreeMap::new();
    for topic in image.topics() {
        for (index, p) in topic.partitions.iter().enumerate() {
            let Some(&first) = p.replicas.first() else {
                continue;
            };
            let entry = preferred.entry(first).or_default();
            entry.0 += 1;
            if p.leader == first || p.is_reassigning() {
                continue;
            }
            entry.2 += 1;
            let partition = i32::try_from(index).unwrap_or(i32::MAX);
            if let Ok(change) =
                asked_election(image, &topic.name, partition, p, ElectionType::Preferred)
            {
                entry.1.push(change);
            }
        }
    }
    let mut out = Vec::new();
    for (_, (total, movable, not_leading)) in preferred {
        if total > 0 && not_leading * 100 > u64::from(max_imbalance_percent) * total {
            out.extend(movable);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::ApplyError;
    use crate::metadata::fixtures::image_with_partition as image;
    use proptest::prelude::*;

    fn fence(image: &mut MetadataImage, broker: BrokerId) {
        for r in changes_removing_broker(image, broker) {
            image.apply(&r).unwrap();
        }
        image
            .apply(&MetadataRecord::BrokerFenced { id: broker })
            .unwrap();
    }

    #[test]
    fn fencing_the_leader_moves_leadership_in_preferred_order() {
        let mut img = image(&[1, 2, 3], &[1, 2, 3]);
        fence(&mut img, 1);
        let p = img.partition("t", 0).unwrap();
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (2, vec![2, 3], 1)
        );
        fence(&mut img, 2);
        fence(&mut img, 3);
        // The last ISR member stays listed; nobody leads.
        let p = img.partition("t", 0).unwrap();
        assert_eq!((p.leader(), p.isr.clone()), (None, vec![3]));
        // Broker 1 returns, but it is not in the ISR: no clean leader.
        img.apply(&MetadataRecord::BrokerUnfenced { id: 1 })
            .unwrap();
        assert!(changes_electing_offline(&img).is_empty());
        // Broker 3 returns and leads again.
        img.apply(&MetadataRecord::BrokerUnfenced { id: 3 })
            .unwrap();
        for r in changes_electing_offline(&img) {
            img.apply(&r).unwrap();
        }
        assert_eq!(img.partition("t", 0).unwrap().leader(), Some(3));
    }

    /// Found by the replication simulation: two removals computed on one
    /// image (a restarting broker's registration on its stale image, or
    /// two fencings before either applied) each carry a whole ISR; the
    /// second must not put back the member the first removed.
    #[test]
    fn a_change_computed_on_an_older_image_is_refused() {
        let mut img = image(&[1, 2, 3], &[1, 2, 3]);
        let stale = img.clone();
        for r in changes_removing_broker(&stale, 2) {
            img.apply(&r).unwrap();
        }
        assert_eq!(img.partition("t", 0).unwrap().isr, vec![1, 3]);
        let late = changes_removing_broker(&stale, 3);
        assert_eq!(late.len(), 1);
        assert!(matches!(
            img.apply(&late[0]),
            Err(ApplyError::IsrChangeRefused { .. })
        ));
        assert_eq!(img.partition("t", 0).unwrap().isr, vec![1, 3]);
        // Computed again from the current image, it applies.
        for r in changes_removing_broker(&img, 3) {
            img.apply(&r).unwrap();
        }
        assert_eq!(img.partition("t", 0).unwrap().isr, vec![1]);
    }

    #[test]
    fn unclean_election_only_when_the_topic_allows_it() {
        assert_eq!(
            elect_leader(&[1, 2], &[1], &[], |b| b == 2, false),
            Election::None
        );
        assert_eq!(
            elect_leader(&[1, 2], &[1], &[], |b| b == 2, true),
            Election::Unclean(2)
        );
        assert_eq!(
            elect_leader(&[1, 2], &[1, 2], &[], |_| true, true),
            Election::Clean(1)
        );
    }

    #[test]
    fn a_replica_joining_a_reassignment_is_never_elected_uncleanly() {
        // 3 is being added (never in sync); 1, the only ISR member, is down.
        assert_eq!(
            elect_leader(&[1, 2, 3], &[1], &[3], |b| b == 3, true),
            Election::None
        );
        assert_eq!(
            elect_leader(&[1, 2, 3], &[1], &[3], |b| b != 1, true),
            Election::Unclean(2)
        );
        // Once it joined the ISR it leads like any member.
        assert_eq!(
            elect_leader(&[1, 2, 3], &[1, 3], &[3], |b| b == 3, false),
            Election::Clean(3)
        );
    }

    #[test]
    fn preferred_election_follows_kafka() {
        let mut img = image(&[1, 2, 3], &[1, 2, 3]);
        let p = |img: &MetadataImage| img.partition("t", 0).unwrap().clone();
        let ask = |img: &MetadataImage, kind| asked_election(img, "t", 0, &p(img), kind);
        assert_eq!(
            ask(&img, ElectionType::Preferred),
            Err(NoElection::NotNeeded)
        );
        assert_eq!(ask(&img, ElectionType::Unclean), Err(NoElection::NotNeeded));
        fence(&mut img, 1);
        assert_eq!(p(&img).leader, 2);
        // Fenced and out of the ISR: not available.
        assert_eq!(
            ask(&img, ElectionType::Preferred),
            Err(NoElection::PreferredNotAvailable)
        );
        img.apply(&MetadataRecord::BrokerUnfenced { id: 1 })
            .unwrap();
        assert_eq!(
            ask(&img, ElectionType::Preferred),
            Err(NoElection::PreferredNotAvailable),
            "unfenced but not yet back in the ISR"
        );
        // Back in the ISR: the balancing and ElectLeaders both move it.
        img.apply(&MetadataRecord::PartitionChanged {
            topic: "t".into(),
            partition: 0,
            leader: None,
            isr: Some(vec![2, 3, 1]),
            replicas: None,
            partition_epoch: None,
        })
        .unwrap();
        let moves = preferred_rebalance(&img, 10);
        assert_eq!(moves, vec![ask(&img, ElectionType::Preferred).unwrap()]);
        img.apply(&MetadataRecord::PartitionChangesAt { changes: moves })
            .unwrap();
        assert_eq!((p(&img).leader, p(&img).leader_epoch), (1, 2));
        assert!(preferred_rebalance(&img, 10).is_empty());
    }

    #[test]
    fn unclean_election_only_without_a_live_isr_member() {
        let mut img = image(&[1, 2, 3], &[1, 2, 3]);
        fence(&mut img, 2);
        fence(&mut img, 3);
        fence(&mut img, 1);
        let p = |img: &MetadataImage| img.partition("t", 0).unwrap().clone();
        assert_eq!((p(&img).leader(), p(&img).isr.clone()), (None, vec![1]));
        let ask = |img: &MetadataImage| asked_election(img, "t", 0, &p(img), ElectionType::Unclean);
        assert_eq!(ask(&img), Err(NoElection::NoEligibleLeader));
        img.apply(&MetadataRecord::BrokerUnfenced { id: 3 })
            .unwrap();
        let change = ask(&img).unwrap();
        assert_eq!(
            (change.leader, change.isr.clone()),
            (Some(3), Some(vec![3]))
        );
        // Decided on an older state: skipped, the image is unchanged.
        let mut stale = change.clone();
        stale.partition_epoch -= 1;
        let before = img.clone();
        img.apply(&MetadataRecord::PartitionChangesAt {
            changes: vec![stale],
        })
        .unwrap();
        assert_eq!(img, before);
        img.apply(&MetadataRecord::PartitionChangesAt {
            changes: vec![change],
        })
        .unwrap();
        assert_eq!((p(&img).leader(), p(&img).isr.clone()), (Some(3), vec![3]));
    }

    proptest! {
        #[test]
        fn a_clean_leader_is_in_the_isr_and_unfenced(
            replicas in proptest::sample::subsequence((0..8).collect::<Vec<i32>>(), 1..8).prop_shuffle(),
            isr_mask in proptest::collection::vec(any::<bool>(), 8),
            fenced_mask in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let isr: Vec<_> = replicas.iter().copied().filter(|b| isr_mask[*b as usize]).collect();
            let eligible = |b: BrokerId| !fenced_mask[b as usize];
            match elect_leader(&replicas, &isr, &[], eligible, false) {
                Election::Clean(b) => {
                    prop_assert!(isr.contains(&b) && eligible(b));
                    // The first such in preferred order.
                    let first = replicas.iter().find(|r| isr.contains(r) && eligible(**r));
                    prop_assert_eq!(first, Some(&b));
                }
                Election::Unclean(_) => prop_assert!(false, "unclean without permission"),
                Election::None => prop_assert!(!isr.iter().any(|b| eligible(*b))),
            }
        }
    }
}
