//! InitProducerId (v0–4): hands an idempotent producer its id and epoch.
//!
//! Every call gets a fresh id (from a block reserved in the metadata log, so
//! ids are never reused across restarts) and epoch 0, as Kafka's
//! coordinator does for producers without a transactional id, even when
//! they name their previous id and epoch (v3+, KIP-360). Transactional ids
//! are refused: transactions are not served.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;
use crate::error::BrokerError;

pub async fn handle_init_producer_id(
    broker: &Arc<Broker>,
    _version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |e: BrokerError| {
        tracing::debug!(error = %e, "InitProducerId refused");
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        return failed(BrokerError::Unsupported("transactions"));
    }
    match broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => failed(e),
    }
}
