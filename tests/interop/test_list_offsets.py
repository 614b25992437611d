"""ListOffsets: by timestamp (the first offset whose timestamp is ≥ t), and
earliest/latest, through librdkafka and through a hand-built request.

Small segments (segment.bytes=16384) make the lookups cross segment and
batch boundaries; pairs of records share a timestamp, so "first" matters.
"""

import bisect

from confluent_kafka import TopicPartition

import kafka_wire
from readback import consumer, create_topic, producer, watermarks

N = 1000
T0 = 1_600_000_000_000
STEP_MS = 10


def ts_of(i: int) -> int:
    return T0 + (i // 2) * STEP_MS


def expected_offset(t: int) -> int:
    """First offset with timestamp ≥ t, or -1 when there is none."""
    timestamps = [ts_of(i) for i in range(N)]
    i = bisect.bisect_left(timestamps, t)
    return i if i < N else -1


def test_offsets_for_times_and_watermarks(broker, topic):
    # segment.bytes=16384 makes the lookups below cross segment files.
    # max.message.bytes is lowered with it so that no batch is bigger than
    # a segment, whatever the broker does with such batches.
    create_topic(broker.bootstrap, topic, 1, {"segment.bytes": "16384", "max.message.bytes": "16384"})

    # Empty partition first: earliest = latest = 0, no offset for any time.
    assert watermarks(broker.bootstrap, topic, 1)[0] == (0, 0)
    with kafka_wire.Connection(broker.address) as conn:
        assert kafka_wire.list_offset(conn, topic, 0, T0) == (0, -1)

    p = producer(broker.bootstrap, **{"linger.ms": 0})
    for i in range(N):
        p.produce(topic, key=str(i).encode(), value=b"v" * 80 + str(i).encode(), timestamp=ts_of(i), partition=0)
        if i % 100 == 99:
            assert p.flush(15) == 0
    assert p.flush(15) == 0

    assert watermarks(broker.bootstrap, topic, 1)[0] == (0, N)

    last_ts = ts_of(N - 1)
    queries = sorted({T0 - 1_000_000, T0 - 1, T0, T0 + 1, T0 + 5, T0 + STEP_MS, T0 + STEP_MS + 1,
                      ts_of(333), ts_of(333) - 1, ts_of(500) + 9, ts_of(777), last_ts - 1, last_ts,
                      last_ts + 1, last_ts + 1_000_000})
    # One partition per call: librdkafka merges repeated partitions of one
    # request, so each timestamp gets its own offsets_for_times.
    c = consumer(broker.bootstrap)
    try:
        for t in queries:
            [tp] = c.offsets_for_times([TopicPartition(topic, 0, t)], timeout=15)
            assert tp.error is None, f"t={t}: {tp.error}"
            assert tp.offset == expected_offset(t), (
                f"offsets_for_times(t={t}) = {tp.offset}, want {expected_offset(t)}")
    finally:
        c.close()

    with kafka_wire.Connection(broker.address) as conn:
        for version in (4, 5):
            for t in queries:
                assert kafka_wire.list_offset(conn, topic, 0, t, version) == (0, expected_offset(t)), (
                    f"ListOffsets v{version} t={t}")
            assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.EARLIEST, version) == (0, 0)
            assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST, version) == (0, N)
        err, _ = kafka_wire.list_offset(conn, topic, 7, kafka_wire.LATEST)
        assert err == 3, f"ListOffsets for a missing partition: error {err}, want 3 UNKNOWN_TOPIC_OR_PARTITION"

    # Several segments exist, so the lookups above crossed segment files.
    segments = list((broker.data_dir).rglob("*.log"))
    assert len([s for s in segments if s.parent.name == f"{topic}-0"]) > 1, (
        f"expected several segments for {topic}-0, found {[str(s) for s in segments]}")


def test_list_offsets_v1(broker, topic):
    """The oldest version served (v1, no leader epoch, no isolation level)
    answers in its own format."""
    create_topic(broker.bootstrap, topic, 1)
    p = producer(broker.bootstrap)
    for i in range(10):
        p.produce(topic, value=b"v", timestamp=ts_of(i), partition=0)
    assert p.flush(15) == 0
    with kafka_wire.Connection(broker.address) as conn:
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST, version=1) == (0, 10)
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.EARLIEST, version=1) == (0, 0)
        assert kafka_wire.list_offset(conn, topic, 0, T0 + STEP_MS, version=1) == (0, 2)
