"""Failure isolation (issue 13): a request, a config value or a resource
limit that should fail one request never takes down every partition, nor
the next start.

- a topic made with ``segment.bytes=1024``, raised to 1 MiB, then a 2 KiB
  batch: accepted; every other topic keeps serving; a restart reads it all;
- partitions beyond the broker's partition budget (computed from its
  descriptor and map limits) are refused with POLICY_VIOLATION, naming the
  budget, before anything is written;
- descriptors exhausted (EMFILE) while a topic is created: that CreateTopics
  fails with a retriable error and leaves no half-created topic, produce to
  other topics goes on, and the same creation succeeds once descriptors
  return; a restart succeeds.

The low descriptor limit is set for the broker process only (``ulimit -n``
in a wrapper that ``exec``s the binary, so the PID is the broker's).
"""

import os
import shutil
import socket
import time

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

import kafka_wire
from broker_process import BrokerProcess
from readback import admin, create_topic, producer, read_partitions, watermarks

POLICY_VIOLATION = 44
KAFKA_STORAGE_ERROR = 56
API_CREATE_TOPICS = 19
API_CREATE_PARTITIONS = 37


def produce_one(bootstrap, topic, value):
    p = producer(bootstrap, **{"compression.type": "none", "message.timeout.ms": 15000})
    outcome = []
    p.produce(topic, value=value, on_delivery=lambda err, msg: outcome.append((err, msg.offset())))
    assert p.flush(20) == 0, "message still queued after 20 s"
    assert len(outcome) == 1
    return outcome[0]


def test_raised_segment_bytes_then_a_big_batch_keeps_every_topic_online(broker, topic):
    other = topic + "-other"
    create_topic(broker.bootstrap, topic, 1, {"segment.bytes": "1024"})
    create_topic(broker.bootstrap, other, 1)
    assert produce_one(broker.bootstrap, other, b"before") == (None, 0)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET)])
    client = admin(broker.bootstrap)
    for f in client.incremental_alter_configs([resource]).values():
        f.result(timeout=15)
    big = os.urandom(2048)
    err, offset = produce_one(broker.bootstrap, topic, big)
    assert err is None and offset == 0, f"2 KiB batch after raising segment.bytes: {err}"
    assert produce_one(broker.bootstrap, topic, big) == (None, 1)
    assert produce_one(broker.bootstrap, other, b"after") == (None, 1)
    assert "offline" not in broker.log(), broker.log_tail()
    broker.terminate()
    broker.start()
    records = read_partitions(broker.bootstrap, topic, 1)
    assert [r.value for r in records[0]] == [big, big]
    assert watermarks(broker.bootstrap, other, 1)[0] == (0, 2)


def limited_broker(sluice_bin, workdir, nofile, settings=None):
    """A broker whose process may open `nofile` descriptors (soft = hard)."""
    wrapper = workdir / "sluice-limited"
    workdir.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(f"#!/bin/sh\nulimit -n {nofile}\nexec {sluice_bin} \"$@\"\n")
    wrapper.chmod(0o755)
    b = BrokerProcess(str(wrapper), workdir, {"max.connections": 100000, **(settings or {})})
    return b.start()


def create_topics_raw(conn, name, partitions):
    """CreateTopics v4 of one topic; returns (error_code, error_message)."""
    body = (kafka_wire.array([kafka_wire.string(name) + kafka_wire.i32(partitions) + kafka_wire.i16(1)
                              + kafka_wire.array([]) + kafka_wire.array([])])
            + kafka_wire.i32(30_000) + kafka_wire.i8(0))
    r = conn.roundtrip(API_CREATE_TOPICS, 4, body, flexible=False)
    r.i32()  # throttle
    assert r.array_len() == 1
    assert r.string() == name
    return r.i16(), r.string()


def create_partitions_raw(conn, name, count):
    """CreatePartitions v1 of one topic to `count` partitions, placed by the
    broker; returns (error_code, error_message)."""
    body = (kafka_wire.array([kafka_wire.string(name) + kafka_wire.i32(count) + kafka_wire.i32(-1)])
            + kafka_wire.i32(30_000) + kafka_wire.i8(0))
    r = conn.roundtrip(API_CREATE_PARTITIONS, 1, body, flexible=False)
    r.i32()  # throttle
    assert r.array_len() == 1
    assert r.string() == name
    return r.i16(), r.string()


def partition_dirs(data_dir, topic):
    return sorted(int(p.name[len(topic) + 1:]) for p in data_dir.iterdir()
                  if p.name.startswith(topic + "-") and p.name[len(topic) + 1:].isdigit())


def partition_count(bootstrap, topic):
    return len(admin(bootstrap).list_topics(topic, timeout=10).topics[topic].partitions)


def hog_descriptors(b, limit):
    """Idle connections until the broker has no descriptor left."""
    hogs = []
    deadline = time.monotonic() + 30
    while open_fds(b.pid) < limit and time.monotonic() < deadline:
        hogs.append(socket.create_connection(b.address))
        if len(hogs) % 20 == 0:
            time.sleep(0.2)  # let the broker accept them
    time.sleep(0.5)
    assert open_fds(b.pid) >= limit - 1, open_fds(b.pid)
    return hogs


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_partitions_beyond_the_budget_get_policy_violation(sluice_bin, tmp_path, topic):
    b = limited_broker(sluice_bin, tmp_path / "budget", 400)
    try:
        assert "partition budget" in b.log() and "RLIMIT_NOFILE" in b.log(), b.log_tail()
        with kafka_wire.Connection(b.address) as conn:
            code, message = create_topics_raw(conn, topic, 100)
            # 400 descriptors, 256 kept for connections; the 50 partitions
            # of __consumer_offsets count (they are never refused).
            assert code == POLICY_VIOLATION, (code, message)
            assert "partition budget of 144" in message and "RLIMIT_NOFILE 400" in message, message
            assert create_topics_raw(conn, topic, 10)[0] == 0
        made = [p.name for p in b.data_dir.iterdir()
                if p.name.startswith(topic + "-") and p.name[len(topic) + 1:].isdigit()]
        assert len(made) == 10, made
        assert produce_one(b.bootstrap, topic, b"x")[0] is None
        b.terminate()
        b.start()
        assert sum(high for _, high in watermarks(b.bootstrap, topic, 10).values()) == 1
    finally:
        b.close()
        shutil.rmtree(b.data_dir, ignore_errors=True)


def test_descriptors_exhausted_fail_one_creation_and_the_broker_recovers(sluice_bin, tmp_path, topic):
    steady = topic + "-steady"
    b = limited_broker(sluice_bin, tmp_path / "emfile", 400)
    hogs = []
    try:
        create_topic(b.bootstrap, steady, 1)
        with kafka_wire.Connection(b.address) as conn:
            assert kafka_wire.produce(conn, steady, 0, kafka_wire.record_batch(
                [kafka_wire.Record(b"k", b"v0")], base_timestamp=1_700_000_000_000)).error_code == 0
            hogs = hog_descriptors(b, 400)
            code, message = create_topics_raw(conn, topic, 8)
            assert code == KAFKA_STORAGE_ERROR, (code, message)
            assert "Too many open files" in (message or "") and "retriable" in message, message
            # The failed creation left no partition behind (a renamed
            # `.deleted` leftover is not a partition and goes at restart).
            assert not [p for p in b.data_dir.iterdir()
                        if p.name.startswith(topic + "-") and p.name[len(topic) + 1:].isdigit()]
            # Other partitions keep serving on the connection they have.
            resp = kafka_wire.produce(conn, steady, 0, kafka_wire.record_batch([kafka_wire.Record(b"k", b"v1")], base_timestamp=1_700_000_000_000))
            assert (resp.error_code, resp.base_offset) == (0, 1), resp
            for s in hogs:
                s.close()
            hogs.clear()
            time.sleep(1.0)
            assert create_topics_raw(conn, topic, 8)[0] == 0
        assert b.alive()
        assert "log directory is now offline" not in b.log(), b.log_tail()
        b.terminate()
        b.start()
        assert watermarks(b.bootstrap, steady, 1)[0] == (0, 2)
        assert produce_one(b.bootstrap, topic, b"x")[0] is None
    finally:
        for s in hogs:
            s.close()
        b.close()
        shutil.rmtree(b.data_dir, ignore_errors=True)


def test_descriptors_exhausted_fail_create_partitions_and_leave_the_count_unchanged(sluice_bin, tmp_path, topic):
    """CreatePartitions is all or nothing, as CreateTopics: when the new
    partitions cannot all be opened (EMFILE), the request fails with a
    retriable error, the topic keeps its partition count, no directory of a
    new partition is left, the old partitions keep serving, and the same
    request succeeds once descriptors return; a restart keeps the count."""
    b = limited_broker(sluice_bin, tmp_path / "emfile-partitions", 400)
    hogs = []
    try:
        create_topic(b.bootstrap, topic, 2)
        one = kafka_wire.record_batch([kafka_wire.Record(b"k", b"v")], base_timestamp=1_700_000_000_000)
        with kafka_wire.Connection(b.address) as conn:
            # The first append writes the leader-epoch checkpoint: before
            # descriptors run out.
            assert kafka_wire.produce(conn, topic, 1, one).error_code == 0
            hogs = hog_descriptors(b, 400)
            code, message = create_partitions_raw(conn, topic, 40)
            assert code == KAFKA_STORAGE_ERROR, (code, message)
            assert "Too many open files" in (message or "") and "retriable" in message, message
            assert partition_dirs(b.data_dir, topic) == [0, 1]
            resp = kafka_wire.produce(conn, topic, 1, one)
            assert (resp.error_code, resp.base_offset) == (0, 1), resp
            for s in hogs:
                s.close()
            hogs.clear()
            time.sleep(1.0)
            assert partition_count(b.bootstrap, topic) == 2
            assert create_partitions_raw(conn, topic, 40)[0] == 0
        assert partition_count(b.bootstrap, topic) == 40
        assert partition_dirs(b.data_dir, topic) == list(range(40))
        assert "log directory is now offline" not in b.log(), b.log_tail()
        b.terminate()
        b.start()
        assert partition_count(b.bootstrap, topic) == 40
        assert watermarks(b.bootstrap, topic, 40)[1] == (0, 2)
    finally:
        for s in hogs:
            s.close()
        b.close()
        shutil.rmtree(b.data_dir, ignore_errors=True)


def test_more_segments_than_descriptors_are_served_within_the_open_segment_budget(sluice_bin, tmp_path, topic):
    """Issue 13: inactive segments close when sealed and are mapped again
    (without a descriptor) when read, at most `log.open.segments.max` at a
    time, so a broker limited to 400 descriptors serves 60 partitions of 10
    segments each (1 800 segment files, more than it may open), consumes
    them all back with librdkafka (fetches of many old segments at once),
    and restarts, never near its limit."""
    b = limited_broker(sluice_bin, tmp_path / "segments", 400, {"log.open.segments.max": 16})
    partitions, rounds = 60, 10
    try:
        create_topic(b.bootstrap, topic, partitions, {"segment.bytes": "1024"})
        p = producer(b.bootstrap, **{"compression.type": "none", "linger.ms": 0})
        for r in range(rounds):
            # One batch per partition per round: each fills a 1 KiB segment.
            for i in range(partitions):
                p.produce(topic, partition=i, value=f"{r}:{i}:".encode() + b"x" * 700)
            assert p.flush(30) == 0
        segments = len(list(b.data_dir.glob(f"{topic}-*/*.log")))
        assert segments >= partitions * rounds, segments
        peak = open_fds(b.pid)
        for start in range(2):
            records = read_partitions(b.bootstrap, topic, partitions)
            for i in range(partitions):
                values = [r.value for r in records[i]]
                assert values == [f"{r}:{i}:".encode() + b"x" * 700 for r in range(rounds)], (start, i)
            peak = max(peak, open_fds(b.pid))
            metrics = b.log()  # the broker is alive and logged no offline directory
            assert "log directory is now offline" not in metrics, b.log_tail()
            assert "Too many open files" not in b.log(), b.log_tail()
            if start == 0:
                b.terminate()
                b.start()
        assert peak < 400, peak
    finally:
        b.close()
        shutil.rmtree(b.data_dir, ignore_errors=True)
