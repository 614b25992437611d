//! The real `sluice` broker for the bench tests: a
//! `sluice_testkit::BrokerProcess` started with a config file. Which binary
//! runs is `sluice_testkit::sluice_bin`'s rule (`SLUICE_BIN`, else
//! `<target>/<profile>/sluice`, which `cargo test --workspace` builds; with
//! `-p sluice-bench` alone, `cargo build -p sluice-broker --bin sluice`
//! first, same profile and target directory).

use std::path::Path;

use sluice_testkit::{BrokerProcess, sluice_bin};

/// A `sluice serve` child process, killed by PID when dropped.
pub struct TestBroker {
    process: BrokerProcess,
}

impl TestBroker {
    /// Starts the broker on `data_dir` with `config` (TOML text).
    pub fn start(data_dir: &Path, config: &str) -> anyhow::Result<Self> {
        let config_path = data_dir.join("sluice.toml");
        std::fs::write(&config_path, config)?;
        let config_arg = config_path.to_string_lossy();
        let process = BrokerProcess::start(
            &sluice_bin()?,
            &data_dir.join("data"),
            0,
            &["--config", &config_arg],
        )?;
        Ok(Self { process })
    }

    pub fn bootstrap(&self) -> String {
        self.process.bootstrap()
    }

    /// Log lines so far (for failure messages).
    pub fn log_lines(&self) -> Vec<String> {
        self.process.log_so_far()
    }
}
