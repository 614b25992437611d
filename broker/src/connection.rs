//! One client connection: read frames, dispatch them in order, write the
//! replies in the same order.
//!
//! ```text
//! reader (this task)                         writer task
//!   read bytes ─► frame ─► memory permit       await each reply in order
//!   ─► dispatch (appends happen here, in       ─► writev bytes and mapped
//!      request order) ─► queue reply ────────►    regions ─► drop permit
//! ```
//!
//! Requests are processed one at a time in arrival order, so a pipelining
//! producer's batches reach the log in the order it sent them. A reply may
//! complete later (produce waiting for fsync, fetch long-polling) without
//! holding up the processing of the requests behind it; replies still leave
//! in request order, as Kafka clients require.
//!
//! # Copies
//! Produce: the kernel copies the request into our read buffer; the batch
//! bytes are then copied once, into the mapped segment (zero further
//! copies: decoding slices the frame). Fetch (consumers and followers alike):
//! none through a user-space buffer: every region is gathered into the
//! reply's `writev` from the segment's mapping, one kernel copy, page
//! cache → socket (why not `sendfile`: `write_parts`). Only the response
//! head is encoded in memory.
//!
//! # Limits
//! - A frame above `socket.request.max.bytes` (or above the whole
//!   `queued.max.request.bytes` budget, which it could never get) closes the
//!   connection before any of its body is read.
//! - Memory is taken as bytes arrive, never for what a size prefix
//!   announces: every buffered byte holds one permit of the broker-wide
//!   `queued.max.request.bytes` semaphore, acquired before the read that
//!   brings it (at most [`READ_RESERVE_BYTES_MAX`] per read) and held while
//!   the request's bytes live: until its reply is written, or until it is
//!   handled when nothing keeps them (a produce waiting for acks=all keeps
//!   none, so parked produces never hold the budget a follower's fetch
//!   needs to be read). A peer that announces 100 MiB and
//!   sends one byte holds about one byte (its buffer's capacity is at
//!   most [`READ_RESERVE_BYTES_MAX`] until that much of the frame has
//!   arrived; then room for the whole frame is made at once — capacity,
//!   not memory in use, as pages are touched only as bytes arrive — so
//!   the buffer grows at most twice per frame:
//!   `sluice_protocol::frame::reserve_for_next_read`).
//! - A request must arrive whole within `socket.request.read.timeout.ms`
//!   of its first byte, waiting for memory included; a slower sender is
//!   closed. Between requests, a connection with no request arriving for
//!   `connections.max.idle.ms` is closed.
//! - Each response must be written within `socket.response.write.timeout.ms`;
//!   a client that does not read its replies is closed. At most
//!   [`INFLIGHT_REQUESTS_MAX`] replies may be pending; the reader stops
//!   reading (TCP back-pressure) beyond that.
//! - An idle connection holds no read buffer: it is allocated when bytes
//!   are readable and released when it empties.
//!
//! # Caveats
//! - Memory permits are taken piece by piece, so connections that each
//!   hold part of a large frame can together exhaust the budget and wait
//!   on each other; the read deadline ends the wait by closing the slowest,
//!   which releases its permits. Kafka avoids this by reserving the whole
//!   announced size up front, which lets a liar hold memory it never fills.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sluice_protocol::frame::{
    FRAME_SIZE_PREFIX_BYTES, READ_RESERVE_BYTES_MAX, READ_RESERVE_BYTES_MIN, decode_frame,
    frame_size_at, reserve_for_next_read,
};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::response::{FramePart, Reply, ResponseFrame};
use crate::{client_errors, dispatch};

/// Replies a connection may have pending before it stops reading.
pub const INFLIGHT_REQUESTS_MAX: usize = 32;

/// What the writer task receives, in request order.
struct Pending {
    reply: Reply,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Which side of a connection stopped first.
enum Stopped {
    Reading(String),
    Writing(Result<io::Result<()>, tokio::task::JoinError>),
}

/// The time bounds of one connection, from the broker config.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    idle: Duration,
    request_read: Duration,
    response_write: Duration,
}

/// Serves one connection until the peer closes, a protocol error, a
/// deadline, or broker shutdown.
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    memory: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    // Kafka's client host form, as JoinGroup and DescribeGroups report it.
    let peer_host = stream
        .peer_addr()
        .map_or_else(|_| String::new(), |a| format!("/{}", a.ip()));
    let config = broker.config();
    let deadlines = Deadlines {
        idle: Duration::from_millis(config.connections_max_idle_ms),
        request_read: Duration::from_millis(config.socket_request_read_timeout_ms),
        response_write: Duration::from_millis(config.socket_response_write_timeout_ms),
    };
    let stream = Arc::new(stream);
    let (tx, rx) = mpsc::channel(INFLIGHT_REQUESTS_MAX);
    let mut writer: JoinHandle<io::Result<()>> = tokio::spawn(write_replies(
        Arc::clone(&stream),
        rx,
        deadlines.response_write,
    ));
    let peer_host: Arc<str> = Arc::from(peer_host);
    let reader = read_requests(&broker, &stream, &memory, &tx, &peer_host, deadlines);
    let stopped = tokio::select! {
        reason = reader => Stopped::Reading(reason),
        // The writer stopped first (a write failed or timed out): nothing
        // more can be answered, so stop reading too.
        w = &mut writer => Stopped::Writing(w),
        _ = shutdown.wait_for(|stop| *stop) => Stopped::Reading("broker shutting down".to_string()),
    };
    let written = match stopped {
        Stopped::Reading(reason) => {
            tracing::debug!(%peer, %reason, "connection closing");
            drop(tx);
            // Let every queued reply go out (each bounded by its own
            // timeout and the write deadline).
            writer.await
        }
        Stopped::Writing(w) => w,
    };
    if let Ok(Err(e)) = written {
        tracing::debug!(%peer, error = %e, "connection write failed");
    }
}

/// Reads and dispatches requests; returns why it stopped.
async fn read_requests(
    broker: &Arc<Broker>,
    stream: &TcpStream,
    memory: &Arc<Semaphore>,
    tx: &mpsc::Sender<Pending>,
    peer_host: &Arc<str>,
    deadlines: Deadlines,
) -> String {
    // A frame larger than the whole budget could never get its permits.
    let max_frame = broker
        .config()
        .socket_request_max_bytes
        .min(broker.memory_budget());
    let mut input = ReadBuffer::default();
    loop {
        let (frame, permit) =
            match next_frame(stream, &mut input, max_frame, memory, deadlines).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return "peer closed".to_string(),
                Err(Closed::Quietly(reason)) => return reason,
                Err(Closed::ClientFault(reason)) => {
                    let who = client_errors::Requester {
                        host: peer_host,
                        client_id: "",
                    };
                    client_errors::report(who, "connection closed", &reason);
                    return reason;
                }
            };
        // A handle on the request's bytes, to learn when nothing else does.
        let request_bytes = frame.clone();
        let reply = dispatch::dispatch(broker, frame, peer_host).await;
        // Handled, and nothing keeps the request's bytes (a produce waiting
        // for acks=all keeps copies of what it answers): their memory is
        // free, so are their permits. Kafka too frees a request's buffer
        // once handled. Parked acks=all produces holding the budget would
        // keep a follower's fetch — which releases them — from being read.
        let permit = permit.filter(|_| !request_bytes.is_unique());
        drop(request_bytes);
        let close = match &reply {
            Reply::Close(reason) => Some(reason.clone()),
            _ => None,
        };
        if tx
            .send(Pending {
                reply,
                _permit: permit,
            })
            .await
            .is_err()
        {
            return "writer stopped".to_string();
        }
        if let Some(reason) = close {
            return reason;
        }
    }
}

/// Why reading frames stopped: the client broke a bound (logged as a
/// client error), or not (idle, network, shutdown: logged at debug).
enum Closed {
    ClientFault(String),
    Quietly(String),
}

/// Bytes read from the socket and not yet split into frames, with the
/// memory permits that pay for them.
///
/// # Invariants
/// - `held` carries exactly `buf.len()` permits (`None` when empty).
/// - An empty buffer holds no allocation.
#[derive(Default)]
struct ReadBuffer {
    buf: BytesMut,
    held: Option<OwnedSemaphorePermit>,
}

impl ReadBuffer {
    /// Splits off the first `n` bytes' permits (all that is held when less).
    fn take_permits(&mut self, n: usize) -> Option<OwnedSemaphorePermit> {
        let held = self.held.as_mut()?;
        if n >= held.num_permits() {
            return self.held.take();
        }
        held.split(n)
    }

    fn add_permits(&mut self, permit: OwnedSemaphorePermit) {
        match self.held.as_mut() {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
    }

    /// How many bytes the next read may bring: what the frame in progress
    /// still lacks, within `READ_RESERVE_BYTES_MIN..=READ_RESERVE_BYTES_MAX`.
    fn next_read_bytes(&self, frame_size: Option<usize>) -> usize {
        let whole = FRAME_SIZE_PREFIX_BYTES + frame_size.unwrap_or(0);
        whole
            .saturating_sub(self.buf.len())
            .clamp(READ_RESERVE_BYTES_MIN, READ_RESERVE_BYTES_MAX)
    }
}

/// Reads until one whole frame is buffered; returns its bytes (size prefix
/// removed) with the memory permits that pay for them, or `None` on a
/// clean close between frames.
async fn next_frame(
    stream: &TcpStream,
    input: &mut ReadBuffer,
    max_frame: usize,
    memory: &Arc<Semaphore>,
    deadlines: Deadlines,
) -> Result<Option<(Bytes, Option<OwnedSemaphorePermit>)>, Closed> {
    let fault = |e: sluice_protocol::DecodeError| Closed::ClientFault(e.to_string());
    // Bytes of the next frame already buffered (pipelining) start its clock.
    let mut frame_deadline =
        (!input.buf.is_empty()).then(|| Instant::now() + deadlines.request_read);
    loop {
        let size = frame_size_at(&input.buf, max_frame).map_err(fault)?;
        if let Some(size) = size
            && let Some(frame) = decode_frame(&mut input.buf, max_frame).map_err(fault)?
        {
            let permit = input.take_permits(FRAME_SIZE_PREFIX_BYTES + size);
            if input.buf.is_empty() {
                // Drop the reference into the frame's allocation, so an idle
                // connection holds no buffer.
                input.buf = BytesMut::new();
            }
            return Ok(Some((frame, permit)));
        }
        let (deadline, expired) = match frame_deadline {
            Some(d) => (d, Closed::ClientFault("request read timeout".to_string())),
            None => (
                Instant::now() + deadlines.idle,
                Closed::Quietly("idle timeout".to_string()),
            ),
        };
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Err(_) => return Err(expired),
            Ok(Err(e)) => return Err(Closed::Quietly(format!("read failed: {e}"))),
            Ok(Ok(())) => {}
        }
        // Bytes are waiting: a frame has begun, and so has its deadline.
        let deadline =
            *frame_deadline.get_or_insert_with(|| Instant::now() + deadlines.request_read);
        let want = input.next_read_bytes(size);
        // Back-pressure: no permits, no read; the peer's bytes wait in the
        // kernel (and then in the peer) until memory frees up.
        let want_permits = u32::try_from(want).unwrap_or(u32::MAX);
        let mut permit = match tokio::time::timeout_at(
            deadline,
            Arc::clone(memory).acquire_many_owned(want_permits),
        )
        .await
        {
            // The broker's memory was short, not the client's fault.
            Err(_) => {
                return Err(Closed::Quietly(
                    "request read timeout (waiting for memory)".to_string(),
                ));
            }
            Ok(Err(_)) => return Err(Closed::Quietly("memory semaphore closed".to_string())),
            Ok(Ok(p)) => p,
        };
        // Room for the whole frame once a full read's worth of it is in:
        // a client must send that much before its announced size is
        // believed. A buffer grown in steps copies what it holds each
        // time (22 % of the broker's CPU with 1 000 partitions, whose
        // produce requests carry many batches: docs/benchmarks.md,
        // "Latency and many partitions").
        reserve_for_next_read(&mut input.buf, max_frame, READ_RESERVE_BYTES_MAX).map_err(fault)?;
        let read = stream.try_read_buf(&mut (&mut input.buf).limit(want));
        match read {
            Ok(0) if input.buf.is_empty() => return Ok(None),
            Ok(0) => return Err(Closed::ClientFault("peer closed mid-frame".to_string())),
            Ok(n) => {
                if let Some(used) = permit.split(n) {
                    input.add_permits(used);
                }
                // The unused rest of `permit` is released here.
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Closed::Quietly(format!("read failed: {e}"))),
        }
        if input.buf.is_empty() {
            input.buf = BytesMut::new();
        }
    }
}

/// Writes replies in request order until the reader is done and every
/// queued reply has gone out.
///
/// Waiting for a deferred reply does not count against the write deadline
/// (each deferred reply has its own timeout); writing it does.
async fn write_replies(
    stream: Arc<TcpStream>,
    mut rx: mpsc::Receiver<Pending>,
    write_timeout: Duration,
) -> io::Result<()> {
    while let Some(pending) = rx.recv().await {
        let frame = match pending.reply {
            Reply::Now(frame) => frame,
            Reply::Later(deferred) => deferred
                .await
                .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))?,
            Reply::Nothing | Reply::Close(_) => continue,
        };
        tokio::time::timeout(write_timeout, write_frame(&stream, frame))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "response write timeout: the client is not reading its replies",
                )
            })??;
    }
    Ok(())
}

async fn write_frame(stream: &TcpStream, frame: ResponseFrame) -> io::Result<()> {
    match frame {
        // One part: no gathering vector to allocate per response.
        ResponseFrame::Encoded(mut bytes) => {
            write_gathered(stream, std::slice::from_mut(&mut bytes)).await
        }
        ResponseFrame::Parts(parts) => write_parts(stream, parts).await,
    }
}

/// Writes a response with as few syscalls as its parts allow: encoded
/// bytes and regions (views of segment mappings) gathered into `sendmsg`
/// calls (a `writev`), up to [`IOVECS_MAX`] parts each. A fetch reply is
/// one syscall whatever the number of batches and segments in it.
///
/// # Copies
/// Each region is copied once, by the kernel, page cache → socket buffer.
/// `sendfile` would hand the socket references to the page-cache pages
/// instead, and a socket whose reader stops reading keeps them for as long
/// as its connection lives: a removed segment's file could then never be
/// written over as the next segment's (`storage/src/spare_segment.rs`),
/// which saves the produce path a third of its CPU. On loopback the copy
/// cost no more per byte than `sendfile` did (docs/benchmarks.md, "Broker
/// cost"; the receiver's side of loopback runs in the sender).
async fn write_parts(stream: &TcpStream, parts: Vec<FramePart>) -> io::Result<()> {
    let mut gathered: Vec<Bytes> = parts
        .into_iter()
        .map(|part| match part {
            FramePart::Bytes(bytes) => bytes,
            FramePart::Region(region) => region.bytes(),
        })
        .collect();
    write_gathered(stream, &mut gathered).await
}

/// Most buffers handed to one `sendmsg` (Linux's `IOV_MAX`).
const IOVECS_MAX: usize = 1024;

/// Writes `parts` in order with `sendmsg` (gathering up to
/// [`IOVECS_MAX`] per call), advancing each past what was written. A call
/// that leaves parts for the next says `MSG_MORE`, so the kernel holds a
/// partial segment back for them.
async fn write_gathered(stream: &TcpStream, parts: &mut [Bytes]) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendFlags};
    let mut first = 0;
    while first < parts.len() {
        stream.writable().await?;
        let batch = parts.get(first..).unwrap_or_default();
        let slices: Vec<io::IoSlice<'_>> = batch
            .iter()
            .filter(|b| !b.is_empty())
            .take(IOVECS_MAX)
            .map(|b| io::IoSlice::new(b))
            .collect();
        let all = slices.len() == batch.iter().filter(|b| !b.is_empty()).count();
        let flags = if !all {
            SendFlags::NOSIGNAL | SendFlags::MORE
        } else {
            SendFlags::NOSIGNAL
        };
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::net::sendmsg(stream, &slices, &mut SendAncillaryBuffer::default(), flags)
                .map_err(io::Error::from)
        });
        drop(slices);
        let mut n = match sent {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        // Skip what was written: whole parts, then into a partial one.
        while let Some(part) = parts.get_mut(first) {
            if part.len() > n {
                part.advance(n);
                break;
            }
            n -= part.len();
            first += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// Parts are written in order and whole, past `IOVECS_MAX` parts per
    /// call and past partial writes (the reader lags behind a full socket
    /// buffer), in one response or two.
    #[tokio::test]
    async fn gathered_parts_arrive_whole_and_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let (server, _) = listener.accept().await.unwrap();
        let mut expected = Vec::new();
        let mut parts = Vec::new();
        for i in 0..3000u32 {
            // Small parts, an empty one, and a few large ones.
            let len = match i % 500 {
                0 => 3 * 1024 * 1024,
                7 => 0,
                n => (n as usize % 97) + 1,
            };
            let part: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
            expected.extend_from_slice(&part);
            parts.push(Bytes::from(part));
        }
        let (first, rest) = parts.split_at(1500);
        write_gathered(&server, &mut first.to_vec()).await.unwrap();
        write_gathered(&server, &mut rest.to_vec()).await.unwrap();
        drop(server);
        let got = client.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes differ");
    }
}
