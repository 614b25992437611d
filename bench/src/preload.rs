//! The preload (`run.preload = true`): before the timed run, one producer
//! writes every key of the scenario's key space once (ids in order, values
//! only, no tombstones), as fast as acknowledgements allow.
//!
//! A compacted topic then starts the run holding its whole state — the
//! configuration plan's 100 K documents exist before they are updated at
//! 1 K writes/s — so the read-back after the run measures a new
//! subscriber reading that state, not the few keys a short run touched.
//! Nothing of the preload counts in the run's figures; its own rate is
//! reported apart.
//!
//! # Limits
//! - At most [`PRELOAD_MAX`]; a preload that has not finished by then
//!   stops, and the result says how many records it wrote.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sluice_client::Producer;

use crate::key_ledger::KeyLedger;
use crate::producer::{self, Plan};
use crate::progress::{Live, Progress};
use crate::report::{PreloadResult, Transfer};
use crate::scenario::Scenario;
use crate::timeline::Timeline;
use crate::workload;

/// Longest a preload may run.
pub const PRELOAD_MAX: Duration = Duration::from_secs(600);

/// Writes every key of `scenario` once through a producer built by
/// `config` (the scenario's producer settings).
pub async fn run(
    scenario: &Scenario,
    config: sluice_client::ProducerConfig,
    live: Arc<Live>,
    ledger: Option<Arc<KeyLedger>>,
) -> anyhow::Result<PreloadResult> {
    let keys = scenario.records.keys;
    let mut records = scenario.records.clone();
    records.key_distribution = "sequential".into();
    records.tombstone_every = 0;
    let source = workload::source(&scenario.workload, &records, 0)?;
    let producer = Producer::connect(config)
        .await
        .context("the preload's producer cannot connect")?;
    let timeline = Arc::new(Timeline::new(Duration::ZERO, PRELOAD_MAX, Duration::ZERO));
    let plan = Plan {
        topic: Arc::from(scenario.topic.name.as_str()),
        rate: None,
        records_max: Some(keys),
        ledger,
        records_per_send: scenario.producer.records_per_send,
        pacer: None,
    };
    eprintln!("preload: {keys} keys, one record each");
    let progress = Progress::start("preload", Arc::clone(&live), Duration::from_secs(60));
    let o = producer::run(producer, source, plan, Arc::clone(&timeline), live).await;
    progress.finish().await;
    let time = timeline.measured(o.last_measured_ack);
    Ok(PreloadResult {
        moved: Transfer::over(o.acked, o.measured_bytes, time, o.acked >= keys),
        errors: o.errors,
        first_error: o.first_error,
    })
}
