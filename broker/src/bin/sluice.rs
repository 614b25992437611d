//! `sluice`: the broker (`sluice serve`), the admin and data
//! subcommands (`topic`, `group`, `cluster`, `produce`, `consume`), which
//! talk to a cluster through `sluice-client`, and `dev-cluster`, which
//! runs several `serve` children as one local cluster. `anyhow` lives here and
//! nowhere else in the crate.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_broker::config::BrokerConfig;

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
    /// TOML config file; flags given here override it.
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for partition logs and the metadata log.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the Kafka listener (port 0 picks a free one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// host:port clients are told to connect to.
    #[arg(long)]
    advertised: Option<String>,
    /// This node's id.
    #[arg(long)]
    node_id: Option<i32>,
    /// Address of the controller listener (Raft between voters).
    #[arg(long)]
    controller_listen: Option<SocketAddr>,
    /// The controller quorum: id@host:port,… (default: this node alone).
    #[arg(long)]
    controller_voters: Option<String>,
    /// This broker's rack (`broker.rack`), for rack-aware placement.
    #[arg(long)]
    rack: Option<String>,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<BrokerConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                BrokerConfig::from_toml(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => BrokerConfig::default(),
        };
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = self.advertised {
            config.advertised = Some(v);
        }
        if let Some(v) = self.node_id {
            config.node_id = v;
        }
        if let Some(v) = self.controller_listen {
            config.controller_listen = Some(v);
        }
        if let Some(v) = self.controller_voters {
            config.controller_voters = Some(v);
        }
        if let Some(v) = self.rack {
            config.broker_rack = Some(v);
        }
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = args.into_config()?;
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
        client => run_client(client),
    }
}

/// Runs a client subcommand; on failure prints one plain line (the
/// context, then the Kafka error by name) and exits with status 1.
fn run_client(command: Command) -> anyhow::Result<()> {
    let runtime = cli::runtime()?;
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(_) => Ok(()),
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
