//! The `sluice` subcommands that talk to a running cluster through
//! `sluice-client`: `topic`, `group`, `cluster`, `produce`, `consume`,
//! and `dev-cluster`, which starts a local cluster and probes it the same
//! way.
//!
//! This module is compiled into the `sluice` binary only (see
//! `bin/sluice.rs`), not into the `sluice-broker` library: it is client
//! code, it uses `anyhow`, and the broker library must not depend on the
//! client.
//!
//! Every subcommand takes `--bootstrap` (or `SLUICE_BOOTSTRAP`, default
//! `127.0.0.1:9092`) and `--output table|json`. Failures print one
//! plain-language line naming the Kafka error and exit non-zero.

pub mod cluster;
pub mod consume;
pub mod dev_cluster;
pub mod group;
pub mod output;
pub mod produce;
pub mod topic;

use std::time::Duration;

use clap::Args;
use sluice_client::ClientConfig;

/// How to reach the cluster and how to print; shared by every client
/// subcommand.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Comma-separated host:port list of brokers to bootstrap from.
    #[arg(
        long,
        global = true,
        env = "SLUICE_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,
    /// `table` for people, `json` for scripts.
    #[arg(long, global = true, value_enum, default_value_t = output::Format::Table)]
    pub output: output::Format,
    /// Seconds to wait for a broker to answer a request.
    #[arg(long, global = true, default_value_t = 30)]
    pub timeout: u64,
}

impl ConnectArgs {
    pub fn client_config(&self) -> ClientConfig {
        let timeout = Duration::from_secs(self.timeout.max(1));
        ClientConfig::new(&self.bootstrap)
            .with_client_id("sluice-cli")
            .with_request_timeout(timeout)
            .with_connect_timeout(timeout.min(Duration::from_secs(10)))
    }
}

/// Parses `key=value`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected key=value, got '{s}'")),
    }
}

/// Builds the multi-threaded runtime the client subcommands run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A plain-language sentence for the Kafka errors people meet at the
/// command line, appended to the error's own text.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    use sluice_client::{Error, kafka_name};
    let code = error.chain().find_map(|e| e.downcast_ref::<Error>())?;
    if let Error::NoBrokerAvailable { .. } = code {
        return Some("is a broker running there? Set --bootstrap or SLUICE_BOOTSTRAP");
    }
    let name = kafka_name(code.code()?);
    Some(match name.as_str() {
        "UNKNOWN_TOPIC_OR_PARTITION" => "the topic or partition does not exist",
        "TOPIC_ALREADY_EXISTS" => "a topic with that name exists already",
        "INVALID_PARTITIONS" => "the partition count is not valid",
        "INVALID_REPLICATION_FACTOR" => "the replication factor is not valid for this cluster",
        "INVALID_CONFIG" => "a config name or value is not valid",
        "GROUP_ID_NOT_FOUND" => "the group does not exist",
        "NON_EMPTY_GROUP" => "the group still has members; stop its consumers first",
        "UNKNOWN_MEMBER_ID" => "the group has live members; stop its consumers first",
        "COORDINATOR_NOT_AVAILABLE" => "the group coordinator is not available yet; retry",
        "MESSAGE_TOO_LARGE" => "a record is larger than the topic's max.message.bytes",
        _ => return None,
    })
}
