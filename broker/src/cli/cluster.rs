//! `sluice cluster info`: brokers, controller, topic count, and the
//! partitions that are under-replicated or offline.
//! `sluice cluster elect-leaders`: preferred (or unclean) leader election.
//! `sluice cluster reassign` / `reassignments`: move a partition's
//! replicas (KIP-455) and follow the moves in progress.

use clap::Subcommand;
use serde_json::json;
use sluice_client::Admin;

use super::ConnectArgs;
use super::output::{Format, print_json, print_table};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers.
    Info,
    /// Move leaderships to the preferred (first) replica where it is in
    /// sync; with --unclean, elect an out-of-sync replica where no in-sync
    /// one is alive (may lose acknowledged records).
    ElectLeaders {
        /// Only this topic (every partition of every topic without it).
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        #[arg(long)]
        unclean: bool,
    },
    /// Move a partition to new replicas (the first becomes the preferred
    /// leader); --cancel stops a move in progress.
    Reassign {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        /// Target broker ids, comma-separated.
        #[arg(long, value_delimiter = ',', required_unless_present = "cancel")]
        replicas: Vec<i32>,
        #[arg(long, conflicts_with = "replicas")]
        cancel: bool,
    },
    /// Reassignments in progress.
    Reassignments,
}

pub async fn run(command: ClusterCommand, connect: &ConnectArgs) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Info => info(connect).await,
        ClusterCommand::ElectLeaders {
            topic,
            partition,
            unclean,
        } => elect_leaders(connect, topic, partition, unclean).await,
        ClusterCommand::Reassign {
            topic,
            partition,
            replicas,
            cancel,
        } => {
            let admin = Admin::connect(connect.client_config()).await?;
            let target = (!cancel).then_some(replicas);
            admin
                .alter_partition_reassignment(&topic, partition, target.clone())
                .await?;
            match target {
                Some(r) => println!(
                    "reassignment of {topic}-{partition} to {r:?} started; follow it with `sluice cluster reassignments`"
                ),
                None => println!("reassignment of {topic}-{partition} cancelled"),
            }
            Ok(())
        }
        ClusterCommand::Reassignments => reassignments(connect).await,
    }
}

async fn elect_leaders(
    connect: &ConnectArgs,
    topic: Option<String>,
    partition: Option<i32>,
    unclean: bool,
) -> anyhow::Result<()> {
    let admin = Admin::connect(connect.client_config()).await?;
    let asked = match (topic, partition) {
        (Some(t), Some(p)) => Some(vec![(t, vec![p])]),
        (Some(t), None) => {
            let count = admin.describe_topic(&t).await?.topic.partitions.len();
            let all = (0..i32::try_from(count).unwrap_or(i32::MAX)).collect();
            Some(vec![(t, all)])
        }
        (None, _) => None,
    };
    let outcomes = admin.elect_leaders(unclean, asked).await?;
    let result = |o: &sluice_client::ElectionOutcome| {
        if o.error.is_none() {
            "ELECTED".to_string()
        } else {
            sluice_client::kafka_name(o.error)
        }
    };
    match connect.output {
        Format::Json => print_json(&serde_json::Value::Array(
            outcomes
                .iter()
                .map(|o| {
                    json!({
                        "topic": o.topic, "partition": o.partition,
                        "error_code": o.error.code(), "result": result(o),
                        "message": o.message,
                    })
                })
                .collect(),
        ))?,
        Format::Table => {
            let rows: Vec<Vec<String>> = outcomes
                .iter()
                .map(|o| {
                    vec![
                        o.topic.clone(),
                        o.partition.to_string(),
                        result(o),
                        o.message.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(&["TOPIC", "PARTITION", "RESULT", "MESSAGE"], &rows)?;
        }
    }
    Ok(())
}

async fn reassignments(connect: &ConnectArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(connect.client_config()).await?;
    let list = admin.list_partition_reassignments().await?;
    let ids = |l: &[i32]| l.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    match connect.output {
        Format::Json => print_json(&serde_json::Value::Array(
            list.iter()
                .map(|r| {
                    json!({
                        "topic": r.topic, "partition": r.partition, "replicas": r.replicas,
                        "adding": r.adding, "removing": r.removing,
                    })
                })
                .collect(),
        ))?,
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    vec![
                        r.topic.clone(),
                        r.partition.to_string(),
                        ids(&r.replicas),
                        ids(&r.adding),
                        ids(&r.removing),
                    ]
                })
                .collect();
            print_table(
                &["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"],
                &rows,
            )?;
        }
    }
    Ok(())
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
