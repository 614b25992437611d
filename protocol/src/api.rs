//! The APIs and versions Sluice serves: the one table that feeds the
//! ApiVersions response, the dispatcher's version check and
//! `docs/compatibility.md`.
//!
//! Each entry has two ranges. `advertised` is what ApiVersions tells
//! clients; `served` is what the broker actually handles. They differ only
//! for Produce: Kafka 4.0 removed Produce v0–2 but still advertises min 0,
//! because librdkafka infers "this broker understands compressed message
//! sets" from the whole advertised set and sends LZ4/zstd uncompressed
//! otherwise. A request inside `advertised` but outside `served` is answered
//! with UNSUPPORTED_VERSION.
//!
//! The consumer-group APIs are a separate table, [`GROUP_APIS`], so the
//! broker can advertise them only once it serves them. Note that librdkafka
//! also infers codec support from FindCoordinator being advertised (see
//! `shared/crates.md`): until the group set is advertised, librdkafka
//! producers may send LZ4 uncompressed.
//!
//! # Invariants
//! - `served ⊆ advertised`, both non-empty, and `served` lies inside what
//!   the vendored kafka-protocol can decode and encode (its generated
//!   `VERSIONS`); checked by tests.
//! - Every API key appears at most once across [`CORE_APIS`] and
//!   [`GROUP_APIS`].
//! - Produce ≥ 3 and Fetch ≥ 4 are served together: librdkafka only uses
//!   RecordBatch v2 when it sees both.
//!
//! # Limits
//! - Only message format v2 is served: Produce < 3 and Fetch < 4 would
//!   need the v0/v1 message sets.
//!
//! # References
//! KIP-35/KIP-511 (ApiVersions), KIP-896 (removal of old protocol versions
//! in Kafka 4.0), KAFKA-18659 (advertising Produce v0 for librdkafka).

use std::fmt::Write as _;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::ApiVersion;

/// One API: what is advertised and what is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    pub api_key: ApiKey,
    /// `(min, max)` as written into ApiVersionsResponse.
    pub advertised: (i16, i16),
    /// `(min, max)` the broker decodes and answers.
    pub served: (i16, i16),
}

impl ApiSupport {
    /// An API advertised exactly as served.
    const fn same(api_key: ApiKey, min: i16, max: i16) -> Self {
        Self {
            api_key,
            advertised: (min, max),
            served: (min, max),
        }
    }

    /// Whether the broker handles `version` of this API.
    pub fn serves(&self, version: i16) -> bool {
        (self.served.0..=self.served.1).contains(&version)
    }
}

/// Data-plane and admin APIs the broker serves today.
pub const CORE_APIS: &[ApiSupport] = &[
    ApiSupport {
        api_key: ApiKey::Produce,
        advertised: (0, 11),
        served: (3, 11),
    },
    ApiSupport::same(ApiKey::Fetch, 4, 12),
    ApiSupport::same(ApiKey::ListOffsets, 1, 7),
    ApiSupport::same(ApiKey::Metadata, 0, 12),
    ApiSupport::same(ApiKey::ApiVersions, 0, 3),
    ApiSupport::same(ApiKey::CreateTopics, 2, 7),
    ApiSupport::same(ApiKey::DeleteTopics, 1, 5),
    ApiSupport::same(ApiKey::DeleteRecords, 0, 2),
    ApiSupport::same(ApiKey::InitProducerId, 0, 4),
    ApiSupport::same(ApiKey::OffsetForLeaderEpoch, 2, 4),
    ApiSupport::same(ApiKey::DescribeConfigs, 1, 4),
    ApiSupport::same(ApiKey::AlterConfigs, 0, 2),
    ApiSupport::same(ApiKey::CreatePartitions, 0, 3),
    ApiSupport::same(ApiKey::IncrementalAlterConfigs, 0, 1),
    ApiSupport::same(ApiKey::DescribeCluster, 0, 1),
    ApiSupport::same(ApiKey::ElectLeaders, 0, 2),
    ApiSupport::same(ApiKey::AlterPartitionReassignments, 0, 1),
    ApiSupport::same(ApiKey::ListPartitionReassignments, 0, 0),
];

/// The classic consumer-group APIs, advertised once the group coordinator
/// serves them.
pub const GROUP_APIS: &[ApiSupport] = &[
    ApiSupport::same(ApiKey::OffsetCommit, 2, 9),
    ApiSupport::same(ApiKey::OffsetFetch, 1, 8),
    ApiSupport::same(ApiKey::FindCoordinator, 0, 4),
    ApiSupport::same(ApiKey::JoinGroup, 0, 9),
    ApiSupport::same(ApiKey::Heartbeat, 0, 4),
    ApiSupport::same(ApiKey::LeaveGroup, 0, 5),
    ApiSupport::same(ApiKey::SyncGroup, 0, 5),
    ApiSupport::same(ApiKey::DescribeGroups, 0, 5),
    ApiSupport::same(ApiKey::ListGroups, 0, 4),
    ApiSupport::same(ApiKey::DeleteGroups, 0, 2),
    ApiSupport::same(ApiKey::OffsetDelete, 0, 0),
];

/// The entry for `api_key` in either table.
pub fn api_support(api_key: ApiKey) -> Option<&'static ApiSupport> {
    CORE_APIS
        .iter()
        .chain(GROUP_APIS)
        .find(|a| a.api_key == api_key)
}

/// The `(min, max)` versions the broker handles for `api_key` (Produce:
/// `(3, 11)`), or `None` for an API Sluice does not know how to serve.
/// Covers both tables; whether the group set is live is the broker's call.
pub fn served_range(api_key: ApiKey) -> Option<(i16, i16)> {
    api_support(api_key).map(|a| a.served)
}

/// The `(min, max)` ApiVersions advertises for `api_key` (Produce:
/// `(0, 11)`).
pub fn advertised_range(api_key: ApiKey) -> Option<(i16, i16)> {
    api_support(api_key).map(|a| a.advertised)
}

/// Whether the broker handles `version` of `api_key`.
pub fn is_served(api_key: ApiKey, version: i16) -> bool {
    api_support(api_key).is_some_and(|a| a.serves(version))
}

/// The `api_keys` list of an ApiVersionsResponse, ordered by key, with the
/// group APIs when `include_groups`.
pub fn api_versions_keys(include_groups: bool) -> Vec<ApiVersion> {
    let groups = if include_groups { GROUP_APIS } else { &[] };
    let mut keys: Vec<ApiVersion> = CORE_APIS
        .iter()
        .chain(groups)
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.api_key as i16)
                .with_min_version(a.advertised.0)
                .with_max_version(a.advertised.1)
        })
        .collect();
    keys.sort_by_key(|k| k.api_key);
    keys
}

/// A Markdown table of both sets, for `docs/compatibility.md`.
pub fn compatibility_table_markdown() -> String {
    let mut out =
        String::from("| API | key | advertised | served | set |\n|---|---|---|---|---|\n");
    let rows = CORE_APIS
        .iter()
        .map(|a| (a, "core"))
        .chain(GROUP_APIS.iter().map(|a| (a, "groups")));
    for (a, set) in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {:?} | {} | {}–{} | {}–{} | {set} |",
            a.api_key, a.api_key as i16, a.advertised.0, a.advertised.1, a.served.0, a.served.1
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn served_is_inside_advertised_and_inside_kafka_protocol() {
        for a in CORE_APIS.iter().chain(GROUP_APIS) {
            let (amin, amax) = a.advertised;
            let (smin, smax) = a.served;
            assert!(amin <= smin && smin <= smax && smax <= amax, "{a:?}");
            let valid = a.api_key.valid_versions();
            assert!(
                valid.min <= smin && smax <= valid.max,
                "{:?} served {smin}-{smax} outside kafka-protocol {}-{}",
                a.api_key,
                valid.min,
                valid.max
            );
            // Only Produce advertises below kafka-protocol's range, by design.
            if a.api_key != ApiKey::Produce {
                assert_eq!(a.advertised, a.served, "{a:?}");
            }
        }
    }

    #[test]
    fn each_api_key_appears_once() {
        let mut seen = HashSet::new();
        for a in CORE_APIS.iter().chain(GROUP_APIS) {
            assert!(seen.insert(a.api_key as i16), "{:?} twice", a.api_key);
        }
    }

    #[test]
    fn produce_is_advertised_from_zero_but_served_from_three() {
        assert_eq!(advertised_range(ApiKey::Produce), Some((0, 11)));
        assert_eq!(served_range(ApiKey::Produce), Some((3, 11)));
        assert!(!is_served(ApiKey::Produce, 2));
        assert!(is_served(ApiKey::Produce, 3));
        assert!(is_served(ApiKey::Fetch, 4));
        assert!(!is_served(ApiKey::Fetch, 13));
        assert_eq!(served_range(ApiKey::SaslHandshake), None);
        assert_eq!(served_range(ApiKey::FindCoordinator), Some((0, 4)));
    }

    #[test]
    fn api_versions_keys_are_sorted_and_group_set_is_optional() {
        let core = api_versions_keys(false);
        let all = api_versions_keys(true);
        assert_eq!(core.len(), CORE_APIS.len());
        assert_eq!(all.len(), CORE_APIS.len() + GROUP_APIS.len());
        assert!(all.windows(2).all(|w| w[0].api_key < w[1].api_key));
        assert!(
            !core
                .iter()
                .any(|k| k.api_key == ApiKey::FindCoordinator as i16)
        );
        let produce = &all[0];
        assert_eq!(
            (produce.api_key, produce.min_version, produce.max_version),
            (0, 0, 11)
        );
    }

    #[test]
    fn compatibility_table_lists_every_api() {
        let table = compatibility_table_markdown();
        assert_eq!(
            table.lines().count(),
            2 + CORE_APIS.len() + GROUP_APIS.len()
        );
        assert!(
            table.contains("| Produce | 0 | 0–11 | 3–11 | core |"),
            "{table}"
        );
    }
}
