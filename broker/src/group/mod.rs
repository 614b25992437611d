//! Consumer groups: the classic group protocol and committed offsets.
//!
//! ```text
//! handlers/{find_coordinator,join_group,sync_group,heartbeat,leave_group,
//!           offset_commit,offset_fetch,list_groups,describe_groups,
//!           delete_groups,offset_delete}.rs
//!     └─► coordinator::Coordinator   (one per broker; waiters, lock, log writes)
//!            ├─► group::Group         (I/O-free state machine per group)
//!            ├─► offsets::OffsetTable (committed offsets per group)
//!            └─► records              (Kafka's __consumer_offsets schemas)
//!                  └─► replica::Partition::append_as_leader (the normal log path)
//! ```
//!
//! [`start`] runs once at broker start: it creates `__consumer_offsets` if
//! absent (through `Broker::propose`, like any topic), replays it, and
//! starts the timer task. On one node this broker coordinates every group.
//!
//! # Caveats
//! - The coordinator of a group is the leader of its offsets partition and
//!   follows it (see `coordinator`); until partition data replicates
//!   (issue 15) a new leader's log may not hold what the old one wrote.
//! - `__consumer_offsets` is compacted (`cleanup.policy=compact`, as in
//!   Kafka): the latest commit of each group/topic/partition and the latest
//!   metadata of each group stay, tombstones go after `delete.retention.ms`.
//!   One created by an older Sluice with `delete` is switched at start.
//! - Transactional offset commits (TxnOffsetCommit) and the KIP-848
//!   consumer protocol are not served.

pub mod coordinator;
pub mod error;
#[allow(clippy::module_inception)]
pub mod group;
pub mod limits;
pub mod offsets;
pub mod records;

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

pub use coordinator::{Coordinator, GroupConfig, Waiting};
pub use error::GroupError;
pub use records::OFFSETS_TOPIC;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::metadata::{ApplyError, ProposeError};
use crate::server::now_ms;

/// The coordinator settings a broker config gives.
pub fn group_config(config: &BrokerConfig) -> GroupConfig {
    GroupConfig {
        limits: group::GroupLimits {
            max_size: config.group_max_size.max(1),
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms.max(0),
        },
        offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
        offsets_retention_check_interval_ms: i64::try_from(
            config.offsets_retention_check_interval_ms,
        )
        .unwrap_or(i64::MAX),
    }
}

/// Topic configs of `__consumer_offsets` (see the module caveats).
fn offsets_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            limits::OFFSETS_TOPIC_SEGMENT_BYTES.to_string(),
        ),
        (
            "segment.index.bytes".to_string(),
            limits::OFFSETS_TOPIC_SEGMENT_INDEX_BYTES.to_string(),
        ),
    ])
}

/// Creates `__consumer_offsets` if absent, replays it into the
/// coordinator, and starts the coordinator's timer task.
pub async fn start(broker: &Arc<Broker>) -> Result<(), BrokerError> {
    let partitions = match broker.image().topic(OFFSETS_TOPIC) {
        Some(topic) => topic.partition_count(),
        None => {
            let wanted = broker.config().offsets_topic_num_partitions;
            let factor = offsets_replication_factor(broker).await;
            let created = crate::handlers::create_topics::create_topic(
                broker,
                OFFSETS_TOPIC,
                wanted,
                crate::handlers::create_topics::Replication::Factor(factor),
                offsets_topic_configs(),
                false,
            )
            .await;
            match created {
                Ok(topic) => topic.partition_count(),
                // Every node does this at start; another one won the race.
                Err(BrokerError::Metadata(ProposeError::Rejected(ApplyError::TopicExists(_)))) => {
                    broker
                        .image()
                        .topic(OFFSETS_TOPIC)
                        .map(|t| t.partition_count())
                        .unwrap_or(wanted)
                }
                Err(e) => return Err(e),
            }
        }
    };
    compact_offsets_topic(broker).await;
    // The image may hold the topic before this node's logs do (another
    // node created it): wait for the reconciler to open them first.
    broker.reconciler().applied_after().await?;
    let b = Arc::clone(broker);
    tokio::task::spawn_blocking(move || b.groups().load(b.replicas(), partitions))
        .await
        .map_err(|source| BrokerError::TaskFailed {
            task: "group load",
            source,
        })??;
    tokio::spawn(tick_loop(Arc::downgrade(broker)));
    Ok(())
}

/// The replication factor `__consumer_offsets` is created with:
/// `offsets.topic.replication.factor`, or one replica per broker in a
/// cluster with fewer brokers (Kafka refuses to create the topic then, and
/// no group works until enough brokers exist; Sluice prefers groups that
/// work with less redundancy, and says so in docs/operations.md). Every
/// voter is a broker, so it first waits, at most
/// [`limits::OFFSETS_TOPIC_BROKERS_WAIT_MS`], until as many brokers as it
/// asks for (up to the voters and brokers it knows of) are unfenced: a
/// cluster started all at once must not get the factor of its first node.
async fn offsets_replication_factor(broker: &Broker) -> i16 {
    let asked = broker.config().offsets_topic_replication_factor.max(1);
    let voters = broker
        .config()
        .controller_voters
        .as_deref()
        .and_then(|text| crate::config::parse_voters(text).ok())
        .map_or(1, |v| v.len());
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(limits::OFFSETS_TOPIC_BROKERS_WAIT_MS);
    loop {
        let image = broker.image();
        let known = voters.max(image.brokers().count());
        let unfenced = image.unfenced_brokers().count();
        let hoped = usize::try_from(asked).unwrap_or(1).min(known);
        if unfenced >= hoped || tokio::time::Instant::now() >= deadline {
            let factor = i16::try_from(unfenced.clamp(1, hoped.max(1))).unwrap_or(1);
            if factor < asked {
                tracing::warn!(
                    asked,
                    factor,
                    unfenced,
                    "__consumer_offsets created with fewer replicas than offsets.topic.replication.factor: the cluster has fewer brokers"
                );
            }
            return factor;
        }
        tokio::time::sleep(Duration::from_millis(limits::TICK_MS)).await;
    }
}

/// Switches a `__consumer_offsets` created by an older Sluice
/// (`cleanup.policy=delete`, `retention.ms=-1`) to `compact`, as Kafka's
/// is. Every node may do it at start; the change is the same. A failure
/// is logged and the broker starts: the topic then keeps growing, as
/// before.
async fn compact_offsets_topic(broker: &Arc<Broker>) {
    let changes = {
        let image = broker.image();
        let Some(topic) = image.topic(OFFSETS_TOPIC) else {
            return;
        };
        if topic.configs.get("cleanup.policy").map(String::as_str) == Some("compact") {
            return;
        }
        let mut changes =
            BTreeMap::from([("cleanup.policy".to_string(), Some("compact".to_string()))]);
        if topic.configs.contains_key("retention.ms") {
            changes.insert("retention.ms".to_string(), None);
        }
        changes
    };
    match crate::handlers::alter_configs::change_topic_config(broker, OFFSETS_TOPIC, changes, false)
        .await
    {
        Ok(()) => tracing::info!("__consumer_offsets switched to cleanup.policy=compact"),
        Err(e) => tracing::warn!(error = %e, "__consumer_offsets stays cleanup.policy=delete"),
    }
}

/// The coordinator's timer: session expiry, rebalance and sync deadlines,
/// offsets retention. Runs for as long as the broker lives; it must never
/// stop before that, or rebalances would wait forever on dead members.
async fn tick_loop(broker: Weak<Broker>) {
    let mut interval = tokio::time::interval(Duration::from_millis(limits::TICK_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(broker) = broker.upgrade() else {
            tracing::debug!("group coordinator timer stopped: the broker is gone");
            return;
        };
        let image = broker.image();
        broker
            .groups()
            .tick(broker.replicas(), &image, now_ms())
            .await;
    }
}
