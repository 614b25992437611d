//! One TCP connection to one broker: framing, correlation ids, pipelined
//! requests, timeouts, and the ApiVersions handshake.
//!
//! ```text
//! caller ──call()──► [in-flight permit] ──frame──► writer task ──► socket
//!    ▲                                        │ push Pending (FIFO)
//!    └──── oneshot(response body) ◄── reader task ◄── socket
//! ```
//!
//! Kafka answers the requests of one connection in the order they were
//! sent, so pending requests are a FIFO: the reader pops the front and
//! checks that the correlation id matches (a mismatch means the stream is
//! broken, and the connection closes).
//!
//! Frames are written with `sluice_protocol::frame::frame_size_prefix` and
//! read with `sluice_protocol::frame::decode_frame`; headers and bodies are
//! kafka-protocol's generated codecs at the negotiated version, except
//! Produce: its body arrives as parts around the record batches
//! (`Connection::start_parts`) and goes out with one vectored write, so
//! the batches are never copied into the frame.
//!
//! # Invariants
//! - A request is pushed onto the pending FIFO before its bytes are
//!   written, so the reader always finds it.
//! - Once closed, a connection stays closed: every pending and later call
//!   fails with [`Error::Disconnected`]; the cluster replaces it.
//! - A request timeout closes the connection (as the Java client does):
//!   the stream may still carry the late response, and skipping it safely
//!   would need bookkeeping that a fresh connection makes unnecessary.
//!
//! # Limits
//! - In-flight requests: a semaphore of `in_flight` permits, each held
//!   until its response arrives. Frames queued for the writer:
//!   `WRITE_QUEUE_FRAMES` (`client/src/limits.rs`).
//! - Response frames above `RESPONSE_FRAME_BYTES_MAX` close the
//!   connection before any allocation. A response's whole announced size
//!   is reserved once its size prefix is in (as Kafka's `NetworkReceive`
//!   and librdkafka do): address space until its bytes arrive.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use sluice_protocol::error_code::{ErrorCode, ResponseError};
use sluice_protocol::frame::{decode_frame, frame_size_prefix, reserve_for_next_read};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result, protocol};
use crate::limits::{RESPONSE_FRAME_BYTES_MAX, WRITE_QUEUE_FRAMES};
use crate::versions::VersionTable;

/// What a connection needs to know from its owner's configuration.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// Sent in every request header.
    pub client_id: String,
    /// Requests outstanding at once; at least 1.
    pub in_flight: usize,
    /// How long [`Connection::call`] waits for a response.
    pub request_timeout: Duration,
    /// How long the TCP connect and the ApiVersions handshake may take.
    pub connect_timeout: Duration,
}

/// A request waiting for its response.
struct Pending {
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    reply: oneshot::Sender<Result<Bytes>>,
    _permit: OwnedSemaphorePermit,
}

struct Outgoing {
    frame: Bytes,
    /// More of the same frame, written after `frame` with one vectored
    /// write (Produce: the batches, which are never copied into `frame`).
    rest: Vec<Bytes>,
    pending: Option<Pending>,
}

/// The response of a request queued with [`Connection::start_parts`].
pub(crate) struct ResponseSlot {
    rx: oneshot::Receiver<Result<Bytes>>,
    api_key: ApiKey,
    version: i16,
}

/// State shared by the handle and its two tasks.
struct Shared {
    broker: String,
    pending: Mutex<VecDeque<Pending>>,
    closed: AtomicBool,
}

impl Shared {
    /// Marks the connection closed and fails every pending request.
    fn close(&self, reason: &str) {
        self.closed.store(true, Ordering::Release);
        let drained: Vec<Pending> = match self.pending.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(poisoned) => poisoned.into_inner().drain(..).collect(),
        };
        for p in drained {
            let _ = p.reply.send(Err(Error::Disconnected {
                broker: self.broker.clone(),
                reason: reason.to_owned(),
            }));
        }
    }

    fn push(&self, p: Pending) {
        match self.pending.lock() {
            Ok(mut q) => q.push_back(p),
            Err(poisoned) => poisoned.into_inner().push_back(p),
        }
    }

    fn pop(&self) -> Option<Pending> {
        match self.pending.lock() {
            Ok(mut q) => q.pop_front(),
            Err(poisoned) => poisoned.into_inner().pop_front(),
        }
    }
}

/// A live connection to one broker. Cheap to share (`Arc`); dropping the
/// last handle stops its tasks.
///
/// This is the one Kafka-protocol connection in Sluice: the client's
/// cluster uses it, and so does the broker's replica fetcher
/// (`sluice_broker::replica::fetcher`), which is why it is public.
pub struct Connection {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Outgoing>,
    in_flight: Arc<Semaphore>,
    next_correlation_id: AtomicI32,
    versions: VersionTable,
    options: ConnectionOptions,
    client_id: StrBytes,
    reader: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The writer ends when `tx` drops; the reader is parked on the
        // socket and must be stopped explicitly.
        self.reader.abort();
    }
}

impl Connection {
    /// Connects to `addr`, negotiates API versions, and returns the
    /// connection. `broker` names it in errors (`node 1 (host:port)`).
    pub async fn connect(addr: &str, broker: String, options: &ConnectionOptions) -> Result<Self> {
        let connect_error = |reason: String| Error::Connect {
            broker: broker.clone(),
            reason,
        };
        let stream = tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_error(format!("timed out after {:?}", options.connect_timeout)))?
            .map_err(|e| connect_error(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| connect_error(e.to_string()))?;
        let mut conn = Self::start(stream, broker.clone(), options.clone());
        let versions =
            tokio::time::timeout(options.connect_timeout, conn.negotiate_versions()).await;
        match versions {
            Ok(Ok(table)) => {
                conn.versions = table;
                Ok(conn)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(connect_error(format!(
                "no ApiVersions answer within {:?}",
                options.connect_timeout
            ))),
        }
    }

    fn start(stream: TcpStream, broker: String, options: ConnectionOptions) -> Self {
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared {
            broker,
            pending: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_FRAMES);
        tokio::spawn(write_loop(write, rx, Arc::clone(&shared)));
        let reader = tokio::spawn(read_loop(read, Arc::clone(&shared)));
        let client_id = StrBytes::from_string(options.client_id.clone());
        Self {
            shared,
            tx,
            in_flight: Arc::new(Semaphore::new(options.in_flight.max(1))),
            next_correlation_id: AtomicI32::new(1),
            versions: VersionTable::handshake(3),
            options,
            client_id,
            reader,
        }
    }

    /// ApiVersions at v3; if the broker does not speak v3 it answers with
    /// UNSUPPORTED_VERSION and its own range, and we retry at v0 (KIP-511).
    async fn negotiate_versions(&mut self) -> Result<VersionTable> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = self.call_at(&request, 3).await?;
        if response.error_code == ErrorCode::of(ResponseError::UnsupportedVersion).code() {
            response = self.call_at(&ApiVersionsRequest::default(), 0).await?;
        }
        Error::check(response.error_code, || {
            format!("ApiVersions from {}", self.shared.broker)
        })?;
        Ok(VersionTable::negotiate(&response.api_keys))
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.tx.is_closed()
    }

    /// The negotiated version of `api`, or an error naming it.
    pub fn version(&self, api: ApiKey) -> Result<i16> {
        self.versions
            .get(api)
            .ok_or_else(|| Error::UnsupportedVersion {
                api: api_name(api),
                broker: self.shared.broker.clone(),
            })
    }

    /// Sends `request` at the negotiated version and awaits its response.
    pub async fn call<R: Request>(&self, request: &R) -> Result<R::Response> {
        let version = self.version(api_key_of::<R>()?)?;
        self.call_at(request, version).await
    }

    /// Sends `request` at `version` and awaits its response.
    pub async fn call_at<R: Request>(&self, request: &R, version: i16) -> Result<R::Response> {
        self.call_with_timeout(request, version, self.options.request_timeout)
            .await
    }

    /// As [`Connection::call_at`] with its own timeout: for requests the
    /// broker may park longer than a normal request (JoinGroup waits for
    /// the whole group, up to the rebalance timeout).
    pub async fn call_with_timeout<R: Request>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let api_key = api_key_of::<R>()?;
        let body =
            match tokio::time::timeout(timeout, self.round_trip(request, api_key, version)).await {
                Ok(result) => result?,
                Err(_) => return Err(self.timed_out(api_key, timeout)),
            };
        self.decode_response(body, api_key, version)
    }

    /// Closes the connection after a request timed out, and says so.
    fn timed_out(&self, api_key: ApiKey, after: Duration) -> Error {
        self.shared.close("request timed out");
        Error::Timeout {
            api: api_name(api_key),
            broker: self.shared.broker.clone(),
            after,
        }
    }

    fn decode_response<T: Decodable>(
        &self,
        mut body: Bytes,
        api_key: ApiKey,
        version: i16,
    ) -> Result<T> {
        T::decode(&mut body, version).map_err(|e| {
            protocol(format!(
                "{} v{version} response from {} does not decode: {e}",
                api_name(api_key),
                self.shared.broker
            ))
        })
    }

    async fn round_trip<R: Request>(
        &self,
        request: &R,
        api_key: ApiKey,
        version: i16,
    ) -> Result<Bytes> {
        let response = self
            .queue_request(api_key, version, Vec::new(), |correlation_id| {
                self.encode(request, api_key, version, correlation_id)
            })
            .await?;
        response
            .await
            .map_err(|_| self.disconnected("connection task ended"))?
    }

    /// Takes an in-flight slot, numbers the request, encodes its frame
    /// (`encode` gets the correlation id; `rest` follows the frame) and
    /// queues it; returns where its response will arrive.
    async fn queue_request(
        &self,
        api_key: ApiKey,
        version: i16,
        rest: Vec<Bytes>,
        encode: impl FnOnce(i32) -> Result<Bytes>,
    ) -> Result<oneshot::Receiver<Result<Bytes>>> {
        let permit = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .map_err(|_| self.disconnected("connection shut down"))?;
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode(correlation_id)?;
        let (reply, response) = oneshot::channel();
        let pending = Pending {
            correlation_id,
            api_key,
            version,
            reply,
            _permit: permit,
        };
        self.enqueue(frame, rest, Some(pending)).await?;
        Ok(response)
    }

    /// Queues a request whose body is already encoded as `body` (parts in
    /// wire order), waiting for an in-flight slot first. Requests queued by
    /// one caller go on the wire in the order of its calls. Returns the
    /// slot its response will arrive in, or `None` when `expect_response`
    /// is false (Produce with acks=0).
    pub(crate) async fn start_parts(
        &self,
        api_key: ApiKey,
        version: i16,
        body: Vec<Bytes>,
        expect_response: bool,
    ) -> Result<Option<ResponseSlot>> {
        let body_len = body.iter().map(Bytes::len).sum();
        let header = |correlation_id| {
            self.encode_header(api_key, version, correlation_id, body_len, 0)
                .map(BytesMut::freeze)
        };
        if !expect_response {
            let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
            self.enqueue(header(correlation_id)?, body, None).await?;
            return Ok(None);
        }
        let rx = self.queue_request(api_key, version, body, header).await?;
        Ok(Some(ResponseSlot {
            rx,
            api_key,
            version,
        }))
    }

    /// Waits (up to the request timeout) for the response in `slot`.
    pub(crate) async fn finish<R: Decodable>(&self, slot: ResponseSlot) -> Result<R> {
        let ResponseSlot {
            rx,
            api_key,
            version,
        } = slot;
        let timeout = self.options.request_timeout;
        let body = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(self.disconnected("connection task ended")),
            Err(_) => return Err(self.timed_out(api_key, timeout)),
        };
        self.decode_response(body, api_key, version)
    }

    async fn enqueue(
        &self,
        frame: Bytes,
        rest: Vec<Bytes>,
        pending: Option<Pending>,
    ) -> Result<()> {
        if self.is_closed() {
            return Err(self.disconnected("connection closed"));
        }
        self.tx
            .send(Outgoing {
                frame,
                rest,
                pending,
            })
            .await
            .map_err(|_| self.disconnected("connection closed"))
    }

    fn encode<R: Request>(
        &self,
        request: &R,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<Bytes> {
        let body_len = request
            .compute_size(version)
            .map_err(|e| self.encode_error(api_key, version, &e))?;
        let mut frame = self.encode_header(api_key, version, correlation_id, body_len, body_len)?;
        request
            .encode(&mut frame, version)
            .map_err(|e| self.encode_error(api_key, version, &e))?;
        Ok(frame.freeze())
    }

    fn encode_error(&self, api_key: ApiKey, version: i16, e: &dyn std::fmt::Display) -> Error {
        protocol(format!(
            "{} v{version} request does not encode: {e}",
            api_name(api_key)
        ))
    }

    /// The size prefix (for a body of `body_len` bytes) and the request
    /// header, in a buffer with room for `reserve` more bytes.
    fn encode_header(
        &self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body_len: usize,
        reserve: usize,
    ) -> Result<BytesMut> {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = api_key.request_header_version(version);
        let header_len = header
            .compute_size(header_version)
            .map_err(|e| self.encode_error(api_key, version, &e))?;
        let mut frame = BytesMut::with_capacity(4 + header_len + reserve);
        frame.extend_from_slice(&frame_size_prefix(header_len + body_len)?);
        header
            .encode(&mut frame, header_version)
            .map_err(|e| self.encode_error(api_key, version, &e))?;
        Ok(frame)
    }

    fn disconnected(&self, reason: &str) -> Error {
        Error::Disconnected {
            broker: self.shared.broker.clone(),
            reason: reason.to_owned(),
        }
    }
}

fn api_key_of<R: Request>() -> Result<ApiKey> {
    ApiKey::try_from(R::KEY).map_err(|()| protocol(format!("unknown api key {}", R::KEY)))
}

/// A short name for `api` in messages (`Produce`).
pub(crate) fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::DeleteGroups => "DeleteGroups",
        _ => "request",
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    while let Some(out) = rx.recv().await {
        if shared.closed.load(Ordering::Acquire) {
            break;
        }
        if let Some(p) = out.pending {
            shared.push(p);
        }
        if let Err(e) = write_frame(&mut write, out.frame, out.rest).await {
            shared.close(&format!("write failed: {e}"));
            break;
        }
    }
    let _ = write.shutdown().await;
    shared.close("connection dropped");
}

/// Writes `first` then `rest`, as few syscalls as the socket allows.
async fn write_frame(
    write: &mut OwnedWriteHalf,
    first: Bytes,
    rest: Vec<Bytes>,
) -> std::io::Result<()> {
    if rest.is_empty() {
        return write.write_all(&first).await;
    }
    let mut parts = rest;
    parts.insert(0, first);
    parts.retain(|p| !p.is_empty());
    let mut at = 0;
    while at < parts.len() {
        let slices: Vec<std::io::IoSlice<'_>> = parts
            .iter()
            .skip(at)
            .take(IOV_MAX)
            .map(|p| std::io::IoSlice::new(p))
            .collect();
        let mut written = write.write_vectored(&slices).await?;
        drop(slices);
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let Some(part) = parts.get_mut(at) else {
                break;
            };
            if written >= part.len() {
                written -= part.len();
                at += 1;
            } else {
                bytes::Buf::advance(part, written);
                written = 0;
            }
        }
    }
    Ok(())
}

/// Most slices one `writev` takes (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

async fn read_loop(mut read: OwnedReadHalf, shared: Arc<Shared>) {
    let reason = read_responses(&mut read, &shared).await;
    shared.close(&reason);
}

/// Reads frames and answers pending requests until the stream ends or
/// breaks; returns why.
async fn read_responses(read: &mut OwnedReadHalf, shared: &Shared) -> String {
    let mut buf = BytesMut::new();
    loop {
        loop {
            let frame = match decode_frame(&mut buf, RESPONSE_FRAME_BYTES_MAX) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return format!("bad response frame: {e}"),
            };
            if let Err(reason) = deliver(frame, shared) {
                return reason;
            }
        }
        // A response's whole size is reserved once its prefix is in, so
        // its bytes are read into one allocation and never moved: record
        // bytes are copied once, by the read (a follower's fetch then
        // copies them into its segment, and nothing in between).
        if let Err(e) = reserve_for_next_read(&mut buf, RESPONSE_FRAME_BYTES_MAX, 0) {
            return format!("bad response frame: {e}");
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => return "closed by the broker".to_owned(),
            Ok(_) => {}
            Err(e) => return format!("read failed: {e}"),
        }
    }
}

/// Hands one response frame to the request at the front of the FIFO.
fn deliver(mut frame: Bytes, shared: &Shared) -> std::result::Result<(), String> {
    let Some(pending) = shared.pop() else {
        return Err("response with no request in flight".to_owned());
    };
    // ApiVersions always answers with header v0 (KIP-511).
    let header_version = match pending.api_key {
        ApiKey::ApiVersions => 0,
        key => key.response_header_version(pending.version),
    };
    let header = ResponseHeader::decode(&mut frame, header_version)
        .map_err(|e| format!("bad response header: {e}"))?;
    if header.correlation_id != pending.correlation_id {
        let reason = format!(
            "correlation id {} in the response, {} expected",
            header.correlation_id, pending.correlation_id
        );
        let _ = pending.reply.send(Err(protocol(&reason)));
        return Err(reason);
    }
    // The caller may have timed out and gone; that is not our error.
    let _ = pending.reply.send(Ok(frame));
    Ok(())
}
