//! The replica manager: the partitions this node hosts, kept in step with
//! the metadata image.
//!
//! # Ownership
//! The manager owns the map of partitions; each `Partition` owns its log.
//! Handlers get `Arc<Partition>` clones and never hold the map's lock while
//! they work on a partition.
//!
//! # Invariants
//! - After [`ReplicaManager::reconcile`] with an image, exactly the
//!   partitions of that image's topics are open, each with the log config
//!   the image gives it; logs of topics the image no longer has are deleted.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sluice_storage::{LogDir, TopicPartition};
use tokio::sync::Notify;

use super::flusher::Flusher;
use super::partition::Partition;
use super::partition_metadata;
use crate::config::DurabilityMode;
use crate::error::BrokerError;
use crate::metadata::topic_config::{TopicConfig, TopicDefaults};
use crate::metadata::{MetadataImage, TopicImage};

struct TopicPartitions {
    topic_id: uuid::Uuid,
    config: TopicConfig,
    partitions: Vec<Arc<Partition>>,
}

/// The partitions of this node.
pub struct ReplicaManager {
    log_dir: LogDir,
    durability: DurabilityMode,
    defaults: TopicDefaults,
    topics: RwLock<HashMap<String, TopicPartitions>>,
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
            flusher: Flusher::start(),
            data_arrived: Arc::new(Notify::new()),
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
    /// `current` is called under the map's write lock, so of two racing
    /// reconciles the later one always applies the newer image.
    pub fn reconcile(
        &self,
        current: impl FnOnce() -> Arc<MetadataImage>,
    ) -> Result<(), BrokerError> {
        let mut topics = self
            .topics
            .write()
            .map_err(|_| BrokerError::StatePoisoned)?;
        let image = current();
        // Topics gone from the image, or re-created under a new id.
        let stale: Vec<String> = topics
            .iter()
            .filter(|(name, tp)| image.topic(name).is_none_or(|t| t.topic_id != tp.topic_id))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(tp) = topics.remove(&name) {
                self.delete_topic_logs(&name, tp)?;
            }
        }
        for topic in image.topics() {
            let config = TopicConfig::resolve(&topic.configs, &self.defaults);
            let entry = topics
                .entry(topic.name.clone())
                .or_insert_with(|| TopicPartitions {
                    topic_id: topic.topic_id,
                    config: config.clone(),
                    partitions: Vec::new(),
                });
            let log_config = config.log_config();
            if entry.config.log_config() != log_config {
                for p in &entry.partitions {
                    p.set_log_config(log_config.clone())?;
                }
            }
            entry.config = config;
            let name: Arc<str> = Arc::from(topic.name.as_str());
            while entry.partitions.len() < usize::try_from(topic.partitions).unwrap_or(0) {
                let index = i32::try_from(entry.partitions.len()).unwrap_or(i32::MAX);
                let log = self.open_log(topic, index, log_config.clone())?;
                entry.partitions.push(Arc::new(Partition::new(
                    Arc::clone(&name),
                    index,
                    log,
                    self.durability,
                    Arc::clone(&self.data_arrived),
                )?));
            }
        }
        Ok(())
    }

    /// Opens one partition's log, first deleting a directory left behind
    /// by another topic of the same name (its `partition.metadata` names a
    /// different topic id, or it has none: it was never fully created).
    fn open_log(
        &self,
        topic: &TopicImage,
        index: i32,
        config: sluice_storage::LogConfig,
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
            tracing::warn!(dir = %dir.display(), "partition directory belongs to another topic id; deleting it");
            self.log_dir.delete_partition(&tp).map_err(storage_err)?;
        }
        if !dir.exists() {
            partition_metadata::write_topic_id(&dir, topic.topic_id).map_err(|e| {
                BrokerError::InvalidRequest(format!("cannot write {}: {e}", dir.display()))
            })?;
        }
        self.log_dir
            .open_partition(&tp, config)
            .map_err(storage_err)
    }

    /// Deletes partition directories the image does not name (a topic
    /// deleted, or shrunk by a crash mid-creation, while the broker was
    /// down). Call once at start, after the first reconcile.
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
                .is_some_and(|t| (0..t.partitions).contains(&tp.partition));
            if !known {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, "deleting a partition directory no topic owns");
                self.log_dir
                    .delete_partition(&tp)
                    .map_err(|source| BrokerError::Storage {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        source,
                    })?;
            }
        }
        Ok(())
    }

    fn delete_topic_logs(&self, name: &str, tp: TopicPartitions) -> Result<(), BrokerError> {
        for p in tp.partitions {
            let index = p.index();
            // Stop appends and drop the mapping before the directory goes.
            if let Err(e) = p.close() {
                tracing::warn!(topic = name, partition = index, error = %e, "closing a deleted partition failed");
            }
            self.log_dir
                .delete_partition(&TopicPartition {
                    topic: name.to_string(),
                    partition: index,
                })
                .map_err(|source| BrokerError::Storage {
                    topic: name.to_string(),
                    partition: index,
                    source,
                })?;
        }
        Ok(())
    }

    /// Flushes and closes every log; each writes its clean-shutdown marker.
    pub fn shutdown(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.close() {
                tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "close failed");
            }
        }
    }
}
