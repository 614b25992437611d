"""Batches over `message.max.bytes` (broker) or `max.message.bytes` (topic)
are refused with MESSAGE_TOO_LARGE (10), and nothing of them is stored.

The producer's own `message.max.bytes` is set far above the broker's so
that librdkafka sends the batch and the broker is the one refusing it.
"""

import os

from confluent_kafka import KafkaError

import kafka_wire
from readback import create_topic, producer, read_partitions, watermarks

BROKER_MAX = 1024 * 1024 + 12  # the broker's default message.max.bytes
MESSAGE_TOO_LARGE = 10


def produce_one(bootstrap, topic, value):
    """Produces one record with librdkafka; returns (error, offset)."""
    p = producer(bootstrap, **{"message.max.bytes": 8_000_000, "batch.size": 8_000_000,
                               "compression.type": "none", "message.timeout.ms": 15000})
    outcome = []
    p.produce(topic, value=value, on_delivery=lambda err, msg: outcome.append((err, msg.offset())))
    assert p.flush(20) == 0, "message still queued after 20 s"
    assert len(outcome) == 1
    return outcome[0]


def test_librdkafka_gets_msg_size_too_large_from_broker_default(broker, topic):
    err, _ = produce_one(broker.bootstrap, topic, os.urandom(BROKER_MAX + 1000))
    assert err is not None, "a batch over the broker's message.max.bytes was accepted"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, f"got {err}"
    assert watermarks(broker.bootstrap, topic, 1)[0] == (0, 0), "the refused batch left records behind"
    # The partition still takes normal records, from offset 0.
    err, offset = produce_one(broker.bootstrap, topic, b"small")
    assert err is None and offset == 0, (err, offset)


def test_librdkafka_gets_msg_size_too_large_from_topic_config(broker, topic):
    create_topic(broker.bootstrap, topic, 1, {"max.message.bytes": "10000"})
    err, _ = produce_one(broker.bootstrap, topic, os.urandom(20_000))
    assert err is not None, "a batch over the topic's max.message.bytes was accepted"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, f"got {err}"
    err, offset = produce_one(broker.bootstrap, topic, os.urandom(5_000))
    assert err is None and offset == 0, (err, offset)
    assert watermarks(broker.bootstrap, topic, 1)[0] == (0, 1)


def one_record_batch(value_size: int) -> bytes:
    return kafka_wire.record_batch([kafka_wire.Record(b"k", os.urandom(value_size))], base_timestamp=1_700_000_000_000)


def test_hand_built_oversized_batch_gets_error_10(broker, topic):
    other = topic + "-default"
    create_topic(broker.bootstrap, topic, 1, {"max.message.bytes": "2000"})
    create_topic(broker.bootstrap, other, 1)
    with kafka_wire.Connection(broker.address) as conn:
        big = one_record_batch(3000)
        assert len(big) > 2000
        r = kafka_wire.produce(conn, topic, 0, big)
        assert r.error_code == MESSAGE_TOO_LARGE, f"error {r.error_code} ({r.error_message}), want 10"
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST) == (0, 0)

        fits = one_record_batch(1500)
        assert len(fits) <= 2000
        r = kafka_wire.produce(conn, topic, 0, fits)
        assert (r.error_code, r.base_offset) == (0, 0), r
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST) == (0, 1)

        # Over the broker-wide limit on a topic without its own setting.
        huge = one_record_batch(BROKER_MAX + 100)
        r = kafka_wire.produce(conn, other, 0, huge)
        assert r.error_code == MESSAGE_TOO_LARGE, f"error {r.error_code} ({r.error_message}), want 10"
        assert kafka_wire.list_offset(conn, other, 0, kafka_wire.LATEST) == (0, 0)
        # The connection is still in step after the refusals.
        assert kafka_wire.api_versions(conn).error_code == 0


def batch_of_exactly(size: int) -> bytes:
    """A one-record batch whose whole size (with baseOffset and batchLength,
    as Kafka counts it against max.message.bytes) is `size` bytes."""
    value_size = size - len(one_record_batch(0))
    for v in range(max(value_size - 8, 0), value_size + 1):  # varint lengths grow by a byte or two
        batch = kafka_wire.record_batch([kafka_wire.Record(b"k", b"x" * v)], base_timestamp=1_700_000_000_000)
        if len(batch) == size:
            return batch
    raise AssertionError(f"cannot build a batch of exactly {size} bytes")


def test_limit_is_inclusive(broker, topic):
    create_topic(broker.bootstrap, topic, 1, {"max.message.bytes": "2000"})
    with kafka_wire.Connection(broker.address) as conn:
        r = kafka_wire.produce(conn, topic, 0, batch_of_exactly(2001))
        assert r.error_code == MESSAGE_TOO_LARGE, f"2001-byte batch: error {r.error_code}, want 10"
        r = kafka_wire.produce(conn, topic, 0, batch_of_exactly(2000))
        assert (r.error_code, r.base_offset) == (0, 0), f"2000-byte batch at max.message.bytes=2000: {r}"


def test_a_batch_larger_than_segment_bytes_is_stored_up_to_max_message_bytes(broker, topic):
    """Issue 13: `max.message.bytes` is the only limit on a batch. Kafka
    refuses an append larger than `segment.bytes` (RECORD_LIST_TOO_LARGE);
    Sluice gives it a segment of its own, so librdkafka's 100 KB records go
    into a topic of 16 KiB segments, survive a restart, and only a batch
    over `max.message.bytes` is refused (MESSAGE_TOO_LARGE)."""
    create_topic(broker.bootstrap, topic, 1, {"segment.bytes": "16384", "max.message.bytes": "200000"})
    big = [os.urandom(100_000), os.urandom(150_000)]
    for i, value in enumerate(big):
        err, offset = produce_one(broker.bootstrap, topic, value)
        assert err is None and offset == i, f"{len(value)}-byte record into 16 KiB segments: {err}"
    err, _ = produce_one(broker.bootstrap, topic, os.urandom(300_000))
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, f"got {err}"
    err, offset = produce_one(broker.bootstrap, topic, b"small")
    assert err is None and offset == 2, (err, offset)
    assert "offline" not in broker.log(), broker.log_tail()
    broker.terminate()
    broker.start()
    records = read_partitions(broker.bootstrap, topic, 1)
    assert [r.value for r in records[0]] == big + [b"small"]
