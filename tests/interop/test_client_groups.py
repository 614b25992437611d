"""A Sluice (Rust) group member and a librdkafka member share one consumer
group: whichever is elected leader, the other must decode its assignment.

`sluice consume --group` (sluice-client, cooperative-sticky) and a
confluent-kafka consumer (``partition.assignment.strategy:
cooperative-sticky``) join the same group on a 4-partition topic. The test
waits until DescribeGroups shows two members that together own all four
partitions, two each, and that each side reads records only from the
partitions it was given.
"""

import json
import subprocess
import time

from readback import consumer, create_topic, producer

PARTITIONS = 4


def describe(sluice_bin: str, bootstrap: str, group: str) -> dict:
    done = subprocess.run([sluice_bin, "group", "describe", group, "--output", "json",
                           "--bootstrap", bootstrap], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def test_rust_and_librdkafka_members_share_a_cooperative_group(broker, topic, sluice_bin):
    bootstrap = broker.bootstrap
    group = f"{topic}-g"
    create_topic(bootstrap, topic, PARTITIONS)
    p = producer(bootstrap)
    for i in range(400):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert p.flush(30) == 0

    rust = subprocess.Popen(
        [sluice_bin, "consume", topic, "--group", group, "--from", "beginning",
         "--format", "{partition}", "--bootstrap", bootstrap],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    c = consumer(bootstrap, **{"group.id": group, "auto.offset.reset": "earliest",
                               "partition.assignment.strategy": "cooperative-sticky",
                               "session.timeout.ms": 10000})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 60
        shared = None
        ours: set[int] = set()
        while time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                assert m.error() is None, m.error()
                ours.add(m.partition())
            d = describe(sluice_bin, bootstrap, group)
            owned = [sorted(p for _, ps in m["assignment"] for p in ps) for m in d["members"]]
            # librdkafka applies its (incremental) assignment inside
            # consume(), a little after the coordinator has recorded it.
            if len(owned) == 2 and sorted(len(o) for o in owned) == [2, 2] \
                    and sorted(sum(owned, [])) == list(range(PARTITIONS)) \
                    and len(c.assignment()) == 2:
                shared = owned
                break
        assert shared is not None, f"never shared 2+2: {describe(sluice_bin, bootstrap, group)}"
        mine = {tp.partition for tp in c.assignment()}
        assert len(mine) == 2 and sorted(mine) in shared, (mine, shared)
        # librdkafka reads its two partitions (records are waiting there).
        deadline = time.monotonic() + 30
        while ours != mine and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                assert m.error() is None, m.error()
                ours.add(m.partition())
        assert ours == mine, (ours, mine)
    finally:
        c.close()
        rust.terminate()
        out, err = rust.communicate(timeout=30)
    theirs = {int(line) for line in out.decode().split()}
    # Each side read only what it was given at some point; together, both
    # halves of the topic were read.
    assert theirs, err.decode()
    assert len(theirs | ours) == PARTITIONS, (theirs, ours)
