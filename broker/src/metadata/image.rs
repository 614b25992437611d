//! The metadata image: cluster metadata as of the last applied record —
//! brokers, topics with each partition's replicas, ISR, leader and epochs,
//! topic configs, and the producer-id high mark.
//!
//! Owned by the [`Controller`](super::Controller), which publishes each new
//! image as an `Arc<MetadataImage>`; handlers and the replica layer read
//! such a snapshot and never see a half-applied change.
//!
//! # Invariants
//! - [`MetadataImage::apply`] is deterministic: the same records in the same
//!   order give the same image, and a record it refuses changes nothing.
//!   Every refusal is a property of the record and the image, never of I/O.
//! - Topic names and ids are unique; partition counts only grow;
//!   `next_producer_id` only grows.
//! - For every partition: replicas are distinct brokers; the ISR is a
//!   non-empty subset of the replicas; the leader is an ISR member or
//!   [`NO_LEADER`]; epochs never go down. A leader that changes becomes a
//!   registered, unfenced broker; an unregistered broker leads nothing.
//!   (Replicas may name a broker that is not registered, as in Kafka: one
//!   that left, or this node while an old single-node log replays before
//!   it registers. Placement checks registration when it chooses.)
//! - Leader epoch bumps exactly when the leader changes; partition epoch
//!   bumps on every accepted [`MetadataRecord::PartitionChanged`].
//! - A fenced broker leads nothing: fencing (or registering fenced) is
//!   refused while the broker leads a partition, and no record makes a
//!   fenced broker a leader. Fencing therefore travels as one
//!   [`MetadataRecord::Atomic`] with the leadership moves it needs.
//! - The cluster id, once assigned, never changes.
//! - A reassignment in progress (KIP-455) is `adding` and `removing`,
//!   disjoint parts of `replicas`; `replicas` is the target first, then the
//!   replicas leaving. Both are empty otherwise.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::records::{
    BrokerId, Endpoint, MetadataRecord, NO_LEADER, PartitionChangeAt, PartitionRecord,
};
use crate::settings::{ConfigError, validate_topic_values};

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: BrokerId,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// A fenced broker leads nothing and is not given new replicas.
    pub fenced: bool,
}

impl BrokerRegistration {
    /// The endpoint clients use: the first one registered.
    pub fn client_endpoint(&self) -> Option<&Endpoint> {
        self.endpoints.first()
    }
}

/// One partition's assignment and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// Every replica, preferred leader first.
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// An ISR member, or [`NO_LEADER`].
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455): replicas joining, not yet
    /// all in the ISR. Both lists are within `replicas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<BrokerId>,
    /// A reassignment in progress: replicas leaving once the target set
    /// (`replicas` minus these) is in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<BrokerId>,
}

impl PartitionImage {
    /// The leader, if the partition has one.
    pub fn leader(&self) -> Option<BrokerId> {
        (self.leader != NO_LEADER).then_some(self.leader)
    }

    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// Where a reassignment in progress goes: the replicas minus the ones
    /// leaving (all the replicas when none is in progress).
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        without(&self.replicas, &self.removing)
    }

    /// Where a reassignment in progress came from: the replicas minus the
    /// ones joining.
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        without(&self.replicas, &self.adding)
    }

    fn from_record(r: &PartitionRecord) -> Self {
        Self {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }
}

/// `list` without the members of `gone`, in order.
pub fn without(list: &[BrokerId], gone: &[BrokerId]) -> Vec<BrokerId> {
    list.iter().copied().filter(|b| !gone.contains(b)).collect()
}

/// One topic as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    /// Indexed by partition id.
    pub partitions: Vec<PartitionImage>,
    /// Config overrides; keys absent here take the broker defaults.
    pub configs: BTreeMap<String, String>,
}

impl TopicImage {
    pub fn partition_count(&self) -> i32 {
        // Bounded by the partition count a record may carry (an i32).
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    pub fn partition(&self, partition: i32) -> Option<&PartitionImage> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.partitions.get(p))
    }

    /// A topic as a TopicCreated record would make it (validate-only
    /// CreateTopics answers from this without applying anything).
    pub fn from_created(record: &MetadataRecord) -> Option<Self> {
        match record {
            MetadataRecord::TopicCreated {
                name,
                topic_id,
                configs,
                assignments,
                ..
            } => Some(TopicImage {
                name: name.clone(),
                topic_id: *topic_id,
                partitions: assignments
                    .iter()
                    .map(PartitionImage::from_record)
                    .collect(),
                configs: configs.clone(),
            }),
            _ => None,
        }
    }
}

/// Why a record cannot apply to the current image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("topic {name} has {current} partitions; {requested} is not more")]
    PartitionCountNotIncreased {
        name: String,
        current: i32,
        requested: i32,
    },
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    #[error("invalid record: {0}")]
    Invalid(String),
    /// The record would leave a fenced broker leading a partition (a
    /// placement chosen on an image older than the fencing): retriable.
    #[error("broker {broker} is fenced and cannot lead {topic}-{partition}")]
    FencedLeader {
        broker: BrokerId,
        topic: String,
        partition: i32,
    },
    #[error("the cluster id is already {0}")]
    ClusterIdAssigned(String),
    /// An ISR change computed from an older state of the partition, or
    /// adding a replica that may not join (Kafka's INVALID_UPDATE_VERSION,
    /// FENCED_LEADER_EPOCH, INELIGIBLE_REPLICA).
    #[error("ISR change of {topic}-{partition} refused: {reason}")]
    IsrChangeRefused {
        topic: String,
        partition: i32,
        reason: &'static str,
        /// Refused because the partition moved on (its leader, leader
        /// epoch or partition epoch changed) since the change was
        /// computed: the newer state is in the image, or on its way to
        /// every broker. Otherwise the change itself is not allowed.
        stale: bool,
    },
}

/// Cluster metadata at one point of the metadata log.
/// Serialisable: a Raft snapshot carries the whole image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    brokers: BTreeMap<BrokerId, BrokerRegistration>,
    topics: BTreeMap<String, TopicImage>,
    next_producer_id: i64,
    /// Assigned once ([`MetadataRecord::ClusterIdAssigned`]); absent in
    /// snapshots written before it existed until a node assigns it.
    #[serde(default)]
    cluster_id: Option<String>,
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

    /// One partition of one topic.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(topic)?.partition(partition)
    }

    fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionImage> {
        self.topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(usize::try_from(partition).ok()?))
    }

    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// Every registered broker, fenced or not, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    /// Registered, unfenced brokers: where leaders and new replicas go.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Whether `id` is registered and unfenced.
    pub fn is_unfenced(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// The first producer id not yet handed out by any allocation.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// The cluster id, once a node has assigned it.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// Some partition `id` leads, if any, as (topic, partition).
    pub fn led_by(&self, id: BrokerId) -> Option<(&str, i32)> {
        self.topics.values().find_map(|t| {
            t.partitions
                .iter()
                .position(|p| p.leader == id)
                .map(|p| (t.name.as_str(), i32::try_from(p).unwrap_or(i32::MAX)))
        })
    }

    /// Brings `record`, read from a log written by a single node before
    /// replica assignment existed, forward: its partitions live on
    /// `node_id` alone (see [`MetadataRecord::upgrade`]). A record that
    /// needs nothing is returned as it is.
    pub fn upgrade(&self, record: MetadataRecord, node_id: BrokerId) -> MetadataRecord {
        let first = match &record {
            MetadataRecord::PartitionsAdded { name, .. } => {
                self.topics.get(name).map_or(0, TopicImage::partition_count)
            }
            _ => 0,
        };
        record.upgrade(node_id, first)
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
        if let MetadataRecord::Atomic { records } = record {
            let mut scratch = self.clone();
            for r in records {
                scratch.check(r)?;
                scratch.apply(r)?;
            }
            return Ok(());
        }
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
            _ => {}
        }
        Ok(())
    }

    /// The checks that hold for every record, proposed or replayed.
    fn check_structure(&self, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::BrokerRegistered {
                id,
                endpoints,
                fenced,
                ..
            } => {
                if *id < 0 {
                    return Err(ApplyError::Invalid(format!("broker id {id} is negative")));
                }
                if endpoints.is_empty() {
                    return Err(ApplyError::Invalid(format!(
                        "broker {id} registered without an endpoint"
                    )));
                }
                if *fenced {
                    self.leads_nothing(*id)?;
                }
            }
            MetadataRecord::BrokerFenced { id } => {
                self.registered(*id)?;
                self.leads_nothing(*id)?;
            }
            MetadataRecord::BrokerUnfenced { id } => {
                self.registered(*id)?;
            }
            MetadataRecord::BrokerUnregistered { id } => {
                self.registered(*id)?;
                if let Some((topic, partition)) = self.led_by(*id) {
                    return Err(ApplyError::Invalid(format!(
                        "broker {id} still leads {topic}-{partition}"
                    )));
                }
            }
            MetadataRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                assignments,
                ..
            } => {
                if self.topics.contains_key(name) {
                    return Err(ApplyError::TopicExists(name.clone()));
                }
                if self.topic_by_id(*topic_id).is_some() {
                    return Err(ApplyError::Invalid(format!(
                        "topic id {topic_id} is already used"
                    )));
                }
                if *partitions < 1 {
                    return Err(ApplyError::Invalid(format!(
                        "topic {name} needs at least one partition"
                    )));
                }
                self.check_new_partitions(name, 0, *partitions, assignments)?;
                self.check_new_leaders(name, assignments)?;
            }
            MetadataRecord::PartitionsAdded {
                name,
                partitions,
                assignments,
            } => {
                let topic = self.existing(name)?;
                let current = topic.partition_count();
                if *partitions <= current {
                    return Err(ApplyError::PartitionCountNotIncreased {
                        name: name.clone(),
                        current,
                        requested: *partitions,
                    });
                }
                self.check_new_partitions(name, current, *partitions, assignments)?;
                self.check_new_leaders(name, assignments)?;
            }
            MetadataRecord::PartitionChanged {
                topic,
                partition,
                leader,
                isr,
                replicas,
                partition_epoch,
            } => {
                let current = self.existing_partition(topic, *partition)?;
                if partition_epoch.is_some_and(|e| e != current.partition_epoch) {
                    return Err(ApplyError::IsrChangeRefused {
                        topic: topic.clone(),
                        partition: *partition,
                        reason: "the partition epoch moved on since the change was computed",
                        stale: true,
                    });
                }
                let next = changed(current, *leader, isr.as_deref(), replicas.as_deref());
                if next.leader != current.leader && next.leader != NO_LEADER {
                    let broker = self.registered(next.leader)?;
                    if broker.fenced {
                        return Err(ApplyError::FencedLeader {
                            broker: next.leader,
                            topic: topic.clone(),
                            partition: *partition,
                        });
                    }
                }
                self.check_partition(topic, *partition, &next)?;
            }
            MetadataRecord::IsrChanged {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let current = self.existing_partition(topic, *partition)?;
                let refused = |reason, stale| ApplyError::IsrChangeRefused {
                    topic: topic.clone(),
                    partition: *partition,
                    reason,
                    stale,
                };
                if current.leader != *leader || current.leader_epoch != *leader_epoch {
                    return Err(refused(
                        "the proposer no longer leads at that leader epoch",
                        true,
                    ));
                }
                if current.partition_epoch != *partition_epoch {
                    return Err(refused("the partition epoch moved on", true));
                }
                if !isr.contains(leader) {
                    return Err(refused("the leader must stay in the ISR", false));
                }
                let joining_fenced = isr
                    .iter()
                    .filter(|b| !current.isr.contains(b))
                    .any(|b| !self.is_unfenced(*b));
                if joining_fenced {
                    return Err(refused(
                        "a replica joining the ISR is fenced or unknown",
                        false,
                    ));
                }
                let next = changed(current, None, Some(isr), None);
                self.check_partition(topic, *partition, &next)?;
            }
            MetadataRecord::TopicConfigChanged { name, .. } => {
                self.existing(name)?;
            }
            MetadataRecord::TopicDeleted { name } => {
                self.existing(name)?;
            }
            MetadataRecord::ProducerIdsAllocated {
                next_producer_id, ..
            } => {
                if *next_producer_id < self.next_producer_id {
                    return Err(ApplyError::Invalid(format!(
                        "producer id allocation went backwards: {} -> {next_producer_id}",
                        self.next_producer_id
                    )));
                }
            }
            MetadataRecord::ClusterIdAssigned { cluster_id } => {
                if let Some(current) = &self.cluster_id {
                    return Err(ApplyError::ClusterIdAssigned(current.clone()));
                }
                if cluster_id.is_empty() {
                    return Err(ApplyError::Invalid("empty cluster id".into()));
                }
            }
            MetadataRecord::Atomic { records } => {
                if records
                    .iter()
                    .any(|r| matches!(r, MetadataRecord::Atomic { .. }))
                {
                    return Err(ApplyError::Invalid("nested atomic records".into()));
                }
            }
            // Each change is checked, and skipped when it no longer
            // applies, by `apply_change_at`.
            MetadataRecord::PartitionChangesAt { .. } => {}
        }
        Ok(())
    }

    /// One change of a [`MetadataRecord::PartitionChangesAt`], or why it
    /// does not apply to the image as it is now.
    fn change_at(&self, c: &PartitionChangeAt) -> Result<PartitionImage, ApplyError> {
        let current = self.existing_partition(&c.topic, c.partition)?;
        if current.partition_epoch != c.partition_epoch {
            return Err(ApplyError::IsrChangeRefused {
                topic: c.topic.clone(),
                partition: c.partition,
                reason: "the partition epoch moved on",
                stale: true,
            });
        }
        let mut next = changed(current, c.leader, c.isr.as_deref(), c.replicas.as_deref());
        if let Some(adding) = &c.adding {
            next.adding.clone_from(adding);
        }
        if let Some(removing) = &c.removing {
            next.removing.clone_from(removing);
        }
        if next.leader != current.leader && next.leader != NO_LEADER {
            let broker = self.registered(next.leader)?;
            if broker.fenced {
                return Err(ApplyError::FencedLeader {
                    broker: next.leader,
                    topic: c.topic.clone(),
                    partition: c.partition,
                });
            }
        }
        self.check_partition(&c.topic, c.partition, &next)?;
        let within = |list: &[BrokerId]| list.iter().all(|b| next.replicas.contains(b));
        let overlap = next.adding.iter().any(|b| next.removing.contains(b));
        if !within(&next.adding) || !within(&next.removing) || overlap {
            return Err(ApplyError::InvalidReplicaAssignment(format!(
                "{}-{}: adding {:?} and removing {:?} must be disjoint parts of replicas {:?}",
                c.topic, c.partition, next.adding, next.removing, next.replicas
            )));
        }
        Ok(next)
    }

    /// Refuses while `id` leads a partition (it may not become fenced).
    fn leads_nothing(&self, id: BrokerId) -> Result<(), ApplyError> {
        match self.led_by(id) {
            Some((topic, partition)) => Err(ApplyError::FencedLeader {
                broker: id,
                topic: topic.to_string(),
                partition,
            }),
            None => Ok(()),
        }
    }

    /// New partitions may not be led by a fenced broker (a placement made
    /// on an image older than the fencing). An unregistered leader is
    /// allowed: an old single-node log replays before its node registers.
    fn check_new_leaders(
        &self,
        topic: &str,
        assignments: &[PartitionRecord],
    ) -> Result<(), ApplyError> {
        for a in assignments {
            if self.brokers.get(&a.leader).is_some_and(|b| b.fenced) {
                return Err(ApplyError::FencedLeader {
                    broker: a.leader,
                    topic: topic.to_string(),
                    partition: a.partition,
                });
            }
        }
        Ok(())
    }

    /// Applies `record`, or refuses it and changes nothing. Config values
    /// are not checked here (see [`Self::check`]).
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ApplyError> {
        self.check_structure(record)?;
        match record {
            MetadataRecord::Atomic { records } => {
                // All or nothing: applied to a copy that replaces the image
                // only when every record applied.
                let mut next = self.clone();
                for r in records {
                    next.apply(r)?;
                }
                *self = next;
            }
            MetadataRecord::ClusterIdAssigned { cluster_id } => {
                self.cluster_id = Some(cluster_id.clone());
            }
            MetadataRecord::BrokerRegistered {
                id,
                incarnation_id,
                endpoints,
                rack,
                fenced,
            } => {
                self.brokers.insert(
                    *id,
                    BrokerRegistration {
                        id: *id,
                        incarnation_id: *incarnation_id,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: *fenced,
                    },
                );
            }
            MetadataRecord::BrokerFenced { id } => self.set_fenced(*id, true),
            MetadataRecord::BrokerUnfenced { id } => self.set_fenced(*id, false),
            MetadataRecord::BrokerUnregistered { id } => {
                self.brokers.remove(id);
            }
            MetadataRecord::TopicCreated { name, .. } => {
                if let Some(topic) = TopicImage::from_created(record) {
                    self.topics.insert(name.clone(), topic);
                }
            }
            MetadataRecord::PartitionsAdded {
                name, assignments, ..
            } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.partitions
                        .extend(assignments.iter().map(PartitionImage::from_record));
                }
            }
            MetadataRecord::PartitionChanged {
                topic,
                partition,
                leader,
                isr,
                replicas,
                ..
            } => {
                if let Some(p) = self.partition_mut(topic, *partition) {
                    *p = changed(p, *leader, isr.as_deref(), replicas.as_deref());
                }
            }
            MetadataRecord::IsrChanged {
                topic,
                partition,
                isr,
                ..
            } => {
                if let Some(p) = self.partition_mut(topic, *partition) {
                    *p = changed(p, None, Some(isr), None);
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
            MetadataRecord::ProducerIdsAllocated {
                next_producer_id, ..
            } => {
                self.next_producer_id = *next_producer_id;
            }
            MetadataRecord::PartitionChangesAt { changes } => {
                for c in changes {
                    match self.change_at(c) {
                        Ok(next) => {
                            if let Some(p) = self.partition_mut(&c.topic, c.partition) {
                                *p = next;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(topic = %c.topic, partition = c.partition, error = %e, "partition change skipped");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn set_fenced(&mut self, id: BrokerId, fenced: bool) {
        if let Some(b) = self.brokers.get_mut(&id) {
            b.fenced = fenced;
        }
    }

    fn registered(&self, id: BrokerId) -> Result<&BrokerRegistration, ApplyError> {
        self.brokers.get(&id).ok_or(ApplyError::UnknownBroker(id))
    }

    fn existing(&self, name: &str) -> Result<&TopicImage, ApplyError> {
        self.topics
            .get(name)
            .ok_or_else(|| ApplyError::UnknownTopic(name.to_string()))
    }

    fn existing_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<&PartitionImage, ApplyError> {
        self.existing(topic)?
            .partition(partition)
            .ok_or_else(|| ApplyError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            })
    }

    /// `assignments` must be exactly partitions `from..to`, in order, each
    /// new (both epochs 0) and consistent.
    fn check_new_partitions(
        &self,
        topic: &str,
        from: i32,
        to: i32,
        assignments: &[PartitionRecord],
    ) -> Result<(), ApplyError> {
        let expected = usize::try_from(to - from).unwrap_or(0);
        if assignments.len() != expected {
            return Err(ApplyError::InvalidReplicaAssignment(format!(
                "topic {topic}: {} assignments for partitions {from}..{to}",
                assignments.len()
            )));
        }
        for (a, p) in assignments.iter().zip(from..to) {
            if a.partition != p {
                return Err(ApplyError::InvalidReplicaAssignment(format!(
                    "topic {topic}: assignment for partition {} where {p} was expected",
                    a.partition
                )));
            }
            if a.leader_epoch != 0 || a.partition_epoch != 0 {
                return Err(ApplyError::Invalid(format!(
                    "new partition {topic}-{p} must start at epoch 0"
                )));
            }
            self.check_partition(topic, p, &PartitionImage::from_record(a))?;
        }
        Ok(())
    }

    /// The per-partition invariants of the module doc.
    fn check_partition(
        &self,
        topic: &str,
        partition: i32,
        p: &PartitionImage,
    ) -> Result<(), ApplyError> {
        let bad = |why: String| {
            Err(ApplyError::InvalidReplicaAssignment(format!(
                "{topic}-{partition}: {why}"
            )))
        };
        if p.replicas.is_empty() {
            return bad("no replicas".into());
        }
        let distinct: BTreeSet<_> = p.replicas.iter().collect();
        if distinct.len() != p.replicas.len() {
            return bad(format!("replicas {:?} repeat a broker", p.replicas));
        }
        if p.isr.is_empty() {
            return bad("empty ISR".into());
        }
        let isr: BTreeSet<_> = p.isr.iter().collect();
        if isr.len() != p.isr.len() || !isr.is_subset(&distinct) {
            return bad(format!(
                "ISR {:?} is not a set within replicas {:?}",
                p.isr, p.replicas
            ));
        }
        if p.leader != NO_LEADER && !isr.contains(&p.leader) {
            return bad(format!("leader {} is not in ISR {:?}", p.leader, p.isr));
        }
        Ok(())
    }
}

/// `current` with a change applied, epochs bumped by Kafka's rules: the
/// leader epoch when the leader changes, the partition epoch always.
fn changed(
    current: &PartitionImage,
    leader: Option<BrokerId>,
    isr: Option<&[BrokerId]>,
    replicas: Option<&[BrokerId]>,
) -> PartitionImage {
    let leader = leader.unwrap_or(current.leader);
    let leader_epoch = if leader == current.leader {
        current.leader_epoch
    } else {
        current.leader_epoch.saturating_add(1)
    };
    PartitionImage {
        replicas: replicas.map_or_else(|| current.replicas.clone(), <[_]>::to_vec),
        isr: isr.map_or_else(|| current.isr.clone(), <[_]>::to_vec),
        leader,
        leader_epoch,
        partition_epoch: current.partition_epoch.saturating_add(1),
        adding: current.adding.clone(),
        removing: current.removing.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::fixtures::{created_on, registered};

    fn created(name: &str, partitions: i32) -> MetadataRecord {
        let one: &[BrokerId] = &[1];
        created_on(name, &vec![one; partitions as usize])
    }

    fn image_with_brokers(ids: &[BrokerId]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in ids {
            image.apply(&registered(*id, None)).unwrap();
        }
        image
    }

    fn change(leader: Option<BrokerId>, isr: Option<Vec<BrokerId>>) -> MetadataRecord {
        MetadataRecord::PartitionChanged {
            topic: "t".into(),
            partition: 0,
            leader,
            isr,
            replicas: None,
            partition_epoch: None,
        }
    }

    #[test]
    fn refused_records_change_nothing() {
        let mut image = image_with_brokers(&[1]);
        image.apply(&created("t", 3)).unwrap();
        let before = image.clone();
        assert_eq!(
            image.apply(&created("t", 1)),
            Err(ApplyError::TopicExists("t".into()))
        );
        assert!(matches!(
            image.apply(&MetadataRecord::PartitionsAdded {
                name: "t".into(),
                partitions: 2,
                assignments: vec![],
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
        // A leader outside the ISR (and not even registered).
        assert!(image.apply(&change(Some(2), None)).is_err());
        assert_eq!(image, before);
    }

    #[test]
    fn a_stored_invalid_config_still_replays() {
        // Written by an older version whose bounds allowed it: the topic
        // must survive replay (the value is ignored when resolved).
        let mut image = image_with_brokers(&[1]);
        let old = MetadataRecord::TopicCreated {
            name: "old".into(),
            topic_id: Uuid::from_u128(9),
            partitions: 1,
            configs: BTreeMap::from([("segment.bytes".to_string(), "1".to_string())]),
            assignments: vec![PartitionRecord::new(0, vec![1])],
        };
        assert!(image.check(&old).is_err(), "a new proposal is refused");
        image.apply(&old).unwrap();
        assert_eq!(image.topic("old").map(|t| t.partition_count()), Some(1));
    }

    #[test]
    fn inconsistent_assignments_are_refused() {
        let mut image = image_with_brokers(&[1, 2]);
        // A repeated broker, a missing assignment.
        assert!(matches!(
            image.apply(&created_on("t", &[&[1, 1]])),
            Err(ApplyError::InvalidReplicaAssignment(_))
        ));
        assert!(matches!(
            image.apply(&MetadataRecord::TopicCreated {
                name: "t".into(),
                topic_id: Uuid::from_u128(9),
                partitions: 2,
                configs: BTreeMap::new(),
                assignments: vec![PartitionRecord::new(0, vec![1])],
            }),
            Err(ApplyError::InvalidReplicaAssignment(_))
        ));
        assert_eq!(image, image_with_brokers(&[1, 2]));
    }

    #[test]
    fn epochs_follow_kafka_rules() {
        let mut image = image_with_brokers(&[1, 2, 3]);
        image.apply(&created_on("t", &[&[1, 2, 3]])).unwrap();
        let p = |image: &MetadataImage| image.partition("t", 0).unwrap().clone();
        assert_eq!((p(&image).leader, p(&image).leader_epoch), (1, 0));
        // ISR shrink: partition epoch only.
        image.apply(&change(None, Some(vec![1, 2]))).unwrap();
        assert_eq!((p(&image).leader_epoch, p(&image).partition_epoch), (0, 1));
        // Leader change: both.
        image.apply(&change(Some(2), Some(vec![2]))).unwrap();
        assert_eq!(
            (
                p(&image).leader,
                p(&image).leader_epoch,
                p(&image).partition_epoch
            ),
            (2, 1, 2)
        );
        // Offline, then back: each a leader change.
        image.apply(&change(Some(NO_LEADER), None)).unwrap();
        assert_eq!((p(&image).leader(), p(&image).leader_epoch), (None, 2));
        image.apply(&change(Some(2), None)).unwrap();
        assert_eq!(p(&image).leader_epoch, 3);
    }

    #[test]
    fn a_broker_that_leads_cannot_unregister() {
        let mut image = image_with_brokers(&[1, 2]);
        image.apply(&created_on("t", &[&[1, 2]])).unwrap();
        assert!(
            image
                .apply(&MetadataRecord::BrokerUnregistered { id: 1 })
                .is_err()
        );
        // Nor be fenced while it leads: a fenced broker leads nothing.
        let before = image.clone();
        assert!(matches!(
            image.apply(&MetadataRecord::BrokerFenced { id: 1 }),
            Err(ApplyError::FencedLeader { broker: 1, .. })
        ));
        assert_eq!(image, before);
        // Fencing with the leadership move, atomically.
        image
            .apply(&MetadataRecord::Atomic {
                records: vec![
                    change(Some(2), Some(vec![2])),
                    MetadataRecord::BrokerFenced { id: 1 },
                ],
            })
            .unwrap();
        assert!(!image.is_unfenced(1));
        assert_eq!(
            image.unfenced_brokers().map(|b| b.id).collect::<Vec<_>>(),
            vec![2]
        );
        // A half-valid atomic record changes nothing.
        let before = image.clone();
        assert!(
            image
                .apply(&MetadataRecord::Atomic {
                    records: vec![
                        MetadataRecord::BrokerUnfenced { id: 1 },
                        change(Some(7), None),
                    ],
                })
                .is_err()
        );
        assert_eq!(image, before);
        // A new topic cannot be placed with a fenced leader.
        assert!(matches!(
            image.apply(&created_on("u", &[&[1, 2]])),
            Err(ApplyError::FencedLeader { broker: 1, .. })
        ));
        // The fenced broker cannot be made leader again.
        assert!(image.apply(&change(Some(1), Some(vec![1, 2]))).is_err());
        image
            .apply(&MetadataRecord::BrokerUnregistered { id: 1 })
            .unwrap();
        assert!(image.broker(1).is_none());
    }

    #[test]
    fn an_old_single_node_log_replays_onto_this_node() {
        let old = [
            r#"{"type":"topic_created","name":"t","topic_id":"00000000-0000-0000-0000-000000000001","partitions":2,"configs":{}}"#,
            r#"{"type":"partitions_added","name":"t","partitions":3}"#,
        ];
        // The old log has no registration: this node registers after replay.
        let mut image = MetadataImage::default();
        for text in old {
            let record: MetadataRecord = serde_json::from_str(text).unwrap();
            assert!(
                image.check(&record).is_err(),
                "unassigned records are refused"
            );
            let record = image.upgrade(record, 5);
            image.apply(&record).unwrap();
        }
        let t = image.topic("t").unwrap();
        assert_eq!(t.partition_count(), 3);
        for p in &t.partitions {
            assert_eq!(
                (
                    p.replicas.as_slice(),
                    p.isr.as_slice(),
                    p.leader,
                    p.leader_epoch
                ),
                (&[5][..], &[5][..], 5, 0)
            );
        }
    }

    #[test]
    fn replay_gives_the_same_image() {
        let mut changes = BTreeMap::new();
        changes.insert("retention.ms".to_string(), Some("1000".to_string()));
        let records = vec![
            registered(1, None),
            created("a", 1),
            created("b", 2),
            MetadataRecord::PartitionsAdded {
                name: "b".into(),
                partitions: 4,
                assignments: vec![
                    PartitionRecord::new(2, vec![1]),
                    PartitionRecord::new(3, vec![1]),
                ],
            },
            MetadataRecord::TopicConfigChanged {
                name: "b".into(),
                changes,
            },
            MetadataRecord::TopicDeleted { name: "a".into() },
            MetadataRecord::ProducerIdsAllocated {
                next_producer_id: 1000,
                broker_id: Some(1),
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
        assert_eq!(b.partition_count(), 4);
        assert_eq!(
            b.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(one.next_producer_id(), 1000);
    }
}
