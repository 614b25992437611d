//! The replica manager: the partitions this node hosts, kept in step with
//! the metadata image by the reconciler (`replica::reconciler`).
//!
//! # Ownership
//! The manager owns the map of partitions; each `Partition` owns its log.
//! Handlers get `Arc<Partition>` clones and never hold the map's lock while
//! they work on a partition. The map's lock is held only for map edits;
//! files are opened, created and deleted outside it (see `reconcile`).
//!
//! # Invariants
//! - After [`ReplicaManager::reconcile`] with an image, exactly the
//!   replicas that image assigns to this node (its `replicas` contain this
//!   node) are open, each in the role (leader or follower) and with the
//!   epochs and log config the image gives it, except for topics reported
//!   as failed; logs of topics the image no longer has are deleted, and a
//!   replica a committed image moved off this node (a finished or
//!   cancelled reassignment) is closed and deleted, as Kafka's StopReplica
//!   with `deletePartition`. (At start, directories no replica owns are
//!   only set aside: see [`ReplicaManager::remove_orphans`].)
//! - The new replicas of a topic are installed all together or not at all:
//!   a request never sees half of a topic's creation.
//! - Nothing at start deletes a batch: directories no topic owns are
//!   deleted only when empty, else kept as strays.
//! - The partition budget counts this node's replicas plus those of
//!   changes in flight that the image does not hold yet, each once, under
//!   one lock, so two concurrent creates cannot both pass it
//!   ([`ReplicaManager::reserve`], `replica::budget_reservation`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sluice_storage::{LogDir, PartitionBudget, ProcessLimits, TopicPartition};
use tokio::sync::Notify;

use super::budget_reservation::{BudgetReservation, BudgetReservations, ReplicasInFlight};
use super::fetcher::{FetcherConfig, SourceBroker};
use super::fetcher_manager::ReplicaFetcherManager;
use super::flusher::Flusher;
use super::follower_state::REPLICA_LAG_TIME_MAX_MS_DEFAULT;
use super::following::FollowingPartition;
use super::hw_checkpoint::{self, HighWatermarks};
use super::partition::{Partition, ReplicaSet};
use super::partition_metadata;
use super::role::PartitionRole;
use crate::config::DurabilityMode;
use crate::error::BrokerError;
use crate::metadata::{BrokerId, MetadataImage, MetadataRecord, NO_LEADER, TopicImage};
use crate::server::now_ms;
use crate::settings::{TopicConfig, TopicDefaults};

/// A hosted replica and the role last applied to it.
struct Hosted {
    partition: Arc<Partition>,
    role: PartitionRole,
}

struct TopicPartitions {
    topic_id: uuid::Uuid,
    /// Shared with every produce that reads it (a clone is a count, not a
    /// copy of the table: produce looked it up per partition per request).
    config: Arc<TopicConfig>,
    /// Indexed by partition id; `None` where this node holds no replica.
    partitions: Vec<Option<Hosted>>,
}

/// Connections the default budget keeps descriptors for (Kafka's
/// `max.connections` is unbounded; Sluice's default is 10 000).
const CONNECTIONS_RESERVE_DEFAULT: u64 = 10_000;

/// Topics detached from the map whose logs are to be deleted.
type Stale = Vec<(String, TopicPartitions)>;

/// What a reconcile changes, decided under the map's lock and carried out
/// after it is released (files, fsyncs and partition locks are never
/// waited for with the map locked).
struct Plan {
    /// Topics gone from the image, or re-created under a new id.
    stale: Stale,
    /// Replicas this node no longer hosts.
    moved: Vec<Arc<Partition>>,
    /// Hosted replicas whose role or epochs changed.
    roles: Vec<(Arc<Partition>, PartitionRole)>,
    /// Hosted replicas whose topic's log settings changed.
    configs: Vec<(Arc<Partition>, sluice_storage::LogConfig)>,
    /// Replicas to open.
    opens: Vec<OpenPlan>,
}

/// This node's replicas of `topic` to open, with the config and role each
/// gets.
struct OpenPlan {
    topic: TopicImage,
    config: Arc<TopicConfig>,
    open: Vec<(i32, PartitionRole)>,
}

/// A topic whose new replicas could not be opened by a reconcile.
#[derive(Debug)]
pub struct TopicFailure {
    pub topic_id: uuid::Uuid,
    pub error: Arc<BrokerError>,
}

/// What one reconcile did.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// The image it applied.
    pub image: Arc<MetadataImage>,
    /// Topics left (partly) unopened, by name; each is retried by a later
    /// reconcile.
    pub failed: BTreeMap<String, TopicFailure>,
}

/// Logs opened by [`ReplicaManager::preopen`], waiting for the reconcile
/// that applies their change.
#[derive(Debug, Default)]
pub struct PreOpenedLogs {
    keys: Vec<(uuid::Uuid, i32)>,
    /// Directories the pre-open made (deleted again if the change fails).
    created: Vec<TopicPartition>,
}

/// [`PreOpenedLogs`] held while their change is proposed. Dropped before
/// [`PreOpened::proposed`], the logs are dropped and the directories made
/// for them deleted (the change never happened); dropped after it, a log
/// the reconcile did not take is closed and its directory kept (the next
/// reconcile opens it from disk).
pub struct PreOpened<'a> {
    manager: &'a ReplicaManager,
    logs: PreOpenedLogs,
    proposed: bool,
}

impl PreOpened<'_> {
    /// The change is in the metadata log: keep the directories.
    pub fn proposed(&mut self) {
        self.proposed = true;
    }
}

impl Drop for PreOpened<'_> {
    fn drop(&mut self) {
        let left: Vec<sluice_storage::PartitionLog> = match self.manager.preopened.lock() {
            Ok(mut map) => self
                .logs
                .keys
                .iter()
                .filter_map(|k| map.remove(k))
                .collect(),
            Err(_) => Vec::new(),
        };
        if self.proposed {
            for log in left {
                let dir = log.dir().to_path_buf();
                if let Err(e) = log.close() {
                    tracing::warn!(dir = %dir.display(), error = %e, "closing a pre-opened partition failed");
                }
            }
        } else {
            drop(left);
            self.manager
                .delete_created(std::mem::take(&mut self.logs.created));
        }
    }
}

/// How this node replicates: Kafka's `replica.*` broker settings.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    /// `replica.lag.time.max.ms`: an ISR member not caught up for this long
    /// is proposed out.
    pub lag_max_ms: i64,
    /// The replica fetchers' `replica.fetch.*` settings.
    pub fetcher: FetcherConfig,
}

impl ReplicationSettings {
    /// Kafka's defaults for node `node`.
    pub fn defaults(node: BrokerId) -> Self {
        Self {
            lag_max_ms: REPLICA_LAG_TIME_MAX_MS_DEFAULT,
            fetcher: FetcherConfig::new(node),
        }
    }
}

/// The partitions of this node.
pub struct ReplicaManager {
    /// This node's broker id: which replicas of the image are its own.
    node: BrokerId,
    log_dir: LogDir,
    durability: DurabilityMode,
    defaults: TopicDefaults,
    topics: RwLock<HashMap<String, TopicPartitions>>,
    /// Serialises reconciles. The request path never takes it, so file
    /// work done under it never stalls a produce or fetch.
    reconciling: Mutex<()>,
    /// Set when the last reconcile could not open every partition.
    incomplete: AtomicBool,
    /// Most partitions this node takes (see `sluice_storage::budget`).
    budget: PartitionBudget,
    /// Replicas of this node reserved by changes no image holds yet.
    reserved: BudgetReservations,
    /// Logs of new partitions opened before the change that adds them was
    /// proposed ([`ReplicaManager::preopen`]); `open_log` takes them.
    preopened: Mutex<HashMap<(uuid::Uuid, i32), sluice_storage::PartitionLog>>,
    flusher: Flusher,
    /// Notified whenever any partition's high watermark advances; long-poll
    /// fetches wait on it.
    data_arrived: Arc<Notify>,
    /// Bumped (and `data_arrived` notified) whenever a reconcile makes this
    /// node leader of a partition: a follower's parked fetch answers at
    /// once, so its next fetch already names the partition it now follows
    /// here (after a failover, acks=all waits for that fetch).
    leaderships_gained: AtomicU64,
    replication: ReplicationSettings,
    /// One replica fetcher per leader broker this node follows partitions
    /// of; kept in line with the image by [`ReplicaManager::sync_fetchers`].
    fetchers: ReplicaFetcherManager,
    /// The high-watermark checkpoint read at start; each entry is taken by
    /// the first open of its partition (`replica::hw_checkpoint`).
    checkpointed: Mutex<HighWatermarks>,
    /// When the checkpoint was last written (ms since the epoch).
    checkpoint_written_ms: AtomicI64,
}

impl ReplicaManager {
    pub fn new(
        node: BrokerId,
        log_dir: LogDir,
        durability: DurabilityMode,
        defaults: TopicDefaults,
    ) -> Self {
        Self {
            node,
            durability,
            defaults,
            topics: RwLock::new(HashMap::new()),
            reconciling: Mutex::new(()),
            incomplete: AtomicBool::new(false),
            budget: PartitionBudget::from_limits(
                ProcessLimits::current(),
                CONNECTIONS_RESERVE_DEFAULT,
            ),
            reserved: BudgetReservations::default(),
            preopened: Mutex::new(HashMap::new()),
            flusher: Flusher::start(),
            data_arrived: Arc::new(Notify::new()),
            leaderships_gained: AtomicU64::new(0),
            replication: ReplicationSettings::defaults(node),
            fetchers: ReplicaFetcherManager::new(FetcherConfig::new(node)),
            checkpointed: Mutex::new(hw_checkpoint::load(log_dir.path())),
            checkpoint_written_ms: AtomicI64::new(0),
            log_dir,
        }
    }

    /// Replaces the replication settings (the broker's `replica.*` keys).
    pub fn with_replication(mut self, replication: ReplicationSettings) -> Self {
        self.fetchers = ReplicaFetcherManager::new(replication.fetcher.clone());
        self.replication = replication;
        self
    }

    pub fn replication(&self) -> &ReplicationSettings {
        &self.replication
    }

    /// The replica fetchers (tests and metrics read what they follow).
    pub fn fetchers(&self) -> &ReplicaFetcherManager {
        &self.fetchers
    }

    /// Replaces the partition budget (the broker computes it with its
    /// `max.connections`).
    pub fn with_partition_budget(mut self, budget: PartitionBudget) -> Self {
        self.budget = budget;
        self
    }

    pub fn partition_budget(&self) -> &PartitionBudget {
        &self.budget
    }

    /// The budget of open inactive segments shared by this node's logs.
    pub fn file_budget(&self) -> &sluice_storage::FileBudget {
        self.log_dir.file_budget()
    }

    /// What the reclaimer of removed segments and partitions has done.
    pub fn reclaim_stats(&self) -> sluice_storage::ReclaimStats {
        self.log_dir.reclaimer().stats()
    }

    /// The node whose replicas this manager hosts.
    pub fn node(&self) -> BrokerId {
        self.node
    }

    /// How many replicas `image` assigns to this node.
    pub fn assigned_replicas(&self, image: &MetadataImage) -> u64 {
        image
            .topics()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.replicas.contains(&self.node))
            .count() as u64
    }

    /// Reserves the replicas `change` adds to this node, or
    /// POLICY_VIOLATION when this node's replicas in `image`, plus those
    /// of changes in flight that `image` does not hold yet, plus `change`
    /// would pass the budget. Held until the change is applied, so two
    /// concurrent creates cannot both pass the check; counted by the image
    /// alone once the image holds it (`replica::budget_reservation`).
    pub fn reserve(
        &self,
        image: &MetadataImage,
        change: ReplicasInFlight,
    ) -> Result<BudgetReservation<'_>, BrokerError> {
        self.reserved
            .reserve(&self.budget, image, self.assigned_replicas(image), change)
    }

    /// POLICY_VIOLATION when the replicas `record` adds to this node would
    /// take it past its budget (validate-only requests; a real change
    /// holds a [`ReplicaManager::reserve`]).
    pub fn check_partition_budget(
        &self,
        image: &MetadataImage,
        record: &MetadataRecord,
    ) -> Result<(), BrokerError> {
        match ReplicasInFlight::of(record, self.node) {
            Some(change) => self.reserve(image, change).map(drop),
            None => Ok(()),
        }
    }

    pub fn durability(&self) -> DurabilityMode {
        self.durability
    }

    pub fn flusher(&self) -> &Flusher {
        &self.flusher
    }

    pub fn data_arrived(&self) -> &Arc<Notify> {
        &self.data_arrived
    }

    /// How many reconciles made this node leader of a partition (see the
    /// field); a parked follower fetch answers when it moves.
    pub fn leaderships_gained(&self) -> u64 {
        self.leaderships_gained.load(Ordering::Acquire)
    }

    pub fn defaults(&self) -> &TopicDefaults {
        &self.defaults
    }

    /// The partition, if this node hosts a replica of it.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let topics = self.topics.read().ok()?;
        let idx = usize::try_from(index).ok()?;
        topics
            .get(topic)?
            .partitions
            .get(idx)?
            .as_ref()
            .map(|h| Arc::clone(&h.partition))
    }

    /// The partition, or UNKNOWN_TOPIC_OR_PARTITION (Kafka's
    /// `getPartitionOrError`).
    pub fn partition_or_error(
        &self,
        topic: &str,
        index: i32,
    ) -> Result<Arc<Partition>, BrokerError> {
        self.partition(topic, index)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
                topic: topic.to_string(),
                partition: index,
            })
    }

    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .map(|t| {
                t.values()
                    .flat_map(|tp| tp.partitions.iter().flatten())
                    .map(|h| Arc::clone(&h.partition))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The effective config of a hosted topic.
    pub fn topic_config(&self, topic: &str) -> Option<Arc<TopicConfig>> {
        self.topics
            .read()
            .ok()?
            .get(topic)
            .map(|t| Arc::clone(&t.config))
    }

    /// Opens, reconfigures, re-roles, sets aside and deletes partition
    /// logs so the node hosts exactly its replicas of the image `current`
    /// returns, each in the role that image gives it. Blocking (opens
    /// files): call it off the reactor.
    ///
    /// Reconciles are serialised by their own lock, and `current` is called
    /// under it, so of two racing reconciles the later one always applies
    /// the newer image. The map's lock is held only to edit the map: every
    /// file is created, mapped or deleted outside it, so creating or
    /// deleting thousands of partitions never stalls a produce or a fetch
    /// of another partition.
    ///
    /// A topic whose new replicas cannot all be opened (a resource limit,
    /// a full disk) keeps none of them, and nothing of it that this call
    /// created is left on disk; every other topic is still brought in
    /// line. Such topics are in the report, and
    /// [`ReplicaManager::is_incomplete`] says a later reconcile should try
    /// again. `Err` only for a broken lock.
    pub fn reconcile(
        &self,
        current: impl FnOnce() -> Arc<MetadataImage>,
    ) -> Result<ReconcileReport, BrokerError> {
        let _serial = self
            .reconciling
            .lock()
            .map_err(|_| BrokerError::StatePoisoned)?;
        let image = current();
        let Plan {
            stale,
            moved,
            roles,
            configs,
            opens: plans,
        } = self.plan(&image)?;
        let gains_leadership = roles.iter().any(|(_, role)| role.is_leader())
            || plans
                .iter()
                .any(|plan| plan.open.iter().any(|(_, role)| role.is_leader()));
        for (name, tp) in stale {
            self.delete_topic_logs(&name, tp);
        }
        for p in moved {
            self.delete_moved_replica(&p);
        }
        // Outside the map's lock: a partition's lock may be held across a
        // checkpoint's fsyncs, and every produce and fetch reads the map.
        for (p, log_config) in configs {
            // One partition refusing a config must not stop the others
            // from being reconciled.
            if let Err(e) = p.set_log_config(log_config) {
                tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "config change not applied to the log");
            }
        }
        let now = now_ms();
        for (p, role) in roles {
            let Some(assigned) = image.partition(p.topic(), p.index()) else {
                continue;
            };
            let set = ReplicaSet::of(self.node, assigned, self.replication.lag_max_ms, now);
            if let Err(e) = p.apply_role(role, &set) {
                tracing::warn!(topic = %p.topic(), partition = p.index(), error = %e, "role change not applied");
            }
        }
        let mut failed = BTreeMap::new();
        for plan in plans {
            match self.open_partitions(&plan) {
                Ok(opened) => self.install(plan, opened)?,
                Err(e) => {
                    tracing::error!(topic = %plan.topic.name, error = %e, "partitions could not be opened; the topic is not served here until a later reconcile opens them");
                    failed.insert(
                        plan.topic.name.clone(),
                        TopicFailure {
                            topic_id: plan.topic.topic_id,
                            error: Arc::new(e),
                        },
                    );
                }
            }
        }
        self.incomplete.store(!failed.is_empty(), Ordering::Release);
        self.sync_fetchers(&image);
        if gains_leadership {
            self.leaderships_gained.fetch_add(1, Ordering::AcqRel);
            self.data_arrived.notify_waiters();
        }
        Ok(ReconcileReport { image, failed })
    }

    /// Follows every hosted follower partition from its leader's broker and
    /// stops following the rest (leaders, leaderless, gone). A partition
    /// already followed at the same leader epoch keeps its fetch state.
    /// Writes need no ordering with the roles applied before: a fetcher
    /// still assigned to a partition that now leads is refused by its role
    /// check, under the partition's lock.
    fn sync_fetchers(&self, image: &MetadataImage) {
        let hosted: Vec<Arc<Partition>> = self.all_partitions();
        let mut wanted = std::collections::HashSet::with_capacity(hosted.len());
        for p in hosted {
            let tp = (Arc::clone(p.topic()), p.index());
            let Ok(role) = p.role() else { continue };
            let source = match role.role {
                super::Role::Follower { leader } if leader != NO_LEADER && leader != self.node => {
                    image.broker(leader).and_then(|b| {
                        b.client_endpoint().map(|e| SourceBroker {
                            node_id: leader,
                            address: format!("{}:{}", e.host, e.port),
                        })
                    })
                }
                _ => None,
            };
            let Some(source) = source else { continue };
            wanted.insert(tp.clone());
            let flusher = self.flusher.clone();
            let followed = Arc::clone(&p);
            self.fetchers
                .follow_if_changed(tp, source, role.leader_epoch.0, &p, move || {
                    Arc::new(FollowingPartition::new(followed, flusher))
                });
        }
        for tp in self.fetchers.followed_partitions() {
            if !wanted.contains(&tp) {
                self.fetchers.unfollow(&tp);
            }
        }
    }

    /// Whether the last reconcile left partitions of the image unopened.
    pub fn is_incomplete(&self) -> bool {
        self.incomplete.load(Ordering::Acquire)
    }

    /// Under the map's write lock, map edits only: detaches topics gone
    /// from `image` and replicas moved off this node, and lists the config
    /// changes, role changes and replicas to open; the caller carries all
    /// of it out after the lock is released ([`Plan`]).
    fn plan(&self, image: &MetadataImage) -> Result<Plan, BrokerError> {
        let mut topics = self
            .topics
            .write()
            .map_err(|_| BrokerError::StatePoisoned)?;
        // Topics gone from the image, or re-created under a new id.
        let stale_names: Vec<String> = topics
            .iter()
            .filter(|(name, tp)| image.topic(name).is_none_or(|t| t.topic_id != tp.topic_id))
            .map(|(name, _)| name.clone())
            .collect();
        let stale = stale_names
            .into_iter()
            .filter_map(|name| topics.remove(&name).map(|tp| (name, tp)))
            .collect();
        let mut moved = Vec::new();
        let mut roles = Vec::new();
        let mut configs = Vec::new();
        let mut plans = Vec::new();
        for topic in image.topics() {
            let config = Arc::new(TopicConfig::resolve(&topic.configs, &self.defaults));
            let mut open = Vec::new();
            let entry = topics.get_mut(&topic.name);
            if let Some(entry) = &entry {
                let log_config = config.log_config();
                if entry.config.log_config() != log_config {
                    configs.extend(
                        entry
                            .partitions
                            .iter()
                            .flatten()
                            .map(|h| (Arc::clone(&h.partition), log_config.clone())),
                    );
                }
            }
            let mut entry = entry;
            for (index, p) in topic.partitions.iter().enumerate() {
                let assigned = p.replicas.contains(&self.node);
                let slot = entry
                    .as_deref_mut()
                    .and_then(|e| e.partitions.get_mut(index));
                match (assigned, slot) {
                    (true, Some(Some(h))) => {
                        let role = PartitionRole::from_image(self.node, p);
                        if role != h.role {
                            h.role = role;
                            roles.push((Arc::clone(&h.partition), role));
                        }
                    }
                    (true, _) => open.push((
                        i32::try_from(index).unwrap_or(i32::MAX),
                        PartitionRole::from_image(self.node, p),
                    )),
                    (false, Some(slot)) => {
                        if let Some(h) = slot.take() {
                            moved.push(h.partition);
                        }
                    }
                    (false, None) => {}
                }
            }
            if let Some(entry) = entry {
                entry.config = Arc::clone(&config);
            }
            if !open.is_empty() {
                plans.push(OpenPlan {
                    topic: topic.clone(),
                    config,
                    open,
                });
            }
        }
        Ok(Plan {
            stale,
            moved,
            roles,
            configs,
            opens: plans,
        })
    }

    /// Opens the replicas of `plan`, outside every lock. All or none: on a
    /// failure the ones opened are dropped and the directories this call
    /// created are deleted again (a directory that existed before holds
    /// data and is kept).
    fn open_partitions(
        &self,
        plan: &OpenPlan,
    ) -> Result<Vec<(Arc<Partition>, PartitionRole)>, BrokerError> {
        let name: Arc<str> = Arc::from(plan.topic.name.as_str());
        let log_config = plan.config.log_config();
        let indexes: Vec<(i32, PartitionRole)> = plan.open.clone();
        // Opening a partition is mostly waiting for fsyncs, which the file
        // system commits together: side by side, on storage's bounded pool,
        // 10 000 partitions open in seconds instead of minutes.
        let logs = sluice_storage::parallel::map(indexes, |(index, role)| {
            let mut created = Vec::new();
            let log = self.open_log(&plan.topic, index, log_config.clone(), &mut created);
            (index, role, log, created)
        });
        let mut opened = Vec::with_capacity(logs.len());
        let mut created = Vec::new();
        let mut first_failure = None;
        for (index, role, log, made) in logs {
            created.extend(made);
            let replicated = plan
                .topic
                .partition(index)
                .is_some_and(|assigned| assigned.replicas.len() > 1);
            let partition = log.and_then(|log| {
                let start_high_watermark = replicated.then(|| {
                    self.checkpointed
                        .lock()
                        .ok()
                        .and_then(|mut c| c.remove(&(name.to_string(), index)))
                        .unwrap_or(log.log_start_offset().0)
                });
                Partition::new(
                    Arc::clone(&name),
                    index,
                    log,
                    self.durability,
                    Arc::clone(&self.data_arrived),
                    role,
                    start_high_watermark,
                )
            });
            // The replica set before the partition is installed, so no
            // append is acknowledged before its followers count.
            let partition = partition.and_then(|p| {
                let assigned = plan
                    .topic
                    .partition(index)
                    .ok_or(BrokerError::StatePoisoned)?;
                let set =
                    ReplicaSet::of(self.node, assigned, self.replication.lag_max_ms, now_ms());
                p.apply_role(role, &set)?;
                Ok(p)
            });
            match partition {
                Ok(p) => opened.push((Arc::new(p), role)),
                Err(e) => {
                    first_failure.get_or_insert(e);
                }
            }
        }
        let Some(e) = first_failure else {
            return Ok(opened);
        };
        drop(opened);
        self.delete_created(created);
        Err(e)
    }

    /// Under the map's write lock, adds replicas opened by
    /// [`ReplicaManager::open_partitions`]. Reconciles are serialised, so
    /// the map still looks as `plan` saw it.
    fn install(
        &self,
        plan: OpenPlan,
        opened: Vec<(Arc<Partition>, PartitionRole)>,
    ) -> Result<(), BrokerError> {
        let mut topics = self
            .topics
            .write()
            .map_err(|_| BrokerError::StatePoisoned)?;
        let count = plan.topic.partitions.len();
        let entry = topics
            .entry(plan.topic.name.clone())
            .or_insert_with(|| TopicPartitions {
                topic_id: plan.topic.topic_id,
                config: plan.config,
                partitions: Vec::new(),
            });
        if entry.partitions.len() < count {
            entry.partitions.resize_with(count, || None);
        }
        for (partition, role) in opened {
            let slot = usize::try_from(partition.index())
                .ok()
                .and_then(|i| entry.partitions.get_mut(i));
            if let Some(slot) = slot {
                debug_assert!(slot.is_none(), "reconciles overlapped");
                *slot = Some(Hosted { partition, role });
            }
        }
        Ok(())
    }

    /// Opens one partition's log. A directory left behind by another topic
    /// of the same name (its `partition.metadata` names a different topic
    /// id, or it has none) is set aside first (see
    /// [`ReplicaManager::set_aside`]). A directory this call makes is
    /// added to `created`.
    fn open_log(
        &self,
        topic: &TopicImage,
        index: i32,
        config: sluice_storage::LogConfig,
        created: &mut Vec<TopicPartition>,
    ) -> Result<sluice_storage::PartitionLog, BrokerError> {
        if let Some(log) = self.take_preopened(topic.topic_id, index) {
            return Ok(log);
        }
        let tp = TopicPartition {
            topic: topic.name.clone(),
            partition: index,
        };
        let storage_err = |source| BrokerError::Storage {
            topic: topic.name.clone(),
            partition: index,
            source,
        };
        let dir = self.log_dir.path().join(tp.dir_name());
        if dir.exists() && partition_metadata::read_topic_id(&dir) != Some(topic.topic_id) {
            self.set_aside(&tp).map_err(storage_err)?;
        }
        if !dir.exists() {
            created.push(tp.clone());
            partition_metadata::write_topic_id(&dir, topic.topic_id).map_err(|e| {
                storage_err(sluice_storage::Error::io(
                    "write",
                    dir.join(partition_metadata::FILE_NAME),
                    e,
                ))
            })?;
        }
        self.log_dir
            .open_partition(&tp, config)
            .map_err(storage_err)
    }

    /// Opens this node's replicas among `added` (new partitions of the
    /// existing topic `name`) before the change that adds them is
    /// proposed, so that a partition that cannot be created here fails the
    /// request while the partition count is still unchanged (CreatePartitions
    /// is all or nothing, as CreateTopics is). All or none: on a failure
    /// the logs opened are dropped and the directories made are deleted
    /// again. The opened logs wait in this manager until the reconcile that
    /// applies the change takes them; hand the result to
    /// [`ReplicaManager::guard_preopened`] at once. Blocking (opens files).
    pub fn preopen(
        &self,
        image: &MetadataImage,
        name: &str,
        added: &[crate::metadata::PartitionRecord],
    ) -> Result<PreOpenedLogs, BrokerError> {
        let topic = image
            .topic(name)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
                topic: name.to_string(),
                partition: -1,
            })?;
        let config = TopicConfig::resolve(&topic.configs, &self.defaults).log_config();
        let mine: Vec<i32> = added
            .iter()
            .filter(|p| p.replicas.contains(&self.node))
            .map(|p| p.partition)
            .collect();
        let opened = sluice_storage::parallel::map(mine, |index| {
            let mut created = Vec::new();
            let log = self.open_log(topic, index, config.clone(), &mut created);
            (index, log, created)
        });
        let mut logs = Vec::with_capacity(opened.len());
        let mut created = Vec::new();
        let mut first_failure = None;
        for (index, log, made) in opened {
            created.extend(made);
            match log {
                Ok(log) => logs.push((index, log)),
                Err(e) => {
                    first_failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_failure {
            drop(logs);
            self.delete_created(created);
            return Err(e);
        }
        let mut map = self
            .preopened
            .lock()
            .map_err(|_| BrokerError::StatePoisoned)?;
        let keys = logs
            .into_iter()
            .map(|(index, log)| {
                map.insert((topic.topic_id, index), log);
                (topic.topic_id, index)
            })
            .collect();
        Ok(PreOpenedLogs { keys, created })
    }

    /// Ties logs from [`ReplicaManager::preopen`] to a guard: dropped
    /// without [`PreOpened::proposed`], it deletes them again.
    pub fn guard_preopened(&self, logs: PreOpenedLogs) -> PreOpened<'_> {
        PreOpened {
            manager: self,
            logs,
            proposed: false,
        }
    }

    fn take_preopened(
        &self,
        topic_id: uuid::Uuid,
        index: i32,
    ) -> Option<sluice_storage::PartitionLog> {
        self.preopened.lock().ok()?.remove(&(topic_id, index))
    }

    /// Deletes partition directories a failed creation made.
    fn delete_created(&self, created: Vec<TopicPartition>) {
        for tp in created {
            if let Err(e) = self.log_dir.delete_partition(&tp) {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "could not delete a partition of a failed creation; it is removed at the next start");
            }
        }
    }

    /// Sets aside partition directories of replicas the image does not
    /// assign to this node (a topic deleted while the broker was down, a
    /// creation cut short by a crash or a failure, a replica moved away).
    /// Call once at start, after the first reconcile.
    ///
    /// Never deletes a record: a directory holding batches is renamed
    /// `<topic>-<partition>.<topic id>-stray` and kept for the operator, as
    /// Kafka does with stray logs (KAFKA-14616), because a metadata log
    /// that lost its tail must not take acknowledged data with it. Only a
    /// directory without a batch in it is deleted.
    pub fn remove_orphans(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let on_disk = self
            .log_dir
            .partitions()
            .map_err(|source| BrokerError::Storage {
                topic: String::new(),
                partition: -1,
                source,
            })?;
        for tp in on_disk {
            let known = image
                .partition(&tp.topic, tp.partition)
                .is_some_and(|p| p.replicas.contains(&self.node));
            if !known && let Err(e) = self.set_aside(&tp) {
                tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "could not set aside a partition directory no topic owns");
            }
        }
        Ok(())
    }

    /// Deletes the directory of `tp` if it holds no batch; otherwise
    /// renames it out of the way as a stray (see
    /// [`ReplicaManager::remove_orphans`]).
    fn set_aside(&self, tp: &TopicPartition) -> Result<(), sluice_storage::Error> {
        let dir = self.log_dir.path().join(tp.dir_name());
        if !self.log_dir.holds_batches(tp)? {
            tracing::info!(dir = %dir.display(), "deleting a partition directory that holds no batch and no topic owns");
            return self.log_dir.delete_partition(tp);
        }
        let id = partition_metadata::read_topic_id(&dir).unwrap_or_else(uuid::Uuid::new_v4);
        let stray = self.log_dir.mark_stray(tp, &id.simple().to_string())?;
        tracing::warn!(dir = %dir.display(), stray = %stray.display(), "a partition directory with data belongs to no topic of the metadata; kept as a stray for the operator to inspect or delete");
        Ok(())
    }

    /// Closes a replica a committed image moved off this node (a
    /// reassignment switched to a target without it) and deletes its copy:
    /// the target replicas hold every acknowledged record. A failure is
    /// logged; the directory is then set aside at the next start.
    fn delete_moved_replica(&self, p: &Partition) {
        if let Err(e) = p.close() {
            tracing::warn!(topic = %p.topic(), partition = p.index(), error = %e, "closing a replica moved off this node failed");
        }
        let tp = TopicPartition {
            topic: p.topic().to_string(),
            partition: p.index(),
        };
        match self.log_dir.delete_partition(&tp) {
            Ok(()) => {
                tracing::info!(topic = %tp.topic, partition = tp.partition, "replica moved off this node; its copy is deleted")
            }
            Err(e) => {
                tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "could not delete a replica moved off this node; it is set aside at the next start")
            }
        }
    }

    /// Closes and deletes the logs of a topic gone from the image. A
    /// failure is logged: the directory is set aside at the next start.
    fn delete_topic_logs(&self, name: &str, tp: TopicPartitions) {
        for p in tp.partitions.into_iter().flatten().map(|h| h.partition) {
            let index = p.index();
            // Stop appends and drop the mapping before the directory goes.
            if let Err(e) = p.close() {
                tracing::warn!(topic = name, partition = index, error = %e, "closing a deleted partition failed");
            }
            let tp = TopicPartition {
                topic: name.to_string(),
                partition: index,
            };
            if let Err(e) = self.log_dir.delete_partition(&tp) {
                tracing::error!(topic = name, partition = index, error = %e, "deleting a partition failed; it is set aside at the next start");
            }
        }
    }

    /// Flushes and closes every log; each writes its clean-shutdown marker.
    /// Side by side on storage's bounded pool: closing is mostly fsyncs.
    pub fn shutdown(&self) {
        // No fetcher appends to a log being closed.
        self.fetchers.shutdown();
        let closed = sluice_storage::parallel::map(self.all_partitions(), |p| {
            let r = p.close();
            (p, r)
        });
        for (p, r) in &closed {
            if let Err(e) = r {
                tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "close failed");
            }
        }
        // The last high watermarks, once nothing moves them any more.
        self.store_high_watermarks(closed.iter().map(|(p, _)| p));
    }

    /// Writes the high-watermark checkpoint when [`hw_checkpoint::CHECKPOINT_INTERVAL`]
    /// has passed since the last (the maintenance pass calls it).
    pub fn maybe_checkpoint_high_watermarks(&self, now_ms: i64) {
        let every = i64::try_from(hw_checkpoint::CHECKPOINT_INTERVAL.as_millis()).unwrap_or(5_000);
        let last = self.checkpoint_written_ms.load(Ordering::Acquire);
        if now_ms - last < every {
            return;
        }
        self.checkpoint_written_ms.store(now_ms, Ordering::Release);
        let partitions = self.all_partitions();
        self.store_high_watermarks(partitions.iter());
    }

    /// Writes the checkpoint straight from the partitions (no owned copy
    /// of every topic name each 5 s).
    fn store_high_watermarks<'a>(
        &self,
        partitions: impl ExactSizeIterator<Item = &'a Arc<Partition>>,
    ) {
        let entries = partitions.map(|p| (&**p.topic(), p.index(), p.progress().high_watermark));
        if let Err(e) = hw_checkpoint::store(self.log_dir.path(), entries) {
            tracing::warn!(error = %e, "high-watermark checkpoint not written");
        }
    }
}
