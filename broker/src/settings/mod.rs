//! Settings: one table of every topic config and broker setting, and
//! everything derived from it.
//!
//! | file | owns |
//! |---|---|
//! | `table.rs` | the rows: Kafka name, type, unit, default, bounds, scope, alterable, doc |
//! | `value.rs` | parsing and validating a value against its row ([`ConfigError`]) |
//! | `topic.rs` | a topic's effective config ([`TopicConfig`]) and its storage `LogConfig` |
//! | `describe.rs` | DescribeConfigs and CreateTopics v5+ entries |
//! | `resource.rs` | which config resources are served |
//! | `reference.rs` | the configuration reference of `docs/operations.md` |
//! | `layers.rs` | reading broker settings: file < `SLUICE_*` environment < flags, each value checked |
//! | `default_file.rs` | `sluice config defaults` / `show`: the whole file, one commented key per row |
//!
//! ```text
//! CreateTopics / AlterConfigs / IncrementalAlterConfigs
//!   ─► validate_topic_value (every key, every value)   INVALID_CONFIG, nothing written
//!   ─► metadata log ─► image ─► TopicConfig::resolve ─► LogConfig (always valid)
//! replay of an old log: a stored value the table refuses is ignored
//!   (warned once at start), the key takes its default
//! ```
//!
//! # Invariants
//! - One definition per key: no other file lists config keys, bounds or
//!   defaults. Storage's bounds are `sluice_storage::limits` constants the
//!   table reads (storage never depends on the broker).
//! - Nothing a client sends and nothing stored in the metadata log can
//!   stop a partition from opening or the broker from starting.
//!
//! # Caveats
//! - Broker settings are static: reported read-only, never alterable
//!   (Kafka's dynamic broker configs, KIP-226, are not served).

pub mod default_file;
pub mod describe;
pub mod layers;
pub mod reference;
pub mod resource;
pub mod table;
pub mod topic;
pub mod value;

pub use topic::{Compaction, Source, TopicConfig, TopicDefaults, invalid_overrides};
pub use value::{ConfigError, validate_topic_value, validate_topic_values};
