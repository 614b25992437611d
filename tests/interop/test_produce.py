"""Produce paths beyond the codec matrix: every acks level, several
producers writing one partition at once, and records written by one client
library read by the other."""

import threading
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from readback import assert_dense, create_topic, producer, read_partitions, watermarks

N = 3000


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_every_acks_level_delivers(broker, topic, acks):
    create_topic(broker.bootstrap, topic, 1)
    p = producer(broker.bootstrap, acks=acks)
    errors, offsets = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            offsets.append(msg.offset())

    values = [f"acks{acks}-{i}".encode() for i in range(N)]
    for v in values:
        p.produce(topic, value=v, partition=0, on_delivery=on_delivery)
    assert p.flush(30) == 0
    assert not errors, errors[:3]
    if acks != "0":
        # With acks=0 there is no answer, so no offset to report.
        assert sorted(offsets) == list(range(N))
    else:
        # Nor a moment at which the records must be readable; but they must
        # become readable soon (Kafka: at once), not when some later acks≥1
        # write happens to move the high watermark.
        deadline = time.monotonic() + 10
        while watermarks(broker.bootstrap, topic, 1)[0][1] < N and time.monotonic() < deadline:
            time.sleep(0.2)
        high = watermarks(broker.bootstrap, topic, 1)[0][1]
        assert high == N, f"acks=0: {N} records sent, high watermark still {high} after 10 s"
    got = read_partitions(broker.bootstrap, topic, 1)[0]
    assert_dense(got)
    assert [c.value for c in got] == values


def test_concurrent_producers_into_one_partition(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    writers = 4
    acked: list[list[int]] = [[] for _ in range(writers)]
    failures = []

    def write(w):
        p = producer(broker.bootstrap, **{"linger.ms": 1})

        def on_delivery(err, msg):
            if err is not None:
                failures.append(err)
            else:
                acked[w].append(msg.offset())

        for i in range(N):
            while True:
                try:
                    p.produce(topic, value=f"w{w}-{i}".encode(), partition=0, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        if p.flush(60) != 0:
            failures.append("flush timed out")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert not failures, failures[:3]
    all_offsets = sorted(o for a in acked for o in a)
    assert all_offsets == list(range(writers * N)), "acknowledged offsets overlap or leave gaps"

    got = read_partitions(broker.bootstrap, topic, 1)[0]
    assert_dense(got)
    for w in range(writers):
        mine = [c for c in got if c.value.startswith(f"w{w}-".encode())]
        assert [c.value for c in mine] == [f"w{w}-{i}".encode() for i in range(N)], f"writer {w}: order broken"
        assert [c.offset for c in mine] == acked[w], f"writer {w}: stored offsets differ from acknowledged"


def test_kafka_python_gzip_read_by_librdkafka_and_back(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip", acks="all", linger_ms=5)
    sent = []
    for i in range(N):
        key, value = f"k{i}".encode(), f"kafka-python-{i}".encode() * (i % 5 + 1)
        headers = [("i", str(i).encode())]
        sent.append((key, value, (("i", str(i).encode()),), 1_650_000_000_000 + i))
        kp.send(topic, key=key, value=value, headers=headers, partition=0, timestamp_ms=1_650_000_000_000 + i)
    kp.flush(30)
    kp.close(10)

    got = read_partitions(broker.bootstrap, topic, 1)[0]
    assert_dense(got)
    assert [(c.key, c.value, c.headers, c.timestamp) for c in got] == sent

    # The other way: librdkafka's gzip batches read by kafka-python (which
    # needs extra modules for the other codecs, gzip it reads natively).
    p = producer(broker.bootstrap, **{"compression.type": "gzip"})
    for i in range(100):
        p.produce(topic, value=f"rd-{i}".encode(), partition=0)
    assert p.flush(15) == 0
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, N)
        values = []
        for _ in range(40):
            for records in c.poll(timeout_ms=500).values():
                values += [r.value for r in records]
            if len(values) >= 100:
                break
        assert values == [f"rd-{i}".encode() for i in range(100)]
    finally:
        c.close()
