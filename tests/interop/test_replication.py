"""Partition replication on a real three-node cluster, with real clients:
records acknowledged with acks=all are held by every in-sync replica, so
each survives the loss of its leader (kill -9, one leader after the other)
and comes back exactly once, in order; with the ISR below
min.insync.replicas, acks=all is refused with NOT_ENOUGH_REPLICAS while
acks=1 still succeeds; restarted replicas catch up and rejoin the ISR.

Each node gets a short broker session (2 s) so a killed node is fenced and
its leaderships move within the test's patience; the time from kill -9 of
a leader to the next acknowledged acks=all write is printed (it is the
produce unavailability a client sees).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic
from kafka import KafkaProducer
from kafka.errors import NotEnoughReplicasError

from broker_process import Cluster
from readback import admin, assert_dense, create_error, producer, read_partitions

PARTITIONS = 3
PATIENCE_S = 30.0
SESSION_ENV = {
    "SLUICE_BROKER_SESSION_TIMEOUT_MS": "2000",
    "SLUICE_BROKER_HEARTBEAT_INTERVAL_MS": "250",
    # A lagging follower leaves the ISR quickly enough for the test.
    "SLUICE_REPLICA_LAG_TIME_MAX_MS": "3000",
}


@pytest.fixture
def cluster(sluice_bin, tmp_path):
    c = Cluster(sluice_bin, tmp_path, size=3)
    for node in c.nodes.values():
        node.extra_env.update(SESSION_ENV)
    c.start()
    yield c
    c.close()


def create_replicated(bootstrap: str, name: str, min_insync: int = 2) -> None:
    client = admin(bootstrap)
    topic = NewTopic(name, num_partitions=PARTITIONS, replication_factor=3,
                     config={"min.insync.replicas": str(min_insync)})
    deadline = time.monotonic() + PATIENCE_S
    while True:
        err = create_error(client, topic)
        if err is None or err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return
        assert time.monotonic() < deadline, f"create {name}: {err}"
        time.sleep(0.5)


def partition_state(bootstrap: str, name: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, isr) as Metadata reports them."""
    md = admin(bootstrap).list_topics(name, timeout=10)
    return {p: (pm.leader, list(pm.replicas), sorted(pm.isrs))
            for p, pm in md.topics[name].partitions.items()}


def eventually(what: str, check, timeout: float = PATIENCE_S):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as e:  # a node being elected or restarted
            last = e
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def produce_all(bootstrap: str, name: str, start: int, count: int) -> None:
    """acks=all, idempotent; every record must be acknowledged."""
    p = producer(bootstrap, **{"enable.idempotence": True, "linger.ms": 2})
    errors = []

    def done(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(start, start + count):
        p.produce(name, value=f"v{i}".encode(), partition=i % PARTITIONS, on_delivery=done)
        p.poll(0)
    assert p.flush(60) == 0, "records left unacknowledged"
    assert errors == [], errors[:3]


def values_by_partition(bootstrap: str, name: str) -> dict[int, list[bytes]]:
    read = read_partitions(bootstrap, name, PARTITIONS)
    for records in read.values():
        assert_dense(records)
    return {p: [r.value for r in records] for p, records in read.items()}


def expected(count: int) -> dict[int, list[bytes]]:
    return {p: [f"v{i}".encode() for i in range(count) if i % PARTITIONS == p]
            for p in range(PARTITIONS)}


def test_acknowledged_records_survive_each_leader_being_killed(cluster):
    name = "replicated"
    create_replicated(cluster.bootstrap, name)
    eventually("every ISR full", lambda: all(
        len(isr) == 3 for _, _, isr in partition_state(cluster.bootstrap, name).values()))
    produce_all(cluster.bootstrap, name, 0, 3000)
    total = 3000
    for victim in sorted({leader for leader, _, _ in partition_state(cluster.bootstrap, name).values()}):
        cluster.kill(victim)
        killed_at = time.monotonic()
        survivors = ",".join(cluster.bootstrap_of(i) for i in cluster.nodes if i != victim)
        # The first acks=all write acknowledged after the kill, on every
        # partition: how long producers wait for the new leaders.
        produce_all(survivors, name, total, 300)
        total += 300
        print(f"\nkill -9 of node {victim}: acks=all writes acknowledged again after "
              f"{time.monotonic() - killed_at:.2f}s (session timeout 2 s)")
        state = partition_state(survivors, name)
        assert all(leader != victim for leader, _, _ in state.values()), state
        assert values_by_partition(survivors, name) == expected(total)
        cluster.restart(victim)
        eventually(f"node {victim} back in every ISR", lambda: all(
            len(isr) == 3 for _, _, isr in partition_state(cluster.bootstrap, name).values()))
    assert values_by_partition(cluster.bootstrap, name) == expected(total)


def test_acks_all_needs_min_insync_replicas_and_acks_1_does_not(cluster):
    # min.insync.replicas = 3 on three replicas: losing one follower is
    # enough to refuse acks=all while the controller keeps its quorum.
    name = "guarded"
    create_replicated(cluster.bootstrap, name, min_insync=3)
    eventually("every ISR full", lambda: all(
        len(isr) == 3 for _, _, isr in partition_state(cluster.bootstrap, name).values()))
    produce_all(cluster.bootstrap, name, 0, 30)
    leader0 = partition_state(cluster.bootstrap, name)[0][0]
    victim = next(i for i in sorted(cluster.nodes) if i != leader0)
    cluster.kill(victim)
    at_leader = cluster.bootstrap_of(leader0)
    eventually(f"node {victim} out of partition 0's ISR", lambda: victim not in
               partition_state(at_leader, name)[0][2])
    strict = KafkaProducer(bootstrap_servers=at_leader, acks="all", retries=0,
                           request_timeout_ms=10000, max_block_ms=10000)
    with pytest.raises(NotEnoughReplicasError):
        strict.send(name, value=b"needs three", partition=0).get(timeout=15)
    strict.close()
    relaxed = KafkaProducer(bootstrap_servers=at_leader, acks=1, retries=0,
                            request_timeout_ms=10000, max_block_ms=10000)
    meta = relaxed.send(name, value=b"one is enough", partition=0).get(timeout=15)
    assert meta.offset >= 10
    relaxed.close()
    cluster.restart(victim)
    eventually("every ISR full again", lambda: all(
        len(isr) == 3 for _, _, isr in partition_state(cluster.bootstrap, name).values()))
    produce_all(cluster.bootstrap, name, 30, 30)
