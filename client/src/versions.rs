//! Which version of each API to speak with a broker: the highest version
//! both sides support (Kafka's ApiVersions negotiation, KIP-35).
//!
//! The client's own ranges are the versions whose fields this crate fills
//! in correctly; each is inside what the vendored kafka-protocol encodes.
//!
//! # Caveats
//! - OffsetFetch stops at v7 and FindCoordinator at v3: later versions
//!   batch several groups per request, which this client does not need.
//! - Fetch stops at v12: v13 names topics by id.

use std::collections::HashMap;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::ApiVersion;

/// `(api, min, max)` this client speaks.
pub(crate) const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 1, 3),
    (ApiKey::JoinGroup, 2, 9),
    (ApiKey::SyncGroup, 1, 5),
    (ApiKey::Heartbeat, 1, 4),
    (ApiKey::LeaveGroup, 1, 3),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    // The broker's replica fetcher, against leaders without Fetch v12
    // (diverging epochs in the Fetch answer).
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ElectLeaders, 1, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
];

/// The negotiated version per API for one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct VersionTable {
    chosen: HashMap<i16, i16>,
}

impl VersionTable {
    /// A table that only knows ApiVersions at `version` (for the handshake).
    pub(crate) fn handshake(version: i16) -> Self {
        let mut chosen = HashMap::new();
        chosen.insert(ApiKey::ApiVersions as i16, version);
        Self { chosen }
    }

    /// Intersects the client's ranges with what the broker advertised.
    pub(crate) fn negotiate(broker: &[ApiVersion]) -> Self {
        let chosen = CLIENT_VERSIONS
            .iter()
            .filter_map(|&(key, min, max)| {
                let theirs = broker.iter().find(|a| a.api_key == key as i16)?;
                let high = max.min(theirs.max_version);
                let low = min.max(theirs.min_version);
                (low <= high).then_some((key as i16, high))
            })
            .collect();
        Self { chosen }
    }

    /// The version to use for `api`, or `None` when there is none in common.
    pub(crate) fn get(&self, api: ApiKey) -> Option<i16> {
        self.chosen.get(&(api as i16)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advertised(key: ApiKey, min: i16, max: i16) -> ApiVersion {
        ApiVersion::default()
            .with_api_key(key as i16)
            .with_min_version(min)
            .with_max_version(max)
    }

    #[test]
    fn picks_the_highest_common_version_or_none() {
        let t = VersionTable::negotiate(&[
            advertised(ApiKey::Produce, 0, 11),
            advertised(ApiKey::Fetch, 4, 17),
            advertised(ApiKey::Metadata, 0, 0),
            advertised(ApiKey::OffsetFetch, 8, 9),
        ]);
        assert_eq!(t.get(ApiKey::Produce), Some(11));
        assert_eq!(t.get(ApiKey::Fetch), Some(12));
        assert_eq!(t.get(ApiKey::Metadata), None, "client speaks 1+");
        assert_eq!(t.get(ApiKey::OffsetFetch), None, "no overlap");
        assert_eq!(t.get(ApiKey::JoinGroup), None, "not advertised");
    }

    #[test]
    fn client_ranges_are_inside_what_kafka_protocol_encodes() {
        use kafka_protocol::messages::*;
        use kafka_protocol::protocol::Message;
        fn range<M: Message>() -> (i16, i16) {
            (M::VERSIONS.min, M::VERSIONS.max)
        }
        for &(key, min, max) in CLIENT_VERSIONS {
            let (lo, hi) = match key {
                ApiKey::Produce => range::<ProduceRequest>(),
                ApiKey::Fetch => range::<FetchRequest>(),
                ApiKey::ListOffsets => range::<ListOffsetsRequest>(),
                ApiKey::Metadata => range::<MetadataRequest>(),
                ApiKey::ApiVersions => range::<ApiVersionsRequest>(),
                ApiKey::CreateTopics => range::<CreateTopicsRequest>(),
                ApiKey::DeleteTopics => range::<DeleteTopicsRequest>(),
                ApiKey::InitProducerId => range::<InitProducerIdRequest>(),
                ApiKey::DescribeConfigs => range::<DescribeConfigsRequest>(),
                ApiKey::IncrementalAlterConfigs => range::<IncrementalAlterConfigsRequest>(),
                ApiKey::CreatePartitions => range::<CreatePartitionsRequest>(),
                ApiKey::DescribeCluster => range::<DescribeClusterRequest>(),
                ApiKey::FindCoordinator => range::<FindCoordinatorRequest>(),
                ApiKey::JoinGroup => range::<JoinGroupRequest>(),
                ApiKey::SyncGroup => range::<SyncGroupRequest>(),
                ApiKey::Heartbeat => range::<HeartbeatRequest>(),
                ApiKey::LeaveGroup => range::<LeaveGroupRequest>(),
                ApiKey::OffsetCommit => range::<OffsetCommitRequest>(),
                ApiKey::OffsetFetch => range::<OffsetFetchRequest>(),
                ApiKey::ListGroups => range::<ListGroupsRequest>(),
                ApiKey::DescribeGroups => range::<DescribeGroupsRequest>(),
                ApiKey::DeleteGroups => range::<DeleteGroupsRequest>(),
                ApiKey::OffsetForLeaderEpoch => range::<OffsetForLeaderEpochRequest>(),
                ApiKey::ElectLeaders => range::<ElectLeadersRequest>(),
                ApiKey::AlterPartitionReassignments => {
                    range::<AlterPartitionReassignmentsRequest>()
                }
                ApiKey::ListPartitionReassignments => range::<ListPartitionReassignmentsRequest>(),
                other => panic!("no range check for {other:?}"),
            };
            assert!(
                lo <= min && max <= hi,
                "{key:?}: {min}..={max} vs {lo}..={hi}"
            );
        }
    }
}
