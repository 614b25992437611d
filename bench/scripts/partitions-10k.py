#!/usr/bin/env python3
"""10 000 partitions on one node: create time, RSS, open descriptors and
maps, produce to and fetch from every partition, clean and kill -9 restart
times. A benchmark, not a test: run by hand, record in docs/benchmarks.md.

    python3 -m venv .venv && .venv/bin/pip install -r tests/interop/requirements.txt
    cargo build --release --bin sluice
    .venv/bin/python bench/scripts/partitions-10k.py target/release/sluice [partitions] [segments]

With `segments` > 1 the topic gets `segment.bytes=1024` and each partition
is written `segments` times, one 700 B record per round: one segment per
record, so 10 000 partitions hold 10 000 × `segments` segments (more files
than RLIMIT_NOFILE allows open); after the clean restart every record is
read back once more.

The broker runs with this machine's limits as they are (it raises its soft
RLIMIT_NOFILE to the hard limit itself); the data directory is a fresh
temporary one, removed at the end.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def start(binary, data_dir, log_path, port=0):
    log = open(log_path, "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen([binary, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}"],
                            stdout=log, stderr=log, env=dict(os.environ, NO_COLOR="1"))
    while True:
        text = open(log_path, errors="replace").read()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
        if m:
            return proc, int(m.group(1)), time.monotonic() - t0
        if proc.poll() is not None:
            sys.exit(f"broker exited:\n{text[-3000:]}")
        if time.monotonic() - t0 > 600:
            proc.kill()
            sys.exit("broker did not listen within 600 s")
        time.sleep(0.05)


def resources(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/maps") as f:
        maps = sum(1 for _ in f)
    return {"rss_mib": round(rss / 1024, 1), "fds": fds, "maps": maps}


def produce_and_fetch_back(boot, topic, partitions, rounds=1, value_size=100):
    """`rounds` times one record of `value_size` bytes to every partition
    (each round flushed, so each is its own batch), then reads each back;
    prints both times. (Also used by partitions-cluster.py.)"""
    p = Producer({"bootstrap.servers": boot, "linger.ms": 50, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 2_000_000})
    t0 = time.monotonic()
    for _ in range(rounds):
        for i in range(partitions):
            p.produce(topic, value=b"x" * value_size, partition=i)
            p.poll(0)
        left = p.flush(300)
        assert left == 0, f"{left} records undelivered"
    print(f"produce {rounds} record(s) to each of {partitions} partitions: {time.monotonic() - t0:.1f} s")
    fetch_back(boot, topic, partitions, rounds)


def fetch_back(boot, topic, partitions, rounds):
    """Reads every partition from offset 0 until each gave `rounds` records."""
    c = Consumer({"bootstrap.servers": boot, "group.id": "bench-10k", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
    t0 = time.monotonic()
    counts = [0] * partitions
    done = 0
    while done < partitions and time.monotonic() - t0 < 600:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error() is None:
                counts[m.partition()] += 1
                if counts[m.partition()] == rounds:
                    done += 1
    c.close()
    print(f"fetch back {done} of {partitions} partitions ({sum(counts)} records): {time.monotonic() - t0:.1f} s")


def main():
    binary = sys.argv[1]
    partitions = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    segments = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    configs = {"segment.bytes": "1024"} if segments > 1 else {}
    value_size = 700 if segments > 1 else 100
    work = tempfile.mkdtemp(prefix="sluice-10k-")
    data = os.path.join(work, "data")
    try:
        proc, port, _ = start(binary, data, os.path.join(work, "run1.log"))
        boot = f"127.0.0.1:{port}"
        print("idle broker:", resources(proc.pid))
        admin = AdminClient({"bootstrap.servers": boot, "socket.timeout.ms": 300000})
        t0 = time.monotonic()
        fut = admin.create_topics([NewTopic("big", partitions, 1, config=configs)], request_timeout=600,
                                  operation_timeout=600)
        fut["big"].result(timeout=900)
        print(f"create {partitions} partitions: {time.monotonic() - t0:.1f} s")
        print("after create:", resources(proc.pid))
        produce_and_fetch_back(boot, "big", partitions, segments, value_size)
        # Destroyed now, so its reconnect attempts do not fill the output
        # while the broker restarts below.
        del admin
        print("after produce+fetch:", resources(proc.pid))
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=600)
        print(f"clean shutdown: {time.monotonic() - t0:.1f} s")
        proc, port, took = start(binary, data, os.path.join(work, "run2.log"))
        print(f"restart after clean shutdown (to listening): {took:.1f} s;", resources(proc.pid))
        if segments > 1:
            segment_files = sum(1 for _, _, fs in os.walk(data) for f in fs if f.endswith(".log"))
            print(f"segment files: {segment_files}")
            fetch_back(f"127.0.0.1:{port}", "big", partitions, segments)
            print("after fetching every segment back:", resources(proc.pid))
        proc.kill()
        proc.wait()
        proc, port, took = start(binary, data, os.path.join(work, "run3.log"))
        print(f"restart after kill -9 (to listening): {took:.1f} s;", resources(proc.pid))
        proc.kill()
        proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
