"""Topic administration through librdkafka's AdminClient: CreateTopics with
partitions and configs, Metadata and DescribeConfigs to see the result, the
error codes Kafka clients expect for a duplicate or an invalid name, and the
other admin APIs served (CreatePartitions, DeleteTopics, DeleteRecords,
IncrementalAlterConfigs, DescribeCluster), each checked to persist across
a restart where it changes state."""

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic,
                                   ResourceType)

from readback import admin, producer, read_partitions, watermarks
from readback import create_error as create

TIMEOUT = 15


def test_create_describe_and_duplicate(broker, topic):
    client = admin(broker.bootstrap)
    err = create(client, NewTopic(topic, num_partitions=4, replication_factor=1,
                                  config={"retention.ms": "3600000", "segment.bytes": "1048576"}))
    assert err is None, f"CreateTopics failed: {err}"

    md = client.list_topics(topic=topic, timeout=TIMEOUT)
    t = md.topics[topic]
    assert t.error is None, f"metadata error for new topic: {t.error}"
    assert sorted(t.partitions) == [0, 1, 2, 3]
    for p in t.partitions.values():
        assert p.error is None, f"partition {p.id} error {p.error}"
        assert p.leader in md.brokers, f"partition {p.id} leader {p.leader} is not a listed broker"
        assert p.replicas == [p.leader] and p.isrs == [p.leader]

    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = client.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(timeout=TIMEOUT)
    assert configs["retention.ms"].value == "3600000"
    assert configs["segment.bytes"].value == "1048576"
    assert configs["cleanup.policy"].value == "delete", "an unset config reports its default"

    err = create(client, NewTopic(topic, num_partitions=1, replication_factor=1))
    assert err is not None, "creating an existing topic succeeded"
    assert err.code() == KafkaError.TOPIC_ALREADY_EXISTS, f"got {err}"
    # The failed create changed nothing.
    md = client.list_topics(topic=topic, timeout=TIMEOUT)
    assert sorted(md.topics[topic].partitions) == [0, 1, 2, 3]


@pytest.mark.parametrize("name", ["bad/name", "a" * 250, "..", "has space", "ünïcode"])
def test_invalid_topic_name(broker, name):
    client = admin(broker.bootstrap)
    err = create(client, NewTopic(name, num_partitions=1, replication_factor=1))
    assert err is not None, f"CreateTopics accepted invalid name {name!r}"
    assert err.code() == KafkaError.TOPIC_EXCEPTION, f"{name!r}: got {err} (want INVALID_TOPIC_EXCEPTION, 17)"
    listed = client.list_topics(timeout=TIMEOUT).topics
    assert name not in listed


def test_create_with_invalid_config_is_refused(broker, topic):
    client = admin(broker.bootstrap)
    err = create(client, NewTopic(topic, num_partitions=1, replication_factor=1,
                                  config={"cleanup.policy": "compact-ish"}))
    assert err is not None, "CreateTopics accepted cleanup.policy=compact-ish"
    assert err.code() == KafkaError.INVALID_CONFIG, f"got {err}"
    md = client.list_topics(timeout=TIMEOUT)
    assert topic not in md.topics, "a refused CreateTopics left the topic behind"


def test_small_segment_bytes_is_accepted(broker, topic):
    """segment.bytes down to 1024 is a valid topic config (Kafka does not tie
    it to max.message.bytes: a batch larger than a segment gets a segment of
    its own). Below the minimum it is INVALID_CONFIG, not a storage error."""
    client = admin(broker.bootstrap)
    err = create(client, NewTopic(topic, num_partitions=1, replication_factor=1, config={"segment.bytes": "1024"}))
    assert err is None, f"CreateTopics with segment.bytes=1024 failed: {err}"
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = client.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(timeout=TIMEOUT)
    assert configs["segment.bytes"].value == "1024"

    too_small = topic + "-too-small"
    err = create(client, NewTopic(too_small, num_partitions=1, replication_factor=1, config={"segment.bytes": "1000"}))
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, f"segment.bytes=1000: got {err}"
    assert too_small not in client.list_topics(timeout=TIMEOUT).topics, "a refused CreateTopics left the topic behind"


def result_error(future):
    """The KafkaError a future failed with, or None."""
    try:
        future.result(timeout=TIMEOUT)
        return None
    except KafkaException as e:
        return e.args[0]


def test_create_partitions(broker, topic):
    client = admin(broker.bootstrap)
    assert create(client, NewTopic(topic, num_partitions=2, replication_factor=1)) is None
    err = result_error(client.create_partitions([NewPartitions(topic, 5)], request_timeout=TIMEOUT)[topic])
    assert err is None, f"CreatePartitions 2 -> 5 failed: {err}"
    assert sorted(client.list_topics(topic=topic, timeout=TIMEOUT).topics[topic].partitions) == [0, 1, 2, 3, 4]

    p = producer(broker.bootstrap)
    offsets = []
    p.produce(topic, value=b"to-new-partition", partition=4,
              on_delivery=lambda e, m: offsets.append((e, m.partition(), m.offset())))
    assert p.flush(15) == 0
    assert offsets == [(None, 4, 0)], offsets

    err = result_error(client.create_partitions([NewPartitions(topic, 3)], request_timeout=TIMEOUT)[topic])
    assert err is not None and err.code() == KafkaError.INVALID_PARTITIONS, f"shrinking 5 -> 3: got {err}"
    assert len(client.list_topics(topic=topic, timeout=TIMEOUT).topics[topic].partitions) == 5


def test_delete_topic_removes_its_data(broker, topic):
    client = admin(broker.bootstrap)
    assert create(client, NewTopic(topic, num_partitions=1, replication_factor=1)) is None
    p = producer(broker.bootstrap)
    for i in range(10):
        p.produce(topic, value=b"old", partition=0)
    assert p.flush(15) == 0

    err = result_error(client.delete_topics([topic], request_timeout=TIMEOUT)[topic])
    assert err is None, f"DeleteTopics failed: {err}"
    assert topic not in client.list_topics(timeout=TIMEOUT).topics
    err = result_error(client.delete_topics([topic], request_timeout=TIMEOUT)[topic])
    assert err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, f"deleting twice: got {err}"

    # A new topic of the same name starts empty, also after a restart.
    assert create(client, NewTopic(topic, num_partitions=1, replication_factor=1)) is None
    assert watermarks(broker.bootstrap, topic, 1)[0] == (0, 0)
    broker.restart()
    assert watermarks(broker.bootstrap, topic, 1)[0] == (0, 0)


def test_delete_records_moves_log_start(broker, topic):
    client = admin(broker.bootstrap)
    assert create(client, NewTopic(topic, num_partitions=1, replication_factor=1)) is None
    p = producer(broker.bootstrap)
    for i in range(100):
        p.produce(topic, value=f"r{i}".encode(), partition=0)
    assert p.flush(15) == 0

    futures = client.delete_records([TopicPartition(topic, 0, 40)], request_timeout=TIMEOUT)
    [(tp, fut)] = list(futures.items())
    deleted = fut.result(timeout=TIMEOUT)
    assert deleted.low_watermark == 40, deleted
    assert watermarks(broker.bootstrap, topic, 1)[0] == (40, 100)
    got = read_partitions(broker.bootstrap, topic, 1)[0]
    assert [c.offset for c in got] == list(range(40, 100))
    assert [c.value for c in got] == [f"r{i}".encode() for i in range(40, 100)]

    # Beyond the high watermark is OFFSET_OUT_OF_RANGE.
    client = admin(broker.bootstrap)
    futures = client.delete_records([TopicPartition(topic, 0, 500)], request_timeout=TIMEOUT)
    err = result_error(list(futures.values())[0])
    assert err is not None and err.code() == KafkaError.OFFSET_OUT_OF_RANGE, f"got {err}"

    broker.restart()
    assert watermarks(broker.bootstrap, topic, 1)[0] == (40, 100), "log start offset not kept across restart"


def test_incremental_alter_configs(broker, topic):
    client = admin(broker.bootstrap)
    assert create(client, NewTopic(topic, num_partitions=1, replication_factor=1)) is None
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "1234567", incremental_operation=AlterConfigOpType.SET)])
    err = result_error(client.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource])
    assert err is None, f"IncrementalAlterConfigs failed: {err}"

    def described():
        r = ConfigResource(ResourceType.TOPIC, topic)
        c = admin(broker.bootstrap)  # must outlive its future
        return c.describe_configs([r], request_timeout=TIMEOUT)[r].result(timeout=TIMEOUT)

    assert described()["retention.ms"].value == "1234567"

    bad = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "not-a-number", incremental_operation=AlterConfigOpType.SET)])
    err = result_error(client.incremental_alter_configs([bad], request_timeout=TIMEOUT)[bad])
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, f"retention.ms=not-a-number: got {err}"
    assert described()["retention.ms"].value == "1234567", "a refused change was applied"

    broker.restart()
    assert described()["retention.ms"].value == "1234567", "altered config lost across restart"


def describe_cluster(bootstrap):
    c = admin(bootstrap)  # must outlive its future
    return c.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)


def test_describe_cluster(broker):
    desc = describe_cluster(broker.bootstrap)
    assert desc.cluster_id, "empty cluster id"
    assert [(n.host, n.port) for n in desc.nodes] == [("127.0.0.1", broker.port)], desc.nodes
    assert desc.controller is not None and desc.controller.id == desc.nodes[0].id
    cluster_id = desc.cluster_id
    broker.restart()
    desc = describe_cluster(broker.bootstrap)
    assert desc.cluster_id == cluster_id, "cluster id changed across restart"
