//! Test-only builders of metadata records and images, shared by the tests
//! of the image, election and the replica layer's leadership checks.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::image::MetadataImage;
use super::records::{BrokerId, Endpoint, MetadataRecord, PartitionRecord};

/// An unfenced broker `id` on 127.0.0.1:9092.
pub(crate) fn registered(id: BrokerId, rack: Option<&str>) -> MetadataRecord {
    MetadataRecord::BrokerRegistered {
        id,
        incarnation_id: Uuid::from_u128(id as u128),
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        }],
        rack: rack.map(str::to_string),
        fenced: false,
    }
}

/// Topic `name` with one partition per entry of `replicas`.
pub(crate) fn created_on(name: &str, replicas: &[&[BrokerId]]) -> MetadataRecord {
    MetadataRecord::TopicCreated {
        name: name.into(),
        topic_id: Uuid::from_u128(name.bytes().fold(1, |h, b| h * 31 + u128::from(b))),
        partitions: i32::try_from(replicas.len()).unwrap(),
        configs: BTreeMap::new(),
        assignments: replicas
            .iter()
            .enumerate()
            .map(|(p, r)| PartitionRecord::new(p as i32, r.to_vec()))
            .collect(),
    }
}

/// An image of unfenced `brokers` and topic `t` whose one partition lives
/// on `replicas` (the first leads, all in sync).
pub(crate) fn image_with_partition(brokers: &[BrokerId], replicas: &[BrokerId]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in brokers {
        image.apply(&registered(*id, None)).unwrap();
    }
    image.apply(&created_on("t", &[replicas])).unwrap();
    image
}
