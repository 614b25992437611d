//! `sluice`: the broker (`sluice serve`), the admin and data
//! subcommands (`topic`, `group`, `cluster`, `produce`, `consume`), which
//! talk to a cluster through `sluice-client`, and `dev-cluster`, which
//! runs several `serve` children as one local cluster. `anyhow` lives here and
//! nowhere else in the crate.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_broker::config::{BrokerConfig, LogFormat};
use sluice_broker::settings::layers::Layers;
use sluice_broker::{logging, settings};

// The client subcommands are part of this binary, not of the broker
// library: they are client code and use `anyhow`.
#[path = "../cli/mod.rs"]
mod cli;

#[derive(Parser)]
#[command(name = "sluice", version, about = "A Kafka-compatible log broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker. With no flags: a single-node cluster in ./sluice-data,
    /// listening on 127.0.0.1:9092.
    Serve(ServeArgs),
    /// Create, list, describe, alter and delete topics.
    Topic {
        #[command(subcommand)]
        command: cli::topic::TopicCommand,
        #[command(flatten)]
        connect: cli::ConnectArgs,
    },
    /// List, describe, reset and delete consumer groups.
    Group {
        #[command(subcommand)]
        command: cli::group::GroupCommand,
        #[command(flatten)]
        connect: cli::ConnectArgs,
    },
    /// Brokers and controller of the cluster.
    Cluster {
        #[command(subcommand)]
        command: cli::cluster::ClusterCommand,
        #[command(flatten)]
        connect: cli::ConnectArgs,
    },
    /// Produce lines of stdin (or --file) as records.
    Produce {
        #[command(flatten)]
        args: cli::produce::ProduceArgs,
        #[command(flatten)]
        connect: cli::ConnectArgs,
    },
    /// Print the broker's config file: every setting with its default, or
    /// the settings a `serve` command line would run with.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print records of a topic.
    Consume {
        #[command(flatten)]
        args: cli::consume::ConsumeArgs,
        #[command(flatten)]
        connect: cli::ConnectArgs,
    },
    /// Start a local cluster of N nodes on 127.0.0.1 (Ctrl-C stops it).
    DevCluster(cli::dev_cluster::DevClusterArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (`sluice config defaults` prints one with every
    /// key). Precedence, later wins: defaults < this file < `SLUICE_<KEY>`
    /// environment variables < flags.
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for partition logs and the metadata log (`data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the Kafka listener (`listen`; port 0 picks a free one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// host:port clients are told to connect to (`advertised`).
    #[arg(long)]
    advertised: Option<String>,
    /// This node's id (`node_id`).
    #[arg(long)]
    node_id: Option<i32>,
    /// Address of the controller listener, Raft between voters (`controller_listen`).
    #[arg(long)]
    controller_listen: Option<SocketAddr>,
    /// The controller quorum: id@host:port,… (`controller_voters`; default: this node alone).
    #[arg(long)]
    controller_voters: Option<String>,
    /// This broker's rack (`broker.rack`), for rack-aware placement.
    #[arg(long)]
    rack: Option<String>,
    /// Address of the admin HTTP endpoint: /metrics, /health, /ready (`admin.listen`).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Log line format: text or json (`log.format`).
    #[arg(long)]
    log_format: Option<String>,
    /// Log filter in RUST_LOG syntax (`log.level`; RUST_LOG wins).
    #[arg(long)]
    log_level: Option<String>,
    /// Any setting of the config file: --set key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ServeArgs {
    /// The settings of every layer, checked; the `SLUICE_*` variables that
    /// name no setting are returned to be warned about once logging runs.
    fn into_config(self) -> anyhow::Result<(BrokerConfig, Vec<String>)> {
        let mut layers = Layers::new();
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            layers.file(&path.display().to_string(), &text)?;
        }
        let unknown_env = layers.env(std::env::vars())?;
        let flags = [
            ("data_dir", self.data_dir.map(|p| p.display().to_string())),
            ("listen", self.listen.map(|a| a.to_string())),
            ("advertised", self.advertised),
            ("node_id", self.node_id.map(|n| n.to_string())),
            (
                "controller_listen",
                self.controller_listen.map(|a| a.to_string()),
            ),
            ("controller_voters", self.controller_voters),
            ("admin.listen", self.admin_listen.map(|a| a.to_string())),
            ("log.format", self.log_format),
            ("log.level", self.log_level),
            ("broker.rack", self.rack),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                layers.flag(key, &value)?;
            }
        }
        for assignment in &self.set {
            layers.assignment(assignment)?;
        }
        Ok((layers.build()?, unknown_env))
    }
}

// Parsed once per process and matched at once: the size difference
// between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the complete config file with every setting at its default,
    /// one comment per key.
    Defaults,
    /// Print the configuration `sluice serve` would run with these
    /// arguments, saying where each setting that is not a default came from.
    Show(ServeArgs),
    /// Print the configuration reference of docs/operations.md (Markdown
    /// tables generated from the settings table).
    Reference,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Config { command } => {
            match command {
                ConfigCommand::Defaults => print!("{}", settings::default_file::defaults()),
                ConfigCommand::Reference => print!("{}", settings::reference::markdown()),
                ConfigCommand::Show(args) => {
                    let (config, _) = args.into_config()?;
                    print!("{}", settings::default_file::effective(&config));
                }
            }
            Ok(())
        }
        client => {
            logging::init("info", LogFormat::Text).map_err(anyhow::Error::msg)?;
            run_client(client)
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (config, unknown_env) = args.into_config()?;
    logging::init(&config.log_level, config.log_format).map_err(anyhow::Error::msg)?;
    for var in unknown_env {
        tracing::warn!(%var, "environment variable names no setting; ignored");
    }
    // One line, however many keys a file sets.
    let set: Vec<String> = config
        .origins
        .iter()
        .map(|(key, origin)| format!("{key} ({origin})"))
        .collect();
    if !set.is_empty() {
        tracing::info!(settings = %set.join(", "), "settings set by the operator");
    }
    // Before any file or socket is opened: the partition budget
    // is computed from the raised limit.
    let nofile = sluice_storage::budget::raise_nofile_limit();
    let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
    tracing::info!(
        soft_before = %show(nofile.soft_before),
        soft = %show(nofile.soft_after),
        hard = %show(nofile.hard),
        "RLIMIT_NOFILE raised to the hard limit"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(sluice_broker::server::run(config, stop_signal()))
}

/// Runs a client subcommand; on failure prints one plain line (the
/// context, then the Kafka error by name) and exits with status 1.
fn run_client(command: Command) -> anyhow::Result<()> {
    let runtime = cli::runtime()?;
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(_) | Command::Config { .. } => Ok(()),
            Command::Topic { command, connect } => cli::topic::run(command, &connect).await,
            Command::Group { command, connect } => cli::group::run(command, &connect).await,
            Command::Cluster { command, connect } => cli::cluster::run(command, &connect).await,
            Command::Produce { args, connect } => cli::produce::run(args, &connect).await,
            Command::Consume { args, connect } => cli::consume::run(args, &connect).await,
            Command::DevCluster(args) => cli::dev_cluster::run(args, stop_signal()).await,
        }
    });
    if let Err(e) = result {
        match cli::hint(&e) {
            Some(hint) => eprintln!("sluice: {e:#} ({hint})"),
            None => eprintln!("sluice: {e:#}"),
        }
        std::process::exit(1);
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT stops the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}
