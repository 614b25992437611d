//! Helpers for integration tests that run the real `sluice` binary: start
//! it on an ephemeral port, talk Kafka's wire protocol to it with
//! kafka-protocol's messages, stop it with SIGTERM, start it again on the
//! same data directory.
//!
//! Every wait is bounded: the broker must print its `listening on` line
//! within [`START_TIMEOUT`], answer each request within [`IO_TIMEOUT`] and
//! exit within [`STOP_TIMEOUT`] of SIGTERM; a [`TestBroker`] dropped while
//! its process runs kills it by PID, so a failing test leaves no broker
//! behind.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use sluice_protocol::CompressionType;
use sluice_protocol::batch_builder::{self, ProducerIdentity};

pub const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest response frame a test accepts (guards against reading garbage
/// as a length).
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A `sluice serve` child process.
pub struct TestBroker {
    child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    /// The broker's stderr, line by line, kept for failure messages.
    log: mpsc::Receiver<String>,
}

impl TestBroker {
    /// Starts `sluice serve` on `data_dir` with an ephemeral port and waits
    /// for its `listening on` line.
    pub fn start(data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(data_dir, &[])
    }

    /// As [`TestBroker::start`], with extra `serve` arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("SLUICE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the sluice binary")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (lines_tx, lines_rx) = mpsc::channel();
        // Drains stderr for the life of the process so the broker never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut broker = Self {
            child,
            port: 0,
            data_dir: data_dir.to_path_buf(),
            log: lines_rx,
        };
        broker.port = broker.wait_for_port()?;
        Ok(broker)
    }

    fn wait_for_port(&mut self) -> anyhow::Result<u16> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "no `listening on` line within {START_TIMEOUT:?}; stderr:\n{}",
                    seen.join("\n")
                );
            }
            match self.log.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(port) = parse_listening_port(&line) {
                        return Ok(port);
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.try_wait()? {
                        bail!(
                            "sluice exited with {status} before listening; stderr:\n{}",
                            seen.join("\n")
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!(
                        "sluice closed stderr before listening; stderr:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new connection to the broker.
    pub fn client(&self) -> anyhow::Result<Client> {
        Client::connect(self.port)
    }

    /// SIGTERM (a clean shutdown), then waits for the exit.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.pid());
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("sluice did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stderr lines received so far (for failure messages).
    pub fn log_so_far(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill sends SIGKILL to this child's PID only.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The port of a `listening on 127.0.0.1:<port>` log line.
pub fn parse_listening_port(line: &str) -> Option<u16> {
    let rest = line.split("listening on 127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
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
        let mut response = self.read_frame()?;
        // ApiVersions always answers with header v0 (KIP-511).
        let header_version = if api_key == ApiKey::ApiVersions {
            0
        } else {
            api_key.response_header_version(version)
        };
        let header = ResponseHeader::decode(&mut response, header_version)?;
        if header.correlation_id != self.correlation_id {
            bail!(
                "correlation id {} in the response, {} expected",
                header.correlation_id,
                self.correlation_id
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
