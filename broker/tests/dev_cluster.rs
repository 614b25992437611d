//! `sluice dev-cluster --nodes 3` as a user runs it: the command prints the
//! bootstrap string once all three nodes answer; `sluice topic create`,
//! `produce` and `consume` work through it, with the partitions' leaders
//! spread over the three nodes; SIGINT stops it and every node process is
//! gone; running it again on the same folder brings the same cluster back
//! with its data, and SIGTERM stops that one. Every node ends up with one
//! cluster id in its `meta.properties`, agreed through the metadata log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;

/// Start (three elections' worth of nodes on a loaded machine) and stop.
const PATIENCE: Duration = Duration::from_secs(90);

/// A running `sluice dev-cluster`; dropping it SIGKILLs the command and
/// the nodes it printed, by PID, so a failing test leaves nothing behind.
struct DevCluster {
    child: Child,
    stderr_path: PathBuf,
    bootstrap: String,
    node_pids: Vec<i32>,
}

impl DevCluster {
    fn start(dir: &Path, run: u32) -> Self {
        let stderr_path = dir.join(format!("dev-cluster-{run}.stderr"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["dev-cluster", "--nodes", "3", "--base-port", "0", "--dir"])
            .arg(dir.join("cluster"))
            .env("SLUICE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            // Drains stdout for the command's whole life, even once nobody
            // listens: it prints again when it stops.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut cluster = Self {
            child,
            stderr_path,
            bootstrap: String::new(),
            node_pids: Vec::new(),
        };
        let deadline = Instant::now() + PATIENCE;
        while cluster.bootstrap.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!("no bootstrap line ({e}); stderr:\n{}", cluster.stderr())
            });
            // "  node 2  pid 1234  kafka …"
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["node", _, "pid", pid, ..] = words.as_slice() {
                cluster.node_pids.push(pid.parse().unwrap());
            }
            if let Some(b) = line.strip_prefix("bootstrap: ") {
                cluster.bootstrap = b.trim().to_owned();
            }
        }
        assert_eq!(cluster.node_pids.len(), 3, "{:?}", cluster.node_pids);
        assert_eq!(
            cluster.bootstrap.split(',').count(),
            3,
            "{}",
            cluster.bootstrap
        );
        cluster
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// `sluice <args> --bootstrap <all three> --output json`, parsed.
    fn cli(&self, args: &[&str], stdin: &str) -> Value {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(args)
            .args(["--bootstrap", &self.bootstrap, "--output", "json"])
            .args(["--timeout", "20"])
            .env("SLUICE_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "sluice {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text).unwrap_or_else(|_| {
            // `consume --output json` prints one object per line.
            Value::Array(
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect(),
            )
        })
    }

    /// Sends `signal` to the command and waits for it to exit; then every
    /// node it started must be gone.
    fn stop_with(mut self, signal: Signal) {
        kill_process(Pid::from_child(&self.child), signal).unwrap();
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "dev-cluster did not exit within {PATIENCE:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}; stderr:\n{}", self.stderr());
        for pid in &self.node_pids {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "node pid {pid} still exists after dev-cluster exited"
            );
        }
        self.node_pids.clear();
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for &pid in &self.node_pids {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
}

#[test]
fn dev_cluster_serves_clients_and_stops_every_node() {
    let dir = tempfile::tempdir().unwrap();

    let cluster = DevCluster::start(dir.path(), 1);
    let info = cluster.cli(&["cluster", "info"], "");
    let brokers: BTreeSet<i64> = info["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["node_id"].as_i64().unwrap())
        .collect();
    assert_eq!(brokers, BTreeSet::from([1, 2, 3]), "{info}");

    cluster.cli(&["topic", "create", "orders", "--partitions", "6"], "");
    let described = cluster.cli(&["topic", "describe", "orders"], "");
    let leaders: BTreeSet<i64> = described["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["leader"].as_i64().unwrap())
        .collect();
    assert_eq!(leaders, BTreeSet::from([1, 2, 3]), "{described}");

    cluster.cli(
        &["produce", "orders", "--partition", "0"],
        "alice\nbob\ncarol\n",
    );
    let values = |records: &Value| -> Vec<String> {
        records
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"].as_str().unwrap().to_owned())
            .collect()
    };
    let consume = [
        "consume",
        "orders",
        "--partition",
        "0",
        "--from",
        "beginning",
        "--count",
        "3",
    ];
    let records = cluster.cli(&consume, "");
    assert_eq!(values(&records), ["alice", "bob", "carol"], "{records}");

    cluster.stop_with(Signal::INT);
    // One cluster id, agreed through the metadata log (nothing pre-written).
    let ids: BTreeSet<String> = (1..=3)
        .map(|node| {
            let props = dir
                .path()
                .join(format!("cluster/node-{node}/meta.properties"));
            let text = std::fs::read_to_string(&props).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("cluster.id="))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");

    // Same folder: same nodes, same data.
    let cluster = DevCluster::start(dir.path(), 2);
    let records = cluster.cli(&consume, "");
    assert_eq!(values(&records), ["alice", "bob", "carol"], "{records}");
    cluster.stop_with(Signal::TERM);
    for node in 1..=3 {
        let log = dir.path().join(format!("cluster/logs/node-{node}.log"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text.matches("sluice dev-cluster: starting node").count(),
            2,
            "{}",
            log.display()
        );
    }
}
