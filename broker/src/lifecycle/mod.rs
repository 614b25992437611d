//! The broker's lifecycle in a cluster (KIP-631): register with a new
//! incarnation, heartbeat to the active controller, be unfenced, and on
//! SIGTERM/SIGINT shut down under control.
//!
//! ```text
//! start ─► wait for a controller leader ─► agree on the cluster id
//!       ─► register (new incarnation, fenced; leaderships an earlier
//!          incarnation still held move away in the same record)
//!       ─► heartbeat every broker.heartbeat.interval.ms
//!       ─► the active controller unfences it (leaderless partitions it can
//!          lead get it as leader in the same record) ─► serve
//! missed broker.session.timeout.ms ─► the controller fences it and moves
//! (or its controller connection        its leaderships (controller/liveness.rs)
//!  closed and it did not dial again)
//! SIGTERM ─► heartbeat with want_shutdown ─► the controller moves its
//!            leaderships and fences it ─► the broker sees that in its image
//!            (or a bound passes) ─► the active controller hands Raft
//!            leadership to another voter ─► drain connections, close
//!            logs, exit
//! restart ─► a new incarnation: registered fenced again, unfenced by its
//!            first heartbeat once its registration has applied here
//! ```
//!
//! # Invariants
//! - Listening starts only once this node is unfenced with this start's
//!   incarnation (Kafka's broker waits for its initial unfencing too), so
//!   a client never reaches a node the cluster considers fenced at start.
//! - The first heartbeat is sent only after this node applied its own
//!   registration: a heartbeat the controller counts means the broker has
//!   caught up at least to its registration.
//! - A single node (no other unfenced broker to take its leaderships)
//!   skips controlled shutdown and stops at once, as before clusters.
//!
//! Files: [`registration`] (register and wait for unfencing),
//! [`heartbeat`] (the heartbeat task), [`shutdown`] (controlled shutdown),
//! [`cluster_id`] (`meta.properties` and the log agree on one id).

pub mod cluster_id;
pub mod heartbeat;
pub mod registration;
pub mod shutdown;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

use crate::broker::Broker;
use crate::error::BrokerError;

/// Default `broker.heartbeat.interval.ms` (Kafka's is 2000): six
/// heartbeats per session.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 500;

/// Default `broker.session.timeout.ms`. Kafka's is 9000; a silent
/// leader's partitions (a hung process, a network partition) are
/// unavailable for about this long, and the plan Sluice serves wants a new
/// leader within 5 s, so Sluice fences after 3 s. A crashed process is
/// fenced sooner, when its controller connection closes
/// (`controller::liveness`).
/// The session is counted in controller ticks, so a starved controller
/// fences late, never early; a broker starved for 3 s is fenced and
/// rejoins (leaders and ISR follow) once it heartbeats again.
pub const SESSION_TIMEOUT_MS_DEFAULT: u64 = 3000;

/// This start's lifecycle state, owned by the [`Broker`].
#[derive(Debug)]
pub struct Lifecycle {
    /// New at every start (Kafka's `incarnationId`).
    pub incarnation: Uuid,
    /// Set by controlled shutdown; every heartbeat after it says so.
    pub want_shutdown: AtomicBool,
    /// Wakes the heartbeat task to send at once.
    pub wake: Notify,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self {
            incarnation: Uuid::new_v4(),
            want_shutdown: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

/// The running part of the lifecycle: the heartbeat task.
pub struct Running {
    heartbeats: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Controlled shutdown (see [`shutdown`]), then the heartbeats stop;
    /// last, an active controller hands Raft leadership to another voter.
    pub async fn shutdown(self, broker: &Arc<Broker>) {
        shutdown::controlled_shutdown(broker).await;
        self.heartbeats.abort();
        shutdown::hand_over_controller(broker).await;
    }
}

/// Everything between "a controller leader is known" and "serve": the
/// cluster id, registration, heartbeats, and waiting to be unfenced.
pub async fn start(broker: &Arc<Broker>) -> Result<Running, BrokerError> {
    cluster_id::agree(broker).await?;
    registration::register(broker).await?;
    let heartbeats = tokio::spawn(heartbeat::run(Arc::clone(broker)));
    registration::wait_unfenced(broker).await;
    Ok(Running { heartbeats })
}

/// The heartbeat interval from the config (at least 10 ms).
pub(crate) fn heartbeat_interval(broker: &Broker) -> Duration {
    Duration::from_millis(broker.config().broker_heartbeat_interval_ms.max(10))
}
