"""Retention as consumers see it: old segments go (by size and by record
timestamp), the log start offset moves forward in whole segments, the log
end does not move, and a consumer starting at the beginning starts at the
new log start and reads a dense tail.

The broker checks retention every `log.retention.check.interval.ms`
(set to 200 ms here); small segments (segment.bytes=1024) give retention
something to delete.
"""

import time

from readback import assert_dense, create_topic, producer, read_partitions, watermarks

CHECK_INTERVAL = {"log.retention.check.interval.ms": 200}
WAIT_S = 15


def produce_one_batch_each(bootstrap, topic, values, timestamp_ms=None):
    p = producer(bootstrap, **{"linger.ms": 0})
    for v in values:
        p.produce(topic, value=v, partition=0, timestamp=timestamp_ms or 0)
        assert p.flush(15) == 0


def wait_for_retention(bootstrap, topic):
    """Waits until the log start offset has moved and then stayed put for
    a second (five retention checks), so that the assertions below see
    retention's final state, not a pass in progress."""
    deadline = time.monotonic() + WAIT_S
    last, stable_since = None, None
    while time.monotonic() < deadline:
        low, high = watermarks(bootstrap, topic, 1)[0]
        if (low, high) != last:
            last, stable_since = (low, high), time.monotonic()
        elif low > 0 and time.monotonic() - stable_since >= 1.0:
            return low, high
        time.sleep(0.1)
    raise AssertionError(f"retention did not settle within {WAIT_S}s: (log start, high watermark) = {last}")


def test_retention_bytes_deletes_old_segments(broker_factory, topic):
    broker = broker_factory(config=CHECK_INTERVAL)
    create_topic(broker.bootstrap, topic, 1, {"segment.bytes": "1024", "retention.bytes": "3000"})
    values = [f"rb-{i:04d}".encode() + b"." * 90 for i in range(100)]
    produce_one_batch_each(broker.bootstrap, topic, values)

    low, high = wait_for_retention(broker.bootstrap, topic)
    assert high == 100, f"retention moved the log end: {high}"
    # ~170-byte batches in 1024-byte segments: 3000 bytes keep a few
    # segments, i.e. a few dozen records at most.
    assert low >= 50, f"only {low} records deleted; retention.bytes=3000 should keep far fewer than {100 - low}"
    got = read_partitions(broker.bootstrap, topic, 1)[0]
    assert got and got[0].offset == low, f"read from the beginning started at {got[0].offset if got else None}, log start {low}"
    assert_dense(got, low)
    assert [c.value for c in got] == values[low:]


def test_retention_ms_deletes_segments_of_old_records(broker_factory, topic):
    broker = broker_factory(config=CHECK_INTERVAL)
    create_topic(broker.bootstrap, topic, 1, {"segment.bytes": "1024", "retention.ms": "3600000"})
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
    old = [f"old-{i:04d}".encode() + b"." * 90 for i in range(50)]
    fresh = [f"new-{i:04d}".encode() + b"." * 90 for i in range(10)]
    produce_one_batch_each(broker.bootstrap, topic, old, timestamp_ms=two_hours_ago)
    produce_one_batch_each(broker.bootstrap, topic, fresh)

    low, high = wait_for_retention(broker.bootstrap, topic)
    assert high == 60
    assert low <= 50, f"retention.ms deleted fresh records: log start {low}"
    got = read_partitions(broker.bootstrap, topic, 1)[0]
    assert_dense(got, low)
    assert [c.value for c in got] == (old + fresh)[low:]
    # Old records can only survive in the segment that also holds fresh
    # ones (its newest timestamp is recent): at most one segment's worth.
    assert low >= 50 - 1024 // 150, f"log start {low}: expired segments kept"
