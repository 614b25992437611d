//! DescribeCluster (v0–1): the brokers of the cluster, its id and its
//! controller, as the admin client's `describeCluster` shows them.
//!
//! Brokers are the registered, unfenced brokers of the metadata image;
//! the controller is the active one. v1 lets the client say which endpoints it
//! asked for; this listener serves brokers (endpoint type 1), so a request
//! for controllers (2) gets MISMATCHED_ENDPOINT_TYPE, as Kafka's brokers
//! answer it.
//!
//! # Caveats
//! - Authorized operations are not computed (there is no authorizer):
//!   `cluster_authorized_operations` is Kafka's "omitted" value.
//!
//! # References
//! KIP-700 (DescribeCluster), KIP-919 (endpoint types);
//! `AuthHelper.computeDescribeClusterResponse` in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::handlers::metadata::advertised_brokers;

/// `EndpointType.BROKER`.
const ENDPOINT_BROKERS: i8 = 1;

/// Kafka's value for "authorized operations not computed".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle_describe_cluster(
    broker: &Arc<Broker>,
    version: i16,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let base = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id().to_string()))
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    // endpoint_type exists in requests from v1; v0 always means brokers.
    if version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        let e = BrokerError::MismatchedEndpointType(request.endpoint_type);
        return base
            .with_controller_id(BrokerId(-1))
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(e.to_string())));
    }
    let brokers = advertised_brokers(&broker.image())
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(b.id)
                .with_host(b.host)
                .with_port(b.port)
                .with_rack(b.rack)
        })
        .collect();
    base.with_controller_id(BrokerId(active_controller(broker)))
        .with_brokers(brokers)
}

/// The id of the active controller (the Raft leader), or -1 when none is
/// known.
pub fn active_controller(broker: &Broker) -> i32 {
    broker.controller_id()
}
