//! `sluice-testkit`: the real `sluice serve` as a child process, for the
//! integration tests of every crate (broker, client, bench). A dev-dependency
//! only; nothing ships with it.
//!
//! # Which binary
//! [`sluice_bin`]: `SLUICE_BIN` when set (`tests/run-all`, CI, or by hand:
//! `SLUICE_BIN=$PWD/target/release/sluice cargo test -p sluice-client`);
//! otherwise `sluice` in the test executable's profile directory
//! (`<target>/<profile>/sluice`), which `cargo test --workspace` builds
//! because the broker's own tests need it. With `-p <crate>` alone, build
//! it first: `cargo build --bin sluice`. A missing binary is a failure with
//! that advice, never a skip.
//!
//! # Invariants
//! - A started broker listens on 127.0.0.1 only, on the port its
//!   `listening on 127.0.0.1:<port>` log line names.
//! - Its stderr is drained for its whole life (it never blocks on a full
//!   pipe), and dropping a [`BrokerProcess`] kills it by PID (SIGKILL), so
//!   a failing test leaves no broker behind.
//!
//! # Limits
//! - [`START_TIMEOUT`] to log `listening on`; [`STOP_TIMEOUT`] to exit
//!   after SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a broker may take to log `listening on`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a broker may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The `sluice` binary to run (see the crate docs).
pub fn sluice_bin() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SLUICE_BIN") {
        return Ok(PathBuf::from(path));
    }
    // <target>/<profile>/deps/<test-binary>  →  <target>/<profile>/sluice
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no profile directory")?;
    let bin = profile_dir.join("sluice");
    if !bin.is_file() {
        bail!(
            "{} does not exist: build it with `cargo build --bin sluice` (same profile and \
             target dir) or set SLUICE_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running `sluice serve` child process.
pub struct BrokerProcess {
    child: Child,
    port: u16,
    data_dir: PathBuf,
    log: mpsc::Receiver<String>,
    /// Stderr lines before `listening on` (what the start logged).
    startup_log: Vec<String>,
}

impl BrokerProcess {
    /// Starts `bin serve --data-dir data_dir --listen 127.0.0.1:port`
    /// (`port` 0 picks a free one) with `extra` arguments, and waits for its
    /// `listening on` line.
    pub fn start(bin: &Path, data_dir: &Path, port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let mut broker = Self::spawn(bin, data_dir, port, extra)?;
        broker.port = broker.wait_for_port()?;
        Ok(broker)
    }

    /// Starts the process like [`Self::start`] without waiting for it to
    /// listen: a cluster node listens only once a quorum of voters is up,
    /// so a cluster's nodes are spawned first and waited for after.
    pub fn spawn(bin: &Path, data_dir: &Path, port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("SLUICE_LOG", "info")
            // Many brokers run at once in tests: each admin endpoint takes
            // a free port instead of the default 9644 (a flag in `extra`
            // still wins).
            .env("SLUICE_ADMIN_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            port: 0,
            data_dir: data_dir.to_path_buf(),
            log,
            startup_log: Vec::new(),
        })
    }

    /// Waits for the `listening on` line of a [`Self::spawn`]ed broker.
    pub fn wait_ready(&mut self) -> anyhow::Result<()> {
        self.port = self.wait_for_port()?;
        Ok(())
    }

    fn wait_for_port(&mut self) -> anyhow::Result<u16> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.log.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(port) = parse_listening_port(&line) {
                        self.startup_log = seen;
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
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!(
                    "sluice closed stderr before listening; stderr:\n{}",
                    seen.join("\n")
                ),
            }
        }
        bail!(
            "no `listening on` line within {START_TIMEOUT:?}; stderr:\n{}",
            seen.join("\n")
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Sends `signal` (a `kill` name: `STOP`, `CONT`, `TERM`) to this
    /// process's PID only.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -{signal} {} failed: {status}", self.pid());
        }
        Ok(())
    }

    /// SIGTERM (a clean shutdown), then waits for the exit.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        self.signal("TERM")?;
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

    /// SIGKILL (a crash), then reaps the process.
    pub fn kill(&mut self) {
        // Child::kill sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stderr lines received so far (for failure messages).
    pub fn startup_log(&self) -> &[String] {
        &self.startup_log
    }

    pub fn log_so_far(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

pub mod cluster;

/// The port of a `listening on 127.0.0.1:<port>` log line.
pub fn parse_listening_port(line: &str) -> Option<u16> {
    let rest = line.split("listening on 127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A loopback address where nothing listens (for "broker down" tests).
pub fn dead_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    Ok(format!("127.0.0.1:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_port_from_a_log_line() {
        let line = "2026-11-23T21:33:47Z INFO sluice_broker::server: listening on 127.0.0.1:19092 node_id=1";
        assert_eq!(parse_listening_port(line), Some(19092));
        assert_eq!(parse_listening_port("listening on 0.0.0.0:1"), None);
    }
}
