//! Model-based test of the group coordinator: random joins, syncs,
//! heartbeats, leaves, expiries (time jumps), commits, group and offset
//! deletions, and coordinator restarts. After every restart the state
//! rebuilt by replaying `__consumer_offsets` must equal what the live
//! coordinator held before it: committed offsets, and the generation and
//! protocol type of every group with stored metadata (the field bug class
//! of offsets lost or reset around restarts and rebalances).
//!
//! A second check rides along: a group's generation never goes backwards,
//! across restarts included.

// Test harness: helpers outside #[test] fns panic on setup failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use sluice_broker::config::{BrokerConfig, DurabilityMode};
use sluice_broker::group::OFFSETS_TOPIC;
use sluice_broker::group::coordinator::{Coordinator, GroupConfig};
use sluice_broker::group::group::{GroupLimits, JoinRequest, Protocol, SyncRequest};
use sluice_broker::group::offsets::CommittedOffset;
use sluice_broker::metadata::{MetadataImage, MetadataRecord};
use sluice_broker::replica::ReplicaManager;
use sluice_broker::settings::TopicDefaults;
use sluice_storage::LogDir;

const GROUPS: [&str; 3] = ["alpha", "beta", "gamma"];
const OFFSETS_PARTITIONS: i32 = 3;
const TOPIC_PARTITIONS: i32 = 2;

#[derive(Debug, Clone)]
enum Op {
    Join {
        group: usize,
        member: usize,
    },
    SyncLeader {
        group: usize,
    },
    Heartbeat {
        group: usize,
        member: usize,
    },
    Leave {
        group: usize,
        member: usize,
    },
    Advance {
        ms: i64,
    },
    Commit {
        group: usize,
        member: Option<usize>,
        partition: i32,
        offset: i64,
    },
    DeleteOffset {
        group: usize,
        partition: i32,
    },
    DeleteGroup {
        group: usize,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let g = 0..GROUPS.len();
    prop_oneof![
        4 => (g.clone(), 0..4usize).prop_map(|(group, member)| Op::Join { group, member }),
        3 => g.clone().prop_map(|group| Op::SyncLeader { group }),
        2 => (g.clone(), 0..4usize).prop_map(|(group, member)| Op::Heartbeat { group, member }),
        1 => (g.clone(), 0..4usize).prop_map(|(group, member)| Op::Leave { group, member }),
        2 => (0..15_000i64).prop_map(|ms| Op::Advance { ms }),
        4 => (g.clone(), proptest::option::of(0..4usize), 0..TOPIC_PARTITIONS, 0..1_000i64)
            .prop_map(|(group, member, partition, offset)| Op::Commit { group, member, partition, offset }),
        1 => (g.clone(), 0..TOPIC_PARTITIONS).prop_map(|(group, partition)| Op::DeleteOffset { group, partition }),
        1 => g.prop_map(|group| Op::DeleteGroup { group }),
        1 => Just(Op::Restart),
    ]
}

fn config() -> GroupConfig {
    GroupConfig {
        limits: GroupLimits {
            max_size: 3,
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 60_000,
            initial_rebalance_delay_ms: 500,
        },
        offsets_retention_ms: 40_000,
        offsets_retention_check_interval_ms: 1_000,
    }
}

fn image() -> MetadataImage {
    let mut image = MetadataImage::default();
    for (name, partitions) in [(OFFSETS_TOPIC, OFFSETS_PARTITIONS), ("t", TOPIC_PARTITIONS)] {
        image
            .apply(&MetadataRecord::TopicCreated {
                name: name.to_string(),
                topic_id: uuid::Uuid::new_v4(),
                partitions,
                configs: BTreeMap::from([("retention.ms".to_string(), "-1".to_string())]),
                assignments: (0..partitions)
                    .map(|p| sluice_broker::metadata::PartitionRecord::new(p, vec![1]))
                    .collect(),
            })
            .unwrap();
    }
    image
}

struct Node {
    replicas: ReplicaManager,
    coordinator: Coordinator,
}

fn open(dir: &Path, image: &Arc<MetadataImage>) -> Node {
    let replicas = ReplicaManager::new(
        1,
        LogDir::open(dir).unwrap(),
        DurabilityMode::PageCache,
        TopicDefaults::from_broker(&BrokerConfig {
            log_segment_bytes: 1 << 20,
            log_retention_ms: -1,
            message_max_bytes: 1 << 20,
            ..BrokerConfig::default()
        })
        .unwrap(),
    );
    replicas.reconcile(|| Arc::clone(image)).unwrap();
    let coordinator = Coordinator::new(config());
    coordinator.load(&replicas, OFFSETS_PARTITIONS).unwrap();
    Node {
        replicas,
        coordinator,
    }
}

fn member_id(member: usize) -> String {
    format!("m{member}")
}

fn join_request(member: usize, known: bool) -> JoinRequest {
    JoinRequest {
        member_id: if known {
            member_id(member)
        } else {
            String::new()
        },
        group_instance_id: None,
        client_id: "model".into(),
        client_host: String::new(),
        session_timeout_ms: 5_000,
        rebalance_timeout_ms: 8_000,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: Bytes::from_static(b"sub"),
        }],
        require_known_member_id: false,
        supports_skip_assignment: false,
        fresh_member_id: member_id(member),
    }
}

async fn apply(node: &Node, image: &MetadataImage, op: &Op, now: i64) {
    let c = &node.coordinator;
    let r = &node.replicas;
    match *op {
        Op::Join { group, member } => {
            let id = member_id(member);
            let known = c
                .inspect(GROUPS[group], |g| {
                    g.is_some_and(|g| g.members().any(|m| m.member_id == id))
                })
                .unwrap();
            // The parked answer is dropped: members are driven by the model.
            drop(
                c.join(r, GROUPS[group], join_request(member, known), now)
                    .await,
            );
        }
        Op::SyncLeader { group } => {
            let leader = c
                .inspect(GROUPS[group], |g| {
                    g.and_then(|g| g.leader_id().map(|l| (l.to_string(), g.generation_id())))
                })
                .unwrap();
            if let Some((leader, generation_id)) = leader {
                let sync = SyncRequest {
                    member_id: leader.clone(),
                    group_instance_id: None,
                    generation_id,
                    protocol_type: None,
                    protocol_name: None,
                    assignments: vec![(leader, Bytes::from_static(b"all"))],
                };
                drop(c.sync(r, GROUPS[group], sync, now).await);
            }
        }
        Op::Heartbeat { group, member } => {
            let generation = c
                .inspect(GROUPS[group], |g| g.map_or(0, |g| g.generation_id()))
                .unwrap();
            let _ = c.heartbeat(GROUPS[group], &member_id(member), None, generation, now);
        }
        Op::Leave { group, member } => {
            let _ = c
                .leave(r, GROUPS[group], &[(member_id(member), None)], now)
                .await;
        }
        Op::Advance { .. } | Op::Restart => c.tick(r, image, now).await,
        Op::Commit {
            group,
            member,
            partition,
            offset,
        } => {
            let generation = c
                .inspect(GROUPS[group], |g| g.map_or(-1, |g| g.generation_id()))
                .unwrap();
            let id = member.map(member_id).unwrap_or_default();
            let generation = if member.is_some() { generation } else { -1 };
            let committed = CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: format!("at {now}"),
                commit_timestamp_ms: now,
            };
            let result = c
                .commit_offsets(
                    r,
                    GROUPS[group],
                    (&id, None, generation),
                    vec![("t".into(), partition, committed)],
                    now,
                )
                .await;
            if let Ok(durable) = result {
                durable.wait().await.unwrap();
            }
        }
        Op::DeleteOffset { group, partition } => {
            let _ = c
                .delete_offsets(r, GROUPS[group], vec![("t".into(), partition)], now)
                .await;
        }
        Op::DeleteGroup { group } => {
            let _ = c.delete_group(r, GROUPS[group], now).await;
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let image = Arc::new(image());
        let mut node = open(dir.path(), &image);
        let mut now = 1_000_000i64;
        let mut generations: HashMap<String, i32> = HashMap::new();
        for (step, op) in ops.iter().enumerate() {
            if let Op::Advance { ms } = op {
                now += ms;
            }
            if let Op::Restart = op {
                let before = node.coordinator.durable_view().unwrap();
                node.coordinator.shutdown();
                node.replicas.shutdown();
                node = open(dir.path(), &image);
                let after = node.coordinator.durable_view().unwrap();
                prop_assert_eq!(
                    &after,
                    &before,
                    "step {}: replay differs from live state",
                    step
                );
                continue;
            }
            apply(&node, &image, op, now).await;
            for group in GROUPS {
                let generation = node
                    .coordinator
                    .inspect(group, |g| g.map(|g| g.generation_id()))
                    .unwrap();
                if let Some(generation) = generation {
                    let seen = generations.entry(group.to_string()).or_insert(generation);
                    prop_assert!(
                        generation >= *seen,
                        "step {step}: {group} generation {seen} -> {generation}"
                    );
                    *seen = generation;
                } else {
                    // Deleted or expired: a new incarnation starts again.
                    generations.remove(group);
                }
            }
        }
        let before = node.coordinator.durable_view().unwrap();
        node.coordinator.shutdown();
        node.replicas.shutdown();
        let node = open(dir.path(), &image);
        prop_assert_eq!(
            node.coordinator.durable_view().unwrap(),
            before,
            "final replay differs"
        );
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replay_of_consumer_offsets_equals_live_state(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}

/// A fixed scenario that always exercises a full rebalance, commits from a
/// member, a restart, and a commit from the restored generation's members.
#[test]
fn commits_and_generations_survive_restart() {
    let ops = vec![
        Op::Join {
            group: 0,
            member: 0,
        },
        Op::Join {
            group: 0,
            member: 1,
        },
        Op::Advance { ms: 600 },
        Op::SyncLeader { group: 0 },
        Op::Commit {
            group: 0,
            member: Some(0),
            partition: 0,
            offset: 10,
        },
        Op::Commit {
            group: 0,
            member: Some(1),
            partition: 1,
            offset: 20,
        },
        Op::Commit {
            group: 1,
            member: None,
            partition: 0,
            offset: 5,
        },
        Op::Restart,
        Op::Commit {
            group: 0,
            member: None,
            partition: 0,
            offset: 11,
        },
        Op::Restart,
    ];
    run(ops).unwrap();
}
