//! `sluice topic create|list|describe|alter|delete`.

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use sluice_client::{Admin, ConfigChange, NewTopic, OffsetSpec};

use super::output::{Format, print_json, print_table};
use super::{ConnectArgs, key_value};

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, short = 'p', default_value_t = 1)]
        partitions: i32,
        /// Replicas per partition (-1: the broker default).
        #[arg(long, short = 'r', default_value_t = -1)]
        replication_factor: i16,
        /// A topic config, `key=value`; repeatable.
        #[arg(long = "config", short = 'c', value_parser = key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics.
    List,
    /// Partitions, leaders, offsets and configs of a topic.
    Describe { name: String },
    /// Change topic configs.
    Alter {
        name: String,
        /// Set `key=value`; repeatable.
        #[arg(long = "set", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// Reset `key` to the broker default; repeatable.
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub async fn run(command: TopicCommand, connect: &ConnectArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(connect.client_config()).await?;
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut topic =
                NewTopic::new(&name, partitions).with_replication_factor(replication_factor);
            for (k, v) in configs {
                topic = topic.with_config(k, v);
            }
            admin
                .create_topic(&topic)
                .await
                .with_context(|| format!("cannot create topic '{name}'"))?;
            done(
                connect,
                json!({"created": name}),
                &format!("created topic '{name}'"),
            )
        }
        TopicCommand::List => list(&admin, connect).await,
        TopicCommand::Describe { name } => describe(&admin, connect, &name).await,
        TopicCommand::Alter { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                anyhow::bail!("nothing to change: give --set key=value or --delete key");
            }
            let changes: Vec<ConfigChange> = set
                .into_iter()
                .map(|(k, v)| ConfigChange::Set(k, v))
                .chain(delete.into_iter().map(ConfigChange::Delete))
                .collect();
            admin
                .alter_topic_configs(&name, &changes)
                .await
                .with_context(|| format!("cannot alter topic '{name}'"))?;
            done(
                connect,
                json!({"altered": name}),
                &format!("altered topic '{name}'"),
            )
        }
        TopicCommand::Delete { names } => {
            admin
                .delete_topics(&names)
                .await
                .with_context(|| format!("cannot delete {}", names.join(", ")))?;
            done(
                connect,
                json!({"deleted": names}),
                &format!("deleted {}", names.join(", ")),
            )
        }
    }
}

fn done(connect: &ConnectArgs, value: serde_json::Value, text: &str) -> anyhow::Result<()> {
    match connect.output {
        Format::Json => print_json(&value)?,
        Format::Table => println!("{text}"),
    }
    Ok(())
}

async fn list(admin: &Admin, connect: &ConnectArgs) -> anyhow::Result<()> {
    let topics = admin.list_topics().await.context("cannot list topics")?;
    match connect.output {
        Format::Json => print_json(&json!(
            topics
                .iter()
                .map(|t| json!({"name": t.name, "partitions": t.partition_count(), "internal": t.is_internal}))
                .collect::<Vec<_>>()
        ))?,
        Format::Table => {
            let rows: Vec<Vec<String>> = topics
                .iter()
                .map(|t| vec![t.name.clone(), t.partition_count().to_string()])
                .collect();
            print_table(&["TOPIC", "PARTITIONS"], &rows)?;
        }
    }
    Ok(())
}

async fn describe(admin: &Admin, connect: &ConnectArgs, name: &str) -> anyhow::Result<()> {
    let context = || format!("cannot describe topic '{name}'");
    let d = admin.describe_topic(name).await.with_context(context)?;
    let earliest = admin
        .list_offsets(name, OffsetSpec::Earliest)
        .await
        .with_context(context)?;
    let latest = admin
        .list_offsets(name, OffsetSpec::Latest)
        .await
        .with_context(context)?;
    let offset_of = |list: &[sluice_client::PartitionOffset], p: i32| {
        list.iter()
            .find(|o| o.partition == p)
            .map_or(-1, |o| o.offset)
    };
    let set_configs: Vec<_> = d.configs.iter().filter(|c| !c.is_default).collect();
    match connect.output {
        Format::Json => print_json(&json!({
            "name": d.topic.name,
            "partitions": d.topic.partitions.iter().map(|p| json!({
                "partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch,
                "replicas": p.replicas, "isr": p.isr, "status": p.status(),
                "earliest_offset": offset_of(&earliest, p.partition),
                "latest_offset": offset_of(&latest, p.partition),
            })).collect::<Vec<_>>(),
            "configs": d.configs.iter().map(|c| json!({
                "name": c.name, "value": c.value, "default": c.is_default,
            })).collect::<Vec<_>>(),
        }))?,
        Format::Table => {
            println!(
                "topic: {}  partitions: {}\n",
                d.topic.name,
                d.topic.partitions.len()
            );
            let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            let rows: Vec<Vec<String>> = d
                .topic
                .partitions
                .iter()
                .map(|p| {
                    vec![
                        p.partition.to_string(),
                        p.leader.to_string(),
                        ids(&p.replicas),
                        ids(&p.isr),
                        p.status().to_string(),
                        offset_of(&earliest, p.partition).to_string(),
                        offset_of(&latest, p.partition).to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "PARTITION",
                    "LEADER",
                    "REPLICAS",
                    "ISR",
                    "STATUS",
                    "EARLIEST",
                    "LATEST",
                ],
                &rows,
            )?;
            if !set_configs.is_empty() {
                println!();
                let rows: Vec<Vec<String>> = set_configs
                    .iter()
                    .map(|c| vec![c.name.clone(), c.value.clone().unwrap_or_default()])
                    .collect();
                print_table(&["CONFIG", "VALUE"], &rows)?;
            }
        }
    }
    Ok(())
}
