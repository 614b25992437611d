"""A real `sluice serve` child process on 127.0.0.1 with an ephemeral port.

The broker logs to stderr; the line ``listening on 127.0.0.1:<port>`` tells
us the port it bound (``--listen 127.0.0.1:0``). The log goes to a file in
the test's temporary directory, never a pipe, so a chatty broker can never
block on a full pipe while a test waits for it.

Every process started here is remembered by its `BrokerProcess`, and
`BrokerProcess.close()` (called by the fixture finalizer, even when the test
failed) SIGKILLs whatever is still running, by PID.

`Cluster` is several such processes as one cluster: every node a
controller voter, on fixed free ports (the voter list must name them). The
interop tests and the fault harness (`tests/fault/run.py`) both use it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
# The admin HTTP endpoint's line: "admin endpoint serving http://127.0.0.1:<port>".
ADMIN = re.compile(r"admin endpoint serving http://127\.0\.0\.1:(\d+)")
# Strips the ANSI colours tracing-subscriber adds when it thinks it is on a
# terminal, so the log excerpts in failure messages stay readable.
ANSI = re.compile(r"\x1b\[[0-9;]*m")

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


class BrokerProcess:
    """One broker's data directory, across any number of (re)starts."""

    def __init__(self, binary: str, workdir: Path, config: dict | None = None,
                 args: list[str] | None = None):
        self.binary = binary
        # Extra `sluice serve` flags, given at every start after the
        # harness's own (a test may change the list between starts).
        self.args = list(args or [])
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path: Path | None = None
        if config:
            self.config_path = workdir / "sluice.toml"
            self.config_path.write_text(toml_text(config))
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.starts = 0
        self.log_path: Path | None = None
        # Added to every start: environment variables over the test's
        # environment.
        self.extra_env: dict[str, str] = {}
        # How long a start may take to log "listening on" (a fault test
        # restarting a node under a nemesis allows more).
        self.start_timeout_s = START_TIMEOUT_S
        # SIGSTOPped and not yet SIGCONTed.
        self.paused = False

    # -- lifecycle -----------------------------------------------------

    def start(self, port: int = 0, wait: bool = True) -> "BrokerProcess":
        """Starts the broker (``port=0``: a fresh ephemeral port) and waits
        for its "listening on" line (``wait=False``: call `wait_listening`
        later; a cluster node listens only once a quorum of voters runs)."""
        self.spawn(port)
        if wait:
            self.wait_listening()
        return self

    def spawn(self, port: int = 0) -> "BrokerProcess":
        """Starts the broker without waiting for it to listen (then call
        `wait_listening`). ``args`` and ``extra_env`` are added."""
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.starts += 1
        self.log_path = self.workdir / f"broker-{self.starts}.log"
        cmd = [
            self.binary,
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"127.0.0.1:{port}",
        ]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        cmd += self.args
        env = dict(os.environ)
        env.update(self.extra_env)
        env.setdefault("SLUICE_LOG", "info")
        # Several brokers run at once: a free port for each admin endpoint.
        env.setdefault("SLUICE_ADMIN_LISTEN", "127.0.0.1:0")
        env["NO_COLOR"] = "1"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env
            )
        self.port = port
        self.paused = False
        return self

    def wait_listening(self) -> "BrokerProcess":
        self.port = self._wait_for_port()
        return self

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            m = LISTENING.search(self.log())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"broker exited with {self.proc.returncode} before listening:\n{self.log_tail()}"
                )
            time.sleep(0.02)
        raise AssertionError(
            f"broker did not log 'listening on' within {self.start_timeout_s}s:\n{self.log_tail()}"
        )

    def terminate(self) -> int:
        """SIGTERM (clean shutdown); returns the exit code. A paused broker
        is SIGCONTed first, or it could not act on the SIGTERM."""
        assert self.proc is not None
        self.resume()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            raise AssertionError(f"broker ignored SIGTERM for {STOP_TIMEOUT_S}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush or close anything."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the process stays, but answers nothing (a long GC
        pause, a stalled VM) until `resume`."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT after `pause`; nothing otherwise."""
        if self.alive() and self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def restart(self, same_port: bool = False) -> "BrokerProcess":
        """Clean stop (asserting exit code 0), then start on the same data
        directory."""
        code = self.terminate()
        assert code == 0, f"broker exited with {code} on SIGTERM:\n{self.log_tail()}"
        return self.start(port=self.port if same_port else 0)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    # -- observation ---------------------------------------------------

    @property
    def admin_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the admin endpoint (from the log)."""
        m = ADMIN.search(self.log())
        assert m, f"no admin endpoint line in the log:\n{self.log_tail()}"
        return f"http://127.0.0.1:{m.group(1)}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        """VmRSS of the running broker, in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS line in /proc status")

    def log(self, start: int | None = None) -> str:
        """The current run's log, or run number `start`'s."""
        path = self.log_path if start is None else self.workdir / f"broker-{start}.log"
        if path is None or not path.exists():
            return ""
        return ANSI.sub("", path.read_text(errors="replace"))

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def toml_text(config: dict) -> str:
    """Writes a flat dict as TOML with every key quoted (Kafka's dotted
    names must not become TOML tables)."""
    out = []
    for key, value in config.items():
        if isinstance(value, bool):
            v = "true" if value else "false"
        elif isinstance(value, (int, float)):
            v = str(value)
        else:
            v = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(f'"{key}" = {v}')
    return "\n".join(out) + "\n"


def free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports (each held until all are chosen).
    Another process could take one before the node binds it; the node then
    fails to start, loudly."""
    import socket

    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """`size` real nodes on loopback (ids 1..size), each a broker and a
    controller voter with its own data directory, Kafka port and
    controller port. A node keeps its ports and data across `kill` and
    `restart`, as a real node would; `close()` SIGKILLs every node."""

    def __init__(self, binary: str, workdir: Path, size: int = 3, config: dict | None = None):
        ports = free_ports(2 * size)
        self.kafka_ports = {i: ports[i - 1] for i in range(1, size + 1)}
        controller_ports = {i: ports[size + i - 1] for i in range(1, size + 1)}
        voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in controller_ports.items())
        # One cluster id for every node, written where the broker reads it
        # before it would make its own (as `kafka-storage format
        # --cluster-id` does; `sluice dev-cluster` does the same).
        cluster_id = uuid.uuid4().hex
        self.nodes = {
            i: BrokerProcess(binary, workdir / f"node-{i}", config, args=[
                "--node-id", str(i),
                "--advertised", f"127.0.0.1:{self.kafka_ports[i]}",
                "--controller-listen", f"127.0.0.1:{controller_ports[i]}",
                "--controller-voters", voters,
            ])
            for i in range(1, size + 1)
        }

        for node in self.nodes.values():
            (node.data_dir / "meta.properties").write_text(f"version=1\ncluster.id={cluster_id}\n")

    def start(self) -> "Cluster":
        for i, node in self.nodes.items():
            node.start(port=self.kafka_ports[i], wait=False)
        for node in self.nodes.values():
            node.wait_listening()
        return self

    @property
    def bootstrap(self) -> str:
        """Every node's Kafka address, comma-separated."""
        return ",".join(f"127.0.0.1:{p}" for p in self.kafka_ports.values())

    def bootstrap_of(self, node_id: int) -> str:
        return f"127.0.0.1:{self.kafka_ports[node_id]}"

    def kill(self, node_id: int) -> None:
        """SIGKILL one node (a crash)."""
        self.nodes[node_id].kill()

    def restart(self, node_id: int) -> None:
        """Starts a node again on its ports and data directory; a running
        one is stopped with SIGTERM first (a rolling restart)."""
        self._stop(node_id)
        self.nodes[node_id].start(port=self.kafka_ports[node_id])

    def stop_all(self) -> None:
        """SIGTERM to every running node (each a clean shutdown)."""
        for node_id in self.nodes:
            self._stop(node_id)

    def _stop(self, node_id: int) -> None:
        """SIGTERM if running. A node that ignores it is killed and the
        run goes on (a fault test's nemesis may have left it mid-election);
        the fact is printed, not hidden."""
        node = self.nodes[node_id]
        if not node.alive():
            return
        try:
            node.terminate()
        except AssertionError as e:
            print(f"node {node_id}: {str(e).splitlines()[0]}; killed", file=sys.stderr, flush=True)

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()
