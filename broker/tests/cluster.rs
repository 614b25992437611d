//! Three real `sluice serve` processes on loopback forming one cluster
//! (every node a controller voter), driven through the `sluice` CLI as a
//! user would: a topic created through any node appears on every node;
//! kill -9 of the active controller → another is elected and metadata
//! changes succeed again; the killed node restarts and catches up; every
//! node reports the same controller and the same topics.
//!
//! Also the upgrade: a data directory whose metadata was written by
//! single-node Sluice (`metadata.log`) starts under the Raft controller with
//! its topics, and the old file is kept renamed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_broker::metadata::{MetadataLog, MetadataRecord};
use sluice_testkit::cluster::Cluster;
use sluice_testkit::{BrokerProcess, sluice_bin};

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
