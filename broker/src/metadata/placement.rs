//! Replica placement for CreateTopics and CreatePartitions: which brokers
//! hold each new partition, balanced across brokers and racks, and the
//! checks on an assignment a client chose by hand.
//!
//! The scheme is Kafka's rack-aware round robin:
//!
//! ```text
//! brokers in rack-alternating order:  a1 b1 c1 a2 b2 c2   (racks a, b, c)
//! partition p, first replica:         order[(start + p) % n]
//! further replicas:                   walk the order from the first one with
//!                                     a stride that grows every n partitions,
//!                                     taking a broker of an unused rack first
//! ```
//!
//! `start` comes from the topic id (random per topic), so small topics do not
//! all start on the same broker; partitions added later continue the same
//! round robin.
//!
//! # Invariants
//! - Every replica list has `replication_factor` distinct brokers.
//! - Over `n` consecutive partitions (n = brokers) each broker is first
//!   replica (the preferred leader) exactly once; without racks, or with
//!   one broker per rack, each also holds exactly `replication_factor`
//!   replicas of them. Rack skipping may move a replica within a round.
//! - With at least `replication_factor` racks, no two replicas of a
//!   partition share a rack.
//!
//! # Caveats
//! A broker without a rack is treated as one more rack (named by nothing);
//! Kafka instead refuses to mix the two unless rack awareness is disabled.

use std::collections::{BTreeMap, BTreeSet};

use super::image::MetadataImage;
use super::records::BrokerId;

/// Why replicas could not be placed or an assignment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// INVALID_REPLICATION_FACTOR.
    #[error("replication factor {requested} is larger than the {available} available brokers")]
    ReplicationFactorTooLarge { requested: i16, available: usize },
    /// INVALID_REPLICATION_FACTOR.
    #[error("replication factor must be at least 1, or -1 for the default; got {0}")]
    ReplicationFactorInvalid(i16),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("invalid replica assignment: {0}")]
    InvalidAssignment(String),
}

/// A broker that may receive replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: BrokerId,
    pub rack: Option<String>,
}

/// The unfenced brokers of `image`, as placement candidates.
pub fn candidates(image: &MetadataImage) -> Vec<Candidate> {
    image
        .unfenced_brokers()
        .map(|b| Candidate {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect()
}

/// Replica lists for partitions `first_partition..first_partition + count`.
/// `seed` picks the round robin's starting point (the topic id's bits).
pub fn assign_replicas(
    candidates: &[Candidate],
    first_partition: i32,
    count: i32,
    replication_factor: i16,
    seed: u128,
) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
    let order = rack_alternating(candidates);
    let n = order.len();
    let rf = match usize::try_from(replication_factor) {
        Ok(rf) if rf >= 1 => rf,
        _ => return Err(PlacementError::ReplicationFactorInvalid(replication_factor)),
    };
    if rf > n {
        return Err(PlacementError::ReplicationFactorTooLarge {
            requested: replication_factor,
            available: n,
        });
    }
    let rack_count = order.iter().map(|c| &c.rack).collect::<BTreeSet<_>>().len();
    // Bounded by n, itself bounded by the broker count.
    let start = (seed % n as u128) as usize;
    let shift_start = ((seed >> 64) % n as u128) as usize;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for p in first_partition..first_partition.saturating_add(count) {
        let p = usize::try_from(p).unwrap_or(0);
        let first = (start + p) % n;
        // `first` and every `at` below are taken modulo n: always present.
        let Some(leader) = order.get(first) else {
            continue;
        };
        let mut chosen = vec![leader];
        let mut racks: BTreeSet<&Option<String>> = BTreeSet::from([&leader.rack]);
        let mut skipped = Vec::new();
        if n > 1 {
            let shift = (shift_start + p / n) % (n - 1);
            for k in 0..n - 1 {
                if chosen.len() == rf {
                    break;
                }
                let at = (first + 1 + (shift + k) % (n - 1)) % n;
                let Some(c) = order.get(at) else {
                    continue;
                };
                // Once every rack holds a replica, any broker will do.
                if racks.len() < rack_count && racks.contains(&c.rack) {
                    skipped.push(c);
                    continue;
                }
                racks.insert(&c.rack);
                chosen.push(c);
            }
        }
        let missing = rf - chosen.len();
        chosen.extend(skipped.into_iter().take(missing));
        out.push(chosen.into_iter().map(|c| c.id).collect());
    }
    Ok(out)
}

/// Checks replica lists a client gave (CreateTopics `assignments`,
/// CreatePartitions `assignments`): each non-empty, no broker twice, every
/// broker registered, and all of one length.
pub fn check_manual(
    image: &MetadataImage,
    assignments: &[Vec<BrokerId>],
) -> Result<(), PlacementError> {
    let bad = |why: String| Err(PlacementError::InvalidAssignment(why));
    let Some(first) = assignments.first() else {
        return bad("no partitions assigned".into());
    };
    for (p, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return bad(format!("partition {p} has no replicas"));
        }
        if replicas.len() != first.len() {
            return bad(format!(
                "partition {p} has {} replicas where partition 0 has {}",
                replicas.len(),
                first.len()
            ));
        }
        if replicas.iter().collect::<BTreeSet<_>>().len() != replicas.len() {
            return bad(format!("partition {p} names a broker twice: {replicas:?}"));
        }
        if let Some(b) = replicas.iter().find(|b| image.broker(**b).is_none()) {
            return bad(format!(
                "partition {p} names broker {b}, which is not registered"
            ));
        }
    }
    Ok(())
}

/// Brokers ordered rack by rack in turn (racks and brokers in id order):
/// a1 b1 c1 a2 b2 c2 …, so consecutive brokers sit in different racks.
fn rack_alternating(candidates: &[Candidate]) -> Vec<Candidate> {
    let mut by_rack: BTreeMap<&Option<String>, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        by_rack.entry(&c.rack).or_default().push(c);
    }
    for list in by_rack.values_mut() {
        list.sort_by_key(|c| c.id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| by_rack.values().filter_map(move |l| l.get(i)))
        .map(|c| (*c).clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<Candidate> {
        racks
            .iter()
            .enumerate()
            .map(|(i, r)| Candidate {
                id: i as i32 + 1,
                rack: r.map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn factor_above_broker_count_is_refused() {
        let b = brokers(&[None, None]);
        assert_eq!(
            assign_replicas(&b, 0, 1, 3, 0),
            Err(PlacementError::ReplicationFactorTooLarge {
                requested: 3,
                available: 2
            })
        );
        assert!(matches!(
            assign_replicas(&b, 0, 1, 0, 0),
            Err(PlacementError::ReplicationFactorInvalid(0))
        ));
    }

    #[test]
    fn one_broker_holds_everything() {
        let b = brokers(&[None]);
        assert_eq!(
            assign_replicas(&b, 0, 3, 1, 12345).unwrap(),
            vec![vec![1], vec![1], vec![1]]
        );
    }

    #[test]
    fn replicas_spread_over_racks() {
        let b = brokers(&[
            Some("a"),
            Some("a"),
            Some("b"),
            Some("b"),
            Some("c"),
            Some("c"),
        ]);
        for lists in [assign_replicas(&b, 0, 12, 3, 99).unwrap()] {
            for replicas in lists {
                let racks: BTreeSet<_> = replicas
                    .iter()
                    .map(|id| b[(*id - 1) as usize].rack.clone())
                    .collect();
                assert_eq!(racks.len(), 3, "{replicas:?}");
            }
        }
    }

    #[test]
    fn added_partitions_continue_the_round_robin() {
        let b = brokers(&[None, None, None]);
        let all = assign_replicas(&b, 0, 6, 2, 7).unwrap();
        let later = assign_replicas(&b, 4, 2, 2, 7).unwrap();
        assert_eq!(&all[4..], &later[..]);
    }

    proptest! {
        #[test]
        fn placement_is_balanced_and_distinct(
            n in 1usize..8,
            rf in 1i16..4,
            rounds in 1i32..5,
            seed in any::<u128>(),
            rack_count in 1usize..4,
        ) {
            prop_assume!(rf as usize <= n);
            let racks: Vec<String> = (0..n).map(|i| format!("r{}", i % rack_count)).collect();
            let b: Vec<_> = (0..n).map(|i| Candidate { id: i as i32, rack: Some(racks[i].clone()) }).collect();
            let count = rounds * n as i32;
            let lists = assign_replicas(&b, 0, count, rf, seed).unwrap();
            let mut leaders = vec![0; n];
            let mut replicas = vec![0; n];
            for l in &lists {
                prop_assert_eq!(l.len(), rf as usize);
                prop_assert_eq!(l.iter().collect::<BTreeSet<_>>().len(), l.len());
                leaders[l[0] as usize] += 1;
                for r in l { replicas[*r as usize] += 1; }
                let distinct_racks = l.iter().map(|r| &racks[*r as usize]).collect::<BTreeSet<_>>().len();
                let distinct_available = rack_count.min(n);
                prop_assert_eq!(distinct_racks, (rf as usize).min(distinct_available));
            }
            // Preferred leaders: exactly `rounds` each.
            prop_assert!(leaders.iter().all(|c| *c == rounds), "{:?}", leaders);
            // Replicas: balanced when racks are even.
            if n % rack_count == 0 {
                let (lo, hi) = (replicas.iter().min().unwrap(), replicas.iter().max().unwrap());
                prop_assert!(hi - lo <= rounds, "{:?}", replicas);
            }
        }
    }
}
