"""Idempotent produce at the wire level: a retried batch (same producer id,
epoch and sequence) is answered with its original offset and not written
twice, a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER, and both still hold
after a clean restart and after kill -9, as docs/durability.md promises
("producer state is rebuilt from the log on restart")."""

import pytest

import kafka_wire
from kafka_wire import Record
from readback import create_topic, read_partitions

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
TS = 1_700_000_000_000


def batch(pid, epoch, seq, tag):
    recs = [Record(f"{tag}-{i}".encode(), f"{tag}-{i}".encode()) for i in range(3)]
    return kafka_wire.record_batch(recs, TS, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def produce(broker, topic, b):
    with kafka_wire.Connection(broker.address) as conn:
        return kafka_wire.produce(conn, topic, 0, b)


def log_end(broker, topic):
    with kafka_wire.Connection(broker.address) as conn:
        err, offset = kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST)
    assert err == 0
    return offset


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_retries_deduplicated_across_restart(broker, topic, stop):
    create_topic(broker.bootstrap, topic, 1)
    with kafka_wire.Connection(broker.address) as conn:
        err, pid, epoch = kafka_wire.init_producer_id(conn)
    assert err == 0 and pid >= 0 and epoch >= 0, (err, pid, epoch)

    first, second = batch(pid, epoch, 0, "a"), batch(pid, epoch, 3, "b")
    r = produce(broker, topic, first)
    assert (r.error_code, r.base_offset) == (0, 0), r
    r = produce(broker, topic, first)
    assert (r.error_code, r.base_offset) == (0, 0), f"retry of sequence 0: {r}"
    r = produce(broker, topic, second)
    assert (r.error_code, r.base_offset) == (0, 3), r
    assert log_end(broker, topic) == 6, "a retried batch was written twice"

    r = produce(broker, topic, batch(pid, epoch, 10, "gap"))
    assert r.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER, f"sequence 10 after 5: {r}"
    assert log_end(broker, topic) == 6

    if stop == "sigterm":
        broker.restart()
    else:
        broker.kill()
        broker.start()

    r = produce(broker, topic, second)
    assert (r.error_code, r.base_offset) == (0, 3), f"retry of sequence 3 after {stop} + restart: {r}"
    assert log_end(broker, topic) == 6, f"retry after {stop} was written again"
    r = produce(broker, topic, batch(pid, epoch, 6, "c"))
    assert (r.error_code, r.base_offset) == (0, 6), f"next sequence after {stop}: {r}"
    r = produce(broker, topic, batch(pid, epoch, 20, "gap"))
    assert r.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER, f"sequence gap after {stop}: {r}"

    got = read_partitions(broker.bootstrap, topic, 1)[0]
    assert [c.value for c in got] == [f"{t}-{i}".encode() for t in "abc" for i in range(3)]
