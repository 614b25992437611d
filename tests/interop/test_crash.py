"""kill -9 mid-stream with acks=all and the default durability (fsync):
every record the broker acknowledged is there after recovery, at the offset
it was acknowledged with, and the recovered logs are dense.

Several rounds on one data directory (produce, kill -9 at a random moment,
restart), so later recoveries run over logs an earlier recovery truncated.
Records the producer sent but never saw acknowledged may or may not be
present (the broker may have written them just before dying); the checker
allows them, as long as each is a record we really sent, once.

A failure prints the seed; rerun with SLUICE_SEED=<seed>. Both durability
modes are run: a process kill must not lose acknowledged data in either.
"""

import os
import random
import time

import pytest

from readback import assert_dense, create_topic, producer, read_partitions

PARTITIONS = 3
ROUNDS = 3
PRODUCE_DEADLINE_S = 60


def produce_until_killed(broker, topic, rnd, round_no, acked, sent):
    """Produces until `kill_after` new acks, then SIGKILLs the broker with
    records still in flight. Returns (acks seen at kill, records in flight)."""
    kill_after = rnd.randrange(2_000, 25_000)
    # Short timeouts: once the broker is dead, pending messages should fail
    # quickly instead of holding the test up. No retries: a retried record
    # could legitimately appear twice, and this test checks for duplicates.
    p = producer(broker.bootstrap, **{"linger.ms": rnd.choice([0, 2, 10]), "message.timeout.ms": 5000,
                                      "retries": 0, "socket.timeout.ms": 3000})
    start_acks = sum(len(v) for v in acked.values())
    conflicts = []

    def on_delivery(err, msg):
        if err is None:
            prior = acked[msg.partition()].setdefault(msg.offset(), msg.value())
            if prior != msg.value():
                conflicts.append((msg.partition(), msg.offset(), prior, msg.value()))

    deadline = time.monotonic() + PRODUCE_DEADLINE_S
    i = 0
    while time.monotonic() < deadline:
        value = f"crash-r{round_no}-{i}".encode()
        try:
            p.produce(topic, key=str(i).encode(), value=value, on_delivery=on_delivery)
            sent.add(value)
            i += 1
        except BufferError:
            p.poll(0.01)
        p.poll(0)
        new_acks = sum(len(v) for v in acked.values()) - start_acks
        if new_acks >= kill_after and len(p) > 0:
            in_flight = len(p)
            broker.kill()
            # Deliver the outcome of everything still queued: acks that
            # arrived before the kill are reported by these polls.
            p.flush(15)
            assert not conflicts, f"two records acknowledged at one offset: {conflicts[:3]}"
            return new_acks, in_flight
    raise AssertionError(f"round {round_no}: fewer than {kill_after} acks within {PRODUCE_DEADLINE_S}s")


@pytest.mark.parametrize("durability", ["fsync", "page_cache"])
def test_kill9_loses_no_acknowledged_record(broker_factory, topic, durability):
    """fsync acknowledges after fdatasync; page_cache after the write into
    the page cache. Both promise survival of a process kill (not of an OS
    crash, which this test cannot cause)."""
    broker = broker_factory(config={"durability": durability})
    seed = int(os.environ.get("SLUICE_SEED", random.randrange(1 << 32)))
    print(f"SLUICE_SEED={seed}")
    rnd = random.Random(seed)
    create_topic(broker.bootstrap, topic, PARTITIONS)
    acked: dict[int, dict[int, bytes]] = {i: {} for i in range(PARTITIONS)}
    sent: set[bytes] = set()

    for round_no in range(ROUNDS):
        n_acks, in_flight = produce_until_killed(broker, topic, rnd, round_no, acked, sent)
        assert in_flight > 0, "killed with nothing in flight: not mid-stream"
        broker.start()
        check(broker, topic, acked, sent, f"seed {seed}, after round {round_no}")


def check(broker, topic, acked, sent, where):
    got = read_partitions(broker.bootstrap, topic, PARTITIONS, timeout=60)
    for part in range(PARTITIONS):
        records = got[part]
        assert_dense(records)
        by_offset = {c.offset: c.value for c in records}
        missing = [o for o in sorted(acked[part]) if o not in by_offset]
        assert not missing, (
            f"{where}: partition {part}: {len(missing)} acknowledged offsets missing after kill -9 "
            f"(first {missing[:5]}, log end {len(records)}, acked up to {max(acked[part])})")
        wrong = [(o, acked[part][o], by_offset[o]) for o in sorted(acked[part]) if by_offset[o] != acked[part][o]]
        assert not wrong, f"{where}: partition {part}: acknowledged offsets hold other values: {wrong[:5]}"
        strangers = [c for c in records if c.value not in sent]
        assert not strangers, f"{where}: partition {part}: records never sent: {strangers[:3]}"
    values = [c.value for part in got.values() for c in part]
    assert len(values) == len(set(values)), f"{where}: a record appears twice (retries are off)"
