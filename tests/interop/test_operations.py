"""Operating a real broker: configuration layers and their validation,
the admin HTTP endpoint (/metrics, /health, /ready) scraped after real
clients produced and consumed, and SIGTERM under load.

`promtool check metrics` (Debian package `prometheus`, installed by
tests/run-all) checks the scrape; without promtool that one check is
skipped with a message saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from readback import admin, assert_dense, create_topic, producer, read_partitions

PARTITIONS = 3
N = 2000


def http_get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text: str) -> dict[str, float]:
    """`name{labels}` → value of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def describe_broker(bootstrap: str) -> dict:
    client = admin(bootstrap)
    resource = ConfigResource(ResourceType.BROKER, "1")
    return client.describe_configs([resource])[resource].result(15)


def commit_offset(bootstrap: str, group: str, topic: str, partition: int, offset: int) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "log_level": 2})
    try:
        done = c.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
        assert done[0].error is None, done[0].error
    finally:
        c.close()


def produce_n(bootstrap: str, topic: str, n: int) -> int:
    p = producer(bootstrap)
    errors = []
    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=f"value-{i}".encode(),
                  on_delivery=lambda err, msg: err and errors.append(err))
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors[:3]
    return n


def test_metrics_move_with_real_traffic_and_pass_promtool(broker, topic):
    url = broker.admin_url
    create_topic(broker.bootstrap, topic, PARTITIONS)
    before = samples(http_get(f"{url}/metrics")[1])
    produce_n(broker.bootstrap, topic, N)
    got = read_partitions(broker.bootstrap, topic, PARTITIONS)
    assert sum(len(v) for v in got.values()) == N

    status, text = http_get(f"{url}/metrics")
    assert status == 200
    after = samples(text)
    t = f'topic="{topic}"'
    assert after[f"sluice_topic_records_in_total{{{t}}}"] == N
    assert after[f"sluice_topic_bytes_in_total{{{t}}}"] > N * len("value-0")
    assert after[f"sluice_topic_bytes_out_total{{{t}}}"] >= after[f"sluice_topic_bytes_in_total{{{t}}}"]
    # Records out count what consumers were sent (whole batches), at least
    # every record once.
    assert after[f"sluice_topic_records_out_total{{{t}}}"] >= N
    hw = sum(after[f'sluice_partition_high_watermark{{{t},partition="{p}"}}'] for p in range(PARTITIONS))
    assert hw == N
    leo = sum(after[f'sluice_partition_log_end_offset{{{t},partition="{p}"}}'] for p in range(PARTITIONS))
    assert leo == N
    assert after[f'sluice_partition_size_bytes{{{t},partition="0"}}'] > 0
    # Consumer-group lag: the high watermark less the group's commit.
    hw0 = after[f'sluice_partition_high_watermark{{{t},partition="0"}}']
    assert hw0 >= 3, hw0
    commit_offset(broker.bootstrap, "lagging", topic, 0, 3)
    lag = samples(http_get(f"{url}/metrics")[1])
    assert lag[f'sluice_consumer_group_lag{{group="lagging",{t},partition="0"}}'] == hw0 - 3

    def total(prefix: str, table: dict) -> float:
        return sum(v for k, v in table.items() if k.startswith(prefix))

    produced = total('sluice_requests_total{api="Produce"', after) - total('sluice_requests_total{api="Produce"', before)
    fetched = total('sluice_requests_total{api="Fetch"', after) - total('sluice_requests_total{api="Fetch"', before)
    assert produced >= 1 and fetched >= 1, (produced, fetched)
    # Latency is kept per API and version: librdkafka's Produce version
    # has its own series, and they sum to at least the requests counted.
    produce_latency = {k: v for k, v in after.items()
                       if k.startswith('sluice_request_duration_seconds_count{api="Produce",version="')}
    assert produce_latency, "no per-version Produce latency series"
    assert sum(produce_latency.values()) >= produced
    assert after["sluice_connections_accepted_total"] > before.get("sluice_connections_accepted_total", 0)
    assert after["sluice_flush_duration_seconds_count"] > before["sluice_flush_duration_seconds_count"], \
        "durability fsync: appends were synced by the flusher"
    assert after["sluice_data_dir_free_bytes"] > 0
    assert after["process_open_fds"] > 0 and after["process_resident_memory_bytes"] > 0
    assert after["sluice_ready"] == 1

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus); tests/run-all installs it")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, f"promtool check metrics:\n{check.stdout}{check.stderr}"


def test_parked_fetches_and_waiting_produce_bytes_are_gauges(broker, topic):
    """Issue 18: long-poll fetches parked and produce requests waiting for
    their acks are gauges: a consumer fetch held by max_wait_ms shows up
    while it waits and leaves when answered; the produce gauges are back at
    0 once the produce is answered (a single node's flush is too quick to
    catch it waiting; `admin::metrics` tests the counting itself)."""
    import kafka_wire
    create_topic(broker.bootstrap, topic, 1)
    url = f"{broker.admin_url}/metrics"
    parked = 'sluice_fetch_waiting_requests{kind="consumer"}'
    assert samples(http_get(url)[1])[parked] == 0
    answered = []

    def long_poll():
        with kafka_wire.Connection(broker.address) as conn:
            answered.append(kafka_wire.fetch(conn, topic, 0, 0, max_wait_ms=3000, min_bytes=1))

    t = threading.Thread(target=long_poll)
    t.start()
    seen = 0
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline and not answered and seen == 0:
        seen = samples(http_get(url)[1])[parked]
        time.sleep(0.05)
    assert seen == 1, "the parked fetch was not counted"
    with kafka_wire.Connection(broker.address) as conn:
        batch = kafka_wire.record_batch([kafka_wire.Record(b"k", b"v" * 1000)], base_timestamp=1_700_000_000_000)
        assert kafka_wire.produce(conn, topic, 0, batch).error_code == 0
    t.join(10)
    assert answered and answered[0].error_code == 0 and answered[0].records, "the long poll was not woken"
    after = samples(http_get(url)[1])
    assert after[parked] == 0
    assert after["sluice_produce_waiting_requests"] == 0
    assert after["sluice_produce_waiting_bytes"] == 0


def test_partition_series_can_be_turned_off(broker_factory, topic):
    b = broker_factory(config={"metrics.partition.series.enabled": False})
    create_topic(b.bootstrap, topic, PARTITIONS)
    produce_n(b.bootstrap, topic, 10)
    commit_offset(b.bootstrap, "lagging", topic, 0, 1)
    text = http_get(f"{b.admin_url}/metrics")[1]
    assert "sluice_partition_high_watermark{" not in text
    assert "sluice_consumer_group_lag{" not in text
    # Per-topic sums stay: one series per topic, whatever the partition count.
    assert samples(text)[f'sluice_topic_records_in_total{{topic="{topic}"}}'] == 10


def test_health_and_ready_through_start_serve_and_stop(broker_factory):
    b = broker_factory(start=False)
    b.spawn()
    # The admin endpoint comes up before the logs are opened and the
    # groups loaded (seconds: 50 offsets partitions are created on a
    # fresh data directory), so /ready is seen "starting" first.
    deadline = time.monotonic() + 30
    seen_starting = False
    while "listening on 127.0.0.1:" not in re.sub(r"admin endpoint serving http://\S+", "", b.log()):
        assert time.monotonic() < deadline, b.log_tail()
        if "admin endpoint serving" in b.log():
            status, body = http_get(f"{b.admin_url}/ready")
            listening = "listening on 127.0.0.1:" in re.sub(r"admin endpoint serving http://\S+", "", b.log())
            if not listening:
                assert (status, body.strip()) == (503, "starting")
                seen_starting = True
            assert http_get(f"{b.admin_url}/health") == (200, "ok\n")
        time.sleep(0.05)
    assert seen_starting, "never saw /ready before the broker listened"
    b.wait_listening()
    assert http_get(f"{b.admin_url}/ready") == (200, "serving\n")
    assert b.terminate() == 0


def test_config_precedence_file_env_flag_in_describe_configs(broker_factory):
    b = broker_factory(config={"num.partitions": 2, "log.retention.ms": 1000, "group.max.size": 7}, start=False)
    b.extra_env = {"SLUICE_NUM_PARTITIONS": "3", "SLUICE_LOG_RETENTION_MS": "2000"}
    b.args += ["--set", "log.retention.ms=5000"]
    b.start()
    configs = describe_broker(b.bootstrap)
    STATIC, DEFAULT = 4, 5  # DescribeConfigs' STATIC_BROKER_CONFIG, DEFAULT_CONFIG

    def entry(name):
        e = configs[name]
        return e.value, getattr(e.source, "value", e.source)

    assert entry("group.max.size") == ("7", STATIC)  # file
    assert entry("num.partitions") == ("3", STATIC)  # environment over file
    assert entry("log.retention.ms") == ("5000", STATIC)  # flag over environment
    assert entry("message.max.bytes") == ("1048588", DEFAULT)
    assert entry("log.level") == ("info", DEFAULT)
    # `--listen 127.0.0.1:0`: the port the listener bound, not ":0".
    assert entry("listeners") == (f"PLAINTEXT://{b.bootstrap}", STATIC)
    # The settings act: an auto-created topic gets num.partitions partitions.
    md = admin(b.bootstrap).list_topics("auto-created-by-metadata", timeout=15)
    deadline = time.monotonic() + 15
    while len(md.topics["auto-created-by-metadata"].partitions) != 3 and time.monotonic() < deadline:
        time.sleep(0.2)
        md = admin(b.bootstrap).list_topics("auto-created-by-metadata", timeout=15)
    assert len(md.topics["auto-created-by-metadata"].partitions) == 3
    assert "num.partitions (environment variable SLUICE_NUM_PARTITIONS)" in b.log()


@pytest.mark.parametrize("args, env, file, words", [
    (["--set", "num.partitions=0"], {}, None, ["num.partitions", "command line", "1..=2147483647"]),
    ([], {"SLUICE_LOG_SEGMENT_BYTES": "10"}, None, ["log.segment.bytes", "SLUICE_LOG_SEGMENT_BYTES", "1024"]),
    ([], {}, '"no.such.setting" = 1\n', ["unknown setting", "no.such.setting", "sluice config defaults"]),
    ([], {}, 'durability = "sometimes"\n', ["durability", "fsync, page_cache"]),
    (["--log-format", "xml"], {}, None, ["log.format", "text, json"]),
])
def test_bad_settings_stop_the_start_naming_them(sluice_bin, tmp_path, args, env, file, words):
    cmd = [sluice_bin, "serve", "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0"] + args
    if file is not None:
        (tmp_path / "bad.toml").write_text(file)
        cmd += ["--config", str(tmp_path / "bad.toml")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                       env={**os.environ, "SLUICE_ADMIN_LISTEN": "127.0.0.1:0", **env})
    assert r.returncode != 0
    for w in words:
        assert w in r.stderr, f"{w!r} not in:\n{r.stderr}"
    assert not (tmp_path / "d").exists(), "nothing is created before the settings are valid"


def test_defaults_file_starts_a_broker_identical_to_no_config(sluice_bin, broker_factory):
    text = subprocess.run([sluice_bin, "config", "defaults"], capture_output=True, text=True,
                          timeout=30, check=True).stdout
    assert "# Largest record batch accepted" in text and '"message.max.bytes" = 1048588' in text
    plain = broker_factory()
    with_file = broker_factory(start=False)
    with_file.config_path = with_file.workdir / "defaults.toml"
    with_file.config_path.write_text(text)
    with_file.start()
    a, b = describe_broker(plain.bootstrap), describe_broker(with_file.bootstrap)
    assert set(a) == set(b)
    differ = {k for k in a if a[k].value != b[k].value}
    # The harness gives each its own data directory and `--listen
    # 127.0.0.1:0`, and `listeners` reports the port each bound.
    assert differ == {"log.dirs", "listeners"}, {k: (a[k].value, b[k].value) for k in differ}


def test_sigterm_under_load_is_clean_fast_and_loses_nothing(broker, topic):
    create_topic(broker.bootstrap, topic, PARTITIONS)
    acked: list[tuple[int, int]] = []
    stop = threading.Event()

    def load():
        p = producer(broker.bootstrap, **{"message.timeout.ms": 5000, "retries": 0})
        i = 0
        while not stop.is_set():
            p.produce(topic, value=f"v{i}".encode(),
                      on_delivery=lambda err, msg: err is None and acked.append((msg.partition(), msg.offset())))
            p.poll(0)
            i += 1
            if i % 200 == 0:
                time.sleep(0.001)
        p.flush(10)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(1.5)
    started = time.monotonic()
    code = broker.terminate()
    stopped_in = time.monotonic() - started
    stop.set()
    t.join(30)
    assert code == 0, broker.log_tail()
    assert "stopped cleanly" in broker.log(), broker.log_tail()
    assert len(acked) > 100, f"only {len(acked)} records acknowledged under load"
    for p in range(PARTITIONS):
        assert (broker.data_dir / f"{topic}-{p}" / "clean.shutdown").exists(), f"partition {p}: no clean-shutdown marker"

    started = time.monotonic()
    broker.start()
    restarted_in = time.monotonic() - started
    got = read_partitions(broker.bootstrap, topic, PARTITIONS)
    present = {(p, c.offset) for p in got for c in got[p]}
    for p in range(PARTITIONS):
        assert_dense(got[p])
    missing = [a for a in acked if a not in present]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
    print(f"SIGTERM under load: {len(acked)} acknowledged, stop {stopped_in:.2f}s, restart {restarted_in:.2f}s")
    assert stopped_in < 15, f"stop took {stopped_in:.1f}s"


def exported_names(text: str) -> set[str]:
    """Every series name a scrape can hold, from its TYPE lines (a family
    with no sample yet still counts: it is exported)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def test_grafana_dashboard_is_valid_and_queries_exported_metrics(broker, topic):
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "sluice.json"
    dashboard = json.loads(path.read_text())
    # The fields Grafana's dashboard schema requires of an importable dashboard.
    assert isinstance(dashboard["title"], str) and dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    queries = []
    for p in dashboard["panels"]:
        assert p["type"] and p["title"], p
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]), p["title"]
        assert 0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        queries += [t["expr"] for t in p["targets"]]
    assert len(queries) >= 10

    create_topic(broker.bootstrap, topic, 1)
    produce_n(broker.bootstrap, topic, 10)
    exported = exported_names(http_get(f"{broker.admin_url}/metrics")[1])
    used = {m for q in queries for m in re.findall(r"\b(?:sluice|process)_[a-z0-9_]+", q)}
    assert used, "no metric in any query"
    assert used <= exported, f"queried but not exported: {sorted(used - exported)}"
    # And the other way: the dashboard covers throughput, latency, disk and flush.
    for needed in ["sluice_topic_bytes_in_total", "sluice_request_duration_seconds_bucket",
                   "sluice_data_dir_free_bytes", "sluice_flush_duration_seconds_bucket",
                   "sluice_produce_waiting_bytes", "sluice_fetch_waiting_requests",
                   "sluice_topic_records_out_total", "sluice_consumer_group_lag"]:
        assert needed in used, needed
