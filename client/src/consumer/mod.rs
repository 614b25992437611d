//! The consumer: assign partitions, seek, and `poll` records through a
//! pipelined fetch loop.
//!
//! ```text
//! poll() ──► for each leader with assigned partitions and no fetch in
//!            flight: spawn fetch(positions) ─┐
//!        ◄── first finished fetch ◄──────────┘ (bounded channel)
//!            decode records, advance positions,
//!            spawn the next fetch for that leader at once (prefetch),
//!            return the records
//! ```
//!
//! While the application handles what one `poll` returned, the next fetch
//! for the same partitions is already on the wire.
//!
//! # Invariants
//! - A seek bumps the partition's epoch; a fetch answer issued under an
//!   older epoch is dropped, so no record from before a seek is returned
//!   after it.
//! - Positions only move forward, except by `seek`.
//!
//! # Limits
//! - At most one fetch in flight per leader; bytes per fetch are bounded
//!   by `fetch_max_bytes` and per partition by `partition_max_bytes`.
//!
//! # Groups
//! With a `group_id`, [`Consumer::subscribe`] makes the consumer a group
//! member ([`coordinator`]): each `poll` first rejoins if the heartbeat
//! task saw a rebalance, calls the [`RebalanceListener`], then fetches.
//! Positions of newly assigned partitions come from the group's committed
//! offsets, else `auto_offset_reset`. With auto commit, positions are
//! committed every `auto_commit_interval`, before partitions are given up
//! and on [`Consumer::close`].
//!
//! # Caveats
//! - Positions are committed as "next offset to return": records returned
//!   by the last `poll` count as processed once the next `poll` starts
//!   (Kafka's at-least-once auto-commit rule).

pub mod assignor;
mod batch;
pub mod coordinator;
pub mod fetcher;
mod group;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_protocol::error_code::{ErrorCode, ResponseError};
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::{Error, Result, partition_context};
use crate::offsets::{OffsetSpec, list_offsets};
pub use assignor::{Assignor, TopicPartition};
pub use batch::{FetchedBatch, RecordView};
use coordinator::Membership;
use fetcher::{FetchOptions, FetchOutcome, FetchTarget, decode_batches, fetch};

/// Told about partitions a group rebalance takes away or hands over.
/// Called from inside `poll`, before records of the new assignment are
/// fetched; with auto commit, revoked partitions are committed first.
pub trait RebalanceListener: Send + Sync {
    fn on_partitions_revoked(&self, partitions: &[TopicPartition]);
    fn on_partitions_assigned(&self, partitions: &[TopicPartition]);
}

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The earliest offset still in the log.
    Beginning,
    /// The log end: only records produced from now on.
    End,
    /// This exact offset.
    At(i64),
    /// The first record at or after this timestamp (ms since the epoch).
    Timestamp(i64),
}

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (create time or log-append time).
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Consumer settings.
#[derive(Clone)]
pub struct ConsumerConfig {
    pub client: ClientConfig,
    /// Longest a fetch waits on the broker for `fetch_min_bytes`.
    pub fetch_max_wait: Duration,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: i32,
    pub partition_max_bytes: i32,
    /// Where to go when a position is unknown or out of range.
    pub auto_offset_reset: Offset,
    /// The consumer group to join on [`Consumer::subscribe`].
    pub group_id: Option<String>,
    pub assignor: Assignor,
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
    /// The coordinator removes a member it has not heard from for this long.
    pub session_timeout: Duration,
    /// How long the coordinator waits for every member to rejoin.
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub rebalance_listener: Option<Arc<dyn RebalanceListener>>,
}

impl ConsumerConfig {
    pub fn new(client: ClientConfig) -> Self {
        Self {
            client,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            auto_offset_reset: Offset::End,
            group_id: None,
            assignor: Assignor::CooperativeSticky,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            rebalance_listener: None,
        }
    }

    pub fn with_group(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    pub fn with_assignor(mut self, assignor: Assignor) -> Self {
        self.assignor = assignor;
        self
    }

    pub fn with_auto_commit(mut self, on: bool) -> Self {
        self.enable_auto_commit = on;
        self
    }

    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    pub fn with_rebalance_listener(mut self, listener: Arc<dyn RebalanceListener>) -> Self {
        self.rebalance_listener = Some(listener);
        self
    }

    pub fn with_auto_offset_reset(mut self, reset: Offset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    pub fn with_fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait = wait;
        self
    }
}

/// Per-partition read state.
#[derive(Debug, Clone)]
struct PartitionState {
    /// Next offset to return; `None` until resolved from a seek.
    position: Option<i64>,
    /// Pending seek to resolve before fetching.
    seek: Option<Offset>,
    epoch: u64,
}

/// The consumer. Not `Clone`: one task polls it.
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    partitions: BTreeMap<(Arc<str>, i32), PartitionState>,
    /// Leaders with a fetch in flight.
    in_flight: HashSet<i32>,
    outcomes_tx: mpsc::Sender<FetchOutcome>,
    outcomes_rx: mpsc::Receiver<FetchOutcome>,
    group: Option<Membership>,
    last_commit: tokio::time::Instant,
}

/// Fetch answers waiting to be read: one per leader at most, so a small
/// bound suffices; a full channel only delays the fetch task.
const OUTCOME_QUEUE: usize = 64;

impl Consumer {
    pub async fn connect(config: ConsumerConfig) -> Result<Self> {
        let cluster = Cluster::connect(config.client.clone()).await?;
        let (outcomes_tx, outcomes_rx) = mpsc::channel(OUTCOME_QUEUE);
        Ok(Self {
            cluster,
            config,
            partitions: BTreeMap::new(),
            in_flight: HashSet::new(),
            outcomes_tx,
            outcomes_rx,
            group: None,
            last_commit: tokio::time::Instant::now(),
        })
    }

    /// Adds `partitions` of `topic` to the assignment, starting at
    /// `auto_offset_reset` until a seek says otherwise. Errors when the
    /// topic or a partition does not exist.
    pub async fn assign(&mut self, topic: &str, partitions: &[i32]) -> Result<()> {
        let info = self.cluster.topic(topic, false).await?;
        let topic: Arc<str> = Arc::from(topic);
        for &p in partitions {
            if usize::try_from(p).map_or(true, |i| i >= info.partition_count()) {
                return Err(Error::kafka(
                    ErrorCode::of(ResponseError::UnknownTopicOrPartition),
                    partition_context(&topic, p),
                    Some(format!(
                        "the topic has {} partitions",
                        info.partition_count()
                    )),
                ));
            }
            self.partitions.insert(
                (Arc::clone(&topic), p),
                PartitionState {
                    position: None,
                    seek: Some(self.config.auto_offset_reset),
                    epoch: 0,
                },
            );
        }
        Ok(())
    }

    /// Assigns every partition of `topic`; returns how many.
    pub async fn assign_all(&mut self, topic: &str) -> Result<usize> {
        let info = self.cluster.topic(topic, false).await?;
        let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
        self.assign(topic, &all).await?;
        Ok(all.len())
    }

    /// Removes every partition from the assignment.
    pub fn unassign(&mut self) {
        self.partitions.clear();
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.partitions
            .keys()
            .map(|(t, p)| (t.to_string(), *p))
            .collect()
    }

    /// Moves `partition` of `topic` (which must be assigned) to `offset`.
    pub async fn seek(&mut self, topic: &str, partition: i32, offset: Offset) -> Result<()> {
        let state = self
            .partitions
            .get_mut(&(Arc::from(topic), partition))
            .ok_or_else(|| {
                Error::Config(format!(
                    "{} is not assigned to this consumer",
                    partition_context(topic, partition)
                ))
            })?;
        state.epoch += 1;
        state.position = None;
        state.seek = Some(offset);
        self.resolve_seeks().await
    }

    /// Moves every assigned partition to `offset`.
    pub async fn seek_all(&mut self, offset: Offset) -> Result<()> {
        for state in self.partitions.values_mut() {
            state.epoch += 1;
            state.position = None;
            state.seek = Some(offset);
        }
        self.resolve_seeks().await
    }

    /// The next offset `poll` will return for `partition` of `topic`.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions
            .get(&(Arc::from(topic), partition))
            .and_then(|s| s.position)
    }

    /// Returns the next records, waiting up to `fetch_max_wait` (plus a
    /// round trip) for some; empty when none arrived.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        let batches = self.poll_batches().await?;
        let mut records = Vec::new();
        for b in &batches {
            b.to_consumer_records(&mut records)?;
        }
        Ok(records)
    }

    /// As [`Consumer::poll`], but returns the fetched batches: iterate
    /// [`FetchedBatch::records`] for views into the fetched bytes, with no
    /// allocation per record. Positions move past every batch returned.
    pub async fn poll_batches(&mut self) -> Result<Vec<FetchedBatch>> {
        self.maintain_group().await?;
        self.resolve_seeks().await?;
        self.start_fetches();
        if self.in_flight.is_empty() {
            // Nothing to fetch (no partitions yet, or no leader known):
            // wait as a fetch would, so a polling loop does not spin.
            tokio::time::sleep(self.config.fetch_max_wait).await;
            return Ok(Vec::new());
        }
        let wait = self.config.fetch_max_wait + self.config.client.request_timeout;
        let outcome = match tokio::time::timeout(wait, self.outcomes_rx.recv()).await {
            Ok(Some(o)) => o,
            Ok(None) | Err(_) => return Ok(Vec::new()),
        };
        self.in_flight.remove(&outcome.leader);
        let records = self.handle(outcome).await;
        // Prefetch: the next fetch for this leader leaves before the
        // records go back to the application.
        self.start_fetches();
        records
    }

    /// Starts a fetch for every leader that has fetchable partitions and
    /// none in flight.
    fn start_fetches(&mut self) {
        let mut by_leader: BTreeMap<i32, Vec<FetchTarget>> = BTreeMap::new();
        for ((topic, partition), state) in &self.partitions {
            let Some(offset) = state.position else {
                continue;
            };
            let leader = self.cluster.leader_id(topic, *partition);
            if leader < 0 || self.in_flight.contains(&leader) {
                continue;
            }
            by_leader.entry(leader).or_default().push(FetchTarget {
                topic: Arc::clone(topic),
                partition: *partition,
                offset,
                epoch: state.epoch,
            });
        }
        let options = FetchOptions {
            max_wait_ms: i32::try_from(self.config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX),
            min_bytes: self.config.fetch_min_bytes,
            max_bytes: self.config.fetch_max_bytes,
            partition_max_bytes: self.config.partition_max_bytes,
        };
        for (leader, targets) in by_leader {
            self.in_flight.insert(leader);
            let cluster = Arc::clone(&self.cluster);
            let tx = self.outcomes_tx.clone();
            tokio::spawn(async move {
                let outcome = fetch(cluster, leader, targets, options).await;
                let _ = tx.send(outcome).await;
            });
        }
    }

    /// Turns one fetch answer into batches and new positions.
    async fn handle(&mut self, outcome: FetchOutcome) -> Result<Vec<FetchedBatch>> {
        let response = match outcome.response {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, leader = outcome.leader, "fetch failed; refreshing metadata");
                tokio::time::sleep(self.config.client.retry_backoff).await;
                self.refresh_assigned().await;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        Error::check(response.error_code, || "Fetch".to_owned())?;
        let mut records = Vec::new();
        let mut stale_metadata = false;
        for target in &outcome.targets {
            let key = (Arc::clone(&target.topic), target.partition);
            let Some(state) = self.partitions.get_mut(&key) else {
                continue;
            };
            if state.epoch != target.epoch || state.position != Some(target.offset) {
                continue;
            }
            let Some(data) = response
                .responses
                .iter()
                .filter(|t| t.topic.0.as_str() == &*target.topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == target.partition)
            else {
                continue;
            };
            let code = ErrorCode::from_code(data.error_code);
            match code.error() {
                None => {
                    if let Some(bytes) = &data.records {
                        let next = decode_batches(
                            &target.topic,
                            target.partition,
                            bytes,
                            target.offset,
                            &mut records,
                        )?;
                        state.position = Some(next);
                    }
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    state.position = None;
                    state.seek = Some(self.config.auto_offset_reset);
                }
                Some(_) if code.is_retriable() => stale_metadata = true,
                Some(_) => {
                    return Err(Error::kafka(
                        code,
                        partition_context(&target.topic, target.partition),
                        None,
                    ));
                }
            }
        }
        if stale_metadata {
            self.refresh_assigned().await;
        }
        Ok(records)
    }

    async fn refresh_assigned(&self) {
        let topics: Vec<String> = self
            .partitions
            .keys()
            .map(|(t, _)| t.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if let Err(e) = self.cluster.refresh_metadata(Some(&topics)).await {
            tracing::debug!(error = %e, "metadata refresh failed");
        }
    }

    /// Turns pending seeks into positions (ListOffsets for beginning, end
    /// and timestamps).
    async fn resolve_seeks(&mut self) -> Result<()> {
        let mut wanted: BTreeMap<(Arc<str>, OffsetSpec), Vec<i32>> = BTreeMap::new();
        for ((topic, partition), state) in &mut self.partitions {
            let spec = match state.seek {
                None => continue,
                Some(Offset::At(o)) => {
                    state.position = Some(o);
                    state.seek = None;
                    continue;
                }
                Some(Offset::Beginning) => OffsetSpec::Earliest,
                Some(Offset::End) => OffsetSpec::Latest,
                Some(Offset::Timestamp(ms)) => OffsetSpec::Timestamp(ms),
            };
            wanted
                .entry((Arc::clone(topic), spec))
                .or_default()
                .push(*partition);
        }
        for ((topic, spec), partitions) in wanted {
            let found = list_offsets(&self.cluster, &topic, &partitions, spec).await?;
            for f in found {
                if let Some(state) = self.partitions.get_mut(&(Arc::clone(&topic), f.partition)) {
                    state.position = Some(f.offset);
                    state.seek = None;
                }
            }
        }
        Ok(())
    }
}
