"""Keyed records land on the same partition whether librdkafka
(confluent-kafka, ``partitioner: murmur2_random``) or Sluice's own client
(through ``sluice produce``) writes them: both use Kafka's murmur2,
``(murmur2(key) & 0x7fffffff) % partitions``.

Each client writes the same keys into its own topic with the same partition
count; the partition every key was stored in is then read back and
compared, key by key. A handful of fixed keys also carry the partitions the
Java client computes for them (Kafka's ``BuiltInPartitioner``), so both
sides are checked against the reference as well as against each other.
"""

import subprocess



from readback import create_topic, producer, read_partitions

PARTITIONS = 7
KEYS = [f"key-{i}" for i in range(500)] + ["", "a", "abc", "21", "foobar", "日本語", "x" * 300]

# (murmur2(key) & 0x7fffffff) % 7 with the Java client's murmur2, from
# Kafka's UtilsTest values: 21 → -973932308, foobar → -790332482,
# abc → 479470107.
JAVA_REFERENCE = {
    "21": (-973932308 & 0x7FFFFFFF) % PARTITIONS,
    "foobar": (-790332482 & 0x7FFFFFFF) % PARTITIONS,
    "abc": (479470107 & 0x7FFFFFFF) % PARTITIONS,
}


def partitions_by_key(bootstrap: str, topic: str) -> dict[str, int]:
    records = read_partitions(bootstrap, topic, PARTITIONS)
    placed: dict[str, int] = {}
    for partition, consumed in records.items():
        for r in consumed:
            key = (r.key or b"").decode()
            assert placed.setdefault(key, partition) == partition, f"{key!r} on two partitions"
    return placed


def test_sluice_cli_places_keys_like_librdkafka_murmur2_random(broker, topic, sluice_bin):
    bootstrap = broker.bootstrap
    ours, theirs = f"{topic}-sluice", f"{topic}-rdkafka"
    create_topic(bootstrap, ours, PARTITIONS)
    create_topic(bootstrap, theirs, PARTITIONS)

    p = producer(bootstrap, partitioner="murmur2_random")
    for key in KEYS:
        p.produce(theirs, key=key.encode(), value=b"v")
    assert p.flush(30) == 0

    lines = "".join(f"{key}\tv\n" for key in KEYS)
    done = subprocess.run(
        [sluice_bin, "produce", ours, "--key-separator", "\t", "--bootstrap", bootstrap],
        input=lines.encode(), capture_output=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()

    by_rdkafka = partitions_by_key(bootstrap, theirs)
    by_sluice = partitions_by_key(bootstrap, ours)
    # librdkafka's murmur2_random sends an empty key like any other key;
    # `sluice produce` sends "" as an empty (non-null) key too.
    assert set(by_rdkafka) == set(KEYS)
    assert by_sluice == by_rdkafka
    for key, partition in JAVA_REFERENCE.items():
        assert by_sluice[key] == partition, key
    # The keys really spread: a partitioner that put everything on one
    # partition must not pass.
    assert len(set(by_sluice.values())) == PARTITIONS
