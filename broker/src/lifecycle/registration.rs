//! Registering this start's incarnation and waiting to be unfenced.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::controller::liveness;
use crate::error::BrokerError;
use crate::metadata::{Endpoint, MetadataRecord, ProposeError};

/// Attempts to register before the start fails: each waits
/// [`REGISTER_RETRY`], so a start rides out about ten seconds of elections
/// or of racing changes.
const REGISTER_ATTEMPTS: u32 = 50;
const REGISTER_RETRY: Duration = Duration::from_millis(200);

/// How often waiting for the unfencing is logged.
const WAIT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Proposes this node's registration: its client endpoint, rack and this
/// start's incarnation, fenced; leaderships an earlier incarnation still
/// holds move away in the same record (that process is gone). Retried
/// when it loses a race with another change (refused at apply) or an
/// election.
pub async fn register(broker: &Arc<Broker>) -> Result<(), BrokerError> {
    let identity = broker.identity();
    let registration = MetadataRecord::BrokerRegistered {
        id: identity.node_id,
        incarnation_id: broker.lifecycle().incarnation,
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: identity.host.clone(),
            port: u16::try_from(identity.port).unwrap_or(0),
        }],
        rack: broker.config().broker_rack.clone(),
        fenced: true,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let record = liveness::register(&broker.image(), registration.clone());
        match broker.propose(record).await {
            Ok(_) => {
                tracing::info!(
                    node_id = identity.node_id,
                    incarnation = %broker.lifecycle().incarnation,
                    "broker registered"
                );
                return Ok(());
            }
            Err(BrokerError::Metadata(ProposeError::Stopped)) => {
                return Err(BrokerError::Metadata(ProposeError::Stopped));
            }
            Err(e) if attempt < REGISTER_ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "registration not applied; retrying");
                tokio::time::sleep(REGISTER_RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits until the image holds this incarnation unfenced, logging while
/// it waits (the active controller unfences at the first heartbeat it
/// counts; a quorum that is not there delays it).
pub async fn wait_unfenced(broker: &Arc<Broker>) {
    let id = broker.identity().node_id;
    let mut images = broker.controller().subscribe();
    let started = tokio::time::Instant::now();
    let mut next_log = started + WAIT_LOG_EVERY;
    loop {
        let unfenced = broker.unfenced_in(&images.borrow_and_update());
        if unfenced {
            tracing::info!(
                node_id = id,
                waited_ms = started.elapsed().as_millis() as u64,
                "broker unfenced"
            );
            return;
        }
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            () = tokio::time::sleep_until(next_log) => {
                tracing::warn!(node_id = id, "waiting for the active controller to unfence this broker");
                next_log += WAIT_LOG_EVERY;
            }
        }
    }
}
