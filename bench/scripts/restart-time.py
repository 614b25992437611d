#!/usr/bin/env python3
"""Restart time of one node against the data it holds: a topic of
PARTITIONS partitions (segment.bytes 128 MiB) filled with GIB GiB by an
idempotent confluent-kafka producer (4 KiB records, 64 KiB batches), then

1. a clean restart (SIGTERM, start): time from spawn to "listening on";
2. a kill -9 restart once the maintenance pass has checkpointed the
   recovery point (log.flush.offset.checkpoint.interval.ms is 10 s here,
   waited for; a broker before that key existed checkpointed at every
   log.retention.check.interval.ms, also 10 s here, and refuses the key): time to "listening on";
3. a kill -9 restart right after writing WRITE_MIB more (the unflushed
   tail): time to "listening on".

With --cold, each of the three is done twice: with the page cache warm
(the data was just written or read), then cold. Cold means the data
directory's files are out of the page cache when the broker starts:
`echo 3 > /proc/sys/vm/drop_caches` when that file is writable, else (a
container, where /proc/sys is read-only even for root) every file is
fsynced and dropped from the cache with posix_fadvise(POSIX_FADV_DONTNEED)
once no process maps it (the broker is stopped or killed first). The
bytes still cached are counted with mincore (fincore) and printed, so
the run shows the eviction worked. drop_caches also evicts the broker's
binary: a cold start with no data yet is timed first, for the part of a
cold start that is not the data.

After each start with data, a new consumer reads the oldest record of
every partition, then the newest ("oldest_read_s", "newest_read_s"): a
start that listens early but opens its segments lazily pays there.

Each start's "producer state loaded" lines are summed: how many partitions
used a snapshot and how many batch headers were read again. With a second
binary (OLD_BIN, e.g. one from before producer snapshots) the same data is
restarted clean with it too, for a ratio.

A benchmark, not a test: record the output in docs/benchmarks.md. The data
(GIB GiB) lives in a temporary directory (under $TMPDIR, or --dir) deleted
at the end; the script refuses to start unless FREE_GIB_MIN GiB stay free
on that disk after the fill.

    cargo build --release --bin sluice
    /work/venv/bin/python bench/scripts/restart-time.py target/release/sluice [GIB] [PARTITIONS] [OLD_BIN] \
        [--cold] [--dir DIR]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "interop"))
from broker_process import BrokerProcess  # noqa: E402

TOPIC = "restart-time"
RECORD = 4096
WRITE_MIB = 256
FREE_GIB_MIN = 20
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
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


def first_reads(bootstrap: str, partitions: int) -> tuple[float, float]:
    """Seconds until a new consumer has read the oldest record of every
    partition, then the newest: what serving after a start costs beyond
    listening (the oldest segments are the coldest)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "restart-time", "log_level": 2,
                  "enable.auto.commit": False, "fetch.max.bytes": 1 << 20,
                  "max.partition.fetch.bytes": 65536})
    try:
        c.list_topics(TOPIC, timeout=30)  # connected before the clock starts
        times = []
        for where in ("oldest", "newest"):
            started = time.monotonic()
            tps = [TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(partitions)]
            if where == "newest":
                tps = [TopicPartition(TOPIC, p, c.get_watermark_offsets(tp, timeout=30)[1] - 1)
                       for p, tp in enumerate(tps)]
            c.assign(tps)
            seen: set[int] = set()
            deadline = started + 60
            while len(seen) < partitions and time.monotonic() < deadline:
                m = c.poll(0.02)
                if m is not None and m.error() is None:
                    seen.add(m.partition())
            assert len(seen) == partitions, f"read only {sorted(seen)} within 60 s"
            times.append(round(time.monotonic() - started, 3))
        return times[0], times[1]
    finally:
        c.close()


def timed_start(broker: BrokerProcess, partitions: int = 0) -> dict:
    """Starts `broker` and times it; with `partitions`, also the first reads."""
    started = time.monotonic()
    broker.start()
    listening = time.monotonic() - started
    loads = [(int(s), int(n)) for s, n in LOADED.findall(broker.log())]
    result = {
        "listening_s": round(listening, 2),
        "partitions": len(loads),
        "from_snapshot": sum(1 for s, _ in loads if s >= 0),
        "batches_replayed": sum(n for _, n in loads),
    }
    if partitions:
        result["oldest_read_s"], result["newest_read_s"] = first_reads(broker.bootstrap, partitions)
    return result


def data_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.log"))


def cached_bytes(path: Path) -> int:
    """Bytes of the files under `path` resident in the page cache."""
    files = [str(f) for f in path.rglob("*") if f.is_file()]
    total = 0
    for i in range(0, len(files), 512):
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES",
                              *files[i:i + 512]], capture_output=True, text=True, check=False)
        total += sum(int(x) for x in out.stdout.split())
    return total


def evict(path: Path) -> str:
    """Drops the files under `path` from the page cache (see the module
    doc); no process may map them. Returns how, and what stayed cached."""
    os.sync()
    try:
        DROP_CACHES.write_text("3\n")
        how = "drop_caches"
    except OSError:
        for f in path.rglob("*"):
            if f.is_file():
                fd = os.open(f, os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
        how = "posix_fadvise(DONTNEED)"
    return f"{how}, {cached_bytes(path) / 2**20:.1f} MiB of the data left cached"


def restarts(broker: BrokerProcess, partitions: int, cold: bool) -> None:
    """The three restarts, each warm then (with `cold`) cold."""
    caches = ["warm", "cold"] if cold else ["warm"]
    for cache in caches:
        stop = time.monotonic()
        assert broker.terminate() == 0
        print(f"clean stop: {time.monotonic() - stop:.2f} s", flush=True)
        if cache == "cold":
            print("  evicted:", evict(broker.data_dir), flush=True)
        print(f"clean restart, {cache} cache:", timed_start(broker, partitions), flush=True)
    for cache in caches:
        time.sleep(12)  # one maintenance pass checkpoints the recovery point
        broker.kill()
        if cache == "cold":
            print("  evicted:", evict(broker.data_dir), flush=True)
        print(f"kill -9 restart (recovery point checkpointed), {cache} cache:",
              timed_start(broker, partitions),
              flush=True)
    for cache in caches:
        fill(broker.bootstrap, partitions, WRITE_MIB)
        broker.kill()
        if cache == "cold":
            print("  evicted:", evict(broker.data_dir), flush=True)
        print(f"kill -9 restart ({WRITE_MIB} MiB written just before), {cache} cache:",
              timed_start(broker, partitions), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("gib", nargs="?", type=float, default=4.0)
    ap.add_argument("partitions", nargs="?", type=int, default=8)
    ap.add_argument("old_bin", nargs="?")
    ap.add_argument("--cold", action="store_true", help="each restart warm, then with a cold page cache")
    ap.add_argument("--dir", help="where the temporary data directory goes (default $TMPDIR)")
    a = ap.parse_args()
    gib, partitions = a.gib, a.partitions
    parent = Path(a.dir or tempfile.gettempdir())
    free_gib = shutil.disk_usage(parent).free / 2**30
    # The fill, the 256 MiB tails and the segments' preallocation.
    needed = gib * 1.15 + 2 * WRITE_MIB / 1024 + 1
    if free_gib - needed < FREE_GIB_MIN:
        print(f"{parent}: {free_gib:.1f} GiB free; {gib} GiB of data would leave less than "
              f"{FREE_GIB_MIN} GiB", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="sluice-restart-time-", dir=parent))
    broker = BrokerProcess(a.binary, root, args=["--set", "log.retention.check.interval.ms=10000", "--set", "log.flush.offset.checkpoint.interval.ms=10000"])
    try:
        broker.start()
        if a.cold:
            # The same cold start with no data: what reading the binary
            # and starting cost, apart from the data.
            assert broker.terminate() == 0
            print("  evicted:", evict(broker.data_dir), flush=True)
            print("clean restart with no data, cold cache:", timed_start(broker), flush=True)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, partitions, 1,
                                      config={"segment.bytes": str(128 << 20)})])[TOPIC].result(30)
        del admin  # it would reconnect to the port of the first start for ever
        secs = fill(broker.bootstrap, partitions, int(gib * 1024))
        print(f"filled {gib} GiB in {secs:.1f} s over {partitions} partitions; "
              f"{data_bytes(broker.data_dir) / 2**30:.2f} GiB of .log bytes on disk; "
              f"{shutil.disk_usage(parent).free / 2**30:.1f} GiB free", flush=True)

        restarts(broker, partitions, a.cold)

        if a.old_bin:
            assert broker.terminate() == 0
            old = BrokerProcess(a.old_bin, root, args=["--set", "log.retention.check.interval.ms=10000"])
            old.data_dir = broker.data_dir
            old.starts = broker.starts
            started = time.monotonic()
            old.start()
            print(f"clean restart with {a.old_bin}: listening after {time.monotonic() - started:.2f} s",
                  flush=True)
            old.close()
        return 0
    finally:
        broker.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
