//! The real broker for the client's integration tests: a
//! `sluice_testkit::BrokerProcess` on a temporary data directory it owns,
//! restartable on the same directory and port. Which binary runs is
//! `sluice_testkit::sluice_bin`'s rule (`SLUICE_BIN`, else
//! `<target>/<profile>/sluice`).

#![allow(dead_code)]

use std::time::{Duration, Instant};

use anyhow::Context;

use sluice_client::{ClientConfig, Consumer, ConsumerConfig, Offset};
use sluice_testkit::{BrokerProcess, sluice_bin};

/// A `sluice serve` child process on a temporary data directory.
pub struct TestBroker {
    // Field order matters: the process is killed (dropped) before its data
    // directory is removed.
    process: BrokerProcess,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl TestBroker {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&[])
    }

    /// As [`TestBroker::start`], with extra `serve` arguments.
    pub fn start_with(extra: &[&str]) -> anyhow::Result<Self> {
        Self::spawn(tempfile::tempdir()?, 0, extra)
    }

    /// Kills the broker (SIGKILL, a crash) and starts it again on the same
    /// data directory and port.
    pub fn restart(self) -> anyhow::Result<Self> {
        let Self {
            mut process,
            port,
            dir,
        } = self;
        process.kill();
        drop(process);
        Self::spawn(dir, port, &[])
    }

    fn spawn(dir: tempfile::TempDir, port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let process = BrokerProcess::start(&sluice_bin()?, dir.path(), port, extra)?;
        Ok(Self {
            port: process.port(),
            process,
            dir,
        })
    }

    pub fn bootstrap(&self) -> String {
        self.process.bootstrap()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// The sum of every series of the counter `name` whose labels contain
    /// `label` (`api="Produce"`), read from the broker's admin endpoint
    /// (`GET /metrics`, Prometheus text). Its port is the one the broker
    /// logged at start (`admin endpoint serving http://127.0.0.1:<port>`).
    pub fn counter_sum(&self, name: &str, label: &str) -> anyhow::Result<u64> {
        use std::io::{Read, Write};
        let port = self
            .process
            .startup_log()
            .iter()
            .find_map(|line| {
                let rest = line
                    .split("admin endpoint serving http://127.0.0.1:")
                    .nth(1)?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u16>().ok()
            })
            .context("no `admin endpoint serving` line in the broker's start-up log")?;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .context("no HTTP body")?;
        let prefix = format!("{name}{{");
        let mut sum = 0u64;
        for line in body.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            if labels.split(',').any(|l| l == label) {
                sum += value.trim().parse::<f64>().context("counter value")? as u64;
            }
        }
        Ok(sum)
    }
}

/// Reads `topic`/`partition` from the beginning until `n` records (or a
/// deadline) and returns the values with their offsets.
pub async fn read_all(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    n: usize,
) -> anyhow::Result<Vec<(i64, Vec<u8>)>> {
    let mut consumer = Consumer::connect(ConsumerConfig::new(ClientConfig::new(bootstrap))).await?;
    consumer.assign(topic, &[partition]).await?;
    consumer.seek(topic, partition, Offset::Beginning).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::with_capacity(n);
    while out.len() < n && Instant::now() < deadline {
        for r in consumer.poll().await? {
            out.push((r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()));
        }
    }
    // Anything beyond `n` would be a duplicate: give it a moment to show.
    let extra = tokio::time::timeout(Duration::from_millis(500), consumer.poll()).await;
    if let Ok(Ok(records)) = extra {
        out.extend(
            records
                .into_iter()
                .map(|r| (r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default())),
        );
    }
    Ok(out)
}
