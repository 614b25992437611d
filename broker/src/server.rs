//! The Kafka listener: accepts connections under a connection limit, runs
//! the background maintenance loop and the admin endpoint, and shuts down
//! cleanly on SIGINT or SIGTERM.
//!
//! ```text
//! start:    admin endpoint (/ready: starting) ─► open + recover logs ─► controller
//!           ─► register ─► load groups ─► Kafka listener ("listening on") ─► /ready: serving
//! shutdown: /ready: stopping ─► stop accepting ─► [cluster: controlled shutdown]
//!           ─► connections finish the requests they read (≤ SHUTDOWN_GRACE)
//!           ─► close every log: flush, checkpoint, clean-shutdown marker
//!           (the next start skips recovery) ─► admin endpoint stops
//! ```
//!
//! # Limits
//! - `max.connections` connections at once and `max.connections.per.ip`
//!   from one address; a connection past either is accepted and closed at
//!   once, logged at `debug` and counted (`connection_quota.rs`; the counts
//!   are logged at `info` at most every 10 s).
//! - Connections get [`SHUTDOWN_GRACE`] to drain their replies on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::admin::{self, AdminState, METRICS, Phase};
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::connection;
use crate::connection_quota::ConnectionQuotas;
use crate::error::BrokerError;
use crate::replica::log_cleaner::LogCleaner;

/// How long connections may take to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long the accept loop pauses after `accept` fails (EMFILE).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Least time between two reports of refused connections.
const REFUSALS_REPORT_EVERY: Duration = Duration::from_secs(10);

/// How often the flush policy, retention and segment.ms rolls are checked.
const MAINTENANCE_TICK: Duration = Duration::from_millis(100);

/// Binds, opens the data directory and serves until `stop` resolves.
pub async fn run(
    config: BrokerConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let admin_state = AdminState::new(config.metrics_partition_series_enabled);
    let (admin_stop, admin_stopped) = watch::channel(false);
    let admin_task = if config.admin_enabled {
        let mut stopped = admin_stopped.clone();
        let (bound, task) =
            admin::http::start(config.admin_listen, Arc::clone(&admin_state), async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot listen on admin.listen {}: {e}", config.admin_listen)
            })?;
        // Tests and scripts read this line to find an ephemeral port.
        // Not "listening on": scripts read that line for the Kafka port.
        tracing::info!("admin endpoint serving http://{bound}");
        Some(task)
    } else {
        None
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let bound = listener.local_addr()?;
    let broker = tokio::task::spawn_blocking(move || Broker::open(config, bound)).await??;
    // The reconciler runs before anything proposes: a proposer waits for it.
    let metadata_follower = tokio::spawn(Arc::clone(&broker).follow_metadata());
    let _ = admin_state.broker.set(Arc::clone(&broker));
    // Loading groups writes metadata (`__consumer_offsets`), which needs an
    // active controller.
    broker.wait_for_controller().await;
    // Cluster id, registration, heartbeats; returns once unfenced.
    let lifecycle = broker.register().await?;
    crate::group::start(&broker).await?;
    // Tests and scripts read this line to find an ephemeral port.
    tracing::info!(
        node_id = broker.identity().node_id,
        data_dir = %broker.config().data_dir.display(),
        "listening on {bound}"
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let maintenance = tokio::spawn(maintain(Arc::clone(&broker), shutdown_rx.clone()));
    let cleaner_stop = Arc::new(AtomicBool::new(false));
    let cleaning = tokio::spawn(clean_compacted(
        Arc::clone(&broker),
        shutdown_rx.clone(),
        Arc::clone(&cleaner_stop),
    ));
    admin_state.readiness.set(Phase::Serving);
    let connections = accept_loop(&broker, listener, shutdown_rx, stop).await;
    admin_state.readiness.set(Phase::Stopping);
    tracing::info!("shutting down: no new connections");
    // In a cluster: leaderships move to other brokers before connections
    // are drained (clients follow them at once), as Kafka's
    // `controlledShutdown` runs.
    lifecycle.shutdown(&broker).await;
    let _ = shutdown_tx.send(true);
    cleaner_stop.store(true, Ordering::Relaxed);
    let started = tokio::time::Instant::now();
    drain(connections).await;
    maintenance.abort();
    // A cleaning round ends within a throttle slice or one segment build.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, cleaning).await;
    metadata_follower.abort();
    let closing = Arc::clone(&broker);
    tokio::task::spawn_blocking(move || closing.shutdown()).await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "stopped cleanly: logs flushed and checkpointed, clean-shutdown marker written"
    );
    let _ = admin_stop.send(true);
    if let Some(task) = admin_task {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, task).await;
    }
    Ok(())
}

async fn accept_loop(
    broker: &Arc<Broker>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
    stop: impl std::future::Future<Output = ()>,
) -> JoinSet<()> {
    let config = broker.config();
    let quotas = ConnectionQuotas::new(config.max_connections, config.max_connections_per_ip);
    let memory = Arc::new(Semaphore::new(broker.memory_budget()));
    let mut refusals = RefusalReport::default();
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Reap finished connections so the set stays bounded by the limit.
        while connections.try_join_next().is_some() {}
        let slot = match quotas.try_acquire(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                METRICS.connections.refused(refused);
                // Dropping the socket closes it cleanly (FIN); the client
                // retries or goes elsewhere.
                tracing::debug!(%peer, %refused, "connection refused");
                refusals.maybe_report(&quotas);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tracing::debug!(%peer, "connection accepted");
        let (b, m, s) = (Arc::clone(broker), Arc::clone(&memory), shutdown.clone());
        METRICS.connections.opened();
        connections.spawn(async move {
            connection::serve(b, stream, m, s).await;
            drop(slot);
            METRICS.connections.closed();
        });
    }
    connections
}

/// Reports the refused-connection counters at `info`, at most once per
/// [`REFUSALS_REPORT_EVERY`], so a flood of refusals cannot flood the log
/// while an operator still sees that connections are being turned away.
#[derive(Default)]
struct RefusalReport {
    last: Option<tokio::time::Instant>,
}

impl RefusalReport {
    fn maybe_report(&mut self, quotas: &ConnectionQuotas) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < REFUSALS_REPORT_EVERY)
        {
            return;
        }
        self.last = Some(tokio::time::Instant::now());
        let refused = quotas.refused();
        tracing::info!(
            open = quotas.open(),
            refused_max_connections = refused.max_connections,
            refused_max_connections_per_ip = refused.max_connections_per_ip,
            "connections refused over their quotas"
        );
    }
}

async fn drain(mut connections: JoinSet<()>) {
    let deadline = tokio::time::sleep(SHUTDOWN_GRACE);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = connections.join_next() => if next.is_none() { return },
            _ = &mut deadline => {
                tracing::warn!(remaining = connections.len(), "connections did not finish in time; aborting them");
                connections.abort_all();
                return;
            }
        }
    }
}

/// Background work that must never stop while the broker runs: the flush
/// policy, retention, segment.ms rolls, recovery-point checkpoints.
async fn maintain(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut retention = Every::ms(broker.config().log_retention_check_interval_ms);
    let mut checkpoints = Every::ms(broker.config().log_flush_offset_checkpoint_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_TICK) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let run_retention = retention.due();
        let checkpoint = checkpoints.due();
        let b = Arc::clone(&broker);
        let done =
            tokio::task::spawn_blocking(move || maintenance_pass(&b, run_retention, checkpoint))
                .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "maintenance pass failed");
        }
    }
}

/// A period of the maintenance loop (at least 100 ms), due once it has
/// passed since it was last due.
struct Every {
    period: Duration,
    last: tokio::time::Instant,
}

impl Every {
    fn ms(period_ms: u64) -> Self {
        Self {
            period: Duration::from_millis(period_ms.max(100)),
            last: tokio::time::Instant::now(),
        }
    }

    /// Whether the period has passed; if so it starts again now.
    fn due(&mut self) -> bool {
        let due = self.last.elapsed() >= self.period;
        if due {
            self.last = tokio::time::Instant::now();
        }
        due
    }
}

/// One pass over every partition: the flush policy always; retention,
/// rolls and producer expiry when `run_retention`; the recovery-point
/// checkpoint when `checkpoint` (its own interval, Kafka's
/// `log.flush.offset.checkpoint.interval.ms`: a checkpoint is a file
/// written and fsynced, with its directory, per partition, under the
/// partition's lock, so a pass over 1 000 busy partitions every second
/// cost 2 000 fsyncs a second and stalled each partition's appends
/// behind two of them — docs/benchmarks.md, "Latency and many
/// partitions").
fn maintenance_pass(broker: &Arc<Broker>, run_retention: bool, checkpoint: bool) {
    broker.retry_reconcile();
    crate::client_errors::flush_ended_windows();
    let now = now_ms();
    crate::replica::alter_partition::shrink_lagging(broker, now);
    broker.replicas().maybe_checkpoint_high_watermarks(now);
    // A partition closed under the pass (shutdown, a deleted topic, a
    // moved replica) has nothing left to maintain: not an error.
    let failed = |e: &BrokerError| !matches!(e, BrokerError::PartitionClosed { .. });
    for p in broker.replicas().all_partitions() {
        if let Err(e) = p.maybe_flush(now)
            && failed(&e)
        {
            tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "policy flush failed");
        }
        if run_retention
            && let Err(e) = p.maintain(now, broker.config().producer_id_expiration_ms)
            && failed(&e)
        {
            tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "retention pass failed");
        }
        if checkpoint
            && let Err(e) = p.checkpoint_recovery_point()
            && failed(&e)
        {
            tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "recovery-point checkpoint failed");
        }
    }
}

/// The log cleaner's own task (`replica::log_cleaner`): a round over the
/// compacted partitions at every retention check, apart from the
/// maintenance pass so a long or throttled cleaning delays no flush.
/// `stop` ends a round within one throttle sleep at shutdown.
async fn clean_compacted(
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
) {
    let every = Duration::from_millis(broker.config().log_retention_check_interval_ms.max(100));
    let cleaner = Arc::new(LogCleaner::new(
        broker.config().log_cleaner_dedupe_buffer_size,
        broker.config().log_cleaner_io_max_bytes_per_second,
        stop,
        &broker.config().data_dir,
        now_ms(),
    ));
    let mut round = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        round += 1;
        let b = Arc::clone(&broker);
        let c = Arc::clone(&cleaner);
        let done = tokio::task::spawn_blocking(move || cleaning_round(&b, &c, round)).await;
        if let Err(e) = done {
            tracing::error!(error = %e, "cleaning round failed");
        }
    }
}

fn cleaning_round(broker: &Arc<Broker>, cleaner: &LogCleaner, round: u64) {
    let now = now_ms();
    for p in broker.replicas().all_partitions() {
        let Some(compaction) = broker
            .replicas()
            .topic_config(p.topic())
            .and_then(|c| c.compaction())
        else {
            continue;
        };
        match cleaner.clean(&p, compaction, broker.decompression(), now, round) {
            Ok(_) => {}
            // Closed meanwhile (shutdown, or the partition moved away).
            Err(crate::error::BrokerError::PartitionClosed { .. }) => {}
            Err(e) => {
                tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "cleaning failed");
            }
        }
    }
    if let Err(e) = cleaner
        .forget_older_than(round)
        .and_then(|()| cleaner.store_checkpoint())
    {
        tracing::error!(error = %e, "cleaner state poisoned");
    }
}

/// Milliseconds since the Unix epoch (Kafka timestamps).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
