//! The replica manager: the partitions this node hosts, kept in step with
//! the metadata image.
//!
//! # Ownership
//! The manager owns the map of partitions; each `Partition` owns its log.
//! Handlers get `Arc<Partition>` clones and never hold the map's lock while
//! they work on a partition. The map's lock is held only for map edits;
//! files are opened, created and deleted outside it (see `reconcile`).
//!
//! # Invariants
//! - After [`ReplicaManager::reconcile`] with an image, exactly the
//!   partitions of that image's topics are open, each with the log config
//!   the image gives it, except for topics it reported it could not open;
//!   logs of topics the image no longer has are deleted.
//! - A topic is in the map with all the partitions a reconcile opened for
//!   it, or not at all: a request never sees half of a topic's creation.
//! - Nothing at start deletes a batch: directories no topic owns are
//!   deleted only when empty, else kept as strays.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sluice_storage::{LogDir, PartitionBudget, ProcessLimits, TopicPartition};
use tokio::sync::Notify;

use super::flusher::Flusher;
use super::partition::Partition;
use super::partition_metadata;
use crate::config::DurabilityMode;
use crate::error::BrokerError;
use crate::metadata::{MetadataImage, TopicImage};
use crate::settings::{TopicConfig, TopicDefaults};

struct TopicPartitions {
    topic_id: uuid::Uuid,
    config: TopicConfig,
    partitions: Vec<Arc<Partition>>,
}

/// Connections the default budget keeps descriptors for (Kafka's
/// `max.connections` is unbounded; Sluice's default is 10 000).
const CONNECTIONS_RESERVE_DEFAULT: u64 = 10_000;

/// Topics detached from the map whose logs are to be deleted.
type Stale = Vec<(String, TopicPartitions)>;

/// Partitions `from..to` of `topic` to open, with the config they get.
struct OpenPlan {
    topic: TopicImage,
    config: TopicConfig,
    from: usize,
    to: usize,
}

/// The partitions of this node.
pub struct ReplicaManager {
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
    flusher: Flusher,
    /// Notified whenever any partition's high watermark advances; long-poll
    /// fetches wait on it.
    data_arrived: Arc<Notify>,
}

impl ReplicaManager {
    pub fn new(log_dir: LogDir, durability: DurabilityMode, defaults: TopicDefaults) -> Self {
        Self {
            log_dir,
            durability,
            defaults,
            topics: RwLock::new(HashMap::new()),
            reconciling: Mutex::new(()),
            incomplete: AtomicBool::new(false),
            budget: PartitionBudget::from_limits(
                ProcessLimits::current(),
                CONNECTIONS_RESERVE_DEFAULT,
            ),
            flusher: Flusher::start(),
            data_arrived: Arc::new(Notify::new()),
        }
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

    /// POLICY_VIOLATION when `adding` more partitions would take the
    /// node's total (every partition of `image`) past its budget. Called by
    /// CreateTopics and CreatePartitions before anything is written.
    pub fn check_partition_budget(
        &self,
        image: &MetadataImage,
        adding: i32,
    ) -> Result<(), BrokerError> {
        let hosted: u64 = image
            .topics()
            .map(|t| u64::try_from(t.partitions.len()).unwrap_or(u64::MAX))
            .sum();
        self.budget
            .check(hosted, u64::try_from(adding).unwrap_or(0))
            .map_err(BrokerError::PolicyViolation)
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

    pub fn defaults(&self) -> &TopicDefaults {
        &self.defaults
    }

    /// The partition, if this node hosts it.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let topics = self.topics.read().ok()?;
        let idx = usize::try_from(index).ok()?;
        topics.get(topic)?.partitions.get(idx).cloned()
    }

    /// The partition, or UNKNOWN_TOPIC_OR_PARTITION (Kafka's
    /// `getPartitionOrError`): the one lookup every partition-level
    /// handler starts with.
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

    /// How many partitions of `topic` this node serves (0 when none).
    pub fn hosted_partitions(&self, topic: &str) -> usize {
        self.topics
            .read()
            .ok()
            .and_then(|t| t.get(topic).map(|tp| tp.partitions.len()))
            .unwrap_or(0)
    }

    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .map(|t| {
                t.values()
                    .flat_map(|tp| tp.partitions.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The effective config of a hosted topic.
    pub fn topic_config(&self, topic: &str) -> Option<TopicConfig> {
        self.topics
            .read()
            .ok()?
            .get(topic)
            .map(|t| t.config.clone())
    }

    /// Opens, reconfigures and deletes partition logs so the node hosts
    /// exactly the partitions of the image `current` returns. Blocking
    /// (opens files): call it off the reactor.
    ///
    /// Reconciles are serialised by their own lock, and `current` is called
    /// under it, so of two racing reconciles the later one always applies
    /// the newer image. The map's lock is held only to edit the map: every
    /// file is created, mapped or deleted outside it, so creating or
    /// deleting thousands of partitions never stalls a produce or a fetch
    /// of another partition.
    ///
    /// A topic whose partitions cannot all be opened (a resource limit, a
    /// full disk) is left out, and nothing of it that this call created is
    /// left on disk; every other topic is still brought in line. The first
    /// such failure is returned, and [`ReplicaManager::is_incomplete`] says
    /// a later reconcile should try again.
    pub fn reconcile(
        &self,
        current: impl FnOnce() -> Arc<MetadataImage>,
    ) -> Result<(), BrokerError> {
        let _serial = self
            .reconciling
            .lock()
            .map_err(|_| BrokerError::StatePoisoned)?;
        let image = current();
        let (stale, plans) = self.plan(&image)?;
        for (name, tp) in stale {
            self.delete_topic_logs(&name, tp);
        }
        let mut first_failure = None;
        for plan in plans {
            match self.open_partitions(&plan) {
                Ok(opened) => self.install(plan, opened)?,
                Err(e) => {
                    tracing::error!(topic = %plan.topic.name, error = %e, "partitions could not be opened; the topic is not served until a later reconcile opens them");
                    first_failure.get_or_insert(e);
                }
            }
        }
        self.incomplete
            .store(first_failure.is_some(), Ordering::Release);
        first_failure.map_or(Ok(()), Err)
    }

    /// Whether the last reconcile left partitions of the image unopened.
    pub fn is_incomplete(&self) -> bool {
        self.incomplete.load(Ordering::Acquire)
    }

    /// Under the map's write lock, map edits only: detaches topics gone
    /// from `image` (their files are deleted by the caller, outside the
    /// lock), applies config changes, and lists the partitions to open.
    fn plan(&self, image: &MetadataImage) -> Result<(Stale, Vec<OpenPlan>), BrokerError> {
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
        let mut plans = Vec::new();
        for topic in image.topics() {
            let config = TopicConfig::resolve(&topic.configs, &self.defaults);
            let wanted = topic.partitions.len();
            let hosted = match topics.get_mut(&topic.name) {
                Some(entry) => {
                    let log_config = config.log_config();
                    if entry.config.log_config() != log_config {
                        for p in &entry.partitions {
                            // One partition refusing a config must not
                            // stop the others from being reconciled.
                            if let Err(e) = p.set_log_config(log_config.clone()) {
                                tracing::error!(topic = %topic.name, partition = p.index(), error = %e, "config change not applied to the log");
                            }
                        }
                    }
                    entry.config = config.clone();
                    entry.partitions.len()
                }
                None => 0,
            };
            if wanted > hosted {
                plans.push(OpenPlan {
                    topic: topic.clone(),
                    config,
                    from: hosted,
                    to: wanted,
                });
            }
        }
        Ok((stale, plans))
    }

    /// Opens partitions `plan.from..plan.to`, outside every lock. All or
    /// none: on a failure the ones opened are dropped and the directories
    /// this call created are deleted again (a directory that existed
    /// before holds data and is kept).
    fn open_partitions(&self, plan: &OpenPlan) -> Result<Vec<Arc<Partition>>, BrokerError> {
        let name: Arc<str> = Arc::from(plan.topic.name.as_str());
        let log_config = plan.config.log_config();
        let indexes: Vec<i32> = (plan.from..plan.to)
            .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
            .collect();
        // Opening a partition is mostly waiting for fsyncs, which the file
        // system commits together: side by side, on storage's bounded pool,
        // 10 000 partitions open in seconds instead of minutes.
        let logs = sluice_storage::parallel::map(indexes, |index| {
            let mut created = Vec::new();
            let log = self.open_log(&plan.topic, index, log_config.clone(), &mut created);
            (index, log, created)
        });
        let mut opened = Vec::with_capacity(logs.len());
        let mut created = Vec::new();
        let mut first_failure = None;
        for (index, log, made) in logs {
            created.extend(made);
            let partition = log.and_then(|log| {
                Partition::new(
                    Arc::clone(&name),
                    index,
                    log,
                    self.durability,
                    Arc::clone(&self.data_arrived),
                )
            });
            match partition {
                Ok(p) => opened.push(Arc::new(p)),
                Err(e) => {
                    first_failure.get_or_insert(e);
                }
            }
        }
        let Some(e) = first_failure else {
            return Ok(opened);
        };
        drop(opened);
        for tp in created {
            if let Err(e) = self.log_dir.delete_partition(&tp) {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "could not delete a partition of a failed creation; it is removed at the next start");
            }
        }
        Err(e)
    }

    /// Under the map's write lock, adds partitions opened by
    /// [`ReplicaManager::open_partitions`]. Reconciles are serialised, so
    /// the map still looks as `plan` saw it.
    fn install(&self, plan: OpenPlan, opened: Vec<Arc<Partition>>) -> Result<(), BrokerError> {
        let mut topics = self
            .topics
            .write()
            .map_err(|_| BrokerError::StatePoisoned)?;
        let entry = topics
            .entry(plan.topic.name.clone())
            .or_insert_with(|| TopicPartitions {
                topic_id: plan.topic.topic_id,
                config: plan.config,
                partitions: Vec::new(),
            });
        debug_assert_eq!(entry.partitions.len(), plan.from, "reconciles overlapped");
        entry.partitions.extend(opened);
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

    /// Sets aside partition directories the image does not name (a topic
    /// deleted while the broker was down, a creation cut short by a crash
    /// or a failure). Call once at start, after the first reconcile.
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
                .topic(&tp.topic)
                .is_some_and(|t| t.partition(tp.partition).is_some());
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

    /// Closes and deletes the logs of a topic gone from the image. A
    /// failure is logged: the directory is set aside at the next start.
    fn delete_topic_logs(&self, name: &str, tp: TopicPartitions) {
        for p in tp.partitions {
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
        let closed = sluice_storage::parallel::map(self.all_partitions(), |p| {
            let r = p.close();
            (p, r)
        });
        for (p, r) in closed {
            if let Err(e) = r {
                tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "close failed");
            }
        }
    }
}
