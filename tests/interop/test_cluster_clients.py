"""Real clients against a real three-node cluster (every node a broker and a
controller voter, `broker_process.Cluster`): confluent-kafka and kafka-python
both see three brokers and the controller; a topic created through one node
has its leaders spread over the three; records produced through a bootstrap
list come back; every node describes the same cluster; kill -9 of the active
controller → a topic create through the clients succeeds again within a
bound; kill -9 of a node and a restart → clients see it back.

One cluster serves the whole module (starting three nodes is the expensive
part); the tests run in file order, the destructive ones last. Replication
factor 1 today: each partition lives on one node.
"""

from __future__ import annotations

import shutil
import time
import uuid

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import NewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.protocol.admin import DescribeClusterRequest

from broker_process import Cluster
from readback import admin, consumer, create_error, producer

TIMEOUT = 15
# A new controller is elected in about a second (docs/benchmarks.md); the
# bound leaves room for a loaded CI machine.
FAILOVER_BOUND_S = 15.0
NODES = {1, 2, 3}


@pytest.fixture(scope="module")
def cluster(sluice_bin, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cluster")
    c = Cluster(sluice_bin, workdir, size=3)
    try:
        c.start()
        yield c
    finally:
        c.close()
        for i, node in c.nodes.items():
            bad = [f"node {i} run {run}: {line}" for run in range(1, node.starts + 1)
                   for line in node.log(run).splitlines() if "panicked" in line]
            assert not bad, "a node panicked:\n" + "\n".join(bad[:20])
        shutil.rmtree(workdir, ignore_errors=True)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def described_by(kp: KafkaAdminClient, node_id: int) -> dict:
    """DescribeCluster sent to one node (not to whichever the client picks)."""
    async def ask():
        return await kp._manager.send(DescribeClusterRequest(include_cluster_authorized_operations=False),
                                      node_id=node_id)
    response = kp._manager.run(ask)
    assert response.error_code == 0, response
    return {"cluster_id": response.cluster_id, "controller": response.controller_id,
            "brokers": sorted((b.broker_id, b.host, b.port) for b in response.brokers)}


def test_both_clients_see_three_brokers_and_the_controller(cluster):
    md = admin(cluster.bootstrap).list_topics(timeout=TIMEOUT)
    assert set(md.brokers) == NODES, md.brokers
    assert {b.port for b in md.brokers.values()} == set(cluster.kafka_ports.values())
    assert md.controller_id in NODES

    client = admin(cluster.bootstrap_of(2))  # must outlive its future
    described = client.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    assert {n.id for n in described.nodes} == NODES
    assert described.controller.id == md.controller_id
    assert described.cluster_id == md.cluster_id

    kp = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        seen = kp.describe_cluster()
        assert {b["broker_id"] for b in seen["brokers"]} == NODES, seen
        assert seen["controller_id"] == md.controller_id
        # Every node answers for the whole cluster, and they agree.
        views = {n: described_by(kp, n) for n in sorted(NODES)}
        assert len({repr(v) for v in views.values()}) == 1, views
        assert views[1]["controller"] == md.controller_id
    finally:
        kp.close()


def test_leaders_spread_and_records_flow_through_a_bootstrap_list(cluster):
    topic = unique("spread")
    # Created through node 3 alone (a follower or the controller: either
    # must work).
    assert create_error(admin(cluster.bootstrap_of(3)),
                        NewTopic(topic, num_partitions=6, replication_factor=1)) is None
    deadline = time.monotonic() + TIMEOUT
    while True:
        md = admin(cluster.bootstrap_of(1)).list_topics(topic=topic, timeout=TIMEOUT)
        parts = md.topics[topic].partitions
        if len(parts) == 6 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    leaders = {p: parts[p].leader for p in parts}
    assert set(leaders.values()) == NODES, leaders
    assert all(parts[p].replicas == [leaders[p]] for p in parts), parts

    # confluent-kafka: one record per partition through the bootstrap list.
    p = producer(cluster.bootstrap)
    for part in range(6):
        p.produce(topic, key=f"k{part}".encode(), value=f"ck-{part}".encode(), partition=part)
    assert p.flush(TIMEOUT) == 0

    # kafka-python: another record per partition.
    kprod = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all",
                          request_timeout_ms=TIMEOUT * 1000)
    try:
        for part in range(6):
            kprod.send(topic, value=f"kp-{part}".encode(), partition=part).get(timeout=TIMEOUT)
    finally:
        kprod.close()

    # Each client reads both records of every partition from its leader.
    c = consumer(cluster.bootstrap)
    got: dict[int, list[bytes]] = {part: [] for part in range(6)}
    try:
        c.assign([TopicPartition(topic, part, 0) for part in range(6)])
        deadline = time.monotonic() + TIMEOUT
        while sum(map(len, got.values())) < 12 and time.monotonic() < deadline:
            for m in c.consume(num_messages=100, timeout=0.5):
                assert m.error() is None, m.error()
                got[m.partition()].append(m.value())
    finally:
        c.close()
    assert got == {part: [f"ck-{part}".encode(), f"kp-{part}".encode()] for part in range(6)}, got

    kc = KafkaConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False,
                       auto_offset_reset="earliest", consumer_timeout_ms=TIMEOUT * 1000)
    try:
        kc.assign([KpTopicPartition(topic, part) for part in range(6)])
        kgot: dict[int, list[bytes]] = {part: [] for part in range(6)}
        for m in kc:
            kgot[m.partition].append(m.value)
            if sum(map(len, kgot.values())) == 12:
                break
    finally:
        kc.close()
    assert kgot == got, kgot


def controller_of(bootstrap: str) -> int:
    return admin(bootstrap).list_topics(timeout=5).controller_id


def test_kill_9_of_the_controller_then_creates_succeed_again(cluster):
    leader = controller_of(cluster.bootstrap)
    assert leader in NODES
    survivors = sorted(NODES - {leader})
    cluster.kill(leader)
    t0 = time.monotonic()
    survivor_bootstrap = ",".join(cluster.bootstrap_of(n) for n in survivors)
    topic = unique("after-failover")
    # CreateTopics through a fresh client per attempt: a client that read
    # Metadata while the survivors still named the dead node controller
    # keeps waiting for that node (librdkafka does not refresh for it
    # within the bound), so each attempt starts from current Metadata.
    attempts = []
    while True:
        client = admin(survivor_bootstrap)
        try:
            err = create_error(client, NewTopic(topic, num_partitions=2, replication_factor=1),
                               timeout=3)
        except TimeoutError:
            err = "client timeout"
        if err is None or getattr(err, "code", lambda: None)() == KafkaError.TOPIC_ALREADY_EXISTS:
            break  # (already exists: an earlier attempt got through late)
        attempts.append(str(err))
        assert time.monotonic() - t0 < FAILOVER_BOUND_S, \
            f"no create within {FAILOVER_BOUND_S}s of kill -9 of controller {leader}: {attempts}"
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    new = controller_of(survivor_bootstrap)
    assert new in survivors, f"controller {new} after killing {leader}"
    print(f"create succeeded {elapsed:.2f}s after kill -9 of controller {leader}; new controller {new}")

    # The killed node comes back and follows the new controller.
    cluster.restart(leader)
    md = admin(cluster.bootstrap_of(leader)).list_topics(topic=topic, timeout=TIMEOUT)
    assert topic in md.topics and md.controller_id in survivors, md.topics


def test_kill_9_of_a_node_then_restart_clients_see_it_back(cluster):
    victim = 2
    topic = unique("restart")
    assert create_error(admin(cluster.bootstrap),
                        NewTopic(topic, num_partitions=3, replication_factor=1)) is None
    p = producer(cluster.bootstrap)
    for part in range(3):
        p.produce(topic, value=b"before", partition=part)
    assert p.flush(TIMEOUT) == 0

    cluster.kill(victim)
    cluster.restart(victim)

    # Both clients, bootstrapped through the restarted node alone, see the
    # whole cluster again, and its partitions take and serve records.
    md = admin(cluster.bootstrap_of(victim)).list_topics(topic=topic, timeout=TIMEOUT)
    assert set(md.brokers) == NODES
    kp = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_of(victim), request_timeout_ms=TIMEOUT * 1000)
    try:
        assert described_by(kp, victim)["brokers"] == described_by(kp, 1)["brokers"]
    finally:
        kp.close()
    p = producer(cluster.bootstrap)
    for part in range(3):
        p.produce(topic, value=b"after", partition=part)
    assert p.flush(TIMEOUT) == 0, "records to the restarted node's partitions were not acknowledged"
    c = consumer(cluster.bootstrap)
    values = []
    try:
        c.assign([TopicPartition(topic, part, 0) for part in range(3)])
        deadline = time.monotonic() + TIMEOUT
        while len(values) < 6 and time.monotonic() < deadline:
            for m in c.consume(num_messages=100, timeout=0.5):
                assert m.error() is None, m.error()
                values.append(m.value())
    finally:
        c.close()
    assert sorted(values) == [b"after"] * 3 + [b"before"] * 3, values
