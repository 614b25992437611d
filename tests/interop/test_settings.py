"""Topic configs are validated against the one settings table before
anything is written (issue 13), through librdkafka's AdminClient.

A bad key or value fails its request with INVALID_CONFIG naming the key;
nothing is persisted; the broker stays up, other topics keep serving, and
the next start succeeds. validate_only changes nothing. Kafka's bounds
are followed: index.interval.bytes=0 is valid (an index entry per batch)."""

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from readback import admin, create_topic, future_error, producer, read_partitions
from readback import create_error as create_topic_error

TIMEOUT = 15

# (key, value): each must be refused with INVALID_CONFIG naming the key.
BAD_CONFIGS = [
    ("index.interval.bytes", "-1"),
    ("segment.bytes", "1"),
    ("segment.bytes", "4294967296"),
    ("retention.ms", "-2"),
    ("retention.bytes", "-5"),
    ("retention.ms", "soon"),
    ("cleanup.policy", "bogus"),
    ("message.timestamp.type", "WallClock"),
    ("no.such.key", "1"),
    # A broker setting is not a topic config.
    ("log.retention.ms", "1000"),
]


def create_error(client, topic: str, config: dict, validate_only: bool = False):
    """CreateTopics for a one-partition topic with `config`; its error or None."""
    return create_topic_error(client, NewTopic(topic, num_partitions=1, replication_factor=1, config=config),
                              validate_only=validate_only, timeout=TIMEOUT)


def describe(client, topic: str) -> dict:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return client.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(timeout=TIMEOUT)


def produce_and_count(bootstrap: str, topic: str, n: int, start: int = 0) -> None:
    p = producer(bootstrap)
    for i in range(start, start + n):
        p.produce(topic, value=f"v{i}".encode(), partition=0)
    assert p.flush(TIMEOUT) == 0


def values(bootstrap: str, topic: str) -> list[bytes]:
    return [r.value for r in read_partitions(bootstrap, topic, 1)[0]]


def test_bad_create_configs_are_refused_and_nothing_is_persisted(broker, topic):
    client = admin(broker.bootstrap)
    keeper = topic + "-keeper"
    create_topic(broker.bootstrap, keeper, 1)
    produce_and_count(broker.bootstrap, keeper, 5)

    refused = []
    for i, (key, value) in enumerate(BAD_CONFIGS):
        for validate_only in (False, True):
            name = f"{topic}-bad{i}-{int(validate_only)}"
            err = create_error(client, name, {key: value}, validate_only)
            assert err is not None, f"CreateTopics accepted {key}={value} (validate_only={validate_only})"
            assert err.code() == KafkaError.INVALID_CONFIG, f"{key}={value}: got {err}"
            assert key in err.str(), f"{key}={value}: the message does not name the key: {err.str()}"
            refused.append(name)

    # The broker is up, nothing was created, and the other topic serves.
    assert broker.alive()
    listed = client.list_topics(timeout=TIMEOUT).topics
    assert not [n for n in refused if n in listed], "a refused CreateTopics left a topic behind"
    produce_and_count(broker.bootstrap, keeper, 5, start=5)
    assert values(broker.bootstrap, keeper) == [f"v{i}".encode() for i in range(10)]

    # Nothing refused reached the metadata log: the restart is clean.
    broker.restart()
    client = admin(broker.bootstrap)
    listed = client.list_topics(timeout=TIMEOUT).topics
    assert keeper in listed
    assert not [n for n in refused if n in listed]
    assert values(broker.bootstrap, keeper) == [f"v{i}".encode() for i in range(10)]


def test_error_message_gives_the_allowed_range(broker, topic):
    client = admin(broker.bootstrap)
    err = create_error(client, topic, {"segment.bytes": "1"})
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG
    assert "1024" in err.str() and "2147483647" in err.str(), err.str()
    err = create_error(client, topic, {"cleanup.policy": "bogus"})
    assert err is not None and "delete" in err.str(), err.str()


def test_index_interval_bytes_zero_is_kafkas_every_batch(broker, topic):
    """Kafka's bound for index.interval.bytes is atLeast(0): 0 indexes every
    batch. It must be accepted, serve, and survive a restart (issue 13: it
    was persisted, then refused by storage, and the broker would not start)."""
    client = admin(broker.bootstrap)
    assert create_error(client, topic, {"index.interval.bytes": "0", "segment.bytes": "4096"}) is None
    assert describe(client, topic)["index.interval.bytes"].value == "0"
    produce_and_count(broker.bootstrap, topic, 200)
    assert len(values(broker.bootstrap, topic)) == 200
    broker.restart()
    assert len(values(broker.bootstrap, topic)) == 200
    assert describe(admin(broker.bootstrap), topic)["index.interval.bytes"].value == "0"


def test_validate_only_persists_nothing(broker, topic):
    client = admin(broker.bootstrap)
    assert create_error(client, topic, {"retention.ms": "60000"}, validate_only=True) is None
    assert topic not in client.list_topics(timeout=TIMEOUT).topics

    create_topic(broker.bootstrap, topic, 1, {"retention.ms": "3600000"})
    resource = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "60000"})
    assert future_error(client.alter_configs([resource], request_timeout=TIMEOUT,
                                             validate_only=True)[resource]) is None
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("segment.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    assert future_error(client.incremental_alter_configs([resource], request_timeout=TIMEOUT,
                                                         validate_only=True)[resource]) is None
    configs = describe(client, topic)
    assert configs["retention.ms"].value == "3600000"
    assert configs["segment.ms"].value == "604800000"


@pytest.mark.parametrize("key,value", BAD_CONFIGS)
def test_bad_alter_configs_change_nothing(broker, topic, key, value):
    client = admin(broker.bootstrap)
    create_topic(broker.bootstrap, topic, 1, {"retention.ms": "3600000"})

    # Legacy AlterConfigs: the whole override set, with one bad key.
    resource = ConfigResource(ResourceType.TOPIC, topic,
                              set_config={"flush.ms": "1000", key: value})
    err = future_error(client.alter_configs([resource], request_timeout=TIMEOUT)[resource])
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, f"AlterConfigs {key}={value}: {err}"
    assert key in err.str(), err.str()

    # IncrementalAlterConfigs SET, beside a good change that must not apply either.
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("flush.ms", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    err = future_error(client.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource])
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, f"IncrementalAlterConfigs {key}={value}: {err}"
    assert key in err.str(), err.str()

    configs = describe(client, topic)
    assert configs["retention.ms"].value == "3600000", "a refused change applied"
    assert configs["flush.ms"].value == str(2**63 - 1), "a refused change applied"
    assert broker.alive()


def test_incremental_append_validates_the_result_and_persists(broker, topic):
    client = admin(broker.bootstrap)
    create_topic(broker.bootstrap, topic, 1)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "bogus", incremental_operation=AlterConfigOpType.APPEND)])
    err = future_error(client.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource])
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND)])
    err = future_error(client.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource])
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err

    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET)])
    assert future_error(client.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource]) is None
    broker.restart()
    configs = describe(admin(broker.bootstrap), topic)
    assert configs["message.timestamp.type"].value == "LogAppendTime"
    assert configs["segment.bytes"].value == "1048576"


def test_describe_configs_reports_the_table(broker, topic):
    client = admin(broker.bootstrap)
    create_topic(broker.bootstrap, topic, 1, {"retention.ms": "60000"})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = client.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(timeout=TIMEOUT)
    for key in ["cleanup.policy", "retention.ms", "segment.bytes", "index.interval.bytes",
                "message.timestamp.type", "message.timestamp.before.max.ms",
                "message.timestamp.after.max.ms", "max.message.bytes"]:
        assert key in configs, f"{key} not described"
        assert not configs[key].is_read_only, f"{key} is a topic config a client may change"
        assert not configs[key].is_sensitive
    retention = configs["retention.ms"]
    assert retention.value == "60000" and not retention.is_default
    assert retention.source == 1, f"DYNAMIC_TOPIC_CONFIG expected, got {retention.source}"
    segment = configs["segment.bytes"]
    assert segment.is_default and segment.source == 5
    synonyms = [s.name for s in segment.synonyms.values()] if isinstance(segment.synonyms, dict) \
        else [s.name for s in segment.synonyms]
    assert "log.segment.bytes" in synonyms, synonyms

    resource = ConfigResource(ResourceType.BROKER, "1")
    configs = client.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(timeout=TIMEOUT)
    assert configs["log.segment.bytes"].is_read_only
    assert configs["log.segment.bytes"].value == "1073741824"
