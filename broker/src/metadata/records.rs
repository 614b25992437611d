//! Metadata records: the changes to cluster metadata, in the order they were
//! accepted. Replaying them from the start rebuilds the [`MetadataImage`].
//!
//! Today a single node writes them to its own [`MetadataLog`]; the cluster
//! work replaces that writer with a Raft log carrying the same records.
//!
//! [`MetadataImage`]: super::image::MetadataImage
//! [`MetadataLog`]: super::log::MetadataLog

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One accepted change to cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    /// A topic came into being with its partitions and config overrides.
    TopicCreated {
        name: String,
        topic_id: Uuid,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    /// A topic's partition count grew (it never shrinks).
    PartitionsAdded { name: String, partitions: i32 },
    /// Config overrides set (`Some`) or removed back to the default (`None`).
    TopicConfigChanged {
        name: String,
        changes: BTreeMap<String, Option<String>>,
    },
    /// A topic was deleted; its logs are removed.
    TopicDeleted { name: String },
    /// Producer ids below `next_producer_id` may have been handed out.
    ProducerIdsAllocated { next_producer_id: i64 },
}
