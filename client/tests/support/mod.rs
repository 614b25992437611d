//! A real `sluice serve` child process for the client's integration tests:
//! ephemeral port parsed from its `listening on` line, killed by PID on
//! drop.
//!
//! # Which binary
//! `SLUICE_BIN` when set (`tests/run-all`, CI, or by hand:
//! `SLUICE_BIN=$PWD/target/release/sluice cargo test -p sluice-client`);
//! otherwise `sluice` beside the test executable's profile directory
//! (`<target>/<profile>/sluice`), which `cargo test --workspace` builds
//! because the broker's own tests need it. With `-p sluice-client` alone,
//! build it first: `cargo build --bin sluice`. A missing binary is a
//! failure with that advice, never a skip.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `sluice` binary to run.
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

/// A `sluice serve` child process on a temporary data directory.
pub struct TestBroker {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    log: mpsc::Receiver<String>,
}

impl TestBroker {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts with extra `serve` arguments.
    pub fn start_with(extra: &[&str]) -> anyhow::Result<Self> {
        Self::spawn(tempfile::tempdir()?, 0, extra)
    }

    /// SIGKILLs the broker and starts it again on the same port and data
    /// directory (a crash and a restart, as clients see it).
    pub fn restart(self) -> anyhow::Result<Self> {
        let port = self.port;
        let mut this = self;
        this.kill();
        let dir = std::mem::replace(&mut this._dir, tempfile::tempdir()?);
        drop(this);
        Self::spawn(dir, port, &[])
    }

    fn spawn(dir: tempfile::TempDir, port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(sluice_bin()?)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("SLUICE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the sluice binary")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut broker = Self {
            child,
            port: 0,
            _dir: dir,
            log: rx,
        };
        broker.port = broker.wait_for_port()?;
        Ok(broker)
    }

    fn wait_for_port(&mut self) -> anyhow::Result<u16> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.log.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(port) = parse_listening_port(&line) {
                        return Ok(port);
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.try_wait()? {
                        bail!("sluice exited with {status}: {}", seen.join("\n"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("sluice closed stderr: {}", seen.join("\n"))
                }
            }
        }
        bail!(
            "no `listening on` line within {START_TIMEOUT:?}: {}",
            seen.join("\n")
        )
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the broker now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn parse_listening_port(line: &str) -> Option<u16> {
    let rest = line.split("listening on 127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A bootstrap address where nothing listens (a port just released).
pub fn dead_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    Ok(format!("127.0.0.1:{port}"))
}
