"""Cluster metadata as real clients see it on a cluster of one: Metadata lists
the registered broker with its replicas, ISR and leader epoch from the
metadata image; CreateTopics checks the replication factor against the
brokers and honours (or refuses) manual assignments; FindCoordinator points
at the leader of the group's ``__consumer_offsets`` partition; a data
directory survives a restart with the same assignments."""

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewPartitions, NewTopic
from kafka import KafkaAdminClient

from readback import admin
from readback import create_error as create

TIMEOUT = 15


def test_metadata_comes_from_the_image(broker, topic):
    client = admin(broker.bootstrap)
    assert create(client, NewTopic(topic, num_partitions=3, replication_factor=1)) is None
    md = client.list_topics(topic=topic, timeout=TIMEOUT)
    assert list(md.brokers) == [1], f"brokers {md.brokers}"
    assert md.brokers[1].port == broker.port
    assert md.controller_id == 1
    for p in md.topics[topic].partitions.values():
        assert (p.leader, p.replicas, p.isrs, p.error) == (1, [1], [1], None), p

    # kafka-python reads Metadata v(≥1) the same way, with the controller.
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        cluster = kp.describe_cluster()
        assert cluster["controller_id"] == 1
        assert [b["broker_id"] for b in cluster["brokers"]] == [1]
        described = kp.describe_topics([topic])[0]
        assert sorted((p["partition_index"], p["leader_id"], p["leader_epoch"], p["replica_nodes"],
                       p["isr_nodes"], p["offline_replicas"]) for p in described["partitions"]) == [
            (i, 1, 0, [1], [1], []) for i in range(3)]
    finally:
        kp.close()


def test_replication_factor_and_assignments_are_checked(broker, topic):
    client = admin(broker.bootstrap)
    err = create(client, NewTopic(topic, num_partitions=1, replication_factor=2))
    assert err is not None and err.code() == KafkaError.INVALID_REPLICATION_FACTOR, f"got {err}"
    err = create(client, NewTopic(topic, num_partitions=2, replica_assignment=[[1], [7]]))
    assert err is not None and err.code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, f"got {err}"
    err = create(client, NewTopic(topic, num_partitions=1, replica_assignment=[[1, 1]]))
    assert err is not None and err.code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, f"got {err}"
    assert topic not in client.list_topics(timeout=TIMEOUT).topics

    assert create(client, NewTopic(topic, num_partitions=2, replica_assignment=[[1], [1]])) is None
    futures = client.create_partitions([NewPartitions(topic, 4, replica_assignment=[[1], [5]])],
                                       request_timeout=TIMEOUT)
    try:
        futures[topic].result(timeout=TIMEOUT)
        raise AssertionError("CreatePartitions accepted an unregistered broker")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, e
    futures = client.create_partitions([NewPartitions(topic, 4)], request_timeout=TIMEOUT)
    futures[topic].result(timeout=TIMEOUT)
    md = client.list_topics(topic=topic, timeout=TIMEOUT)
    assert sorted(md.topics[topic].partitions) == [0, 1, 2, 3]

    # The assignments are metadata records: a restart replays them.
    broker.restart()
    md = admin(broker.bootstrap).list_topics(topic=topic, timeout=TIMEOUT)
    assert all(p.replicas == [1] and p.leader == 1 for p in md.topics[topic].partitions.values())


def test_find_coordinator_names_the_offsets_partition_leader(broker):
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        groups = [f"cluster-metadata-group-{i}" for i in range(8)]
        # FindCoordinator (batched or one by one, as the client picks).
        coordinators = kp._manager.run(kp._find_coordinator_ids, groups)
        assert coordinators == {g: 1 for g in groups}, coordinators
        # describe_groups asks FindCoordinator, then that node; a group
        # nobody joined is described as Dead, not an error.
        described = kp.describe_groups(groups[:1])
        assert described[groups[0]]["error"] is None, described
        assert described[groups[0]]["group_state"] == "Dead", described
    finally:
        kp.close()
