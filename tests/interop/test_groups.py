"""Consumer groups against real clients: rebalancing across members, a
member killed without leaving, restarts resuming from committed offsets,
cooperative-sticky and static membership (librdkafka), manual commits and
OffsetFetch (kafka-python).

Members that must be SIGKILLed run as child Python processes (``MEMBER``
below) and log every event to a JSON-lines file:
``assign`` (their whole assignment after each rebalance), ``consumed``
(partition, offset, value — written before the commit), ``committed``
(the offset committed synchronously after that record) and ``commit_failed``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from readback import create_topic, producer, wait_until

SESSION_TIMEOUT_MS = 6000  # the broker's group.min.session.timeout.ms

MEMBER = r"""
import json, sys
from confluent_kafka import Consumer
bootstrap, group, topic, log_path = sys.argv[1:5]
extra = json.loads(sys.argv[5])
log = open(log_path, "a", buffering=1)
def emit(**event):
    log.write(json.dumps(event) + "\n")
def on_assign(c, parts):
    # Eager assignors (the default): `parts` is the whole new assignment.
    emit(event="assign", partitions=sorted(p.partition for p in parts))
def on_revoke(c, parts):
    emit(event="revoke", partitions=sorted(p.partition for p in parts))
conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": %d,
        "heartbeat.interval.ms": 500}
conf.update(extra)
c = Consumer(conf)
c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
while True:
    m = c.poll(0.2)
    if m is None or m.error():
        continue
    emit(event="consumed", partition=m.partition(), offset=m.offset(), value=m.value().decode())
    try:
        c.commit(message=m, asynchronous=False)
        emit(event="committed", partition=m.partition(), offset=m.offset())
    except Exception as e:
        emit(event="commit_failed", partition=m.partition(), offset=m.offset(), error=str(e))
""" % SESSION_TIMEOUT_MS


class Member:
    """One consumer in a child process."""

    def __init__(self, bootstrap: str, group: str, topic: str, workdir: Path, name: str,
                 extra: dict | None = None):
        self.name = name
        self.log = workdir / f"{name}.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MEMBER, bootstrap, group, topic, str(self.log),
             json.dumps(extra or {})],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def events(self) -> list[dict]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        # The last line may be half-written while the child runs.
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def assignment(self) -> list[int] | None:
        latest = None
        for e in self.events():
            if e["event"] == "assign":
                latest = e["partitions"]
            elif e["event"] == "revoke":
                latest = [p for p in (latest or []) if p not in e["partitions"]]
        return latest

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def balanced(members: list[Member], partitions: int) -> bool:
    """Every partition owned by exactly one live member, every member owns
    at least one."""
    owned = [m.assignment() for m in members]
    if any(not a for a in owned):
        return False
    flat = sorted(p for a in owned for p in a)
    return flat == list(range(partitions))


def produce_values(bootstrap: str, topic: str, start: int, n: int) -> None:
    p = producer(bootstrap)
    for i in range(start, start + n):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert p.flush(30) == 0


def consumed_values(members: list[Member]) -> set[str]:
    return {e["value"] for m in members for e in m.events() if e["event"] == "consumed"}


def test_members_share_rebalance_and_take_over_a_killed_member(broker, topic, tmp_path):
    partitions = 6
    create_topic(broker.bootstrap, topic, partitions)
    group = f"g-{uuid.uuid4().hex[:8]}"
    members = [Member(broker.bootstrap, group, topic, tmp_path, f"m{i}") for i in range(3)]
    try:
        wait_until(lambda: balanced(members, partitions), 40, "three members to share the partitions")
        assert sorted(len(m.assignment()) for m in members) == [2, 2, 2], \
            [m.assignment() for m in members]
        produce_values(broker.bootstrap, topic, 0, 300)

        members.append(Member(broker.bootstrap, group, topic, tmp_path, "m3"))
        wait_until(lambda: balanced(members, partitions), 40, "the fourth member to get partitions")
        produce_values(broker.bootstrap, topic, 300, 300)
        wait_until(lambda: len(consumed_values(members)) >= 600, 60, "the first 600 records")

        victim = members[0]
        victim_partitions = victim.assignment()
        produce_values(broker.bootstrap, topic, 600, 300)
        victim.kill()
        killed_at = time.monotonic()
        survivors = members[1:]
        wait_until(lambda: balanced(survivors, partitions), 60,
                   "the killed member's partitions to move")
        moved_after = time.monotonic() - killed_at
        assert moved_after >= (SESSION_TIMEOUT_MS / 1000) * 0.5, \
            f"partitions moved after {moved_after:.1f}s, before any session timeout could expire"
        assert set(victim_partitions) <= {p for m in survivors for p in m.assignment()}
        produce_values(broker.bootstrap, topic, 900, 300)
        wait_until(lambda: consumed_values(members) >= {f"v{i}" for i in range(1200)}, 60,
                   "every record to be consumed")
        check_duplicates_only_after_last_commit(members)
    finally:
        for m in members:
            m.stop()


def check_duplicates_only_after_last_commit(members: list[Member]) -> None:
    """A record read twice must not have been covered by a commit of the
    member that first read it."""
    reads: dict[tuple[int, int], list[str]] = {}
    committed: dict[str, dict[int, int]] = {}
    for m in members:
        highest = committed.setdefault(m.name, {})
        for e in m.events():
            key = (e.get("partition"), e.get("offset"))
            if e["event"] == "consumed":
                reads.setdefault(key, []).append(m.name)
            elif e["event"] == "committed":
                highest[key[0]] = max(highest.get(key[0], -1), key[1])
    for (partition, offset), readers in reads.items():
        if len(readers) > 1:
            first = readers[0]
            assert committed[first].get(partition, -1) < offset, (
                f"partition {partition} offset {offset} was read again by {readers[1:]} "
                f"although {first} had committed past it")


def group_consumer(bootstrap: str, group: str, **extra) -> Consumer:
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 500}
    conf.update(extra)
    return Consumer(conf)


def test_broker_restart_mid_consumption_resumes_from_committed_offsets(broker, topic):
    create_topic(broker.bootstrap, topic, 3)
    produce_values(broker.bootstrap, topic, 0, 600)
    group = f"g-{uuid.uuid4().hex[:8]}"
    c = group_consumer(broker.bootstrap, group)
    c.subscribe([topic])
    seen: list[tuple[int, int]] = []
    while len(seen) < 200:
        m = c.poll(1.0)
        if m is not None and not m.error():
            seen.append((m.partition(), m.offset()))
            c.commit(message=m, asynchronous=False)
    committed = {tp.partition: tp.offset for tp in
                 c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)}
    c.close()

    broker.restart(same_port=True)

    c = group_consumer(broker.bootstrap, group)
    c.subscribe([topic])
    first_after: dict[int, int] = {}
    rest: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    while len(seen) + len(rest) < 600 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            first_after.setdefault(m.partition(), m.offset())
            rest.append((m.partition(), m.offset()))
    c.close()
    for p, offset in first_after.items():
        assert offset == max(committed[p], 0), \
            f"partition {p} resumed at {offset}, committed {committed[p]}"
    assert sorted(seen + rest) == sorted(set(seen + rest)), "records read twice"
    assert len(seen) + len(rest) == 600, "records lost across the restart"


def test_cooperative_sticky_keeps_unaffected_partitions(broker, topic):
    create_topic(broker.bootstrap, topic, 6)
    group = f"g-{uuid.uuid4().hex[:8]}"
    revoked_a: list[list[int]] = []
    a = group_consumer(broker.bootstrap, group, **{"partition.assignment.strategy": "cooperative-sticky"})
    a.subscribe([topic], on_revoke=lambda c, parts: revoked_a.append(sorted(p.partition for p in parts)))
    deadline = time.monotonic() + 30
    while len(a.assignment()) < 6 and time.monotonic() < deadline:
        a.poll(0.2)
    assert len(a.assignment()) == 6
    before = {p.partition for p in a.assignment()}

    b = group_consumer(broker.bootstrap, group, **{"partition.assignment.strategy": "cooperative-sticky"})
    b.subscribe([topic])
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        a.poll(0.1)
        b.poll(0.1)
        if len(a.assignment()) == 3 and len(b.assignment()) == 3:
            break
    after_a = {p.partition for p in a.assignment()}
    after_b = {p.partition for p in b.assignment()}
    revoked = list(revoked_a)  # before close(), which revokes the rest
    a.close()
    b.close()
    assert len(after_a) == 3 and len(after_b) == 3, (after_a, after_b)
    assert after_a <= before and not (after_a & after_b)
    # Incremental: only the three moved partitions were ever revoked from a.
    assert all(len(r) <= 3 for r in revoked), revoked
    assert set(p for r in revoked for p in r) == after_b


def test_static_member_rejoins_without_rebalance(broker, topic):
    create_topic(broker.bootstrap, topic, 4)
    group = f"g-{uuid.uuid4().hex[:8]}"
    events_a: list[str] = []
    a = group_consumer(broker.bootstrap, group, **{"group.instance.id": "inst-a"})
    a.subscribe([topic], on_assign=lambda c, p: events_a.append("assign"),
                on_revoke=lambda c, p: events_a.append("revoke"))
    b = group_consumer(broker.bootstrap, group, **{"group.instance.id": "inst-b"})
    b.subscribe([topic])
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        a.poll(0.1)
        b.poll(0.1)
        if len(a.assignment()) == 2 and len(b.assignment()) == 2:
            break
    assert len(a.assignment()) == 2 and len(b.assignment()) == 2
    b_before = sorted(p.partition for p in b.assignment())
    # Let a settle on its final generation, then note its callbacks.
    for _ in range(10):
        a.poll(0.1)
    a_events = len(events_a)
    # A static member's close does not leave the group (KIP-345).
    b.close()
    b = group_consumer(broker.bootstrap, group, **{"group.instance.id": "inst-b"})
    b.subscribe([topic])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(b.assignment()) < 2:
        a.poll(0.1)
        b.poll(0.1)
    b_after = sorted(p.partition for p in b.assignment())
    for _ in range(20):
        a.poll(0.1)
    a_after = list(events_a)  # before close(), which revokes
    a.close()
    b.close()
    assert b_after == b_before, f"static member got {b_after}, had {b_before}"
    assert len(a_after) == a_events, f"the other member saw a rebalance: {a_after[a_events:]}"


def test_kafka_python_manual_commits_survive_restart(broker, topic):
    from kafka import KafkaConsumer, TopicPartition as KTopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.structs import OffsetAndMetadata

    create_topic(broker.bootstrap, topic, 2)
    produce_values(broker.bootstrap, topic, 0, 100)
    group = f"g-{uuid.uuid4().hex[:8]}"
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000,
                      consumer_timeout_ms=15000)
    positions: dict[int, int] = {}
    for m in c:
        positions[m.partition] = m.offset + 1
        if sum(1 for _ in positions) == 2 and min(positions.values()) >= 10:
            break
    offsets = {KTopicPartition(topic, p): OffsetAndMetadata(o, f"meta-{p}", -1)
               for p, o in positions.items()}
    c.commit(offsets)
    c.close()

    broker.restart()

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    # One OffsetFetch v8 for two groups (KIP-709); the unknown one is empty.
    fetched = admin.list_group_offsets({group: None, f"{group}-none": None})
    admin.close()
    assert fetched[f"{group}-none"] == {}
    got = {tp.partition: (om.offset, om.metadata) for tp, om in fetched[group].items()}
    assert got == {p: (o, f"meta-{p}") for p, o in positions.items()}

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    for p, o in positions.items():
        assert c.committed(KTopicPartition(topic, p)) == o
    c.close()
