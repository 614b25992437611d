#!/usr/bin/env python3
"""A restarted follower's catch-up rate: three nodes (`tests/fault/cluster.py`,
broker defaults), one partition with replication factor 3 and
min.insync.replicas 2; one follower is stopped (SIGTERM), MiB of 1 KiB
records are produced with acks=all meanwhile, then the follower starts
again and the time until it is back in the ISR is measured (its log then
holds everything the leader had when it rejoined). A benchmark, not a
test: record the output in docs/benchmarks.md.

    cargo build --release --bin sluice
    /work/venv/bin/python bench/scripts/follower-catch-up.py target/release/sluice [MiB]
"""

import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "fault"))
from cluster import Cluster  # noqa: E402

TOPIC = "catch-up"


def isr(bootstrap):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(TOPIC, timeout=10)
    p = md.topics[TOPIC].partitions[0]
    return p.leader, list(p.replicas), sorted(p.isrs)


def main() -> int:
    binary = sys.argv[1]
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    with tempfile.TemporaryDirectory(prefix="sluice-catch-up-") as root:
        cluster = Cluster(binary, Path(root), 3)
        try:
            cluster.start()
            admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
            admin.create_topics([NewTopic(TOPIC, 1, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(30)
            while len(isr(cluster.bootstrap)[2]) < 3:
                time.sleep(0.2)
            leader, replicas, _ = isr(cluster.bootstrap)
            follower = next(r for r in replicas if r != leader)
            cluster.nodes[follower].terminate()
            while follower in isr(cluster.bootstrap)[2]:
                time.sleep(0.2)
            producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                                 "linger.ms": 5, "batch.size": 1 << 20, "log_level": 2})
            value = b"x" * 1024
            started = time.monotonic()
            for _ in range(mib * 1024):
                while True:
                    try:
                        producer.produce(TOPIC, value, partition=0)
                        break
                    except BufferError:
                        producer.poll(0.01)
                producer.poll(0)
            assert producer.flush(120) == 0
            print(f"produced {mib} MiB with node {follower} down in "
                  f"{time.monotonic() - started:.1f} s", flush=True)
            restarted = time.monotonic()
            cluster.restart(follower)
            listening = time.monotonic()
            while follower not in isr(cluster.bootstrap)[2]:
                time.sleep(0.05)
            done = time.monotonic()
            print(f"node {follower}: listening {listening - restarted:.1f} s after the restart, "
                  f"back in the ISR {done - restarted:.1f} s after it: "
                  f"{mib / (done - listening):.0f} MiB/s of catch-up", flush=True)
        finally:
            cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
