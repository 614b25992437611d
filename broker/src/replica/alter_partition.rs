//! A leader's ISR changes, sent to the active controller as
//! `MetadataRecord::IsrChanged` (Kafka's AlterPartition, KIP-497).
//!
//! ```text
//! follower fetch caught up ─┐                       ┌─ applied: the image's new ISR and
//! maintenance: lagging     ─┴─► IsrChange ─► propose ┤   partition epoch reach the leader
//!                                                    ├─ refused: the leader forgets it
//!                                                    │   and computes anew
//!                                                    ├─ stale: pending until the image
//!                                                    │   that moved the partition on
//!                                                    └─ no answer: sent again, as it is
//! ```
//!
//! # Invariants
//! - A partition has at most one change in flight (`replica::isr` keeps the
//!   pending one), so at most one task per led partition runs here.
//! - A change whose fate is unknown is never forgotten: it is sent again
//!   (Kafka's AlterPartitionManager retries the same way) until the
//!   controller answers or an image settles it, and meanwhile its replicas
//!   count in the maximal ISR that holds the high watermark back.
//! - The controller applies a change only while the proposer still leads
//!   at the same leader epoch and the partition epoch it was computed
//!   from (see `MetadataImage::check`); a stale leader's change never
//!   lands.

use std::sync::Arc;
use std::time::Duration;

use super::isr::IsrChangeFailure;
use super::partition::{IsrChange, Partition};
use crate::admin::METRICS;
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metadata::{ApplyError, MetadataRecord, ProposeError};

/// The first pause before a change of unknown fate is sent again; it
/// doubles up to [`RETRY_BACKOFF_MAX`].
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Proposes `change` of `partition`, led by this node, in the background.
pub fn propose(broker: &Arc<Broker>, partition: Arc<Partition>, change: IsrChange) {
    let broker = Arc::clone(broker);
    tokio::spawn(async move {
        let record = MetadataRecord::IsrChanged {
            topic: partition.topic().to_string(),
            partition: partition.index(),
            leader: broker.identity().node_id,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.proposal.partition_epoch,
            isr: change.proposal.isr.clone(),
        };
        let before = broker
            .image()
            .partition(partition.topic(), partition.index())
            .map_or(0, |p| p.isr.len());
        let mut backoff = RETRY_BACKOFF_MIN;
        for attempt in 0u64.. {
            let failure = match broker.propose_metadata(record.clone()).await {
                Ok(_) => {
                    METRICS
                        .replication
                        .isr_changed(before, change.proposal.isr.len());
                    tracing::info!(topic = %partition.topic(), partition = partition.index(), isr = ?change.proposal.isr, "ISR changed");
                    return;
                }
                Err(e) => {
                    let failure = failure_of(&e);
                    // Once per change at info: while the controller is
                    // away every led partition retries every 2 s.
                    if attempt == 0 {
                        tracing::info!(topic = %partition.topic(), partition = partition.index(), isr = ?change.proposal.isr, error = %e, ?failure, "ISR change not applied; retrying while its fate is unknown");
                    } else {
                        tracing::debug!(topic = %partition.topic(), partition = partition.index(), attempt, error = %e, ?failure, "ISR change not applied");
                    }
                    failure
                }
            };
            if !partition.isr_change_failed(&change, failure) {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    });
}

/// What a failed proposal tells about the change's fate.
fn failure_of(error: &BrokerError) -> IsrChangeFailure {
    match error {
        BrokerError::Metadata(ProposeError::Rejected(ApplyError::IsrChangeRefused {
            stale: true,
            ..
        })) => IsrChangeFailure::Stale,
        BrokerError::Metadata(ProposeError::Rejected(_)) => IsrChangeFailure::Refused,
        _ => IsrChangeFailure::Unknown,
    }
}

/// The maintenance pass: proposes out the ISR members of every partition
/// this node leads that stopped keeping up.
pub fn shrink_lagging(broker: &Arc<Broker>, now_ms: i64) {
    for p in broker.replicas().all_partitions() {
        match p.maybe_shrink_isr(now_ms) {
            Ok(Some(change)) => propose(broker, p, change),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(topic = %p.topic(), partition = p.index(), error = %e, "ISR check skipped");
            }
        }
    }
}
