//! OffsetDelete (v0): delete some committed offsets of a group, refused
//! (GROUP_SUBSCRIBED_TO_TOPIC) for topics a current member subscribes to.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::server::now_ms;

pub async fn handle_offset_delete(
    broker: &Arc<Broker>,
    _version: i16,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let partitions = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let results = broker
        .groups()
        .delete_offsets(broker.replicas(), &request.group_id.0, partitions, now_ms())
        .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for (topic, partition, result) in results {
        let entry = OffsetDeleteResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(result.err().map_or(0, |e| e.code()));
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
