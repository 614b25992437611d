"""Power loss, not just kill -9: the broker's data directory lives on
`powerloss-fs` (this directory's FUSE file system), which keeps what was
fsynced apart from what was only written and drops the latter on a
simulated power cut: unsynced file bytes revert to the last fsync (size
included), unsynced directory entries (create, mkdir, rename, unlink) are
undone.

The scenario, per durability mode: create topics with tiny segments (many
rolls), produce with acks=all from confluent-kafka to several partitions,
commit consumer-group offsets, delete the first half of one topic's
records (DeleteRecords: the removed segments' files become the spares the
next rolls write over), keep producing and SIGKILL the broker
mid-stream (records still in flight), *and* cut the power (the FUSE layer
drops everything unsynced), restart on what was synced and read
everything back.

- `durability = "fsync"` (the default): every acknowledged record must be
  there at its acknowledged offset (from the deleted-to offset on, in the
  trimmed topic, whose log start must be exactly that), every topic with
  its partitions, every committed offset, and segments must have been
  reused.
- `durability = "page_cache"`: the control. Acknowledgements do not wait for
  fsync there, so a power cut must lose acknowledged records; if it does
  not, this file system is not dropping what it should and the fsync run
  proves nothing.

Needs /dev/fuse and the `fusermount3` of Debian's `fuse3` (`tests/run-all`
installs it); POWERLOSS_FS_BIN names the file-system binary (default
`target/release/powerloss-fs`), SLUICE_BIN the broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "interop"))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from broker_process import BrokerProcess  # noqa: E402
from readback import admin, create_topic, producer, read_partitions  # noqa: E402

# Topic name -> partitions. Tiny segments: every partition rolls many times.
TOPICS = {"powerloss-a": 3, "powerloss-b": 2}
SEGMENT_BYTES = 16 * 1024
RECORDS_PER_TOPIC = 3000
# Records acknowledged after the offsets are committed, while producing on,
# before the broker is SIGKILLed mid-stream and the power is cut.
TAIL_RECORDS = 1500
VALUE_BYTES = 200
GROUP = "powerloss-group"
# Its records below the committed (middle) offsets are deleted before the
# tail is produced, so the tail's rolls reuse the removed segments' files.
TRIMMED_TOPIC = "powerloss-b"
FS_TIMEOUT_S = 30


class PowerLossFs:
    """The `powerloss-fs` process mounted at `mountpoint`, driven over its
    stdin; unmounted and stopped (by PID) at close."""

    def __init__(self, binary: str, mountpoint: Path):
        self.mountpoint = mountpoint
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([binary, str(mountpoint)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self._answer()
        assert line == "ready", f"powerloss-fs did not mount: {line!r}"

    def _answer(self) -> str:
        line = self.proc.stdout.readline().strip()
        if not line and self.proc.poll() is not None:
            raise AssertionError(f"powerloss-fs exited with {self.proc.returncode}")
        return line

    def crash(self) -> dict[str, int]:
        """Drops everything unsynced; returns what was dropped."""
        self.proc.stdin.write("crash\n")
        self.proc.stdin.flush()
        line = self._answer()
        assert line.startswith("crashed "), f"powerloss-fs: {line!r}"
        return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=FS_TIMEOUT_S)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=FS_TIMEOUT_S)
        # A killed file system leaves a dead mount behind: clear it.
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@pytest.fixture
def fs_bin() -> str:
    path = os.environ.get("POWERLOSS_FS_BIN", str(REPO / "target" / "release" / "powerloss-fs"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"POWERLOSS_FS_BIN={path!r} is not executable; build it with "
                    "`cargo build --release -p sluice-powerloss`")
    if not os.path.exists("/dev/fuse"):
        pytest.fail("/dev/fuse is missing: the power-loss test needs FUSE")
    return path


@pytest.fixture
def sluice_bin() -> str:
    path = os.environ.get("SLUICE_BIN", str(REPO / "target" / "release" / "sluice"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"SLUICE_BIN={path!r} is not an executable sluice binary")
    return path


def produce_all(bootstrap: str) -> dict[tuple[str, int], dict[int, bytes]]:
    """Produces RECORDS_PER_TOPIC records to each topic with acks=all;
    returns (topic, partition) -> {offset: value} of what was acknowledged."""
    acked: dict[tuple[str, int], dict[int, bytes]] = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked.setdefault((msg.topic(), msg.partition()), {})[msg.offset()] = msg.value()

    p = producer(bootstrap, **{"linger.ms": 2, "batch.size": 4096})
    for topic in TOPICS:
        for i in range(RECORDS_PER_TOPIC):
            value = f"{topic}-{i:06d}-".encode().ljust(VALUE_BYTES, b"x")
            while True:
                try:
                    p.produce(topic, key=str(i).encode(), value=value, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
    assert p.flush(60) == 0, "records still unacknowledged after 60 s"
    assert not errors, f"produce errors: {errors[:5]}"
    return acked


def reused_segments(broker) -> int:
    """`sluice_reused_segments_total` from the broker's admin endpoint."""
    with urllib.request.urlopen(f"{broker.admin_url}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("sluice_reused_segments_total "):
                return int(float(line.split()[1]))
    raise AssertionError("no sluice_reused_segments_total in the metrics")


def produce_until_killed(broker, acked, kill_after: int) -> tuple[int, int]:
    """Keeps producing (acks=all) to every topic and SIGKILLs the broker
    once `kill_after` more records are acknowledged, an even share of them
    on each topic, with more still in flight; adds what was acknowledged to
    `acked`. Returns how many records were in flight (sent, never
    acknowledged) at the kill, and how many segments reused a removed one's
    file by then.

    The share per topic matters: the producer learns each topic's metadata
    on its own, and one topic's records can all be acknowledged before the
    other's first request leaves (seen on a loaded machine: 1 527 of
    `powerloss-a`, none of `powerloss-b`). The trimmed topic must roll
    during the tail for its rolls to reuse the removed segments' files."""
    per_topic = dict.fromkeys(TOPICS, 0)
    share = kill_after // len(TOPICS)

    def on_delivery(err, msg):
        if err is None:
            acked.setdefault((msg.topic(), msg.partition()), {})[msg.offset()] = msg.value()
            per_topic[msg.topic()] += 1

    # No retries and short timeouts: once the broker is dead, pending
    # records fail fast instead of holding the test up.
    p = producer(broker.bootstrap, **{"linger.ms": 2, "batch.size": 4096, "retries": 0,
                                      "message.timeout.ms": 5000, "socket.timeout.ms": 3000})
    topics = list(TOPICS)
    deadline = time.monotonic() + 60
    i = 0
    in_flight = 0
    while time.monotonic() < deadline:
        topic = topics[i % len(topics)]
        value = f"{topic}-tail-{i:06d}-".encode().ljust(VALUE_BYTES, b"y")
        try:
            p.produce(topic, key=str(i).encode(), value=value, on_delivery=on_delivery)
            i += 1
        except BufferError:
            p.poll(0.01)
        p.poll(0)
        if min(per_topic.values()) >= share and len(p) > 0:
            in_flight = len(p)
            reused = reused_segments(broker)
            broker.kill()
            break
    else:
        raise AssertionError(f"tail records acknowledged in 60 s per topic: {per_topic}, "
                             f"{share} wanted on each")
    p.flush(15)
    return in_flight, reused


def delete_first_half(bootstrap: str, committed) -> dict[tuple[str, int], int]:
    """DeleteRecords below the committed offset of each TRIMMED_TOPIC
    partition; returns (topic, partition) -> the new log start offset."""
    wanted = [TopicPartition(t, p, o) for (t, p), o in committed.items() if t == TRIMMED_TOPIC]
    client = admin(bootstrap)  # outlives its futures (readback.create_topic)
    futures = client.delete_records(wanted, request_timeout=30)
    return {(tp.topic, tp.partition): fut.result(timeout=30).low_watermark
            for tp, fut in futures.items()}


def commit_offsets(bootstrap: str, acked) -> dict[tuple[str, int], int]:
    """Commits, for GROUP, the middle offset of every partition (a simple
    consumer group: assign + synchronous commit)."""
    wanted = {tp: max(offsets) // 2 + 1 for tp, offsets in acked.items()}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in wanted.items()],
                 asynchronous=False)
    finally:
        c.close()
    return wanted


def committed_offsets(bootstrap: str, tps) -> dict[tuple[str, int], int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(t, p) for t, p in tps], timeout=15)
    finally:
        c.close()
    return {(tp.topic, tp.partition): tp.offset for tp in got}


def run_power_cut(sluice_bin, fs_bin, tmp_path, durability: str) -> dict:
    """One scenario; returns what was acknowledged and what survived."""
    fs = PowerLossFs(fs_bin, tmp_path / "mnt")
    broker = None
    try:
        # The operator's data directory: created and made durable before
        # the broker starts (the broker makes what it creates inside durable).
        data = fs.mountpoint / "data"
        data.mkdir()
        fsync_dir(fs.mountpoint)
        broker = BrokerProcess(sluice_bin, tmp_path / "broker", {
            "durability": durability,
            "offsets.topic.num.partitions": 3,
            "auto.create.topics.enable": False,
        })
        broker.data_dir = data
        broker.start()
        for topic, partitions in TOPICS.items():
            create_topic(broker.bootstrap, topic, partitions, {"segment.bytes": str(SEGMENT_BYTES)})
        t0 = time.monotonic()
        acked = produce_all(broker.bootstrap)
        produce_s = time.monotonic() - t0
        committed = commit_offsets(broker.bootstrap, acked)
        trimmed = delete_first_half(broker.bootstrap, committed)
        in_flight, reused = produce_until_killed(broker, acked, TAIL_RECORDS)

        dropped = fs.crash()
        broker.start()

        md = admin(broker.bootstrap).list_topics(timeout=15)
        topics = {name: len(t.partitions) for name, t in md.topics.items() if name in TOPICS}
        found: dict[tuple[str, int], dict[int, bytes]] = {}
        for topic, partitions in topics.items():
            for p, records in read_partitions(broker.bootstrap, topic, partitions).items():
                found[(topic, p)] = {r.offset: r.value for r in records}
        survived_commits = committed_offsets(broker.bootstrap, committed)
        broker.terminate()
        return {"acked": acked, "found": found, "topics": topics, "committed": committed,
                "survived_commits": survived_commits, "dropped": dropped,
                "produce_s": produce_s, "in_flight": in_flight, "segments": count_segments(data),
                "trimmed": trimmed, "reused": reused}
    finally:
        if broker is not None:
            broker.close()
        fs.close()


def count_segments(data: Path) -> int:
    return sum(1 for _ in data.glob("powerloss-*/*.log"))


def summary(r: dict) -> tuple[int, int, list]:
    """Acknowledged records the power cut must keep (those DeleteRecords
    removed on purpose left out), how many of them are present, and the
    missing ones."""
    kept_from = r["trimmed"]
    due = [(tp, off, value) for tp, offsets in r["acked"].items() for off, value in offsets.items()
           if off >= kept_from.get(tp, 0)]
    missing = [(tp, off) for tp, off, value in due if r["found"].get(tp, {}).get(off) != value]
    return len(due), len(due) - len(missing), missing


def test_fsync_mode_keeps_every_acknowledged_record_topic_and_offset(sluice_bin, fs_bin, tmp_path):
    r = run_power_cut(sluice_bin, fs_bin, tmp_path, "fsync")
    acked_n, kept, missing = summary(r)
    print(f"\nfsync: acknowledged {acked_n} records past the deleted ones "
          f"({r['in_flight']} more in flight at the kill); "
          f"after the power cut "
          f"{kept} present, {len(missing)} missing; topics {r['topics']}; "
          f"segments on disk {r['segments']} ({r['reused']} reused); "
          f"commits {len(r['committed'])} made, "
          f"{sum(r['survived_commits'].get(tp) == o for tp, o in r['committed'].items())} intact; "
          f"file system dropped {r['dropped']}")
    assert acked_n >= RECORDS_PER_TOPIC + TAIL_RECORDS
    assert r["topics"] == TOPICS, f"topics after the power cut: {r['topics']}"
    assert not missing, f"{len(missing)} acknowledged records lost, first {missing[:5]}"
    assert r["survived_commits"] == r["committed"], (
        f"committed offsets changed: {r['committed']} -> {r['survived_commits']}")
    assert r["segments"] > 2 * sum(TOPICS.values()), "segments did not roll"
    assert r["reused"] > 0, "no roll reused a removed segment's file"
    starts = {tp: min(r["found"].get(tp, {None: None})) for tp in r["trimmed"]}
    assert starts == r["trimmed"], f"log starts after the power cut {starts}, deleted to {r['trimmed']}"


def test_page_cache_mode_loses_acknowledged_records_so_the_fs_really_drops(sluice_bin, fs_bin, tmp_path):
    r = run_power_cut(sluice_bin, fs_bin, tmp_path, "page_cache")
    acked_n, kept, missing = summary(r)
    print(f"\npage_cache: acknowledged {acked_n} records past the deleted ones "
          f"({r['in_flight']} more in flight at the kill); "
          f"after the power cut {kept} present, "
          f"{len(missing)} missing; topics {r['topics']}; file system dropped {r['dropped']}")
    assert acked_n >= RECORDS_PER_TOPIC + TAIL_RECORDS
    assert missing, ("a power cut in page_cache mode lost no acknowledged record: "
                     "the file system is not dropping unsynced writes")
    assert r["dropped"]["bytes_dropped"] > 0
