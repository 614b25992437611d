//! Three real `sluice serve` processes on loopback forming one cluster
//! (every node a controller voter), driven through the `sluice` CLI as a
//! user would: a topic created through any node appears on every node;
//! kill -9 of the active controller → another is elected and metadata
//! changes succeed again; the killed node restarts and catches up; every
//! node reports the same controller and the same topics.
//!
//! The replica layer across nodes: a topic's partitions live on the nodes
//! the image assigns them to, produce and fetch go to the leader, a
//! non-leader answers NOT_LEADER_OR_FOLLOWER naming the leader, and the
//! leader epoch in fetched batches is the image's.
//!
//! Also the upgrade: a data directory whose metadata was written by
//! single-node Sluice (`metadata.log`) starts under the Raft controller with
//! its topics, and the old file is kept renamed.
//!
//! A broker-only node (not among the voters) follows the voters' metadata,
//! registers, and leads partitions. SIGTERM of the active controller hands
//! Raft leadership over before the node exits. The group coordinator
//! follows `__consumer_offsets` leadership, also through a kill -9.
//!
//! Liveness (KIP-631): kill -9 of a broker → fenced after the session
//! timeout and its leaderships moved, every node's Metadata agreeing;
//! restart → a new incarnation, unfenced; SIGTERM of a leader → its
//! leaderships moved before it exits (with a session timeout far longer
//! than the test, so fencing cannot be what moved them); one cluster id
//! and each node's rack on every node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, ApiVersionsRequest, CreateTopicsRequest,
    DescribeClusterRequest, FetchRequest, FindCoordinatorRequest, GroupId, MetadataRequest,
    OffsetCommitRequest, OffsetFetchRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;
use sluice_broker::metadata::{MetadataLog, MetadataRecord};
use sluice_testkit::cluster::Cluster;
use sluice_testkit::{BrokerProcess, sluice_bin};
use support::{Client, produce_request};

/// Bound on every "eventually" below: an election takes about a second.
const PATIENCE: Duration = Duration::from_secs(15);

/// Runs `sluice <args> --bootstrap <at> --output json`; the parsed output,
/// or the CLI's error line.
fn cli(at: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(sluice_bin().unwrap())
        .args(args)
        .args(["--bootstrap", at, "--output", "json", "--timeout", "5"])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text.trim().to_string())))
}

/// Retries `f` until it returns `Some`, for at most [`PATIENCE`].
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn topics(at: &str) -> Option<BTreeMap<String, i64>> {
    let list = cli(at, &["topic", "list"]).ok()?;
    Some(
        list.as_array()?
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    t["partitions"].as_i64().unwrap(),
                )
            })
            .collect(),
    )
}

fn controller_id(at: &str) -> Option<i64> {
    cli(at, &["cluster", "info"]).ok()?["controller_id"]
        .as_i64()
        .filter(|id| *id > 0)
}

/// Every listed node reports the same topics, which include `name`.
fn all_agree_on(cluster: &Cluster, ids: &[u32], name: &str) -> BTreeMap<String, i64> {
    eventually(&format!("every node lists {name}"), || {
        let views: Vec<_> = ids
            .iter()
            .map(|id| topics(&cluster.bootstrap_of(*id).unwrap()))
            .collect::<Option<_>>()?;
        let first = views.first()?.clone();
        (first.contains_key(name) && views.iter().all(|v| *v == first)).then_some(first)
    })
}

fn create(at: &str, name: &str, partitions: &str) -> Result<Value, String> {
    cli(at, &["topic", "create", name, "--partitions", partitions])
}

#[test]
fn three_nodes_survive_the_loss_of_the_active_controller() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(&sluice_bin().unwrap(), root.path(), 3).unwrap();
    let ids = cluster.ids();

    create(&cluster.bootstrap_of(2).unwrap(), "orders", "3").unwrap();
    let seen = all_agree_on(&cluster, &ids, "orders");
    assert_eq!(seen["orders"], 3);

    let leader = eventually("every node names the same controller", || {
        let named: Vec<i64> = ids
            .iter()
            .map(|id| controller_id(&cluster.bootstrap_of(*id).unwrap()))
            .collect::<Option<_>>()?;
        named.windows(2).all(|w| w[0] == w[1]).then(|| named[0])
    });
    let leader = u32::try_from(leader).unwrap();

    cluster.kill(leader);
    let others: Vec<u32> = ids.iter().copied().filter(|id| *id != leader).collect();
    let at = cluster.bootstrap_of(others[0]).unwrap();
    let new_leader = eventually("a new controller is elected", || {
        controller_id(&at).filter(|id| *id != i64::from(leader))
    });
    assert!(others.contains(&u32::try_from(new_leader).unwrap()));
    // Through the node that is not the controller: the proposal is
    // forwarded. Retried while NOT_CONTROLLER (the election settling).
    let via = cluster.bootstrap_of(others[1]).unwrap();
    eventually("a topic is created after the failover", || {
        match create(&via, "after-failover", "2") {
            Ok(_) => Some(()),
            Err(e) if e.contains("TOPIC_ALREADY_EXISTS") => Some(()),
            Err(e) if e.contains("NOT_CONTROLLER") || e.contains("REQUEST_TIMED_OUT") => None,
            Err(e) => panic!("create after failover: {e}"),
        }
    });
    all_agree_on(&cluster, &others, "after-failover");

    cluster.restart(leader).unwrap();
    let view = all_agree_on(&cluster, &ids, "after-failover");
    assert_eq!(view["orders"], 3);
    assert_eq!(view["after-failover"], 2);
    // Racing creates of one name: exactly one succeeds.
    let racers: Vec<_> = ids
        .iter()
        .map(|id| {
            let at = cluster.bootstrap_of(*id).unwrap();
            std::thread::spawn(move || create(&at, "raced", "1"))
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.contains("TOPIC_ALREADY_EXISTS")),
        "{results:?}"
    );
}

fn write_legacy_log(data_dir: &Path) {
    let (mut log, _) = MetadataLog::open(data_dir).unwrap();
    log.append(&MetadataRecord::TopicCreated {
        name: "legacy".into(),
        topic_id: uuid::Uuid::from_u128(42),
        partitions: 2,
        configs: BTreeMap::new(),
        // An old log has no assignments: the import puts the partitions
        // on this node (MetadataImage::upgrade).
        assignments: Vec::new(),
    })
    .unwrap();
    log.append(&MetadataRecord::PartitionsAdded {
        name: "legacy".into(),
        partitions: 4,
        assignments: Vec::new(),
    })
    .unwrap();
}

#[test]
fn a_single_node_data_dir_is_imported_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    write_legacy_log(dir.path());
    let meta = dir.path().join("__cluster_metadata");
    for round in 0..2 {
        let broker = BrokerProcess::start(&sluice_bin().unwrap(), dir.path(), 0, &[]).unwrap();
        let seen = topics(&broker.bootstrap()).unwrap();
        assert_eq!(seen.get("legacy"), Some(&4), "round {round}: {seen:?}");
        assert!(!meta.join("metadata.log").exists());
        assert!(meta.join("metadata.log.imported").exists());
        assert!(broker.stop().unwrap().success());
    }
}

/// One node's Metadata answer, reduced to what liveness changes: the
/// cluster id, the brokers (id → rack) and every partition's (leader,
/// leader epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    cluster_id: String,
    brokers: BTreeMap<i32, Option<String>>,
    leaders: BTreeMap<(String, i32), (i32, i32)>,
}

fn view(port: u16) -> Option<View> {
    let mut client = Client::connect(port).ok()?;
    let meta = client
        .call(12, &MetadataRequest::default().with_topics(None))
        .ok()?;
    let mut leaders = BTreeMap::new();
    for t in &meta.topics {
        let name = t.name.as_ref()?.0.to_string();
        if name.starts_with("__") {
            continue;
        }
        for p in &t.partitions {
            leaders.insert(
                (name.clone(), p.partition_index),
                (p.leader_id.0, p.leader_epoch),
            );
        }
    }
    Some(View {
        cluster_id: meta.cluster_id?.to_string(),
        brokers: meta
            .brokers
            .iter()
            .map(|b| (b.node_id.0, b.rack.as_ref().map(ToString::to_string)))
            .collect(),
        leaders,
    })
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn kafka_port(cluster: &Cluster, id: u32) -> u16 {
    let at = cluster.bootstrap_of(id).unwrap();
    at.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// The view every listed node agrees on, once they do and `accept` holds.
fn agreed_view(cluster: &Cluster, ids: &[u32], what: &str, accept: impl Fn(&View) -> bool) -> View {
    eventually(what, || {
        let views: Vec<View> = ids
            .iter()
            .map(|id| view(kafka_port(cluster, *id)))
            .collect::<Option<_>>()?;
        let first = views.first()?.clone();
        (views.iter().all(|v| *v == first) && accept(&first)).then_some(first)
    })
}

/// A TOML config that sets the liveness timings.
fn liveness_config(root: &Path, session_ms: u64, heartbeat_ms: u64) -> String {
    let path = root.join("liveness.toml");
    std::fs::write(
        &path,
        format!(
            "\"broker.session.timeout.ms\" = {session_ms}\n\"broker.heartbeat.interval.ms\" = {heartbeat_ms}\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn start_racked(root: &Path, config: &str) -> Cluster {
    let config = config.to_string();
    Cluster::start_with(&sluice_bin().unwrap(), root, 3, move |id| {
        vec![
            "--config".into(),
            config.clone(),
            "--rack".into(),
            format!("rack-{id}"),
        ]
    })
    .unwrap()
}

/// The incarnation this start registered, from its start-up log.
fn incarnation(cluster: &Cluster, id: u32) -> String {
    cluster
        .node(id)
        .unwrap()
        .startup_log()
        .iter()
        .find_map(|l| l.split("incarnation=").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
        .expect("a `broker registered` line with the incarnation")
}

fn create_replicated(at: &str, name: &str) {
    cli(
        at,
        &[
            "topic",
            "create",
            name,
            "--partitions",
            "6",
            "--replication-factor",
            "3",
        ],
    )
    .unwrap();
}

fn led_by(view: &View, id: i32) -> usize {
    view.leaders.values().filter(|(l, _)| *l == id).count()
}

#[test]
fn a_killed_broker_is_fenced_and_its_leaderships_move_then_it_returns_unfenced() {
    const SESSION_MS: u64 = 4000;
    let root = tempfile::tempdir().unwrap();
    let config = liveness_config(root.path(), SESSION_MS, 250);
    let mut cluster = start_racked(root.path(), &config);
    let ids = cluster.ids();
    create_replicated(&cluster.bootstrap_of(1).unwrap(), "t");
    let before = agreed_view(&cluster, &ids, "every node sees t led", |v| {
        v.leaders.len() == 6 && v.leaders.values().all(|(l, _)| *l > 0)
    });
    // One cluster id everywhere, in Metadata, DescribeCluster and every
    // node's meta.properties; each broker's rack as configured.
    let racks: BTreeMap<i32, Option<String>> =
        (1..=3).map(|id| (id, Some(format!("rack-{id}")))).collect();
    assert_eq!(before.brokers, racks);
    for id in &ids {
        let mut client = Client::connect(kafka_port(&cluster, *id)).unwrap();
        let described = client.call(0, &DescribeClusterRequest::default()).unwrap();
        assert_eq!(described.cluster_id.to_string(), before.cluster_id);
        let props =
            std::fs::read_to_string(cluster.data_dir_of(*id).unwrap().join("meta.properties"))
                .unwrap();
        assert!(
            props.contains(&format!("cluster.id={}", before.cluster_id)),
            "node {id}: {props}"
        );
    }

    // The victim: a broker that leads something and is not the active
    // controller (that failover is the other test's).
    let controller = controller_id(&cluster.bootstrap_of(1).unwrap()).unwrap();
    let victim = ids
        .iter()
        .copied()
        .find(|id| i64::from(*id) != controller && led_by(&before, *id as i32) > 0)
        .unwrap();
    let first_incarnation = incarnation(&cluster, victim);
    let others = others_than(&ids, victim);
    let killed = Instant::now();
    cluster.kill(victim);
    let after = agreed_view(
        &cluster,
        &others,
        "the survivors agree the victim leads nothing",
        |v| led_by(v, victim as i32) == 0 && !v.brokers.contains_key(&(victim as i32)),
    );
    let moved_in = killed.elapsed();
    // Its kernel closed its controller connections: fenced after half a
    // heartbeat interval, long before the session would expire (the bound
    // leaves room for the tick, the commit and this test's polling).
    assert!(
        moved_in < Duration::from_millis(SESSION_MS - 1000),
        "moved after {moved_in:?}: the closed connection did not fence it"
    );
    for (key, (leader, epoch)) in &after.leaders {
        let (old_leader, old_epoch) = before.leaders[key];
        assert!(*leader > 0, "{key:?} has no leader");
        if old_leader == victim as i32 {
            assert!(*epoch > old_epoch, "{key:?}: epoch {old_epoch} → {epoch}");
        } else {
            assert_eq!(
                (*leader, *epoch),
                (old_leader, old_epoch),
                "{key:?} moved needlessly"
            );
        }
    }

    cluster.restart(victim).unwrap();
    let second_incarnation = incarnation(&cluster, victim);
    assert_ne!(first_incarnation, second_incarnation);
    // It listens only once unfenced: every node lists it again.
    let back = agreed_view(
        &cluster,
        &ids,
        "every node lists the restarted broker",
        |v| v.brokers.len() == 3,
    );
    assert_eq!(back.cluster_id, before.cluster_id);
    assert_eq!(back.brokers, racks);

    // A broker that stops without closing anything (SIGSTOP: hung, or cut
    // off) is fenced by the session, not before; SIGCONT brings it back.
    let paused = *others.first().unwrap();
    let stopped = Instant::now();
    cluster.node(paused).unwrap().signal("STOP").unwrap();
    agreed_view(
        &cluster,
        &others_than(&ids, paused),
        "the survivors no longer list the paused broker",
        |v| !v.brokers.contains_key(&(paused as i32)),
    );
    let fenced_in = stopped.elapsed();
    cluster.node(paused).unwrap().signal("CONT").unwrap();
    assert!(
        fenced_in >= Duration::from_millis(SESSION_MS / 2),
        "fenced after {fenced_in:?}: before the session expired?"
    );
    assert!(
        fenced_in < Duration::from_millis(SESSION_MS + 3000),
        "fenced after {fenced_in:?}"
    );
    agreed_view(&cluster, &ids, "every node lists the resumed broker", |v| {
        v.brokers.len() == 3
    });
}

fn others_than(ids: &[u32], id: u32) -> Vec<u32> {
    ids.iter().copied().filter(|other| *other != id).collect()
}

#[test]
fn sigterm_of_a_leader_moves_its_leaderships_before_it_exits() {
    let root = tempfile::tempdir().unwrap();
    // A session far longer than this test: only controlled shutdown can
    // move the leaderships in time.
    let config = liveness_config(root.path(), 60_000, 250);
    let mut cluster = start_racked(root.path(), &config);
    let ids = cluster.ids();
    create_replicated(&cluster.bootstrap_of(1).unwrap(), "t");
    let before = agreed_view(&cluster, &ids, "every node sees t led", |v| {
        v.leaders.len() == 6 && v.leaders.values().all(|(l, _)| *l > 0)
    });
    let leader = ids
        .iter()
        .copied()
        .find(|id| led_by(&before, *id as i32) > 0)
        .unwrap();
    let stopping = Instant::now();
    assert!(cluster.stop(leader).unwrap().success());
    let stopped_in = stopping.elapsed();
    let others: Vec<u32> = ids.iter().copied().filter(|id| *id != leader).collect();
    // Right after the exit (well inside the 60 s session), the survivors
    // already agree it leads nothing and is fenced.
    let after = agreed_view(
        &cluster,
        &others,
        "the survivors agree the leaderships moved",
        |v| led_by(v, leader as i32) == 0,
    );
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "controlled shutdown took {stopped_in:?}"
    );
    assert!(!after.brokers.contains_key(&(leader as i32)), "{after:?}");
    assert!(after.leaders.values().all(|(l, _)| *l > 0), "{after:?}");
    cluster.restart(leader).unwrap();
    agreed_view(
        &cluster,
        &ids,
        "the restarted broker is listed again",
        |v| v.brokers.len() == 3,
    );
}

/// `(leader, leader epoch)` of each partition of `topic`, by Metadata v12
/// from node `via`, once every partition has a leader.
fn leaders(cluster: &Cluster, via: u32, topic: &str) -> Vec<(i32, i32)> {
    let mut client = Client::connect(kafka_port(cluster, via)).unwrap();
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
        ]))
        .with_allow_auto_topic_creation(false);
    let response = client.call(12, &request).unwrap();
    let mut out: Vec<(i32, i32, i32)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0, p.leader_epoch))
        .collect();
    out.sort_unstable();
    out.into_iter().map(|(_, l, e)| (l, e)).collect()
}

/// Produce v10 of one batch of `count` records: (error code, base offset,
/// the current leader named by the KIP-951 field).
fn produce_to(port: u16, topic: &str, partition: i32, count: usize) -> (i16, i64, i32) {
    let mut client = Client::connect(port).unwrap();
    let request = produce_request(topic, partition, count, 1).unwrap();
    let response = client.call(10, &request).unwrap();
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset, p.current_leader.leader_id.0)
}

/// Fetch v12 from offset 0: (error code, record bytes).
fn fetch_from(port: u16, topic: &str, partition: i32) -> (i16, Vec<u8>) {
    let mut client = Client::connect(port).unwrap();
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = client.call(12, &request).unwrap();
    let p = &response.responses[0].partitions[0];
    (
        p.error_code,
        p.records.as_ref().map(|r| r.to_vec()).unwrap_or_default(),
    )
}

const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// Creates `name` through node `via` (CreateTopics v5) once all three
/// nodes are registered, so its partitions are placed over every node.
fn create_when_all_registered(cluster: &Cluster, via: u32, name: &str, partitions: i32, rf: i16) {
    eventually("three brokers registered", || {
        let info = cli(&cluster.bootstrap_of(1).unwrap(), &["cluster", "info"]).ok()?;
        (info["brokers"].as_array()?.len() == 3).then_some(())
    });
    let mut admin = Client::connect(kafka_port(cluster, via)).unwrap();
    let created = admin
        .call(
            5,
            &CreateTopicsRequest::default()
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(topic_name(name))
                        .with_num_partitions(partitions)
                        .with_replication_factor(rf),
                ])
                .with_timeout_ms(10_000),
        )
        .unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
}

/// (leader, leader epoch) of each of `topic`'s `partitions`, once every
/// node in `ids` names the same leaders.
fn agreed_leaders(
    cluster: &Cluster,
    ids: &[u32],
    topic: &str,
    partitions: usize,
) -> Vec<(i32, i32)> {
    eventually("every node sees the topic's leaders", || {
        let views: Vec<_> = ids.iter().map(|id| leaders(cluster, *id, topic)).collect();
        let first = views[0].clone();
        (first.len() == partitions
            && first.iter().all(|(l, _)| *l > 0)
            && views.iter().all(|v| *v == first))
        .then_some(first)
    })
}

#[test]
fn partitions_live_on_their_replicas_and_only_leaders_serve_clients() {
    let root = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&sluice_bin().unwrap(), root.path(), 3).unwrap();
    let ids = cluster.ids();
    create_when_all_registered(&cluster, 2, "spread", 6, 1);
    let placed = agreed_leaders(&cluster, &ids, "spread", 6);
    let on: std::collections::BTreeSet<i32> = placed.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        on.len(),
        3,
        "RF 1 over 3 brokers uses all three: {placed:?}"
    );

    for (partition, (leader, epoch)) in (0..).zip(&placed) {
        let leader = u32::try_from(*leader).unwrap();
        // Only the leader holds the replica's directory.
        for id in &ids {
            let dir = root.path().join(format!("node-{id}/spread-{partition}"));
            assert_eq!(
                dir.exists(),
                *id == leader,
                "{} on node {id}",
                dir.display()
            );
        }
        let (code, base, _) = eventually("the leader takes the produce", || {
            let r = produce_to(kafka_port(&cluster, leader), "spread", partition, 3);
            (r.0 != NOT_LEADER_OR_FOLLOWER).then_some(r)
        });
        assert_eq!((code, base), (0, 0), "produce to the leader of {partition}");
        for other in ids.iter().filter(|id| **id != leader) {
            let (code, _, named) = produce_to(kafka_port(&cluster, *other), "spread", partition, 1);
            assert_eq!(code, NOT_LEADER_OR_FOLLOWER, "produce to node {other}");
            assert_eq!(named, i32::try_from(leader).unwrap(), "KIP-951 leader");
            let (code, _) = fetch_from(kafka_port(&cluster, *other), "spread", partition);
            assert_eq!(code, NOT_LEADER_OR_FOLLOWER, "fetch from node {other}");
        }
        // acks=1: consumers see the batch once any followers have it.
        let records = eventually("the produced batch is readable", || {
            let (code, records) = fetch_from(kafka_port(&cluster, leader), "spread", partition);
            (code == 0 && records.len() > 61).then_some(records)
        });
        // RecordBatch v2: baseOffset(8) batchLength(4) partitionLeaderEpoch(4).
        assert!(
            records.len() > 61,
            "one batch fetched: {} bytes",
            records.len()
        );
        let stamped = i32::from_be_bytes(records[12..16].try_into().unwrap());
        assert_eq!(stamped, *epoch, "leader epoch in the batch is the image's");
        let count = i32::from_be_bytes(records[57..61].try_into().unwrap());
        assert_eq!(count, 3);
    }
}

const NOT_COORDINATOR: i16 = 16;

/// OffsetCommit v2 of offset `offset` for `topic`-0 by a simple consumer
/// (generation -1): the partition's error code.
fn commit_to(port: u16, group: &str, topic: &str, offset: i64) -> i16 {
    let mut client = Client::connect(port).unwrap();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_retention_time_ms(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    let response = client.call(2, &request).unwrap();
    response.topics[0].partitions[0].error_code
}

#[test]
fn each_group_is_coordinated_by_its_offsets_partition_leader() {
    let root = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&sluice_bin().unwrap(), root.path(), 3).unwrap();
    let ids = cluster.ids();
    let offsets = eventually("every offsets partition has a leader", || {
        let l = leaders(&cluster, 1, sluice_broker::group::OFFSETS_TOPIC);
        (!l.is_empty() && l.iter().all(|(leader, _)| *leader > 0)).then_some(l)
    });
    let partitions = i32::try_from(offsets.len()).unwrap();
    for group in ["g-alpha", "g-beta", "g-gamma"] {
        let index = sluice_broker::group::records::partition_for(group, partitions);
        let leader = offsets[usize::try_from(index).unwrap()].0;
        // FindCoordinator from every node names the partition's leader.
        for id in &ids {
            let mut client = Client::connect(kafka_port(&cluster, *id)).unwrap();
            let found = client
                .call(
                    2,
                    &FindCoordinatorRequest::default()
                        .with_key(StrBytes::from_string(group.to_string())),
                )
                .unwrap();
            assert_eq!(found.error_code, 0, "{found:?}");
            assert_eq!(found.node_id.0, leader, "{group} via node {id}");
        }
        // Only the leader coordinates it.
        for id in &ids {
            let code = eventually("the coordinator has loaded", || {
                let code = commit_to(
                    kafka_port(&cluster, *id),
                    group,
                    sluice_broker::group::OFFSETS_TOPIC,
                    7,
                );
                (code != 14).then_some(code) // COORDINATOR_LOAD_IN_PROGRESS
            });
            let expected = if i32::try_from(*id).unwrap() == leader {
                0
            } else {
                NOT_COORDINATOR
            };
            assert_eq!(code, expected, "{group} committed through node {id}");
        }
    }
}

/// FindCoordinator v3 for `group` through `port`: (error code, node id).
fn coordinator_of(port: u16, group: &str) -> (i16, i32) {
    let mut client = Client::connect(port).unwrap();
    let found = client
        .call(
            3,
            &FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())),
        )
        .unwrap();
    (found.error_code, found.node_id.0)
}

/// OffsetFetch v5 of `topic`-0 for `group` through `port`: (error code,
/// committed offset).
fn fetch_committed(port: u16, group: &str, topic: &str) -> (i16, i64) {
    let mut client = Client::connect(port).unwrap();
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![0]),
        ]));
    let response = client.call(5, &request).unwrap();
    if response.error_code != 0 {
        return (response.error_code, -1);
    }
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.committed_offset)
}

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

/// Commits offset 42 of `t`-0 for a group through its coordinator, kills
/// that node with SIGKILL, and waits until the survivors agree on a new
/// leader of the group's offsets partition. Returns the cluster, the group,
/// the dead node and the new coordinator.
fn kill_the_coordinator(root: &Path) -> (Cluster, &'static str, u32, u32) {
    const GROUP: &str = "g-survives";
    let config = root.join("coordinator.toml");
    std::fs::write(
        &config,
        "\"broker.session.timeout.ms\" = 1500\n\"broker.heartbeat.interval.ms\" = 250\n\"offsets.topic.num.partitions\" = 3\n",
    )
    .unwrap();
    let mut cluster = start_racked(root, &config.display().to_string());
    let ids = cluster.ids();
    create_replicated(&cluster.bootstrap_of(1).unwrap(), "t");
    let offsets = eventually("every offsets partition has a leader", || {
        let l = leaders(&cluster, 1, sluice_broker::group::OFFSETS_TOPIC);
        (l.len() == 3 && l.iter().all(|(leader, _)| *leader > 0)).then_some(l)
    });
    let index = sluice_broker::group::records::partition_for(GROUP, 3);
    let old = u32::try_from(offsets[usize::try_from(index).unwrap()].0).unwrap();
    // The offsets topic got the configured three replicas, although the
    // nodes started one by one.
    let mut client = Client::connect(kafka_port(&cluster, 1)).unwrap();
    let described = client
        .call(
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default()
                    .with_name(Some(topic_name(sluice_broker::group::OFFSETS_TOPIC))),
            ])),
        )
        .unwrap();
    for p in &described.topics[0].partitions {
        assert_eq!(p.replica_nodes.len(), 3, "{p:?}");
    }
    // UNKNOWN_TOPIC_OR_PARTITION until the coordinator's image has `t`.
    let code = eventually("the coordinator has loaded and knows t", || {
        let code = commit_to(kafka_port(&cluster, old), GROUP, "t", 42);
        (code != COORDINATOR_LOAD_IN_PROGRESS && code != 3).then_some(code)
    });
    assert_eq!(code, 0);
    assert_eq!(
        fetch_committed(kafka_port(&cluster, old), GROUP, "t"),
        (0, 42)
    );
    cluster.kill(old);
    let survivors: Vec<u32> = ids.iter().copied().filter(|id| *id != old).collect();
    let new = eventually("the survivors name one new coordinator", || {
        let named: Vec<(i16, i32)> = survivors
            .iter()
            .map(|id| coordinator_of(kafka_port(&cluster, *id), GROUP))
            .collect();
        let first = named[0];
        (first.0 == 0
            && first.1 != i32::try_from(old).unwrap()
            && named.iter().all(|n| *n == first))
        .then_some(first.1)
    });
    (cluster, GROUP, old, u32::try_from(new).unwrap())
}

#[test]
fn the_group_coordinator_moves_to_the_new_offsets_leader_when_its_node_dies() {
    let root = tempfile::tempdir().unwrap();
    let (cluster, group, old, new) = kill_the_coordinator(root.path());
    // The new leader loaded the partition: it serves the group, the other
    // survivor answers NOT_COORDINATOR.
    let code = eventually("the new coordinator has loaded", || {
        let code = commit_to(kafka_port(&cluster, new), group, "t", 43);
        (code != COORDINATOR_LOAD_IN_PROGRESS).then_some(code)
    });
    assert_eq!(code, 0);
    assert_eq!(
        fetch_committed(kafka_port(&cluster, new), group, "t"),
        (0, 43)
    );
    let other = cluster
        .ids()
        .into_iter()
        .find(|id| *id != old && *id != new)
        .unwrap();
    assert_eq!(
        commit_to(kafka_port(&cluster, other), group, "t", 44),
        NOT_COORDINATOR
    );
    assert_eq!(
        fetch_committed(kafka_port(&cluster, other), group, "t").0,
        NOT_COORDINATOR
    );
}

#[test]
fn committed_offsets_are_served_by_the_new_coordinator_after_a_kill() {
    let root = tempfile::tempdir().unwrap();
    let (cluster, group, _, new) = kill_the_coordinator(root.path());
    let committed = eventually("the new coordinator has loaded", || {
        let answer = fetch_committed(kafka_port(&cluster, new), group, "t");
        (answer.0 != COORDINATOR_LOAD_IN_PROGRESS).then_some(answer)
    });
    assert_eq!(committed, (0, 42));
}

#[test]
fn sigterm_of_the_active_controller_hands_raft_leadership_over_first() {
    let root = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&sluice_bin().unwrap(), root.path(), 3).unwrap();
    let ids = cluster.ids();
    let at = cluster.bootstrap_of(1).unwrap();
    let old = eventually("a controller is elected", || controller_id(&at));
    let old = u32::try_from(old).unwrap();
    let node = cluster.node(old).unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The stopping node says whom it handed leadership to, before it exits.
    let mut lines = Vec::new();
    let new = eventually("the stopping controller hands leadership over", || {
        lines.extend(node.log_so_far());
        lines.iter().find_map(|l| {
            l.contains("raft leadership handed over")
                .then(|| l.split("new_controller=").nth(1))
                .flatten()
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|id| id.parse::<i64>().ok())
        })
    });
    assert_ne!(new, i64::from(old));
    // The survivors follow that controller, and metadata changes succeed.
    for id in ids.iter().filter(|id| **id != old) {
        let via = cluster.bootstrap_of(*id).unwrap();
        let seen = eventually("the survivor knows the new controller", || {
            controller_id(&via).filter(|c| *c != i64::from(old))
        });
        assert_eq!(seen, new, "via node {id}");
    }
    let survivor = ids.iter().copied().find(|id| *id != old).unwrap();
    create(
        &cluster.bootstrap_of(survivor).unwrap(),
        "after-handover",
        "1",
    )
    .unwrap();
}

#[test]
fn a_broker_only_node_follows_the_voters_registers_and_leads_partitions() {
    let root = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&sluice_bin().unwrap(), root.path(), 3).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data_dir = root.path().join("broker-4");
    let advertised = format!("127.0.0.1:{port}");
    let mut broker = BrokerProcess::spawn(
        &sluice_bin().unwrap(),
        &data_dir,
        port,
        &[
            "--node-id",
            "4",
            "--advertised",
            &advertised,
            "--controller-voters",
            cluster.voters(),
        ],
    )
    .unwrap();
    broker.wait_ready().unwrap();
    // Registered and unfenced: every node, the broker-only one included,
    // lists four brokers.
    let ports: Vec<u16> = cluster
        .ids()
        .iter()
        .map(|id| kafka_port(&cluster, *id))
        .chain([port])
        .collect();
    let agreed = |what: &str, accept: &dyn Fn(&View) -> bool| {
        eventually(what, || {
            let views: Vec<View> = ports.iter().map(|p| view(*p)).collect::<Option<_>>()?;
            let first = views.first()?.clone();
            (views.iter().all(|v| *v == first) && accept(&first)).then_some(first)
        })
    };
    agreed("every node lists four brokers", &|v| v.brokers.len() == 4);
    // A metadata change made through it reaches the controller, and it
    // gets partitions of its own.
    create(&advertised, "spread", "8").unwrap();
    let after = agreed("every node sees spread led", &|v| {
        v.leaders.len() == 8 && v.leaders.values().all(|(l, _)| *l > 0)
    });
    let (&(_, partition), _) = after
        .leaders
        .iter()
        .find(|(_, (leader, _))| *leader == 4)
        .expect("the broker-only node leads a partition");
    // The metadata can name the node leader a moment before its replica
    // manager has taken the role (Kafka's brokers answer
    // NOT_LEADER_OR_FOLLOWER in that window too; clients retry).
    let (code, base, _) = eventually("the broker-only node takes the produce", || {
        let r = produce_to(port, "spread", partition, 3);
        (r.0 != NOT_LEADER_OR_FOLLOWER).then_some(r)
    });
    assert_eq!((code, base), (0, 0));
    // acks=1: consumers see the records once the followers have them.
    let fetched = eventually("the produced records are readable", || {
        let (code, fetched) = fetch_from(port, "spread", partition);
        (code == 0 && !fetched.is_empty()).then_some(fetched)
    });
    assert!(!fetched.is_empty());
    // No Raft on it: it keeps no metadata log of its own.
    assert!(!data_dir.join("__cluster_metadata/raft.log").exists());
    // Controlled shutdown through the active controller: the voters stop
    // listing it at once.
    assert!(broker.stop().unwrap().success());
    let voters: Vec<u32> = cluster.ids();
    agreed_view(
        &cluster,
        &voters,
        "the voters list three brokers again",
        |v| v.brokers.len() == 3,
    );
}

/// `(replicas, isr)` of partition `partition` of `topic`, by the CLI.
fn replicas_of(at: &str, topic: &str, partition: usize) -> Option<(Vec<i64>, Vec<i64>)> {
    let d = cli(at, &["topic", "describe", topic]).ok()?;
    let p = &d["partitions"][partition];
    let ids = |v: &Value| -> Option<Vec<i64>> { v.as_array()?.iter().map(Value::as_i64).collect() };
    Some((ids(&p["replicas"])?, ids(&p["isr"])?))
}

/// `sluice cluster reassign --topic t --partition 0` and then `how`.
fn reassign_t0(at: &str, how: &[&str]) -> Result<Value, String> {
    let mut args = vec!["cluster", "reassign", "--topic", "t", "--partition", "0"];
    args.extend_from_slice(how);
    cli(at, &args)
}

#[test]
fn leadership_returns_to_a_restarted_preferred_replica_and_the_cli_moves_partitions() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("ops.toml");
    std::fs::write(
        &config,
        "\"broker.session.timeout.ms\" = 2000\n\"broker.heartbeat.interval.ms\" = 250\n\
         \"replica.lag.time.max.ms\" = 3000\n\"auto.leader.rebalance.enable\" = true\n\
         \"leader.imbalance.check.interval.seconds\" = 1\n\
         \"leader.imbalance.per.broker.percentage\" = 0\n",
    )
    .unwrap();
    let mut cluster = start_racked(root.path(), &config.display().to_string());
    let ids = cluster.ids();
    let at = cluster.bootstrap_of(1).unwrap();
    create_replicated(&at, "t");
    let before = agreed_view(&cluster, &ids, "every node sees t led", |v| {
        v.leaders.len() == 6 && v.leaders.values().all(|(l, _)| *l > 0)
    });
    // Every partition is led by its preferred replica: nothing to elect.
    let results = cli(&at, &["cluster", "elect-leaders", "--topic", "t"]).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 6, "{results:?}");
    assert!(
        results.iter().all(|r| r["result"] == "ELECTION_NOT_NEEDED"),
        "{results:?}"
    );
    let unknown = cli(
        &at,
        &[
            "cluster",
            "elect-leaders",
            "--topic",
            "t",
            "--partition",
            "9",
        ],
    )
    .unwrap();
    assert_eq!(
        unknown[0]["result"], "UNKNOWN_TOPIC_OR_PARTITION",
        "{unknown:?}"
    );

    // A preferred leader dies: its partitions move; once it is back in
    // their ISRs, the controller's balance check gives them back.
    let controller = controller_id(&at).unwrap();
    let victim = ids
        .iter()
        .copied()
        .find(|id| i64::from(*id) != controller && led_by(&before, *id as i32) > 0)
        .unwrap();
    let others: Vec<u32> = ids.iter().copied().filter(|id| *id != victim).collect();
    cluster.kill(victim);
    agreed_view(&cluster, &others, "the victim's leaderships moved", |v| {
        led_by(v, victim as i32) == 0 && v.leaders.values().all(|(l, _)| *l > 0)
    });
    cluster.restart(victim).unwrap();
    let back = agreed_view(&cluster, &ids, "leadership returned to the victim", |v| {
        v.leaders
            .keys()
            .all(|k| v.leaders[k].0 == before.leaders[k].0)
    });
    for (key, (_, epoch)) in &back.leaders {
        let (old_leader, old_epoch) = before.leaders[key];
        if old_leader == victim as i32 {
            assert!(*epoch >= old_epoch + 2, "{key:?}: moved away and back");
        }
    }

    // Partition 0 moves to two replicas, the victim's place taken over.
    let at = cluster.bootstrap_of(controller as u32).unwrap();
    let (replicas, _) = replicas_of(&at, "t", 0).unwrap();
    let target: Vec<i64> = replicas.iter().rev().take(2).copied().collect();
    let list = target
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    reassign_t0(&at, &["--replicas", &list]).unwrap();
    eventually("the move completed", || {
        let (replicas, isr) = replicas_of(&at, "t", 0)?;
        let pending = cli(&at, &["cluster", "reassignments"]).ok()?;
        (replicas == target && isr.len() == 2 && pending.as_array()?.is_empty()).then_some(())
    });
    // Cancelling with nothing in progress is Kafka's error.
    let err = reassign_t0(&at, &["--cancel"]).unwrap_err();
    assert!(err.contains("NO_REASSIGNMENT_IN_PROGRESS"), "{err}");
}

const REQUEST_TIMED_OUT: i16 = 7;

#[test]
fn a_reassignment_that_cannot_commit_is_answered_within_its_timeout() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(&sluice_bin().unwrap(), root.path(), 3).unwrap();
    let ids = cluster.ids();
    let at = cluster.bootstrap_of(1).unwrap();
    eventually("three brokers registered", || {
        let info = cli(&at, &["cluster", "info"]).ok()?;
        (info["brokers"].as_array()?.len() == 3).then_some(())
    });
    create_replicated(&at, "t");
    // Two of three voters gone: no change can commit any more.
    let survivor = ids[0];
    for id in &ids[1..] {
        cluster.kill(*id);
    }
    // Once the survivor knows no active controller, a proposal waits for
    // one (up to the controller's own 5 s bound) instead of failing at once.
    let at = cluster.bootstrap_of(survivor).unwrap();
    eventually("the survivor knows no controller", || {
        let info = cli(&at, &["cluster", "info"]).ok()?;
        (info["controller_id"].as_i64()? <= 0).then_some(())
    });
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(Some(vec![kafka_protocol::messages::BrokerId(
                            survivor as i32,
                        )])),
                ]),
        ]);
    let mut client = Client::connect(kafka_port(&cluster, survivor)).unwrap();
    let started = Instant::now();
    let response = client.call(0, &request).unwrap();
    let waited = started.elapsed();
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, REQUEST_TIMED_OUT, "{response:?}");
    // Its timeoutMs (1 s), not the controller's own proposal bound (5 s).
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "answered after {waited:?}"
    );
}

/// Produce requests parked waiting for acks=all must not hold the memory
/// budget for request bytes (`queued.max.request.bytes`): the follower
/// fetches that would release them — and every other client's requests —
/// need some of it to be read at all. With both followers paused, a client
/// pipelines acks=all produces worth more than the whole budget to the
/// leader; another client is still answered at once, and once the
/// followers resume every produce is acknowledged. (The budget was held
/// until each reply was written: the other client waited for the
/// produces' timeout.)
#[test]
fn parked_acks_all_produces_do_not_hold_the_request_memory_budget() {
    const BUDGET: usize = 2 * 1024 * 1024;
    const PRODUCES: usize = 7;
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("budget.toml");
    std::fs::write(
        &config,
        format!(
            "\"queued.max.request.bytes\" = {BUDGET}\n\"socket.request.max.bytes\" = 1048576\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let cluster = Cluster::start_with(&sluice_bin().unwrap(), root.path(), 3, move |_| {
        vec!["--config".into(), config.clone()]
    })
    .unwrap();
    let ids = cluster.ids();
    create_when_all_registered(&cluster, 1, "parked", 1, 3);
    let leader = u32::try_from(agreed_leaders(&cluster, &ids, "parked", 1)[0].0).unwrap();
    let followers = others_than(&ids, leader);
    for id in &followers {
        cluster.node(*id).unwrap().signal("STOP").unwrap();
    }

    // ~490 KiB a request: seven of them are over 1.5 times the budget.
    let request = produce_request("parked", 0, 26_000, -1).unwrap();
    let mut body = bytes::BytesMut::new();
    kafka_protocol::protocol::Encodable::encode(&request, &mut body, 10).unwrap();
    assert!(
        body.len() * PRODUCES > BUDGET * 3 / 2,
        "{} bytes a request",
        body.len()
    );
    let mut producer = Client::connect(kafka_port(&cluster, leader)).unwrap();
    let sent: Vec<i32> = (0..PRODUCES)
        .map(|_| producer.send_raw(ApiKey::Produce, 10, &body).unwrap())
        .collect();

    // Time for the leader to read (and park) all it will of them.
    std::thread::sleep(Duration::from_secs(1));
    let asked = Instant::now();
    let mut other = Client::connect(kafka_port(&cluster, leader)).unwrap();
    other
        .call(3, &ApiVersionsRequest::default())
        .expect("another client is answered while the produces wait");
    let answered_in = asked.elapsed();

    for id in &followers {
        cluster.node(*id).unwrap().signal("CONT").unwrap();
    }
    assert!(
        answered_in < Duration::from_secs(5),
        "ApiVersions answered after {answered_in:?}: the parked produces held the budget"
    );
    for correlation_id in sent {
        let mut response = producer
            .receive_raw(ApiKey::Produce, 10, correlation_id)
            .unwrap();
        let response =
            <ProduceResponse as kafka_protocol::protocol::Decodable>::decode(&mut response, 10)
                .unwrap();
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{p:?}");
    }
}
