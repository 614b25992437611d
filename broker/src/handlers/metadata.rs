//! Metadata (v0–12): brokers, cluster id, controller, and topics with their
//! partitions, leaders and replicas — all read from one published metadata
//! image, so every node answers alike.
//!
//! Brokers are the registered, unfenced ones (Kafka lists live brokers).
//! Per partition: leader, leader epoch, replicas and ISR from the image;
//! offline replicas are replicas whose broker is fenced or gone; a
//! partition without a leader carries LEADER_NOT_AVAILABLE (Kafka's
//! metadata cache does the same), so clients retry instead of sending to it.
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
use super::describe_cluster::active_controller;
use crate::broker::Broker;
use crate::metadata::topic_name::is_internal;
use crate::metadata::{MetadataImage, TopicImage};

/// Kafka's "operations not requested" value for authorized-operations fields.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle_metadata(
    broker: &Arc<Broker>,
    version: i16,
    request: MetadataRequest,
) -> MetadataResponse {
    let image = broker.image();
    let all = match &request.topics {
        None => true,
        Some(list) => version == 0 && list.is_empty(),
    };
    let topics = if all {
        image.topics().map(|t| describe(&image, t)).collect()
    } else {
        let auto_create = broker.config().auto_create_topics_enable
            && (version < 4 || request.allow_auto_topic_creation);
        let mut out = Vec::new();
        for wanted in request.topics.iter().flatten() {
            out.push(lookup(broker, wanted, auto_create).await);
        }
        out
    };
    // Brokers from the newest image: auto-creation above may have moved on.
    let image = broker.image();
    let brokers = advertised_brokers(&image)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(b.id)
                .with_host(b.host)
                .with_port(b.port)
                .with_rack(b.rack)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id().to_string())))
        .with_controller_id(BrokerId(active_controller(broker)))
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

/// A broker as Metadata and DescribeCluster advertise it, in wire types.
pub(crate) struct AdvertisedBroker {
    pub id: BrokerId,
    pub host: StrBytes,
    pub port: i32,
    pub rack: Option<StrBytes>,
}

/// The brokers clients may be sent to: registered, unfenced, and with a
/// client endpoint.
pub(crate) fn advertised_brokers(
    image: &MetadataImage,
) -> impl Iterator<Item = AdvertisedBroker> + '_ {
    image.unfenced_brokers().filter_map(|b| {
        let endpoint = b.client_endpoint()?;
        Some(AdvertisedBroker {
            id: BrokerId(b.id),
            host: StrBytes::from_string(endpoint.host.clone()),
            port: i32::from(endpoint.port),
            rack: b.rack.clone().map(StrBytes::from_string),
        })
    })
}

async fn lookup(
    broker: &Arc<Broker>,
    wanted: &kafka_protocol::messages::metadata_request::MetadataRequestTopic,
    auto_create: bool,
) -> MetadataResponseTopic {
    let image = broker.image();
    let Some(name) = wanted.name.as_ref().map(|n| n.0.to_string()) else {
        return match image.topic_by_id(wanted.topic_id) {
            Some(t) => describe(&image, t),
            None => error_topic(None, wanted.topic_id, ResponseError::UnknownTopicId),
        };
    };
    if let Some(t) = image.topic(&name) {
        return describe(&image, t);
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
        Ok(t) => describe(&broker.image(), &t),
        Err(e) => match broker.image().topic(&name) {
            // Another request created it first: describe what exists.
            Some(t) => describe(&broker.image(), t),
            None => error_topic(Some(name), wanted.topic_id, e.error_code()),
        },
    }
}

fn describe(image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    let ids = |list: &[i32]| list.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .iter()
        .zip(0..)
        .map(|(p, index)| {
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|b| !image.is_unfenced(*b))
                .collect();
            let error = if p.leader().is_none() {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline))
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
