//! Metadata (v0–12): brokers, cluster id, controller, and topics with their
//! partitions, leaders and replicas.
//!
//! Topic selection: v0 with an empty list, or v1+ with a null list, means
//! every topic; v1+ with an empty list means none. From v10 a topic may be
//! named by id. Unknown topics are auto-created (with `num.partitions`)
//! when the broker's `auto.create.topics.enable` and the request's
//! `allow_auto_topic_creation` (v4+; implied before) both say so.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::create_topic;
use crate::broker::Broker;
use crate::metadata::TopicImage;
use crate::metadata::topic_name::is_internal;

/// Kafka's "operations not requested" value for authorized-operations fields.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle_metadata(
    broker: &Arc<Broker>,
    version: i16,
    request: MetadataRequest,
) -> MetadataResponse {
    let id = broker.identity();
    let all = match &request.topics {
        None => true,
        Some(list) => version == 0 && list.is_empty(),
    };
    let topics = if all {
        broker
            .image()
            .topics()
            .map(|t| describe(broker, t))
            .collect()
    } else {
        let auto_create = broker.config().auto_create_topics_enable
            && (version < 4 || request.allow_auto_topic_creation);
        let mut out = Vec::new();
        for wanted in request.topics.iter().flatten() {
            out.push(lookup(broker, wanted, auto_create).await);
        }
        out
    };
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id.node_id))
                .with_host(StrBytes::from_string(id.host.clone()))
                .with_port(id.port),
        ])
        .with_cluster_id(Some(StrBytes::from_string(id.cluster_id.clone())))
        .with_controller_id(BrokerId(id.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

async fn lookup(
    broker: &Arc<Broker>,
    wanted: &kafka_protocol::messages::metadata_request::MetadataRequestTopic,
    auto_create: bool,
) -> MetadataResponseTopic {
    let image = broker.image();
    let Some(name) = wanted.name.as_ref().map(|n| n.0.to_string()) else {
        return match image.topic_by_id(wanted.topic_id) {
            Some(t) => describe(broker, t),
            None => error_topic(None, wanted.topic_id, ResponseError::UnknownTopicId),
        };
    };
    if let Some(t) = image.topic(&name) {
        return describe(broker, t);
    }
    if !auto_create {
        return error_topic(
            Some(name),
            wanted.topic_id,
            ResponseError::UnknownTopicOrPartition,
        );
    }
    match create_topic(
        broker,
        &name,
        -1,
        crate::handlers::create_topics::Replication::Factor(-1),
        BTreeMap::new(),
        false,
    )
    .await
    {
        Ok(t) => describe(broker, &t),
        Err(e) => match broker.image().topic(&name) {
            // Another request created it first: describe what exists.
            Some(t) => describe(broker, t),
            None => error_topic(Some(name), wanted.topic_id, e.error_code()),
        },
    }
}

fn describe(broker: &Broker, topic: &TopicImage) -> MetadataResponseTopic {
    let node = BrokerId(broker.identity().node_id);
    let partitions = (0..topic.partition_count())
        .map(|index| {
            let epoch = broker
                .replicas()
                .partition(&topic.name, index)
                .map_or(0, |p| p.leader_epoch());
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(epoch)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(is_internal(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn error_topic(
    name: Option<String>,
    id: uuid::Uuid,
    error: ResponseError,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
