"""Topic administration through librdkafka's AdminClient: CreateTopics with
partitions and configs, Metadata and DescribeConfigs to see the result, and
the error codes Kafka clients expect for a duplicate or an invalid name."""

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from readback import admin

TIMEOUT = 15


def create(client, topic: NewTopic):
    """Runs CreateTopics for one topic; returns the KafkaError or None."""
    futures = client.create_topics([topic], operation_timeout=10, request_timeout=TIMEOUT)
    try:
        futures[topic.topic].result(timeout=TIMEOUT)
        return None
    except KafkaException as e:
        return e.args[0]


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
        assert p.leader == md.controller_id or p.leader in md.brokers, f"partition {p.id} leader {p.leader}"
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
