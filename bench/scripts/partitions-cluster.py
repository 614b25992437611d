#!/usr/bin/env python3
"""N partitions (default 10 000) created across a three-node cluster
started with `sluice dev-cluster`: time for CreateTopics to succeed, time
until every node's Metadata lists all partitions, where the leaders are,
each node's partition directories, descriptors, maps and RSS, then one
record produced to and fetched from every partition, and the time
`dev-cluster` takes to stop after SIGINT. A benchmark, not a test: run by
hand, record in docs/benchmarks.md.

    cargo build --release --bin sluice
    /work/venv/bin/python bench/scripts/partitions-cluster.py target/release/sluice [partitions] [rf]

The cluster runs on free ports in a fresh temporary folder, removed at the
end.
"""

import collections
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from confluent_kafka.admin import AdminClient, NewTopic

# The single-node script's helpers (same folder, so on sys.path).
single_node = importlib.import_module("partitions-10k")
resources = single_node.resources
produce_and_fetch_back = single_node.produce_and_fetch_back


def start_cluster(binary, folder):
    out_path = os.path.join(folder, "dev-cluster.out")
    out = open(out_path, "wb")
    proc = subprocess.Popen([binary, "dev-cluster", "--nodes", "3", "--base-port", "0", "--dir",
                             os.path.join(folder, "cluster")], stdout=out, stderr=subprocess.STDOUT,
                            env=dict(os.environ, SLUICE_LOG="warn"))
    t0 = time.monotonic()
    while True:
        text = open(out_path, errors="replace").read()
        m = re.search(r"^bootstrap: (\S+)", text, re.M)
        if m:
            pids = {int(n): int(p) for n, p in re.findall(r"node (\d+)  pid (\d+)", text)}
            return proc, m.group(1), pids
        if proc.poll() is not None or time.monotonic() - t0 > 120:
            proc.kill()
            sys.exit(f"dev-cluster did not start:\n{text[-3000:]}")
        time.sleep(0.1)


def partition_dirs(folder, node, topic):
    data = os.path.join(folder, "cluster", f"node-{node}")
    return sum(1 for d in os.listdir(data) if d.startswith(f"{topic}-"))


def main():
    binary = sys.argv[1]
    partitions = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    rf = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    folder = tempfile.mkdtemp(prefix="sluice-cluster-parts-")
    proc, pids = None, {}
    try:
        proc, boot, pids = start_cluster(binary, folder)
        nodes = sorted(pids)
        print(f"cluster up: {boot}")
        print("idle:", {n: resources(pids[n]) for n in nodes})
        admin = AdminClient({"bootstrap.servers": boot, "socket.timeout.ms": 300000})
        t0 = time.monotonic()
        fut = admin.create_topics([NewTopic("big", partitions, rf)], request_timeout=900,
                                  operation_timeout=900)
        fut["big"].result(timeout=960)
        created = time.monotonic() - t0
        print(f"create {partitions} partitions, RF {rf}: CreateTopics answered after {created:.1f} s")
        seen = {}
        while len(seen) < len(nodes) and time.monotonic() - t0 < 900:
            for n in nodes:
                if n in seen:
                    continue
                md = AdminClient({"bootstrap.servers": boot.split(",")[n - 1]}).list_topics(
                    topic="big", timeout=60)
                if len(md.topics["big"].partitions) == partitions:
                    seen[n] = time.monotonic() - t0
            time.sleep(0.2)
        print("every partition in node's Metadata after (s):", {n: round(t, 1) for n, t in seen.items()})
        md = admin.list_topics(topic="big", timeout=60)
        leaders = collections.Counter(p.leader for p in md.topics["big"].partitions.values())
        print("leaders per node:", dict(sorted(leaders.items())))
        print("partition directories per node:", {n: partition_dirs(folder, n, "big") for n in nodes})
        print("after create:", {n: resources(pids[n]) for n in nodes})

        produce_and_fetch_back(boot, "big", partitions)
        print("after produce+fetch:", {n: resources(pids[n]) for n in nodes})

        t1 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=900)
        print(f"dev-cluster stopped all nodes after SIGINT: {time.monotonic() - t1:.1f} s (exit {code})")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
            for pid in pids.values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
