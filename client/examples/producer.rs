//! Produces N keyed records and reports the rate; a rough benchmark too.
//!
//! ```text
//! cargo run --release -p sluice-client --example producer -- 127.0.0.1:9092 demo 1000000 lz4
//! ```

use std::time::Instant;

use sluice_client::{ClientConfig, Compression, Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic: std::sync::Arc<str> = args.next().unwrap_or_else(|| "demo".into()).into();
    let count: usize = args.next().map_or(Ok(100_000), |n| n.parse())?;
    let compression: Compression = args.next().map_or(Ok(Compression::None), |c| c.parse())?;
    let value_bytes: usize = args.next().map_or(Ok(100), |n| n.parse())?;

    let config = ProducerConfig::new(ClientConfig::new(&bootstrap))
        .with_compression(compression)
        .with_batch_size(256 * 1024);
    let producer = Producer::connect(config).await?;
    // `Bytes`: every record shares one value buffer; the producer copies
    // it once, into the batch.
    let value = bytes::Bytes::from(vec![b'x'; value_bytes]);
    let started = Instant::now();
    let mut last = None;
    for i in 0..count {
        let record =
            ProducerRecord::new(topic.clone(), value.clone()).with_key(format!("key-{}", i % 1000));
        // `send` waits only when the producer's buffer is full; the
        // returned future resolves when the broker acknowledges.
        last = Some(producer.send(record).await?);
    }
    producer.flush().await?;
    if let Some(d) = last {
        let (partition, offset) = d.await?;
        println!("last record: partition {partition} offset {offset}");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{count} records of {value_bytes} B in {secs:.2} s: {:.0} records/s, {:.1} MiB/s",
        count as f64 / secs,
        (count * value_bytes) as f64 / secs / (1024.0 * 1024.0)
    );
    Ok(())
}
