"""Fetch as real consumers use it: starting mid-batch, fetch sizes smaller
than a batch (KIP-74: the first batch is returned whole anyway), offsets
out of range, and long polling (max_wait_ms / min_bytes)."""

import threading
import time

from confluent_kafka import TopicPartition

import kafka_wire
from readback import assert_dense, consumer, create_topic, producer, read_partitions

OFFSET_OUT_OF_RANGE = 1


def produce_values(bootstrap, topic, values, **conf):
    p = producer(bootstrap, **conf)
    for v in values:
        while True:
            try:
                p.produce(topic, value=v, partition=0)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(30) == 0


def test_start_mid_batch_and_at_log_end(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    values = [f"mid-{i}".encode() for i in range(1000)]
    # One flush at the end and a long linger: few, large batches, so most
    # start offsets fall inside a batch.
    produce_values(broker.bootstrap, topic, values, **{"linger.ms": 100})
    with kafka_wire.Connection(broker.address) as conn:
        batches = kafka_wire.parse_batches(kafka_wire.fetch(conn, topic, 0, 0).records)
    assert len(batches) < 100, f"expected large batches, got {len(batches)}"

    for start in (1, 137, 500, 999):
        got = read_partitions(broker.bootstrap, topic, 1, start_offset=start)[0]
        assert got and got[0].offset == start, f"start {start}: first offset {got[0].offset if got else None}"
        assert_dense(got, start)
        assert [c.value for c in got] == values[start:]

    # At the log end the consumer waits; a new record arrives promptly.
    c = consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 1000)])
        assert c.poll(1.0) is None, "a record appeared past the log end"
        produce_values(broker.bootstrap, topic, [b"late"])
        deadline = time.monotonic() + 10
        m = None
        while m is None and time.monotonic() < deadline:
            m = c.poll(0.5)
        assert m is not None and m.error() is None, f"no late record within 10 s: {m and m.error()}"
        assert (m.offset(), m.value()) == (1000, b"late")
    finally:
        c.close()


def test_fetch_sizes_smaller_than_a_batch_still_progress(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    values = [bytes([i % 251]) * 5000 + str(i).encode() for i in range(400)]
    produce_values(broker.bootstrap, topic, values, **{"linger.ms": 50, "batch.size": 200_000,
                                                       "compression.type": "none"})
    with kafka_wire.Connection(broker.address) as conn:
        first = kafka_wire.fetch(conn, topic, 0, 0, max_bytes=1024)
    assert first.error_code == 0
    batches = kafka_wire.parse_batches(first.records)
    assert len(batches) == 1 and batches[0].length > 1024, (
        "a fetch smaller than the first batch must return that batch whole (KIP-74)")

    got = read_partitions(broker.bootstrap, topic, 1, timeout=60)[0]
    assert [c.value for c in got] == values
    c = consumer(broker.bootstrap, **{"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024,
                                      "message.max.bytes": 1000,
                                      "receive.message.max.bytes": 10_000_000})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        seen = []
        deadline = time.monotonic() + 60
        while len(seen) < len(values):
            assert time.monotonic() < deadline, f"read stalled at {len(seen)} of {len(values)} records"
            for m in c.consume(500, 0.5):
                assert m.error() is None, m.error()
                seen.append(m.value())
        assert seen == values
    finally:
        c.close()


def test_offset_out_of_range(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    produce_values(broker.bootstrap, topic, [b"a", b"b", b"c"])
    with kafka_wire.Connection(broker.address) as conn:
        assert kafka_wire.fetch(conn, topic, 0, 500).error_code == OFFSET_OUT_OF_RANGE
        assert kafka_wire.fetch(conn, topic, 0, -5).error_code == OFFSET_OUT_OF_RANGE
        at_end = kafka_wire.fetch(conn, topic, 0, 3)
        assert (at_end.error_code, at_end.high_watermark, at_end.records) == (0, 3, b""), at_end
        assert kafka_wire.fetch(conn, topic, 3, 0).error_code == 3, "fetch of a missing partition"


def test_long_poll_waits_and_wakes(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    produce_values(broker.bootstrap, topic, [b"first"])
    with kafka_wire.Connection(broker.address) as conn:
        t0 = time.monotonic()
        r = kafka_wire.fetch(conn, topic, 0, 1, max_wait_ms=1500, min_bytes=1)
        waited = time.monotonic() - t0
        assert r.error_code == 0 and r.records == b""
        assert 1.0 <= waited <= 5.0, f"empty long poll with max_wait_ms=1500 returned after {waited:.2f}s"

        timer = threading.Timer(0.5, produce_values, (broker.bootstrap, topic, [b"second"]))
        timer.start()
        try:
            t0 = time.monotonic()
            r = kafka_wire.fetch(conn, topic, 0, 1, max_wait_ms=10_000, min_bytes=1)
            waited = time.monotonic() - t0
        finally:
            timer.join()
        assert r.error_code == 0
        batches = kafka_wire.parse_batches(r.records)
        assert batches and batches[0].base_offset == 1, f"long poll woke without the new record: {r}"
        assert waited < 5.0, f"long poll took {waited:.2f}s to see a record produced after 0.5s"
