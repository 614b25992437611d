"""Cluster operations with real admin clients on a real three-node cluster:
preferred-leader election (ElectLeaders, confluent-kafka's AdminClient)
and partition reassignment (AlterPartitionReassignments /
ListPartitionReassignments, kafka-python's admin), with acks=all
idempotent producing going on through the move and every record read back
exactly once afterwards.

Automatic leader balancing is off here (`auto.leader.rebalance.enable`),
so the explicit election is what moves leadership back; the Rust cluster
test covers the automatic balance.
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import ElectionType, KafkaError, TopicPartition
from kafka import KafkaAdminClient
from kafka import TopicPartition as KTopicPartition
from kafka.errors import (InvalidReplicationAssignmentError, NoReassignmentInProgressError,
                          UnknownTopicOrPartitionError)

from broker_process import Cluster
from readback import admin, assert_dense, producer, read_partitions
from test_replication import (PATIENCE_S, SESSION_ENV, create_replicated, eventually,
                              partition_state)

ENV = {**SESSION_ENV, "SLUICE_AUTO_LEADER_REBALANCE_ENABLE": "false"}


@pytest.fixture
def cluster(sluice_bin, tmp_path):
    c = Cluster(sluice_bin, tmp_path, size=3)
    for node in c.nodes.values():
        node.extra_env.update(ENV)
    c.start()
    yield c
    c.close()


def elect(bootstrap: str, partitions: list[TopicPartition] | None) -> dict:
    """PREFERRED election; partition -> KafkaError code (None = elected)."""
    client = admin(bootstrap)  # must outlive its future
    result = client.elect_leaders(ElectionType.PREFERRED, partitions).result(timeout=30)
    out = {}
    for tp, err in result.items():
        out[(tp.topic, tp.partition)] = None if err is None else err.code()
    return out


def test_preferred_leader_election_moves_leadership_back(cluster):
    name = "elected"
    create_replicated(cluster.bootstrap, name)
    eventually("every ISR full", lambda: all(
        len(isr) == 3 for _, _, isr in partition_state(cluster.bootstrap, name).values()))
    state = partition_state(cluster.bootstrap, name)
    leader, replicas, _ = state[0]
    assert leader == replicas[0], state
    # Everything leads where it prefers: nothing to do, nothing reported for
    # the whole-cluster form (Kafka leaves ELECTION_NOT_NEEDED out of it).
    assert elect(cluster.bootstrap, [TopicPartition(name, 0)]) == {
        (name, 0): KafkaError.ELECTION_NOT_NEEDED}
    assert elect(cluster.bootstrap, None) == {}
    assert elect(cluster.bootstrap, [TopicPartition(name, 7)]) == {
        (name, 7): KafkaError.UNKNOWN_TOPIC_OR_PART}

    preferred = replicas[0]
    cluster.kill(preferred)
    survivors = ",".join(cluster.bootstrap_of(i) for i in cluster.nodes if i != preferred)
    eventually("partition 0 led elsewhere", lambda: partition_state(survivors, name)[0][0]
               not in (preferred, -1))
    assert elect(survivors, [TopicPartition(name, 0)]) == {
        (name, 0): KafkaError.PREFERRED_LEADER_NOT_AVAILABLE}

    cluster.restart(preferred)
    eventually(f"node {preferred} back in partition 0's ISR", lambda: preferred in
               partition_state(cluster.bootstrap, name)[0][2])
    # No automatic balancing here: it stays where it is until asked.
    assert partition_state(cluster.bootstrap, name)[0][0] != preferred
    result = elect(cluster.bootstrap, None)
    assert result.get((name, 0)) is None and (name, 0) in result, result
    assert all(code is None for code in result.values()), result
    eventually("the preferred replica leads again", lambda: all(
        leader == replicas[0] for leader, replicas, _ in
        partition_state(cluster.bootstrap, name).values()))


def test_a_reassignment_moves_a_partition_while_acks_all_producing_goes_on(cluster):
    name = "moved"
    create_replicated(cluster.bootstrap, name)
    eventually("every ISR full", lambda: all(
        len(isr) == 3 for _, _, isr in partition_state(cluster.bootstrap, name).values()))
    # Start from two replicas: shrinking completes at once.
    kadmin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30000)
    leader, replicas, _ = partition_state(cluster.bootstrap, name)[0]
    spare = next(b for b in replicas if b != leader)
    first = [leader, next(b for b in replicas if b not in (leader, spare))]
    assert kadmin.alter_partition_reassignments(
        {KTopicPartition(name, 0): first}) == {KTopicPartition(name, 0): None}
    eventually("partition 0 on two replicas", lambda: partition_state(
        cluster.bootstrap, name)[0][1] == first)
    eventually(f"node {spare} deleted its copy", lambda: not any(
        (cluster.nodes[spare].data_dir / d).exists() for d in (f"{name}-0",)))

    # Errors as Kafka answers them.
    assert kadmin.alter_partition_reassignments({KTopicPartition(name, 0): None}) == {
        KTopicPartition(name, 0): NoReassignmentInProgressError}
    assert kadmin.alter_partition_reassignments({KTopicPartition(name, 0): [first[0], 42]}) == {
        KTopicPartition(name, 0): InvalidReplicationAssignmentError}
    assert kadmin.alter_partition_reassignments({KTopicPartition(name, 9): [1, 2]}) == {
        KTopicPartition(name, 9): UnknownTopicOrPartitionError}

    # Produce (acks=all, idempotent) to partition 0 the whole time the
    # partition moves off its leader onto the spare node.
    stop = threading.Event()
    sent = []
    errors = []

    def produce():
        p = producer(cluster.bootstrap, **{"enable.idempotence": True, "linger.ms": 2})
        i = 0
        while not stop.is_set() or i < 200:
            value = f"m{i}".encode()

            def done(err, _msg, value=value):
                if err is not None:
                    errors.append(err)
            p.produce(name, value=value, partition=0, on_delivery=done)
            sent.append(value)
            p.poll(0)
            i += 1
            time.sleep(0.002)
        assert p.flush(60) == 0

    thread = threading.Thread(target=produce)
    thread.start()
    time.sleep(0.5)
    target = [spare, first[1]]
    assert kadmin.alter_partition_reassignments(
        {KTopicPartition(name, 0): target}) == {KTopicPartition(name, 0): None}
    seen = kadmin.list_partition_reassignments()
    if seen:  # it may already be complete
        ongoing = seen[KTopicPartition(name, 0)]
        assert ongoing["adding_replicas"] == [spare] and ongoing["removing_replicas"] == [leader]
    eventually("the move completed", lambda: partition_state(cluster.bootstrap, name)[0][1]
               == target and not kadmin.list_partition_reassignments())
    time.sleep(0.5)
    stop.set()
    thread.join(timeout=PATIENCE_S + 60)
    assert not thread.is_alive()
    assert errors == [], errors[:3]
    state = partition_state(cluster.bootstrap, name)[0]
    assert state[0] in target and sorted(state[2]) == sorted(target), state
    eventually(f"node {leader} deleted its copy", lambda: not (
        cluster.nodes[leader].data_dir / f"{name}-0").exists())
    records = read_partitions(cluster.bootstrap, name, 1)[0]
    assert_dense(records)
    assert [r.value for r in records] == sent
    kadmin.close()
