//! Starts the real `sluice` broker for the bench tests (the pattern of
//! `broker/tests/support/mod.rs`): an ephemeral port on 127.0.0.1, the
//! `listening on` line awaited within [`START_TIMEOUT`], stderr drained for
//! the life of the process, and the process killed by PID when dropped.
//!
//! The binary is found, in order, at:
//! 1. `$SLUICE_BIN`;
//! 2. beside this test's own target directory and profile
//!    (`<target>/<profile>/sluice`, which honours `CARGO_TARGET_DIR`);
//! 3. `../target/<profile>/sluice` relative to `bench/`.
//!
//! Cargo does not build another package's binary for a test, so build it
//! first: `cargo build -p sluice-broker --bin sluice` (same profile and
//! target directory as the test).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A `sluice serve` child process.
pub struct TestBroker {
    child: Child,
    pub port: u16,
    log: mpsc::Receiver<String>,
}

/// The `sluice` binary to run.
pub fn sluice_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SLUICE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    // <target>/<profile>/deps/<this test> → <target>/<profile>/sluice
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.join("sluice"));
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(profile)
            .join("sluice"),
    );
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no sluice binary at {candidates:?}: build it first \
                 (cargo build -p sluice-broker --bin sluice) or set SLUICE_BIN"
            )
        })
}

impl TestBroker {
    /// Starts the broker on `data_dir` with `config` (TOML text).
    pub fn start(data_dir: &Path, config: &str) -> anyhow::Result<Self> {
        let config_path = data_dir.join("sluice.toml");
        std::fs::write(&config_path, config)?;
        let mut child = Command::new(sluice_bin()?)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(data_dir.join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .env("SLUICE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the sluice binary")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (tx, rx) = mpsc::channel();
        // Drains stderr so the broker never blocks on a full pipe.
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
            log: rx,
        };
        broker.port = broker.wait_for_port()?;
        Ok(broker)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_for_port(&mut self) -> anyhow::Result<u16> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "no `listening on` line within {START_TIMEOUT:?}:\n{}",
                    seen.join("\n")
                );
            }
            match self.log.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(port) = line
                        .split("listening on 127.0.0.1:")
                        .nth(1)
                        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                        .and_then(|p| p.parse().ok())
                    {
                        return Ok(port);
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.try_wait()? {
                        bail!("sluice exited with {status}:\n{}", seen.join("\n"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("sluice closed stderr:\n{}", seen.join("\n"));
                }
            }
        }
    }

    /// Log lines so far (for failure messages).
    pub fn log_lines(&self) -> Vec<String> {
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
