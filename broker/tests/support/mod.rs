//! Helpers for integration tests that run the real `sluice` binary: start
//! it on an ephemeral port, talk Kafka's wire protocol to it with
//! kafka-protocol's messages, stop it with SIGTERM, start it again on the
//! same data directory.
//!
//! Every wait is bounded: the process side (start, SIGTERM, kill on drop)
//! is `sluice_testkit`'s; each request must be answered within
//! [`IO_TIMEOUT`].

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use sluice_protocol::CompressionType;
use sluice_protocol::batch_builder::{self, ProducerIdentity};

use sluice_testkit::BrokerProcess;

pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest response frame a test accepts (guards against reading garbage
/// as a length).
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A `sluice serve` child process (this crate's own binary) on a data
/// directory the test owns; see `sluice_testkit::BrokerProcess`.
pub struct TestBroker {
    process: BrokerProcess,
    pub port: u16,
    pub data_dir: PathBuf,
}

impl TestBroker {
    /// Starts `sluice serve` on `data_dir` with an ephemeral port and waits
    /// for its `listening on` line.
    pub fn start(data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(data_dir, &[])
    }

    /// As [`TestBroker::start`], with extra `serve` arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let bin = Path::new(env!("CARGO_BIN_EXE_sluice"));
        let process = BrokerProcess::start(bin, data_dir, 0, extra)?;
        Ok(Self {
            port: process.port(),
            data_dir: data_dir.to_path_buf(),
            process,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// A new connection to the broker.
    pub fn client(&self) -> anyhow::Result<Client> {
        Client::connect(self.port)
    }

    /// SIGTERM (a clean shutdown), then waits for the exit.
    pub fn stop(self) -> anyhow::Result<ExitStatus> {
        self.process.stop()
    }

    /// Stderr lines logged before the broker listened (its start).
    pub fn startup_log(&self) -> &[String] {
        self.process.startup_log()
    }

    /// Stderr lines received so far (for failure messages).
    pub fn log_so_far(&self) -> Vec<String> {
        self.process.log_so_far()
    }
}

/// One connection speaking the Kafka wire protocol, blocking, with
/// timeouts on every read and write.
pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(port: u16) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("cannot connect to 127.0.0.1:{port}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            correlation_id: 0,
        })
    }

    /// Sends `request` at `version` and decodes the response.
    pub fn call<Q: Request>(&mut self, version: i16, request: &Q) -> anyhow::Result<Q::Response> {
        let api_key =
            ApiKey::try_from(Q::KEY).map_err(|()| anyhow::anyhow!("unknown key {}", Q::KEY))?;
        let mut body = BytesMut::new();
        request
            .encode(&mut body, version)
            .with_context(|| format!("{api_key:?} v{version} request does not encode"))?;
        let mut response = self.call_raw(api_key, version, &body)?;
        let decoded = Q::Response::decode(&mut response, version)
            .with_context(|| format!("{api_key:?} v{version} response does not decode"))?;
        if response.has_remaining() {
            bail!(
                "{api_key:?} v{version} response has {} trailing bytes",
                response.remaining()
            );
        }
        Ok(decoded)
    }

    /// Sends a request whose body is already encoded and returns the
    /// response body (after the response header, which is checked).
    pub fn call_raw(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &[u8],
    ) -> anyhow::Result<Bytes> {
        let correlation_id = self.send_raw(api_key, version, body)?;
        self.receive_raw(api_key, version, correlation_id)
    }

    /// Sends a request without waiting for its response (pipelining);
    /// returns its correlation id for [`Client::receive_raw`].
    pub fn send_raw(&mut self, api_key: ApiKey, version: i16, body: &[u8]) -> anyhow::Result<i32> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sluice-admin-test")));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header.encode(&mut frame, api_key.request_header_version(version))?;
        frame.put_slice(body);
        let size = i32::try_from(frame.len() - 4)?;
        frame
            .get_mut(..4)
            .context("frame shorter than its prefix")?
            .copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame)?;
        Ok(self.correlation_id)
    }

    /// Reads the next response, which must answer `correlation_id`, and
    /// returns its body.
    pub fn receive_raw(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> anyhow::Result<Bytes> {
        let mut response = self.read_frame()?;
        // ApiVersions always answers with header v0 (KIP-511).
        let header_version = if api_key == ApiKey::ApiVersions {
            0
        } else {
            api_key.response_header_version(version)
        };
        let header = ResponseHeader::decode(&mut response, header_version)?;
        if header.correlation_id != correlation_id {
            bail!(
                "correlation id {} in the response, {correlation_id} expected",
                header.correlation_id,
            );
        }
        Ok(response)
    }

    fn read_frame(&mut self) -> anyhow::Result<Bytes> {
        let mut prefix = [0u8; 4];
        self.stream
            .read_exact(&mut prefix)
            .context("no response (connection closed or timed out)")?;
        let size = usize::try_from(i32::from_be_bytes(prefix))?;
        if size > RESPONSE_BYTES_MAX {
            bail!("response frame of {size} bytes");
        }
        let mut buf = vec![0u8; size];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// Whether the broker closed the connection (a read returns EOF
    /// within the I/O timeout).
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
    }
}

/// One RecordBatch v2 holding `count` small records, uncompressed.
pub fn record_batch(count: usize) -> anyhow::Result<Bytes> {
    let mut records: Vec<_> = (0..count)
        .map(|i| {
            let value = Bytes::from(format!("value-{i}"));
            batch_builder::record(1_700_000_000_000, None, Some(value), [])
        })
        .collect();
    Ok(batch_builder::encode_batch(
        &mut records,
        CompressionType::None,
        ProducerIdentity::NONE,
        -1,
    )?)
}

/// A Produce request of one [`record_batch`] of `count` records to
/// `topic`-`partition`, with `acks` and a 10 s timeout.
pub fn produce_request(
    topic: &str,
    partition: i32,
    count: usize,
    acks: i16,
) -> anyhow::Result<ProduceRequest> {
    Ok(ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(record_batch(count)?)),
                ]),
        ]))
}
