//! `sluice group list|describe|reset-offsets|delete`, and `consume
//! --group`.
//!
//! These need a broker serving the consumer-group APIs; against one that
//! does not, they fail naming the unsupported API.

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;

use sluice_client::{Admin, Consumer, ConsumerConfig, GroupOffset, Offset, OffsetSpec};

use super::ConnectArgs;
use super::consume::{ConsumeArgs, parse_from, print_record};
use super::output::{Format, print_json, print_table};

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups.
    List,
    /// Members, assignments, committed offsets and lag of a group.
    Describe { group: String },
    /// Set a group's committed offsets for a topic (the group must have no
    /// members).
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        /// beginning, end, offset:N or timestamp:MS.
        #[arg(long, value_parser = parse_from)]
        to: Offset,
        /// Only these partitions (repeatable); default: all.
        #[arg(long, short = 'p')]
        partition: Vec<i32>,
    },
    /// Delete a group (it must have no members).
    Delete { group: String },
}

pub async fn run(command: GroupCommand, connect: &ConnectArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(connect.client_config()).await?;
    match command {
        GroupCommand::List => {
            let groups = admin.list_groups().await.context("cannot list groups")?;
            match connect.output {
                Format::Json => {
                    print_json(&json!(groups.iter().map(|g| json!({
                    "group": g.group_id, "protocol_type": g.protocol_type, "state": g.state,
                })).collect::<Vec<_>>()))?
                }
                Format::Table => {
                    let rows: Vec<Vec<String>> = groups
                        .iter()
                        .map(|g| vec![g.group_id.clone(), g.state.clone(), g.protocol_type.clone()])
                        .collect();
                    print_table(&["GROUP", "STATE", "PROTOCOL TYPE"], &rows)?;
                }
            }
        }
        GroupCommand::Describe { group } => describe(&admin, connect, &group).await?,
        GroupCommand::ResetOffsets {
            group,
            topic,
            to,
            partition,
        } => {
            let context = || format!("cannot reset offsets of group '{group}'");
            let spec = match to {
                Offset::Beginning => Some(OffsetSpec::Earliest),
                Offset::End => Some(OffsetSpec::Latest),
                Offset::Timestamp(ms) => Some(OffsetSpec::Timestamp(ms)),
                Offset::At(_) => None,
            };
            let all = admin
                .list_offsets(&topic, spec.unwrap_or(OffsetSpec::Latest))
                .await
                .with_context(context)?;
            let offsets: Vec<GroupOffset> = all
                .iter()
                .filter(|o| partition.is_empty() || partition.contains(&o.partition))
                .map(|o| GroupOffset {
                    topic: topic.clone(),
                    partition: o.partition,
                    offset: match to {
                        Offset::At(n) => n,
                        _ => o.offset,
                    },
                })
                .collect();
            admin
                .reset_group_offsets(&group, &offsets)
                .await
                .with_context(context)?;
            match connect.output {
                Format::Json => print_json(&json!(
                    offsets
                        .iter()
                        .map(|o| json!({
                            "topic": o.topic, "partition": o.partition, "offset": o.offset,
                        }))
                        .collect::<Vec<_>>()
                ))?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = offsets
                        .iter()
                        .map(|o| {
                            vec![
                                o.topic.clone(),
                                o.partition.to_string(),
                                o.offset.to_string(),
                            ]
                        })
                        .collect();
                    print_table(&["TOPIC", "PARTITION", "NEW OFFSET"], &rows)?;
                }
            }
        }
        GroupCommand::Delete { group } => {
            admin
                .delete_group(&group)
                .await
                .with_context(|| format!("cannot delete group '{group}'"))?;
            match connect.output {
                Format::Json => print_json(&json!({"deleted": group}))?,
                Format::Table => println!("deleted group '{group}'"),
            }
        }
    }
    Ok(())
}

async fn describe(admin: &Admin, connect: &ConnectArgs, group: &str) -> anyhow::Result<()> {
    let context = || format!("cannot describe group '{group}'");
    let d = admin.describe_group(group).await.with_context(context)?;
    let offsets = admin.group_offsets(group).await.with_context(context)?;
    let mut rows = Vec::new();
    let mut json_offsets = Vec::new();
    for o in &offsets {
        let end = admin
            .list_offsets(&o.topic, OffsetSpec::Latest)
            .await
            .ok()
            .and_then(|l| l.into_iter().find(|p| p.partition == o.partition))
            .map_or(-1, |p| p.offset);
        let lag = if end >= 0 { end - o.offset } else { -1 };
        let owner = d
            .members
            .iter()
            .find(|m| {
                m.assignment
                    .iter()
                    .any(|(t, ps)| *t == o.topic && ps.contains(&o.partition))
            })
            .map_or("-".to_owned(), |m| m.member_id.clone());
        rows.push(vec![
            o.topic.clone(),
            o.partition.to_string(),
            o.offset.to_string(),
            end.to_string(),
            lag.to_string(),
            owner.clone(),
        ]);
        json_offsets.push(json!({
            "topic": o.topic, "partition": o.partition, "committed": o.offset,
            "end": end, "lag": lag, "member": owner,
        }));
    }
    match connect.output {
        Format::Json => print_json(&json!({
            "group": d.group_id, "state": d.state, "protocol": d.protocol,
            "members": d.members.iter().map(|m| json!({
                "member_id": m.member_id, "client_id": m.client_id, "host": m.client_host,
                "assignment": m.assignment,
            })).collect::<Vec<_>>(),
            "offsets": json_offsets,
        }))?,
        Format::Table => {
            println!(
                "group: {}  state: {}  protocol: {}  members: {}\n",
                d.group_id,
                d.state,
                if d.protocol.is_empty() {
                    "-"
                } else {
                    &d.protocol
                },
                d.members.len()
            );
            print_table(
                &["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"],
                &rows,
            )?;
        }
    }
    Ok(())
}

/// `sluice consume --group`: consume as a group member (cooperative-sticky),
/// committing what was printed when it stops. `--from` applies to
/// partitions the group has no committed offset for.
pub async fn consume_in_group(
    args: &ConsumeArgs,
    group: &str,
    connect: &ConnectArgs,
) -> anyhow::Result<()> {
    let context = || format!("cannot consume from '{}' as group '{group}'", args.topic);
    if !args.partition.is_empty() {
        anyhow::bail!("--partition and --group do not mix: the group assigns partitions");
    }
    let config = ConsumerConfig::new(connect.client_config())
        .with_group(group)
        .with_auto_offset_reset(args.from);
    let mut consumer = Consumer::connect(config).await.with_context(context)?;
    consumer
        .subscribe(&[args.topic.as_str()])
        .await
        .with_context(context)?;
    let mut printed = 0u64;
    // The first record per partition that was fetched but not printed
    // (--count reached): the position goes back to it before the commit,
    // so the next run starts there instead of skipping it.
    let mut unprinted: BTreeMap<i32, i64> = BTreeMap::new();
    let mut out = std::io::stdout().lock();
    while args.count.is_none_or(|n| printed < n) {
        for record in consumer.poll().await.with_context(context)? {
            if args.count.is_some_and(|n| printed >= n) {
                unprinted.entry(record.partition).or_insert(record.offset);
                continue;
            }
            print_record(&mut out, &record, &args.format, connect.output)?;
            printed += 1;
        }
        out.flush()?;
    }
    for (partition, offset) in unprinted {
        consumer
            .seek(&args.topic, partition, Offset::At(offset))
            .await
            .with_context(context)?;
    }
    consumer.close().await.with_context(context)
}
