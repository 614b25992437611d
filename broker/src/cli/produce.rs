//! `sluice produce TOPIC`: one record per input line, from stdin or a
//! file.
//!
//! With `--key-separator SEP`, the text before the first SEP is the key
//! and the rest the value; a line without SEP has no key. Deliveries are
//! awaited in a rolling window of [`DELIVERY_WINDOW`] so memory stays
//! bounded however long the input is; the first failed record stops the
//! command with its error.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use sluice_client::{Acks, Compression, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};

use super::output::{Format, print_json};
use super::{ConnectArgs, key_value};

/// Deliveries awaited at most this far behind the newest send.
const DELIVERY_WINDOW: usize = 10_000;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Read records from this file instead of stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Split each line into key and value at the first occurrence of this.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// A header `key=value` added to every record; repeatable.
    #[arg(long = "header", short = 'H', value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// Send every record to this partition instead of the partitioner's
    /// choice (murmur2 of the key; sticky when there is none).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: Compression,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// Batch bytes per Produce request (Kafka's max.request.size; the
    /// client's default is 1 MiB). A line larger than this, with its
    /// framing, fails with MESSAGE_TOO_LARGE.
    #[arg(long, value_name = "BYTES")]
    pub max_request_size: Option<usize>,
}

pub async fn run(args: ProduceArgs, connect: &ConnectArgs) -> anyhow::Result<()> {
    let acks = match args.acks.as_str() {
        "0" => Acks::None,
        "1" => Acks::Leader,
        "all" | "-1" => Acks::All,
        other => anyhow::bail!("--acks must be 0, 1 or all, not '{other}'"),
    };
    let mut config = ProducerConfig::new(connect.client_config())
        .with_acks(acks)
        .with_compression(args.compression);
    if let Some(bytes) = args.max_request_size {
        config = config.with_max_request_size(bytes);
    }
    let producer = Producer::connect(config).await?;
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let mut window: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut sent = 0u64;
    let mut partitions = std::collections::BTreeMap::<i32, u64>::new();
    for line in input.lines() {
        let line = line.context("cannot read input")?;
        let record = to_record(&args, &line);
        window.push_back(
            producer
                .send(record)
                .await
                .with_context(|| format!("cannot produce to '{}'", args.topic))?,
        );
        sent += 1;
        if window.len() >= DELIVERY_WINDOW
            && let Some(d) = window.pop_front()
        {
            let (p, _) = d
                .await
                .with_context(|| format!("cannot produce to '{}'", args.topic))?;
            *partitions.entry(p).or_default() += 1;
        }
    }
    producer.flush().await?;
    while let Some(d) = window.pop_front() {
        let (p, _) = d
            .await
            .with_context(|| format!("cannot produce to '{}'", args.topic))?;
        *partitions.entry(p).or_default() += 1;
    }
    match connect.output {
        Format::Json => print_json(&json!({
            "topic": args.topic,
            "records": sent,
            "partitions": partitions.iter().map(|(p, n)| json!({"partition": p, "records": n})).collect::<Vec<_>>(),
        }))?,
        Format::Table => eprintln!("produced {sent} records to '{}'", args.topic),
    }
    Ok(())
}

fn to_record(args: &ProduceArgs, line: &str) -> ProducerRecord {
    let (key, value) = match &args.key_separator {
        Some(sep) => match line.split_once(sep.as_str()) {
            Some((k, v)) => (Some(k.to_owned()), v.to_owned()),
            None => (None, line.to_owned()),
        },
        None => (None, line.to_owned()),
    };
    let mut record = ProducerRecord::new(args.topic.as_str(), value);
    if let Some(k) = key {
        record = record.with_key(k);
    }
    if let Some(p) = args.partition {
        record = record.with_partition(p);
    }
    for (k, v) in &args.headers {
        record = record.with_header(k.clone(), v.clone());
    }
    record
}
