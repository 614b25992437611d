"""A clean restart (SIGTERM, start again on the same data directory) loses
nothing that was acknowledged, keeps topic metadata and configs, and the
logs continue at the offsets where they stopped."""

from confluent_kafka.admin import ConfigResource, ResourceType

from readback import admin, assert_dense, create_topic, producer, read_partitions, watermarks

PARTITIONS = 3
N = 5000


def produce_acked(bootstrap, topic, start, n):
    """Produces values `start..start+n`; returns {partition: [(offset, value)]}."""
    p = producer(bootstrap)
    acked: dict[int, list[tuple[int, bytes]]] = {i: [] for i in range(PARTITIONS)}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.partition()].append((msg.offset(), msg.value()))

    for i in range(start, start + n):
        p.produce(topic, key=f"k{i}".encode(), value=f"value-{i}".encode(), on_delivery=on_delivery)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert not errors, f"delivery errors: {errors[:3]}"
    return acked


def test_sigterm_restart_keeps_acknowledged_records(broker, topic):
    create_topic(broker.bootstrap, topic, PARTITIONS, {"retention.ms": "86400000"})
    before = produce_acked(broker.bootstrap, topic, 0, N)
    marks_before = watermarks(broker.bootstrap, topic, PARTITIONS)

    broker.restart()
    assert "stopped cleanly" in broker.log(1), f"first run did not stop cleanly:\n{broker.log(1)[-3000:]}"

    assert watermarks(broker.bootstrap, topic, PARTITIONS) == marks_before, "watermarks changed across restart"
    got = read_partitions(broker.bootstrap, topic, PARTITIONS)
    for part in range(PARTITIONS):
        assert_dense(got[part])
        assert [(c.offset, c.value) for c in got[part]] == sorted(before[part]), (
            f"partition {part}: records after restart differ from those acknowledged before")

    # Topic config survived too.
    client = admin(broker.bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = client.describe_configs([resource])[resource].result(15)
    assert configs["retention.ms"].value == "86400000"

    # Appends continue where the log ended.
    after = produce_acked(broker.bootstrap, topic, N, N)
    for part in range(PARTITIONS):
        if after[part]:
            assert min(o for o, _ in after[part]) == marks_before[part][1], (
                f"partition {part}: first offset after restart {min(o for o, _ in after[part])}, "
                f"log end before restart {marks_before[part][1]}")
    got = read_partitions(broker.bootstrap, topic, PARTITIONS)
    for part in range(PARTITIONS):
        assert_dense(got[part])
        assert [(c.offset, c.value) for c in got[part]] == sorted(before[part] + after[part])


def test_restart_twice_without_traffic(broker, topic):
    """Restarting an idle broker twice (a second recovery over what the first
    restart wrote) changes nothing."""
    acked = produce_acked(broker.bootstrap, topic, 0, 100)
    broker.restart()
    broker.restart()
    got = read_partitions(broker.bootstrap, topic, 1)
    assert [(c.offset, c.value) for c in got[0]] == sorted(acked[0])
    assert watermarks(broker.bootstrap, topic, 1)[0] == (0, 100)
