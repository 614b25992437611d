//! Controlled shutdown (Kafka's `wantShutDown`): before a broker of a
//! cluster closes, the active controller moves its leaderships to other
//! in-sync replicas and fences it, so clients find the new leaders at
//! once instead of after the session timeout.
//!
//! ```text
//! stop signal ─► want_shutdown = true, heartbeat now
//!   active controller: Atomic[PartitionChanged… (leader moved, out of
//!   the ISR), BrokerFenced]
//!   ─► this node's image shows it fenced, leading nothing ─► go on closing
//!   (or the bound passes: close anyway; the session timeout fences it)
//! ```
//!
//! Then, if this node is the active controller, it hands Raft leadership to
//! the voter most caught up (raft-rs's leader transfer, as KRaft's
//! `EndQuorumEpoch`), so the metadata stays writable through a rolling
//! restart instead of waiting out an election timeout.
//!
//! # Invariants
//! - Waits at most [`bound`]: the session timeout, after which the
//!   controller would fence this broker anyway.
//! - A single node (no other unfenced broker) does not ask: there is
//!   nobody to hand leadership to, and it stops as before clusters.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::broker::Broker;

/// How long controlled shutdown may wait for the controller.
pub fn bound(broker: &Broker) -> Duration {
    Duration::from_millis(broker.config().broker_session_timeout_ms.max(100))
}

/// Asks the controller to move this broker's leaderships away and waits
/// until they have moved (or [`bound`] passes).
pub async fn controlled_shutdown(broker: &Arc<Broker>) {
    let id = broker.identity().node_id;
    let incarnation = broker.lifecycle().incarnation;
    let others = broker.image().unfenced_brokers().any(|b| b.id != id);
    if !others {
        return;
    }
    let started = tokio::time::Instant::now();
    tracing::info!(
        node_id = id,
        "controlled shutdown: asking the controller to move leaderships away"
    );
    broker
        .lifecycle()
        .want_shutdown
        .store(true, Ordering::Relaxed);
    broker.lifecycle().wake.notify_one();
    let mut images = broker.controller().subscribe();
    let done = tokio::time::timeout(bound(broker), async {
        loop {
            let moved = {
                let image = images.borrow_and_update();
                image.led_by(id).is_none()
                    && image
                        .broker(id)
                        .is_none_or(|b| b.fenced || b.incarnation_id != incarnation)
            };
            if moved || images.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    let waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match done {
        Ok(()) => tracing::info!(
            node_id = id,
            waited_ms,
            "controlled shutdown: leaderships moved"
        ),
        Err(_) => tracing::warn!(
            node_id = id,
            waited_ms,
            "controlled shutdown: the controller did not move leaderships in time; stopping anyway"
        ),
    }
}

/// As the active controller, hands Raft leadership to another voter
/// before stopping (bounded by `controller::limits::TRANSFER_BOUND`).
pub async fn hand_over_controller(broker: &Arc<Broker>) {
    let own = u64::try_from(broker.identity().node_id).unwrap_or(0);
    if broker.controller().leader() != Some(own) {
        return;
    }
    let started = tokio::time::Instant::now();
    let moved = broker
        .controller()
        .transfer_leadership(crate::controller::limits::TRANSFER_BOUND)
        .await;
    let waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match moved {
        Some(leader) => tracing::info!(
            new_controller = leader,
            waited_ms,
            "controlled shutdown: raft leadership handed over"
        ),
        None => tracing::info!(
            waited_ms,
            "controlled shutdown: raft leadership not handed over (no other voter took it); the others elect after their timeout"
        ),
    }
}
