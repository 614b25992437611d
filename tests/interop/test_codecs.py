"""Every Kafka codec through librdkafka, end to end: 100 000 records with
keys (some null), values (some null, some empty), headers (none, repeated
keys, null values) and explicit timestamps (some going backwards) into a
3-partition topic, then read back with assign().

The check is exact: per partition, the consumed records are the produced
ones in production order, byte for byte, at the offsets the delivery reports
gave, with no gap, loss or duplicate. A raw Fetch then shows which codec the
stored batches actually carry and that their CRC-32C holds, so a test for
"zstd" cannot pass on uncompressed data.
"""

import functools
import gzip
import random

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME

import kafka_wire
import lz4_frame
from readback import assert_dense, create_topic, producer, read_partitions

N = 100_000
PARTITIONS = 3
BASE_TS = 1_700_000_000_000

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
API_FIND_COORDINATOR = 10


def accepted_codecs(broker, codec: str) -> set[int]:
    """The codec ids the stored batches may carry. librdkafka sends LZ4
    uncompressed to a broker that does not advertise FindCoordinator (it
    takes that as "too old for KIP-57 LZ4 framing"); once the group APIs
    are advertised it must be real LZ4."""
    if codec == "lz4":
        with kafka_wire.Connection(broker.address) as conn:
            if API_FIND_COORDINATOR not in kafka_wire.api_versions(conn).api_keys:
                return {0, 3}
    return {CODEC_IDS[codec]}


def make_record(codec: str, i: int, rnd: random.Random):
    key = None if i % 97 == 0 else f"key-{i % 1000}".encode()
    if i % 101 == 0:
        value = None
    elif i % 103 == 0:
        value = b""
    else:
        value = f"{codec}:{i}:".encode() + b"x" * (i % 50) + rnd.randbytes(i % 120)
    if i % 5 == 0:
        headers = None
    elif i % 5 == 1:
        headers = [("seq", str(i).encode()), ("dup", b"a"), ("dup", b"b"), ("null", None)]
    else:
        headers = [("bin", bytes([i % 256]) * 3)]
    ts = BASE_TS + 3 * i - (5000 if i % 10 == 0 else 0)
    return key, value, headers, ts


def produce_all(bootstrap, topic, codec, records):
    p = producer(bootstrap, **{"compression.type": codec, "linger.ms": 20,
                               "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000})
    delivered = [None] * len(records)
    errors = []

    def on_delivery(i, err, msg):
        if err is not None:
            errors.append((i, err))
        else:
            delivered[i] = (msg.partition(), msg.offset())

    for i, (key, value, headers, ts) in enumerate(records):
        while True:
            try:
                p.produce(topic, key=key, value=value, headers=headers, timestamp=ts,
                          on_delivery=functools.partial(on_delivery, i))
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} messages still queued after flush(60)"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    assert None not in delivered, f"{delivered.count(None)} records without a delivery report"
    return delivered


@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_codec_roundtrip(broker, topic, codec):
    create_topic(broker.bootstrap, topic, PARTITIONS)

    rnd = random.Random(f"{codec}-{N}")
    records = [make_record(codec, i, rnd) for i in range(N)]
    delivered = produce_all(broker.bootstrap, topic, codec, records)

    # Per partition, production order must be offset order (one producer,
    # in-order delivery) and the acknowledged offsets must be 0..n-1.
    expected: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    for i, (part, offset) in enumerate(delivered):
        expected[part].append(i)
    for part, ids in expected.items():
        acked = [delivered[i][1] for i in ids]
        assert acked == list(range(len(ids))), f"partition {part}: acknowledged offsets not 0..{len(ids) - 1}"
    assert all(expected.values()), f"some partition got no records: { {p: len(v) for p, v in expected.items()} }"

    got = read_partitions(broker.bootstrap, topic, PARTITIONS, timeout=90)
    for part in range(PARTITIONS):
        consumed = got[part]
        assert len(consumed) == len(expected[part]), (
            f"partition {part}: consumed {len(consumed)}, produced {len(expected[part])}")
        assert_dense(consumed)
        for c, i in zip(consumed, expected[part]):
            key, value, headers, ts = records[i]
            want_headers = tuple(headers) if headers else None
            assert (c.key, c.value, c.headers, c.timestamp_type, c.timestamp) == (
                key, value, want_headers, TIMESTAMP_CREATE_TIME, ts), (
                f"partition {part} offset {c.offset} (record {i}) differs")

    # What is stored: the codec the producer chose, intact batches.
    with kafka_wire.Connection(broker.address) as conn:
        fetched = kafka_wire.fetch(conn, topic, 0, 0, max_bytes=256 * 1024)
    assert fetched.error_code == 0
    batches = kafka_wire.parse_batches(fetched.records)
    assert batches, "raw fetch returned no complete batch"
    codecs = {b.codec for b in batches}
    accepted = accepted_codecs(broker, codec)
    assert codecs <= accepted, f"stored batches use codecs {codecs}, expected {accepted}"
    bad = [b.base_offset for b in batches if not b.crc_ok]
    assert not bad, f"batches at offsets {bad} fail CRC-32C"
    assert batches[0].base_offset == 0
    for a, b in zip(batches, batches[1:]):
        assert b.base_offset == a.base_offset + a.last_offset_delta + 1, "fetched batches not contiguous"


HAND_BUILT_CODECS = {
    "gzip": (1, gzip.compress),
    "lz4": (3, lz4_frame.compress),
}


@pytest.mark.parametrize("codec", list(HAND_BUILT_CODECS))
def test_hand_built_compressed_batch_roundtrip(broker, topic, codec):
    """Compressed batches built here (not by librdkafka, which never sends
    real LZ4 to this broker yet) are accepted, stored with their codec, and
    decoded by librdkafka on the way back."""
    codec_id, compress = HAND_BUILT_CODECS[codec]
    create_topic(broker.bootstrap, topic, 1)
    rnd = random.Random(codec)
    batches = []
    for b in range(5):
        recs = [kafka_wire.Record(f"k{b}-{i}".encode() if i % 7 else None,
                                  rnd.randbytes(i * 13 % 3000) + b"tail" * (i % 200),
                                  [("n", str(i).encode()), ("z", None)] if i % 3 else [], i * 2)
                for i in range(200)]
        raw = b"".join(kafka_wire.encode_record(r, i) for i, r in enumerate(recs))
        batches.append((recs, kafka_wire.record_batch(recs, BASE_TS + b * 1000, attributes=codec_id,
                                                      records_bytes=compress(raw))))
    with kafka_wire.Connection(broker.address) as conn:
        for n, (recs, batch) in enumerate(batches):
            r = kafka_wire.produce(conn, topic, 0, batch)
            assert (r.error_code, r.base_offset) == (0, n * 200), f"batch {n}: {r}"
        stored = kafka_wire.parse_batches(kafka_wire.fetch(conn, topic, 0, 0, max_bytes=8 << 20).records)
    assert [b.codec for b in stored] == [codec_id] * 5, f"stored codecs {[b.codec for b in stored]}"
    assert all(b.crc_ok for b in stored)

    got = read_partitions(broker.bootstrap, topic, 1)[0]
    want = [(r, b * 1000 + BASE_TS + r.timestamp_delta) for b, (recs, _) in enumerate(batches) for r in recs]
    assert len(got) == len(want)
    assert_dense(got)
    for c, (r, ts) in zip(got, want):
        assert (c.key, c.value, c.headers, c.timestamp) == (
            r.key, r.value, tuple(r.headers) if r.headers else None, ts), f"offset {c.offset} differs"
