//! `Broker`: the state every request handler shares — config, identity,
//! the metadata controller and the replica manager.
//!
//! # Ownership
//! `Broker` is built once at start and shared as `Arc<Broker>`. It owns the
//! [`Controller`] (the only writer of metadata), the [`ReplicaManager`]
//! (the only owner of partition logs) and the [`Reconciler`] (the one task
//! that applies each published image to the replica manager, run by
//! [`Broker::follow_metadata`]). A metadata change goes through
//! [`Broker::propose`]: the controller commits it and publishes the image;
//! the proposer then waits for the reconciler to have applied that image
//! and reads the reconciler's result for its own topic.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use sluice_storage::LogDir;
use tokio::sync::Mutex;

use crate::config::{BrokerConfig, parse_voters};
use crate::controller::driver::ControllerError;
use crate::controller::{ControllerConfig, Voter};
use crate::decompression_budget::DecompressionBudget;
use crate::error::BrokerError;
use crate::group::Coordinator;
use crate::lifecycle::Lifecycle;
use crate::metadata::topic_name::is_internal;
use crate::metadata::{Controller, MetadataImage, MetadataRecord};
use crate::replica::budget_reservation::ReplicasInFlight;
use crate::replica::{Reconciler, ReplicaManager};
use crate::settings::{TopicDefaults, invalid_overrides};

/// Producer ids are allocated from the metadata log in blocks, so a restart
/// never hands out an id twice and most InitProducerId calls write nothing.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The node's identity as clients see it.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// Next producer id to hand out, and the end of the block the metadata log
/// has reserved for this node.
#[derive(Debug, Default)]
struct ProducerIdBlock {
    next: i64,
    end: i64,
}

/// Shared broker state.
pub struct Broker {
    config: BrokerConfig,
    identity: NodeIdentity,
    controller: Controller,
    replicas: ReplicaManager,
    reconciler: Reconciler,
    producer_ids: Mutex<ProducerIdBlock>,
    /// The consumer-group coordinator (`group::start` loads it).
    groups: Coordinator,
    /// Bytes being decompressed to validate client batches.
    decompression: DecompressionBudget,
    /// This start's incarnation and shutdown wish (`lifecycle`).
    lifecycle: Lifecycle,
    /// The cluster's id, settled with the metadata log at start
    /// (`lifecycle::cluster_id`) before the listener opens.
    cluster_id: OnceLock<String>,
}

impl Broker {
    /// Opens the data directory: metadata log first, then every partition
    /// log the metadata names. Blocking: call before serving.
    pub fn open(mut config: BrokerConfig, bound: SocketAddr) -> Result<Arc<Self>, BrokerError> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| BrokerError::DataDirIo {
            op: "create",
            path: data_dir.clone(),
            source,
        })?;
        let controller = start_controller(&config)?;
        let limits = sluice_storage::ProcessLimits::current();
        let connections = u64::try_from(config.max_connections).unwrap_or(u64::MAX);
        let open_segments = match config.log_open_segments_max {
            0 => sluice_storage::budget::default_open_segments(limits, connections),
            n => u64::try_from(n).unwrap_or(u64::MAX),
        };
        let log_dir = LogDir::open(&data_dir)
            .map_err(|source| BrokerError::Storage {
                topic: String::new(),
                partition: -1,
                source,
            })?
            .with_file_budget(sluice_storage::FileBudget::new(
                usize::try_from(open_segments).unwrap_or(usize::MAX),
            ));
        let defaults = TopicDefaults::from_broker(&config)?;
        warn_invalid_stored_configs(&controller.image());
        let budget = sluice_storage::PartitionBudget::from_limits_and_segments(
            limits,
            connections,
            open_segments,
        );
        tracing::info!(partitions = budget.partitions, open_segments, reason = %budget.reason, "partition budget");
        let replicas = ReplicaManager::new(config.node_id, log_dir, config.durability, defaults)
            .with_partition_budget(budget)
            .with_replication(replication_settings(&config));
        // A partition that cannot be opened now (a resource limit) must not
        // keep the broker down: every other partition is served, and the
        // maintenance pass retries the rest (`retry_reconcile`).
        let initial = replicas.reconcile(|| controller.image())?;
        if let Some((topic, failure)) = initial.failed.iter().next() {
            tracing::error!(%topic, error = %failure.error, failed = initial.failed.len(), "some partitions could not be opened at start; they are retried in the background");
        }
        replicas.remove_orphans(&initial.image)?;
        let reconciler = Reconciler::new(initial);
        let (host, port) = config.advertised_host_port(bound);
        let identity = NodeIdentity {
            node_id: config.node_id,
            host,
            port,
        };
        let groups = Coordinator::new(crate::group::group_config(&config));
        let decompression = DecompressionBudget::new(
            config.queued_max_decompressed_bytes,
            config.message_max_bytes,
        );
        // From here on `listen` is the address the listener holds, so
        // DescribeConfigs' `listeners` names the port `:0` picked. (The
        // controller above took its default address from the configured
        // one, as it must: it is not the Kafka port.)
        config.listen = bound;
        Ok(Arc::new(Self {
            groups,
            decompression,
            config,
            identity,
            controller,
            replicas,
            reconciler,
            producer_ids: Mutex::new(ProducerIdBlock::default()),
            lifecycle: Lifecycle::new(),
            cluster_id: OnceLock::new(),
        }))
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// The cluster id (empty only before start-up settled it, when no
    /// client is served yet).
    pub fn cluster_id(&self) -> &str {
        self.cluster_id.get().map_or("", String::as_str)
    }

    /// Records the cluster id settled at start (the first call wins).
    pub(crate) fn set_cluster_id(&self, id: &str) {
        let _ = self.cluster_id.set(id.to_string());
    }

    /// This start's lifecycle state.
    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Whether `image` holds this start's incarnation, unfenced: what the
    /// start waits for before listening and what `/ready` requires.
    pub fn unfenced_in(&self, image: &MetadataImage) -> bool {
        image
            .broker(self.identity.node_id)
            .is_some_and(|b| b.incarnation_id == self.lifecycle.incarnation && !b.fenced)
    }

    /// This node's controller handle.
    pub(crate) fn controller(&self) -> &Controller {
        &self.controller
    }

    pub fn replicas(&self) -> &ReplicaManager {
        &self.replicas
    }

    pub fn groups(&self) -> &Coordinator {
        &self.groups
    }

    /// The budget every decompression of client data draws from.
    pub fn decompression(&self) -> &DecompressionBudget {
        &self.decompression
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    /// The active controller's node id, or -1 while none is known
    /// (Metadata and DescribeCluster `controller_id`).
    pub fn controller_id(&self) -> i32 {
        self.controller
            .leader()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(-1)
    }

    /// Waits until the controller quorum has a leader (see
    /// [`Controller::wait_for_leader`]).
    pub async fn wait_for_controller(&self) {
        self.controller.wait_for_leader().await;
    }

    /// The reconciler: the one task that applies published images to the
    /// replica manager (see `replica::reconciler`).
    pub fn reconciler(&self) -> &Reconciler {
        &self.reconciler
    }

    /// Runs the reconciler: keeps the partition logs and roles in line with
    /// every image the controller publishes, including changes other nodes
    /// proposed. Spawn it before anything proposes. Runs until the
    /// controller stops.
    pub async fn follow_metadata(self: Arc<Self>) {
        let images = self.controller.subscribe();
        let this = Arc::clone(&self);
        self.reconciler
            .run(images, move || {
                let this = Arc::clone(&this);
                async move {
                    tokio::task::spawn_blocking(move || {
                        // The newest image, read under the reconcile lock.
                        let report = this.replicas.reconcile(|| this.controller.image())?;
                        // Group coordination follows offsets-partition
                        // leadership (a no-op until the coordinator starts).
                        if let Err(e) = this.groups.follow_leadership(&this.replicas) {
                            tracing::error!(error = %e, "group coordinator could not follow leadership");
                        }
                        Ok(report)
                    })
                    .await
                    .map_err(|source| BrokerError::TaskFailed {
                        task: "reconcile",
                        source,
                    })?
                }
            })
            .await;
    }

    /// Bytes of requests held in memory across all connections.
    pub fn memory_budget(&self) -> usize {
        self.config
            .queued_max_request_bytes
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
    }

    /// Replicates and applies a metadata change; for a change to topics,
    /// waits until the reconciler has applied it to this node's replicas.
    ///
    /// A topic creation is all or nothing on this node: when its replicas
    /// here cannot all be opened, the topic is deleted again (a
    /// `TopicDeleted` record) and the reconciler's error returned, so no
    /// half-created topic stays behind. New partitions are reserved in this
    /// node's partition budget before the record is proposed, and new
    /// partitions of an existing topic (CreatePartitions) are opened on this
    /// node before it: if one cannot be, the request fails and the
    /// partition count is unchanged (`ReplicaManager::preopen`). Replicas
    /// on other nodes are opened by their reconcilers, which retry a
    /// failure in the background.
    pub async fn propose(
        self: &Arc<Self>,
        record: MetadataRecord,
    ) -> Result<Arc<MetadataImage>, BrokerError> {
        let node = self.identity.node_id;
        let created = match &record {
            MetadataRecord::TopicCreated { name, topic_id, .. } => Some((name.clone(), *topic_id)),
            _ => None,
        };
        let _reservation = match (&record, ReplicasInFlight::of(&record, node)) {
            (
                MetadataRecord::TopicCreated { name, .. }
                | MetadataRecord::PartitionsAdded { name, .. },
                Some(change),
            ) if !is_internal(name) => Some(self.replicas.reserve(&self.image(), change)?),
            _ => None,
        };
        // New partitions of an existing topic are opened here first: one
        // that cannot be created fails the request before the partition
        // count changes (dropping the guard deletes what was made).
        let mut preopened = match &record {
            MetadataRecord::PartitionsAdded {
                name, assignments, ..
            } => {
                let (this, name, added) = (Arc::clone(self), name.clone(), assignments.clone());
                let logs = tokio::task::spawn_blocking(move || {
                    this.replicas.preopen(&this.image(), &name, &added)
                })
                .await
                .map_err(|source| BrokerError::TaskFailed {
                    task: "pre-open partitions",
                    source,
                })??;
                Some(self.replicas.guard_preopened(logs))
            }
            _ => None,
        };
        let topic = changed_topic(&record).map(str::to_string);
        let image = self.controller.propose(record).await?;
        if let Some(p) = preopened.as_mut() {
            p.proposed();
        }
        let Some(topic) = topic else {
            return Ok(image);
        };
        let applied = self.reconciler.applied_after().await?;
        // Another topic's failure (retried in the background) does not
        // fail this change; only this record's own topic counts.
        let failure = applied.report.failed.get(&topic).filter(|f| {
            image
                .topic(&topic)
                .is_some_and(|t| t.topic_id == f.topic_id)
        });
        let Some(failure) = failure else {
            return Ok(image);
        };
        let error = BrokerError::Reconcile(Arc::clone(&failure.error));
        if let Some((name, topic_id)) = created
            && failure.topic_id == topic_id
        {
            tracing::warn!(topic = %name, error = %error, "topic creation failed on this node; deleting the topic again");
            self.controller
                .propose(MetadataRecord::TopicDeleted { name })
                .await?;
            // The rolled-back topic's directories are gone before the
            // failure is answered.
            if let Err(again) = self.reconciler.applied_after().await {
                tracing::debug!(error = %again, "reconcile after a rollback");
            }
        }
        Err(error)
    }

    /// Replicates a metadata change the image alone decides (no reconcile
    /// wait, no budget): a leader's ISR change.
    pub async fn propose_metadata(
        &self,
        record: MetadataRecord,
    ) -> Result<Arc<MetadataImage>, BrokerError> {
        Ok(self.controller.propose(record).await?)
    }

    /// Asks the reconciler to try again when its last pass could not open
    /// every replica (a resource limit at start or during a change), so
    /// the broker recovers by itself once the resource returns. The
    /// maintenance pass calls it.
    pub fn retry_reconcile(&self) {
        if self.replicas.is_incomplete() {
            self.reconciler.poke();
        }
    }

    /// Registers this start's incarnation (fenced until the active
    /// controller counts its first heartbeat), heartbeats, and waits to be
    /// unfenced; see [`crate::lifecycle`].
    pub async fn register(self: &Arc<Self>) -> Result<crate::lifecycle::Running, BrokerError> {
        crate::lifecycle::start(self).await
    }

    /// A fresh producer id (InitProducerId), reserving a new block in the
    /// metadata log when the current one is used up.
    pub async fn allocate_producer_id(self: &Arc<Self>) -> Result<i64, BrokerError> {
        let mut block = self.producer_ids.lock().await;
        if block.next >= block.end {
            let start = self.image().next_producer_id().max(block.end);
            let end = start + PRODUCER_ID_BLOCK_SIZE;
            self.propose(MetadataRecord::ProducerIdsAllocated {
                next_producer_id: end,
                broker_id: Some(self.identity.node_id),
            })
            .await?;
            *block = ProducerIdBlock { next: start, end };
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }

    /// Flushes and closes every partition log (clean shutdown).
    pub fn shutdown(&self) {
        self.controller.shutdown();
        self.groups.shutdown();
        self.replicas.shutdown();
    }
}

/// The topic whose replicas `record` changes, if any: a proposer of such a
/// record waits for the reconciler to apply it.
fn changed_topic(record: &MetadataRecord) -> Option<&str> {
    match record {
        MetadataRecord::TopicCreated { name, .. }
        | MetadataRecord::PartitionsAdded { name, .. }
        | MetadataRecord::TopicConfigChanged { name, .. }
        | MetadataRecord::TopicDeleted { name } => Some(name),
        MetadataRecord::PartitionChanged { topic, .. } => Some(topic),
        // A fencing or a controlled shutdown moves leaderships in one
        // record: the topic is that of the first change inside it (the
        // controller proposes these today and waits on no reconciler, but
        // a proposer that does must wait on the partitions it moves).
        // Atomic records are not nested, so this recursion is one level.
        MetadataRecord::Atomic { records } => records.iter().find_map(changed_topic),
        MetadataRecord::BrokerRegistered { .. }
        | MetadataRecord::BrokerFenced { .. }
        | MetadataRecord::BrokerUnfenced { .. }
        | MetadataRecord::BrokerUnregistered { .. }
        | MetadataRecord::ProducerIdsAllocated { .. }
        | MetadataRecord::ClusterIdAssigned { .. }
        // A leader's ISR change: the leader applies it from the image; its
        // proposer does not wait for the reconciler.
        | MetadataRecord::IsrChanged { .. }
        // Elections and reassignment steps: the proposer reads from the
        // image which changes took; replicas follow in the background.
        | MetadataRecord::PartitionChangesAt { .. } => None,
    }
}

/// Logs, once at start, every stored topic config the settings table
/// refuses (written by an older version with other bounds). Such a value
/// is ignored: the key takes its default, and the broker starts.
fn warn_invalid_stored_configs(image: &MetadataImage) {
    for topic in image.topics() {
        for error in invalid_overrides(&topic.configs) {
            tracing::warn!(topic = %topic.name, %error, "stored topic config is invalid; using the default for that key");
        }
    }
}

/// The replica fetchers' and ISR tracking's settings from the config.
fn replication_settings(config: &BrokerConfig) -> crate::replica::manager::ReplicationSettings {
    let ms = std::time::Duration::from_millis;
    let mut fetcher = crate::replica::fetcher::FetcherConfig::new(config.node_id);
    fetcher.partition_max_bytes = config.replica_fetch_max_bytes;
    fetcher.response_max_bytes = config.replica_fetch_response_max_bytes;
    fetcher.wait_max_ms = config.replica_fetch_wait_max_ms;
    fetcher.min_bytes = config.replica_fetch_min_bytes;
    fetcher.backoff = ms(config.replica_fetch_backoff_ms);
    fetcher.socket_timeout = ms(config.replica_socket_timeout_ms);
    crate::replica::manager::ReplicationSettings {
        lag_max_ms: i64::try_from(config.replica_lag_time_max_ms).unwrap_or(i64::MAX),
        fetcher,
    }
}

/// Starts this node's controller: the voters from the config (this node
/// alone by default), the controller listener bound here so a taken port
/// fails the start. Blocking; needs a tokio runtime context.
fn start_controller(config: &BrokerConfig) -> Result<Controller, ControllerError> {
    let node_id = u64::try_from(config.node_id)
        .ok()
        .filter(|id| *id > 0)
        .ok_or(ControllerError::InvalidNodeId(config.node_id))?;
    let voters = match &config.controller_voters {
        Some(text) => parse_voters(text)?,
        None => vec![(node_id, config.controller_listen.unwrap_or(config.listen))],
    };
    let own = voters
        .iter()
        .find(|(id, _)| *id == node_id)
        .map(|(_, a)| *a);
    // A broker-only node (not a voter) needs no controller listener.
    let listener = match config.controller_listen.or(own) {
        Some(addr) if voters.len() > 1 && own.is_some() => Some(bind_controller(addr)?),
        _ => None,
    };
    let runtime = tokio::runtime::Handle::try_current()?;
    let controller_config = ControllerConfig {
        node_id,
        voters: voters
            .into_iter()
            .map(|(id, addr)| Voter { id, addr })
            .collect(),
        data_dir: config.data_dir.clone(),
        session_timeout: std::time::Duration::from_millis(config.broker_session_timeout_ms),
        heartbeat_interval: std::time::Duration::from_millis(config.broker_heartbeat_interval_ms),
        leader_balancing: config.auto_leader_rebalance_enable.then(|| {
            crate::controller::LeaderBalancingConfig {
                interval: std::time::Duration::from_secs(
                    config.leader_imbalance_check_interval_seconds,
                ),
                max_imbalance_percent: config.leader_imbalance_per_broker_percentage,
            }
        }),
    };
    Controller::start(&controller_config, &runtime, listener)
}

fn bind_controller(addr: SocketAddr) -> Result<tokio::net::TcpListener, ControllerError> {
    let bind = || {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(listener)
    };
    bind().map_err(|source| ControllerError::Bind { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(topic: &str) -> MetadataRecord {
        MetadataRecord::PartitionChanged {
            topic: topic.to_string(),
            partition: 0,
            leader: Some(2),
            isr: Some(vec![2]),
            replicas: None,
            partition_epoch: None,
        }
    }

    #[test]
    fn an_atomic_record_names_the_topic_of_the_partition_it_moves() {
        let fencing = MetadataRecord::Atomic {
            records: vec![MetadataRecord::BrokerFenced { id: 1 }, moved("orders")],
        };
        assert_eq!(changed_topic(&fencing), Some("orders"));
        assert_eq!(changed_topic(&moved("orders")), Some("orders"));
    }

    #[test]
    fn an_atomic_record_without_a_partition_change_names_no_topic() {
        let fenced_only = MetadataRecord::Atomic {
            records: vec![MetadataRecord::BrokerFenced { id: 1 }],
        };
        assert_eq!(changed_topic(&fenced_only), None);
        assert_eq!(
            changed_topic(&MetadataRecord::Atomic { records: vec![] }),
            None
        );
    }
}
