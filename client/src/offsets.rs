//! ListOffsets: a partition's earliest or latest offset, or the first
//! offset at or after a timestamp. Used by the admin client and by the
//! consumer's `seek_to_*`.
//!
//! Partitions are grouped by leader, one request per leader, so this works
//! unchanged against several brokers.

use std::collections::BTreeMap;
use std::time::Instant;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::error::{Error, Result, partition_context};

/// Which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the offset the next record will get).
    Latest,
    /// The first offset whose timestamp is at or after this many
    /// milliseconds since the epoch (the log end offset if none is).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            Self::Earliest => -2,
            Self::Latest => -1,
            Self::Timestamp(ms) => ms,
        }
    }
}

/// The answer for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffset {
    pub partition: i32,
    pub offset: i64,
    /// The timestamp of the record found, or -1.
    pub timestamp: i64,
}

/// Looks up `spec` for each of `partitions` of `topic`.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
) -> Result<Vec<PartitionOffset>> {
    let deadline = Instant::now() + cluster.config().request_timeout;
    let topics = [topic.to_owned()];
    let mut found = cluster
        .retry(deadline, &topics, || async {
            cluster.topic(topic, false).await?;
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            for &p in partitions {
                by_leader
                    .entry(cluster.leader_id(topic, p))
                    .or_default()
                    .push(p);
            }
            let mut out = Vec::with_capacity(partitions.len());
            for (leader, parts) in by_leader {
                let Some(&first) = parts.first() else {
                    continue;
                };
                let conn = if leader < 0 {
                    cluster.leader(topic, first).await?
                } else {
                    cluster.node(leader).await?
                };
                let request = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|&p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p)
                                            .with_timestamp(spec.wire())
                                    })
                                    .collect(),
                            ),
                    ]);
                let response = conn.call(&request).await?;
                for t in response.topics {
                    for p in t.partitions {
                        Error::check(p.error_code, || partition_context(topic, p.partition_index))?;
                        out.push(PartitionOffset {
                            partition: p.partition_index,
                            offset: p.offset,
                            timestamp: p.timestamp,
                        });
                    }
                }
            }
            Ok(out)
        })
        .await?;
    found.sort_by_key(|p| p.partition);
    Ok(found)
}
