"""Memory and connection bounds against hostile clients, with the broker's
RSS measured (issue 13): every bound holds, the offender is answered with a
Kafka error or closed, and everyone else keeps being served.

(a) a slow sender announcing a 100 MiB frame holds about what it sent and
    is closed at `socket.request.read.timeout.ms`;
(b) many connections announcing huge frames neither grow the RSS nor
    starve a well-behaved client of the `queued.max.request.bytes` budget;
(c) a client that never reads its replies is closed at
    `socket.response.write.timeout.ms`;
(d) decompression bombs sent in parallel stay within
    `queued.max.decompressed.bytes`, and a topic's raised
    `max.message.bytes` does not raise the per-batch bound;
(e) `max.connections.per.ip` and `max.connections`: the extra connection
    is closed cleanly, the others keep working, refusals are counted;
(f) a produce from a producer the partition does not know is accepted at
    any sequence, as Kafka has since 2.5, and its next batch follows on;
(g) group coordinator bounds: `group.max.size`, over-long ids.
"""

from __future__ import annotations

import socket
import threading
import time
import zlib

import kafka_wire
from kafka_wire import Record, array, i32, record_batch, string, varint
from readback import create_topic

TS = 1_700_000_000_000
MIB = 1024 * 1024
HUGE_FRAME = 100 * MIB - 64  # just under socket.request.max.bytes (100 MiB)

REQUEST_TIMED_OUT = 7
MESSAGE_TOO_LARGE = 10
UNKNOWN_MEMBER_ID = 25
INVALID_REQUEST = 42
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
GROUP_MAX_SIZE_REACHED = 81
MEMBER_ID_REQUIRED = 79

API_JOIN_GROUP = 11


def serving(broker, timeout: float = 5.0) -> float:
    """Seconds a fresh connection takes to get ApiVersions answered; fails
    past `timeout`."""
    start = time.monotonic()
    with kafka_wire.Connection(broker.address, timeout=timeout) as conn:
        r = kafka_wire.api_versions(conn)
        assert r.error_code == 0, r
    return time.monotonic() - start


class RssSampler:
    """Samples the broker's RSS every 20 ms in a thread; `peak` in KiB."""

    def __init__(self, broker):
        self.broker, self.peak, self._stop = broker, broker.rss_kib(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.broker.rss_kib())
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def announce(address, size: int, body: bytes = b"") -> socket.socket:
    s = socket.create_connection(address, timeout=10)
    s.sendall(i32(size) + body)
    return s


def closed_within(s: socket.socket, timeout: float) -> bool:
    """True when the peer closes (EOF or reset) within `timeout`."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


# ---------------------------------------------------------------------------
# (a) (b) request frames


def test_slow_sender_of_a_huge_frame_holds_little_and_is_closed_at_the_deadline(broker_factory):
    broker = broker_factory({"socket.request.read.timeout.ms": 3000})
    rss_before = broker.rss_kib()
    s = announce(broker.address, HUGE_FRAME, b"\x00")
    start = time.monotonic()
    closed = False
    with RssSampler(broker) as rss:
        while time.monotonic() - start < 15:
            try:
                s.sendall(b"\x00")  # one byte every 200 ms
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_within(s, 0.2):
                closed = True
                break
    elapsed = time.monotonic() - start
    s.close()
    assert closed, "the slow sender was never closed"
    assert 2.5 <= elapsed <= 8, f"closed after {elapsed:.1f}s, deadline 3s"
    grew = rss.peak - rss_before
    print(f"slow sender: RSS {rss_before} KiB, peak {rss.peak} KiB (+{grew} KiB)")
    assert grew < 8 * 1024, f"RSS grew {grew} KiB for a client that sent a few bytes"
    assert serving(broker) < 2


def test_liars_announcing_huge_frames_hold_no_memory_and_starve_no_one(broker_factory):
    # 40 liars announce 4 GB in all, eight times the 512 MiB budget; each
    # sends 64 KiB of its frame and stalls.
    broker = broker_factory({"socket.request.read.timeout.ms": 60_000})
    rss_before = broker.rss_kib()
    liars = [announce(broker.address, HUGE_FRAME, bytes(64 * 1024)) for _ in range(40)]
    try:
        time.sleep(1)
        rss_during = broker.rss_kib()
        took = serving(broker)
        # A producer still gets memory for its request.
        with kafka_wire.Connection(broker.address) as conn:
            topic = "liars-" + str(time.monotonic_ns())
            create_topic(broker.bootstrap, topic, 1)
            r = kafka_wire.produce(conn, topic, 0, record_batch([Record(b"k", b"v")], TS))
            assert r.error_code == 0, r
        grew = rss_during - rss_before
        print(f"40 liars: RSS {rss_before} -> {rss_during} KiB (+{grew}), ApiVersions in {took:.3f}s")
        assert grew < 32 * 1024, f"RSS grew {grew} KiB for 40 × 64 KiB sent"
        assert took < 2, f"a well-behaved client waited {took:.1f}s"
    finally:
        for s in liars:
            s.close()


# ---------------------------------------------------------------------------
# (c) a client that never reads


def test_client_that_never_reads_its_replies_is_closed(broker_factory, topic):
    broker = broker_factory({"socket.response.write.timeout.ms": 2000, "durability": "page_cache"})
    create_topic(broker.bootstrap, topic, 1)
    value = bytes(900 * 1024)
    with kafka_wire.Connection(broker.address) as conn:
        for i in range(8):
            assert kafka_wire.produce(conn, topic, 0, record_batch([Record(b"k", value)], TS)).error_code == 0
    fetch_body = (i32(-1) + i32(0) + i32(0) + i32(64 * MIB) + kafka_wire.i8(0)
                  + array([string(topic) + array([i32(0) + kafka_wire.i64(0) + i32(64 * MIB)])]))
    conn = kafka_wire.Connection(broker.address)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    for _ in range(32):  # 32 × ~7 MiB of replies, never read
        conn.send_request(kafka_wire.API_FETCH, 4, fetch_body, flexible=False)
    time.sleep(5)
    # Draining now reads what was in flight, then the close.
    received = 0
    conn.sock.settimeout(30)
    try:
        while chunk := conn.sock.recv(1 << 20):
            received += len(chunk)
    except (ConnectionResetError, BrokenPipeError):
        pass
    conn.close()
    print(f"non-reader: {received} bytes reached the client before the close")
    assert received < 32 * 7 * MIB, "every reply was written: the writer was never closed"
    assert serving(broker) < 2


# ---------------------------------------------------------------------------
# (d) decompression bombs


def gzip_bomb(value_bytes: int) -> bytes:
    """A gzip batch of one record whose value is `value_bytes` zeros."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = (kafka_wire.i8(0) + varint(0) + varint(0) + varint(-1) + varint(value_bytes))
    body_len = len(head) + value_bytes + len(varint(0))
    out = [c.compress(varint(body_len) + head)]
    chunk = bytes(MIB)
    for _ in range(value_bytes // MIB):
        out.append(c.compress(chunk))
    out.append(c.compress(bytes(value_bytes % MIB)))
    out.append(c.compress(varint(0)))  # no headers
    out.append(c.flush())
    return record_batch([Record(None, b"")], TS, attributes=1, records_bytes=b"".join(out))


def produce_error(address, topic: str, batch: bytes) -> int:
    with kafka_wire.Connection(address, timeout=60) as conn:
        return kafka_wire.produce(conn, topic, 0, batch).error_code


def log_end(broker, topic: str) -> int:
    with kafka_wire.Connection(broker.address) as conn:
        err, offset = kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST)
    assert err == 0
    return offset


def test_parallel_decompression_bombs_stay_within_the_broker_budget(broker_factory, topic):
    budget = 96 * MIB
    broker = broker_factory({"queued.max.decompressed.bytes": budget, "durability": "page_cache"})
    # A client raises the topic's max.message.bytes to 100 MiB: under a
    # bound of 64 × the topic setting, a 6.4 GB bomb would be inflated.
    create_topic(broker.bootstrap, topic, 1, {"max.message.bytes": str(100 * MIB)})
    bombs = [gzip_bomb(40 * MIB) for _ in range(8)]
    rss_before = broker.rss_kib()
    errors: list[int] = []
    barrier = threading.Barrier(len(bombs))

    def send(b):
        barrier.wait()
        errors.append(produce_error(broker.address, topic, b))

    with RssSampler(broker) as rss:
        threads = [threading.Thread(target=send, args=(b,)) for b in bombs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        too_large = produce_error(broker.address, topic, gzip_bomb(200 * MIB))
    grew = rss.peak - rss_before
    print(f"8 × 40 MiB bombs: errors {sorted(errors)}, RSS {rss_before} KiB, peak +{grew} KiB; "
          f"200 MiB bomb: error {too_large}")
    assert len(errors) == len(bombs)
    assert set(errors) <= {0, REQUEST_TIMED_OUT}, errors
    assert log_end(broker, topic) == errors.count(0), "a refused batch was stored"
    # Eight at once may all be refused (each lease grows as its output
    # does, and together they can spend the budget before any finishes:
    # CI saw 0 of 8 through on a loaded machine). The promise is that the
    # budget comes back and a retry succeeds: one bomb alone gets through.
    assert produce_error(broker.address, topic, gzip_bomb(40 * MIB)) == 0, \
        "a bomb within the budget, alone, was refused"
    assert grew < (budget + 48 * MIB) // 1024, f"RSS peak grew {grew} KiB past the {budget >> 20} MiB budget"
    assert too_large == MESSAGE_TOO_LARGE, f"200 MiB of records from a 1 MiB broker limit: {too_large}"
    assert serving(broker) < 2


# ---------------------------------------------------------------------------
# (e) connection quotas


def test_max_connections_per_ip_and_total_close_the_extra_connection(broker_factory):
    broker = broker_factory({"max.connections.per.ip": 3, "max.connections": 5})
    kept = [kafka_wire.Connection(broker.address) for _ in range(3)]
    try:
        for c in kept:
            assert kafka_wire.api_versions(c).error_code == 0
        extra = kafka_wire.Connection(broker.address)
        assert extra.wait_closed(5), "the fourth connection from 127.0.0.1 stayed open"
        extra.close()
        for c in kept:
            assert kafka_wire.api_versions(c).error_code == 0, "a connection within quota broke"
        # Another address (loopback answers all of 127/8) is not limited
        # per IP, but by max.connections = 5 in all.
        others = []
        for _ in range(3):
            s = socket.create_connection(broker.address, timeout=10, source_address=("127.0.0.2", 0))
            others.append(s)
        assert not closed_within(others[0], 0.5) and not closed_within(others[1], 0.5)
        assert closed_within(others[2], 5), "the sixth connection stayed open past max.connections"
        for s in others:
            s.close()
        # A freed slot is given to the next client.
        kept.pop().close()
        time.sleep(0.3)
        kept.append(kafka_wire.Connection(broker.address))
        assert kafka_wire.api_versions(kept[-1]).error_code == 0
    finally:
        for c in kept:
            c.close()
    deadline = time.monotonic() + 5
    while "connections refused over their quotas" not in broker.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "connections refused over their quotas" in broker.log()


# ---------------------------------------------------------------------------
# (f) unknown producer


def test_unknown_producer_is_accepted_at_any_sequence(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    recs = [Record(b"k", b"v")]
    with kafka_wire.Connection(broker.address) as conn:
        # Sequence 7 from a producer id this partition never saw (evicted,
        # or all its records deleted): Kafka accepts it since 2.5 (KIP-360)
        # rather than UNKNOWN_PRODUCER_ID, which makes librdkafka bump its
        # epoch for every partition and write lost-answer batches again.
        for seq in (7, 8):
            r = kafka_wire.produce(conn, topic, 0, record_batch(recs, TS, producer_id=4242,
                                                                producer_epoch=0, base_sequence=seq))
            assert r.error_code == 0, r
        # Its retry is a duplicate; a gap is still out of order.
        r = kafka_wire.produce(conn, topic, 0, record_batch(recs, TS, producer_id=4242,
                                                            producer_epoch=0, base_sequence=8))
        assert r.error_code == 0 and r.base_offset == 1, r
        r = kafka_wire.produce(conn, topic, 0, record_batch(recs, TS, producer_id=4242,
                                                            producer_epoch=0, base_sequence=11))
        assert r.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER, r
    assert log_end(broker, topic) == 2


# ---------------------------------------------------------------------------
# (g) group coordinator


def join_group(conn, group: str, member_id: str = "", instance_id: str | None = None) -> int:
    """JoinGroup v5; returns the error code."""
    body = (string(group) + i32(10_000) + i32(10_000) + string(member_id) + string(instance_id)
            + string("consumer") + array([string("range") + i32(0)]))
    r = conn.roundtrip(API_JOIN_GROUP, 5, body, flexible=False)
    r.i32()  # throttle
    return r.i16()


def test_group_coordinator_bounds(broker_factory):
    broker = broker_factory({"group.max.size": 2})
    with kafka_wire.Connection(broker.address) as conn:
        # v5: a new member first gets an id (MEMBER_ID_REQUIRED); pending
        # ids count toward group.max.size.
        assert join_group(conn, "g") == MEMBER_ID_REQUIRED
        assert join_group(conn, "g") == MEMBER_ID_REQUIRED
        assert join_group(conn, "g") == GROUP_MAX_SIZE_REACHED
        assert join_group(conn, "g", member_id="m" * 2000) == UNKNOWN_MEMBER_ID
        assert join_group(conn, "h", instance_id="i" * 2000) == INVALID_REQUEST
        assert join_group(conn, "x" * 2000) != 0
    assert serving(broker) < 2
