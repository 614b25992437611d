//! Creates a topic, describes it, changes a config, lists offsets.
//!
//! ```text
//! cargo run -p sluice-client --example admin -- 127.0.0.1:9092 demo
//! ```

use sluice_client::{Admin, ClientConfig, ConfigChange, NewTopic, OffsetSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "demo".into());

    let admin = Admin::connect(ClientConfig::new(&bootstrap)).await?;
    let meta = admin.cluster_metadata().await?;
    println!(
        "cluster {:?}, controller {}, {} broker(s)",
        meta.cluster_id,
        meta.controller_id,
        meta.brokers.len()
    );

    match admin
        .create_topic(&NewTopic::new(&topic, 3).with_config("retention.ms", "86400000"))
        .await
    {
        Ok(()) => println!("created {topic}"),
        Err(e) => println!("not created: {e}"),
    }
    admin
        .alter_topic_configs(
            &topic,
            &[ConfigChange::Set("segment.ms".into(), "3600000".into())],
        )
        .await?;
    let described = admin.describe_topic(&topic).await?;
    for p in &described.topic.partitions {
        println!(
            "partition {} leader {} replicas {:?}",
            p.partition, p.leader, p.replicas
        );
    }
    for c in described.configs.iter().filter(|c| !c.is_default) {
        println!("{} = {}", c.name, c.value.as_deref().unwrap_or("null"));
    }
    for o in admin.list_offsets(&topic, OffsetSpec::Latest).await? {
        println!("partition {} ends at {}", o.partition, o.offset);
    }
    Ok(())
}
