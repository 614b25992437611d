//! The metadata image: cluster metadata as of the last applied record.
//!
//! Owned by the [`Controller`](super::Controller); handlers read a cloned
//! `Arc<MetadataImage>` snapshot and never see a half-applied change.
//!
//! # Invariants
//! - [`MetadataImage::apply`] is deterministic: the same records in the same
//!   order give the same image, and a record it refuses changes nothing.
//!   Every refusal is a property of the record and the image, never of I/O.
//! - Topic names are unique; partition counts only grow; `next_producer_id`
//!   only grows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::records::MetadataRecord;
use crate::settings::{ConfigError, validate_topic_values};

/// One topic as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: i32,
    /// Config overrides; keys absent here take the broker defaults.
    pub configs: BTreeMap<String, String>,
}

/// Why a record cannot apply to the current image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    #[error("topic {name} has {current} partitions; {requested} is not more")]
    PartitionCountNotIncreased {
        name: String,
        current: i32,
        requested: i32,
    },
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    #[error("invalid record: {0}")]
    Invalid(String),
}

/// Cluster metadata at one point of the metadata log.
/// Serialisable: a Raft snapshot carries the whole image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    topics: BTreeMap<String, TopicImage>,
    next_producer_id: i64,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicImage> {
        self.topics.values().find(|t| t.topic_id == id)
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    /// The first producer id not yet handed out by any allocation.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Checks a proposed `record` against the image without changing it:
    /// the structural checks of [`Self::apply`], and every config value
    /// against the settings table.
    ///
    /// Config values are checked here, when a record is proposed, and not
    /// on apply: a record written by an older version with other bounds
    /// must still replay (its invalid values are ignored when the topic's
    /// config is resolved, see `settings/topic.rs`), or the topic and its
    /// data would be lost at the next start.
    pub fn check(&self, record: &MetadataRecord) -> Result<(), ApplyError> {
        self.check_structure(record)?;
        match record {
            MetadataRecord::TopicCreated { configs, .. } => {
                validate_topic_values(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            }
            MetadataRecord::TopicConfigChanged { changes, .. } => {
                validate_topic_values(
                    changes
                        .iter()
                        .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v))),
                )?;
            }
            MetadataRecord::PartitionsAdded { .. }
            | MetadataRecord::TopicDeleted { .. }
            | MetadataRecord::ProducerIdsAllocated { .. } => {}
        }
        Ok(())
    }

    /// The checks that hold for every record, proposed or replayed.
    fn check_structure(&self, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::TopicCreated {
                name, partitions, ..
            } => {
                if self.topics.contains_key(name) {
                    return Err(ApplyError::TopicExists(name.clone()));
                }
                if *partitions < 1 {
                    return Err(ApplyError::Invalid(format!(
                        "topic {name} needs at least one partition"
                    )));
                }
            }
            MetadataRecord::PartitionsAdded { name, partitions } => {
                let topic = self.existing(name)?;
                if *partitions <= topic.partitions {
                    return Err(ApplyError::PartitionCountNotIncreased {
                        name: name.clone(),
                        current: topic.partitions,
                        requested: *partitions,
                    });
                }
            }
            MetadataRecord::TopicConfigChanged { name, .. } => {
                self.existing(name)?;
            }
            MetadataRecord::TopicDeleted { name } => {
                self.existing(name)?;
            }
            MetadataRecord::ProducerIdsAllocated { next_producer_id } => {
                if *next_producer_id < self.next_producer_id {
                    return Err(ApplyError::Invalid(format!(
                        "producer id allocation went backwards: {} -> {next_producer_id}",
                        self.next_producer_id
                    )));
                }
            }
        }
        Ok(())
    }

    /// Applies `record`, or refuses it and changes nothing. Config values
    /// are not checked here (see [`Self::check`]).
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ApplyError> {
        self.check_structure(record)?;
        match record {
            MetadataRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                configs,
            } => {
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: *partitions,
                        configs: configs.clone(),
                    },
                );
            }
            MetadataRecord::PartitionsAdded { name, partitions } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.partitions = *partitions;
                }
            }
            MetadataRecord::TopicConfigChanged { name, changes } => {
                if let Some(t) = self.topics.get_mut(name) {
                    for (k, v) in changes {
                        match v {
                            Some(v) => t.configs.insert(k.clone(), v.clone()),
                            None => t.configs.remove(k),
                        };
                    }
                }
            }
            MetadataRecord::TopicDeleted { name } => {
                self.topics.remove(name);
            }
            MetadataRecord::ProducerIdsAllocated { next_producer_id } => {
                self.next_producer_id = *next_producer_id;
            }
        }
        Ok(())
    }

    fn existing(&self, name: &str) -> Result<&TopicImage, ApplyError> {
        self.topics
            .get(name)
            .ok_or_else(|| ApplyError::UnknownTopic(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(name: &str, partitions: i32) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            name: name.into(),
            topic_id: Uuid::from_u128(7),
            partitions,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn refused_records_change_nothing() {
        let mut image = MetadataImage::default();
        image.apply(&created("t", 3)).unwrap();
        let before = image.clone();
        assert_eq!(
            image.apply(&created("t", 1)),
            Err(ApplyError::TopicExists("t".into()))
        );
        assert!(matches!(
            image.apply(&MetadataRecord::PartitionsAdded {
                name: "t".into(),
                partitions: 2
            }),
            Err(ApplyError::PartitionCountNotIncreased { .. })
        ));
        let mut bad = BTreeMap::new();
        bad.insert("retention.ms".to_string(), Some("x".to_string()));
        assert!(matches!(
            image.check(&MetadataRecord::TopicConfigChanged {
                name: "t".into(),
                changes: bad
            }),
            Err(ApplyError::InvalidConfig(_))
        ));
        assert_eq!(image, before);
    }

    #[test]
    fn a_stored_invalid_config_still_replays() {
        // Written by an older version whose bounds allowed it: the topic
        // must survive replay (the value is ignored when resolved).
        let mut image = MetadataImage::default();
        let old = MetadataRecord::TopicCreated {
            name: "old".into(),
            topic_id: Uuid::from_u128(9),
            partitions: 1,
            configs: BTreeMap::from([("segment.bytes".to_string(), "1".to_string())]),
        };
        assert!(image.check(&old).is_err(), "a new proposal is refused");
        image.apply(&old).unwrap();
        assert_eq!(image.topic("old").map(|t| t.partitions), Some(1));
    }

    #[test]
    fn replay_gives_the_same_image() {
        let mut changes = BTreeMap::new();
        changes.insert("retention.ms".to_string(), Some("1000".to_string()));
        let records = vec![
            created("a", 1),
            created("b", 2),
            MetadataRecord::PartitionsAdded {
                name: "b".into(),
                partitions: 4,
            },
            MetadataRecord::TopicConfigChanged {
                name: "b".into(),
                changes,
            },
            MetadataRecord::TopicDeleted { name: "a".into() },
            MetadataRecord::ProducerIdsAllocated {
                next_producer_id: 1000,
            },
        ];
        let mut one = MetadataImage::default();
        let mut two = MetadataImage::default();
        for r in &records {
            one.apply(r).unwrap();
            two.apply(r).unwrap();
        }
        assert_eq!(one, two);
        assert!(one.topic("a").is_none());
        let b = one.topic("b").unwrap();
        assert_eq!(b.partitions, 4);
        assert_eq!(
            b.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(one.next_producer_id(), 1000);
    }
}
