"""kafka-python's idempotent producer (on by default in 3.x; set explicitly
here) with acks=all across a broker restart: exactly the records sent,
once each, no send error.

Two shapes: a new producer after the restart (a new producer id), and the
same producer carrying on after a restart on the same port (its sequence
numbers continue, so the broker must have kept the producer state).
"""

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from readback import create_topic

N = 2000
PARTITIONS = 3


def kp_producer(bootstrap):
    assert KafkaProducer.DEFAULT_CONFIG["enable_idempotence"] is True, "kafka-python's default changed"
    return KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                         linger_ms=5, request_timeout_ms=15000, max_block_ms=15000)


def send_all(prod, topic, start, n):
    futures = [prod.send(topic, key=f"k{i}".encode(), value=f"idem-{i}".encode()) for i in range(start, start + n)]
    prod.flush(timeout=30)
    metas = [f.get(timeout=30) for f in futures]  # raises on any send error
    return {(m.partition, m.offset) for m in metas}


def kp_read_all(bootstrap, topic, partitions, timeout=60):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=15000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps, timeout_ms=15000)
        out = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"read timed out at { {tp.partition: c.position(tp) for tp in tps} }, end {end}"
            for tp, records in c.poll(timeout_ms=500).items():
                out[tp.partition] += [(r.offset, r.value) for r in records]
        return out
    finally:
        c.close()


def check_exactly_once(got, expected_values, acked):
    values = [v for recs in got.values() for _, v in recs]
    dupes = len(values) - len(set(values))
    assert dupes == 0, f"{dupes} duplicated records"
    assert sorted(values) == sorted(expected_values), (
        f"read {len(values)} records, sent {len(expected_values)}; "
        f"missing {sorted(set(expected_values) - set(values))[:5]}")
    for part, recs in got.items():
        assert [o for o, _ in recs] == list(range(len(recs))), f"partition {part}: offsets not dense"
    stored = {(p, o) for p, recs in got.items() for o, _ in recs}
    assert acked <= stored, f"acknowledged positions not stored: {sorted(acked - stored)[:5]}"


def make_topic(bootstrap, topic):
    create_topic(bootstrap, topic, PARTITIONS)


def test_new_idempotent_producer_after_restart(broker, topic):
    make_topic(broker.bootstrap, topic)
    prod = kp_producer(broker.bootstrap)
    acked = send_all(prod, topic, 0, N)
    prod.close(timeout=10)

    broker.restart()
    prod = kp_producer(broker.bootstrap)
    acked |= send_all(prod, topic, N, N)
    prod.close(timeout=10)

    assert len(acked) == 2 * N, "two sends acknowledged at the same position"
    check_exactly_once(kp_read_all(broker.bootstrap, topic, PARTITIONS),
                       [f"idem-{i}".encode() for i in range(2 * N)], acked)


def test_same_idempotent_producer_across_restart(broker, topic):
    make_topic(broker.bootstrap, topic)
    prod = kp_producer(broker.bootstrap)
    try:
        acked = send_all(prod, topic, 0, N)
        broker.restart(same_port=True)
        acked |= send_all(prod, topic, N, N)
    finally:
        prod.close(timeout=10)
    assert len(acked) == 2 * N
    check_exactly_once(kp_read_all(broker.bootstrap, topic, PARTITIONS),
                       [f"idem-{i}".encode() for i in range(2 * N)], acked)
