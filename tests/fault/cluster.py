"""A local cluster of real `sluice serve` processes for fault tests: every
node a combined broker and controller voter on 127.0.0.1, each with its own
data directory, log file and fixed ports (a restarted node comes back on
the same addresses, as a real one would).

Links go through proxies (`proxy.py`) so the nemesis can cut them: every
node reaches each peer's controller listener through a proxy of its own
(node i's `--controller-voters` names, for peer j, the proxy i→j), and
every node's Kafka listener is advertised through one proxy that peers'
replica fetchers and clients use. `isolate(i)` cuts node i's controller
links both ways and every connection into its Kafka listener; its own
fetches from other leaders still flow (the Kafka proxies cannot tell one
source from another).

Processes are tracked by PID and killed by PID (`Cluster.close`), never by
name: other people's brokers run on the same machine.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from proxy import Proxy

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def free_ports(n: int) -> list[int]:
    """n ports the OS says are free now (bound together, then released)."""
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


class Node:
    def __init__(self, binary: str, root: Path, node_id: int, kafka_port: int,
                 controller_port: int, config: dict | None):
        self.binary = binary
        self.id = node_id
        self.kafka_port = kafka_port
        self.controller_port = controller_port
        self.workdir = root / f"node-{node_id}"
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = None
        if config:
            self.config_path = self.workdir / "sluice.toml"
            self.config_path.write_text("".join(f'"{k}" = {_toml(v)}\n' for k, v in config.items()))
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.stopped = False  # SIGSTOPped

        # Set by the cluster: the address peers and clients use.
        self.advertised_port = kafka_port

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def log_path(self, run: int | None = None) -> Path:
        return self.workdir / f"run-{run or self.starts}.log"

    def spawn(self, voters: str) -> None:
        assert not self.alive(), f"node {self.id} already running"
        self.starts += 1
        cmd = [self.binary, "serve", "--data-dir", str(self.data_dir),
               "--listen", f"127.0.0.1:{self.kafka_port}", "--advertised", self.bootstrap,
               "--node-id", str(self.id),
               "--controller-listen", f"127.0.0.1:{self.controller_port}",
               "--controller-voters", voters]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        env = dict(os.environ, NO_COLOR="1")
        env.setdefault("SLUICE_LOG", "info")
        # Each node needs its own admin endpoint; the OS picks a free port.
        env["SLUICE_ADMIN_LISTEN"] = "127.0.0.1:0"
        with open(self.log_path(), "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=env)
        self.stopped = False

    def wait_listening(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if LISTENING.search(self.log_path().read_text(errors="replace")):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.id} exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"node {self.id} did not listen within {timeout}s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.stopped = False

    def sigstop(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.stopped = True

    def sigcont(self) -> None:
        if self.alive() and self.stopped:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped = False

    def terminate(self) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if not self.alive():
            return None
        self.sigcont()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def tail(self, lines: int = 30) -> str:
        p = self.log_path()
        return "\n".join(p.read_text(errors="replace").splitlines()[-lines:]) if p.exists() else ""


class Cluster:
    def __init__(self, binary: str, root: Path, size: int = 3, config: dict | None = None):
        ports = free_ports(2 * size)
        self.nodes = {i + 1: Node(binary, root, i + 1, ports[2 * i], ports[2 * i + 1], config)
                      for i in range(size)}
        self.kafka_proxies = {i: Proxy(n.kafka_port, f"kafka-{i}") for i, n in self.nodes.items()}
        for i, n in self.nodes.items():
            n.advertised_port = self.kafka_proxies[i].port
        # (from, to) → the proxy `from` uses to reach `to`'s controller.
        self.controller_proxies = {
            (i, j): Proxy(self.nodes[j].controller_port, f"controller-{i}-{j}")
            for i in self.nodes for j in self.nodes if i != j}
        self.voters = {
            i: ",".join(f"{j}@127.0.0.1:{n.controller_port if i == j else self.controller_proxies[(i, j)].port}"
                        for j, n in self.nodes.items())
            for i in self.nodes}

    def isolate(self, node_id: int) -> None:
        """Cuts `node_id` off: its controller links both ways and every
        connection into its Kafka listener."""
        self.kafka_proxies[node_id].cut()
        for (i, j), p in self.controller_proxies.items():
            if node_id in (i, j):
                p.cut()

    def heal_links(self) -> None:
        for p in [*self.kafka_proxies.values(), *self.controller_proxies.values()]:
            p.heal()

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes.values())

    def start(self) -> "Cluster":
        for n in self.nodes.values():
            n.spawn(self.voters[n.id])
        for n in self.nodes.values():
            n.wait_listening()
        return self

    def restart(self, node_id: int, wait: bool = True) -> None:
        n = self.nodes[node_id]
        if n.alive():
            n.terminate()
        n.spawn(self.voters[node_id])
        if wait:
            n.wait_listening()

    def close(self) -> None:
        for n in self.nodes.values():
            n.sigcont()
            n.kill9()
        for p in [*self.kafka_proxies.values(), *self.controller_proxies.values()]:
            p.close()

    def stop_all(self) -> None:
        for n in self.nodes.values():
            n.terminate()


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
