//! One client connection: read frames, dispatch them in order, write the
//! replies in the same order.
//!
//! ```text
//! reader (this task)                         writer task
//!   read bytes ─► frame ─► memory permit       await each reply in order
//!   ─► dispatch (appends happen here, in       ─► write bytes / sendfile
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
//! copies: decoding slices the frame). Fetch: record bytes go from the page
//! cache to the socket with `sendfile`, never entering user space; only the
//! response head is encoded in memory.
//!
//! # Limits
//! - A frame above `socket.request.max.bytes` closes the connection before
//!   its body is read or allocated.
//! - [`INFLIGHT_REQUESTS_MAX`] replies may be pending; the reader stops
//!   reading (TCP back-pressure) beyond that.
//! - Every frame holds permits of the broker-wide `queued.max.request.bytes`
//!   semaphore until its reply is written.
//! - An idle connection (no request, nothing pending) closes after
//!   `connections.max.idle.ms`.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::broker::Broker;
use crate::dispatch;
use crate::response::{FramePart, Reply, ResponseFrame};

/// Replies a connection may have pending before it stops reading.
pub const INFLIGHT_REQUESTS_MAX: usize = 32;

const READ_CHUNK_BYTES: usize = 64 * 1024;

/// What the writer task receives, in request order.
struct Pending {
    reply: Reply,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Serves one connection until the peer closes, a protocol error, idle
/// timeout or broker shutdown.
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
    let stream = Arc::new(stream);
    let (tx, rx) = mpsc::channel(INFLIGHT_REQUESTS_MAX);
    let writer = tokio::spawn(write_replies(Arc::clone(&stream), rx));
    let reason = tokio::select! {
        r = read_requests(&broker, &stream, &memory, &tx, &peer_host) => r,
        _ = shutdown.wait_for(|stop| *stop) => "broker shutting down".to_string(),
    };
    tracing::debug!(%peer, %reason, "connection closing");
    drop(tx);
    // Let every queued reply go out (bounded by their own timeouts).
    if let Ok(Err(e)) = writer.await {
        tracing::debug!(%peer, error = %e, "connection write failed");
    }
}

/// Reads and dispatches requests; returns why it stopped.
async fn read_requests(
    broker: &Arc<Broker>,
    stream: &TcpStream,
    memory: &Arc<Semaphore>,
    tx: &mpsc::Sender<Pending>,
    peer_host: &str,
) -> String {
    let max_frame = broker.config().socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config().connections_max_idle_ms);
    let memory_budget = broker.memory_budget();
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        let frame = match next_frame(stream, &mut buf, max_frame, idle, memory, memory_budget).await
        {
            Ok(Some(frame)) => frame,
            Ok(None) => return "peer closed".to_string(),
            Err(e) => return e,
        };
        let (frame, permit) = frame;
        let reply = dispatch::dispatch(broker, frame, peer_host).await;
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

/// Reads until one whole frame is buffered; returns its bytes (size prefix
/// removed) with its memory permit, or `None` on a clean close between
/// frames.
async fn next_frame(
    stream: &TcpStream,
    buf: &mut BytesMut,
    max_frame: usize,
    idle: Duration,
    memory: &Arc<Semaphore>,
    memory_budget: usize,
) -> Result<Option<(Bytes, Option<OwnedSemaphorePermit>)>, String> {
    let mut permit: Option<OwnedSemaphorePermit> = None;
    loop {
        if buf.len() >= 4 {
            let prefix: [u8; 4] = buf
                .get(..4)
                .and_then(|p| p.try_into().ok())
                .unwrap_or_default();
            let size = i32::from_be_bytes(prefix);
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= max_frame)
                .ok_or_else(|| format!("frame size {size} outside 0..={max_frame}"))?;
            if permit.is_none() {
                // Back-pressure: wait for memory before buffering the body.
                // A frame as large as the whole budget still gets through,
                // alone: it never waits for more permits than exist.
                let n = size.clamp(1, memory_budget);
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                permit = Some(
                    Arc::clone(memory)
                        .acquire_many_owned(n)
                        .await
                        .map_err(|_| "memory semaphore closed".to_string())?,
                );
            }
            if buf.len() >= 4 + size {
                buf.advance(4);
                let frame = buf.split_to(size).freeze();
                return Ok(Some((frame, permit)));
            }
            buf.reserve(4 + size - buf.len());
        } else {
            buf.reserve(READ_CHUNK_BYTES);
        }
        match tokio::time::timeout(idle, read_some(stream, buf)).await {
            Err(_) => return Err("idle timeout".to_string()),
            Ok(Err(e)) => return Err(format!("read failed: {e}")),
            Ok(Ok(0)) if buf.is_empty() => return Ok(None),
            Ok(Ok(0)) => return Err("peer closed mid-frame".to_string()),
            Ok(Ok(_)) => {}
        }
    }
}

async fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read_buf(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes replies in request order until the reader is done and every
/// queued reply has gone out.
async fn write_replies(stream: Arc<TcpStream>, mut rx: mpsc::Receiver<Pending>) -> io::Result<()> {
    while let Some(pending) = rx.recv().await {
        let frame = match pending.reply {
            Reply::Now(frame) => frame,
            Reply::Later(deferred) => deferred
                .await
                .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))?,
            Reply::Nothing | Reply::Close(_) => continue,
        };
        write_frame(&stream, frame).await?;
    }
    Ok(())
}

async fn write_frame(stream: &TcpStream, frame: ResponseFrame) -> io::Result<()> {
    match frame {
        ResponseFrame::Encoded(bytes) => write_bytes(stream, bytes).await,
        ResponseFrame::Parts(parts) => {
            for part in parts {
                match part {
                    FramePart::Bytes(bytes) => write_bytes(stream, bytes).await?,
                    FramePart::Region(region) => send_region(stream, &region).await?,
                }
            }
            Ok(())
        }
    }
}

async fn write_bytes(stream: &TcpStream, mut bytes: Bytes) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(&bytes) {
            Ok(n) => bytes.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends a segment region with `sendfile`: page cache → socket, no copy
/// through user space.
///
/// A region shorter on disk than promised (the segment was truncated under
/// us) cannot be padded without lying to the client: the connection fails
/// and the client retries.
async fn send_region(stream: &TcpStream, region: &sluice_storage::FileRegion) -> io::Result<()> {
    let mut offset = region.position();
    let end = offset + region.len();
    while offset < end {
        stream.writable().await?;
        let remaining = usize::try_from(end - offset).unwrap_or(usize::MAX);
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream.as_fd(), region.file(), Some(&mut offset), remaining)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended inside a fetch region",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
