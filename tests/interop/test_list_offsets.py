"""ListOffsets: by timestamp (the first offset whose timestamp is ≥ t), and
earliest/latest, through librdkafka and through a hand-built request.

Small segments (segment.bytes=16384) make the lookups cross segment and
batch boundaries; pairs of records share a timestamp, so "first" matters.
"""

import bisect

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

import kafka_wire
from readback import admin, consumer, producer, watermarks

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
    client = admin(broker.bootstrap)
    client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                   config={"segment.bytes": "16384"})])[topic].result(15)

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
    c = consumer(broker.bootstrap)
    try:
        answers = c.offsets_for_times([TopicPartition(topic, 0, t) for t in queries], timeout=15)
    finally:
        c.close()
    for t, tp in zip(queries, answers):
        assert tp.error is None, f"t={t}: {tp.error}"
        assert tp.offset == expected_offset(t), f"offsets_for_times(t={t}) = {tp.offset}, want {expected_offset(t)}"

    with kafka_wire.Connection(broker.address) as conn:
        for t in queries:
            assert kafka_wire.list_offset(conn, topic, 0, t) == (0, expected_offset(t)), f"ListOffsets v1 t={t}"
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.EARLIEST) == (0, 0)
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST) == (0, N)
        err, _ = kafka_wire.list_offset(conn, topic, 7, kafka_wire.LATEST)
        assert err == 3, f"ListOffsets for a missing partition: error {err}, want 3 UNKNOWN_TOPIC_OR_PARTITION"

    # Several segments exist, so the lookups above crossed segment files.
    segments = list((broker.data_dir).rglob("*.log"))
    assert len([s for s in segments if s.parent.name == f"{topic}-0"]) > 1, (
        f"expected several segments for {topic}-0, found {[str(s) for s in segments]}")
