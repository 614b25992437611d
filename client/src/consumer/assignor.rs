//! Partition assignors run by the group leader: `range` (Kafka's
//! `RangeAssignor`) and `cooperative-sticky` (KIP-429's
//! `CooperativeStickyAssignor`).
//!
//! Both see every member's subscription (topics and, for cooperative,
//! the partitions it owns now) and return each member's partitions.
//!
//! - **range**: per topic, members subscribed to it sorted by member id;
//!   each gets `n / m` consecutive partitions, the first `n % m` one more.
//! - **cooperative-sticky**: a balanced assignment (counts differ by at
//!   most one) that keeps every member's owned partitions where balance
//!   allows; then any partition that would move from one member to another
//!   is left out of this round. Its old owner sees it revoked and rejoins,
//!   and the next round hands it over, so no partition is ever owned by
//!   two members at once and unaffected members keep consuming.
//!
//! # Invariants
//! - Every partition of a subscribed topic goes to at most one member, and
//!   only to a member subscribed to its topic.
//! - Deterministic: the same input gives the same output (members and
//!   partitions are iterated in sorted order).
//!
//! # Caveats
//! - cooperative-sticky balances over all partitions of all subscribed
//!   topics as one pool; with members subscribed to different topic sets
//!   it stays valid but may be less balanced than Kafka's.

use std::collections::{BTreeMap, BTreeSet};

/// A partition, `(topic, partition)`.
pub type TopicPartition = (String, i32);

/// What one member told the group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSubscription {
    pub member_id: String,
    pub topics: BTreeSet<String>,
    /// Partitions it owns now (cooperative protocol only).
    pub owned: BTreeSet<TopicPartition>,
}

/// The partition assignment strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Range,
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name in JoinGroup, as every Kafka client spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::CooperativeSticky => "cooperative-sticky",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "range" => Some(Self::Range),
            "cooperative-sticky" => Some(Self::CooperativeSticky),
            _ => None,
        }
    }

    /// Whether members keep their partitions across a rebalance
    /// (incremental, KIP-429) instead of revoking everything first.
    pub fn is_cooperative(self) -> bool {
        self == Self::CooperativeSticky
    }

    /// Each member's partitions, given the partition count of every
    /// subscribed topic.
    pub fn assign(
        self,
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, BTreeSet<TopicPartition>> {
        match self {
            Self::Range => range(members, partitions),
            Self::CooperativeSticky => cooperative_sticky(members, partitions),
        }
    }
}

fn range(
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .iter()
        .map(|m| (m.member_id.clone(), BTreeSet::new()))
        .collect();
    for (topic, &count) in partitions {
        let mut subscribed: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.member_id.as_str())
            .collect();
        subscribed.sort_unstable();
        let m = i32::try_from(subscribed.len()).unwrap_or(i32::MAX);
        if m == 0 {
            continue;
        }
        let (per, extra) = (count / m, count % m);
        let mut next = 0;
        for (i, member) in subscribed.iter().enumerate() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            let take = per + i32::from(i < extra);
            if let Some(set) = out.get_mut(*member) {
                set.extend((next..next + take).map(|p| (topic.clone(), p)));
            }
            next += take;
        }
    }
    out
}

fn cooperative_sticky(
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let all: BTreeSet<TopicPartition> = partitions
        .iter()
        .filter(|(t, _)| sorted.iter().any(|m| m.topics.contains(*t)))
        .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
        .collect();
    let m = sorted.len().max(1);
    let (floor, mut extra_slots) = (all.len() / m, all.len() % m);

    // Keep owned partitions up to the quota, first come first kept.
    let mut target: BTreeMap<String, BTreeSet<TopicPartition>> = BTreeMap::new();
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    for member in &sorted {
        let mut keep: Vec<TopicPartition> = member
            .owned
            .iter()
            .filter(|tp| all.contains(*tp) && member.topics.contains(&tp.0) && !taken.contains(*tp))
            .cloned()
            .collect();
        let quota = if keep.len() > floor && extra_slots > 0 {
            extra_slots -= 1;
            floor + 1
        } else {
            floor
        };
        keep.truncate(quota);
        taken.extend(keep.iter().cloned());
        target.insert(member.member_id.clone(), keep.into_iter().collect());
    }
    // Hand out the rest to whoever has least (and may take one more).
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let best = sorted
            .iter()
            .filter(|m| m.topics.contains(&tp.0))
            .filter_map(|m| target.get(&m.member_id).map(|s| (s.len(), &m.member_id)))
            .min();
        if let Some((_, id)) = best
            && let Some(set) = target.get_mut(id)
        {
            set.insert(tp.clone());
        }
    }
    // Cooperative: a partition still owned by someone else is not handed
    // to its new member this round.
    let owner: BTreeMap<&TopicPartition, &str> = sorted
        .iter()
        .flat_map(|m| m.owned.iter().map(move |tp| (tp, m.member_id.as_str())))
        .collect();
    for (member, set) in &mut target {
        set.retain(|tp| owner.get(tp).is_none_or(|o| *o == member.as_str()));
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str], owned: &[(&str, i32)]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
        }
    }

    fn counts(a: &BTreeMap<String, BTreeSet<TopicPartition>>) -> Vec<usize> {
        a.values().map(BTreeSet::len).collect()
    }

    #[test]
    fn range_gives_consecutive_blocks_extra_to_the_first() {
        let members = [
            member("b", &["t"], &[]),
            member("a", &["t"], &[]),
            member("c", &["t"], &[]),
        ];
        let parts = BTreeMap::from([("t".to_string(), 7)]);
        let a = Assignor::Range.assign(&members, &parts);
        let ps = |m: &str| a[m].iter().map(|(_, p)| *p).collect::<Vec<_>>();
        assert_eq!(ps("a"), vec![0, 1, 2]);
        assert_eq!(ps("b"), vec![3, 4]);
        assert_eq!(ps("c"), vec![5, 6]);
    }

    #[test]
    fn range_only_assigns_subscribed_topics() {
        let members = [member("a", &["x"], &[]), member("b", &["y"], &[])];
        let parts = BTreeMap::from([("x".to_string(), 2), ("y".to_string(), 1)]);
        let a = Assignor::Range.assign(&members, &parts);
        assert!(a["a"].iter().all(|(t, _)| t == "x"));
        assert_eq!(a["b"].len(), 1);
    }

    #[test]
    fn sticky_from_scratch_is_balanced_and_complete() {
        let members = [
            member("a", &["t"], &[]),
            member("b", &["t"], &[]),
            member("c", &["t"], &[]),
        ];
        let parts = BTreeMap::from([("t".to_string(), 8)]);
        let a = Assignor::CooperativeSticky.assign(&members, &parts);
        let mut c = counts(&a);
        c.sort_unstable();
        assert_eq!(c, vec![2, 3, 3]);
        let union: BTreeSet<_> = a.values().flatten().cloned().collect();
        assert_eq!(union.len(), 8);
    }

    #[test]
    fn sticky_keeps_owned_partitions_and_withholds_moves_for_one_round() {
        // a owned everything; b joins: a keeps 3 of 6, and the 3 that must
        // move are withheld from b until a has revoked them.
        let parts = BTreeMap::from([("t".to_string(), 6)]);
        let all: Vec<(&str, i32)> = (0..6).map(|p| ("t", p)).collect();
        let round1 = Assignor::CooperativeSticky.assign(
            &[member("a", &["t"], &all), member("b", &["t"], &[])],
            &parts,
        );
        assert_eq!(round1["a"].len(), 3);
        assert!(round1["b"].is_empty(), "{round1:?}");
        // Round 2: a owns its 3; b gets the rest.
        let owned: Vec<(&str, i32)> = round1["a"].iter().map(|(_, p)| ("t", *p)).collect();
        let round2 = Assignor::CooperativeSticky.assign(
            &[member("a", &["t"], &owned), member("b", &["t"], &[])],
            &parts,
        );
        assert_eq!(round2["a"], round1["a"]);
        assert_eq!(round2["b"].len(), 3);
        assert!(round2["a"].is_disjoint(&round2["b"]));
    }

    #[test]
    fn sticky_hands_a_departed_members_partitions_to_the_rest_at_once() {
        let parts = BTreeMap::from([("t".to_string(), 6)]);
        let a = Assignor::CooperativeSticky.assign(
            &[
                member("a", &["t"], &[("t", 0), ("t", 1)]),
                member("b", &["t"], &[("t", 2), ("t", 3)]),
            ],
            &parts,
        );
        assert_eq!(a["a"].len() + a["b"].len(), 6);
        assert!(a["a"].contains(&("t".into(), 0)) && a["b"].contains(&("t".into(), 2)));
    }
}
