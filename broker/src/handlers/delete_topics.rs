//! DeleteTopics (v1–5): delete topics by name.
//!
//! ```text
//! per name ─► named twice in the request?   INVALID_REQUEST (both answers)
//!          ─► internal (__consumer_offsets, __transaction_state)? INVALID_TOPIC_EXCEPTION
//!          ─► propose TopicDeleted ─► the image forgets the topic
//!             ─► ReplicaManager::reconcile closes and deletes its logs
//!          unknown name ─► UNKNOWN_TOPIC_OR_PARTITION
//! ```
//!
//! The answer is sent once the deletion record is durable and the logs are
//! gone, so `timeout_ms` is never reached on one node and is not waited on.
//!
//! # Caveats
//! - v6 (topics named by id) is not served: Sluice advertises 1–5.
//! - Kafka's broker lets an administrator delete its internal topics (only
//!   `kafka-topics.sh` refuses, client-side). Sluice refuses at the broker:
//!   committed offsets and transaction state live there, and a client-side
//!   guard does not protect a broker every Kafka client can talk to.
//!
//! # References
//! `ControllerApis.deleteTopics` in Kafka (duplicate names refused with
//! INVALID_REQUEST "Duplicate topic name.").

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metadata::MetadataRecord;
use crate::metadata::topic_name::is_internal;

pub async fn handle_delete_topics(
    broker: &Arc<Broker>,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let mut times_named: BTreeMap<&str, usize> = BTreeMap::new();
    for name in &request.topic_names {
        *times_named.entry(name.0.as_str()).or_default() += 1;
    }
    let mut responses = Vec::with_capacity(request.topic_names.len());
    for name in &request.topic_names {
        let result = if times_named.get(name.0.as_str()).is_some_and(|n| *n > 1) {
            Err(BrokerError::InvalidRequest("Duplicate topic name.".into()))
        } else {
            delete_one(broker, name.0.as_str()).await
        };
        responses.push(answer(name, version, result));
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

async fn delete_one(broker: &Arc<Broker>, name: &str) -> Result<(), BrokerError> {
    if is_internal(name) {
        return Err(BrokerError::InvalidTopic {
            name: name.to_string(),
            reason: "internal topics cannot be deleted",
        });
    }
    // Checked here as well as by the controller so an unknown name is
    // answered without a round trip through the metadata writer.
    if broker.image().topic(name).is_none() {
        return Err(BrokerError::UnknownTopicOrPartition {
            topic: name.to_string(),
            partition: -1,
        });
    }
    broker
        .propose(MetadataRecord::TopicDeleted {
            name: name.to_string(),
        })
        .await?;
    tracing::info!(topic = name, "topic deleted");
    Ok(())
}

fn answer(name: &TopicName, version: i16, result: Result<(), BrokerError>) -> DeletableTopicResult {
    let out = DeletableTopicResult::default().with_name(Some(name.clone()));
    match result {
        Ok(()) => out,
        Err(e) => {
            tracing::debug!(topic = %name.0, error = %e, "delete topic refused");
            let out = out.with_error_code(e.code());
            // error_message exists from v5 on; setting it earlier is dropped
            // by the encoder, but keep the response honest to its version.
            if version >= 5 {
                out.with_error_message(Some(StrBytes::from_string(e.to_string())))
            } else {
                out
            }
        }
    }
}
