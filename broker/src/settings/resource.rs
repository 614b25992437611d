//! Config resources (DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs): which resource types are served and how a
//! resource name is checked.
//!
//! | resource type | name | served |
//! |---|---|---|
//! | TOPIC (2) | an existing topic | described and altered |
//! | BROKER (4) | this node's id, or "" | described; altering is refused (static settings) |
//! | anything else | | INVALID_REQUEST |

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metadata::{TopicImage, topic_name};

/// `ConfigResource.Type.TOPIC`.
pub const RESOURCE_TOPIC: i8 = 2;
/// `ConfigResource.Type.BROKER`.
pub const RESOURCE_BROKER: i8 = 4;

/// The existing topic a TOPIC resource names.
pub fn topic_resource(broker: &Broker, name: &str) -> Result<TopicImage, BrokerError> {
    if let Some(reason) = topic_name::invalid_reason(name) {
        return Err(BrokerError::InvalidTopic {
            name: name.to_string(),
            reason,
        });
    }
    broker
        .image()
        .topic(name)
        .cloned()
        .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
            topic: name.to_string(),
            partition: -1,
        })
}

/// A BROKER resource must name this node, or be "" (the broker answering).
pub fn check_broker_resource(broker: &Broker, name: &str) -> Result<(), BrokerError> {
    let node = broker.identity().node_id;
    if name.is_empty() || name.parse::<i32>().ok() == Some(node) {
        Ok(())
    } else {
        Err(BrokerError::InvalidRequest(format!(
            "Unexpected broker id, expected {node} or empty string, but received {name}"
        )))
    }
}

/// Resource types other than TOPIC and BROKER (BROKER_LOGGER, CLIENT_METRICS,
/// GROUP, …) are not served.
pub fn unexpected_resource_type(resource_type: i8) -> BrokerError {
    BrokerError::InvalidRequest(format!(
        "resource type {resource_type} is not served; Sluice serves TOPIC (2) and BROKER (4)"
    ))
}
