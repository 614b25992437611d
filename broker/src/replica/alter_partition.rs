//! A leader's ISR changes, sent to the active controller as
//! `MetadataRecord::IsrChanged` (Kafka's AlterPartition, KIP-497).
//!
//! ```text
//! follower fetch caught up ─┐                       ┌─ applied: the image's new ISR and
//! maintenance: lagging     ─┴─► IsrChange ─► propose ┤   partition epoch reach the leader
//!                                                    └─ refused / timed out: the leader
//!                                                       forgets it and computes anew
//! ```
//!
//! # Invariants
//! - A partition has at most one change in flight (`replica::isr` keeps the
//!   pending one), so at most one task per led partition runs here.
//! - The controller applies a change only while the proposer still leads
//!   at the same leader epoch and the partition epoch it was computed
//!   from (see `MetadataImage::check`); a stale leader's change never
//!   lands.

use std::sync::Arc;

use super::partition::{IsrChange, Partition};
use crate::broker::Broker;
use crate::metadata::MetadataRecord;

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
        match broker.propose_metadata(record).await {
            Ok(_) => {
                tracing::info!(topic = %partition.topic(), partition = partition.index(), isr = ?change.proposal.isr, "ISR changed");
            }
            Err(e) => {
                tracing::info!(topic = %partition.topic(), partition = partition.index(), isr = ?change.proposal.isr, error = %e, "ISR change not applied; recomputed at the next fetch or check");
                partition.isr_change_failed(&change);
            }
        }
    });
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
