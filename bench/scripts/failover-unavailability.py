#!/usr/bin/env python3
"""Produce unavailability after kill -9 of a partition leader, with the
broker defaults: three nodes (`tests/fault/cluster.py`), a topic with
replication factor 3 and min.insync.replicas 2, one confluent-kafka
producer (acks=all, idempotent) sending a record to partition 0 every
10 ms. Each round kills partition 0's leader with SIGKILL and reports the
time from the kill until a record sent after it is acknowledged, then
restarts the node and waits until every replica is back in the ISR. A
benchmark, not a test: record the output in docs/benchmarks.md.

    cargo build --release --bin sluice
    /work/venv/bin/python bench/scripts/failover-unavailability.py target/release/sluice [rounds]
"""

import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "fault"))
from cluster import Cluster  # noqa: E402

TOPIC = "failover"


def state(bootstrap):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(TOPIC, timeout=10)
    p = md.topics[TOPIC].partitions[0]
    return p.leader, sorted(p.isrs)


def main() -> int:
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory(prefix="sluice-failover-") as root:
        cluster = Cluster(binary, Path(root), 3)
        try:
            cluster.start()
            admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
            admin.create_topics([NewTopic(TOPIC, 3, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(30)
            while len(state(cluster.bootstrap)[1]) < 3:
                time.sleep(0.2)
            acked = []  # (send time, ack time)
            lock = threading.Lock()
            stop = threading.Event()
            producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                                 "enable.idempotence": True, "linger.ms": 0,
                                 "message.timeout.ms": 60000, "log_level": 2})

            def send():
                while not stop.is_set():
                    sent = time.monotonic()

                    def done(err, _msg, sent=sent):
                        if err is None:
                            with lock:
                                acked.append((sent, time.monotonic()))
                    producer.produce(TOPIC, b"x", partition=0, on_delivery=done)
                    producer.poll(0.01)
                producer.flush(60)

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            time.sleep(2)
            for r in range(1, rounds + 1):
                leader, _ = state(cluster.bootstrap)
                killed = time.monotonic()
                cluster.nodes[leader].kill9()
                while True:
                    with lock:
                        after = [a for s, a in acked if s > killed]
                    if after:
                        break
                    time.sleep(0.01)
                print(f"round {r}: kill -9 of leader node {leader} → acks=all acknowledged again "
                      f"after {min(after) - killed:.2f} s", flush=True)
                cluster.restart(leader)
                while len(state(cluster.bootstrap)[1]) < 3:
                    time.sleep(0.2)
            stop.set()
            sender.join(60)
        finally:
            cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
