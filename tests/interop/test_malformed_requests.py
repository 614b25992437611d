"""Bad input over a raw socket: the broker answers with the right Kafka
error code or closes that one connection, never stores a bad batch, never
allocates what a length field claims, and keeps serving everyone else.

(a) a batch with one flipped byte in the CRC-covered area → CORRUPT_MESSAGE
    (2), log end offset unchanged;
(b) garbage frames → that connection is closed, a new one still works;
(c) count and length fields claiming ~2^31 elements in a few bytes →
    an error or a closed connection, and no jump in the broker's RSS.
"""

import gzip
import os
import socket
import zlib

import pytest

import kafka_wire
from kafka_wire import (API_METADATA, API_PRODUCE, NO_TAGS, Record, compact_array, compact_string,
                        i8, i16, i32, record_batch, uvarint, varint)
from readback import create_topic, read_partitions

CORRUPT_MESSAGE = 2
I32_MAX = 2**31 - 1
RSS_JUMP_MAX_KIB = 100 * 1024
TS = 1_700_000_000_000


def three_records() -> bytes:
    return record_batch([Record(b"k1", b"value-one", [("h", b"x")]),
                         Record(b"k2", b"value-two", [], 1),
                         Record(None, b"value-three", [], 2)], base_timestamp=TS)


def assert_serving(broker):
    """The process is alive and a fresh connection gets ApiVersions."""
    assert broker.alive(), f"broker died:\n{broker.log_tail()}"
    with kafka_wire.Connection(broker.address) as conn:
        r = kafka_wire.api_versions(conn)
        assert r.error_code == 0 and 18 in r.api_keys, r


def answer_or_close(conn: kafka_wire.Connection, timeout: float = 10.0):
    """("closed", None) or ("answered", Reader at the body); fails if the
    broker does neither within `timeout`."""
    conn.sock.settimeout(timeout)
    try:
        r = kafka_wire.Reader(conn.recv_frame())
    except kafka_wire.ConnectionClosed:
        return "closed", None
    except socket.timeout:
        raise AssertionError(f"broker neither answered nor closed the connection within {timeout}s")
    assert r.i32() == conn.correlation_id, "answer to another request"
    return "answered", r


# ---------------------------------------------------------------------------
# (a) CRC

# Byte positions to flip, relative to the batch start; all inside the
# CRC-covered region [21, end) or the CRC itself.
FLIPS = {
    "crc_field": kafka_wire.CRC_AT + 2,
    "base_timestamp": kafka_wire.ATTRIBUTES_AT + 2 + 4 + 3,
    "producer_id": kafka_wire.ATTRIBUTES_AT + 2 + 4 + 8 + 8 + 5,
    "first_record": kafka_wire.BATCH_HEADER_BYTES + 6,
    "last_byte": -1,
}


@pytest.mark.parametrize("where", list(FLIPS))
def test_flipped_byte_is_corrupt_message(broker, topic, where):
    create_topic(broker.bootstrap, topic, 1)
    with kafka_wire.Connection(broker.address) as conn:
        good = kafka_wire.produce(conn, topic, 0, three_records())
        assert (good.error_code, good.base_offset) == (0, 0), good
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST) == (0, 3)

        bad = bytearray(three_records())
        bad[FLIPS[where]] ^= 0x10
        r = kafka_wire.produce(conn, topic, 0, bytes(bad))
        assert r.error_code == CORRUPT_MESSAGE, (
            f"flip in {where}: error {r.error_code} ({r.error_message}), want 2 CORRUPT_MESSAGE")
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST) == (0, 3), "log end moved"

        again = kafka_wire.produce(conn, topic, 0, three_records())
        assert (again.error_code, again.base_offset) == (0, 3), again

    got = read_partitions(broker.bootstrap, topic, 1)[0]
    assert [c.value for c in got] == [b"value-one", b"value-two", b"value-three"] * 2


# ---------------------------------------------------------------------------
# (b) garbage frames

GARBAGE = {
    "negative_size": i32(-1) + os.urandom(16),
    "size_over_limit": i32(I32_MAX) + os.urandom(64),
    "zero_size": i32(0) + os.urandom(16),
    "header_shorter_than_fixed_fields": i32(3) + b"\x00\x03\x00",
    "unknown_api_key": i32(40) + i16(0x7ABC) + i16(0) + i32(1) + i16(-1) + os.urandom(30),
    "client_id_longer_than_frame": i32(12) + i16(18) + i16(0) + i32(1) + i16(3000) + b"ab",
}


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_garbage_frame_closes_connection(broker, kind):
    bystander = kafka_wire.Connection(broker.address)
    try:
        assert kafka_wire.api_versions(bystander).error_code == 0
        with kafka_wire.Connection(broker.address) as conn:
            conn.send_raw(GARBAGE[kind])
            assert conn.wait_closed(10), f"{kind}: the broker kept the connection open for 10 s"
        assert_serving(broker)
        # Other connections were not disturbed.
        assert kafka_wire.api_versions(bystander).error_code == 0
    finally:
        bystander.close()


# ---------------------------------------------------------------------------
# (c) lying counts and lengths

def batch_with_huge_record_count() -> bytes:
    return record_batch([Record(b"k", b"v")], base_timestamp=TS, records_count=I32_MAX)


def batch_with_huge_header_count() -> bytes:
    body = i8(0) + varint(0) + varint(0) + varint(-1) + varint(1) + b"v" + varint(I32_MAX)
    return record_batch([Record(b"k", b"v")], base_timestamp=TS, records_bytes=varint(len(body)) + body)


def batch_with_huge_key_length() -> bytes:
    body = i8(0) + varint(0) + varint(0) + varint(I32_MAX) + b"abc"
    return record_batch([Record(b"k", b"v")], base_timestamp=TS, records_bytes=varint(len(body)) + body)


def gzip_batch_with_huge_record_count() -> bytes:
    inner = kafka_wire.encode_record(Record(b"k", b"v"), 0)
    return record_batch([Record(b"k", b"v")], base_timestamp=TS, attributes=1,
                        records_count=I32_MAX, records_bytes=gzip.compress(inner))


def gzip_bomb_batch() -> bytes:
    """~1 MiB of gzip that inflates to 1 GiB of zeros (one giant 'record')."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    chunk = bytes(1 << 20)
    out = [c.compress(varint(1 << 30))]
    for _ in range(1024):
        out.append(c.compress(chunk))
    out.append(c.flush())
    return record_batch([Record(b"k", b"v")], base_timestamp=TS, attributes=1, records_bytes=b"".join(out))


HOSTILE_BATCHES = {
    "record_count_i32_max": batch_with_huge_record_count,
    "header_count_i32_max": batch_with_huge_header_count,
    "key_length_i32_max": batch_with_huge_key_length,
    "gzip_record_count_i32_max": gzip_batch_with_huge_record_count,
    "gzip_bomb_1gib": gzip_bomb_batch,
}


@pytest.mark.parametrize("kind", list(HOSTILE_BATCHES))
def test_lying_batch_is_refused_without_allocating(broker, topic, kind):
    batch = HOSTILE_BATCHES[kind]()
    create_topic(broker.bootstrap, topic, 1)
    with kafka_wire.Connection(broker.address) as conn:
        assert kafka_wire.produce(conn, topic, 0, three_records()).error_code == 0
        rss_before = broker.rss_kib()
        conn.send_request(API_PRODUCE, 9, kafka_wire.produce_v9_body(topic, 0, batch), flexible=True)
        outcome, r = answer_or_close(conn, timeout=30)
        rss_after = broker.rss_kib()
        if outcome == "answered":
            r.skip_tags()
            assert r.compact_array_len() == 1 and r.compact_string() == topic
            assert r.compact_array_len() == 1
            index, err = r.i32(), r.i16()
            assert err != 0, f"{kind}: the broker accepted a batch that lies about its contents"
    assert rss_after - rss_before < RSS_JUMP_MAX_KIB, (
        f"{kind}: broker RSS grew {rss_before} -> {rss_after} KiB")
    assert_serving(broker)
    with kafka_wire.Connection(broker.address) as conn:
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST) == (0, 3), "the lying batch was stored"


def metadata_v4_claiming_i32_max_topics() -> tuple[int, int, bytes, bool]:
    return API_METADATA, 4, i32(I32_MAX) + i16(3) + b"abc", False


def metadata_v12_claiming_2_31_topics() -> tuple[int, int, bytes, bool]:
    topic = b"\x00" * 16 + compact_string("abc") + NO_TAGS
    return API_METADATA, 12, uvarint(2**31) + topic, True


def produce_v9_claiming_2_31_topics() -> tuple[int, int, bytes, bool]:
    return API_PRODUCE, 9, compact_string(None) + i16(-1) + i32(1000) + uvarint(2**31) + compact_string("t"), True


def produce_v9_claiming_huge_records_bytes() -> tuple[int, int, bytes, bool]:
    part = i32(0) + uvarint(2**31 - 2) + b"\x00" * 8
    body = (compact_string(None) + i16(-1) + i32(1000)
            + compact_array([compact_string("t") + compact_array([part])]))
    return API_PRODUCE, 9, body, True


HOSTILE_REQUESTS = {
    "metadata_v4_topics_i32_max": metadata_v4_claiming_i32_max_topics,
    "metadata_v12_topics_2_31": metadata_v12_claiming_2_31_topics,
    "produce_v9_topics_2_31": produce_v9_claiming_2_31_topics,
    "produce_v9_records_bytes_2_31": produce_v9_claiming_huge_records_bytes,
}


@pytest.mark.parametrize("kind", list(HOSTILE_REQUESTS))
def test_lying_array_length_does_not_allocate(broker, kind):
    api_key, version, body, flexible = HOSTILE_REQUESTS[kind]()
    with kafka_wire.Connection(broker.address) as conn:
        assert kafka_wire.api_versions(conn).error_code == 0
        rss_before = broker.rss_kib()
        conn.send_request(api_key, version, body, flexible=flexible)
        outcome, r = answer_or_close(conn)
        rss_after = broker.rss_kib()
    if api_key == API_METADATA:
        # Metadata has no request-level error code: a request that cannot
        # be decoded can only be refused by closing, as Kafka does.
        assert outcome == "closed", f"{kind}: the broker answered an undecodable Metadata request"
    elif outcome == "answered":
        r.skip_tags()
        errors = []
        for _ in range(r.compact_array_len()):
            r.compact_string()
            for _ in range(r.compact_array_len()):
                r.i32()
                errors.append(r.i16())
                break
            break
        assert errors and all(errors), f"{kind}: answered without an error: {errors}"
    assert rss_after - rss_before < RSS_JUMP_MAX_KIB, f"{kind}: broker RSS grew {rss_before} -> {rss_after} KiB"
    assert_serving(broker)


# ---------------------------------------------------------------------------
# (d) batches that are intact (good CRC) but break a rule of the format

INVALID_RECORD, UNSUPPORTED_COMPRESSION_TYPE, INVALID_REQUIRED_ACKS = 87, 76, 21


def patched(batch: bytes, at: int, value: bytes) -> bytes:
    """`batch` with bytes at `at` replaced and the CRC recomputed."""
    b = bytearray(batch)
    b[at:at + len(value)] = value
    b[kafka_wire.CRC_AT:kafka_wire.CRC_AT + 4] = kafka_wire.u32(kafka_wire.crc32c(bytes(b[kafka_wire.ATTRIBUTES_AT:])))
    return bytes(b)


def non_sequential_offset_deltas() -> bytes:
    recs = [Record(b"a", b"1"), Record(b"b", b"2"), Record(b"c", b"3")]
    raw = b"".join(kafka_wire.encode_record(r, d) for r, d in zip(recs, (0, 0, 2)))
    return record_batch(recs, base_timestamp=TS, records_bytes=raw)


RULE_BREAKERS = {
    # case: (records bytes, acks, acceptable error codes)
    "two_batches_in_one_partition": (lambda: three_records() + three_records(), -1, {INVALID_RECORD}),
    "unknown_codec_7": (lambda: patched(three_records(), kafka_wire.ATTRIBUTES_AT, i16(7)), -1,
                        {UNSUPPORTED_COMPRESSION_TYPE, CORRUPT_MESSAGE, INVALID_RECORD}),
    "count_says_4_holds_3": (lambda: patched(three_records(), kafka_wire.RECORDS_COUNT_AT, i32(4)), -1,
                             {CORRUPT_MESSAGE, INVALID_RECORD}),
    "count_says_2_holds_3": (lambda: patched(three_records(), kafka_wire.RECORDS_COUNT_AT, i32(2)), -1,
                             {CORRUPT_MESSAGE, INVALID_RECORD}),
    "last_offset_delta_5_for_3_records": (lambda: patched(three_records(), kafka_wire.ATTRIBUTES_AT + 2, i32(5)),
                                          -1, {CORRUPT_MESSAGE, INVALID_RECORD}),
    "offset_deltas_0_0_2": (non_sequential_offset_deltas, -1, {CORRUPT_MESSAGE, INVALID_RECORD}),
    "magic_1": (lambda: three_records()[:16] + b"\x01" + three_records()[17:], -1,
                {CORRUPT_MESSAGE, INVALID_RECORD, 43}),
    "null_records": (lambda: None, -1, {INVALID_RECORD, CORRUPT_MESSAGE}),
    "truncated_batch": (lambda: three_records()[:-5], -1, {CORRUPT_MESSAGE, INVALID_RECORD}),
    "acks_5": (three_records, 5, {INVALID_REQUIRED_ACKS}),
}


@pytest.mark.parametrize("case", list(RULE_BREAKERS))
def test_rule_breaking_batch_is_refused(broker, topic, case):
    build, acks, codes = RULE_BREAKERS[case]
    create_topic(broker.bootstrap, topic, 1)
    with kafka_wire.Connection(broker.address) as conn:
        assert kafka_wire.produce(conn, topic, 0, three_records()).error_code == 0
        r = kafka_wire.produce(conn, topic, 0, build(), acks=acks)
        assert r.error_code in codes, f"{case}: error {r.error_code} ({r.error_message}), want one of {codes}"
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST) == (0, 3), f"{case}: log end moved"
        again = kafka_wire.produce(conn, topic, 0, three_records())
        assert (again.error_code, again.base_offset) == (0, 3), again
    assert_serving(broker)
