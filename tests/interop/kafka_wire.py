"""Hand-built Kafka requests over a raw socket, for the tests that must send
what no well-behaved client sends: corrupt CRCs, lying length fields,
garbage frames, versions from the future.

Only the few API versions the tests need are encoded, with the byte layout
written out by `struct.pack`, so a reader can check each field against the
Kafka protocol guide (https://kafka.apache.org/protocol):

```
frame           = size:int32 (bytes that follow) + header + body
request header  v1 = api_key:int16 api_version:int16 correlation_id:int32 client_id:string
                v2 = v1 + tagged_fields (flexible versions)
response header v0 = correlation_id:int32      v1 = v0 + tagged_fields
```

`RecordBatch v2` (the on-wire and on-disk batch) is built by
`record_batch()`; its CRC is CRC-32C (Castagnoli) over everything from
`attributes` to the end, computed here by a table-driven `crc32c()`.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------
# CRC-32C (Castagnoli), reflected polynomial 0x82F63B78.

def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC-32C check value (RFC 3720) failed"

# ---------------------------------------------------------------------------
# Primitive encoders.

def i8(v: int) -> bytes: return struct.pack(">b", v)
def i16(v: int) -> bytes: return struct.pack(">h", v)
def i32(v: int) -> bytes: return struct.pack(">i", v)
def i64(v: int) -> bytes: return struct.pack(">q", v)
def u32(v: int) -> bytes: return struct.pack(">I", v)


def string(s: str | None) -> bytes:
    """STRING / NULLABLE_STRING: int16 length (-1 = null)."""
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def uvarint(v: int) -> bytes:
    assert v >= 0
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(v: int) -> bytes:
    """Zig-zag signed varint (records use these for lengths and deltas)."""
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(s: str | None) -> bytes:
    """COMPACT_(NULLABLE_)STRING: uvarint length+1 (0 = null)."""
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def compact_bytes(b: bytes | None) -> bytes:
    if b is None:
        return uvarint(0)
    return uvarint(len(b) + 1) + b


def compact_array(items: list[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


def array(items: list[bytes]) -> bytes:
    return i32(len(items)) + b"".join(items)


NO_TAGS = uvarint(0)


class Reader:
    """Sequential decoder over a response body."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"response truncated: need {n} bytes at {self.pos}, have {len(self.data) - self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _unpack(self, fmt: str, n: int) -> int:
        return struct.unpack(fmt, self.take(n))[0]

    def i8(self) -> int: return self._unpack(">b", 1)
    def i16(self) -> int: return self._unpack(">h", 2)
    def i32(self) -> int: return self._unpack(">i", 4)
    def i64(self) -> int: return self._unpack(">q", 8)
    def u32(self) -> int: return self._unpack(">I", 4)
    def boolean(self) -> bool: return self.i8() != 0

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def compact_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def compact_bytes(self) -> bytes | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1)

    def nullable_bytes(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else self.take(n)

    def array_len(self) -> int:
        return self.i32()

    def compact_array_len(self) -> int:
        return self.uvarint() - 1

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def remaining(self) -> int:
        return len(self.data) - self.pos

# ---------------------------------------------------------------------------
# RecordBatch v2.

@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp_delta: int = 0


def encode_record(r: Record, offset_delta: int) -> bytes:
    body = bytearray()
    body += i8(0)  # attributes (unused)
    body += varint(r.timestamp_delta)
    body += varint(offset_delta)
    for b in (r.key, r.value):
        body += varint(-1) if b is None else varint(len(b)) + b
    body += varint(len(r.headers))
    for hk, hv in r.headers:
        k = hk.encode()
        body += varint(len(k)) + k
        body += varint(-1) if hv is None else varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


# Byte offsets inside a RecordBatch v2 header.
BATCH_LENGTH_AT = 8
CRC_AT = 17
ATTRIBUTES_AT = 21          # the CRC covers [ATTRIBUTES_AT, end)
RECORDS_COUNT_AT = 57
BATCH_HEADER_BYTES = 61


def record_batch(
    records: list[Record],
    base_timestamp: int,
    *,
    attributes: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    records_count: int | None = None,
    records_bytes: bytes | None = None,
) -> bytes:
    """An uncompressed RecordBatch v2 with a correct CRC-32C.

    `records_count` overrides the header's count field and `records_bytes`
    the encoded records, to build batches that lie about their contents;
    the CRC is still computed over what is sent, so the lie gets past the
    checksum and reaches the record decoder.
    """
    if records_bytes is None:
        records_bytes = b"".join(encode_record(r, i) for i, r in enumerate(records))
    count = len(records) if records_count is None else records_count
    max_ts = base_timestamp + max((r.timestamp_delta for r in records), default=0)
    after_crc = (
        i16(attributes)
        + i32(max(len(records) - 1, 0))  # lastOffsetDelta
        + i64(base_timestamp)
        + i64(max_ts)
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(count)
        + records_bytes
    )
    partition_leader_epoch = -1
    batch_length = 4 + 1 + 4 + len(after_crc)  # epoch + magic + crc + rest
    return (
        i64(0)  # baseOffset: the broker assigns it
        + i32(batch_length)
        + i32(partition_leader_epoch)
        + i8(2)  # magic
        + u32(crc32c(after_crc))
        + after_crc
    )


@dataclass
class BatchHeader:
    base_offset: int
    length: int            # whole batch, including baseOffset and batchLength
    attributes: int
    last_offset_delta: int
    records_count: int
    crc_ok: bool

    @property
    def codec(self) -> int:
        return self.attributes & 0x07


def parse_batches(data: bytes, check_crc: bool = True) -> list[BatchHeader]:
    """The batch headers in a Fetch response's records (a trailing partial
    batch, which Kafka allows, is ignored)."""
    out = []
    pos = 0
    while pos + BATCH_HEADER_BYTES <= len(data):
        base_offset, batch_length = struct.unpack_from(">qi", data, pos)
        end = pos + 12 + batch_length
        if end > len(data):
            break
        magic = data[pos + 16]
        assert magic == 2, f"batch at byte {pos} has magic {magic}"
        (crc,) = struct.unpack_from(">I", data, pos + CRC_AT)
        (attributes, last_delta) = struct.unpack_from(">hi", data, pos + ATTRIBUTES_AT)
        (count,) = struct.unpack_from(">i", data, pos + RECORDS_COUNT_AT)
        crc_ok = crc32c(data[pos + ATTRIBUTES_AT:end]) == crc if check_crc else True
        out.append(BatchHeader(base_offset, end - pos, attributes, last_delta, count, crc_ok))
        pos = end
    return out

# ---------------------------------------------------------------------------
# Connection and requests.

API_PRODUCE, API_FETCH, API_LIST_OFFSETS, API_METADATA, API_API_VERSIONS = 0, 1, 2, 3, 18
API_INIT_PRODUCER_ID = 22


class ConnectionClosed(Exception):
    """The broker closed (or reset) the connection."""


class Connection:
    """One TCP connection to the broker, requests answered in order."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0):
        self.sock = socket.create_connection(address, timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_request(self, api_key: int, version: int, body: bytes, *, flexible: bool) -> int:
        self.correlation_id += 1
        header = i16(api_key) + i16(version) + i32(self.correlation_id) + string("sluice-interop")
        if flexible:
            header += NO_TAGS
        payload = header + body
        self.sock.sendall(i32(len(payload)) + payload)
        return self.correlation_id

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(str(e)) from e
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._recv_exact(4))
        assert 0 <= size <= 256 * 1024 * 1024, f"response frame size {size}"
        return self._recv_exact(size)

    def roundtrip(self, api_key: int, version: int, body: bytes, *, flexible: bool,
                  flexible_response_header: bool | None = None) -> Reader:
        """Sends a request and returns a Reader positioned at the response
        body (after the response header)."""
        cid = self.send_request(api_key, version, body, flexible=flexible)
        r = Reader(self.recv_frame())
        got = r.i32()
        assert got == cid, f"correlation id {got}, expected {cid}"
        if flexible_response_header is None:
            flexible_response_header = flexible
        if flexible_response_header:
            r.skip_tags()
        return r

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """True if the broker closes the connection within `timeout`
        (without sending anything first; any bytes received are returned
        as a failure through AssertionError)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        if data:
            raise AssertionError(f"expected the connection to close, got {len(data)} bytes: {data[:64]!r}")
        return True


# -- ApiVersions ---------------------------------------------------------

@dataclass
class ApiVersionsResponse:
    error_code: int
    api_keys: dict[int, tuple[int, int]]


def api_versions(conn: Connection, version: int = 3) -> ApiVersionsResponse:
    """ApiVersions at `version`. Requests ≥ v3 are flexible; the response
    header is always v0 (KIP-511), and a broker that does not know
    `version` answers in v0 format."""
    flexible = version >= 3
    body = (compact_string("sluice-interop") + compact_string("1.0") + NO_TAGS) if flexible else b""
    r = conn.roundtrip(API_API_VERSIONS, version, body, flexible=flexible, flexible_response_header=False)
    error_code = r.i16()
    keys = {}
    if version >= 3 and error_code != 35:
        n = r.compact_array_len()
        for _ in range(n):
            k, lo, hi = r.i16(), r.i16(), r.i16()
            r.skip_tags()
            keys[k] = (lo, hi)
    else:
        # v0 layout: also what an unsupported (too new) version gets back.
        n = r.array_len()
        for _ in range(n):
            k, lo, hi = r.i16(), r.i16(), r.i16()
            keys[k] = (lo, hi)
    return ApiVersionsResponse(error_code, keys)


# -- Metadata v4 ---------------------------------------------------------

@dataclass
class TopicMetadata:
    error_code: int
    name: str
    partitions: dict[int, int]   # partition index -> error code


def metadata_v4_body(topics: list[str] | None, allow_auto_create: bool) -> bytes:
    t = i32(-1) if topics is None else array([string(n) for n in topics])
    return t + i8(1 if allow_auto_create else 0)


def metadata(conn: Connection, topics: list[str] | None, allow_auto_create: bool = True) -> dict[str, TopicMetadata]:
    r = conn.roundtrip(API_METADATA, 4, metadata_v4_body(topics, allow_auto_create), flexible=False)
    r.i32()  # throttle_time_ms
    for _ in range(r.array_len()):
        r.i32(), r.string(), r.i32(), r.string()  # node_id, host, port, rack
    r.string()  # cluster_id
    r.i32()  # controller_id
    out = {}
    for _ in range(r.array_len()):
        err, name, _internal = r.i16(), r.string(), r.boolean()
        parts = {}
        for _ in range(r.array_len()):
            perr, index = r.i16(), r.i32()
            r.i32()  # leader
            for _ in range(r.array_len()):
                r.i32()  # replicas
            for _ in range(r.array_len()):
                r.i32()  # isr
            parts[index] = perr
        out[name] = TopicMetadata(err, name, parts)
    return out


# -- Produce v9 (flexible) -----------------------------------------------

@dataclass
class ProducePartitionResponse:
    error_code: int
    base_offset: int
    error_message: str | None


def produce_v9_body(topic: str, partition: int, records: bytes | None, acks: int = -1,
                    timeout_ms: int = 10_000) -> bytes:
    partition_data = i32(partition) + compact_bytes(records) + NO_TAGS
    topic_data = compact_string(topic) + compact_array([partition_data]) + NO_TAGS
    return (
        compact_string(None)  # transactional_id
        + i16(acks)
        + i32(timeout_ms)
        + compact_array([topic_data])
        + NO_TAGS
    )


def produce(conn: Connection, topic: str, partition: int, records: bytes | None,
            acks: int = -1) -> ProducePartitionResponse:
    r = conn.roundtrip(API_PRODUCE, 9, produce_v9_body(topic, partition, records, acks), flexible=True)
    return parse_produce_v9(r, topic, partition)


def parse_produce_v9(r: Reader, topic: str, partition: int) -> ProducePartitionResponse:
    """A one-topic, one-partition Produce v9 answer (Reader after the header)."""
    n_topics = r.compact_array_len()
    assert n_topics == 1, f"produce response has {n_topics} topics"
    name = r.compact_string()
    assert name == topic, f"produce response for topic {name!r}, sent {topic!r}"
    n_parts = r.compact_array_len()
    assert n_parts == 1, f"produce response has {n_parts} partitions"
    index, err, base = r.i32(), r.i16(), r.i64()
    assert index == partition
    r.i64(), r.i64()  # log_append_time_ms, log_start_offset
    for _ in range(r.compact_array_len()):  # record_errors
        r.i32(), r.compact_string()
        r.skip_tags()
    message = r.compact_string()
    return ProducePartitionResponse(err, base, message)


# -- ListOffsets v1-v5 ---------------------------------------------------

LATEST, EARLIEST = -1, -2


def list_offset(conn: Connection, topic: str, partition: int, timestamp: int,
                version: int = 4) -> tuple[int, int]:
    """(error_code, offset) for `timestamp` (or LATEST / EARLIEST), with
    ListOffsets v1..v5 (the non-flexible ones)."""
    assert 1 <= version <= 5
    part = i32(partition) + (i32(-1) if version >= 4 else b"") + i64(timestamp)
    body = (i32(-1) + (i8(0) if version >= 2 else b"")
            + array([string(topic) + array([part])]))
    r = conn.roundtrip(API_LIST_OFFSETS, version, body, flexible=False)
    if version >= 2:
        r.i32()  # throttle_time_ms
    assert r.array_len() == 1
    r.string()
    assert r.array_len() == 1
    index, err = r.i32(), r.i16()
    assert index == partition
    r.i64()  # timestamp
    offset = r.i64()
    if version >= 4:
        r.i32()  # leader_epoch
    return err, offset


# -- InitProducerId v1 ---------------------------------------------------

def init_producer_id(conn: Connection) -> tuple[int, int, int]:
    """(error_code, producer_id, producer_epoch) for a non-transactional
    idempotent producer."""
    r = conn.roundtrip(API_INIT_PRODUCER_ID, 1, string(None) + i32(60_000), flexible=False)
    r.i32()  # throttle_time_ms
    return r.i16(), r.i64(), r.i16()


# -- Fetch v4 ------------------------------------------------------------

@dataclass
class FetchPartitionResponse:
    error_code: int
    high_watermark: int
    records: bytes


def fetch(conn: Connection, topic: str, partition: int, offset: int,
          max_bytes: int = 1 << 20, max_wait_ms: int = 0, min_bytes: int = 0) -> FetchPartitionResponse:
    body = (
        i32(-1)            # replica_id
        + i32(max_wait_ms)
        + i32(min_bytes)
        + i32(max_bytes)
        + i8(0)            # isolation_level read_uncommitted
        + array([string(topic) + array([i32(partition) + i64(offset) + i32(max_bytes)])])
    )
    r = conn.roundtrip(API_FETCH, 4, body, flexible=False)
    r.i32()  # throttle
    assert r.array_len() == 1
    r.string()
    assert r.array_len() == 1
    index, err, hw = r.i32(), r.i16(), r.i64()
    assert index == partition
    r.i64()  # last_stable_offset
    n_aborted = r.array_len()
    for _ in range(max(n_aborted, 0)):
        r.i64(), r.i64()
    records = r.nullable_bytes() or b""
    return FetchPartitionResponse(err, hw, records)
