"""Reading a topic back with confluent-kafka, without consumer groups.

Consumers here use `assign()` with explicit offsets and never commit, so
that what these tests check does not depend on the group coordinator
(written after them). `group.id` is still required by librdkafka's config;
nothing is committed under it.

A read ends when every partition has been read up to the high watermark
measured at the start (ListOffsets latest through
`get_watermark_offsets`), or fails at its deadline.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


@dataclass(frozen=True)
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple | None
    timestamp_type: int
    timestamp: int


def consumer(bootstrap: str, **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": f"interop-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "socket.timeout.ms": 10000,
        # Every batch read is CRC-checked by librdkafka too: the broker
        # must never serve bytes that fail their CRC-32C.
        "check.crcs": True,
    }
    conf.update(extra)
    return Consumer(conf)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int, config: dict | None = None,
                 timeout: float = 15) -> None:
    """CreateTopics for one topic, failing the test on any error. (The
    AdminClient must outlive its futures, or they fail with _DESTROY.)"""
    client = admin(bootstrap)
    fut = client.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                         config=config or {})], request_timeout=timeout)[name]
    fut.result(timeout)


def create_error(client: AdminClient, topic: NewTopic, validate_only: bool = False,
                 timeout: float = 15.0) -> KafkaError | None:
    """Runs CreateTopics for one topic; returns its KafkaError, or None on success."""
    futures = client.create_topics([topic], operation_timeout=10, request_timeout=timeout,
                                   validate_only=validate_only)
    return future_error(futures[topic.topic], timeout)


def future_error(fut, timeout: float = 15.0) -> KafkaError | None:
    """Waits for an admin future; returns its KafkaError, or None on success."""
    try:
        fut.result(timeout=timeout)
        return None
    except KafkaException as e:
        return e.args[0]


def producer(bootstrap: str, **extra) -> Producer:
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 30000,
    }
    conf.update(extra)
    return Producer(conf)


def watermarks(bootstrap: str, topic: str, partitions: int, timeout: float = 10.0) -> dict[int, tuple[int, int]]:
    """partition -> (low, high) watermark, asked of the broker."""
    c = consumer(bootstrap)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
                for p in range(partitions)}
    finally:
        c.close()


def read_partitions(bootstrap: str, topic: str, partitions: int, timeout: float = 60.0,
                    start_offset: int = OFFSET_BEGINNING) -> dict[int, list[Consumed]]:
    """Every record of `topic` below the current high watermark, per
    partition in offset order. Fails on any consumer error."""
    marks = watermarks(bootstrap, topic, partitions)
    c = consumer(bootstrap)
    out: dict[int, list[Consumed]] = {p: [] for p in range(partitions)}
    todo = {p for p in range(partitions) if marks[p][1] > marks[p][0]}
    try:
        c.assign([TopicPartition(topic, p, start_offset) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while todo:
            assert time.monotonic() < deadline, (
                f"read of {topic} timed out; watermarks {marks}, "
                f"read so far {{p: len}} = { {p: len(v) for p, v in out.items()} }")
            for m in c.consume(num_messages=10000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consumer error on {topic}[{m.partition()}]: {err}")
                hdrs = m.headers()
                ts_type, ts = m.timestamp()
                out[m.partition()].append(Consumed(m.partition(), m.offset(), m.key(), m.value(),
                                                   tuple(hdrs) if hdrs is not None else None, ts_type, ts))
                if m.offset() + 1 >= marks[m.partition()][1]:
                    todo.discard(m.partition())
    finally:
        c.close()
    return out


def read_kafka_python(bootstrap: str, topic: str, stop, timeout_ms: int = 5000) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of partition 0 read by kafka-python from the
    beginning, until `stop(offset, records so far)` holds or nothing
    arrives for `timeout_ms`."""
    from kafka import KafkaConsumer, TopicPartition as KTopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=timeout_ms)
    tp = KTopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out = []
    try:
        for m in c:
            out.append((m.offset, m.key, m.value))
            if stop(m.offset, out):
                break
    finally:
        c.close()
    return out


def wait_until(predicate, timeout: float, what: str):
    """`predicate()`'s first truthy value, polled every 0.2 s; fails after
    `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def assert_dense(records: list[Consumed], start: int = 0) -> None:
    """Offsets are start, start+1, ... with no gap and no repeat."""
    offsets = [r.offset for r in records]
    expected = list(range(start, start + len(records)))
    if offsets != expected:
        first_bad = next(i for i, (a, b) in enumerate(zip(offsets, expected)) if a != b)
        raise AssertionError(
            f"offsets not dense from {start}: first mismatch at index {first_bad}: "
            f"got {offsets[max(0, first_bad - 3):first_bad + 3]}, "
            f"expected {expected[max(0, first_bad - 3):first_bad + 3]}")
