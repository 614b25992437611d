"""With `auto.create.topics.enable = false`, Metadata and Produce for an
unknown topic answer UNKNOWN_TOPIC_OR_PARTITION (3) and create nothing,
even when the Metadata request allows auto-creation; CreateTopics still
works."""

from confluent_kafka import KafkaError

import kafka_wire
from readback import admin, create_topic, producer

UNKNOWN_TOPIC_OR_PARTITION = 3


def test_unknown_topic_is_not_created(broker_factory, topic):
    broker = broker_factory(config={"auto.create.topics.enable": False})

    with kafka_wire.Connection(broker.address) as conn:
        md = kafka_wire.metadata(conn, [topic], allow_auto_create=True)
        assert topic in md, f"metadata response lacks the requested topic: {md}"
        assert md[topic].error_code == UNKNOWN_TOPIC_OR_PARTITION, f"metadata error {md[topic].error_code}"

        batch = kafka_wire.record_batch([kafka_wire.Record(b"k", b"v")], base_timestamp=1_700_000_000_000)
        r = kafka_wire.produce(conn, topic, 0, batch)
        assert r.error_code == UNKNOWN_TOPIC_OR_PARTITION, f"produce error {r.error_code} ({r.error_message})"

    p = producer(broker.bootstrap, **{"message.timeout.ms": 10000, "topic.metadata.propagation.max.ms": 1000})
    outcome = []
    p.produce(topic, value=b"nowhere", on_delivery=lambda err, msg: outcome.append(err))
    assert p.flush(20) == 0
    assert len(outcome) == 1 and outcome[0] is not None, f"produce to a missing topic succeeded: {outcome}"
    assert outcome[0].code() in (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART), f"got {outcome[0]}"

    client = admin(broker.bootstrap)
    assert topic not in client.list_topics(timeout=15).topics, "the topic was created anyway"
    with kafka_wire.Connection(broker.address) as conn:
        assert kafka_wire.metadata(conn, [topic], allow_auto_create=True)[topic].error_code == UNKNOWN_TOPIC_OR_PARTITION

    # Explicit creation is unaffected.
    create_topic(broker.bootstrap, topic, 2)
    with kafka_wire.Connection(broker.address) as conn:
        md = kafka_wire.metadata(conn, [topic], allow_auto_create=False)
        assert md[topic].error_code == 0 and md[topic].partitions == {0: 0, 1: 0}
        r = kafka_wire.produce(conn, topic, 1, batch)
        assert (r.error_code, r.base_offset) == (0, 0), r
        assert kafka_wire.produce(conn, topic, 2, batch).error_code == UNKNOWN_TOPIC_OR_PARTITION, (
            "produce to a partition past the topic's count must fail")


def test_auto_create_enabled_by_default(broker, topic):
    """The contrast case: with the defaults, Metadata creates the topic with
    num.partitions (1) partitions."""
    with kafka_wire.Connection(broker.address) as conn:
        md = kafka_wire.metadata(conn, [topic], allow_auto_create=True)
        assert md[topic].error_code in (0, 5), md[topic]  # 5 LEADER_NOT_AVAILABLE while creating is Kafka's answer too
        md = kafka_wire.metadata(conn, [topic], allow_auto_create=False)
        assert md[topic].error_code == 0 and md[topic].partitions == {0: 0}, md[topic]
