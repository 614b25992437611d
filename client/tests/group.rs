//! Consumer groups against a real broker: three Rust consumers share a
//! topic, and when one stops the other two take over its partitions.
//! Both assignors; committed offsets survive the group.

// Harness helpers run on spawned tasks: a panic there is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_client::{
    Admin, Assignor, ClientConfig, Consumer, ConsumerConfig, NewTopic, Offset, Producer,
    ProducerConfig, ProducerRecord, RebalanceListener, TopicPartition,
};
use support::TestBroker;
use tokio::task::JoinHandle;

const PARTITIONS: i32 = 6;

fn config(broker: &TestBroker) -> ClientConfig {
    ClientConfig::new(&broker.bootstrap()).with_request_timeout(Duration::from_secs(30))
}

#[derive(Default)]
struct Counting {
    assigned: AtomicUsize,
    revoked: AtomicUsize,
}

impl RebalanceListener for Counting {
    fn on_partitions_revoked(&self, p: &[TopicPartition]) {
        self.revoked.fetch_add(p.len(), Ordering::Relaxed);
    }
    fn on_partitions_assigned(&self, p: &[TopicPartition]) {
        self.assigned.fetch_add(p.len(), Ordering::Relaxed);
    }
}

/// One group member polling on its own task.
struct Member {
    stop: Arc<AtomicBool>,
    assignment: Arc<Mutex<BTreeSet<(String, i32)>>>,
    listener: Arc<Counting>,
    task: JoinHandle<()>,
}

fn start_member(
    broker: &TestBroker,
    group: &str,
    topic: &str,
    assignor: Assignor,
    seen: Arc<Mutex<BTreeMap<String, usize>>>,
) -> Member {
    let stop = Arc::new(AtomicBool::new(false));
    let assignment = Arc::new(Mutex::new(BTreeSet::new()));
    let listener = Arc::new(Counting::default());
    let config = ConsumerConfig::new(config(broker))
        .with_group(group)
        .with_assignor(assignor)
        .with_auto_offset_reset(Offset::Beginning)
        .with_session_timeout(Duration::from_secs(6))
        .with_fetch_max_wait(Duration::from_millis(100))
        .with_rebalance_listener(listener.clone());
    let (topic, stop2, assignment2) = (topic.to_owned(), stop.clone(), assignment.clone());
    let task = tokio::spawn(async move {
        let mut consumer = Consumer::connect(config).await.unwrap();
        consumer.subscribe(&[&topic]).await.unwrap();
        while !stop2.load(Ordering::Acquire) {
            let records = consumer.poll().await.unwrap();
            {
                let mut seen = seen.lock().unwrap();
                for r in records {
                    let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                    *seen.entry(v).or_default() += 1;
                }
            }
            *assignment2.lock().unwrap() = consumer.assignment().into_iter().collect();
        }
        consumer.close().await.unwrap();
    });
    Member {
        stop,
        assignment,
        listener,
        task,
    }
}

async fn produce(broker: &TestBroker, topic: &str, from: usize, to: usize) {
    let producer = Producer::connect(ProducerConfig::new(config(broker)))
        .await
        .unwrap();
    for i in from..to {
        producer
            .send(ProducerRecord::new(topic, format!("v{i}")).with_key(format!("k{i}")))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sizes(members: &[&Member]) -> Vec<usize> {
    let mut v: Vec<usize> = members
        .iter()
        .map(|m| m.assignment.lock().unwrap().len())
        .collect();
    v.sort_unstable();
    v
}

fn disjoint_and_complete(members: &[&Member]) -> bool {
    let mut union = BTreeSet::new();
    let mut total = 0;
    for m in members {
        let a = m.assignment.lock().unwrap();
        total += a.len();
        union.extend(a.iter().cloned());
    }
    total == union.len() && union.len() == PARTITIONS as usize
}

async fn share_and_rebalance(assignor: Assignor) {
    let broker = TestBroker::start().unwrap();
    let admin = Admin::connect(config(&broker)).await.unwrap();
    let topic = "shared";
    admin
        .create_topic(&NewTopic::new(topic, PARTITIONS))
        .await
        .unwrap();
    produce(&broker, topic, 0, 600).await;

    let group = format!("g-{}", assignor.name());
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let a = start_member(&broker, &group, topic, assignor, seen.clone());
    let b = start_member(&broker, &group, topic, assignor, seen.clone());
    let c = start_member(&broker, &group, topic, assignor, seen.clone());
    wait_until(
        "three members with two partitions each",
        Duration::from_secs(60),
        || sizes(&[&a, &b, &c]) == [2, 2, 2] && disjoint_and_complete(&[&a, &b, &c]),
    )
    .await;
    wait_until("all 600 first records", Duration::from_secs(30), || {
        seen.lock().unwrap().len() == 600
    })
    .await;

    // One member stops (LeaveGroup): the other two take over its partitions.
    c.stop.store(true, Ordering::Release);
    c.task.await.unwrap();
    wait_until(
        "two members with three partitions each",
        Duration::from_secs(60),
        || sizes(&[&a, &b]) == [3, 3] && disjoint_and_complete(&[&a, &b]),
    )
    .await;
    produce(&broker, topic, 600, 1200).await;
    wait_until("all 1200 records", Duration::from_secs(30), || {
        seen.lock().unwrap().len() == 1200
    })
    .await;
    assert!(c.listener.assigned.load(Ordering::Relaxed) >= 2);
    assert!(
        a.listener.revoked.load(Ordering::Relaxed) + b.listener.revoked.load(Ordering::Relaxed) > 0
            || assignor.is_cooperative()
    );

    for m in [a, b] {
        m.stop.store(true, Ordering::Release);
        m.task.await.unwrap();
    }
    // Everything read was committed on close: the group's offsets are the
    // log ends.
    let committed = admin.group_offsets(&group).await.unwrap();
    let total: i64 = committed.iter().map(|o| o.offset).sum();
    assert_eq!(committed.len(), PARTITIONS as usize, "{committed:?}");
    assert_eq!(total, 1200, "{committed:?}");
    let described = admin.describe_group(&group).await.unwrap();
    assert!(described.members.is_empty(), "{described:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_cooperative_sticky_consumers_share_and_rebalance() {
    share_and_rebalance(Assignor::CooperativeSticky).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_range_consumers_share_and_rebalance() {
    share_and_rebalance(Assignor::Range).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_vanishes_is_replaced_after_its_session_times_out() {
    let broker = TestBroker::start().unwrap();
    let admin = Admin::connect(config(&broker)).await.unwrap();
    admin
        .create_topic(&NewTopic::new("crashy", PARTITIONS))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let a = start_member(
        &broker,
        "g-crash",
        "crashy",
        Assignor::CooperativeSticky,
        seen.clone(),
    );
    let b = start_member(
        &broker,
        "g-crash",
        "crashy",
        Assignor::CooperativeSticky,
        seen.clone(),
    );
    wait_until(
        "two members with three partitions each",
        Duration::from_secs(60),
        || sizes(&[&a, &b]) == [3, 3] && disjoint_and_complete(&[&a, &b]),
    )
    .await;
    // No LeaveGroup, no more heartbeats: as if the process died.
    b.task.abort();
    let gone = Instant::now();
    wait_until(
        "the survivor owning all six",
        Duration::from_secs(60),
        || sizes(&[&a]) == [6] && disjoint_and_complete(&[&a]),
    )
    .await;
    // Not before the 6 s session timeout could have expired.
    assert!(
        gone.elapsed() >= Duration::from_secs(4),
        "{:?}",
        gone.elapsed()
    );
    a.stop.store(true, Ordering::Release);
    a.task.await.unwrap();
}
