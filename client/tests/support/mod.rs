//! The real broker for the client's integration tests: a
//! `sluice_testkit::BrokerProcess` on a temporary data directory it owns,
//! restartable on the same directory and port. Which binary runs is
//! `sluice_testkit::sluice_bin`'s rule (`SLUICE_BIN`, else
//! `<target>/<profile>/sluice`).

#![allow(dead_code)]

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
}
