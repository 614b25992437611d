//! Every bound the group coordinator enforces, its default, and why.
//!
//! Values a Kafka operator can set (`group.max.size`, session timeout
//! bounds, `offsets.retention.minutes`, …) are broker config keys with these
//! defaults; the rest are fixed ceilings that keep one client from making
//! the broker hold unbounded memory.

/// `group.max.size` default: Kafka's default is `Integer.MAX_VALUE`; a
/// thousand consumers in one classic group already makes every rebalance
/// ship a thousand subscriptions to the leader, so Sluice stops there.
pub const GROUP_MAX_SIZE_DEFAULT: usize = 1000;

/// Groups one broker holds (with members or only committed offsets): each
/// costs memory for as long as it lives, and group ids come from clients.
pub const GROUPS_MAX: usize = 100_000;

/// Members across all groups of one broker, pending member ids (handed out
/// with MEMBER_ID_REQUIRED, not yet used) included: each holds its protocol
/// metadata and assignment in memory and a parked JoinGroup/SyncGroup reply.
pub const MEMBERS_MAX: usize = 100_000;

/// Bytes of protocol metadata (all protocols of one JoinGroup) per member:
/// the leader receives every member's metadata in one response, so this
/// times `group.max.size` bounds that response.
pub const MEMBER_METADATA_BYTES_MAX: usize = 64 * 1024;

/// Protocols one member may offer: librdkafka offers one per configured
/// assignor, a handful at most.
pub const MEMBER_PROTOCOLS_MAX: usize = 16;

/// Bytes of one member's assignment (SyncGroup).
pub const MEMBER_ASSIGNMENT_BYTES_MAX: usize = 1024 * 1024;

/// Committed offsets one group may hold: one per partition it consumes.
pub const OFFSETS_PER_GROUP_MAX: usize = 100_000;

/// `offset.metadata.max.bytes` (Kafka's default): the metadata string a
/// commit may carry.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

/// Longest group id or member id accepted: ids are echoed in every reply
/// and stored in every record.
pub const ID_BYTES_MAX: usize = 255 * 4;

/// Bytes of the client id kept in a member (and in the member id made
/// from it, `client.id-UUID`): the client id comes from every request
/// header, up to 32 KiB. Longer ones are cut at a character boundary.
pub const MEMBER_CLIENT_ID_BYTES_MAX: usize = 255;

/// `group.min.session.timeout.ms` default (Kafka's).
pub const MIN_SESSION_TIMEOUT_MS_DEFAULT: i32 = 6_000;

/// `group.max.session.timeout.ms` default (Kafka's).
pub const MAX_SESSION_TIMEOUT_MS_DEFAULT: i32 = 1_800_000;

/// `group.initial.rebalance.delay.ms` default (Kafka's): a new group waits
/// this long for more members before its first generation, so consumers
/// started together share one rebalance.
pub const INITIAL_REBALANCE_DELAY_MS_DEFAULT: i64 = 3_000;

/// `offsets.topic.num.partitions` default (Kafka's).
pub const OFFSETS_TOPIC_PARTITIONS_DEFAULT: i32 = 50;

/// `offsets.topic.replication.factor` default (Kafka's).
pub const OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT: i16 = 3;

/// How long the node creating `__consumer_offsets` waits for the cluster's
/// voters to register, so that a cluster started all at once gets the
/// replication factor it asked for rather than that of the first node up.
pub const OFFSETS_TOPIC_BROKERS_WAIT_MS: u64 = 10_000;

/// `offsets.retention.minutes` default (Kafka's: 7 days).
pub const OFFSETS_RETENTION_MINUTES_DEFAULT: i64 = 7 * 24 * 60;

/// `offsets.retention.check.interval.ms` default (Kafka's: 10 minutes).
pub const OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 10 * 60 * 1000;

/// `offsets.topic.segment.bytes` (Kafka's default, 100 MiB): the offsets
/// topic's records are small and many partitions exist, so its segments are
/// smaller than data topics'.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;

/// Index bytes preallocated per offsets-topic segment: 50 partitions × 2
/// indexes at the 10 MiB data default would reserve 1 GiB for a few KiB of
/// commits.
pub const OFFSETS_TOPIC_SEGMENT_INDEX_BYTES: u64 = 1024 * 1024;

/// How often the coordinator's timer runs (session expiry, rebalance and
/// sync deadlines): the resolution of every group timeout.
pub const TICK_MS: u64 = 100;

/// Largest decompressed batch the coordinator reads back from
/// `__consumer_offsets` when it replays: a batch can never exceed its
/// segment.
pub const REPLAY_RECORDS_BYTES_MAX: usize = OFFSETS_TOPIC_SEGMENT_BYTES as usize;

// A group's metadata record (every member's ids and timeouts; the
// subscriptions and assignments are not stored, see `records.rs`) must fit
// one offsets-topic segment, however large `group.max.size` is by default.
const _: () = assert!(
    GROUP_MAX_SIZE_DEFAULT * (4 * ID_BYTES_MAX + 32) < OFFSETS_TOPIC_SEGMENT_BYTES as usize
);

/// `offsets.commit.timeout.ms` (Kafka's default): how long an OffsetCommit
/// waits for its records to become durable before REQUEST_TIMED_OUT.
pub const COMMIT_TIMEOUT_MS: u64 = 5_000;
