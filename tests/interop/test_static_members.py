"""Static membership (KIP-345) as librdkafka uses it: a static member that
closes does not leave the group, so the broker must expire it after
`session.timeout.ms` like any other member; LeaveGroup v3+ naming members by
`group.instance.id` alone (the batch leave of KIP-345, what Kafka's
`removeMembersFromConsumerGroup` sends) removes them at once; and once the
group is empty, DeleteGroups deletes it.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

import kafka_wire as kw
from readback import create_topic

SESSION_TIMEOUT_MS = 6000  # the broker's group.min.session.timeout.ms


def static_consumer(bootstrap: str, group: str, instance: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "group.instance.id": instance, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest",
                     "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 500})


def join_both(bootstrap: str, group: str, topic: str) -> list[Consumer]:
    members = [static_consumer(bootstrap, group, f"inst-{i}") for i in range(2)]
    for c in members:
        c.subscribe([topic])
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        for c in members:
            c.poll(0.1)
        if all(len(c.assignment()) == 2 for c in members):
            return members
    raise AssertionError("the two static members never shared the 4 partitions")


def group_state(admin: AdminClient, group: str) -> tuple[str, int]:
    desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(10)
    return desc.state.name, len(desc.members)


def delete_group(admin: AdminClient, group: str):
    """DeleteGroups for one group: None on success, else the KafkaError."""
    try:
        admin.delete_consumer_groups([group], request_timeout=10)[group].result(10)
        return None
    except Exception as e:  # KafkaException carrying the group's error
        return e.args[0]


def leave_by_instance_v3(bootstrap: str, group: str, instances: list[str]) -> tuple[int, list]:
    """LeaveGroup v3: group_id, members [member_id "" + group_instance_id].
    Returns (top-level error, [(member_id, instance, error)])."""
    host, port = bootstrap.rsplit(":", 1)
    with kw.Connection((host, int(port))) as conn:
        body = kw.string(group) + kw.array([kw.string("") + kw.string(i) for i in instances])
        r = conn.roundtrip(13, 3, body, flexible=False)
        r.i32()  # throttle_time_ms
        error = r.i16()
        members = [(r.string(), r.string(), r.i16()) for _ in range(r.array_len())]
        return error, members


def test_closed_static_members_expire_then_the_group_can_be_deleted(broker, topic):
    create_topic(broker.bootstrap, topic, 4)
    group = f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    members = join_both(broker.bootstrap, group, topic)
    assert group_state(admin, group) == ("STABLE", 2)
    closed_at = time.monotonic()
    for c in members:
        c.close()  # static members do not send LeaveGroup (KIP-345)
    # Still members until their sessions run out: DeleteGroups refuses.
    err = delete_group(admin, group)
    assert err is not None and err.name() == "NON_EMPTY_GROUP", err
    deadline = closed_at + SESSION_TIMEOUT_MS / 1000 + 15
    state = group_state(admin, group)
    while time.monotonic() < deadline and state != ("EMPTY", 0):
        time.sleep(0.5)
        state = group_state(admin, group)
    waited = time.monotonic() - closed_at
    assert state == ("EMPTY", 0), f"static members never expired: {state} after {waited:.1f}s"
    assert waited >= SESSION_TIMEOUT_MS / 1000 - 1, f"expired too early ({waited:.1f}s)"
    assert delete_group(admin, group) is None
    err = delete_group(admin, group)
    assert err is not None and err.name() == "GROUP_ID_NOT_FOUND", err


def test_leave_group_by_instance_id_removes_static_members_at_once(broker, topic):
    create_topic(broker.bootstrap, topic, 4)
    group = f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    members = join_both(broker.bootstrap, group, topic)
    for c in members:
        c.close()
    started = time.monotonic()
    error, answers = leave_by_instance_v3(broker.bootstrap, group, ["inst-0", "inst-1", "inst-x"])
    assert error == 0
    by_instance = {inst: code for _, inst, code in answers}
    # UNKNOWN_MEMBER_ID (25) for the instance that never joined.
    assert by_instance == {"inst-0": 0, "inst-1": 0, "inst-x": 25}, answers
    assert group_state(admin, group) == ("EMPTY", 0)
    assert delete_group(admin, group) is None
    assert time.monotonic() - started < SESSION_TIMEOUT_MS / 1000, "waited for the sessions"
