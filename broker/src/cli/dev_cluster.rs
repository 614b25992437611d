//! `sluice dev-cluster`: a local cluster in one command. Starts N nodes of
//! this same binary (`std::env::current_exe()`) on 127.0.0.1, each a broker
//! and a controller voter, waits until every node answers Metadata with all
//! N brokers, prints the bootstrap string, and on Ctrl-C or SIGTERM stops
//! every node. For people trying Sluice and for tests; not for production
//! (one machine, one disk: nothing survives the machine).
//!
//! # Layout (`--dir`, default `./sluice-dev-cluster`)
//! ```text
//! sluice-dev-cluster/
//!   dev-cluster.json     {"nodes": N}: a restart must use the same N
//!   node-1/ … node-N/    each node's --data-dir (partition logs, raft log)
//!   logs/node-1.log …    each node's stdout and stderr, appended per start
//! ```
//! Nothing is written into the nodes' folders before they start: the first
//! node to find the metadata log without a cluster id writes one there
//! (`ClusterIdAssigned`), and every node keeps it in its `meta.properties`.
//! Running the command again on the same folder restarts the same cluster
//! (same node ids, same voters, same data). A different `--nodes` is
//! refused: the raft log of each node names its voters.
//!
//! # Ports (`--base-port`, default 9092)
//! Node `i` (1-based) listens for clients on `base + i - 1`, for Raft on
//! `base + N + i - 1` and serves its admin endpoint (`/metrics`, `/ready`)
//! on `base + 2N + i - 1`: with the defaults, Kafka on 9092/9093/9094, the
//! controllers on 9095/9096/9097 and the admin endpoints on 9098/9099/9100. If one of them is taken the command
//! stops before starting anything and names the port: a bootstrap string
//! that silently changed would be worse than a clear refusal. With
//! `--base-port 0` every port is chosen free by the system (tests use
//! this); the chosen ports are printed.
//!
//! # Invariants
//! - Every node is a child of this process, in its own process group, so a
//!   terminal's Ctrl-C reaches only this process, which then stops the
//!   nodes itself: SIGTERM to each (a clean shutdown), SIGKILL to those
//!   still running after `--stop-timeout` (30 s), and every child is reaped before
//!   the command returns.
//! - Signals go to a child's PID only while it has not been reaped, so a
//!   reused PID is never signalled.
//! - A node that exits on its own is reported once (id, PID, status, log)
//!   and the others keep running; the command then exits non-zero when
//!   stopped.
//!
//! # Limits
//! - At most [`MAX_NODES`] nodes; `--start-timeout` (default 60 s) for the
//!   cluster to answer; `--stop-timeout` (default 30 s) per stop.

use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use sluice_client::{Admin, ClientConfig};

/// Prints a line for the user on stdout. A closed stdout (`… | head`)
/// must not panic the process that owns the nodes, so errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The same on stderr, for problems.
macro_rules! warn {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// More voters than this on one machine only slows elections down.
pub const MAX_NODES: u16 = 9;
/// How often the children are checked for an exit while the cluster runs.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Per-attempt bound of the Metadata probe during the start.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Args, Debug)]
pub struct DevClusterArgs {
    /// Number of nodes; each is a broker and a controller voter.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=MAX_NODES as i64))]
    pub nodes: u16,
    /// Kafka port of node 1; node i uses base+i-1, and the controller
    /// ports follow the Kafka ports. 0: free ports chosen by the system.
    #[arg(long, default_value_t = 9092)]
    pub base_port: u16,
    /// Folder for the nodes' data directories (node-N) and logs (logs/).
    #[arg(long, default_value = "sluice-dev-cluster")]
    pub dir: PathBuf,
    /// Seconds to wait for every node to answer Metadata with all brokers.
    #[arg(long, default_value_t = 60)]
    pub start_timeout: u64,
    /// Seconds a node has to exit after SIGTERM before it is SIGKILLed
    /// (a node with many partitions takes longer to close them all).
    #[arg(long, default_value_t = 30)]
    pub stop_timeout: u64,
}

/// One node's fixed identity for this run.
#[derive(Debug, Clone)]
struct NodeSpec {
    id: u16,
    kafka: SocketAddr,
    controller: SocketAddr,
    admin: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
}

/// A started node: its child process until reaped, then its exit status.
struct Node {
    spec: NodeSpec,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Node {
    /// Reaps the child if it has exited; true the first time it is seen gone.
    fn poll_exit(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exited = Some(status);
                true
            }
            Ok(None) => false,
            Err(e) => {
                warn!(
                    "sluice dev-cluster: cannot check node {}: {e}",
                    self.spec.id
                );
                false
            }
        }
    }

    fn signal(&self, signal: rustix::process::Signal) {
        // Only while unreaped: the PID is still ours (a zombie at worst).
        if self.exited.is_none() {
            let pid = rustix::process::Pid::from_child(&self.child);
            if let Err(e) = rustix::process::kill_process(pid, signal) {
                warn!(
                    "sluice dev-cluster: cannot signal node {} (pid {}): {e}",
                    self.spec.id,
                    self.child.id()
                );
            }
        }
    }

    fn describe_exit(&self) -> String {
        format!(
            "node {} (pid {}) exited with {}; its log: {}",
            self.spec.id,
            self.child.id(),
            self.exited
                .map_or_else(|| "an unknown status".into(), |s| s.to_string()),
            self.spec.log.display()
        )
    }
}

/// What the folder was created for; checked on every start.
#[derive(Serialize, Deserialize)]
struct Layout {
    nodes: u16,
}

/// Starts the cluster, runs it until `stop` resolves (Ctrl-C / SIGTERM),
/// then stops every node.
pub async fn run(args: DevClusterArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let grace = Duration::from_secs(args.stop_timeout);
    let exe = std::env::current_exe().context("cannot find the sluice binary to start")?;
    check_layout(&args.dir, args.nodes)?;
    let specs = plan(&args)?;
    let voters = specs
        .iter()
        .map(|s| format!("{}@{}", s.id, s.controller))
        .collect::<Vec<_>>()
        .join(",");
    let bootstrap = specs
        .iter()
        .map(|s| s.kafka.to_string())
        .collect::<Vec<_>>()
        .join(",");

    let mut nodes = Vec::with_capacity(specs.len());
    for spec in specs {
        match spawn(&exe, &spec, &voters) {
            Ok(child) => nodes.push(Node {
                spec,
                child,
                exited: None,
            }),
            Err(e) => {
                stop_all(&mut nodes, grace).await;
                return Err(e);
            }
        }
    }
    say!(
        "sluice dev-cluster: starting {} nodes in {}",
        nodes.len(),
        args.dir.display()
    );

    tokio::pin!(stop);
    let deadline = Duration::from_secs(args.start_timeout.max(1));
    let started = tokio::select! {
        r = wait_ready(&mut nodes, deadline) => r,
        () = &mut stop => Err(anyhow::anyhow!("stopped before the cluster was ready")),
    };
    let controller = match started {
        Ok(controller) => controller,
        Err(e) => {
            stop_all(&mut nodes, grace).await;
            return Err(e);
        }
    };

    print_summary(&nodes, &bootstrap, controller);

    let mut died = Vec::new();
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => {
                for node in &mut nodes {
                    if node.poll_exit() {
                        warn!("sluice dev-cluster: {}", node.describe_exit());
                        died.push(node.spec.id);
                    }
                }
                if nodes.iter().all(|n| n.exited.is_some()) {
                    warn!("sluice dev-cluster: every node has exited");
                    break;
                }
            }
        }
    }
    let running = nodes.iter().filter(|n| n.exited.is_none()).count();
    say!("sluice dev-cluster: stopping {running} running nodes");
    stop_all(&mut nodes, grace).await;
    say!(
        "sluice dev-cluster: stopped; data kept in {}",
        args.dir.display()
    );
    if !died.is_empty() {
        bail!("node(s) {died:?} exited while the cluster ran (see their logs)");
    }
    Ok(())
}

/// Refuses a folder made for another node count; records it otherwise.
fn check_layout(dir: &Path, nodes: u16) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("dev-cluster.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let layout: Layout = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a dev-cluster layout", path.display()))?;
            if layout.nodes != nodes {
                bail!(
                    "{} holds a {}-node cluster; run with --nodes {} or choose another --dir",
                    dir.display(),
                    layout.nodes,
                    layout.nodes
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = serde_json::to_vec(&Layout { nodes })?;
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Ports and folders of every node (see the module docs for the rule).
fn plan(args: &DevClusterArgs) -> anyhow::Result<Vec<NodeSpec>> {
    let n = usize::from(args.nodes);
    let ports = if args.base_port == 0 {
        free_ports(3 * n)?
    } else {
        let ports: Vec<u16> = (0..3 * n)
            .map(|i| {
                u16::try_from(usize::from(args.base_port) + i)
                    .with_context(|| format!("--base-port {} leaves no room", args.base_port))
            })
            .collect::<anyhow::Result<_>>()?;
        for &port in &ports {
            if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
                bail!(
                    "port {port} on 127.0.0.1 is not free ({e}); the cluster needs ports {}-{}: \
                     choose another --base-port, or --base-port 0 for free ones",
                    args.base_port,
                    usize::from(args.base_port) + 3 * n - 1
                );
            }
        }
        ports
    };
    let (kafka, rest) = ports.split_at(n);
    let (controller, admin) = rest.split_at(n);
    Ok((1..=args.nodes)
        .zip(kafka.iter().zip(controller).zip(admin))
        .map(|(id, ((&k, &c), &a))| NodeSpec {
            id,
            kafka: SocketAddr::from(([127, 0, 0, 1], k)),
            controller: SocketAddr::from(([127, 0, 0, 1], c)),
            admin: SocketAddr::from(([127, 0, 0, 1], a)),
            data_dir: args.dir.join(format!("node-{id}")),
            log: args.dir.join("logs").join(format!("node-{id}.log")),
        })
        .collect())
}

/// `n` distinct free ports: every listener is held until all are chosen.
/// Another process could take one before the node binds it; the node then
/// fails to start with "address in use", never silently.
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find free ports on 127.0.0.1")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Starts `exe serve …` for one node, its output appended to its log.
fn spawn(exe: &Path, spec: &NodeSpec, voters: &str) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;

    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .with_context(|| format!("cannot open {}", spec.log.display()))?;
    writeln!(
        log,
        "---- sluice dev-cluster: starting node {} (kafka {}, controller {}, admin {}) ----",
        spec.id, spec.kafka, spec.controller, spec.admin
    )
    .with_context(|| format!("cannot write {}", spec.log.display()))?;
    let stderr = log.try_clone()?;
    let child = Command::new(exe)
        .arg("serve")
        .arg("--node-id")
        .arg(spec.id.to_string())
        .arg("--data-dir")
        .arg(&spec.data_dir)
        .arg("--listen")
        .arg(spec.kafka.to_string())
        .arg("--advertised")
        .arg(spec.kafka.to_string())
        .arg("--controller-listen")
        .arg(spec.controller.to_string())
        .arg("--controller-voters")
        .arg(voters)
        // Every node its own admin endpoint (the default port is one).
        .env("SLUICE_ADMIN_LISTEN", spec.admin.to_string())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        // Its own process group: a terminal's Ctrl-C reaches only us.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start node {} ({})", spec.id, exe.display()))?;
    Ok(child)
}

/// Waits until every node answers Metadata listing all N brokers; returns
/// the controller id they name. Fails if a node exits or time runs out.
async fn wait_ready(nodes: &mut [Node], timeout: Duration) -> anyhow::Result<i32> {
    let deadline = Instant::now() + timeout;
    let want = nodes.len();
    let mut last_error = String::from("no answer yet");
    loop {
        for node in nodes.iter_mut() {
            if node.poll_exit() {
                bail!("{} before the cluster was ready", node.describe_exit());
            }
        }
        let mut controller = None;
        let mut ready = 0;
        for node in nodes.iter() {
            match brokers_seen_by(node.spec.kafka).await {
                Ok((brokers, c)) if brokers == want && c >= 0 => {
                    ready += 1;
                    controller = Some(c);
                }
                Ok((brokers, c)) => {
                    last_error = format!(
                        "node {} sees {brokers} of {want} brokers, controller {c}",
                        node.spec.id
                    );
                }
                Err(e) => last_error = format!("node {}: {e:#}", node.spec.id),
            }
        }
        if let (true, Some(c)) = (ready == want, controller) {
            return Ok(c);
        }
        if Instant::now() >= deadline {
            bail!(
                "the cluster did not answer with {want} brokers within {timeout:?} ({last_error}); \
                 see the logs in {}",
                nodes
                    .first()
                    .and_then(|n| n.spec.log.parent())
                    .map_or_else(String::new, |p| p.display().to_string())
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// (brokers listed, controller id) in one node's own Metadata answer.
async fn brokers_seen_by(addr: SocketAddr) -> anyhow::Result<(usize, i32)> {
    let config = ClientConfig::new(&addr.to_string())
        .with_client_id("sluice-dev-cluster")
        .with_request_timeout(PROBE_TIMEOUT)
        .with_connect_timeout(PROBE_TIMEOUT);
    let probe = async {
        let admin = Admin::connect(config).await?;
        let meta = admin.cluster_metadata().await?;
        anyhow::Ok((meta.brokers.len(), meta.controller_id))
    };
    tokio::time::timeout(2 * PROBE_TIMEOUT, probe)
        .await
        .context("no answer")?
}

fn print_summary(nodes: &[Node], bootstrap: &str, controller: i32) {
    say!(
        "sluice dev-cluster: {} nodes up, controller: node {controller}",
        nodes.len()
    );
    for node in nodes {
        let s = &node.spec;
        say!(
            "  node {}  pid {}  kafka {}  controller {}  admin {}  data {}  log {}",
            s.id,
            node.child.id(),
            s.kafka,
            s.controller,
            s.admin,
            s.data_dir.display(),
            s.log.display()
        );
    }
    say!("bootstrap: {bootstrap}");
    say!("  try: export SLUICE_BOOTSTRAP={bootstrap}; sluice cluster info");
    say!("Ctrl-C stops every node (data is kept; run again to restart).");
}

/// SIGTERM to every running node, SIGKILL to any still running after
/// `grace`; returns once every child is reaped.
async fn stop_all(nodes: &mut [Node], grace: Duration) {
    for node in nodes.iter_mut() {
        node.poll_exit();
        node.signal(rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        let mut running = 0;
        for node in nodes.iter_mut() {
            node.poll_exit();
            running += usize::from(node.exited.is_none());
        }
        if running == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in nodes.iter_mut() {
        if node.exited.is_none() {
            warn!(
                "sluice dev-cluster: node {} (pid {}) still running {grace:?} after \
                 SIGTERM; killing it",
                node.spec.id,
                node.child.id()
            );
            node.signal(rustix::process::Signal::KILL);
            match node.child.wait() {
                Ok(status) => node.exited = Some(status),
                Err(e) => warn!("sluice dev-cluster: cannot reap node {}: {e}", node.spec.id),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u16, base_port: u16, dir: &Path) -> DevClusterArgs {
        DevClusterArgs {
            nodes,
            base_port,
            dir: dir.to_path_buf(),
            start_timeout: 1,
            stop_timeout: 1,
        }
    }

    #[test]
    fn fixed_ports_put_the_controllers_after_the_kafka_ports() -> anyhow::Result<()> {
        // Find a free run of six ports first, so the bind check passes.
        let base = (20_000..60_000)
            .step_by(97)
            .find(|&b| (b..b + 6).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()))
            .context("no free run of ports")?;
        let specs = plan(&args(3, base, Path::new("c")))?;
        let kafka: Vec<u16> = specs.iter().map(|s| s.kafka.port()).collect();
        let controller: Vec<u16> = specs.iter().map(|s| s.controller.port()).collect();
        assert_eq!(kafka, [base, base + 1, base + 2]);
        assert_eq!(controller, [base + 3, base + 4, base + 5]);
        assert_eq!(
            specs.get(1).map(|s| s.data_dir.clone()),
            Some(PathBuf::from("c/node-2"))
        );
        assert_eq!(
            specs.get(2).map(|s| s.log.clone()),
            Some(PathBuf::from("c/logs/node-3.log"))
        );
        Ok(())
    }

    #[test]
    fn a_taken_port_is_named_and_nothing_starts() -> anyhow::Result<()> {
        let taken = TcpListener::bind("127.0.0.1:0")?;
        let port = taken.local_addr()?.port();
        let err = plan(&args(1, port, Path::new("c")))
            .err()
            .context("a taken port was accepted")?;
        assert!(err.to_string().contains(&format!("port {port}")), "{err}");
        Ok(())
    }

    #[test]
    fn a_folder_keeps_its_node_count() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        check_layout(dir.path(), 3)?;
        check_layout(dir.path(), 3)?;
        let err = check_layout(dir.path(), 5)
            .err()
            .context("another node count was accepted")?;
        assert!(err.to_string().contains("--nodes 3"), "{err}");
        Ok(())
    }
}
