"""Record timestamps as the topic's message.timestamp.type says, read back by
both clients (confluent-kafka/librdkafka and kafka-python).

LogAppendTime: the broker stamps each batch with its clock at append, the
Produce response carries that time (log_append_time_ms), and consumers see
timestamp type LogAppendTime with that time for every record, whatever the
producer set. CreateTime with message.timestamp.before/after.max.ms: a
record outside the window is refused with INVALID_TIMESTAMP."""

import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, KafkaError
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from readback import admin, create_topic, producer, read_partitions

TIMEOUT = 15
ANCIENT_MS = 1_000  # 1970: far outside any sane window


def now_ms() -> int:
    return int(time.time() * 1000)


def produce_confluent(bootstrap: str, topic: str, n: int, timestamp: int, **conf) -> list:
    """Produces n records stamped `timestamp`; returns the delivery reports
    as (error, timestamp_type, timestamp)."""
    p = producer(bootstrap, **conf)
    reports = []
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=timestamp,
                  on_delivery=lambda e, m: reports.append((e, *m.timestamp())))
    assert p.flush(TIMEOUT) == 0
    return reports


def kafka_python_read(bootstrap: str, topic: str, n: int) -> list:
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        out = []
        deadline = time.monotonic() + TIMEOUT
        while len(out) < n and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                out += records
        return out
    finally:
        c.close()


# kafka-python decodes only gzip of these without optional libraries.
KAFKA_PYTHON_CODECS = {"none", "gzip"}


@pytest.mark.parametrize("compression", ["none", "gzip", "lz4", "zstd"])
def test_log_append_time_is_stamped_answered_and_read_back(broker, topic, compression):
    create_topic(broker.bootstrap, topic, 1, {"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    reports = produce_confluent(broker.bootstrap, topic, 30, ANCIENT_MS, **{"compression.type": compression})
    after = now_ms()
    assert len(reports) == 30
    for err, ts_type, ts in reports:
        assert err is None, err
        # librdkafka reports the Produce response's log_append_time_ms.
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME, (ts_type, ts)
        assert before - 1000 <= ts <= after + 1000, (before, ts, after)

    records = read_partitions(broker.bootstrap, topic, 1)[0]
    assert [r.value for r in records] == [f"v{i}".encode() for i in range(30)]
    for r in records:
        assert r.timestamp_type == TIMESTAMP_LOG_APPEND_TIME, r
        assert before - 1000 <= r.timestamp <= after + 1000, r

    if compression in KAFKA_PYTHON_CODECS:
        kp = kafka_python_read(broker.bootstrap, topic, 30)
        assert [r.value for r in kp] == [f"v{i}".encode() for i in range(30)]
        for r in kp:
            assert r.timestamp_type == 1, r  # 1 = LogAppendTime
            assert before - 1000 <= r.timestamp <= after + 1000, r

    # The stamp is on disk, not made up at read time.
    broker.restart()
    again = read_partitions(broker.bootstrap, topic, 1)[0]
    assert [(r.timestamp_type, r.timestamp) for r in again] == [(r.timestamp_type, r.timestamp) for r in records]


def test_kafka_python_producer_gets_the_log_append_time(broker, topic):
    create_topic(broker.bootstrap, topic, 1, {"message.timestamp.type": "LogAppendTime"})
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        before = now_ms()
        md = p.send(topic, value=b"x", partition=0, timestamp_ms=ANCIENT_MS).get(timeout=TIMEOUT)
        after = now_ms()
    finally:
        p.close()
    assert before - 1000 <= md.timestamp <= after + 1000, md


def test_create_time_keeps_the_producers_timestamps(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    stamp = now_ms() - 3_600_000
    reports = produce_confluent(broker.bootstrap, topic, 5, stamp)
    assert all(err is None for err, _, _ in reports), reports
    records = read_partitions(broker.bootstrap, topic, 1)[0]
    assert [(r.timestamp_type, r.timestamp) for r in records] == [(TIMESTAMP_CREATE_TIME, stamp)] * 5


def test_create_time_outside_the_window_is_an_invalid_timestamp(broker, topic):
    create_topic(broker.bootstrap, topic, 1, {"message.timestamp.before.max.ms": "60000",
                                             "message.timestamp.after.max.ms": "60000"})
    for stamp in (ANCIENT_MS, now_ms() + 3_600_000):
        reports = produce_confluent(broker.bootstrap, topic, 1, stamp, retries=0)
        assert len(reports) == 1
        err = reports[0][0]
        assert err is not None and err.code() == KafkaError.INVALID_TIMESTAMP, f"timestamp {stamp}: {err}"
    reports = produce_confluent(broker.bootstrap, topic, 3, now_ms())
    assert all(err is None for err, _, _ in reports), reports
    records = read_partitions(broker.bootstrap, topic, 1)[0]
    assert len(records) == 3, "refused records were stored"


def test_deprecated_difference_bound_applies(broker, topic):
    create_topic(broker.bootstrap, topic, 1, {"message.timestamp.difference.max.ms": "60000"})
    reports = produce_confluent(broker.bootstrap, topic, 1, ANCIENT_MS, retries=0)
    assert reports[0][0] is not None and reports[0][0].code() == KafkaError.INVALID_TIMESTAMP, reports


def test_switching_a_topic_to_log_append_time(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    produce_confluent(broker.bootstrap, topic, 2, ANCIENT_MS)
    client = admin(broker.bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET)])
    client.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource].result(timeout=TIMEOUT)
    produce_confluent(broker.bootstrap, topic, 2, ANCIENT_MS)
    broker.restart()
    produce_confluent(broker.bootstrap, topic, 1, ANCIENT_MS)
    records = read_partitions(broker.bootstrap, topic, 1)[0]
    assert [r.timestamp_type for r in records] == [TIMESTAMP_CREATE_TIME] * 2 + [TIMESTAMP_LOG_APPEND_TIME] * 3
    assert [r.timestamp for r in records[:2]] == [ANCIENT_MS] * 2
    assert all(r.timestamp > ANCIENT_MS for r in records[2:])
