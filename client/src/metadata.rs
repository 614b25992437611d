//! The client's picture of the cluster: brokers, topics, partitions and
//! their leaders, as the Metadata API last described them.
//!
//! A [`ClusterMetadata`] is an immutable snapshot; refreshing builds a new
//! one (see `cluster.rs`), so a reader never sees half an update. Topics
//! are merged: a refresh that asked about some topics replaces those and
//! keeps the others.
//!
//! # Invariants
//! - Partitions of a topic are sorted by index, and the index of each is
//!   its position (the broker reports all `0..n`; a gap is an error).
//!
//! # References
//! Kafka's `Metadata`/`MetadataCache` in the Java client.

use std::collections::BTreeMap;
use std::time::Instant;

use kafka_protocol::messages::MetadataResponse;
use sluice_protocol::error_code::ErrorCode;

use crate::error::{Error, Result, protocol};

/// One broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// Node id of the leader, `-1` while there is none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// A per-partition error the broker reported (LEADER_NOT_AVAILABLE…).
    pub error: ErrorCode,
}

impl PartitionInfo {
    /// No leader: the partition can be neither written nor read.
    pub fn is_offline(&self) -> bool {
        self.leader < 0
    }

    /// Some replica is not in the ISR (it is catching up, or its broker is
    /// down).
    pub fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }

    /// `offline`, `under-replicated` or `ok`, as `sluice` prints it.
    pub fn status(&self) -> &'static str {
        if self.is_offline() {
            "offline"
        } else if self.is_under_replicated() {
            "under-replicated"
        } else {
            "ok"
        }
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub is_internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }
}

/// A snapshot of cluster metadata.
#[derive(Debug, Clone)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
    /// Topics the last refresh reported with an error, and the error.
    pub topic_errors: BTreeMap<String, ErrorCode>,
    pub(crate) fetched_at: Instant,
}

impl Default for ClusterMetadata {
    fn default() -> Self {
        Self {
            cluster_id: None,
            controller_id: -1,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            topic_errors: BTreeMap::new(),
            fetched_at: Instant::now(),
        }
    }
}

impl ClusterMetadata {
    /// The leader of `topic`/`partition`, when known.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<&BrokerInfo> {
        let p = self.partition(topic, partition)?;
        self.brokers.get(&p.leader)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionInfo> {
        let topic = self.topics.get(topic)?;
        let index = usize::try_from(partition).ok()?;
        topic.partitions.get(index)
    }

    /// This snapshot updated by `response`. With `all_topics`, topics the
    /// response does not name are dropped (they were deleted); otherwise
    /// they are kept.
    pub(crate) fn merged(&self, response: &MetadataResponse, all_topics: bool) -> Result<Self> {
        let brokers = response
            .brokers
            .iter()
            .map(|b| {
                let info = BrokerInfo {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(ToString::to_string),
                };
                (info.node_id, info)
            })
            .collect();
        let mut topics = if all_topics {
            BTreeMap::new()
        } else {
            self.topics.clone()
        };
        let mut topic_errors = BTreeMap::new();
        for t in &response.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            let code = ErrorCode::from_code(t.error_code);
            if !code.is_none() {
                topics.remove(&name);
                topic_errors.insert(name, code);
                continue;
            }
            let info = topic_info(name.clone(), t)?;
            topics.insert(name, info);
        }
        Ok(Self {
            cluster_id: response.cluster_id.as_ref().map(ToString::to_string),
            controller_id: response.controller_id.0,
            brokers,
            topics,
            topic_errors,
            fetched_at: Instant::now(),
        })
    }
}

fn topic_info(
    name: String,
    t: &kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> Result<TopicInfo> {
    let mut partitions: Vec<PartitionInfo> = t
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.partition_index,
            leader: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
            isr: p.isr_nodes.iter().map(|n| n.0).collect(),
            error: ErrorCode::from_code(p.error_code),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    for (i, p) in partitions.iter().enumerate() {
        if usize::try_from(p.partition).ok() != Some(i) {
            return Err(protocol(format!(
                "metadata for topic '{name}' skips partition {i}"
            )));
        }
    }
    Ok(TopicInfo {
        name,
        is_internal: t.is_internal,
        partitions,
    })
}

/// `Err` for a topic the snapshot reports an error for, or does not know.
pub(crate) fn require_topic<'a>(meta: &'a ClusterMetadata, topic: &str) -> Result<&'a TopicInfo> {
    if let Some(t) = meta.topics.get(topic) {
        return Ok(t);
    }
    let code = meta
        .topic_errors
        .get(topic)
        .copied()
        .unwrap_or(ErrorCode::of(
            sluice_protocol::error_code::ResponseError::UnknownTopicOrPartition,
        ));
    Err(Error::kafka(code, format!("topic '{topic}'"), None))
}
