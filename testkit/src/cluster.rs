//! Several `sluice serve` children on loopback forming one cluster: every
//! node a controller voter (combined mode), each with its own data
//! directory, Kafka port and controller port.
//!
//! # Invariants
//! - Every node keeps its ports and data directory across
//!   [`Cluster::kill`] and [`Cluster::restart`], as a real node would.
//! - Dropping the cluster kills every node by PID.
//!
//! # Caveats
//! Ports are found by binding port 0 and releasing it just before the
//! nodes start; another process could take one in between (then the start
//! fails with "address in use", never silently).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::BrokerProcess;

/// One node's fixed identity.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: u32,
    pub data_dir: PathBuf,
    pub kafka_port: u16,
    pub controller_port: u16,
}

/// A running cluster of real processes.
pub struct Cluster {
    bin: PathBuf,
    voters: String,
    specs: Vec<NodeSpec>,
    nodes: Vec<Option<BrokerProcess>>,
    /// Extra `serve` arguments of each node, by position in `specs`.
    extra: Vec<Vec<String>>,
}

fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    // Hold every listener until all ports are chosen, so none repeats.
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

impl Cluster {
    /// Starts `size` nodes (ids 1..=size) under `root` and waits until every
    /// one listens (which needs an elected controller).
    pub fn start(bin: &Path, root: &Path, size: u32) -> anyhow::Result<Self> {
        Self::start_with(bin, root, size, |_| Vec::new())
    }

    /// [`Self::start`] with extra `serve` arguments for each node, by id
    /// (a config file, a rack, …); a restart uses them again.
    pub fn start_with(
        bin: &Path,
        root: &Path,
        size: u32,
        extra: impl Fn(u32) -> Vec<String>,
    ) -> anyhow::Result<Self> {
        let ports = free_ports(2 * size as usize)?;
        let specs: Vec<NodeSpec> = (1..=size)
            .zip(ports.chunks(2))
            .map(|(id, p)| NodeSpec {
                id,
                data_dir: root.join(format!("node-{id}")),
                kafka_port: p.first().copied().unwrap_or_default(),
                controller_port: p.get(1).copied().unwrap_or_default(),
            })
            .collect();
        let voters = specs
            .iter()
            .map(|s| format!("{}@127.0.0.1:{}", s.id, s.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            bin: bin.to_path_buf(),
            voters,
            nodes: specs.iter().map(|_| None).collect(),
            extra: specs.iter().map(|s| extra(s.id)).collect(),
            specs,
        };
        for id in 1..=size {
            cluster.spawn(id)?;
        }
        for id in 1..=size {
            cluster.wait(id)?;
        }
        Ok(cluster)
    }

    fn spec(&self, id: u32) -> anyhow::Result<&NodeSpec> {
        self.specs
            .iter()
            .find(|s| s.id == id)
            .with_context(|| format!("no node {id}"))
    }

    fn spawn(&mut self, id: u32) -> anyhow::Result<()> {
        let spec = self.spec(id)?.clone();
        let controller = format!("127.0.0.1:{}", spec.controller_port);
        let advertised = format!("127.0.0.1:{}", spec.kafka_port);
        let node_id = id.to_string();
        let mut args = vec![
            "--node-id",
            &node_id,
            "--advertised",
            &advertised,
            "--controller-listen",
            &controller,
            "--controller-voters",
            &self.voters,
        ];
        if let Some(extra) = self.extra.get(id as usize - 1) {
            args.extend(extra.iter().map(String::as_str));
        }
        let process = BrokerProcess::spawn(&self.bin, &spec.data_dir, spec.kafka_port, &args)?;
        if let Some(slot) = self.nodes.get_mut(id as usize - 1) {
            *slot = Some(process);
        }
        Ok(())
    }

    fn wait(&mut self, id: u32) -> anyhow::Result<()> {
        let node = self
            .nodes
            .get_mut(id as usize - 1)
            .and_then(Option::as_mut)
            .with_context(|| format!("node {id} is not running"))?;
        node.wait_ready()
            .with_context(|| format!("node {id} did not start"))
    }

    /// The `--controller-voters` value every node runs with (for a
    /// broker-only node joining the cluster).
    pub fn voters(&self) -> &str {
        &self.voters
    }

    /// The ids of the nodes.
    pub fn ids(&self) -> Vec<u32> {
        self.specs.iter().map(|s| s.id).collect()
    }

    /// The running process of node `id`.
    pub fn node(&self, id: u32) -> Option<&BrokerProcess> {
        self.nodes.get(id as usize - 1).and_then(Option::as_ref)
    }

    /// `127.0.0.1:<kafka port>` of node `id`, running or not.
    pub fn bootstrap_of(&self, id: u32) -> anyhow::Result<String> {
        Ok(format!("127.0.0.1:{}", self.spec(id)?.kafka_port))
    }

    /// SIGKILL node `id` (a crash).
    pub fn kill(&mut self, id: u32) {
        if let Some(mut node) = self.nodes.get_mut(id as usize - 1).and_then(Option::take) {
            node.kill();
        }
    }

    /// SIGTERM node `id` (a clean, controlled shutdown) and waits for it
    /// to exit.
    pub fn stop(&mut self, id: u32) -> anyhow::Result<std::process::ExitStatus> {
        let node = self
            .nodes
            .get_mut(id as usize - 1)
            .and_then(Option::take)
            .with_context(|| format!("node {id} is not running"))?;
        node.stop()
    }

    /// The data directory of node `id`.
    pub fn data_dir_of(&self, id: u32) -> anyhow::Result<PathBuf> {
        Ok(self.spec(id)?.data_dir.clone())
    }

    /// Starts node `id` again on its data directory and waits for it.
    pub fn restart(&mut self, id: u32) -> anyhow::Result<()> {
        self.spawn(id)?;
        self.wait(id)
    }
}
