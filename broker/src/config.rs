//! Broker configuration: the embedded defaults, an optional TOML file,
//! `SLUICE_*` environment variables and command-line flags, in that order
//! of precedence (later wins). `settings/layers.rs` reads and checks the
//! layers against the settings table; this file is the typed result.
//!
//! Keys that mirror Kafka's keep Kafka's spelling (`log.dirs` becomes
//! `data_dir`, but `auto.create.topics.enable`, `num.partitions`,
//! `message.max.bytes`, … are written as in Kafka), so a Kafka user's
//! settings carry over.
//!
//! # Invariants
//! - `BrokerConfig::default()` is a complete, working single-node broker:
//!   `./sluice-data`, listener `127.0.0.1:9092`, node id 1.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::group::limits as group_limits;

/// When an acknowledged write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityMode {
    /// acks=1 and acks=all are answered only after an fdatasync covered the
    /// batch (group commit: one sync per partition file serves every append
    /// of a short window). Survives process kill, OS crash and power loss.
    Fsync,
    /// Kafka's default: acknowledged after the append reaches the page
    /// cache; the flush policy (`flush.messages`/`flush.ms`) syncs later.
    /// Survives a process kill, not an OS crash or power loss.
    PageCache,
}

impl DurabilityMode {
    /// The setting's value, as the file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fsync => "fsync",
            Self::PageCache => "page_cache",
        }
    }
}

/// How log lines are written to stderr (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event (colours on a terminal).
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

impl LogFormat {
    /// The setting's value, as the file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// Everything the broker reads at start. Field names (or their
/// `serde(rename)`) are the TOML keys; each is the `file_key` of one row
/// of `settings::table::BROKER_SETTINGS` (a test checks both ways).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Where partition logs and the metadata log live.
    pub data_dir: PathBuf,
    /// Address the Kafka listener binds (`listeners`).
    pub listen: SocketAddr,
    /// `host:port` clients are told to connect to (`advertised.listeners`);
    /// defaults to the bound address.
    pub advertised: Option<String>,
    /// `node.id`.
    pub node_id: i32,
    /// Address the controller listener binds (Raft traffic between voters).
    /// Defaults to this node's address in `controller_voters`; a single
    /// voter needs none.
    pub controller_listen: Option<SocketAddr>,
    /// `controller.quorum.voters` as `id@host:port,…`. Defaults to this node
    /// alone: a cluster of one.
    pub controller_voters: Option<String>,
    /// `broker.rack`: this broker's rack, sent in its registration, used by
    /// rack-aware replica placement and reported to clients.
    #[serde(rename = "broker.rack")]
    pub broker_rack: Option<String>,
    /// `broker.heartbeat.interval.ms`: time between two heartbeats to the
    /// active controller.
    #[serde(rename = "broker.heartbeat.interval.ms")]
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`: as the active controller, fence a
    /// broker whose heartbeats stop for this long (and move its
    /// leaderships).
    #[serde(rename = "broker.session.timeout.ms")]
    pub broker_session_timeout_ms: u64,
    /// `auto.leader.rebalance.enable`: as the active controller, move
    /// leaderships back to preferred replicas (see `controller::balancer`).
    #[serde(rename = "auto.leader.rebalance.enable")]
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: between two checks.
    #[serde(rename = "leader.imbalance.check.interval.seconds")]
    pub leader_imbalance_check_interval_seconds: u64,
    /// `leader.imbalance.per.broker.percentage`: the share of a broker's
    /// preferred partitions led elsewhere that triggers the move.
    #[serde(rename = "leader.imbalance.per.broker.percentage")]
    pub leader_imbalance_per_broker_percentage: u32,
    /// `auto.create.topics.enable`: a Metadata request naming an unknown
    /// topic (what producers and consumers send before using one) creates
    /// it with `num.partitions` partitions. A Produce for an unknown topic
    /// is answered UNKNOWN_TOPIC_OR_PARTITION, as in Kafka.
    #[serde(rename = "auto.create.topics.enable")]
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of an auto-created topic, or of a
    /// CreateTopics request that leaves the count at -1.
    #[serde(rename = "num.partitions")]
    pub num_partitions: i32,
    /// `durability`: see [`DurabilityMode`].
    pub durability: DurabilityMode,
    /// `socket.request.max.bytes`: the largest request frame accepted.
    #[serde(rename = "socket.request.max.bytes")]
    pub socket_request_max_bytes: usize,
    /// `message.max.bytes`: the largest record batch accepted (per topic
    /// `max.message.bytes` may lower or raise it).
    #[serde(rename = "message.max.bytes")]
    pub message_max_bytes: usize,
    /// `max.connections`: client connections served at once; the next is
    /// accepted and closed at once (Kafka's default is unbounded; Sluice
    /// bounds it, see `connection_quota.rs`).
    #[serde(rename = "max.connections")]
    pub max_connections: usize,
    /// `max.connections.per.ip`: connections from one address (Kafka's
    /// default, 2147483647: unbounded).
    #[serde(rename = "max.connections.per.ip")]
    pub max_connections_per_ip: usize,
    /// `queued.max.request.bytes`: request bytes held in memory across all
    /// connections; readers wait (back-pressure) beyond it.
    #[serde(rename = "queued.max.request.bytes")]
    pub queued_max_request_bytes: usize,
    /// `connections.max.idle.ms`: a connection with no request arriving
    /// for this long is closed.
    #[serde(rename = "connections.max.idle.ms")]
    pub connections_max_idle_ms: u64,
    /// `socket.request.read.timeout.ms`: time from a request's first byte to
    /// its last; a slower sender is closed (Kafka has no such key; named in
    /// its `socket.*` family).
    #[serde(rename = "socket.request.read.timeout.ms")]
    pub socket_request_read_timeout_ms: u64,
    /// `socket.response.write.timeout.ms`: time to write one response; a
    /// client that does not read its replies is closed.
    #[serde(rename = "socket.response.write.timeout.ms")]
    pub socket_response_write_timeout_ms: u64,
    /// `queued.max.decompressed.bytes`: bytes being decompressed to
    /// validate produced batches, across all connections; a batch that
    /// cannot get its share within the request waits, then fails retriably.
    #[serde(rename = "queued.max.decompressed.bytes")]
    pub queued_max_decompressed_bytes: usize,
    /// `log.open.segments.max`: inactive segments whose files stay open
    /// (one descriptor and three maps each; see `sluice_storage::file_budget`);
    /// 0 derives it from `RLIMIT_NOFILE` (`sluice_storage::budget`).
    #[serde(rename = "log.open.segments.max")]
    pub log_open_segments_max: usize,
    /// `replica.lag.time.max.ms`: as a leader, propose out of the ISR a
    /// follower that has not caught up for this long.
    #[serde(rename = "replica.lag.time.max.ms")]
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.max.bytes`: per partition in one follower fetch.
    #[serde(rename = "replica.fetch.max.bytes")]
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: one follower fetch answer.
    #[serde(rename = "replica.fetch.response.max.bytes")]
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`: a follower fetch's long-poll wait.
    #[serde(rename = "replica.fetch.wait.max.ms")]
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes`: bytes a follower fetch waits for.
    #[serde(rename = "replica.fetch.min.bytes")]
    pub replica_fetch_min_bytes: i32,
    /// `replica.fetch.backoff.ms`: a follower's pause after a fetch error.
    #[serde(rename = "replica.fetch.backoff.ms")]
    pub replica_fetch_backoff_ms: u64,
    /// `replica.socket.timeout.ms`: a follower's connect and request
    /// timeout (added to the long-poll wait).
    #[serde(rename = "replica.socket.timeout.ms")]
    pub replica_socket_timeout_ms: u64,
    /// Default `segment.bytes` for new topics.
    #[serde(rename = "log.segment.bytes")]
    pub log_segment_bytes: u64,
    /// Default `retention.ms` for new topics (-1 = keep forever).
    #[serde(rename = "log.retention.ms")]
    pub log_retention_ms: i64,
    /// How often retention and segment.ms rolls are checked.
    #[serde(rename = "log.retention.check.interval.ms")]
    pub log_retention_check_interval_ms: u64,
    /// How often each partition's recovery point is checkpointed (Kafka's
    /// `log.flush.offset.checkpoint.interval.ms`).
    #[serde(rename = "log.flush.offset.checkpoint.interval.ms")]
    pub log_flush_offset_checkpoint_interval_ms: u64,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`
    /// when it is created (an existing topic keeps its count).
    #[serde(rename = "offsets.topic.num.partitions")]
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`: replicas of each
    /// `__consumer_offsets` partition when it is created; a cluster with
    /// fewer brokers gives it one replica per broker.
    #[serde(rename = "offsets.topic.replication.factor")]
    pub offsets_topic_replication_factor: i16,
    /// `offsets.retention.minutes`: committed offsets of a group that has
    /// been empty this long are deleted.
    #[serde(rename = "offsets.retention.minutes")]
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms`.
    #[serde(rename = "offsets.retention.check.interval.ms")]
    pub offsets_retention_check_interval_ms: u64,
    /// `group.max.size`: members of one consumer group.
    #[serde(rename = "group.max.size")]
    pub group_max_size: usize,
    /// `group.min.session.timeout.ms`.
    #[serde(rename = "group.min.session.timeout.ms")]
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    #[serde(rename = "group.max.session.timeout.ms")]
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: a new group's first rebalance
    /// waits this long for more members.
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: i64,
    /// `compression.type`: the default of topics' `compression.type`
    /// (`producer` keeps batches as produced).
    #[serde(rename = "compression.type")]
    pub compression_type: String,
    /// `compression.gzip.level` (KIP-390): default of topics' gzip level.
    #[serde(rename = "compression.gzip.level")]
    pub compression_gzip_level: i32,
    /// `compression.lz4.level` (KIP-390): default of topics' lz4 level.
    #[serde(rename = "compression.lz4.level")]
    pub compression_lz4_level: i32,
    /// `compression.zstd.level` (KIP-390): default of topics' zstd level.
    #[serde(rename = "compression.zstd.level")]
    pub compression_zstd_level: i32,
    /// `log.level`: the log filter (`RUST_LOG` syntax); the `RUST_LOG`
    /// environment variable, when set, wins.
    #[serde(rename = "log.level")]
    pub log_level: String,
    /// `log.format`: see [`LogFormat`].
    #[serde(rename = "log.format")]
    pub log_format: LogFormat,
    /// `admin.enabled`: serve the admin HTTP endpoint.
    #[serde(rename = "admin.enabled")]
    pub admin_enabled: bool,
    /// `admin.listen`: address of the admin HTTP endpoint (`/metrics`,
    /// `/health`, `/ready`).
    #[serde(rename = "admin.listen")]
    pub admin_listen: SocketAddr,
    /// `metrics.partition.series.enabled`: export per-partition series.
    #[serde(rename = "metrics.partition.series.enabled")]
    pub metrics_partition_series_enabled: bool,
    /// Which settings the operator set, and where (file, environment,
    /// flag): DescribeConfigs reports those as STATIC_BROKER_CONFIG.
    /// Empty for a config built in code.
    #[serde(skip)]
    pub origins: crate::settings::layers::Origins,
    /// `log.cleaner.dedupe.buffer.size`: memory of the cleaner's key map
    /// (Kafka's default 128 MiB is shared by its cleaner threads; Sluice
    /// has one cleaner and a smaller default, 16 MiB ≈ 600 000 keys).
    #[serde(rename = "log.cleaner.dedupe.buffer.size")]
    pub log_cleaner_dedupe_buffer_size: usize,
    /// `log.cleaner.io.max.bytes.per.second`: the cleaner's read and write
    /// rate limit (Kafka's default, `f64::MAX`, means none).
    #[serde(rename = "log.cleaner.io.max.bytes.per.second")]
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// `producer.id.expiration.ms`: how long an idempotent producer's
    /// state outlives its newest batch's timestamp (Kafka's default: a day).
    #[serde(rename = "producer.id.expiration.ms")]
    pub producer_id_expiration_ms: i64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./sluice-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised: None,
            node_id: 1,
            controller_listen: None,
            controller_voters: None,
            broker_rack: None,
            broker_heartbeat_interval_ms: crate::lifecycle::HEARTBEAT_INTERVAL_MS_DEFAULT,
            broker_session_timeout_ms: crate::lifecycle::SESSION_TIMEOUT_MS_DEFAULT,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds:
                crate::controller::balancer::LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT,
            leader_imbalance_per_broker_percentage:
                crate::controller::balancer::LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT,
            auto_create_topics_enable: true,
            num_partitions: 1,
            durability: DurabilityMode::Fsync,
            socket_request_max_bytes: 100 * 1024 * 1024,
            message_max_bytes: 1024 * 1024 + 12,
            max_connections: 10_000,
            max_connections_per_ip: i32::MAX as usize,
            queued_max_request_bytes: 512 * 1024 * 1024,
            connections_max_idle_ms: 10 * 60 * 1000,
            socket_request_read_timeout_ms: 30_000,
            socket_response_write_timeout_ms: 30_000,
            queued_max_decompressed_bytes: 256 * 1024 * 1024,
            log_open_segments_max: 0,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_max_bytes: 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_min_bytes: 1,
            replica_fetch_backoff_ms: 1000,
            replica_socket_timeout_ms: 30_000,
            log_segment_bytes: 1024 * 1024 * 1024,
            log_retention_ms: 7 * 24 * 60 * 60 * 1000,
            log_retention_check_interval_ms: 5 * 60 * 1000,
            log_flush_offset_checkpoint_interval_ms: 60 * 1000,
            offsets_topic_num_partitions: group_limits::OFFSETS_TOPIC_PARTITIONS_DEFAULT,
            offsets_topic_replication_factor:
                group_limits::OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT,
            offsets_retention_minutes: group_limits::OFFSETS_RETENTION_MINUTES_DEFAULT,
            offsets_retention_check_interval_ms:
                group_limits::OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            group_max_size: group_limits::GROUP_MAX_SIZE_DEFAULT,
            group_min_session_timeout_ms: group_limits::MIN_SESSION_TIMEOUT_MS_DEFAULT,
            group_max_session_timeout_ms: group_limits::MAX_SESSION_TIMEOUT_MS_DEFAULT,
            group_initial_rebalance_delay_ms: group_limits::INITIAL_REBALANCE_DELAY_MS_DEFAULT,
            compression_type: "producer".to_string(),
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            log_level: "info".to_string(),
            log_format: LogFormat::Text,
            admin_enabled: true,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9644)),
            metrics_partition_series_enabled: true,
            origins: crate::settings::layers::Origins::default(),
            log_cleaner_dedupe_buffer_size: 16 * 1024 * 1024,
            log_cleaner_io_max_bytes_per_second: f64::MAX,
            producer_id_expiration_ms: 86_400_000,
        }
    }
}

/// Why `controller_voters` does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VotersError {
    #[error("controller voter {0:?} is not id@host:port")]
    Malformed(String),
    #[error("controller voter id {0} appears twice")]
    Duplicate(u64),
}

/// Parses `id@host:port,…` (Kafka's `controller.quorum.voters`); ids are
/// positive node ids.
pub fn parse_voters(text: &str) -> Result<Vec<(u64, SocketAddr)>, VotersError> {
    let mut voters: Vec<(u64, SocketAddr)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let malformed = || VotersError::Malformed(item.to_string());
        let (id, addr) = item.split_once('@').ok_or_else(malformed)?;
        let id: u64 = id.trim().parse().map_err(|_| malformed())?;
        let addr: SocketAddr = addr.trim().parse().map_err(|_| malformed())?;
        if id == 0 {
            return Err(malformed());
        }
        if voters.iter().any(|(v, _)| *v == id) {
            return Err(VotersError::Duplicate(id));
        }
        voters.push((id, addr));
    }
    if voters.is_empty() {
        return Err(VotersError::Malformed(text.to_string()));
    }
    Ok(voters)
}

impl BrokerConfig {
    /// Reads a TOML file over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The `(host, port)` clients are told to use.
    pub fn advertised_host_port(&self, bound: SocketAddr) -> (String, i32) {
        if let Some(adv) = &self.advertised
            && let Some((host, port)) = adv.rsplit_once(':')
            && let Ok(port) = port.parse::<u16>()
        {
            return (host.to_string(), i32::from(port));
        }
        (bound.ip().to_string(), i32::from(bound.port()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_quick_start_broker() {
        let c = BrokerConfig::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(c.data_dir, PathBuf::from("./sluice-data"));
        assert_eq!(c.durability, DurabilityMode::Fsync);
    }

    #[test]
    fn toml_overrides_kafka_spelled_keys() {
        let c = BrokerConfig::from_toml(
            "\"num.partitions\" = 6\nlisten = \"127.0.0.1:0\"\ndurability = \"page_cache\"\n",
        )
        .unwrap();
        assert_eq!(c.num_partitions, 6);
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.durability, DurabilityMode::PageCache);
        assert!(BrokerConfig::from_toml("no_such_key = 1").is_err());
    }

    #[test]
    fn voters_parse_and_bad_ones_are_named() {
        let v = parse_voters("1@127.0.0.1:9093, 2@127.0.0.1:9094").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1], (2, SocketAddr::from(([127, 0, 0, 1], 9094))));
        assert_eq!(
            parse_voters("1@127.0.0.1:1,1@127.0.0.1:2"),
            Err(VotersError::Duplicate(1))
        );
        assert!(matches!(
            parse_voters("x@1"),
            Err(VotersError::Malformed(_))
        ));
        assert!(parse_voters("").is_err());
        let c = BrokerConfig::from_toml(
            "controller_voters = \"1@127.0.0.1:9093\"\ncontroller_listen = \"127.0.0.1:9093\"\n",
        )
        .unwrap();
        assert_eq!(c.controller_listen.map(|a| a.port()), Some(9093));
    }

    #[test]
    fn advertised_address_falls_back_to_bound() {
        let mut c = BrokerConfig::default();
        let bound = SocketAddr::from(([127, 0, 0, 1], 4000));
        assert_eq!(c.advertised_host_port(bound), ("127.0.0.1".into(), 4000));
        c.advertised = Some("broker.example:19092".into());
        assert_eq!(
            c.advertised_host_port(bound),
            ("broker.example".into(), 19092)
        );
    }
}
