"""Producer-state snapshots (Kafka's `<offset>.snapshot`): a partition
opens from its latest snapshot and reads only the log above it.

- After a clean shutdown the snapshot at the log end is used: no batch is
  read again ("producer state loaded ... batches_replayed=0").
- After kill -9 the snapshot of the last segment roll is used: only the
  batches written since are read again, and a retry of a batch below the
  snapshot is still answered with its first offsets (not written twice).
"""

from __future__ import annotations

import re

import kafka_wire
from kafka_wire import Record
from readback import create_topic

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
TS = 1_700_000_000_000
RECORDS_PER_BATCH = 3
BATCHES = 60
LOADED = re.compile(
    r"producer state loaded.*?topic=(\S+) partition=0 snapshot=(-?\d+) batches_replayed=(\d+) producers=(\d+)"
)


def batch(pid, epoch, seq, tag):
    recs = [Record(f"{tag}-{i}".encode(), f"{tag}-{i}".encode() * 8) for i in range(RECORDS_PER_BATCH)]
    return kafka_wire.record_batch(recs, TS, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def produce(broker, topic, b):
    with kafka_wire.Connection(broker.address) as conn:
        return kafka_wire.produce(conn, topic, 0, b)


def loaded(broker, topic):
    """(snapshot offset, batches replayed, producers) of the topic's
    partition 0 in the broker's current log."""
    found = [m for m in LOADED.finditer(broker.log()) if m.group(1) == topic]
    assert len(found) == 1, f"one 'producer state loaded' line for {topic}:\n{broker.log_tail()}"
    return tuple(int(g) for g in found[0].groups()[1:])


def snapshot_files(broker, topic):
    return sorted(p.name for p in (broker.data_dir / f"{topic}-0").glob("*.snapshot"))


def test_restarts_read_only_the_log_above_the_latest_snapshot(broker, topic):
    # Small segments: the batches below roll a few of them.
    create_topic(broker.bootstrap, topic, 1, {"segment.bytes": "2048"})
    with kafka_wire.Connection(broker.address) as conn:
        err, pid, epoch = kafka_wire.init_producer_id(conn)
    assert err == 0 and pid >= 0, (err, pid)
    sent = []
    for i in range(BATCHES):
        b = batch(pid, epoch, i * RECORDS_PER_BATCH, f"b{i}")
        r = produce(broker, topic, b)
        assert (r.error_code, r.base_offset) == (0, i * RECORDS_PER_BATCH), r
        sent.append(b)
    end = BATCHES * RECORDS_PER_BATCH
    rolls = snapshot_files(broker, topic)
    assert len(rolls) >= 3, f"segment rolls should have written snapshots: {rolls}"

    # Clean restart: the snapshot written at close covers the whole log.
    broker.restart()
    assert loaded(broker, topic) == (end, 0, 1)

    # More batches, then kill -9: the last roll's snapshot is used and only
    # the batches after it are read again.
    for i in range(BATCHES, 2 * BATCHES):
        b = batch(pid, epoch, i * RECORDS_PER_BATCH, f"b{i}")
        r = produce(broker, topic, b)
        assert (r.error_code, r.base_offset) == (0, i * RECORDS_PER_BATCH), r
        sent.append(b)
    end = 2 * BATCHES * RECORDS_PER_BATCH
    last_roll = max(int(name.split(".")[0]) for name in snapshot_files(broker, topic))
    assert last_roll > BATCHES * RECORDS_PER_BATCH, last_roll
    broker.kill()
    broker.start()
    snapshot, replayed, producers = loaded(broker, topic)
    assert snapshot == last_roll, (snapshot, last_roll)
    assert replayed == (end - last_roll) // RECORDS_PER_BATCH, (replayed, end, last_roll)
    assert replayed < BATCHES, replayed
    assert producers == 1

    # The producer state is whole: retries of its last five batches are
    # answered with their first offsets (whether loaded from the snapshot or replayed),
    # the next sequence is taken and a gap is refused.
    for i in range(2 * BATCHES - 5, 2 * BATCHES):
        r = produce(broker, topic, sent[i])
        assert (r.error_code, r.base_offset) == (0, i * RECORDS_PER_BATCH), f"retry of batch {i}: {r}"
    r = produce(broker, topic, batch(pid, epoch, 2 * BATCHES * RECORDS_PER_BATCH, "next"))
    assert (r.error_code, r.base_offset) == (0, end), r
    r = produce(broker, topic, batch(pid, epoch, 10_000, "gap"))
    assert r.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER, r
