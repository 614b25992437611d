//! Per-partition batching: records collect in an open batch until it
//! reaches `batch_size` or has waited `linger`; then it is sealed (encoded,
//! compressed, given its sequence numbers) and queued for the sender.
//!
//! ```text
//! send() ─► open batch (Vec<Record>) ─full / linger─► sealed (Bytes) ─► sender
//!                                                      ▲ retry: back to the front
//! ```
//!
//! # Invariants
//! - At most one batch per partition is in flight; the next one waits.
//!   With retries this keeps records in send order without needing the
//!   broker's sequence checks.
//! - Sequence numbers are assigned when a batch is sealed, in seal order;
//!   a retried batch keeps its bytes and so its sequence (the broker
//!   deduplicates it).
//!
//! # Limits
//! - Bytes held by unsent and in-flight records are bounded by the
//!   producer's buffer semaphore (see `mod.rs`), not here.
//!
//! # Caveats
//! - One in-flight batch per partition caps a single partition at one
//!   batch per round trip; Kafka's idempotent producer allows five with
//!   broker-side resequencing, which is not implemented.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::Record;
use tokio::sync::oneshot;

use crate::error::{Result, protocol};
use crate::producer::Compression;
use crate::producer::partitioner::StickyPartitioner;
use sluice_protocol::batch_builder::{ProducerIdentity, encode_batch};

/// Where a record's outcome goes.
pub(crate) type Delivery = oneshot::Sender<Result<(i32, i64)>>;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

struct OpenBatch {
    records: Vec<Record>,
    deliveries: Vec<Delivery>,
    bytes: usize,
    created: Instant,
}

/// An encoded batch ready to send (or re-send).
pub(crate) struct SealedBatch {
    pub tp: TopicPartition,
    pub data: Bytes,
    pub deliveries: Vec<Delivery>,
    /// Buffer bytes its records hold, released when it completes.
    pub buffer_bytes: usize,
    pub attempts: u32,
    /// When its first record was added: the delivery timeout runs from here.
    pub created: Instant,
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    sealed: VecDeque<SealedBatch>,
    in_flight: bool,
    next_sequence: i32,
}

/// Settings that shape batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchOptions {
    pub batch_size: usize,
    pub linger: Duration,
    pub compression: Compression,
    pub producer: ProducerIdentity,
    pub idempotent: bool,
}

pub(crate) struct Accumulator {
    options: BatchOptions,
    partitions: HashMap<TopicPartition, PartitionQueue>,
    pub(crate) sticky: StickyPartitioner,
}

/// What [`Accumulator::drain`] found.
pub(crate) struct Drained {
    pub ready: Vec<SealedBatch>,
    /// When the oldest open batch's linger ends, if any batch is open.
    pub next_deadline: Option<Instant>,
    /// Batches that failed to encode, with their error.
    pub failed: Vec<(OpenFailure, crate::error::Error)>,
}

/// The deliveries and bytes of a batch that could not be sealed.
pub(crate) struct OpenFailure {
    pub deliveries: Vec<Delivery>,
    pub buffer_bytes: usize,
}

impl Accumulator {
    pub(crate) fn new(options: BatchOptions) -> Self {
        Self {
            options,
            partitions: HashMap::new(),
            sticky: StickyPartitioner::new(),
        }
    }

    /// Adds `record` to the open batch of `tp`. Returns true when a batch
    /// was sealed or opened (the sender should look).
    pub(crate) fn append(
        &mut self,
        tp: &TopicPartition,
        partitions: i32,
        record: Record,
        bytes: usize,
        delivery: Delivery,
    ) -> std::result::Result<bool, (OpenFailure, crate::error::Error)> {
        let options = self.options;
        let queue = self.partitions.entry(tp.clone()).or_default();
        let mut wake = false;
        let full = queue
            .open
            .as_ref()
            .is_some_and(|b| !b.records.is_empty() && b.bytes + bytes > options.batch_size);
        if full {
            seal(queue, tp, &options)?;
            self.sticky
                .batch_sealed(&tp.topic, tp.partition, partitions);
            wake = true;
        }
        let open = queue.open.get_or_insert_with(|| {
            wake = true;
            OpenBatch {
                records: Vec::new(),
                deliveries: Vec::new(),
                bytes: 0,
                created: Instant::now(),
            }
        });
        open.records.push(record);
        open.deliveries.push(delivery);
        open.bytes += bytes;
        Ok(wake)
    }

    /// Seals batches whose linger is over (all open ones with `force`) and
    /// takes the first sealed batch of every partition not in flight.
    pub(crate) fn drain(&mut self, now: Instant, force: bool) -> Drained {
        let options = self.options;
        let mut ready = Vec::new();
        let mut failed = Vec::new();
        let mut next_deadline: Option<Instant> = None;
        for (tp, queue) in &mut self.partitions {
            if let Some(open) = &queue.open {
                let deadline = open.created + options.linger;
                if force || deadline <= now || open.bytes >= options.batch_size {
                    if let Err(f) = seal(queue, tp, &options) {
                        failed.push(f);
                    }
                } else {
                    next_deadline = Some(next_deadline.map_or(deadline, |d| d.min(deadline)));
                }
            }
            if !queue.in_flight
                && let Some(batch) = queue.sealed.pop_front()
            {
                queue.in_flight = true;
                ready.push(batch);
            }
        }
        Drained {
            ready,
            next_deadline,
            failed,
        }
    }

    /// `tp`'s in-flight batch is done (acknowledged or failed for good).
    pub(crate) fn complete(&mut self, tp: &TopicPartition) {
        if let Some(q) = self.partitions.get_mut(tp) {
            q.in_flight = false;
        }
    }

    /// Puts a batch that will be retried back at the front of its queue.
    pub(crate) fn requeue(&mut self, batch: SealedBatch) {
        let q = self.partitions.entry(batch.tp.clone()).or_default();
        q.in_flight = false;
        q.sealed.push_front(batch);
    }

    /// Whether any record is waiting or in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.partitions
            .values()
            .all(|q| q.open.is_none() && q.sealed.is_empty() && !q.in_flight)
    }
}

/// Encodes `queue`'s open batch and queues it.
fn seal(
    queue: &mut PartitionQueue,
    tp: &TopicPartition,
    options: &BatchOptions,
) -> std::result::Result<(), (OpenFailure, crate::error::Error)> {
    let Some(mut open) = queue.open.take() else {
        return Ok(());
    };
    let count = i32::try_from(open.records.len()).unwrap_or(i32::MAX);
    let base_sequence = if options.idempotent {
        queue.next_sequence
    } else {
        -1
    };
    match encode_batch(
        &mut open.records,
        options.compression.codec(),
        options.producer,
        base_sequence,
    )
    .map_err(|e| protocol(format!("record batch does not encode: {e}")))
    {
        Ok(data) => {
            if options.idempotent {
                // Sequences wrap at i32::MAX, as Kafka's do.
                queue.next_sequence = queue.next_sequence.wrapping_add(count) & i32::MAX;
            }
            queue.sealed.push_back(SealedBatch {
                tp: tp.clone(),
                data,
                deliveries: open.deliveries,
                buffer_bytes: open.bytes,
                attempts: 0,
                created: open.created,
            });
            Ok(())
        }
        Err(e) => Err((
            OpenFailure {
                deliveries: open.deliveries,
                buffer_bytes: open.bytes,
            },
            e,
        )),
    }
}
