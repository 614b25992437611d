//! The replica fetcher: one task per source broker, copying the partitions
//! this node follows from their leader on that broker (Kafka's
//! `ReplicaFetcherThread`).
//!
//! ```text
//! ReplicaFetcherManager ──assign/remove──► ReplicaFetcher (one per leader broker)
//!                                            │ one connection (sluice_client::connection)
//!   loop: ready partitions ──► [OffsetForLeaderEpoch, leaders without Fetch v12]
//!         ──► Fetch(replica_id, current_leader_epoch, fetch_offset = LEO,
//!                   last_fetched_epoch, log_start_offset)
//!         ──► per partition: fetcher_state::decide
//!              Append → FollowerLog::append_fetched, observe leader HW
//!              Diverging → truncation_offset → FollowerLog::truncate_to
//!              OutOfRange → ListOffsets(earliest, latest) → reset
//!              Backoff → retry after replica.fetch.backoff.ms
//! ```
//!
//! The connection is the client's (`sluice_client::connection::Connection`):
//! one implementation of framing, correlation, version negotiation and
//! timeouts for every outgoing Kafka connection (docs/ARCHITECTURE.md).
//!
//! # Versions
//! Fetch at `min(negotiated, FetcherConfig::fetch_version_max)`. With v12+
//! the leader detects divergence from `last_fetched_epoch` and answers with
//! a diverging epoch (KIP-595 style). Below v12 the follower asks
//! OffsetForLeaderEpoch for its last epoch before its first fetch from a
//! leader epoch (KIP-101/279). `replica_state` (v15+) is not spoken: Fetch
//! stops at v12 in the shared connection's version table, so `replica_id`
//! travels in the request body.
//!
//! # Copies
//! Record bytes are copied twice: once from the socket into the
//! connection's read buffer (the response frame), then once into the
//! follower's segment by `append_fetched`. The fetched records are a view
//! of the frame (`Bytes`), never copied in between.
//!
//! # Limits
//! - One Fetch in flight per source broker; its answer is at most
//!   `response_max_bytes` (plus one batch, KIP-74), each partition at most
//!   `partition_max_bytes`, and the connection refuses frames above the
//!   client's response frame bound. Memory per fetcher is one response.
//! - The partitions of a fetcher are those this node follows on that
//!   leader, bounded by the metadata image.
//!
//! # Invariants
//! - Once [`ReplicaFetcher::remove`] returns, the fetcher appends nothing
//!   more to that partition: answers are applied under the assignment's
//!   lock, and an answer for a partition removed (or re-assigned at another
//!   leader epoch) meanwhile is dropped.
//! - A partition is fetched from its log end offset only; nothing is ever
//!   appended out of order (storage refuses a gap).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_client::connection::{Connection, ConnectionOptions};
use sluice_protocol::error_code::ErrorCode;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::fetcher_follower::FollowerLog;
use super::fetcher_state::{
    FetchDecision, LeaderEpochEnd, OutOfRangeReset, Truncation, decide, out_of_range_reset,
    truncation_offset, whole_batches_len,
};
use crate::error::BrokerError;

/// Fetch v12 is the first to carry diverging epochs in its answer.
const FETCH_DIVERGING_EPOCH_VERSION: i16 = 12;

/// The backoff after UNKNOWN_LEADER_EPOCH (see [`backoff_after`]): one
/// controller tick.
const LEADER_CATCH_UP_BACKOFF: Duration = Duration::from_millis(50);

/// ListOffsets timestamps for the log start and the log end.
const EARLIEST_TIMESTAMP: i64 = -2;
const LATEST_TIMESTAMP: i64 = -1;

/// The fetcher's settings; Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// This node: the Fetch's `replica_id`.
    pub node_id: i32,
    /// `replica.fetch.max.bytes` (1 MiB): per partition.
    pub partition_max_bytes: i32,
    /// `replica.fetch.response.max.bytes` (10 MiB): per answer.
    pub response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms` (500).
    pub wait_max_ms: i32,
    /// `replica.fetch.min.bytes` (1).
    pub min_bytes: i32,
    /// `replica.fetch.backoff.ms` (1000): after an error, per partition.
    pub backoff: Duration,
    /// `replica.socket.timeout.ms` (30 000): connect and request timeout,
    /// added to the long-poll wait.
    pub socket_timeout: Duration,
    /// The highest Fetch version to speak (Kafka's
    /// `inter.broker.protocol.version` plays this role).
    pub fetch_version_max: i16,
}

impl FetcherConfig {
    /// Kafka's defaults for node `node_id`.
    pub fn new(node_id: i32) -> Self {
        Self {
            node_id,
            partition_max_bytes: 1024 * 1024,
            response_max_bytes: 10 * 1024 * 1024,
            wait_max_ms: 500,
            min_bytes: 1,
            backoff: Duration::from_millis(1000),
            socket_timeout: Duration::from_millis(30_000),
            fetch_version_max: FETCH_DIVERGING_EPOCH_VERSION,
        }
    }
}

/// The broker a fetcher copies from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceBroker {
    pub node_id: i32,
    /// `host:port` of its client listener.
    pub address: String,
}

/// A partition as `(topic, index)`.
pub type TopicPartition = (Arc<str>, i32);

/// One partition assigned to a fetcher.
#[derive(Debug)]
struct Assigned {
    follower: Arc<dyn FollowerLog>,
    /// The leader epoch the image names: sent as `current_leader_epoch`.
    leader_epoch: i32,
    /// Ask OffsetForLeaderEpoch before the next fetch (leaders below Fetch
    /// v12, or a truncation that was not complete).
    epoch_check: bool,
    /// No fetch before this instant (after an error).
    delayed_until: Option<Instant>,
}

/// State shared by the handle and the task.
#[derive(Debug, Default)]
struct Shared {
    partitions: Mutex<BTreeMap<TopicPartition, Assigned>>,
    /// Notified when partitions are added or the fetcher is stopped.
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<TopicPartition, Assigned>> {
        // A panic while applying an answer cannot leave the map half
        // changed: entries are replaced whole.
        match self.partitions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// A snapshot of one partition for one round.
struct RoundPartition {
    tp: TopicPartition,
    follower: Arc<dyn FollowerLog>,
    leader_epoch: i32,
    epoch_check: bool,
}

/// The handle of one fetcher task. Dropping it stops the task.
#[derive(Debug)]
pub struct ReplicaFetcher {
    source: SourceBroker,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for ReplicaFetcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReplicaFetcher {
    /// Starts a fetcher copying from `source`.
    pub fn start(source: SourceBroker, config: FetcherConfig) -> Self {
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(run(source.clone(), config, Arc::clone(&shared)));
        Self {
            source,
            shared,
            task,
        }
    }

    pub fn source(&self) -> &SourceBroker {
        &self.source
    }

    /// Follows `tp` at `leader_epoch` from this fetcher's broker, replacing
    /// any earlier assignment of it.
    pub fn assign(&self, tp: TopicPartition, leader_epoch: i32, follower: Arc<dyn FollowerLog>) {
        self.shared.lock().insert(
            tp,
            Assigned {
                follower,
                leader_epoch,
                // KIP-101: a follower of a new leader epoch checks where its
                // log diverges before fetching; with Fetch v12 the leader
                // does it on the first fetch and this flag is ignored.
                epoch_check: true,
                delayed_until: None,
            },
        );
        self.shared.changed.notify_one();
    }

    /// Stops following `tp`. Once this returns, nothing more is appended to
    /// it by this fetcher.
    pub fn remove(&self, tp: &TopicPartition) -> bool {
        self.shared.lock().remove(tp).is_some()
    }

    /// How many partitions this fetcher follows.
    pub fn partition_count(&self) -> usize {
        self.shared.lock().len()
    }

    /// Whether the task ended (it only ends on abort).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// The fetcher task: rounds of (epoch checks, Fetch, apply) until aborted.
async fn run(source: SourceBroker, config: FetcherConfig, shared: Arc<Shared>) {
    let label = format!("node {} ({})", source.node_id, source.address);
    let options = ConnectionOptions {
        client_id: format!("sluice-replica-fetcher-{}", config.node_id),
        in_flight: 1,
        request_timeout: config.socket_timeout,
        connect_timeout: config.socket_timeout,
    };
    let mut connection: Option<Connection> = None;
    loop {
        let round = ready_partitions(&shared);
        if round.is_empty() {
            // Nothing to fetch now: wait for an assignment or the earliest
            // backoff to end.
            let wait = next_delay(&shared).unwrap_or(config.backoff);
            let _ = tokio::time::timeout(wait, shared.changed.notified()).await;
            continue;
        }
        let conn = match &connection {
            Some(c) if !c.is_closed() => c,
            _ => match Connection::connect(&source.address, label.clone(), &options).await {
                Ok(c) => connection.insert(c),
                Err(e) => {
                    tracing::warn!(source = %label, error = %e, "replica fetcher cannot connect; retrying");
                    tokio::time::sleep(config.backoff).await;
                    continue;
                }
            },
        };
        if let Err(e) = fetch_round(conn, &config, &shared, round).await {
            tracing::warn!(source = %label, error = %e, "replica fetch failed; reconnecting");
            connection = None;
            tokio::time::sleep(config.backoff).await;
        }
    }
}

/// The partitions to fetch now (not delayed).
fn ready_partitions(shared: &Shared) -> Vec<RoundPartition> {
    let now = Instant::now();
    shared
        .lock()
        .iter()
        .filter(|(_, a)| a.delayed_until.is_none_or(|t| t <= now))
        .map(|(tp, a)| RoundPartition {
            tp: tp.clone(),
            follower: Arc::clone(&a.follower),
            leader_epoch: a.leader_epoch,
            epoch_check: a.epoch_check,
        })
        .collect()
}

/// Time until the first delayed partition is ready again.
fn next_delay(shared: &Shared) -> Option<Duration> {
    let now = Instant::now();
    shared
        .lock()
        .values()
        .filter_map(|a| a.delayed_until)
        .min()
        .map(|t| t.saturating_duration_since(now))
}

/// What went wrong with a whole round: the connection is replaced.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Client(#[from] sluice_client::Error),
}

/// One round: epoch checks where needed, then one Fetch, then apply.
async fn fetch_round(
    conn: &Connection,
    config: &FetcherConfig,
    shared: &Shared,
    round: Vec<RoundPartition>,
) -> Result<(), RoundError> {
    let version = conn.version(ApiKey::Fetch)?.min(config.fetch_version_max);
    let diverging_in_fetch = version >= FETCH_DIVERGING_EPOCH_VERSION;
    let needs_check: Vec<&RoundPartition> = round
        .iter()
        .filter(|p| p.epoch_check && !diverging_in_fetch)
        .collect();
    if !needs_check.is_empty() {
        check_epochs(conn, config, shared, &needs_check).await?;
        // Fetch from where the checks left the logs: next round.
        return Ok(());
    }
    let mut request_partitions: BTreeMap<Arc<str>, Vec<FetchPartition>> = BTreeMap::new();
    for p in &round {
        let end = match p.follower.log_end() {
            Ok(end) => end,
            Err(e) => {
                delay(shared, p, config.backoff, &e.to_string());
                continue;
            }
        };
        request_partitions
            .entry(Arc::clone(&p.tp.0))
            .or_default()
            .push(
                FetchPartition::default()
                    .with_partition(p.tp.1)
                    // kafka-protocol refuses to encode a field the version
                    // lacks unless it holds its default (-1 for both).
                    .with_current_leader_epoch(if version >= 9 { p.leader_epoch } else { -1 })
                    .with_fetch_offset(end.log_end_offset)
                    .with_last_fetched_epoch(match end.last_epoch {
                        Some(epoch) if diverging_in_fetch => epoch,
                        _ => -1,
                    })
                    .with_log_start_offset(end.log_start_offset)
                    .with_partition_max_bytes(config.partition_max_bytes),
            );
    }
    if request_partitions.is_empty() {
        return Ok(());
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(config.node_id))
        .with_max_wait_ms(config.wait_max_ms)
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            request_partitions
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(topic_name(&topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let timeout = config.socket_timeout
        + Duration::from_millis(u64::try_from(config.wait_max_ms).unwrap_or(0));
    let response: FetchResponse = conn.call_with_timeout(&request, version, timeout).await?;
    if response.error_code != 0 {
        let code = ErrorCode::from_code(response.error_code);
        tracing::warn!(error = ?code, "replica fetch answered with a top-level error");
        for p in &round {
            delay(shared, p, config.backoff, "top-level fetch error");
        }
        return Ok(());
    }
    let mut out_of_range = Vec::new();
    for topic in &response.responses {
        for data in &topic.partitions {
            let Some(p) = round
                .iter()
                .find(|p| &*p.tp.0 == topic.topic.as_str() && p.tp.1 == data.partition_index)
            else {
                continue;
            };
            match decide(data) {
                FetchDecision::Append {
                    records,
                    high_watermark,
                } => apply_records(shared, p, &records, high_watermark, config),
                FetchDecision::HighWatermark(hw) => {
                    if still_assigned(shared, p).is_some() {
                        p.follower.observe_leader_high_watermark(hw);
                    }
                }
                FetchDecision::Diverging(leader) => apply_divergence(shared, p, leader, config),
                FetchDecision::OutOfRange => out_of_range.push(p),
                FetchDecision::Backoff(code) => {
                    delay(shared, p, backoff_after(code, config), &format!("{code:?}"));
                }
            }
        }
    }
    if !out_of_range.is_empty() {
        reset_out_of_range(conn, config, shared, &out_of_range).await?;
    }
    Ok(())
}

/// Runs `f` on the partition's current assignment only if it is still the
/// one this round fetched for (same follower, same leader epoch); the
/// assignment lock is held meanwhile so a concurrent `remove` waits.
fn still_assigned<'a>(
    shared: &'a Shared,
    p: &RoundPartition,
) -> Option<MutexGuard<'a, BTreeMap<TopicPartition, Assigned>>> {
    let guard = shared.lock();
    let same = guard
        .get(&p.tp)
        .is_some_and(|a| a.leader_epoch == p.leader_epoch && Arc::ptr_eq(&a.follower, &p.follower));
    same.then_some(guard)
}

/// How long a partition waits after the leader answered `code`:
/// `replica.fetch.backoff.ms`, except for UNKNOWN_LEADER_EPOCH. That one
/// says this follower applied a leader change before its new leader did
/// (each node follows the metadata log on its own), which the leader
/// catches up on within a controller round trip; waiting the whole backoff
/// there would hold acks=all on the new leader for a second after every
/// failover.
fn backoff_after(code: ErrorCode, config: &FetcherConfig) -> Duration {
    if code == ErrorCode::of(kafka_protocol::error::ResponseError::UnknownLeaderEpoch) {
        config.backoff.min(LEADER_CATCH_UP_BACKOFF)
    } else {
        config.backoff
    }
}

fn delay(shared: &Shared, p: &RoundPartition, backoff: Duration, reason: &str) {
    if let Some(mut guard) = still_assigned(shared, p) {
        tracing::debug!(topic = %p.tp.0, partition = p.tp.1, reason, "replica fetch backs off");
        if let Some(a) = guard.get_mut(&p.tp) {
            a.delayed_until = Some(Instant::now() + backoff);
        }
    }
}

/// Appends the whole batches of an answer and observes the leader's high
/// watermark.
fn apply_records(
    shared: &Shared,
    p: &RoundPartition,
    records: &Bytes,
    high_watermark: i64,
    config: &FetcherConfig,
) {
    let Some(guard) = still_assigned(shared, p) else {
        return;
    };
    let whole = whole_batches_len(records);
    let Some(batches) = records.get(..whole).filter(|b| !b.is_empty()) else {
        drop(guard);
        // A single batch larger than the partition limit: Kafka returns it
        // whole (KIP-74), so a cut first batch means the leader is not
        // following that rule; retry later rather than spin.
        delay(shared, p, config.backoff, "first fetched batch incomplete");
        return;
    };
    let result = p.follower.append_fetched(batches);
    match result {
        Ok(_) => p.follower.observe_leader_high_watermark(high_watermark),
        Err(e) => {
            drop(guard);
            tracing::warn!(topic = %p.tp.0, partition = p.tp.1, error = %e, "follower append failed");
            delay(shared, p, config.backoff, "append failed");
        }
    }
}

/// Truncates after a diverging-epoch answer (Fetch v12+).
fn apply_divergence(
    shared: &Shared,
    p: &RoundPartition,
    leader: LeaderEpochEnd,
    config: &FetcherConfig,
) {
    let Some(guard) = still_assigned(shared, p) else {
        return;
    };
    if let Err(e) = truncate_by_epoch(p.follower.as_ref(), leader) {
        drop(guard);
        tracing::warn!(topic = %p.tp.0, partition = p.tp.1, error = %e, "follower truncation failed");
        delay(shared, p, config.backoff, "truncation failed");
    }
}

/// Compares the leader's end of an epoch with this log and truncates
/// (public for the replication simulation, which answers its followers
/// with the same code).
pub fn truncate_by_epoch(
    follower: &dyn FollowerLog,
    leader: LeaderEpochEnd,
) -> Result<Truncation, BrokerError> {
    let end = follower.log_end()?;
    let own = if leader.epoch >= 0 {
        follower.end_offset_for_epoch(leader.epoch)?
    } else {
        None
    };
    let truncation = truncation_offset(leader, own, end.log_end_offset, follower.high_watermark());
    if truncation.offset < end.log_end_offset {
        tracing::info!(
            from = end.log_end_offset,
            to = truncation.offset,
            leader_epoch = leader.epoch,
            leader_end_offset = leader.end_offset,
            "follower truncates its log to where it agrees with the leader"
        );
        follower.truncate_to(truncation.offset)?;
    }
    Ok(truncation)
}

/// OffsetForLeaderEpoch for the follower's last epoch (leaders without Fetch
/// v12), then truncation; a partition whose check is complete fetches next
/// round.
async fn check_epochs(
    conn: &Connection,
    config: &FetcherConfig,
    shared: &Shared,
    partitions: &[&RoundPartition],
) -> Result<(), RoundError> {
    let version = conn.version(ApiKey::OffsetForLeaderEpoch)?;
    let mut by_topic: BTreeMap<Arc<str>, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    let mut asked = Vec::new();
    for p in partitions {
        let end = match p.follower.log_end() {
            Ok(end) => end,
            Err(e) => {
                delay(shared, p, config.backoff, &e.to_string());
                continue;
            }
        };
        let Some(last_epoch) = end.last_epoch else {
            // An empty log cannot diverge.
            set_epoch_check(shared, p, false);
            continue;
        };
        by_topic.entry(Arc::clone(&p.tp.0)).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(p.tp.1)
                .with_current_leader_epoch(p.leader_epoch)
                .with_leader_epoch(last_epoch),
        );
        asked.push(*p);
    }
    if asked.is_empty() {
        return Ok(());
    }
    // `replica_id` exists from v3; v2 must leave it at its default.
    let replica_id = if version >= 3 { config.node_id } else { -2 };
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(topic_name(&topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response: OffsetForLeaderEpochResponse = conn.call_at(&request, version).await?;
    for topic in &response.topics {
        for answer in &topic.partitions {
            let Some(p) = asked
                .iter()
                .find(|p| &*p.tp.0 == topic.topic.as_str() && p.tp.1 == answer.partition)
            else {
                continue;
            };
            if answer.error_code != 0 {
                let code = ErrorCode::from_code(answer.error_code);
                delay(shared, p, backoff_after(code, config), &format!("{code:?}"));
                continue;
            }
            let Some(guard) = still_assigned(shared, p) else {
                continue;
            };
            let leader = LeaderEpochEnd {
                epoch: answer.leader_epoch,
                end_offset: answer.end_offset,
            };
            let outcome = truncate_by_epoch(p.follower.as_ref(), leader);
            drop(guard);
            match outcome {
                Ok(t) => set_epoch_check(shared, p, !t.complete),
                Err(e) => {
                    tracing::warn!(topic = %p.tp.0, partition = p.tp.1, error = %e, "follower truncation failed");
                    delay(shared, p, config.backoff, "truncation failed");
                }
            }
        }
    }
    Ok(())
}

fn set_epoch_check(shared: &Shared, p: &RoundPartition, needed: bool) {
    if let Some(mut guard) = still_assigned(shared, p)
        && let Some(a) = guard.get_mut(&p.tp)
    {
        a.epoch_check = needed;
    }
}

/// Asks the leader for its log start and end, then resets each partition
/// as Kafka's `fetchOffsetAndTruncate` does.
async fn reset_out_of_range(
    conn: &Connection,
    config: &FetcherConfig,
    shared: &Shared,
    partitions: &[&RoundPartition],
) -> Result<(), RoundError> {
    let earliest = list_offsets(conn, config, partitions, EARLIEST_TIMESTAMP).await?;
    let latest = list_offsets(conn, config, partitions, LATEST_TIMESTAMP).await?;
    for (p, (start, end)) in partitions.iter().zip(earliest.iter().zip(latest.iter())) {
        let (Some(start), Some(end)) = (start, end) else {
            delay(shared, p, config.backoff, "leader offsets unknown");
            continue;
        };
        let Some(guard) = still_assigned(shared, p) else {
            continue;
        };
        let outcome = p.follower.log_end().and_then(|own| {
            match out_of_range_reset(*start, *end, own.log_end_offset) {
                OutOfRangeReset::TruncateTo(offset) => p.follower.truncate_to(offset).map(|_| ()),
                OutOfRangeReset::StartAt(offset) => p.follower.truncate_fully_and_start_at(offset),
                OutOfRangeReset::Retry => Ok(()),
            }
        });
        drop(guard);
        if let Err(e) = outcome {
            tracing::warn!(topic = %p.tp.0, partition = p.tp.1, error = %e, "follower reset failed");
            delay(shared, p, config.backoff, "reset failed");
        }
    }
    Ok(())
}

/// ListOffsets at `timestamp` for each partition, in order; `None` where
/// the leader answered with an error.
async fn list_offsets(
    conn: &Connection,
    config: &FetcherConfig,
    partitions: &[&RoundPartition],
    timestamp: i64,
) -> Result<Vec<Option<i64>>, RoundError> {
    let mut by_topic: BTreeMap<Arc<str>, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for p in partitions {
        by_topic.entry(Arc::clone(&p.tp.0)).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(p.tp.1)
                .with_current_leader_epoch(p.leader_epoch)
                .with_timestamp(timestamp),
        );
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(config.node_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    ListOffsetsTopic::default()
                        .with_name(topic_name(&topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response: ListOffsetsResponse = conn.call(&request).await?;
    Ok(partitions
        .iter()
        .map(|p| {
            response
                .topics
                .iter()
                .filter(|t| t.name.as_str() == &*p.tp.0)
                .flat_map(|t| t.partitions.iter())
                .find(|a| a.partition_index == p.tp.1 && a.error_code == 0)
                .map(|a| a.offset)
        })
        .collect())
}

fn topic_name(topic: &Arc<str>) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}
