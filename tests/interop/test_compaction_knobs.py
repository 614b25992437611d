"""When the log cleaner runs and how fast, observed from outside with real
clients: `min.cleanable.dirty.ratio` holds a cleaning back until the bytes
written since the last one are that share of the log, `max.compaction.lag.ms`
rolls a compacted topic's active segment and cleans it in time whatever the
ratio, and `log.cleaner.io.max.bytes.per.second` slows a cleaning down while
produce latency on the partition being cleaned stays low (the segment is
rewritten without the partition's lock).
"""

from __future__ import annotations

import re
import time

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from readback import admin, create_topic, producer, wait_until
from test_compaction import records_left

KEYS = 20
CHECK = {"log.retention.check.interval.ms": 300}


def produce_round(bootstrap: str, topic: str, versions: int, value_bytes: int = 20) -> int:
    """`versions` values of each of KEYS keys to partition 0; the count."""
    p = producer(bootstrap, **{"linger.ms": 5, "batch.size": 3000})
    errors = []
    for version in range(versions):
        for k in range(KEYS):
            p.produce(topic, key=f"key-{k}".encode(), value=f"{version}".encode().ljust(value_bytes, b"."),
                      partition=0, on_delivery=lambda err, _m: err and errors.append(err))
        p.poll(0)
    assert p.flush(30) == 0 and not errors, errors
    return versions * KEYS


def set_topic_config(bootstrap: str, topic: str, key: str, value: str) -> None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    client = admin(bootstrap)  # kept alive until its futures resolve
    for f in client.incremental_alter_configs([resource]).values():
        f.result(timeout=15)


def test_min_cleanable_dirty_ratio_holds_cleaning_back(broker_factory, topic):
    broker = broker_factory(CHECK)
    create_topic(broker.bootstrap, topic, 1, {
        "cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "300",
        "min.cleanable.dirty.ratio": "1.0"})
    first = produce_round(broker.bootstrap, topic, 20)
    # A log never cleaned is wholly dirty (ratio 1.0): cleaned once.
    wait_until(lambda: records_left(broker.bootstrap, topic) < first // 2, 20, "the first cleaning")
    time.sleep(1)
    cleaned_once = records_left(broker.bootstrap, topic)
    # Now part of it is clean: new writes never reach a dirty share of 1.0.
    second = produce_round(broker.bootstrap, topic, 20)
    time.sleep(3)  # ten cleaner rounds
    held = records_left(broker.bootstrap, topic)
    assert held >= cleaned_once + second * 3 // 4, (cleaned_once, second, held)
    # A ratio the dirty share reaches lets the next round clean it.
    set_topic_config(broker.bootstrap, topic, "min.cleanable.dirty.ratio", "0.1")
    wait_until(lambda: records_left(broker.bootstrap, topic) < held // 2, 20, "cleaning at ratio 0.1")


def test_max_compaction_lag_rolls_and_cleans_the_active_segment(broker_factory, topic):
    broker = broker_factory(CHECK)
    lagged, unlagged = f"{topic}-lag", f"{topic}-nolag"
    # Default segment.bytes and segment.ms: without max.compaction.lag.ms
    # every record stays in the active segment, which is never cleaned.
    create_topic(broker.bootstrap, lagged, 1, {"cleanup.policy": "compact", "max.compaction.lag.ms": "1500"})
    create_topic(broker.bootstrap, unlagged, 1, {"cleanup.policy": "compact"})
    written = produce_round(broker.bootstrap, lagged, 25)
    assert produce_round(broker.bootstrap, unlagged, 25) == written
    wait_until(lambda: records_left(broker.bootstrap, lagged) <= KEYS, 20,
             "the lagged topic's active segment to roll and be cleaned")
    assert records_left(broker.bootstrap, unlagged) == written


def test_io_rate_limit_slows_cleaning_and_produce_never_waits_for_it(broker_factory, topic):
    rate = 400_000
    broker = broker_factory({**CHECK, "log.cleaner.io.max.bytes.per.second": rate})
    create_topic(broker.bootstrap, topic, 1, {
        "cleanup.policy": "compact", "segment.bytes": str(256 * 1024), "min.cleanable.dirty.ratio": "0.01"})
    # ~1.6 MB of 1 KB values over 20 keys: reading it twice and writing the
    # survivors takes ~8 s at 400 KB/s.
    produce_round(broker.bootstrap, topic, 80, value_bytes=1000)
    # Produce to the partition being cleaned, one acknowledged record at a
    # time, until the cleaner reports; every latency is measured.
    p = producer(broker.bootstrap, **{"linger.ms": 0, "acks": "all"})
    latencies = []
    deadline = time.monotonic() + 40
    while "compacted" not in broker.log() and time.monotonic() < deadline:
        started = time.monotonic()
        p.produce(topic, key=b"live", value=b"x" * 100, partition=0)
        assert p.flush(10) == 0
        latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    line = next((l for l in broker.log().splitlines() if "compacted" in l), None)
    assert line is not None, broker.log_tail()
    throttled_ms = int(re.search(r"throttled_ms=(\d+)", line).group(1))
    # The limit was felt: the cleaning slept for seconds ...
    assert throttled_ms >= 2000, line
    # ... and produce on the same partition went on meanwhile, never held
    # for the length of a segment rewrite (it was measured throughout).
    assert len(latencies) >= 20, len(latencies)
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
