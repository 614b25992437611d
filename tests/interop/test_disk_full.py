"""The data disk fills up: produce fails with a retriable error, what was
acknowledged stays readable, commits of consumed positions keep working,
and the broker serves writes again by itself once space returns.

The disk is a real size-limited file system the test makes itself: a
tmpfs of `DISK_MIB` mounted over the broker's data directory (this needs
root, as the CI machine runs; elsewhere the test is skipped and says why).
tmpfs implements `fallocate`, so the broker meets ENOSPC where it reserves
segment and index blocks, as it would on ext4 or xfs.

Kafka answers a produce it cannot store with KAFKA_STORAGE_ERROR (56), a
retriable error: the client retries or fails the send after its timeout.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from broker_process import BrokerProcess

DISK_MIB = 48
VALUE_BYTES = 8 * 1024
KAFKA_STORAGE_ERROR = 56
# Small segments and indexes: a roll, and with it a block reservation, every
# 256 KiB of records, so a full disk is met within a few seconds of produce.
TOPIC_CONFIG = {"segment.bytes": str(256 * 1024), "segment.index.bytes": str(64 * 1024)}


def mount_tmpfs(path: Path, mib: int) -> None:
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({r.stderr.strip()}); "
                    "the disk-full test needs root")


def free_bytes(path: Path) -> int:
    s = os.statvfs(path)
    return s.f_bavail * s.f_frsize


def fill(path: Path, keep_free: int) -> Path:
    """A filler file that leaves about `keep_free` bytes free."""
    filler = path / "filler"
    with open(filler, "wb") as f:
        chunk = b"\0" * (1 << 20)
        while free_bytes(path) > keep_free + len(chunk):
            f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    return filler


def produce_one(bootstrap: str, topic: str, value: bytes, timeout_s: float) -> tuple[int | None, int | None]:
    """Sends one record with no retries: (offset, None) when acknowledged,
    (None, Kafka error code) when refused."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0,
                  "enable.idempotence": False, "linger.ms": 0,
                  "message.timeout.ms": int(timeout_s * 1000), "log_level": 2})
    out: dict = {}

    def report(err, msg):
        out["err"], out["offset"] = err, (msg.offset() if err is None else None)

    p.produce(topic, value=value, partition=0, on_delivery=report)
    p.flush(timeout_s + 5)
    err = out.get("err")
    if err is None and "offset" in out:
        return out["offset"], None
    return None, (err.code() if err is not None else None)


def read_all(bootstrap: str, topic: str, end: int, timeout_s: float = 30) -> dict[int, bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 2})
    got: dict[int, bytes] = {}
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout_s
        while len(got) < end and time.monotonic() < deadline:
            for m in c.consume(500, 1.0):
                if m.error() is None:
                    got[m.offset()] = m.value()
    finally:
        c.close()
    return got


def commit(bootstrap: str, topic: str, group: str, offset: int) -> int:
    """Commits `offset` for `group` synchronously; returns the error code (0 = ok)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "log_level": 2})
    try:
        done = c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
        return done[0].error.code() if done and done[0].error else 0
    except Exception as e:  # KafkaException carries the KafkaError
        return e.args[0].code()
    finally:
        c.close()


def committed(bootstrap: str, topic: str, group: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 2})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def test_disk_full_refuses_produce_keeps_data_and_recovers(sluice_bin, tmp_path):
    workdir = tmp_path / "broker"
    b = BrokerProcess(sluice_bin, workdir, {"offsets.topic.num.partitions": 1})
    mount_tmpfs(b.data_dir, DISK_MIB)
    try:
        b.start()
        topic = f"full-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1, config=TOPIC_CONFIG)])[topic].result(30)
        acked: dict[int, bytes] = {}
        # The group commits once while the disk has room (its offsets
        # partition exists and has reserved blocks).
        group = f"g-{uuid.uuid4().hex[:8]}"
        assert commit(b.bootstrap, topic, group, 0) == 0

        # Leave about 2 MiB: a few segment rolls' worth.
        filler = fill(b.data_dir, 2 << 20)
        refused = None
        for i in range(2000):
            value = f"{i:08d}".encode() + os.urandom(VALUE_BYTES - 8)
            offset, error = produce_one(b.bootstrap, topic, value, 10)
            if error is not None:
                refused = error
                break
            acked[offset] = value
        assert refused is not None, f"{len(acked)} records fit on a {DISK_MIB} MiB disk"
        print(f"disk full after {len(acked)} acknowledged records; refused with {refused}")
        assert refused == KAFKA_STORAGE_ERROR, f"full disk answered {refused}, not KAFKA_STORAGE_ERROR"
        assert acked, "the disk filled before any record was acknowledged"
        assert b.alive(), f"the broker died on a full disk:\n{b.log_tail()}"

        # Full: still refused, and what was acknowledged is all there.
        assert produce_one(b.bootstrap, topic, b"x" * VALUE_BYTES, 5)[1] == KAFKA_STORAGE_ERROR
        end = max(acked) + 1
        got = read_all(b.bootstrap, topic, end)
        assert got == acked, f"{len(acked)} acknowledged, {len(got)} read back while full"
        # A commit is a small record in the offsets partition's reserved
        # blocks: it still works while the data disk is full.
        assert commit(b.bootstrap, topic, group, end) == 0
        assert committed(b.bootstrap, topic, group) == end

        # Space returns: writes work again without a restart.
        filler.unlink()
        deadline = time.monotonic() + 30
        while True:
            offset, error = produce_one(b.bootstrap, topic, b"after", 10)
            if error is None:
                break
            assert time.monotonic() < deadline, f"produce still fails with {error} 30 s after space returned"
            time.sleep(0.5)
        assert offset == end, f"the first record after the disk full got offset {offset}, not {end}"
        acked[offset] = b"after"

        # Nothing was corrupted: a clean restart on the same files reads
        # every acknowledged record back, and the commit.
        b.restart()
        got = read_all(b.bootstrap, topic, end + 1)
        assert got == acked, f"after restart: {len(acked)} acknowledged, {len(got)} read back"
        assert committed(b.bootstrap, topic, group) == end
        log = b.log(1) + b.log(2)
        assert "panicked" not in log, log
        # The refusals are in the log, rate-limited: one line for this
        # client and error per minute, however many produces were refused.
        refusals = [line for line in b.log(1).splitlines()
                    if "client error" in line and "KAFKA_STORAGE_ERROR" in line]
        assert 1 <= len(refusals) <= 2, refusals
    finally:
        b.close()
        subprocess.run(["umount", "-l", str(b.data_dir)], capture_output=True)
