//! `sluice cluster info`: brokers, controller, topic count, and the
//! partitions that are under-replicated or offline.

use clap::Subcommand;
use serde_json::json;
use sluice_client::Admin;

use super::ConnectArgs;
use super::output::{Format, print_json, print_table};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers.
    Info,
}

pub async fn run(command: ClusterCommand, connect: &ConnectArgs) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Info => info(connect).await,
    }
}

async fn info(connect: &ConnectArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(connect.client_config()).await?;
    let meta = admin.cluster_metadata().await?;
    let partitions = || meta.topics.values().flat_map(|t| t.partitions.iter());
    let under_replicated = partitions().filter(|p| p.is_under_replicated()).count();
    let offline = partitions().filter(|p| p.is_offline()).count();
    match connect.output {
        Format::Json => print_json(&json!({
            "cluster_id": meta.cluster_id,
            "controller_id": meta.controller_id,
            "brokers": meta.brokers.values().map(|b| json!({
                "node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack,
            })).collect::<Vec<_>>(),
            "topics": meta.topics.len(),
            "under_replicated_partitions": under_replicated,
            "offline_partitions": offline,
        }))?,
        Format::Table => {
            println!(
                "cluster id: {}\ncontroller: {}\ntopics:     {}\nunder-replicated partitions: {under_replicated}\noffline partitions: {offline}\n",
                meta.cluster_id.as_deref().unwrap_or("-"),
                meta.controller_id,
                meta.topics.len()
            );
            let rows: Vec<Vec<String>> = meta
                .brokers
                .values()
                .map(|b| {
                    let role = if b.node_id == meta.controller_id {
                        "controller"
                    } else {
                        ""
                    };
                    vec![
                        b.node_id.to_string(),
                        b.address(),
                        b.rack.clone().unwrap_or_else(|| "-".into()),
                        role.to_owned(),
                    ]
                })
                .collect();
            print_table(&["NODE", "ADDRESS", "RACK", "ROLE"], &rows)?;
        }
    }
    Ok(())
}
