//! Reads a topic: from the beginning with manual assignment (`N` records),
//! or as a member of a group when a group id is given. Reports the rate.
//!
//! ```text
//! cargo run --release -p sluice-client --example consumer -- 127.0.0.1:9092 demo 1000000
//! cargo run --release -p sluice-client --example consumer -- 127.0.0.1:9092 demo 1000 my-group
//! ```

use std::time::Instant;

use sluice_client::{ClientConfig, Consumer, ConsumerConfig, Offset};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "demo".into());
    let count: usize = args.next().map_or(Ok(100_000), |n| n.parse())?;
    let group = args.next();

    let mut config = ConsumerConfig::new(ClientConfig::new(&bootstrap))
        .with_auto_offset_reset(Offset::Beginning);
    if let Some(g) = &group {
        config = config.with_group(g.clone());
    }
    let mut consumer = Consumer::connect(config).await?;
    if group.is_some() {
        consumer.subscribe(&[&topic]).await?;
    } else {
        consumer.assign_all(&topic).await?;
        consumer.seek_all(Offset::Beginning).await?;
    }
    let started = Instant::now();
    let (mut records, mut bytes) = (0usize, 0usize);
    while records < count {
        // The next fetch is already in flight while this batch is handled.
        for r in consumer.poll().await? {
            records += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{records} records in {secs:.2} s: {:.0} records/s, {:.1} MiB/s of values",
        records as f64 / secs,
        bytes as f64 / secs / (1024.0 * 1024.0)
    );
    consumer.close().await?;
    Ok(())
}
