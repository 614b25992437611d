#!/usr/bin/env python3
"""Restart time of one node against the data it holds: a topic of
PARTITIONS partitions (segment.bytes 128 MiB) filled with GIB GiB by an
idempotent confluent-kafka producer (4 KiB records, 64 KiB batches), then

1. a clean restart (SIGTERM, start): time from spawn to "listening on";
2. a kill -9 restart once the maintenance pass has checkpointed the
   recovery point (log.retention.check.interval.ms is 10 s here, waited
   for): time to "listening on";
3. a kill -9 restart right after writing WRITE_MIB more (the unflushed
   tail): time to "listening on".

Each start's "producer state loaded" lines are summed: how many partitions
used a snapshot and how many batch headers were read again. With a second
binary (OLD_BIN, e.g. one from before producer snapshots) the same data is
restarted clean with it too, for a ratio.

A benchmark, not a test: record the output in docs/benchmarks.md. The data
(GIB GiB, at most 5) lives in a temporary directory deleted at the end.

    cargo build --release --bin sluice
    /work/venv/bin/python bench/scripts/restart-time.py target/release/sluice [GIB] [PARTITIONS] [OLD_BIN]
"""

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "interop"))
from broker_process import BrokerProcess  # noqa: E402

TOPIC = "restart-time"
RECORD = 4096
WRITE_MIB = 256
LOADED = re.compile(r"producer state loaded.*?snapshot=(-?\d+) batches_replayed=(\d+)")


def fill(bootstrap: str, partitions: int, mib: int) -> float:
    """Writes `mib` MiB round-robin over the partitions; returns seconds."""
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                  "linger.ms": 5, "batch.size": 65536, "log_level": 2})
    value = b"r" * RECORD
    started = time.monotonic()
    for i in range(mib * 1024 * 1024 // RECORD):
        while True:
            try:
                p.produce(TOPIC, value, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.01)
        if i % 4096 == 0:
            p.poll(0)
    assert p.flush(120) == 0, "records left unacknowledged"
    return time.monotonic() - started


def timed_start(broker: BrokerProcess) -> dict:
    started = time.monotonic()
    broker.start()
    listening = time.monotonic() - started
    loads = [(int(s), int(n)) for s, n in LOADED.findall(broker.log())]
    return {
        "listening_s": round(listening, 2),
        "partitions": len(loads),
        "from_snapshot": sum(1 for s, _ in loads if s >= 0),
        "batches_replayed": sum(n for _, n in loads),
    }


def data_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.log"))


def main() -> int:
    binary = sys.argv[1]
    gib = min(float(sys.argv[2]) if len(sys.argv) > 2 else 4.0, 5.0)
    partitions = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    old_bin = sys.argv[4] if len(sys.argv) > 4 else None
    root = Path(tempfile.mkdtemp(prefix="sluice-restart-time-"))
    broker = BrokerProcess(binary, root, args=["--set", "log.retention.check.interval.ms=10000"])
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, partitions, 1,
                                      config={"segment.bytes": str(128 << 20)})])[TOPIC].result(30)
        del admin  # it would reconnect to the port of the first start for ever
        secs = fill(broker.bootstrap, partitions, int(gib * 1024))
        print(f"filled {gib} GiB in {secs:.1f} s over {partitions} partitions; "
              f"{data_bytes(broker.data_dir) / 2**30:.2f} GiB of .log bytes on disk", flush=True)

        stop = time.monotonic()
        assert broker.terminate() == 0
        print(f"clean stop: {time.monotonic() - stop:.2f} s", flush=True)
        print("clean restart:", timed_start(broker), flush=True)

        time.sleep(12)  # one maintenance pass checkpoints the recovery point
        broker.kill()
        print("kill -9 restart (recovery point checkpointed):", timed_start(broker), flush=True)

        fill(broker.bootstrap, partitions, WRITE_MIB)
        broker.kill()
        print(f"kill -9 restart ({WRITE_MIB} MiB written just before):", timed_start(broker), flush=True)

        if old_bin:
            assert broker.terminate() == 0
            old = BrokerProcess(old_bin, root, args=broker.args)
            old.data_dir = broker.data_dir
            old.starts = broker.starts
            started = time.monotonic()
            old.start()
            print(f"clean restart with {old_bin}: listening after {time.monotonic() - started:.2f} s",
                  flush=True)
            old.close()
        return 0
    finally:
        broker.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
