"""Broker-side `compression.type` (topic and broker setting), as Kafka's
LogValidator applies it: `producer` stores batches as the producer sent
them; a codec name makes the broker recompress every batch in another
codec, at the KIP-390 level the topic sets.

Each test produces with librdkafka in several codecs, then reads the
stored batches with a raw Fetch (their attributes name the codec, their
CRC-32C holds) and reads the records back with librdkafka and, for the
codecs the pinned kafka-python can decode without optional libraries
(gzip, uncompressed), kafka-python, byte for byte.
"""

from __future__ import annotations

import pytest
from confluent_kafka.admin import ConfigResource

import kafka_wire
from readback import admin, create_topic, producer, read_kafka_python, read_partitions

CODEC_IDS = {"uncompressed": 0, "none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
PRODUCER_CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 300


def produce_each_codec(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    """PER_CODEC keyed records from one producer per codec, in order."""
    sent: list[tuple[bytes, bytes]] = []
    for codec in PRODUCER_CODECS:
        p = producer(bootstrap, **{"compression.type": codec, "linger.ms": 20})
        errors = []
        for i in range(PER_CODEC):
            key, value = f"{codec}-{i}".encode(), (f"value {codec} {i} " * 8).encode()
            p.produce(topic, value=value, key=key, partition=0,
                      on_delivery=lambda err, _m: err and errors.append(err))
            sent.append((key, value))
        assert p.flush(30) == 0
        assert not errors, errors
    return sent


def stored_codecs(broker, topic: str) -> list[int]:
    """The codec id of every stored batch of partition 0, checking CRCs."""
    codecs: list[int] = []
    offset = 0
    with kafka_wire.Connection(broker.address) as conn:
        while True:
            resp = kafka_wire.fetch(conn, topic, 0, offset)
            assert resp.error_code == 0
            batches = kafka_wire.parse_batches(resp.records)
            if not batches:
                return codecs
            for b in batches:
                assert b.crc_ok, f"batch at {b.base_offset} fails its CRC"
                codecs.append(b.codec)
                offset = b.base_offset + b.last_offset_delta + 1


# kafka-python decodes snappy, lz4 and zstd only with optional libraries
# the interop venv does not pin.
KAFKA_PYTHON_READS = {"uncompressed", "gzip"}


def read_back_both_clients(bootstrap: str, topic: str, n: int) -> tuple[list, list]:
    """(librdkafka's records, kafka-python's records) of partition 0."""
    librdkafka = [(c.key, c.value) for c in read_partitions(bootstrap, topic, 1)[0]]
    python = [(k, v) for _, k, v in read_kafka_python(bootstrap, topic, lambda _, got: len(got) >= n,
                                                      timeout_ms=10000)]
    return librdkafka, python


@pytest.mark.parametrize("topic_codec", ["lz4", "gzip", "uncompressed", "zstd", "snappy"])
def test_topic_codec_recompresses_every_producer_codec(broker, topic, topic_codec):
    create_topic(broker.bootstrap, topic, 1, {"compression.type": topic_codec})
    sent = produce_each_codec(broker.bootstrap, topic)
    codecs = stored_codecs(broker, topic)
    assert codecs and set(codecs) == {CODEC_IDS[topic_codec]}, codecs
    if topic_codec in KAFKA_PYTHON_READS:
        librdkafka, python = read_back_both_clients(broker.bootstrap, topic, len(sent))
        assert python == sent
    else:
        librdkafka = [(c.key, c.value) for c in read_partitions(broker.bootstrap, topic, 1)[0]]
    assert librdkafka == sent


def test_producer_keeps_each_codec_and_broker_default_applies(broker_factory, topic):
    # The broker's own compression.type is the default of topics without one.
    broker = broker_factory({"compression.type": "gzip", "compression.gzip.level": 9})
    create_topic(broker.bootstrap, topic, 1)
    kept = f"{topic}-producer"
    create_topic(broker.bootstrap, kept, 1, {"compression.type": "producer"})
    sent = produce_each_codec(broker.bootstrap, topic)
    produce_each_codec(broker.bootstrap, kept)
    assert set(stored_codecs(broker, topic)) == {1}
    assert set(stored_codecs(broker, kept)) == {0, 1, 2, 3, 4}
    librdkafka, python = read_back_both_clients(broker.bootstrap, topic, len(sent))
    assert librdkafka == sent and python == sent
    client = admin(broker.bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = client.describe_configs([res])[res].result(15)
    assert described["compression.type"].value == "gzip"
    assert described["compression.gzip.level"].value == "9"


def test_levels_change_the_stored_size_and_bad_levels_are_refused(broker, topic):
    fast, best = f"{topic}-1", f"{topic}-9"
    create_topic(broker.bootstrap, fast, 1, {"compression.type": "gzip", "compression.gzip.level": "1"})
    create_topic(broker.bootstrap, best, 1, {"compression.type": "gzip", "compression.gzip.level": "9"})
    sizes = {}
    for name in (fast, best):
        p = producer(broker.bootstrap, **{"compression.type": "none", "linger.ms": 50,
                                          "batch.size": 1_000_000})
        for i in range(2000):
            p.produce(name, value=(f"{i % 13} lorem ipsum dolor sit amet {i} " * 4).encode(), partition=0)
        assert p.flush(30) == 0
        with kafka_wire.Connection(broker.address) as conn:
            resp = kafka_wire.fetch(conn, name, 0, 0, max_bytes=8 << 20)
        batches = kafka_wire.parse_batches(resp.records)
        assert {b.codec for b in batches} == {1}
        sizes[name] = sum(b.length for b in batches)
    assert sizes[best] < sizes[fast], sizes
    client = admin(broker.bootstrap)
    from confluent_kafka.admin import NewTopic
    from readback import create_error
    for key, value in [("compression.lz4.level", "18"), ("compression.zstd.level", "23"),
                       ("compression.gzip.level", "10"), ("compression.gzip.level", "0"),
                       ("compression.gzip.level", "-2"), ("compression.type", "brotli")]:
        err = create_error(client, NewTopic(f"{topic}-bad", 1, 1, config={key: value}))
        assert err is not None and err.name() == "INVALID_CONFIG", (key, err)
