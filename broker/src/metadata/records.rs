//! Metadata records: the changes to cluster metadata, in the order they were
//! accepted. Replaying them from the start rebuilds the [`MetadataImage`].
//!
//! The records follow KRaft's metadata records (`RegisterBrokerRecord`,
//! `FenceBrokerRecord`, `TopicRecord` + `PartitionRecord`,
//! `PartitionChangeRecord`, `ConfigRecord`, `ProducerIdsRecord`), carried as
//! one serde-tagged enum so a topic and all its partitions arrive in one
//! record and apply atomically.
//!
//! # Invariants
//! - Every record ever written stays replayable: fields added later carry
//!   `#[serde(default)]`, and a record from a log written before replica
//!   assignment existed is brought forward by [`MetadataRecord::upgrade`]
//!   before it is applied.
//! - A record states outcomes the controller chose (replicas, leader, ISR);
//!   [`MetadataImage::apply`] derives only the epochs, by Kafka's rules, so
//!   every node computes the same ones.
//!
//! # Caveats
//! Broker-level dynamic configs have no record yet: broker settings come
//! from each node's own config file.
//!
//! [`MetadataImage`]: super::image::MetadataImage
//! [`MetadataImage::apply`]: super::image::MetadataImage::apply

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A broker id, as Kafka's `node.id`.
pub type BrokerId = i32;

/// Kafka's "no leader" marker, on the wire and in the image.
pub const NO_LEADER: BrokerId = -1;

/// One listener a broker serves clients on (Kafka's `BrokerEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener name, e.g. `PLAINTEXT`.
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// The assignment and state of one partition, as created (Kafka's
/// `PartitionRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub partition: i32,
    /// Every replica, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas: a non-empty subset of `replicas`.
    pub isr: Vec<BrokerId>,
    /// A member of `isr`, or [`NO_LEADER`].
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

impl PartitionRecord {
    /// A new partition on `replicas`: all in sync, the first one leading,
    /// both epochs 0 (what Kafka writes on creation).
    pub fn new(partition: i32, replicas: Vec<BrokerId>) -> Self {
        Self {
            partition,
            leader: replicas.first().copied().unwrap_or(NO_LEADER),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }
}

/// One accepted change to cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    /// A broker joined (or rejoined with a new `incarnation_id`). It starts
    /// fenced unless `fenced` is false: leaders are not placed on it until
    /// [`MetadataRecord::BrokerUnfenced`].
    BrokerRegistered {
        id: BrokerId,
        incarnation_id: Uuid,
        endpoints: Vec<Endpoint>,
        #[serde(default)]
        rack: Option<String>,
        #[serde(default = "fenced_by_default")]
        fenced: bool,
    },
    /// The broker missed its session or is shutting down: it may lead nothing.
    BrokerFenced { id: BrokerId },
    /// The broker caught up with the metadata and heartbeats again.
    BrokerUnfenced { id: BrokerId },
    /// The broker left the cluster for good; it must lead nothing first.
    BrokerUnregistered { id: BrokerId },
    /// A topic came into being with its partitions and config overrides.
    ///
    /// `assignments` holds one [`PartitionRecord`] per partition, in
    /// partition order. It is empty only in a log written by a single node
    /// before replica assignment existed; [`MetadataRecord::upgrade`] fills
    /// it in and the image refuses the record without it.
    TopicCreated {
        name: String,
        topic_id: Uuid,
        partitions: i32,
        configs: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        assignments: Vec<PartitionRecord>,
    },
    /// A topic's partition count grew (it never shrinks); `assignments`
    /// holds the new partitions (empty only in an old single-node log).
    PartitionsAdded {
        name: String,
        partitions: i32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        assignments: Vec<PartitionRecord>,
    },
    /// A partition's leader, ISR or replicas changed (Kafka's
    /// `PartitionChangeRecord`). `None` leaves a field as it is; a leader of
    /// [`NO_LEADER`] leaves the partition offline. The image bumps the
    /// leader epoch when the leader changes and the partition epoch on any
    /// change. With `partition_epoch`, it applies only while the partition
    /// is still at that epoch: the values are whole (an ISR, not a
    /// removal), so one computed from an older image (a restarting broker's
    /// registration, two fencings computed before either applied) would
    /// otherwise put back members that left meanwhile.
    PartitionChanged {
        topic: String,
        partition: i32,
        #[serde(default)]
        leader: Option<BrokerId>,
        #[serde(default)]
        isr: Option<Vec<BrokerId>>,
        #[serde(default)]
        replicas: Option<Vec<BrokerId>>,
        /// The partition epoch the change was computed from (absent in
        /// records written before it existed: unconditional).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition_epoch: Option<i32>,
    },
    /// A partition's leader changed its ISR (Kafka's AlterPartition, with
    /// KIP-497's partition epoch): applied only while `leader` still leads
    /// at `leader_epoch`, the partition is still at `partition_epoch`, and
    /// every replica it adds is unfenced (KIP-841); bumps the partition
    /// epoch. A leader proposes it; a refusal tells it to re-read the image.
    IsrChanged {
        topic: String,
        partition: i32,
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<BrokerId>,
    },
    /// Config overrides set (`Some`) or removed back to the default (`None`).
    TopicConfigChanged {
        name: String,
        changes: BTreeMap<String, Option<String>>,
    },
    /// A topic was deleted; its logs are removed.
    TopicDeleted { name: String },
    /// Producer ids below `next_producer_id` may have been handed out; the
    /// block ending there belongs to `broker_id` (absent in old logs).
    ProducerIdsAllocated {
        next_producer_id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        broker_id: Option<BrokerId>,
    },
    /// The cluster's id, written once by the first node that finds the log
    /// without one; every node keeps it in its `meta.properties`. A second
    /// one is refused, so racing nodes agree on the first.
    ClusterIdAssigned { cluster_id: String },
    /// Records that apply together or not at all (Kafka writes such groups
    /// as one atomic batch): fencing a broker and moving its leaderships
    /// away is one change, so no image ever shows a fenced leader. Not
    /// nested.
    Atomic { records: Vec<MetadataRecord> },
    /// Partition changes each decided on its partition as it stood at a
    /// partition epoch: leader elections (ElectLeaders, the controller's
    /// preferred-leader balancing) and KIP-455 reassignments (start,
    /// cancel, completion). Each change applies on its own, only while its
    /// partition is still at that epoch and the result keeps the image's
    /// invariants; the others are skipped, so a decision made on an older
    /// state never overwrites a newer ISR. Whoever proposed reads from the
    /// image which took.
    PartitionChangesAt { changes: Vec<PartitionChangeAt> },
}

/// One change of [`MetadataRecord::PartitionChangesAt`]: `None` leaves a
/// field as it is. `adding` and `removing` are KIP-455's
/// `addingReplicas`/`removingReplicas` (both empty when no reassignment is
/// in progress).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeAt {
    pub topic: String,
    pub partition: i32,
    /// The partition epoch the change was computed from.
    pub partition_epoch: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<BrokerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isr: Option<Vec<BrokerId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Vec<BrokerId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adding: Option<Vec<BrokerId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removing: Option<Vec<BrokerId>>,
}

impl PartitionChangeAt {
    /// A change of `topic`-`partition` at `partition_epoch` that changes
    /// nothing yet.
    pub fn new(topic: &str, partition: i32, partition_epoch: i32) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
            partition_epoch,
            leader: None,
            isr: None,
            replicas: None,
            adding: None,
            removing: None,
        }
    }
}

fn fenced_by_default() -> bool {
    true
}

impl MetadataRecord {
    /// Brings a record from an old single-node log forward: a topic or
    /// partitions created before replica assignment existed live on
    /// `node_id` alone, which leads them at epoch 0. Any other record is
    /// returned as it is.
    pub fn upgrade(mut self, node_id: BrokerId, first_partition: i32) -> Self {
        let single = |from: i32, to: i32| {
            (from..to)
                .map(|p| PartitionRecord::new(p, vec![node_id]))
                .collect::<Vec<_>>()
        };
        match &mut self {
            MetadataRecord::TopicCreated {
                partitions,
                assignments,
                ..
            } if assignments.is_empty() => *assignments = single(0, *partitions),
            MetadataRecord::PartitionsAdded {
                partitions,
                assignments,
                ..
            } if assignments.is_empty() => *assignments = single(first_partition, *partitions),
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_an_old_log_still_decodes_and_upgrades() {
        let old = r#"{"type":"topic_created","name":"t","topic_id":"00000000-0000-0000-0000-000000000001","partitions":2,"configs":{}}"#;
        let record: MetadataRecord = serde_json::from_str(old).unwrap();
        let MetadataRecord::TopicCreated { assignments, .. } = record.clone().upgrade(3, 0) else {
            panic!("not a topic");
        };
        assert_eq!(
            assignments,
            vec![
                PartitionRecord::new(0, vec![3]),
                PartitionRecord::new(1, vec![3])
            ]
        );
        assert_eq!(assignments[1].leader, 3);
        let added = r#"{"type":"partitions_added","name":"t","partitions":4}"#;
        let record: MetadataRecord = serde_json::from_str(added).unwrap();
        let MetadataRecord::PartitionsAdded { assignments, .. } = record.upgrade(3, 2) else {
            panic!("not partitions");
        };
        assert_eq!(
            assignments.iter().map(|a| a.partition).collect::<Vec<_>>(),
            vec![2, 3]
        );
        let pids = r#"{"type":"producer_ids_allocated","next_producer_id":1000}"#;
        let record: MetadataRecord = serde_json::from_str(pids).unwrap();
        assert_eq!(
            record,
            MetadataRecord::ProducerIdsAllocated {
                next_producer_id: 1000,
                broker_id: None
            }
        );
    }

    #[test]
    fn a_registration_without_the_fenced_field_starts_fenced() {
        let text = r#"{"type":"broker_registered","id":1,"incarnation_id":"00000000-0000-0000-0000-000000000002","endpoints":[{"listener":"PLAINTEXT","host":"h","port":9092}]}"#;
        let MetadataRecord::BrokerRegistered { fenced, rack, .. } =
            serde_json::from_str(text).unwrap()
        else {
            panic!("not a registration");
        };
        assert!(fenced);
        assert_eq!(rack, None);
    }
}
