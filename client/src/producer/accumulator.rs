//! Per-partition batches: records are encoded into the open batch as they
//! are sent; full or lingered batches are sealed and queued for the sender.
//!
//! ```text
//! send ─► open batch (BatchWriter: the record's bytes written once) ─┐
//!         sealed when full, when its linger is over and a request    │
//!         slot is free, or on flush                                   ▼
//!                      sealed queue (sequence order) ─► drain ─► in flight (≤ max)
//!                           ▲                                        │
//!                           └──── retry after backoff (re-sorted) ◄──┘
//! ```
//!
//! A batch stays open while its partition has no free request slot, as
//! librdkafka does: a busy partition sends fewer, fuller batches, and
//! `linger` needs no tuning to the broker's latency.
//!
//! # Invariants
//! - Sequence numbers are assigned when a batch is sealed, in seal order,
//!   and a retried batch keeps its bytes (and so its sequences).
//! - A partition's sealed queue is ordered by seal order; a batch put back
//!   for a retry goes back to its place, not to the end.
//! - At most `in_flight_max` batches of a partition are in flight. After a
//!   failure the partition is *recovering*: nothing more is sent until
//!   every in-flight batch is back, then one batch at a time until one is
//!   acknowledged — so a retry can never overtake or be overtaken (Kafka's
//!   producer does the same with idempotence on).
//! - While an epoch bump is wanted (KIP-360, see `sender`) nothing is
//!   sealed or sent; once no batch is in flight the sender gets a new
//!   producer id and epoch, and `Accumulator::reset_producer` renumbers
//!   every sealed batch from sequence 0 in seal order, so the partition's
//!   order is kept. A batch that may already be written (sent, answer
//!   lost) is never renumbered: under a new epoch the broker could not
//!   tell it from new data, so it is handed back to fail instead.
//! - No allocation per record: the record is written into the batch's
//!   buffer, its handle shares the batch's outcome.
//!
//! # Limits
//! - Bytes of open and sealed batches are bounded by the producer's
//!   `buffer_bytes` (charged per record in `send`, from a credit of at
//!   most `limits::BUFFER_CREDIT_BYTES_MAX` kept here), plus the capacity
//!   each open batch reserves (`batch_size`) per partition being written.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sluice_protocol::RECORD_BATCH_HEADER_BYTES;
use sluice_protocol::batch_builder::ProducerIdentity;
use sluice_protocol::batch_writer::{BatchWriter, RecordParts};

use super::delivery::{DeliveryFuture, Resolver};
use crate::error::{Error, protocol};
use crate::producer::Compression;
use crate::producer::partitioner::StickyPartitioner;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

struct OpenBatch {
    writer: BatchWriter,
    resolver: Resolver,
    buffer_bytes: usize,
    created: Instant,
}

/// An encoded batch ready to send (or re-send).
pub struct SealedBatch {
    pub tp: TopicPartition,
    pub data: Bytes,
    pub(crate) resolver: Resolver,
    pub records: usize,
    /// Buffer bytes its records hold, released when it completes.
    pub buffer_bytes: usize,
    pub attempts: u32,
    /// When its first record was added: the delivery timeout runs from here.
    pub created: Instant,
    /// Its place among the partition's batches (seal order).
    seal_index: u64,
    /// Sent at least once without a definite answer (the connection or
    /// the request failed after it was handed over): the broker may hold
    /// it under the sequences it was sent with.
    pub(crate) maybe_written: bool,
}

impl SealedBatch {
    /// Resolves every record of the batch: for the benchmark, which has no
    /// broker to answer (the sender resolves batches itself).
    #[doc(hidden)]
    pub fn resolve_for_bench(&self, outcome: crate::Result<(i32, i64)>) {
        self.resolver.resolve(outcome);
    }
}

struct PartitionQueue {
    tp: TopicPartition,
    open: Option<OpenBatch>,
    sealed: VecDeque<SealedBatch>,
    in_flight: usize,
    next_sequence: i32,
    sealed_count: u64,
    recovering: bool,
    /// Seal indexes of batches put up for a retry and not yet done (at
    /// most the in-flight limit): an OUT_OF_ORDER_SEQUENCE_NUMBER answer
    /// to a batch sealed after one of them is expected, not a lost
    /// sequence.
    retrying: Vec<u64>,
}

impl PartitionQueue {
    /// The next batch's base sequence follows `records` more; sequences
    /// wrap at i32::MAX, as Kafka's do.
    fn advance_sequence(&mut self, records: usize) {
        let count = i32::try_from(records).unwrap_or(i32::MAX);
        self.next_sequence = self.next_sequence.wrapping_add(count) & i32::MAX;
    }
}

/// Settings that shape batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Bytes of a whole batch, its 61-byte header included (Kafka's
    /// `batch.size`, as its `MemoryRecordsBuilder::hasRoomFor` counts it):
    /// with `batch_size` at the broker's `message.max.bytes` or below, a
    /// batch of many records is never refused as too large.
    pub batch_size: usize,
    pub linger: Duration,
    pub compression: Compression,
    pub producer: ProducerIdentity,
    pub idempotent: bool,
    /// Batches of one partition in flight at once.
    pub in_flight_max: usize,
}

pub struct Accumulator {
    options: BatchOptions,
    /// Per topic (never removed, so a [`TopicId`] stays valid).
    topics: Vec<TopicQueues>,
    by_name: HashMap<Arc<str>, TopicId>,
    /// The caller's `Arc` of the topic last looked up, and its id: a
    /// producer sending to one topic passes clones of one `Arc`, found
    /// here by pointer without hashing the name. Holding the `Arc` keeps
    /// its address from being reused by another name.
    last: Option<(Arc<str>, TopicId)>,
    sticky: StickyPartitioner,
    /// A partition lost its sequence (KIP-360): hold everything until the
    /// sender has a new producer epoch.
    epoch_bump_wanted: bool,
    /// Records appended and not yet resolved (the producer's `flush` waits
    /// for 0): counted here, under the lock `send` takes anyway, rather
    /// than in an atomic per record.
    unresolved_records: usize,
    /// Buffer bytes taken from the producer's buffer semaphore and not yet
    /// charged to a record (`Producer::send_ref`): records are charged
    /// from it without touching the semaphore.
    buffer_credit: usize,
    /// Record buffers of sealed compressed batches, emptied, for the next
    /// batches to open (at most [`SPARE_BUFFERS_MAX`]): a compressed batch
    /// goes on the wire in a buffer of its compressed size, so its
    /// `batch_size` record buffer is free once it is sealed.
    spare: Vec<BytesMut>,
}

/// Emptied record buffers kept for reuse: as many as partitions a
/// producer typically writes at once (the metrics scenario's 12), so a
/// producer of ~1-record zstd batches allocates no `batch_size` buffer per
/// batch. Memory: at most this many `batch_size` buffers beyond the open
/// batches'.
const SPARE_BUFFERS_MAX: usize = 16;

/// A topic's place in the accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicId(usize);

/// One topic's partition queues and what the producer keeps about it.
struct TopicQueues {
    name: Arc<str>,
    /// Indexed by partition; grown on first use of a partition.
    partitions: Vec<PartitionQueue>,
    /// The topic's partition count, and the metadata generation it was
    /// read from (`Cluster::metadata_generation`).
    partition_count: Option<(i32, u64)>,
    /// The sticky partition for keyless records.
    sticky: Option<i32>,
}

/// What [`Accumulator::drain`] found.
pub struct Drained {
    pub ready: Vec<SealedBatch>,
    /// When the oldest open batch that could be sent ends its linger.
    pub next_deadline: Option<Instant>,
    /// Batches that failed to seal: already resolved with their error;
    /// their buffer bytes and record counts are to be released.
    pub failed: Vec<Released>,
    /// An epoch bump is wanted and no batch is in flight: get a new
    /// producer id and epoch, then `Accumulator::reset_producer`.
    pub bump_epoch: bool,
}

/// Buffer bytes and records of a batch that is done.
#[derive(Debug, Clone, Copy, Default)]
pub struct Released {
    pub buffer_bytes: usize,
    pub records: usize,
}

impl BatchOptions {
    /// Room for encoded records in a batch: `batch_size` less the header.
    fn records_bytes_max(&self) -> usize {
        self.batch_size
            .saturating_sub(RECORD_BATCH_HEADER_BYTES)
            .max(1)
    }
}

impl Accumulator {
    pub fn new(options: BatchOptions) -> Self {
        Self {
            options,
            topics: Vec::new(),
            by_name: HashMap::new(),
            last: None,
            sticky: StickyPartitioner::new(),
            epoch_bump_wanted: false,
            unresolved_records: 0,
            buffer_credit: 0,
            spare: Vec::new(),
        }
    }

    /// Counts one more record sent and not yet resolved.
    pub(crate) fn add_unresolved_record(&mut self) {
        self.unresolved_records += 1;
    }

    /// Counts `records` resolved; returns whether none is left unresolved.
    pub(crate) fn resolve_records(&mut self, records: usize) -> bool {
        debug_assert!(
            self.unresolved_records >= records,
            "unresolved records underflow"
        );
        self.unresolved_records = self.unresolved_records.saturating_sub(records);
        self.unresolved_records == 0
    }

    /// Records sent and not yet resolved.
    pub(crate) fn unresolved_records(&self) -> usize {
        self.unresolved_records
    }

    /// Charges `bytes` to the buffer credit if it holds them.
    pub(crate) fn take_buffer_credit(&mut self, bytes: usize) -> bool {
        match self.buffer_credit.checked_sub(bytes) {
            Some(left) => {
                self.buffer_credit = left;
                true
            }
            None => false,
        }
    }

    /// Adds buffer bytes taken from the semaphore to the credit.
    pub(crate) fn add_buffer_credit(&mut self, bytes: usize) {
        self.buffer_credit += bytes;
    }

    /// Empties the credit: its bytes go back to the semaphore.
    pub(crate) fn take_all_buffer_credit(&mut self) -> usize {
        std::mem::take(&mut self.buffer_credit)
    }

    /// The id of `topic`, if it was added.
    pub fn find_topic(&mut self, topic: &Arc<str>) -> Option<TopicId> {
        if let Some((last, id)) = &self.last
            && Arc::ptr_eq(last, topic)
        {
            return Some(*id);
        }
        let id = *self.by_name.get(&**topic)?;
        self.last = Some((Arc::clone(topic), id));
        Some(id)
    }

    /// The id of `topic`, added if new (a topic known to exist: the
    /// producer adds one once it has its partition count).
    pub fn topic(&mut self, topic: &Arc<str>) -> TopicId {
        if let Some(id) = self.find_topic(topic) {
            return id;
        }
        let id = TopicId(self.topics.len());
        self.topics.push(TopicQueues {
            name: Arc::clone(topic),
            partitions: Vec::new(),
            partition_count: None,
            sticky: None,
        });
        self.by_name.insert(Arc::clone(topic), id);
        self.last = Some((Arc::clone(topic), id));
        id
    }

    /// The partition count of `topic` cached at metadata `generation`.
    pub(crate) fn partition_count(&self, topic: TopicId, generation: u64) -> Option<i32> {
        match self.topics.get(topic.0)?.partition_count {
            Some((count, at)) if at == generation => Some(count),
            _ => None,
        }
    }

    pub(crate) fn set_partition_count(&mut self, topic: TopicId, count: i32, generation: u64) {
        if let Some(t) = self.topics.get_mut(topic.0) {
            t.partition_count = Some((count, generation));
        }
    }

    /// The sticky partition of `topic` for a keyless record.
    pub(crate) fn sticky_partition(&mut self, topic: TopicId, partitions: i32) -> i32 {
        match self.topics.get_mut(topic.0) {
            Some(t) => self.sticky.partition(&mut t.sticky, partitions),
            None => 0,
        }
    }

    /// The queue of a batch's partition (per batch, not per record: a
    /// lookup by name).
    fn queue(&mut self, tp: &TopicPartition) -> Option<&mut PartitionQueue> {
        let id = *self.by_name.get(&*tp.topic)?;
        queue_in(&mut self.topics, id, tp.partition)
    }

    /// Writes `record` into the open batch of `topic`/`partition`. Returns
    /// the record's future and whether the sender should look (a batch was
    /// opened or sealed), or the error of a batch that failed to seal (its
    /// records are already resolved with it; release `Released`).
    pub fn append(
        &mut self,
        topic: TopicId,
        partition: i32,
        partitions: i32,
        record: &RecordParts<'_>,
        buffer_bytes: usize,
    ) -> std::result::Result<(DeliveryFuture, bool), (Released, Error)> {
        let options = self.options;
        let Some(queue) = queue_in(&mut self.topics, topic, partition) else {
            let name = self.topics.get(topic.0).map_or("?", |t| &*t.name);
            return Err((
                Released::default(),
                Error::Config(format!("partition {partition} of '{name}' is invalid")),
            ));
        };
        let mut wake = false;
        if let Some(open) = &mut queue.open
            && !open.writer.try_append(record)
        {
            wake = true;
            let sealed = seal(queue, &options, &mut self.spare);
            if let Some(t) = self.topics.get_mut(topic.0) {
                self.sticky
                    .batch_sealed(&mut t.sticky, partition, partitions);
            }
            sealed?;
        }
        let Some(queue) = queue_in(&mut self.topics, topic, partition) else {
            return Err((Released::default(), protocol("partition queue vanished")));
        };
        let open = match &mut queue.open {
            Some(open) => open,
            None => {
                wake = true;
                let mut writer = match self.spare.pop() {
                    Some(buf) => BatchWriter::with_buffer(buf, options.records_bytes_max()),
                    None => BatchWriter::new(options.records_bytes_max()),
                };
                // An empty batch takes any record.
                let appended = writer.try_append(record);
                debug_assert!(appended);
                queue.open.insert(OpenBatch {
                    writer,
                    resolver: Resolver::new(),
                    buffer_bytes: 0,
                    created: Instant::now(),
                })
            }
        };
        open.buffer_bytes += buffer_bytes;
        let future = open.resolver.future(open.writer.record_count() - 1);
        if open.writer.records_bytes() >= options.records_bytes_max() {
            wake = true;
        }
        Ok((future, wake))
    }

    /// Seals batches that are full, lingered with a request slot free, or
    /// all of them with `force`; takes the sealed batches of every
    /// partition up to its in-flight limit.
    pub fn drain(&mut self, now: Instant, force: bool) -> Drained {
        let options = self.options;
        let mut ready = Vec::new();
        let mut failed = Vec::new();
        let mut next_deadline: Option<Instant> = None;
        if self.epoch_bump_wanted {
            let in_flight = self
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|q| q.in_flight > 0);
            return Drained {
                ready,
                next_deadline,
                failed,
                bump_epoch: !in_flight,
            };
        }
        for topic in &mut self.topics {
            for queue in &mut topic.partitions {
                let limit = if queue.recovering {
                    1
                } else {
                    options.in_flight_max
                };
                let slot_free = queue.in_flight + queue.sealed.len() < limit;
                if let Some(open) = &queue.open {
                    let deadline = open.created + options.linger;
                    let full = open.writer.records_bytes() >= options.records_bytes_max();
                    if force || full || (slot_free && deadline <= now) {
                        if let Err((released, _)) = seal(queue, &options, &mut self.spare) {
                            failed.push(released);
                        }
                    } else if slot_free {
                        next_deadline = Some(next_deadline.map_or(deadline, |d| d.min(deadline)));
                    }
                }
                while queue.in_flight < limit
                    && let Some(batch) = queue.sealed.pop_front()
                {
                    queue.in_flight += 1;
                    ready.push(batch);
                }
            }
        }
        Drained {
            ready,
            next_deadline,
            failed,
            bump_epoch: false,
        }
    }

    /// `batch` is done: acknowledged (`acknowledged`) or failed for good.
    pub(crate) fn complete(&mut self, batch: &SealedBatch, acknowledged: bool) {
        if let Some(q) = self.queue(&batch.tp) {
            q.in_flight = q.in_flight.saturating_sub(1);
            q.retrying.retain(|&i| i != batch.seal_index);
            if acknowledged && q.in_flight == 0 {
                q.recovering = false;
            }
        }
    }

    /// `batch` failed and will be retried: hold its partition's other
    /// batches until it is back in the queue and through.
    pub(crate) fn start_recovery(&mut self, batch: &SealedBatch) {
        if let Some(q) = self.queue(&batch.tp) {
            q.recovering = true;
            if !q.retrying.contains(&batch.seal_index) {
                q.retrying.push(batch.seal_index);
            }
        }
    }

    /// Whether a batch of `batch`'s partition sealed before it is being
    /// retried (so `batch` was sent behind a gap that will be filled).
    pub(crate) fn is_behind_retry(&mut self, batch: &SealedBatch) -> bool {
        self.queue(&batch.tp)
            .is_some_and(|q| q.retrying.iter().any(|&i| i < batch.seal_index))
    }

    /// A partition's sequence is lost (OUT_OF_ORDER_SEQUENCE_NUMBER with
    /// no earlier batch being retried, or UNKNOWN_PRODUCER_ID): hold every
    /// batch until the producer has a new epoch.
    pub(crate) fn want_epoch_bump(&mut self) {
        self.epoch_bump_wanted = true;
    }

    /// Stamps every sealed batch, and every batch sealed from now on, with
    /// `producer`, sequences starting again at 0 per partition in seal
    /// order (KIP-360). Returns the batches that may already be written
    /// under the old producer: they are out of their queues and are to be
    /// failed (renumbered, they could be written twice).
    pub(crate) fn reset_producer(&mut self, producer: ProducerIdentity) -> Vec<SealedBatch> {
        self.options.producer = producer;
        self.epoch_bump_wanted = false;
        let mut unsure = Vec::new();
        for queue in self.topics.iter_mut().flat_map(|t| &mut t.partitions) {
            debug_assert_eq!(queue.in_flight, 0, "epoch bumped with batches in flight");
            queue.next_sequence = 0;
            queue.retrying.clear();
            let sealed = std::mem::take(&mut queue.sealed);
            for mut batch in sealed {
                if batch.maybe_written {
                    unsure.push(batch);
                    continue;
                }
                let Ok(view) = sluice_protocol::RecordBatchView::parse(&batch.data, usize::MAX)
                else {
                    // Built by this producer: cannot happen; fail it
                    // rather than send it with stale sequences.
                    unsure.push(batch);
                    continue;
                };
                batch.data = view.with_producer(producer.id, producer.epoch, queue.next_sequence);
                queue.advance_sequence(batch.records);
                queue.sealed.push_back(batch);
            }
        }
        unsure
    }

    /// The producer id and epoch batches are sealed with.
    pub(crate) fn producer(&self) -> ProducerIdentity {
        self.options.producer
    }

    /// Takes the sealed batches whose delivery timeout (counted from
    /// `created`) has passed by `now`: while an epoch bump waits for a
    /// broker, records still fail in time. A gap left in a partition's
    /// sequences does not matter: the bump renumbers what is left.
    pub(crate) fn take_expired(&mut self, now: Instant, timeout: Duration) -> Vec<SealedBatch> {
        let mut expired = Vec::new();
        for queue in self.topics.iter_mut().flat_map(|t| &mut t.partitions) {
            let (gone, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut queue.sealed)
                .into_iter()
                .partition(|b| b.created + timeout <= now);
            queue.sealed = kept;
            expired.extend(gone);
        }
        expired
    }

    /// Puts a batch that will be retried back in its place in the queue.
    pub(crate) fn requeue(&mut self, batch: SealedBatch) {
        let Some(q) = self.queue(&batch.tp) else {
            return;
        };
        q.in_flight = q.in_flight.saturating_sub(1);
        q.recovering = true;
        let at = q
            .sealed
            .iter()
            .position(|b| b.seal_index > batch.seal_index)
            .unwrap_or(q.sealed.len());
        q.sealed.insert(at, batch);
    }

    /// Whether any record is waiting or in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|q| q.open.is_none() && q.sealed.is_empty() && q.in_flight == 0)
    }
}

/// The queue of `topic`'s `partition`, created with the partitions
/// before it on first use.
fn queue_in(
    topics: &mut [TopicQueues],
    topic: TopicId,
    partition: i32,
) -> Option<&mut PartitionQueue> {
    let index = usize::try_from(partition).ok()?;
    let t = topics.get_mut(topic.0)?;
    while t.partitions.len() <= index {
        let partition = i32::try_from(t.partitions.len()).ok()?;
        t.partitions.push(PartitionQueue {
            tp: TopicPartition {
                topic: Arc::clone(&t.name),
                partition,
            },
            open: None,
            sealed: VecDeque::new(),
            in_flight: 0,
            next_sequence: 0,
            sealed_count: 0,
            recovering: false,
            retrying: Vec::new(),
        });
    }
    t.partitions.get_mut(index)
}

/// Seals `queue`'s open batch and queues it. On failure its records are
/// resolved with the error here.
fn seal(
    queue: &mut PartitionQueue,
    options: &BatchOptions,
    spare: &mut Vec<BytesMut>,
) -> std::result::Result<(), (Released, Error)> {
    let Some(open) = queue.open.take() else {
        return Ok(());
    };
    let records = open.writer.record_count();
    let (producer, base_sequence) = if options.idempotent {
        (options.producer, queue.next_sequence)
    } else {
        (ProducerIdentity::NONE, -1)
    };
    let released = Released {
        buffer_bytes: open.buffer_bytes,
        records,
    };
    match open
        .writer
        .finish_recycling(options.compression.codec(), producer, base_sequence)
    {
        Ok((data, records_buffer)) => {
            if let Some(buf) = records_buffer
                && spare.len() < SPARE_BUFFERS_MAX
            {
                spare.push(buf);
            }
            if options.idempotent {
                queue.advance_sequence(records);
            }
            queue.sealed_count += 1;
            queue.sealed.push_back(SealedBatch {
                tp: queue.tp.clone(),
                data,
                resolver: open.resolver,
                records,
                buffer_bytes: open.buffer_bytes,
                attempts: 0,
                created: open.created,
                seal_index: queue.sealed_count,
                maybe_written: false,
            });
            Ok(())
        }
        Err(e) => {
            let e = protocol(format!("record batch does not encode: {e}"));
            open.resolver.resolve(Err(e.clone()));
            Err((released, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(batch_size: usize) -> BatchOptions {
        BatchOptions {
            batch_size,
            linger: Duration::ZERO,
            compression: Compression::None,
            producer: ProducerIdentity { id: 7, epoch: 0 },
            idempotent: true,
            in_flight_max: 5,
        }
    }

    fn append_n(acc: &mut Accumulator, n: usize, value: &[u8]) -> Vec<DeliveryFuture> {
        (0..n)
            .map(|i| {
                let parts = RecordParts {
                    timestamp: 1_700_000_000_000 + i as i64,
                    key: None,
                    value: Some(value),
                    headers: &[],
                };
                let t = acc.topic(&Arc::from("t"));
                acc.append(t, 0, 1, &parts, value.len() + 36)
                    .map_err(|(_, e)| e)
                    .expect("appends")
                    .0
            })
            .collect()
    }

    #[test]
    fn a_batch_with_its_header_fits_batch_size() {
        // 100 B records fill 1 MiB of record bytes with none to spare: the
        // header must come out of batch_size, or the batch is 1 MiB + 61
        // and the broker (message.max.bytes 1 MiB + 12) refuses it.
        for (value_bytes, batch_size) in [(100, 1 << 20), (1024, 1 << 20), (100, 16 * 1024)] {
            let mut acc = Accumulator::new(options(batch_size));
            let value = vec![b'v'; value_bytes];
            let n = 3 * batch_size / value_bytes;
            let _handles = append_n(&mut acc, n, &value);
            let ready = acc.drain(Instant::now(), true).ready;
            let mut total = 0;
            for batch in &ready {
                assert!(
                    batch.data.len() <= batch_size,
                    "{value_bytes} B records: a batch of {} bytes > batch_size {batch_size}",
                    batch.data.len()
                );
                total += batch.records;
            }
            // In flight at most 5: every batch of the three-and-a-bit came out.
            assert_eq!(
                total, n,
                "{value_bytes} B records in batches of {batch_size}"
            );
            assert!(ready.len() >= 3, "{} batches", ready.len());
        }
    }

    #[test]
    fn a_lingered_batch_stays_open_while_no_request_slot_is_free() {
        let mut acc = Accumulator::new(BatchOptions {
            in_flight_max: 1,
            ..options(1 << 20)
        });
        let value = [b'x'; 100];
        let _first = append_n(&mut acc, 1, &value);
        let now = Instant::now();
        let sent = acc.drain(now, false).ready;
        assert_eq!(sent.len(), 1, "linger 0 and a free slot: sent at once");
        // Its answer is outstanding: later records gather in one open batch
        // however long they linger.
        let _more = append_n(&mut acc, 50, &value);
        let later = now + Duration::from_secs(1);
        let held = acc.drain(later, false);
        assert!(held.ready.is_empty(), "no slot: nothing sealed");
        assert!(
            held.next_deadline.is_none(),
            "no wake-up while no slot is free"
        );
        acc.complete(&sent[0], true);
        let next = acc.drain(later, false).ready;
        assert_eq!(next.len(), 1);
        assert_eq!(
            next[0].records, 50,
            "one batch with every record that waited"
        );
    }

    #[test]
    fn sequences_run_on_across_batches_and_a_requeued_batch_keeps_its_place() {
        let mut acc = Accumulator::new(options(4096));
        let value = [b'x'; 100];
        let _handles = append_n(&mut acc, 300, &value);
        let mut ready = acc.drain(Instant::now(), true).ready;
        assert_eq!(ready.len(), 5, "five in flight at most");
        let base_sequence = |b: &SealedBatch| {
            sluice_protocol::RecordBatchView::parse(&b.data, usize::MAX)
                .expect("a batch")
                .base_sequence()
        };
        let mut expected = 0;
        for b in &ready {
            assert_eq!(base_sequence(b), expected);
            expected += i32::try_from(b.records).expect("fits");
        }
        // The second batch fails: the third..fifth are answered
        // OUT_OF_ORDER and come back too, in any order. Each goes back to
        // its place; only one batch goes out at a time until one succeeds.
        let rest = ready.split_off(1);
        acc.complete(&ready[0], true);
        for b in rest.into_iter().rev() {
            acc.requeue(b);
        }
        let again = acc.drain(Instant::now(), false).ready;
        assert_eq!(again.len(), 1, "one batch at a time while recovering");
        let first_records = i32::try_from(ready[0].records).expect("fits");
        assert_eq!(
            base_sequence(&again[0]),
            first_records,
            "the failed batch first"
        );
        assert!(acc.drain(Instant::now(), false).ready.is_empty());
        acc.complete(&again[0], true);
        let after = acc.drain(Instant::now(), false).ready;
        assert_eq!(
            after.len(),
            5,
            "back to five in flight once one is acknowledged"
        );
        let mut next = base_sequence(&again[0]) + i32::try_from(again[0].records).expect("fits");
        for b in &after {
            assert_eq!(base_sequence(b), next, "in sequence order, bytes kept");
            next += i32::try_from(b.records).expect("fits");
        }
    }

    #[test]
    fn an_epoch_bump_renumbers_waiting_batches_in_order_and_hands_back_unsure_ones() {
        let mut acc = Accumulator::new(BatchOptions {
            in_flight_max: 2,
            ..options(1024)
        });
        let value = [b'x'; 100];
        let _handles = append_n(&mut acc, 60, &value);
        let mut sent = acc.drain(Instant::now(), true).ready;
        assert_eq!(sent.len(), 2);
        let view = |b: &SealedBatch| {
            let v = sluice_protocol::RecordBatchView::parse(&b.data, usize::MAX).expect("a batch");
            v.verify_crc().expect("crc");
            (v.producer_id(), v.producer_epoch(), v.base_sequence())
        };
        // The first was answered without a known outcome, the second was
        // refused OUT_OF_ORDER: both come back, a bump is wanted.
        sent[0].maybe_written = true;
        for b in sent.into_iter().rev() {
            acc.start_recovery(&b);
            acc.requeue(b);
        }
        acc.want_epoch_bump();
        let held = acc.drain(Instant::now(), true);
        assert!(held.ready.is_empty() && held.bump_epoch);
        let next = ProducerIdentity { id: 8, epoch: 0 };
        let unsure = acc.reset_producer(next);
        assert_eq!(unsure.len(), 1, "the unanswered batch is not renumbered");
        assert_eq!(view(&unsure[0]), (7, 0, 0));
        let mut expected = 0;
        let mut records = 0;
        loop {
            let ready = acc.drain(Instant::now(), true).ready;
            if ready.is_empty() {
                break;
            }
            for b in ready {
                assert_eq!(view(&b), (8, 0, expected), "renumbered in seal order");
                expected += i32::try_from(b.records).expect("fits");
                records += b.records;
                acc.complete(&b, true);
            }
        }
        assert_eq!(records + unsure[0].records, 60, "every record once");
    }
}
