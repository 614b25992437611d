//! The replica fetcher against a real leader process: a `sluice serve`
//! leads a topic, records are produced with the client, and the fetcher
//! copies every partition into a follower log on disk (a bare
//! `PartitionLog` behind `FollowerLog`). The follower's log must then
//! hold exactly the leader's bytes.
//!
//! Both divergence paths run against the real leader: with Fetch v12 a
//! follower holding records past the leader's end gets OFFSET_OUT_OF_RANGE
//! and resets by ListOffsets; with Fetch v11 it asks OffsetForLeaderEpoch
//! first and truncates to the leader's end of its epoch.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_broker::error::BrokerError;
use sluice_broker::replica::fetcher::{FetcherConfig, SourceBroker};
use sluice_broker::replica::fetcher_follower::{EpochEnd, FollowerEnd, FollowerLog};
use sluice_broker::replica::fetcher_manager::ReplicaFetcherManager;
use sluice_client::{
    Acks, Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord,
};
use sluice_storage::{LogConfig, Offset, PartitionLog};
use support::TestBroker;

const TOPIC: &str = "replicated";
const PARTITIONS: i32 = 2;

/// A follower log on disk with the epoch history a follower keeps (epoch,
/// start offset), learnt from the batches it appends.
#[derive(Debug)]
struct DiskFollower {
    log: Mutex<PartitionLog>,
    epochs: Mutex<Vec<(i32, i64)>>,
    high_watermark: AtomicI64,
}

impl DiskFollower {
    fn open(dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            log: Mutex::new(PartitionLog::open(dir, LogConfig::default()).unwrap()),
            epochs: Mutex::new(Vec::new()),
            high_watermark: AtomicI64::new(0),
        })
    }

    fn log_end_offset(&self) -> i64 {
        self.log.lock().unwrap().log_end_offset().0
    }

    fn all_bytes(&self) -> Vec<u8> {
        read_all(&self.log.lock().unwrap())
    }
}

fn storage(e: sluice_storage::Error) -> BrokerError {
    BrokerError::InvalidRequest(e.to_string())
}

/// The `partitionLeaderEpoch` and base offset of each batch in `bytes`.
fn batch_epochs(bytes: &[u8]) -> Vec<(i32, i64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let epoch = i32::from_be_bytes(bytes[at + 12..at + 16].try_into().unwrap());
        out.push((epoch, base));
        at += 12 + len;
    }
    out
}

impl FollowerLog for DiskFollower {
    fn log_end(&self) -> Result<FollowerEnd, BrokerError> {
        let log = self.log.lock().unwrap();
        Ok(FollowerEnd {
            log_end_offset: log.log_end_offset().0,
            last_epoch: self.epochs.lock().unwrap().last().map(|e| e.0),
            log_start_offset: log.log_start_offset().0,
        })
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<EpochEnd>, BrokerError> {
        let epochs = self.epochs.lock().unwrap();
        let Some(i) = epochs.iter().rposition(|e| e.0 <= epoch) else {
            return Ok(None);
        };
        let end_offset = match epochs.get(i + 1) {
            Some(next) => next.1,
            None => self.log_end_offset(),
        };
        Ok(Some(EpochEnd {
            epoch: epochs[i].0,
            end_offset,
        }))
    }

    fn append_fetched(&self, batches: &[u8]) -> Result<i64, BrokerError> {
        let mut log = self.log.lock().unwrap();
        let info = log.append_as_follower(batches).map_err(storage)?;
        let mut epochs = self.epochs.lock().unwrap();
        for (epoch, base) in batch_epochs(batches) {
            if epochs.last().is_none_or(|e| e.0 < epoch) {
                epochs.push((epoch, base));
            }
        }
        Ok(info.last_offset.0 + 1)
    }

    fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    fn observe_leader_high_watermark(&self, leader_high_watermark: i64) {
        let hw = leader_high_watermark.min(self.log_end_offset());
        self.high_watermark.fetch_max(hw, Ordering::AcqRel);
    }

    fn truncate_to(&self, offset: i64) -> Result<i64, BrokerError> {
        let end = self
            .log
            .lock()
            .unwrap()
            .truncate_to(Offset(offset))
            .map_err(storage)?;
        self.epochs.lock().unwrap().retain(|e| e.1 < end.0);
        Ok(end.0)
    }

    fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), BrokerError> {
        self.log
            .lock()
            .unwrap()
            .truncate_fully_and_start_at(Offset(offset))
            .map_err(storage)?;
        self.epochs.lock().unwrap().clear();
        Ok(())
    }
}

/// Every batch of a log, concatenated.
fn read_all(log: &PartitionLog) -> Vec<u8> {
    let end = log.log_end_offset();
    let mut at = log.log_start_offset();
    let mut out = Vec::new();
    while at < end {
        let read = log.read(at, 1 << 20, end, true).unwrap();
        for region in &read.regions {
            out.extend_from_slice(&region.bytes());
        }
        at = read.next_offset;
    }
    out
}

/// Produces `count` acks=all records with mixed sizes over every partition.
async fn produce(bootstrap: &str, count: usize) -> Vec<i64> {
    let client = ClientConfig::new(bootstrap);
    let producer = Producer::connect(
        ProducerConfig::new(client)
            .with_acks(Acks::All)
            .with_idempotence(true)
            .with_linger(Duration::from_millis(2)),
    )
    .await
    .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..count {
        let value = format!("record-{i}-{}", "x".repeat(i % 300));
        let record = ProducerRecord::new(TOPIC, value).with_partition((i as i32) % PARTITIONS);
        deliveries.push(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut ends = vec![0i64; PARTITIONS as usize];
    for d in deliveries {
        let (p, offset) = d.await.unwrap();
        ends[p as usize] = ends[p as usize].max(offset + 1);
    }
    producer.close().await.unwrap();
    ends
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(fetch_version_max: i16) -> FetcherConfig {
    FetcherConfig {
        // Small per-partition answers: many rounds, and leaders cut the
        // last batch of an answer, which the fetcher must drop and refetch.
        partition_max_bytes: 4096,
        wait_max_ms: 100,
        backoff: Duration::from_millis(100),
        fetch_version_max,
        ..FetcherConfig::new(2)
    }
}

/// Appends a copy of the follower's own last batch at its log end: records
/// the leader never had, at the same epoch (the base offset is outside the
/// CRC, so the batch stays valid).
fn append_divergent_tail(follower: &DiskFollower) {
    let bytes = follower.all_bytes();
    let mut at = 0;
    let mut last_at = 0;
    while at < bytes.len() {
        last_at = at;
        at += 12 + i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
    }
    let mut batch = bytes[last_at..].to_vec();
    let end = follower.log_end_offset();
    batch[..8].copy_from_slice(&end.to_be_bytes());
    follower.append_fetched(&batch).unwrap();
}

/// Copies both partitions with `fetch_version_max`, checks the bytes, then
/// gives one follower a divergent tail and checks it is cut back to the
/// leader's log.
async fn copy_and_converge(fetch_version_max: i16) {
    let dir = tempfile::tempdir().unwrap();
    let leader = TestBroker::start(&dir.path().join("leader")).unwrap();
    let bootstrap = format!("127.0.0.1:{}", leader.port);
    Admin::connect(ClientConfig::new(&bootstrap))
        .await
        .unwrap()
        .create_topic(&NewTopic::new(TOPIC, PARTITIONS))
        .await
        .unwrap();
    let ends = produce(&bootstrap, 1500).await;

    let followers: Vec<Arc<DiskFollower>> = (0..PARTITIONS)
        .map(|p| DiskFollower::open(&dir.path().join(format!("follower/{TOPIC}-{p}"))))
        .collect();
    let manager = ReplicaFetcherManager::new(config(fetch_version_max));
    let source = SourceBroker {
        node_id: 1,
        address: bootstrap.clone(),
    };
    for (p, f) in followers.iter().enumerate() {
        manager.follow((TOPIC.into(), p as i32), source.clone(), 0, f.clone());
    }
    assert_eq!(manager.followed().get(&1), Some(&(PARTITIONS as usize)));
    wait_for("followers to catch up", || {
        followers
            .iter()
            .zip(&ends)
            .all(|(f, end)| f.log_end_offset() == *end && f.high_watermark() == *end)
    })
    .await;

    // A divergent tail on partition 0: the fetcher must cut it back.
    manager.unfollow(&(TOPIC.into(), 0));
    append_divergent_tail(&followers[0]);
    assert!(followers[0].log_end_offset() > ends[0]);
    manager.follow((TOPIC.into(), 0), source.clone(), 0, followers[0].clone());
    wait_for("the divergent tail to be cut", || {
        followers[0].log_end_offset() == ends[0]
    })
    .await;
    // More records after the divergence, so the follower must also resume.
    let more = produce(&bootstrap, 200).await;
    wait_for("both followers to catch up again", || {
        followers
            .iter()
            .zip(&more)
            .all(|(f, end)| f.log_end_offset() == *end)
    })
    .await;
    manager.shutdown();

    leader.stop().unwrap();
    for (p, f) in followers.iter().enumerate() {
        let leader_log = PartitionLog::open(
            &dir.path().join(format!("leader/{TOPIC}-{p}")),
            LogConfig::default(),
        )
        .unwrap();
        let leader_bytes = read_all(&leader_log);
        assert!(!leader_bytes.is_empty());
        assert_eq!(
            f.all_bytes(),
            leader_bytes,
            "partition {p}: follower bytes differ from the leader's"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetcher_copies_the_leader_log_byte_for_byte_and_cuts_a_divergent_tail_fetch_v12() {
    copy_and_converge(12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetcher_asks_offset_for_leader_epoch_below_fetch_v12() {
    copy_and_converge(11).await;
}
