#!/usr/bin/env python3
"""Connection-count benchmark: N client connections to one `sluice serve`,
idle and then active, with the broker's RSS measured (docs/benchmarks.md).

    python3 bench/scripts/connections.py --sluice target/release/sluice --connections 10000

It starts its own broker on 127.0.0.1 (ephemeral port, temporary data
directory, `max.connections` set above N), raises this process's soft
`nofile` limit to the hard one, and prints:

- broker RSS with no client, with N idle connections (each has completed
  one ApiVersions round trip, so every connection task has run), and the
  difference divided by N: the memory one connection costs;
- an active phase: every connection sends ApiVersions in rounds for
  `--active-seconds`; requests per second and the RSS after it.

The broker is stopped by its PID at the end. Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
API_VERSIONS_V3 = (
    struct.pack(">hhi", 18, 3, 0)
    + struct.pack(">h", 5) + b"bench"  # client id
    + b"\x00"                           # header tags
    + b"\x07sluice" + b"\x021" + b"\x00"  # compact strings (length + 1), tags
)
REQUEST = struct.pack(">i", len(API_VERSIONS_V3)) + API_VERSIONS_V3


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_broker(binary: str, workdir: str, connections: int) -> tuple[subprocess.Popen, int]:
    config = os.path.join(workdir, "sluice.toml")
    with open(config, "w") as f:
        f.write(f'"max.connections" = {connections + 100}\n')
    log = open(os.path.join(workdir, "broker.log"), "wb")
    env = dict(os.environ, SLUICE_LOG="warn,sluice_broker::server=info", NO_COLOR="1")
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", os.path.join(workdir, "data"), "--listen", "127.0.0.1:0",
         "--admin-listen", "127.0.0.1:0", "--config", config],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(os.path.join(workdir, "broker.log"), errors="replace") as f:
            m = LISTENING.search(f.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            with open(os.path.join(workdir, "broker.log"), errors="replace") as f:
                raise RuntimeError("broker exited before listening:\n" + f.read()[-2000:])
        time.sleep(0.05)
    raise RuntimeError("broker did not start")


def read_reply(sock: socket.socket) -> None:
    """Reads one whole response frame (blocking)."""
    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf
    (size,) = struct.unpack(">i", exact(4))
    exact(size)


def open_connections(port: int, n: int) -> list[socket.socket]:
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(REQUEST)
        read_reply(s)
        socks.append(s)
        if (i + 1) % 2000 == 0:
            print(f"  {i + 1} connections open", flush=True)
    return socks


def active_rounds(socks: list[socket.socket], seconds: float) -> tuple[int, float]:
    """Every connection sends one ApiVersions per round and waits for its
    reply; returns (requests answered, elapsed seconds)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    pending: dict[socket.socket, bytearray] = {}
    answered = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for s in socks:
            s.sendall(REQUEST)
            pending[s] = bytearray()
        while pending:
            for key, _ in sel.select(timeout=30):
                s = key.fileobj
                buf = pending.get(s)
                if buf is None:
                    continue
                buf += s.recv(65536)
                if len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">i", buf[:4])[0]:
                    del pending[s]
                    answered += 1
    return answered, time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", required=True, help="path to the sluice binary")
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--active-seconds", type=float, default=10.0)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.connections + 100:
        print(f"nofile hard limit {hard} is below {args.connections + 100}", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="sluice-conns-") as workdir:
        proc, port = start_broker(args.sluice, workdir, args.connections)
        try:
            time.sleep(1)
            base = rss_kib(proc.pid)
            print(f"broker pid {proc.pid} port {port}; RSS with no clients: {base} KiB")
            t0 = time.monotonic()
            socks = open_connections(port, args.connections)
            opened = time.monotonic() - t0
            time.sleep(2)
            idle = rss_kib(proc.pid)
            per = (idle - base) * 1024 / args.connections
            print(f"{args.connections} idle connections (opened in {opened:.1f}s): RSS {idle} KiB, "
                  f"+{idle - base} KiB, {per:.0f} bytes per connection")
            answered, elapsed = active_rounds(socks, args.active_seconds)
            active = rss_kib(proc.pid)
            print(f"active: {answered} ApiVersions answered in {elapsed:.1f}s "
                  f"({answered / elapsed:.0f}/s over {args.connections} connections); "
                  f"RSS after {active} KiB, {(active - base) * 1024 / args.connections:.0f} bytes per connection")
            for s in socks:
                s.close()
            time.sleep(2)
            print(f"all closed: RSS {rss_kib(proc.pid)} KiB")
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
