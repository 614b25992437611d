//! `sluice consume TOPIC`: print records, one per line, through a format
//! template (`{key} {value} {partition} {offset} {timestamp} {headers}`),
//! or as JSON lines with `--output json`.
//!
//! Without `--count` it runs until interrupted, like
//! `kafka-console-consumer`.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use sluice_client::{Consumer, ConsumerConfig, ConsumerRecord, Offset};

use super::ConnectArgs;
use super::output::Format;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// beginning, end, offset:N or timestamp:MS (ms since the epoch).
    #[arg(long, default_value = "end", value_parser = parse_from)]
    pub from: Offset,
    /// Read only these partitions (repeatable); default: all.
    #[arg(long, short = 'p')]
    pub partition: Vec<i32>,
    /// Consume as a member of this consumer group, committing offsets.
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// Template for each record: {key} {value} {partition} {offset}
    /// {timestamp} {headers}; \t and \n are expanded.
    #[arg(long, short = 'f', default_value = "{value}")]
    pub format: String,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
}

/// Parses `--from`.
pub fn parse_from(s: &str) -> Result<Offset, String> {
    let number = |v: &str, what: &str| {
        v.parse::<i64>()
            .map_err(|_| format!("{what} must be a number, got '{v}'"))
    };
    match s {
        "beginning" | "earliest" => Ok(Offset::Beginning),
        "end" | "latest" => Ok(Offset::End),
        _ => match s.split_once(':') {
            Some(("offset", v)) => Ok(Offset::At(number(v, "offset")?)),
            Some(("timestamp", v)) => Ok(Offset::Timestamp(number(v, "timestamp")?)),
            _ => Err(format!(
                "'{s}' is not one of beginning, end, offset:N, timestamp:MS"
            )),
        },
    }
}

pub async fn run(args: ConsumeArgs, connect: &ConnectArgs) -> anyhow::Result<()> {
    if let Some(group) = &args.group {
        return super::group::consume_in_group(&args, group, connect).await;
    }
    let config = ConsumerConfig::new(connect.client_config()).with_auto_offset_reset(args.from);
    let mut consumer = Consumer::connect(config).await?;
    let context = || format!("cannot consume from '{}'", args.topic);
    if args.partition.is_empty() {
        consumer
            .assign_all(&args.topic)
            .await
            .with_context(context)?;
    } else {
        consumer
            .assign(&args.topic, &args.partition)
            .await
            .with_context(context)?;
    }
    consumer.seek_all(args.from).await.with_context(context)?;
    let mut printed = 0u64;
    let mut out = std::io::stdout().lock();
    while args.count.is_none_or(|n| printed < n) {
        for record in consumer.poll().await.with_context(context)? {
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
            print_record(&mut out, &record, &args.format, connect.output)?;
            printed += 1;
        }
        out.flush()?;
    }
    Ok(())
}

/// Prints one record per the template or as a JSON line.
pub fn print_record(
    out: &mut dyn Write,
    r: &ConsumerRecord,
    template: &str,
    format: Format,
) -> std::io::Result<()> {
    let text =
        |b: &Option<bytes::Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    match format {
        Format::Json => {
            let headers: serde_json::Map<String, serde_json::Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(text(v))))
                .collect();
            let line = json!({
                "topic": &*r.topic, "partition": r.partition, "offset": r.offset,
                "timestamp": r.timestamp, "key": text(&r.key), "value": text(&r.value),
                "headers": headers,
            });
            writeln!(out, "{line}")
        }
        Format::Table => {
            let headers = r
                .headers
                .iter()
                .map(|(k, v)| format!("{k}={}", text(v).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",");
            let line = template
                .replace("\\t", "\t")
                .replace("\\n", "\n")
                .replace("{key}", &text(&r.key).unwrap_or_default())
                .replace("{value}", &text(&r.value).unwrap_or_default())
                .replace("{partition}", &r.partition.to_string())
                .replace("{offset}", &r.offset.to_string())
                .replace("{timestamp}", &r.timestamp.to_string())
                .replace("{headers}", &headers);
            writeln!(out, "{line}")
        }
    }
}
