//! Every bound and default the client uses, with why.

use std::time::Duration;

/// Requests in flight on one connection before `call` waits (Kafka's
/// `max.in.flight.requests.per.connection`, default 5). Five keeps the
/// pipe full on loopback and is the most idempotence allows while
/// preserving order.
pub const IN_FLIGHT_PER_CONNECTION_DEFAULT: usize = 5;

/// Frames queued for a connection's writer task beyond those in flight.
/// Small: the in-flight semaphore is the real bound; this only decouples
/// callers from the socket.
pub const WRITE_QUEUE_FRAMES: usize = 16;

/// How long a request may wait for its response (Kafka's
/// `request.timeout.ms`, default 30 s).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// How long a TCP connect plus the ApiVersions handshake may take.
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// First wait before reconnecting to a broker that failed (Kafka's
/// `reconnect.backoff.ms`); doubled per failure up to the max.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// Longest wait between reconnect attempts (`reconnect.backoff.max.ms`).
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Largest response frame accepted: the broker's own request bound
/// (100 MiB). A bigger size prefix means a broken stream.
pub const RESPONSE_FRAME_BYTES_MAX: usize = sluice_protocol::SOCKET_REQUEST_MAX_BYTES_DEFAULT;

/// Metadata older than this is refreshed before use (Kafka's
/// `metadata.max.age.ms` is 5 minutes; a short age finds new partitions
/// and moved leaders sooner at the cost of one small request).
pub const METADATA_MAX_AGE: Duration = Duration::from_secs(60);

/// Batch bytes per Produce request (Kafka's `max.request.size`, default
/// 1 MiB): a producer with many partitions sends several requests of this
/// size rather than one of every batch it holds, so the broker reads
/// (and holds `queued.max.request.bytes` permits for) bounded frames, and
/// one slow partition's batch delays only the batches in its request.
pub const MAX_REQUEST_SIZE_DEFAULT: usize = 1024 * 1024;

/// Wait between retries of a retriable error (`retry.backoff.ms`).
pub const RETRY_BACKOFF_DEFAULT: Duration = Duration::from_millis(100);

/// Largest record-bytes a decoded batch may expand to when the consumer
/// decompresses it (bounds memory against a hostile broker).
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Buffer bytes a producer takes from its buffer semaphore at once, beyond
/// the record being sent, and keeps as a credit under the accumulator's
/// lock (taken per record anyway) to charge the next records from: one
/// semaphore compare-and-swap per ~64 KiB of records instead of one per
/// record (a 32 B record is charged 68 bytes: ~960 records a swap). At
/// most 1/32 of the buffer, so a small buffer is not held as credit; the
/// credit goes back to the semaphore before any `send` waits for room.
pub const BUFFER_CREDIT_BYTES_MAX: usize = 64 * 1024;

/// Records `Producer::send_batch_ref` queues under one hold of the
/// accumulator's lock before it lets go and takes it again: the sender
/// task drains under the same lock (on a runtime worker), so a long slice
/// must not keep it out for more than tens of microseconds at a time.
pub const RECORDS_PER_LOCK_MAX: usize = 256;
