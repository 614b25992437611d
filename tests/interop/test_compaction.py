"""Log compaction (`cleanup.policy=compact`) with real clients: librdkafka
writes many versions of a few keys and tombstones; the broker's cleaner
keeps the latest record of each key at its original offset, removes the
tombstones once `delete.retention.ms` has passed, and librdkafka and
kafka-python read the compacted log (with its offset gaps and emptied
batches) back. A record without a key is refused with INVALID_RECORD.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError

from readback import create_topic, producer, read_partitions

KEYS = 20
VERSIONS = 25
DELETED = range(0, 5)  # keys whose last record is a tombstone
BROKER = {"log.retention.check.interval.ms": 300}
TOPIC = {"cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "300",
         "delete.retention.ms": "3000"}


def produce_versions(bootstrap: str, topic: str) -> dict[bytes, tuple[int, bytes | None]]:
    """Every key's last (offset, value) as the delivery reports gave them."""
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    p = producer(bootstrap, **{"linger.ms": 0, "compression.type": "gzip"})
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            latest[msg.key()] = (msg.offset(), msg.value())

    for version in range(VERSIONS):
        for k in range(KEYS):
            key = f"key-{k}".encode()
            value = None if (k in DELETED and version == VERSIONS - 1) else f"{k}:{version}".encode() * 5
            p.produce(topic, key=key, value=value, partition=0, on_delivery=report)
        p.flush(30)
    assert p.flush(30) == 0 and not errors, errors
    return latest


def read_kafka_python(bootstrap: str, topic: str, end: int) -> list[tuple[int, bytes, bytes | None]]:
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=5000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out = []
    for m in c:
        out.append((m.offset, m.key, m.value))
        if m.offset + 1 >= end:
            break
    c.close()
    return out


def test_compaction_keeps_latest_per_key_and_drops_tombstones(broker_factory, topic):
    broker = broker_factory(BROKER)
    create_topic(broker.bootstrap, topic, 1, TOPIC)
    latest = produce_versions(broker.bootstrap, topic)
    written = KEYS * VERSIONS
    live = {k: v for k, v in latest.items() if v[1] is not None}
    assert len(live) == KEYS - len(DELETED)
    want = sorted((off, key, value) for key, (off, value) in live.items())
    deadline = time.monotonic() + 60
    while True:
        got = sorted((c.offset, c.key, c.value) for c in read_partitions(broker.bootstrap, topic, 1)[0])
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(got) < written, "nothing was compacted"
    assert got == want, f"{len(got)} records, want {len(want)}: {got[:10]}"
    # The log end did not move: offsets are kept, the gaps are skipped.
    end = max(off for off, _ in latest.values()) + 1
    python = read_kafka_python(broker.bootstrap, topic, end)
    assert sorted(python) == want
    broker.restart(same_port=True)
    again = sorted((c.offset, c.key, c.value) for c in read_partitions(broker.bootstrap, topic, 1)[0])
    assert again == want, "the compacted log reopens as it was"


def test_keyless_record_to_a_compacted_topic_is_invalid_record(broker, topic):
    create_topic(broker.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    p = producer(broker.bootstrap, **{"retries": 0})
    errors = []
    p.produce(topic, value=b"no key", partition=0,
              on_delivery=lambda err, _m: errors.append(err))
    p.flush(15)  # its own batch: INVALID_RECORD fails the whole batch
    p.produce(topic, key=b"k", value=b"with key", partition=0,
              on_delivery=lambda err, _m: errors.append(err))
    p.flush(15)
    codes = [e.code() if e is not None else None for e in errors]
    assert KafkaError.INVALID_RECORD in codes, codes
    assert None in codes, "the keyed record is accepted"
