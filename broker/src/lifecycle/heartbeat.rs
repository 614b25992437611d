//! The heartbeat task: every `broker.heartbeat.interval.ms`, and at once
//! when woken (controlled shutdown), tell the active controller this
//! incarnation is alive and whether it wants to shut down.
//!
//! A heartbeat needs no answer: the outcome (unfenced, fenced, leaderships
//! moved) arrives in the metadata this node follows. A lost heartbeat is
//! covered by the next; the session timeout spans several intervals.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::broker::Broker;
use crate::controller::Heartbeat;

/// Runs until aborted (at shutdown) or the broker is dropped.
pub async fn run(broker: Arc<Broker>) {
    let interval = super::heartbeat_interval(&broker);
    loop {
        let lifecycle = broker.lifecycle();
        broker.controller().heartbeat(Heartbeat {
            broker: broker.identity().node_id,
            incarnation: lifecycle.incarnation,
            want_shutdown: lifecycle.want_shutdown.load(Ordering::Relaxed),
        });
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = lifecycle.wake.notified() => {}
        }
    }
}
