//! The producer: `send` a record, get a future for its (partition, offset).
//!
//! ```text
//! send() ─► partitioner ─► buffer permit (awaits when full) ─► accumulator
//!                                                                 │ sealed batches
//!            DeliveryFuture ◄── sender task ◄── Produce per leader ◄┘
//! ```
//!
//! - `send_batch_ref` queues many records under one lock of the
//!   accumulator (librdkafka's `rd_kafka_produce_batch`), each with the
//!   future `send_ref` would give it; it stops at a full buffer or before
//!   a record it cannot queue, so the caller resumes from there.
//! - Keyed records are placed with Kafka's murmur2 partitioner; keyless
//!   ones with sticky partitioning ([`partitioner`]).
//! - Batches per partition (`batch_size`, `linger`), compressed with any
//!   of the four codecs ([`accumulator`]). A record is encoded straight
//!   into its partition's open batch
//!   (`sluice_protocol::batch_writer`): its value is copied once, from the
//!   caller's `Bytes` into the batch, and the batch goes on the wire
//!   without another copy (`request`).
//! - Delivery is resolved per batch; a record's [`DeliveryFuture`] is the
//!   batch's shared outcome plus the record's index (`delivery`).
//! - acks 0 / 1 / all; retriable errors are retried with backoff until
//!   `delivery_timeout`, refreshing metadata when the leader moved
//!   (`sender`).
//! - Up to `max_in_flight_per_partition` batches of a partition in flight
//!   (Kafka's `max.in.flight.requests.per.connection`, 5); with
//!   idempotence (default on, as in Kafka 3+: InitProducerId once, then a
//!   sequence per partition) a retried batch is never written twice and
//!   never reordered; a partition whose sequence the broker lost (a batch
//!   refused for good before it) is recovered by an epoch bump (KIP-360,
//!   `sender`).
//!
//! # Limits
//! - `buffer_bytes` bounds the bytes of records accepted but not yet
//!   acknowledged; `send` waits for room (back-pressure) instead of
//!   queueing without bound.
//! - `max_request_size` (Kafka's `max.request.size`, 1 MiB) bounds the
//!   batch bytes of one Produce request; a request's first batch always
//!   goes, so one batch larger than the cap goes alone
//!   (`request_split`).
//! - A record that, alone in a batch, would be larger than
//!   `max_request_size` or the whole buffer fails at `send` with
//!   MESSAGE_TOO_LARGE (Kafka's `RecordTooLargeException`), one check for
//!   both (`ensure_valid_record_size`).
//! - In-flight requests per connection: `ClientConfig::in_flight_per_connection`.

// Public (hidden) only for `client/benches/accumulator.rs`.
#[doc(hidden)]
pub mod accumulator;
mod delivery;
pub mod partitioner;
mod request;
mod request_split;
mod sender;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::InitProducerIdRequest;
use sluice_protocol::RECORD_BATCH_HEADER_BYTES;
use sluice_protocol::batch_writer::{RECORD_OVERHEAD_BYTES_MAX, RecordParts};
use sluice_protocol::compression::CompressionType;
use sluice_protocol::error_code::{ErrorCode, ResponseError};
use tokio::sync::{Notify, Semaphore};

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::limits;
use accumulator::{Accumulator, BatchOptions, Released};
pub use delivery::DeliveryFuture;
use sluice_protocol::batch_builder::ProducerIdentity;

/// How many acknowledgements a produce waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget: no response; offsets resolve to -1.
    None,
    /// The leader wrote it.
    Leader,
    /// Every in-sync replica has it.
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Leader => 1,
            Self::All => -1,
        }
    }
}

/// A batch codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub(crate) fn codec(self) -> CompressionType {
        match self {
            Self::None => CompressionType::None,
            Self::Gzip => CompressionType::Gzip,
            Self::Snappy => CompressionType::Snappy,
            Self::Lz4 => CompressionType::Lz4,
            Self::Zstd => CompressionType::Zstd,
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "snappy" => Ok(Self::Snappy),
            "lz4" => Ok(Self::Lz4),
            "zstd" => Ok(Self::Zstd),
            other => Err(Error::Config(format!(
                "unknown compression '{other}' (none, gzip, snappy, lz4, zstd)"
            ))),
        }
    }
}

/// Producer settings; [`ProducerConfig::new`] gives Kafka's defaults.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub client: ClientConfig,
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent.
    pub linger: Duration,
    /// Uncompressed bytes per batch before it is sent without waiting.
    pub batch_size: usize,
    pub compression: Compression,
    /// Bytes of records accepted and not yet acknowledged; `send` waits
    /// when they would exceed it.
    pub buffer_bytes: usize,
    /// How long a record may take from `send` to acknowledgement,
    /// retries included.
    pub delivery_timeout: Duration,
    /// Retries per batch for retriable errors.
    pub retries: u32,
    /// Idempotent delivery (needs acks=all).
    pub idempotent: bool,
    /// Batches of one partition in flight at once (Kafka's
    /// `max.in.flight.requests.per.connection`, default 5; at most 5 with
    /// idempotence, as Kafka requires).
    pub max_in_flight_per_partition: usize,
    /// Ask the broker to create unknown topics (if it allows that).
    pub allow_auto_create_topics: bool,
    /// Batch bytes per Produce request (Kafka's `max.request.size`,
    /// default 1 MiB, 1..=2147483647): the drained batches of a leader go
    /// in as many requests as this takes, the first batch of a request
    /// always (a larger one goes alone). A record that would not fit a
    /// request alone (with its batch header) fails at `send`.
    pub max_request_size: usize,
}

impl ProducerConfig {
    pub fn new(client: ClientConfig) -> Self {
        Self {
            client,
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 64 * 1024,
            compression: Compression::None,
            buffer_bytes: 32 * 1024 * 1024,
            delivery_timeout: Duration::from_secs(120),
            retries: u32::MAX,
            idempotent: true,
            max_in_flight_per_partition: 5,
            allow_auto_create_topics: true,
            max_request_size: limits::MAX_REQUEST_SIZE_DEFAULT,
        }
    }

    pub fn with_acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        if acks != Acks::All {
            self.idempotent = false;
        }
        self
    }

    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    pub fn with_batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    pub fn with_buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    pub fn with_idempotence(mut self, on: bool) -> Self {
        self.idempotent = on;
        self
    }

    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    pub fn with_max_in_flight_per_partition(mut self, batches: usize) -> Self {
        self.max_in_flight_per_partition = batches;
        self
    }

    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    pub fn with_max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }
}

/// One record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Shared, so that sending many records to one topic allocates nothing
    /// per record: clone one `Arc<str>`.
    pub topic: Arc<str>,
    /// `None`: chosen by the partitioner.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; `None`: now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            value: Some(value.into()),
            ..Self::default()
        }
    }

    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    pub fn with_timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// The record as borrowed parts, for [`Producer::send_ref`].
    pub fn as_record_ref(&self) -> ProducerRecordRef<'_> {
        ProducerRecordRef {
            topic: &self.topic,
            partition: self.partition,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: &self.headers,
            timestamp: self.timestamp,
        }
    }
}

/// One record to send, borrowed: [`Producer::send_ref`] copies its key and
/// value into the partition's open batch before it returns (the one copy
/// of the record's bytes on the producer), so a caller that builds records
/// in a reused buffer needs no `Bytes` (no allocation, no reference
/// count) per record.
#[derive(Debug, Clone, Copy)]
pub struct ProducerRecordRef<'a> {
    /// The topic's shared name: the producer finds the topic by this
    /// `Arc`'s pointer when it is the one it saw last.
    pub topic: &'a Arc<str>,
    /// `None`: chosen by the partitioner.
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(String, Option<Bytes>)],
    /// Milliseconds since the epoch; `None`: now.
    pub timestamp: Option<i64>,
}

impl ProducerRecordRef<'_> {
    /// Buffer bytes this record is charged: its payload plus the record
    /// framing overhead (an upper bound of its varints and attributes).
    fn size(&self) -> usize {
        let len = |b: Option<&[u8]>| b.map_or(0, <[u8]>::len);
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + len(v.as_deref()) + 10)
            .sum();
        RECORD_OVERHEAD_BYTES_MAX + len(self.key) + len(self.value) + headers
    }
}

/// What one record's queueing has got so far, across the waits of a send.
#[derive(Default)]
struct Progress {
    /// The record's buffer bytes are paid.
    paid: bool,
    /// Its topic's partition count, as just fetched from the cluster.
    fetched: Option<i32>,
    /// Buffer credit taken from the semaphore, for the accumulator.
    credit_bought: usize,
}

/// Why [`queue_locked`] did not queue a record.
enum Stop {
    /// It cannot be queued (and the records of a batch that failed to
    /// seal, if any, are released with it).
    Refused(Released, Error),
    /// Its topic's partition count is not known.
    Metadata,
    /// The buffer credit is short of its permits.
    Buffer(u32),
}

/// Queues `record` under the accumulator's lock, or says what it waits
/// for. The topic's partition count is cached in the accumulator per
/// metadata generation, so the common record takes no lookup by name; a
/// miss (new topic, new metadata) is asked of the cluster outside the lock
/// ([`Stop::Metadata`]). The record's buffer bytes are charged from the
/// accumulator's credit; when it runs short they are taken from the
/// semaphore outside the lock (waiting there while the buffer is full:
/// back-pressure), with a chunk of credit on top ([`Stop::Buffer`]).
/// Clears `progress` once the record is queued. Inlined into both send
/// paths: as a call it added ~20 instructions per `send_ref` (callgrind,
/// counters).
#[inline(always)]
fn queue_locked(
    config: &ProducerConfig,
    acc: &mut Accumulator,
    record: &ProducerRecordRef<'_>,
    generation: u64,
    progress: &mut Progress,
) -> std::result::Result<(DeliveryFuture, bool), Stop> {
    let size = record.size();
    let permits = ensure_valid_record_size(config, record.topic, size)
        .map_err(|e| Stop::Refused(Released::default(), e))?;
    // A topic gets its queues only once it is known to exist.
    let (topic, partitions) = match progress.fetched {
        Some(n) => {
            let topic = acc.topic(record.topic);
            acc.set_partition_count(topic, n, generation);
            (topic, n)
        }
        None => acc
            .find_topic(record.topic)
            .and_then(|t| Some((t, acc.partition_count(t, generation)?)))
            .ok_or(Stop::Metadata)?,
    };
    if !progress.paid {
        if !acc.take_buffer_credit(size) {
            return Err(Stop::Buffer(permits));
        }
        progress.paid = true;
    }
    let partition = match (record.partition, &record.key) {
        (Some(p), _) => p,
        (None, Some(key)) => partitioner::partition_for_key(key, partitions),
        (None, None) => acc.sticky_partition(topic, partitions),
    };
    if !(0..partitions).contains(&partition) {
        return Err(Stop::Refused(
            Released::default(),
            Error::Config(format!(
                "partition {partition} of '{}' is not in 0..{partitions}",
                record.topic
            )),
        ));
    }
    let parts = RecordParts {
        timestamp: record.timestamp.unwrap_or_else(now_ms),
        key: record.key,
        value: record.value,
        headers: record.headers,
    };
    acc.add_unresolved_record();
    match acc.append(topic, partition, partitions, &parts, size) {
        Ok(queued) => {
            *progress = Progress::default();
            Ok(queued)
        }
        // This record counted as outstanding too; the batch that failed
        // to seal (if any) goes with it.
        Err((released, e)) => {
            let records = released.records + 1;
            Err(Stop::Refused(
                Released {
                    records,
                    ..released
                },
                e,
            ))
        }
    }
}

/// State shared by the producer handle and its sender task.
pub(crate) struct Inner {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) config: ProducerConfig,
    pub(crate) accumulator: Mutex<Accumulator>,
    /// Wakes the sender: a batch opened or sealed, a flush, a close.
    pub(crate) wake: Notify,
    /// Buffer bytes available (back-pressure); records are charged from a
    /// credit the accumulator keeps (`limits::BUFFER_CREDIT_BYTES_MAX`).
    pub(crate) buffer: Semaphore,
    /// Buffer bytes taken from `buffer` at once for the credit.
    pub(crate) buffer_credit_chunk: usize,
    /// Notified when the accumulator's unresolved records drop to zero.
    pub(crate) drained: Notify,
    /// Flushes in progress: while non-zero the sender does not linger.
    pub(crate) flushing: std::sync::atomic::AtomicUsize,
    pub(crate) closed: AtomicBool,
}

impl Inner {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Accumulator> {
        match self.accumulator.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Returns the buffer bytes of resolved records and counts them done
    /// (per batch; takes the accumulator's lock, so not to be called with
    /// it held).
    pub(crate) fn release(&self, released: Released) {
        self.buffer.add_permits(released.buffer_bytes);
        if self.lock().resolve_records(released.records) {
            self.drained.notify_waiters();
        }
    }

    /// Takes `permits` buffer bytes for one record from the semaphore,
    /// waiting for room if need be, plus a chunk for the accumulator's
    /// credit when there is room for both; returns the chunk's size.
    /// Before it waits, the credit goes back to the semaphore, so bytes
    /// never sit idle as credit while a sender waits for room.
    async fn take_buffer(&self, permits: u32) -> Result<usize> {
        use tokio::sync::TryAcquireError;
        let closed = || Error::Closed("producer");
        let chunk = u32::try_from(self.buffer_credit_chunk).unwrap_or(0);
        if chunk > 0 {
            match self.buffer.try_acquire_many(permits.saturating_add(chunk)) {
                Ok(p) => {
                    p.forget();
                    return Ok(self.buffer_credit_chunk);
                }
                Err(TryAcquireError::Closed) => return Err(closed()),
                Err(TryAcquireError::NoPermits) => {}
            }
        }
        let credit = self.lock().take_all_buffer_credit();
        self.buffer.add_permits(credit);
        match self.buffer.try_acquire_many(permits) {
            Ok(p) => p.forget(),
            Err(TryAcquireError::Closed) => return Err(closed()),
            Err(TryAcquireError::NoPermits) => self
                .buffer
                .acquire_many(permits)
                .await
                .map_err(|_| closed())?
                .forget(),
        }
        Ok(0)
    }
}

/// The producer. Cheap to clone; all clones share one sender task, which
/// finishes what is queued and stops once the last clone is dropped.
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// Owned only by `Producer` clones (the sender and request tasks hold
/// `Inner` directly), so its drop means "no producer is left".
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.wake.notify_one();
    }
}

impl Producer {
    /// Connects, gets a producer id when idempotent, and starts the sender.
    pub async fn connect(config: ProducerConfig) -> Result<Self> {
        if config.idempotent && config.acks != Acks::All {
            return Err(Error::Config("idempotence needs acks=all".into()));
        }
        if config.buffer_bytes == 0 || config.buffer_bytes > Semaphore::MAX_PERMITS {
            return Err(Error::Config("buffer_bytes out of range".into()));
        }
        // A request's size is an i32 on the wire.
        if config.max_request_size == 0 || i32::try_from(config.max_request_size).is_err() {
            return Err(Error::Config(
                "max_request_size out of range (1..=2147483647)".into(),
            ));
        }
        let cluster = Cluster::connect(config.client.clone()).await?;
        let producer = if config.idempotent {
            init_producer_id(&cluster, None).await?
        } else {
            ProducerIdentity::NONE
        };
        if config.max_in_flight_per_partition == 0
            || (config.idempotent && config.max_in_flight_per_partition > 5)
        {
            return Err(Error::Config(
                "max_in_flight_per_partition must be 1..=5 with idempotence, at least 1 without"
                    .into(),
            ));
        }
        let options = BatchOptions {
            batch_size: config.batch_size.max(1),
            linger: config.linger,
            compression: config.compression,
            producer,
            idempotent: config.idempotent,
            in_flight_max: config.max_in_flight_per_partition,
        };
        let inner = Arc::new(Inner {
            cluster,
            buffer: Semaphore::new(config.buffer_bytes),
            buffer_credit_chunk: (config.buffer_bytes / 32).min(limits::BUFFER_CREDIT_BYTES_MAX),
            config,
            accumulator: Mutex::new(Accumulator::new(options)),
            wake: Notify::new(),
            drained: Notify::new(),
            flushing: std::sync::atomic::AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(sender::run(Arc::clone(&inner)));
        Ok(Self {
            handle: Arc::new(Handle { inner }),
        })
    }

    /// Queues `record`, waiting while the buffer is full. The returned
    /// future resolves when the broker acknowledges it.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        self.send_ref(record.as_record_ref()).await
    }

    /// [`Producer::send`] for a borrowed record: its key and value are
    /// copied into the batch (the record's only copy on the producer; the
    /// batch then goes on the wire as it is), so they need to live only
    /// until this returns.
    pub async fn send_ref(&self, record: ProducerRecordRef<'_>) -> Result<DeliveryFuture> {
        let inner = &self.handle.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("producer"));
        }
        let mut progress = Progress::default();
        loop {
            let generation = inner.cluster.metadata_generation();
            let queued = {
                let mut acc = inner.lock();
                acc.add_buffer_credit(std::mem::take(&mut progress.credit_bought));
                queue_locked(&inner.config, &mut acc, &record, generation, &mut progress)
            };
            match queued {
                Ok((delivery, wake)) => {
                    if wake {
                        inner.wake.notify_one();
                    }
                    return Ok(delivery);
                }
                Err(stop) => self.resume(stop, &record, &mut progress).await?,
            }
        }
    }

    /// Queues records from the front of `records`, in order, as
    /// [`Producer::send_ref`] would one by one, but under one lock of the
    /// accumulator for as many as the buffer has room for (librdkafka's
    /// `rd_kafka_produce_batch`): for an application that hands over its
    /// records in batches (the counters workload's 100–1 000 increments),
    /// the per-call costs are paid once per batch, not per record.
    ///
    /// Pushes each queued record's future onto `deliveries`, in the order
    /// of `records`, and returns how many were queued from the front:
    /// `records.len()`, or fewer when the buffer filled up or the next
    /// record cannot be queued (a call starting with that record returns
    /// its error). Waits for buffer room (or metadata) only for the first
    /// record, so the records queued so far can be awaited meanwhile. The
    /// lock is let go every 256 records (`limits::RECORDS_PER_LOCK_MAX`).
    pub async fn send_batch_ref(
        &self,
        records: &[ProducerRecordRef<'_>],
        deliveries: &mut Vec<DeliveryFuture>,
    ) -> Result<usize> {
        let inner = &self.handle.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("producer"));
        }
        let mut done = 0usize;
        let mut progress = Progress::default();
        loop {
            let generation = inner.cluster.metadata_generation();
            let mut wake = false;
            let stopped = {
                let mut acc = inner.lock();
                acc.add_buffer_credit(std::mem::take(&mut progress.credit_bought));
                let end = done.saturating_add(limits::RECORDS_PER_LOCK_MAX);
                loop {
                    let Some(record) = records.get(done).filter(|_| done < end) else {
                        break None;
                    };
                    match queue_locked(&inner.config, &mut acc, record, generation, &mut progress) {
                        Ok((delivery, woke)) => {
                            deliveries.push(delivery);
                            wake |= woke;
                            done += 1;
                        }
                        Err(stop) => break Some((stop, record)),
                    }
                }
            };
            if wake {
                inner.wake.notify_one();
            }
            match stopped {
                None if done == records.len() => return Ok(done),
                // The lock is let go between runs of records.
                None => {}
                // Only a refused record holds anything to give back (the
                // first record's waits are the only ones that pay first).
                Some((stop, record)) if done > 0 => {
                    if let Stop::Refused(released, _) = stop {
                        self.give_back(released, progress.paid, record);
                    }
                    return Ok(done);
                }
                Some((stop, record)) => self.resume(stop, record, &mut progress).await?,
            }
        }
    }

    /// Does what a record that could not be queued under the lock waits
    /// for — buffer room, its topic's partition count — or gives back
    /// what it took and returns its error.
    async fn resume(
        &self,
        stop: Stop,
        record: &ProducerRecordRef<'_>,
        progress: &mut Progress,
    ) -> Result<()> {
        let inner = &self.handle.inner;
        match stop {
            Stop::Refused(released, e) => {
                self.give_back(released, progress.paid, record);
                Err(e)
            }
            Stop::Buffer(permits) => {
                progress.credit_bought = inner.take_buffer(permits).await?;
                progress.paid = true;
                Ok(())
            }
            Stop::Metadata => match self.partition_count(record.topic).await {
                Ok(n) => {
                    progress.fetched = Some(n);
                    Ok(())
                }
                Err(e) => {
                    self.give_back(Released::default(), progress.paid, record);
                    Err(e)
                }
            },
        }
    }

    /// Returns a record's buffer bytes if it `paid` them, and releases the
    /// records of a batch that failed to seal (if any).
    fn give_back(&self, released: Released, paid: bool, record: &ProducerRecordRef<'_>) {
        let inner = &self.handle.inner;
        if paid {
            inner.buffer.add_permits(record.size());
        }
        if released.records > 0 {
            inner.release(released);
        }
    }

    /// Sends everything queued now and waits until every record sent so
    /// far has resolved.
    pub async fn flush(&self) -> Result<()> {
        let inner = &self.handle.inner;
        inner.flushing.fetch_add(1, Ordering::AcqRel);
        inner.wake.notify_one();
        loop {
            let drained = inner.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if inner.lock().unresolved_records() == 0 {
                break;
            }
            drained.await;
        }
        inner.flushing.fetch_sub(1, Ordering::AcqRel);
        Ok(())
    }

    /// Flushes, then stops the sender. Later sends fail.
    pub async fn close(&self) -> Result<()> {
        let flushed = self.flush().await;
        self.handle.inner.closed.store(true, Ordering::Release);
        self.handle.inner.wake.notify_one();
        flushed
    }

    async fn partition_count(&self, topic: &str) -> Result<i32> {
        let inner = &self.handle.inner;
        let meta = inner.cluster.metadata();
        if let Some(t) = meta.topics.get(topic) {
            return i32::try_from(t.partition_count())
                .map_err(|_| Error::Protocol("partitions".into()));
        }
        let info = inner
            .cluster
            .topic(topic, inner.config.allow_auto_create_topics)
            .await?;
        match i32::try_from(info.partition_count()) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::kafka(
                ErrorCode::of(ResponseError::LeaderNotAvailable),
                format!("topic '{topic}'"),
                Some("no partitions".into()),
            )),
        }
    }
}

/// Kafka's `KafkaProducer.ensureValidRecordSize`: a record whose batch of
/// one — `size` (its upper bound, [`ProducerRecord::size`]) plus the batch
/// header, as Kafka's `estimateSizeInBytesUpperBound` counts it — is larger
/// than `max_request_size` or than the whole buffer can never be sent: it
/// fails now with MESSAGE_TOO_LARGE (Kafka's `RecordTooLargeException`,
/// not retriable) instead of waiting for buffer room that never comes or
/// being refused by the broker. Returns the buffer permits the record
/// takes (`size`).
fn ensure_valid_record_size(config: &ProducerConfig, topic: &str, size: usize) -> Result<u32> {
    let serialized = size.saturating_add(RECORD_BATCH_HEADER_BYTES);
    let limit = if serialized > config.max_request_size {
        Some(("max_request_size", config.max_request_size))
    } else if serialized > config.buffer_bytes {
        Some(("buffer_bytes", config.buffer_bytes))
    } else {
        None
    };
    // `size` < max_request_size <= i32::MAX (checked at connect).
    match (limit, u32::try_from(size)) {
        (None, Ok(permits)) => Ok(permits),
        (limit, _) => {
            let (name, bytes) = limit.unwrap_or(("max_request_size", config.max_request_size));
            Err(Error::kafka(
                ErrorCode::of(ResponseError::MessageTooLarge),
                format!("topic '{topic}'"),
                Some(format!(
                    "the record is {serialized} bytes when serialized, larger than \
                     {name} ({bytes} bytes)"
                )),
            ))
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Gets a producer id and epoch (InitProducerId, no transactional id).
/// `previous`, the identity this producer holds, goes in the request when
/// the broker serves v3+ (KIP-360): a broker may then bump its epoch
/// instead of handing out a new id. Sluice, like Kafka's coordinator for
/// producers without a transactional id, answers a new id at epoch 0;
/// either resets every partition's sequence.
pub(crate) async fn init_producer_id(
    cluster: &Cluster,
    previous: Option<ProducerIdentity>,
) -> Result<ProducerIdentity> {
    let deadline = std::time::Instant::now() + cluster.config().request_timeout;
    cluster
        .retry(deadline, &[], || async {
            let conn = cluster.any_connection().await?;
            let version = conn.version(kafka_protocol::messages::ApiKey::InitProducerId)?;
            // producerId and producerEpoch exist from v3 on.
            let (id, epoch) = match previous {
                Some(p) if version >= 3 => (p.id, p.epoch),
                _ => (-1, -1),
            };
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(i32::MAX)
                .with_producer_id(kafka_protocol::messages::ProducerId(id))
                .with_producer_epoch(epoch);
            let response = conn.call_at(&request, version).await?;
            Error::check(response.error_code, || "InitProducerId".to_owned())?;
            Ok(ProducerIdentity {
                id: response.producer_id.0,
                epoch: response.producer_epoch,
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_fits_while_its_batch_of_one_is_within_both_limits() {
        let config = ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"))
            .with_max_request_size(1000)
            .with_buffer_bytes(2000);
        let fits = 1000 - RECORD_BATCH_HEADER_BYTES;
        assert_eq!(
            ensure_valid_record_size(&config, "t", fits).ok(),
            Some(u32::try_from(fits).expect("fits")),
            "exactly the cap with the batch header: sent"
        );
        let too_large = |config: &ProducerConfig, size: usize| {
            let e = ensure_valid_record_size(config, "t", size).expect_err("too large");
            assert_eq!(
                e.code(),
                Some(ErrorCode::of(ResponseError::MessageTooLarge))
            );
            assert!(!e.is_retriable());
            e.to_string()
        };
        let e = too_large(&config, fits + 1);
        assert!(
            e.contains("is 1001 bytes") && e.contains("max_request_size (1000"),
            "{e}"
        );
        // The buffer, when it is the smaller bound, refuses the same way.
        let small_buffer = config
            .clone()
            .with_buffer_bytes(500)
            .with_max_request_size(4000);
        let e = too_large(&small_buffer, 500);
        assert!(e.contains("buffer_bytes (500"), "{e}");
    }
}
