//! The one table of settings: every topic config and every broker setting
//! DescribeConfigs reports, with Kafka's name, type, unit, default, bounds,
//! scope and documentation.
//!
//! Everything else derives from these rows: validation of CreateTopics
//! and Alter* requests (`value.rs`), the effective config of a topic and
//! the storage `LogConfig` it becomes (`topic.rs`), and the DescribeConfigs
//! and CreateTopics answers (`describe.rs`).
//!
//! | scope | default comes from | a client may change it |
//! |---|---|---|
//! | topic | the topic's override, else the broker's synonym (`log.*`) if the broker sets it, else the row's default | yes (Alter*, CreateTopics) |
//! | broker | `BrokerConfig` (file and flags, read at start) | no: broker settings are static |
//!
//! # Invariants
//! - Names are unique within each table (a test checks it).
//! - Every numeric bound of a key that reaches storage is a constant of
//!   `sluice_storage::limits`, the same one `LogConfig::validate` checks,
//!   so a value this table accepts always opens a partition log.
//! - Every row's own default passes its own rule (a test checks it).
//!
//! # Caveats
//! - `segment.index.bytes` refuses 4..47, which Kafka accepts: an index must
//!   hold a few entries (`limits::MIN_SEGMENT_INDEX_BYTES`).
//!
//! # References
//! Kafka's `TopicConfig`, `LogConfig.configDef` and `ServerLogConfigs`
//! (names, defaults, validators); KIP-226 (synonyms); KIP-937 (timestamp
//! before/after bounds).

use sluice_storage::limits;

use crate::config::BrokerConfig;

/// `ConfigDef.Type`, numbered as DescribeConfigs v3+ sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

impl ConfigType {
    /// The `config_type` field of DescribeConfigs v3+.
    pub fn code(self) -> i8 {
        match self {
            Self::Boolean => 1,
            Self::String => 2,
            Self::Int => 3,
            Self::Long => 5,
            Self::Double => 6,
            Self::List => 7,
        }
    }

    /// Kafka's name of the type, as its error messages spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Boolean => "BOOLEAN",
            Self::String => "STRING",
            Self::Int => "INT",
            Self::Long => "LONG",
            Self::Double => "DOUBLE",
            Self::List => "LIST",
        }
    }
}

/// The unit of a numeric setting (for docs; the wire carries none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Bytes,
    Milliseconds,
    Seconds,
    Records,
}

/// Which values a setting accepts.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// An integer within `min..=max` (Kafka's `Range.between` / `atLeast`).
    Range { min: i64, max: i64 },
    /// An integer within `min..=max`, or exactly `or` (Kafka's gzip level
    /// validator: "[1,...,9] or -1").
    RangeOr { min: i64, max: i64, or: i64 },
    /// A decimal number within `0..=1` (Kafka's `Range.between(0, 1)` on
    /// a DOUBLE).
    Fraction,
    /// A finite decimal number above 0 (Kafka's `Range.atLeast` on a
    /// DOUBLE rate, where 0 would stop the work it paces).
    Positive,
    /// Exactly one of these strings (Kafka's `ValidString.in`).
    OneOf(&'static [&'static str]),
    /// A non-empty comma-separated list of these strings (`ValidList.in`).
    ListOf(&'static [&'static str]),
    /// Whatever the broker was started with (read-only broker settings).
    Any,
}

/// A topic setting's built-in default.
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    Long(i64),
    Str(&'static str),
}

impl DefaultValue {
    pub fn render(self) -> String {
        match self {
            Self::Long(v) => v.to_string(),
            Self::Str(s) => s.to_string(),
        }
    }
}

/// Where a setting lives.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// A topic config. `broker_key` is Kafka's broker-wide default of it
    /// (`log.retention.ms` for `retention.ms`); when the broker sets that
    /// key, topics without an override take the broker's value.
    Topic {
        default: DefaultValue,
        broker_key: &'static str,
    },
    /// A broker setting, read from the running `BrokerConfig`; `None` is
    /// a null value (not set). `file_key` is the key that sets it in the
    /// TOML file (and, upper-cased with `SLUICE_`, in the environment;
    /// see `settings/layers.rs`); `None` for a value derived from another
    /// key (`broker.id`) or fixed (`default.replication.factor`).
    Broker {
        value: fn(&BrokerConfig) -> Option<String>,
        file_key: Option<&'static str>,
    },
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub unit: Unit,
    pub rule: Rule,
    pub scope: Scope,
    /// Whether a client may change it (AlterConfigs and friends).
    pub alterable: bool,
    pub doc: &'static str,
}

const I32_MAX: i64 = i32::MAX as i64;
const I16_MAX: i64 = i16::MAX as i64;

/// Widens a storage bound; every one of them fits an `i64`.
const fn long(v: u64) -> i64 {
    if v > i64::MAX as u64 {
        i64::MAX
    } else {
        v as i64
    }
}

/// `message.timestamp.type` values, Kafka's spelling.
pub const CREATE_TIME: &str = "CreateTime";
pub const LOG_APPEND_TIME: &str = "LogAppendTime";

/// Every topic config served, in the order DescribeConfigs lists them.
pub const TOPIC_SETTINGS: &[Setting] = &[
    Setting {
        name: "cleanup.policy",
        config_type: ConfigType::List,
        unit: Unit::None,
        rule: Rule::ListOf(&["delete", "compact"]),
        scope: Scope::Topic {
            default: DefaultValue::Str("delete"),
            broker_key: "log.cleanup.policy",
        },
        alterable: true,
        doc: "\"delete\": segments past retention are deleted; \"compact\": only the latest record of each key is kept (tombstones after delete.retention.ms); both may be listed.",
    },
    Setting {
        name: "compression.type",
        config_type: ConfigType::String,
        unit: Unit::None,
        rule: Rule::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        scope: Scope::Topic {
            default: DefaultValue::Str("producer"),
            broker_key: "compression.type",
        },
        alterable: true,
        doc: "Codec batches are stored with: \"producer\" keeps the producer's (no copy); a codec name makes the broker recompress batches in any other codec.",
    },
    Setting {
        name: "compression.gzip.level",
        config_type: ConfigType::Int,
        unit: Unit::None,
        rule: Rule::RangeOr {
            min: 1,
            max: 9,
            or: -1,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(-1),
            broker_key: "compression.gzip.level",
        },
        alterable: true,
        doc: "gzip level when the broker recompresses to gzip (KIP-390); -1 is zlib's default (6).",
    },
    Setting {
        name: "compression.lz4.level",
        config_type: ConfigType::Int,
        unit: Unit::None,
        rule: Rule::Range { min: 1, max: 17 },
        scope: Scope::Topic {
            default: DefaultValue::Long(9),
            broker_key: "compression.lz4.level",
        },
        alterable: true,
        doc: "lz4 level when the broker recompresses to lz4 (KIP-390); 3 and up are LZ4-HC.",
    },
    Setting {
        name: "compression.zstd.level",
        config_type: ConfigType::Int,
        unit: Unit::None,
        rule: Rule::Range {
            min: -131_072,
            max: 22,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(3),
            broker_key: "compression.zstd.level",
        },
        alterable: true,
        doc: "zstd level when the broker recompresses to zstd (KIP-390); negative levels are zstd's fast ones.",
    },
    Setting {
        name: "delete.retention.ms",
        config_type: ConfigType::Long,
        unit: Unit::Milliseconds,
        rule: Rule::Range {
            min: 0,
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(86_400_000),
            broker_key: "log.cleaner.delete.retention.ms",
        },
        alterable: true,
        doc: "How long a tombstone stays in a compacted topic after it was written.",
    },
    Setting {
        name: "flush.messages",
        config_type: ConfigType::Long,
        unit: Unit::Records,
        rule: Rule::Range {
            min: 1,
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(i64::MAX),
            broker_key: "log.flush.interval.messages",
        },
        alterable: true,
        doc: "Records appended between forced fsyncs (page_cache durability); the maximum leaves it to the OS.",
    },
    Setting {
        name: "flush.ms",
        config_type: ConfigType::Long,
        unit: Unit::Milliseconds,
        rule: Rule::Range {
            min: 0,
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(i64::MAX),
            broker_key: "log.flush.interval.ms",
        },
        alterable: true,
        doc: "Milliseconds between forced fsyncs (page_cache durability); the maximum leaves it to the OS.",
    },
    Setting {
        name: "index.interval.bytes",
        config_type: ConfigType::Int,
        unit: Unit::Bytes,
        rule: Rule::Range {
            min: limits::MIN_INDEX_INTERVAL_BYTES as i64,
            max: I32_MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(limits::DEFAULT_INDEX_INTERVAL_BYTES as i64),
            broker_key: "log.index.interval.bytes",
        },
        alterable: true,
        doc: "Bytes of log between two offset index entries; 0 indexes every batch.",
    },
    Setting {
        name: "max.compaction.lag.ms",
        config_type: ConfigType::Long,
        unit: Unit::Milliseconds,
        rule: Rule::Range {
            min: 1,
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(i64::MAX),
            broker_key: "log.cleaner.max.compaction.lag.ms",
        },
        alterable: true,
        doc: "Longest a record stays uncompacted: a compacted topic's active segment rolls by then, and a dirty section older than this is cleaned whatever min.cleanable.dirty.ratio says.",
    },
    Setting {
        name: "max.message.bytes",
        config_type: ConfigType::Int,
        unit: Unit::Bytes,
        rule: Rule::Range {
            min: 0,
            max: I32_MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(limits::DEFAULT_MAX_MESSAGE_BYTES as i64),
            broker_key: "message.max.bytes",
        },
        alterable: true,
        doc: "Largest record batch the topic accepts; a batch larger than segment.bytes gets a segment of its own.",
    },
    Setting {
        name: "message.timestamp.after.max.ms",
        config_type: ConfigType::Long,
        unit: Unit::Milliseconds,
        rule: Rule::Range {
            min: 0,
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(i64::MAX),
            broker_key: "log.message.timestamp.after.max.ms",
        },
        alterable: true,
        doc: "With CreateTime, how far a record's timestamp may lie ahead of the broker's clock; later ones are refused with INVALID_TIMESTAMP.",
    },
    Setting {
        name: "message.timestamp.before.max.ms",
        config_type: ConfigType::Long,
        unit: Unit::Milliseconds,
        rule: Rule::Range {
            min: 0,
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(i64::MAX),
            broker_key: "log.message.timestamp.before.max.ms",
        },
        alterable: true,
        doc: "With CreateTime, how far a record's timestamp may lie behind the broker's clock; older ones are refused with INVALID_TIMESTAMP.",
    },
    Setting {
        name: "message.timestamp.difference.max.ms",
        config_type: ConfigType::Long,
        unit: Unit::Milliseconds,
        rule: Rule::Range {
            min: 0,
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(i64::MAX),
            broker_key: "log.message.timestamp.difference.max.ms",
        },
        alterable: true,
        doc: "Deprecated (Kafka 3.6): the before and after bounds at once, used for whichever of them the topic does not set.",
    },
    Setting {
        name: "message.timestamp.type",
        config_type: ConfigType::String,
        unit: Unit::None,
        rule: Rule::OneOf(&[CREATE_TIME, LOG_APPEND_TIME]),
        scope: Scope::Topic {
            default: DefaultValue::Str(CREATE_TIME),
            broker_key: "log.message.timestamp.type",
        },
        alterable: true,
        doc: "CreateTime keeps the producer's record timestamps; LogAppendTime stamps each batch with the broker's clock when it is appended.",
    },
    Setting {
        name: "min.cleanable.dirty.ratio",
        config_type: ConfigType::Double,
        unit: Unit::None,
        rule: Rule::Fraction,
        scope: Scope::Topic {
            default: DefaultValue::Str("0.5"),
            broker_key: "log.cleaner.min.cleanable.ratio",
        },
        alterable: true,
        doc: "A compacted partition is cleaned once the bytes written since its last cleaning (below the high watermark, outside the active segment) are at least this share of its cleanable bytes.",
    },
    Setting {
        name: "min.compaction.lag.ms",
        config_type: ConfigType::Long,
        unit: Unit::Milliseconds,
        rule: Rule::Range {
            min: 0,
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(0),
            broker_key: "log.cleaner.min.compaction.lag.ms",
        },
        alterable: true,
        doc: "A record stays uncompacted at least this long after it was written.",
    },
    Setting {
        name: "min.insync.replicas",
        config_type: ConfigType::Int,
        unit: Unit::None,
        rule: Rule::Range {
            min: 1,
            max: I32_MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(1),
            broker_key: "min.insync.replicas",
        },
        alterable: true,
        doc: "In-sync replicas an acks=all write needs: fewer before the append answers NOT_ENOUGH_REPLICAS, fewer after it NOT_ENOUGH_REPLICAS_AFTER_APPEND.",
    },
    Setting {
        name: "retention.bytes",
        config_type: ConfigType::Long,
        unit: Unit::Bytes,
        rule: Rule::Range {
            min: -1,
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(-1),
            broker_key: "log.retention.bytes",
        },
        alterable: true,
        doc: "Largest size a partition grows to before old segments are deleted; -1 means no limit.",
    },
    Setting {
        name: "retention.ms",
        config_type: ConfigType::Long,
        unit: Unit::Milliseconds,
        rule: Rule::Range {
            min: -1,
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(long(limits::DEFAULT_RETENTION_MS)),
            broker_key: "log.retention.ms",
        },
        alterable: true,
        doc: "Longest time a segment is kept before deletion; -1 keeps it forever.",
    },
    Setting {
        name: "segment.bytes",
        config_type: ConfigType::Int,
        unit: Unit::Bytes,
        rule: Rule::Range {
            min: long(limits::MIN_SEGMENT_BYTES),
            max: long(limits::MAX_SEGMENT_BYTES),
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(long(limits::DEFAULT_SEGMENT_BYTES)),
            broker_key: "log.segment.bytes",
        },
        alterable: true,
        doc: "Size at which a segment file is rolled.",
    },
    Setting {
        name: "segment.index.bytes",
        config_type: ConfigType::Int,
        unit: Unit::Bytes,
        rule: Rule::Range {
            min: long(limits::MIN_SEGMENT_INDEX_BYTES),
            max: long(limits::MAX_SEGMENT_BYTES),
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(long(limits::DEFAULT_SEGMENT_INDEX_BYTES)),
            broker_key: "log.index.size.max.bytes",
        },
        alterable: true,
        doc: "Size of each segment's offset and time index files; a full index rolls the segment.",
    },
    Setting {
        name: "segment.ms",
        config_type: ConfigType::Long,
        unit: Unit::Milliseconds,
        rule: Rule::Range {
            min: long(limits::MIN_SEGMENT_MS),
            max: i64::MAX,
        },
        scope: Scope::Topic {
            default: DefaultValue::Long(long(limits::DEFAULT_SEGMENT_MS)),
            broker_key: "log.roll.ms",
        },
        alterable: true,
        doc: "Age at which a segment is rolled even if not full.",
    },
    Setting {
        name: "unclean.leader.election.enable",
        config_type: ConfigType::Boolean,
        unit: Unit::None,
        rule: Rule::OneOf(&["true", "false"]),
        scope: Scope::Topic {
            default: DefaultValue::Str("false"),
            broker_key: "unclean.leader.election.enable",
        },
        alterable: true,
        doc: "Whether a replica outside the ISR may lead when no ISR member can (acknowledged records may then be lost).",
    },
];

/// A broker setting set by the file key `name`, accepting any value of
/// its type; the builders below narrow that.
const fn broker(
    name: &'static str,
    config_type: ConfigType,
    unit: Unit,
    value: fn(&BrokerConfig) -> Option<String>,
    doc: &'static str,
) -> Setting {
    Setting {
        name,
        config_type,
        unit,
        rule: Rule::Any,
        scope: Scope::Broker {
            value,
            file_key: Some(name),
        },
        alterable: false,
        doc,
    }
}

impl Setting {
    /// The TOML key that sets this broker setting, when it differs from
    /// Kafka's name (`data_dir` for `log.dirs`).
    const fn in_file(mut self, key: &'static str) -> Self {
        if let Scope::Broker { value, .. } = self.scope {
            self.scope = Scope::Broker {
                value,
                file_key: Some(key),
            };
        }
        self
    }

    /// A broker setting no file key sets (derived or fixed).
    const fn not_in_file(mut self) -> Self {
        if let Scope::Broker { value, .. } = self.scope {
            self.scope = Scope::Broker {
                value,
                file_key: None,
            };
        }
        self
    }

    /// Accepts integers within `min..=max`.
    const fn range(mut self, min: i64, max: i64) -> Self {
        self.rule = Rule::Range { min, max };
        self
    }

    /// Accepts integers within `min..=max`, and `or`.
    const fn range_or(mut self, min: i64, max: i64, or: i64) -> Self {
        self.rule = Rule::RangeOr { min, max, or };
        self
    }

    /// Accepts finite decimal numbers above 0.
    const fn positive(mut self) -> Self {
        self.rule = Rule::Positive;
        self
    }

    /// Accepts exactly one of `values`.
    const fn one_of(mut self, values: &'static [&'static str]) -> Self {
        self.rule = Rule::OneOf(values);
        self
    }

    /// The TOML key that sets this setting, for broker settings a file sets.
    pub fn file_key(&self) -> Option<&'static str> {
        match self.scope {
            Scope::Broker { file_key, .. } => file_key,
            Scope::Topic { .. } => None,
        }
    }
}

const I64_MAX: i64 = i64::MAX;

/// Every broker setting: what DescribeConfigs reports for the BROKER
/// resource and what the TOML file, `SLUICE_*` environment variables and
/// flags may set (`settings/layers.rs`). All are static: read at start
/// (see `alter_configs.rs`).
pub const BROKER_SETTINGS: &[Setting] = &[
    broker(
        "node.id",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.node_id.to_string()),
        "This node's id (positive: controller voters are named by it).",
    )
    .in_file("node_id")
    .range(1, I32_MAX),
    broker(
        "broker.id",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.node_id.to_string()),
        "This node's id (Kafka's older name; set node_id).",
    )
    .not_in_file(),
    broker(
        "log.dirs",
        ConfigType::String,
        Unit::None,
        |c| Some(c.data_dir.display().to_string()),
        "Directory of partition logs and the metadata log.",
    )
    .in_file("data_dir"),
    broker(
        "listeners",
        ConfigType::List,
        Unit::None,
        |c| Some(format!("PLAINTEXT://{}", c.listen)),
        "Address the Kafka listener binds (`listen`, host:port; port 0 picks a free one).",
    )
    .in_file("listen"),
    broker(
        "advertised.listeners",
        ConfigType::List,
        Unit::None,
        |c| c.advertised.as_ref().map(|a| format!("PLAINTEXT://{a}")),
        "Address clients are told to connect to (`advertised`, host:port); null means the bound address.",
    )
    .in_file("advertised"),
    broker(
        "controller.quorum.voters",
        ConfigType::List,
        Unit::None,
        |c| c.controller_voters.clone(),
        "The controller voters as id@host:port,… (`controller_voters`); null means this node alone.",
    )
    .in_file("controller_voters"),
    broker(
        "controller.listener",
        ConfigType::String,
        Unit::None,
        |c| c.controller_listen.map(|a| a.to_string()),
        "Address the controller listener binds (`controller_listen`); null means this node's voter address.",
    )
    .in_file("controller_listen"),
    broker(
        "broker.rack",
        ConfigType::String,
        Unit::None,
        |c| c.broker_rack.clone(),
        "This broker's rack (`--rack`): sent in its registration, used by rack-aware replica placement, reported in Metadata and DescribeCluster.",
    ),
    broker(
        "broker.heartbeat.interval.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.broker_heartbeat_interval_ms.to_string()),
        "Time between two heartbeats of this broker to the active controller.",
    ),
    broker(
        "broker.session.timeout.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.broker_session_timeout_ms.to_string()),
        "As the active controller: a broker whose heartbeats stop for this long is fenced and its leaderships move (Kafka's default is 9000). A broker whose controller connection closes (its process died) and that does not dial again is fenced sooner, after half a heartbeat interval: a crashed leader's partitions move within about 0.3 s, a hung or partitioned one's after this timeout.",
    ),
    broker(
        "auto.leader.rebalance.enable",
        ConfigType::Boolean,
        Unit::None,
        |c| Some(c.auto_leader_rebalance_enable.to_string()),
        "As the active controller: every `leader.imbalance.check.interval.seconds`, move leaderships back to their preferred (first) replica for each broker whose share of preferred partitions it does not lead is above `leader.imbalance.per.broker.percentage`.",
    ),
    broker(
        "leader.imbalance.check.interval.seconds",
        ConfigType::Long,
        Unit::Seconds,
        |c| Some(c.leader_imbalance_check_interval_seconds.to_string()),
        "Time between two leader-balance checks of the active controller.",
    )
    .range(1, I64_MAX),
    broker(
        "leader.imbalance.per.broker.percentage",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.leader_imbalance_per_broker_percentage.to_string()),
        "Percentage of a broker's preferred partitions led elsewhere above which the balance check moves them back.",
    )
    .range(0, 100),
    broker(
        "auto.create.topics.enable",
        ConfigType::Boolean,
        Unit::None,
        |c| Some(c.auto_create_topics_enable.to_string()),
        "Metadata and Produce for an unknown topic create it.",
    ),
    broker(
        "num.partitions",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.num_partitions.to_string()),
        "Partitions of an auto-created topic.",
    )
    .range(1, I32_MAX),
    broker(
        "default.replication.factor",
        ConfigType::Int,
        Unit::None,
        |_| Some("1".into()),
        "Replicas of a new topic; 1 on a single node.",
    )
    .not_in_file(),
    broker(
        "durability",
        ConfigType::String,
        Unit::None,
        |c| Some(c.durability.name().to_string()),
        "When an acknowledged write is on disk: fsync (after an fdatasync, group commit) or page_cache (Kafka's default; the flush policy syncs later). See docs/durability.md.",
    )
    .one_of(&["fsync", "page_cache"]),
    broker(
        "message.max.bytes",
        ConfigType::Int,
        Unit::Bytes,
        |c| Some(c.message_max_bytes.to_string()),
        "Largest record batch accepted unless a topic's max.message.bytes says otherwise.",
    )
    .range(0, I32_MAX),
    broker(
        "socket.request.max.bytes",
        ConfigType::Int,
        Unit::Bytes,
        |c| Some(c.socket_request_max_bytes.to_string()),
        "Largest request frame accepted.",
    )
    .range(1, I32_MAX),
    broker(
        "max.connections",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.max_connections.to_string()),
        "Most client connections served at once; the next is accepted and closed.",
    )
    .range(0, I32_MAX),
    broker(
        "max.connections.per.ip",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.max_connections_per_ip.to_string()),
        "Most connections from one address; the next is accepted and closed.",
    )
    .range(0, I32_MAX),
    broker(
        "queued.max.request.bytes",
        ConfigType::Long,
        Unit::Bytes,
        |c| Some(c.queued_max_request_bytes.to_string()),
        "Request bytes held in memory across connections before readers wait.",
    )
    .range(1, I64_MAX),
    broker(
        "replica.lag.time.max.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.replica_lag_time_max_ms.to_string()),
        "As a leader: a follower that has not caught up for this long leaves the ISR (through the controller) until it catches up again.",
    )
    .range(1, I64_MAX),
    broker(
        "replica.fetch.max.bytes",
        ConfigType::Int,
        Unit::Bytes,
        |c| Some(c.replica_fetch_max_bytes.to_string()),
        "Bytes per partition a follower asks for in one fetch (a larger first batch still comes whole).",
    )
    .range(1, I32_MAX),
    broker(
        "replica.fetch.response.max.bytes",
        ConfigType::Int,
        Unit::Bytes,
        |c| Some(c.replica_fetch_response_max_bytes.to_string()),
        "Bytes of one follower fetch answer, over all its partitions.",
    )
    .range(1, I32_MAX),
    broker(
        "replica.fetch.wait.max.ms",
        ConfigType::Int,
        Unit::Milliseconds,
        |c| Some(c.replica_fetch_wait_max_ms.to_string()),
        "Longest time a leader holds a follower's fetch waiting for new records.",
    )
    .range(0, 30_000),
    broker(
        "replica.fetch.min.bytes",
        ConfigType::Int,
        Unit::Bytes,
        |c| Some(c.replica_fetch_min_bytes.to_string()),
        "Bytes a follower's fetch waits for before the leader answers.",
    )
    .range(1, I32_MAX),
    broker(
        "replica.fetch.backoff.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.replica_fetch_backoff_ms.to_string()),
        "A follower's pause before fetching a partition again after an error.",
    )
    .range(0, I64_MAX),
    broker(
        "replica.socket.timeout.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.replica_socket_timeout_ms.to_string()),
        "A follower's connect and request timeout towards its leader (added to the fetch wait).",
    )
    .range(1, I64_MAX),
    broker(
        "connections.max.idle.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.connections_max_idle_ms.to_string()),
        "Idle time after which a connection is closed.",
    )
    .range(1, I64_MAX),
    broker(
        "socket.request.read.timeout.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.socket_request_read_timeout_ms.to_string()),
        "Time from a request's first byte to its last; a slower sender is closed.",
    )
    .range(1, I64_MAX),
    broker(
        "socket.response.write.timeout.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.socket_response_write_timeout_ms.to_string()),
        "Time to write one response; a client that does not read its replies is closed.",
    )
    .range(1, I64_MAX),
    broker(
        "queued.max.decompressed.bytes",
        ConfigType::Long,
        Unit::Bytes,
        |c| Some(c.queued_max_decompressed_bytes.to_string()),
        "Bytes being decompressed to validate batches, across requests; past it REQUEST_TIMED_OUT.",
    )
    .range(1, I64_MAX),
    broker(
        "log.open.segments.max",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.log_open_segments_max.to_string()),
        "Inactive segments kept mapped, across partitions (three memory maps each, no descriptor); the least recently read are unmapped and mapped again on demand. 0 takes an eighth of the partitions RLIMIT_NOFILE allows after the connection reserve (at most an eighth of what vm.max_map_count allows).",
    )
    .range(0, I32_MAX),
    broker(
        "compression.type",
        ConfigType::String,
        Unit::None,
        |c| Some(c.compression_type.clone()),
        "Default compression.type of topics.",
    ),
    broker(
        "compression.gzip.level",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.compression_gzip_level.to_string()),
        "Default compression.gzip.level of topics.",
    )
    .range_or(1, 9, -1),
    broker(
        "compression.lz4.level",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.compression_lz4_level.to_string()),
        "Default compression.lz4.level of topics.",
    ),
    broker(
        "compression.zstd.level",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.compression_zstd_level.to_string()),
        "Default compression.zstd.level of topics.",
    ),
    broker(
        "log.cleaner.dedupe.buffer.size",
        ConfigType::Long,
        Unit::Bytes,
        |c| Some(c.log_cleaner_dedupe_buffer_size.to_string()),
        "Memory of the cleaner's key → offset map (24 bytes a key), allocated once the first compacted partition is cleaned.",
    ),
    broker(
        "log.cleaner.io.max.bytes.per.second",
        ConfigType::Double,
        Unit::Bytes,
        |c| Some(format!("{:?}", c.log_cleaner_io_max_bytes_per_second)),
        "Bytes per second the cleaner reads and writes, together (a throttle, as Kafka's); the maximum means no limit.",
    )
    .positive(),
    broker(
        "producer.id.expiration.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.producer_id_expiration_ms.to_string()),
        "How long a partition keeps an idempotent producer's state after the timestamp of its newest batch (checked at every retention check).",
    )
    .range(1, I64_MAX),
    broker(
        "log.segment.bytes",
        ConfigType::Int,
        Unit::Bytes,
        |c| Some(c.log_segment_bytes.to_string()),
        "Default segment.bytes of topics.",
    )
    .range(long(limits::MIN_SEGMENT_BYTES), long(limits::MAX_SEGMENT_BYTES)),
    broker(
        "log.retention.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.log_retention_ms.to_string()),
        "Default retention.ms of topics; -1 keeps data forever.",
    )
    .range(-1, I64_MAX),
    broker(
        "log.retention.check.interval.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.log_retention_check_interval_ms.to_string()),
        "How often retention and segment.ms rolls are checked.",
    )
    .range(1, I64_MAX),
    broker(
        "log.flush.offset.checkpoint.interval.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.log_flush_offset_checkpoint_interval_ms.to_string()),
        "How often each partition's recovery point is checkpointed (one small file written and fsynced per partition whose recovery point moved); after a crash, recovery scans from it.",
    )
    .range(1, I64_MAX),
    broker(
        "offsets.topic.num.partitions",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.offsets_topic_num_partitions.to_string()),
        "Partitions of __consumer_offsets when it is created (an existing topic keeps its count).",
    )
    .range(1, I32_MAX),
    broker(
        "offsets.topic.replication.factor",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.offsets_topic_replication_factor.to_string()),
        "Replicas of each __consumer_offsets partition when it is created; a cluster with fewer brokers gives it one replica per broker.",
    )
    .range(1, I16_MAX),
    broker(
        "offsets.retention.minutes",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.offsets_retention_minutes.to_string()),
        "Minutes a group stays empty before its committed offsets are deleted.",
    )
    .range(1, I32_MAX),
    broker(
        "offsets.retention.check.interval.ms",
        ConfigType::Long,
        Unit::Milliseconds,
        |c| Some(c.offsets_retention_check_interval_ms.to_string()),
        "How often expired committed offsets are looked for.",
    )
    .range(1, I64_MAX),
    broker(
        "group.max.size",
        ConfigType::Int,
        Unit::None,
        |c| Some(c.group_max_size.to_string()),
        "Members of one consumer group; the next JoinGroup gets GROUP_MAX_SIZE_REACHED.",
    )
    .range(1, I32_MAX),
    broker(
        "group.min.session.timeout.ms",
        ConfigType::Int,
        Unit::Milliseconds,
        |c| Some(c.group_min_session_timeout_ms.to_string()),
        "Shortest session timeout a consumer may ask for (INVALID_SESSION_TIMEOUT below it).",
    )
    .range(0, I32_MAX),
    broker(
        "group.max.session.timeout.ms",
        ConfigType::Int,
        Unit::Milliseconds,
        |c| Some(c.group_max_session_timeout_ms.to_string()),
        "Longest session timeout a consumer may ask for (INVALID_SESSION_TIMEOUT above it).",
    )
    .range(0, I32_MAX),
    broker(
        "group.initial.rebalance.delay.ms",
        ConfigType::Int,
        Unit::Milliseconds,
        |c| Some(c.group_initial_rebalance_delay_ms.to_string()),
        "A new group's first rebalance waits this long for more members.",
    )
    .range(0, I32_MAX),
    broker(
        "log.level",
        ConfigType::String,
        Unit::None,
        |c| Some(c.log_level.clone()),
        "Log filter, RUST_LOG syntax (`info`, `warn,sluice_broker::server=debug`); RUST_LOG, when set, wins.",
    ),
    broker(
        "log.format",
        ConfigType::String,
        Unit::None,
        |c| Some(c.log_format.name().to_string()),
        "Log line format on stderr: text (for people) or json (one object per line, for collectors).",
    )
    .one_of(&["text", "json"]),
    broker(
        "admin.enabled",
        ConfigType::Boolean,
        Unit::None,
        |c| Some(c.admin_enabled.to_string()),
        "Serve the admin HTTP endpoint (/metrics, /health, /ready).",
    ),
    broker(
        "admin.listen",
        ConfigType::String,
        Unit::None,
        |c| Some(c.admin_listen.to_string()),
        "Address of the admin HTTP endpoint (host:port; port 0 picks a free one).",
    ),
    broker(
        "metrics.partition.series.enabled",
        ConfigType::Boolean,
        Unit::None,
        |c| Some(c.metrics_partition_series_enabled.to_string()),
        "Export per-partition series (offsets, size, lag); turn off on brokers with many thousand partitions to bound the scrape.",
    ),
];

/// The topic setting named `name`.
pub fn topic_setting(name: &str) -> Option<&'static Setting> {
    TOPIC_SETTINGS.iter().find(|s| s.name == name)
}

/// The broker setting named `name`.
pub fn broker_setting(name: &str) -> Option<&'static Setting> {
    BROKER_SETTINGS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn names_are_unique_in_each_table() {
        for table in [TOPIC_SETTINGS, BROKER_SETTINGS] {
            let names: BTreeSet<_> = table.iter().map(|s| s.name).collect();
            assert_eq!(names.len(), table.len());
        }
        let keys: Vec<_> = BROKER_SETTINGS
            .iter()
            .filter_map(|s| s.file_key())
            .collect();
        let unique: BTreeSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "file keys repeat: {keys:?}");
    }

    #[test]
    fn topic_defaults_pass_their_own_rule_and_brokers_are_read_only() {
        for s in TOPIC_SETTINGS {
            let Scope::Topic { default, .. } = s.scope else {
                panic!("{} is in the topic table with broker scope", s.name);
            };
            crate::settings::validate_topic_value(s.name, &default.render())
                .unwrap_or_else(|e| panic!("default of {} is invalid: {e}", s.name));
        }
        let defaults = BrokerConfig::default();
        for s in BROKER_SETTINGS {
            let Scope::Broker { value, .. } = s.scope else {
                panic!("{} is in the broker table with topic scope", s.name);
            };
            assert!(!s.alterable, "{} is static", s.name);
            if let Some(v) = value(&defaults) {
                crate::settings::value::check(s, &v)
                    .unwrap_or_else(|e| panic!("default of {} is invalid: {e}", s.name));
            }
        }
    }
}
