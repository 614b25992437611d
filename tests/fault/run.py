#!/usr/bin/env python3
"""Fault test with real processes: a checker writes and reads a replicated
topic on a 3-node Sluice cluster while a nemesis kills, pauses and restarts
nodes; at the end every replica's log is read from disk and compared.

    SLUICE_BIN=target/release/sluice /work/venv/bin/python tests/fault/run.py \
        --duration 120 --episodes 100

Workload: confluent-kafka producer (acks=all, enable.idempotence=true,
uncompressed) writing `p<partition>-<seq>` values, partition chosen round
robin, to a topic with RF 3 and min.insync.replicas=2; a consumer group
reads it meanwhile and commits (auto-commit every second; every commit the
coordinator acknowledges is noted).

Nemesis, one fault at a time, each an episode: kill -9 the leader of a
random partition, kill -9 the active controller, SIGSTOP/SIGCONT a node,
SIGTERM-restart a node, or cut a node's links (every link between nodes
goes through a TCP proxy, `proxy.py`: its controller links both ways and
every connection into its Kafka listener). Killed nodes come back on the
same ports and data. Nodes run with a 2 s broker session (250 ms
heartbeats) and `replica.lag.time.max.ms` 3 s, so a fault held for a few
seconds fences the node and moves its leaderships.

At the end: every node healed, a settle period, the topic read back through
a consumer (what clients see), then the nodes stopped cleanly and each
replica's segment files read directly. Printed, one per line:

    episodes, acknowledged            (counts)
    lost                              acknowledged values the cluster no longer returns
    duplicated                        values stored at more than one offset
    reordered                         values out of sequence order within a partition
    divergent                         offsets whose contents differ between replicas
    unreplicated                      acknowledged offsets missing from some replica's log
    lost_commits                      partitions whose committed offset is below one the
                                      coordinator acknowledged, or above the log end
    not_resumed                       partitions where a new member of the group did not
                                      start at the group's committed offset

All but the first two must be 0; the exit code is 1 otherwise. Use
`--allow-unreplicated` to check the rest on a build without replication.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Cluster  # noqa: E402
from segments import read_partition  # noqa: E402

TOPIC = "fault-checker"
GROUP = "fault-checker-group"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Workload:
    """Producer and group consumer threads, and what they saw."""

    def __init__(self, bootstrap: str, partitions: int, rate: int, client_log: Path):
        self.bootstrap = bootstrap
        # librdkafka's idempotence debug lines (epoch bumps and the broker
        # answers behind them) go to a file: a duplicate is explained there.
        self.client_log = logging.getLogger("fault-producer")
        self.client_log.propagate = False
        self.client_log.setLevel(logging.DEBUG)
        self.client_log.addHandler(logging.FileHandler(client_log))
        self.partitions = partitions
        self.rate = rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # partition → [(offset, value)] acknowledged
        self.acked: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        self.failed = 0
        self.sent = 0
        self.consumed = 0
        # partition → the highest offset a commit the coordinator
        # acknowledged carried
        self.commits_acked: dict[int, int] = {}
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._produce, daemon=True),
                        threading.Thread(target=self._consume, daemon=True)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=90)

    def _delivered(self, err, msg) -> None:
        with self.lock:
            if err is None:
                self.acked[msg.partition()].append((msg.offset(), msg.value()))
            else:
                self.failed += 1

    def _produce(self) -> None:
        p = Producer({
            "bootstrap.servers": self.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "none",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "request.timeout.ms": 10000,
            "debug": "eos",
            "logger": self.client_log,
        })
        seq = [0] * self.partitions
        i = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            part = i % self.partitions
            value = f"p{part}-{seq[part]}".encode()
            try:
                p.produce(TOPIC, value=value, partition=part, on_delivery=self._delivered)
                seq[part] += 1
                i += 1
                self.sent += 1
            except BufferError:
                p.poll(0.1)
                continue
            p.poll(0)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        remaining = p.flush(90)
        if remaining:
            self.errors.append(f"{remaining} records still unacknowledged after the final flush")

    def _committed(self, err, partitions) -> None:
        if err is not None:
            return
        with self.lock:
            for tp in partitions:
                if tp.error is None and tp.offset >= 0:
                    self.commits_acked[tp.partition] = max(
                        tp.offset, self.commits_acked.get(tp.partition, -1))

    def _consume(self) -> None:
        c = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "session.timeout.ms": 10000,
            "on_commit": self._committed,
            "log_level": 2,
        })
        c.subscribe([TOPIC])
        try:
            while not self.stop.is_set():
                msg = c.poll(0.5)
                if msg is not None and msg.error() is None:
                    self.consumed += 1
        finally:
            try:
                c.close()
            except KafkaException as e:
                self.errors.append(f"group consumer close: {e}")


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, "log_level": 2})


def leader_of(bootstrap: str, partition: int) -> int | None:
    try:
        md = admin(bootstrap).list_topics(TOPIC, timeout=5)
        return md.topics[TOPIC].partitions[partition].leader
    except Exception:  # noqa: BLE001 - any failure: the nemesis picks at random
        return None


def controller_of(bootstrap: str) -> int | None:
    try:
        client = admin(bootstrap)
        return client.describe_cluster(request_timeout=5).result(timeout=6).controller.id
    except Exception:  # noqa: BLE001
        return None


class Nemesis:
    """One fault at a time; every fault is healed before the next."""

    FAULTS = ("kill_leader", "kill_controller", "pause", "restart", "isolate")

    def __init__(self, cluster: Cluster, partitions: int, rng: random.Random):
        self.cluster = cluster
        self.partitions = partitions
        self.rng = rng
        self.episodes = 0
        self.history: list[str] = []

    def _victim(self, chosen: int | None) -> int:
        ids = list(self.cluster.nodes)
        return chosen if chosen in ids else self.rng.choice(ids)

    def episode(self, hold_s: float) -> None:
        fault = self.rng.choice(self.FAULTS)
        bootstrap = self.cluster.bootstrap
        if fault == "kill_leader":
            node = self._victim(leader_of(bootstrap, self.rng.randrange(self.partitions)))
        elif fault == "kill_controller":
            node = self._victim(controller_of(bootstrap))
        else:
            node = self._victim(None)
        n = self.cluster.nodes[node]
        started = time.monotonic()
        if fault in ("kill_leader", "kill_controller"):
            n.kill9()
            time.sleep(hold_s)
            self.cluster.restart(node)
        elif fault == "pause":
            n.sigstop()
            time.sleep(hold_s)
            n.sigcont()
        elif fault == "isolate":
            self.cluster.isolate(node)
            # Long enough, often, for the node to be fenced meanwhile.
            time.sleep(hold_s * 2)
            self.cluster.heal_links()
        else:
            self.cluster.restart(node)
        self.episodes += 1
        line = f"episode {self.episodes}: {fault} node {node} ({time.monotonic() - started:.1f}s)"
        self.history.append(line)
        log(line)


def read_through_cluster(bootstrap: str, partitions: int, timeout_s: float) -> dict[int, dict[int, bytes]]:
    """Every partition read from its leader by a plain consumer, up to the
    high watermark."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-readback",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "log_level": 2})
    out: dict[int, dict[int, bytes]] = {p: {} for p in range(partitions)}
    try:
        ends = {}
        for p in range(partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
            ends[p] = hi
        c.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(len(out[p]) >= ends[p] for p in range(partitions)):
                break
            for msg in c.consume(1000, 1.0):
                if msg.error() is None:
                    out[msg.partition()][msg.offset()] = msg.value()
    finally:
        c.close()
    return out


def check_group(bootstrap: str, partitions: int, commits_acked: dict[int, int],
                timeout_s: float) -> dict:
    """After the faults: the group's committed offsets hold every commit the
    coordinator acknowledged and lie within the log, and a new member of the
    group starts each partition at its committed offset."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                      "enable.auto.commit": False, "log_level": 2})
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(partitions)]
        committed = {tp.partition: tp.offset for tp in probe.committed(tps, timeout=30)}
        ends = {p: probe.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
                for p in range(partitions)}
    finally:
        probe.close()
    examples = []
    lost_commits = 0
    for p in range(partitions):
        at, acked, end = committed.get(p, -1), commits_acked.get(p, -1), ends[p]
        if (acked >= 0 and at < acked) or at > end:
            lost_commits += 1
            examples.append(f"lost_commits: partition {p} committed {at}, "
                            f"acknowledged commit {acked}, log end {end}")
    # A new member resumes where the group left off: its first record of
    # each partition is the one at the committed offset.
    waiting = {p for p in range(partitions) if 0 <= committed.get(p, -1) < ends[p]}
    first: dict[int, int] = {}
    member = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                       "enable.auto.commit": False, "auto.offset.reset": "error",
                       "log_level": 2})
    try:
        member.subscribe([TOPIC])
        deadline = time.monotonic() + timeout_s
        while waiting - first.keys() and time.monotonic() < deadline:
            for msg in member.consume(100, 1.0):
                if msg.error() is None:
                    first.setdefault(msg.partition(), msg.offset())
    finally:
        member.close()
    not_resumed = 0
    for p in sorted(waiting):
        if first.get(p) != committed[p]:
            not_resumed += 1
            examples.append(f"not_resumed: partition {p} committed {committed[p]}, "
                            f"a new member started at {first.get(p)}")
    return {"lost_commits": lost_commits, "not_resumed": not_resumed,
            "group_committed": committed, "group_resumed_partitions": len(waiting),
            "group_examples": examples[:10]}


def check(acked, through_cluster, replicas_on_disk, allow_unreplicated: bool) -> dict:
    lost = duplicated = reordered = divergent = unreplicated = 0
    examples: list[str] = []  # the first few of each kind, to explain a failure
    for p, acks in acked.items():
        seen = through_cluster.get(p, {})
        seen_values = set(seen.values())
        for off, v in acks:
            if v not in seen_values:
                lost += 1
                examples.append(f"lost: partition {p} value {v!r} acknowledged at offset {off}")
    for p, records in through_cluster.items():
        counts = defaultdict(int)
        for v in records.values():
            counts[v] += 1
        duplicated += sum(n - 1 for n in counts.values() if n > 1)
        at = defaultdict(list)
        for off, v in records.items():
            if counts[v] > 1:
                at[v].append(off)
        examples.extend(f"duplicated: partition {p} value {v!r} at offsets {sorted(offs)}"
                        for v, offs in at.items())
        last = -1
        for off in sorted(records):
            v = records[off]
            seq = int(v.decode().split("-")[1])
            if seq < last:
                reordered += 1
                examples.append(f"reordered: partition {p} offset {off} holds {v!r} after sequence {last}")
            last = max(last, seq)
    for p, logs in replicas_on_disk.items():
        offsets = set().union(*[set(l) for l in logs.values()]) if logs else set()
        for off in offsets:
            values = {l[off] for l in logs.values() if off in l}
            if len(values) > 1:
                divergent += 1
                examples.append(f"divergent: partition {p} offset {off} holds {sorted(values)}")
        # librdkafka acknowledges some records without an offset: those a
        # later batch's success implied were written (IMPLICITACK in
        # producer.log). They are looked up by value.
        values_on = {node: set(l.values()) for node, l in logs.items()}
        for off, value in acked.get(p, []):
            if off is None or off < 0:
                missing = [node for node, vs in values_on.items() if value not in vs]
            else:
                missing = [node for node, l in logs.items() if l.get(off) != value]
            if missing:
                unreplicated += 1
                examples.append(f"unreplicated: partition {p} offset {off} ({value!r}) "
                                f"missing on nodes {missing}")
    result = {"lost": lost, "duplicated": duplicated, "reordered": reordered,
              "divergent": divergent, "unreplicated": unreplicated,
              # Per kind, the first few: enough to find them in the logs.
              "examples": [e for kind in ("lost", "duplicated", "reordered", "divergent", "unreplicated")
                           for e in [x for x in examples if x.startswith(kind)][:5]]}
    result["ok"] = lost == duplicated == reordered == divergent == 0 and (
        allow_unreplicated or unreplicated == 0)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", default=os.environ.get("SLUICE_BIN", "target/release/sluice"))
    ap.add_argument("--duration", type=float, default=120, help="seconds of faults, at most")
    ap.add_argument("--episodes", type=int, default=100, help="stop after this many faults")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--rate", type=int, default=200, help="records per second produced")
    ap.add_argument("--hold", type=float, default=2.5, help="seconds a fault lasts, at most")
    ap.add_argument("--settle", type=float, default=20, help="seconds to wait after healing")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--dir", default=None, help="keep node data and logs here")
    ap.add_argument("--allow-unreplicated", action="store_true")
    ap.add_argument("--json", default=None, help="write the result here")
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sluice-fault-"))
    log(f"seed {seed}, nodes under {root}")
    cluster = Cluster(args.sluice, root, 3, config={
        "broker.session.timeout.ms": 2000,
        "broker.heartbeat.interval.ms": 250,
        "replica.lag.time.max.ms": 3000,
    })
    result: dict = {"seed": seed}
    try:
        cluster.start()
        setup = admin(cluster.bootstrap)  # kept alive until its futures resolve
        fs = setup.create_topics([NewTopic(
            TOPIC, num_partitions=args.partitions, replication_factor=3,
            config={"min.insync.replicas": "2"})])
        fs[TOPIC].result(timeout=30)
        md = setup.list_topics(TOPIC, timeout=10)
        replicas = {p: list(md.topics[TOPIC].partitions[p].replicas) for p in range(args.partitions)}
        log(f"topic {TOPIC}: replicas {replicas}")

        work = Workload(cluster.bootstrap, args.partitions, args.rate, root / "producer.log")
        work.start()
        time.sleep(2)
        nemesis = Nemesis(cluster, args.partitions, rng)
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline and nemesis.episodes < args.episodes:
            nemesis.episode(rng.uniform(0.2, args.hold))
            time.sleep(rng.uniform(0.2, 1.0))
        log("faults over; healing and settling")
        cluster.heal_links()
        for n in cluster.nodes.values():
            n.sigcont()
            if not n.alive():
                cluster.restart(n.id)
        time.sleep(2)
        work.finish()
        time.sleep(args.settle)
        group = check_group(cluster.bootstrap, args.partitions, dict(work.commits_acked), 60)
        through = read_through_cluster(cluster.bootstrap, args.partitions, 60)
        cluster.stop_all()
        on_disk = {p: {node: read_partition(cluster.nodes[node].data_dir / f"{TOPIC}-{p}")
                       for node in replicas[p]} for p in range(args.partitions)}
        acknowledged = sum(len(v) for v in work.acked.values())
        result.update(check(work.acked, through, on_disk, args.allow_unreplicated))
        result.update(group)
        result["examples"] += group["group_examples"]
        result["ok"] = result["ok"] and group["lost_commits"] == group["not_resumed"] == 0
        result.update({"episodes": nemesis.episodes, "acknowledged": acknowledged,
                       "sent": work.sent, "failed_deliveries": work.failed,
                       "group_consumed": work.consumed, "workload_errors": work.errors,
                       "replica_log_ends": {p: {n: (max(l) + 1 if l else 0) for n, l in logs.items()}
                                            for p, logs in on_disk.items()}})
    finally:
        cluster.close()
    for key in ("episodes", "acknowledged", "lost", "duplicated", "reordered", "divergent",
                "unreplicated", "lost_commits", "not_resumed"):
        print(f"{key}: {result.get(key)}")
    print(f"(sent {result.get('sent')}, failed deliveries {result.get('failed_deliveries')}, "
          f"group consumed {result.get('group_consumed')}, group committed "
          f"{result.get('group_committed')}, resumed on {result.get('group_resumed_partitions')} "
          f"partitions, seed {seed})")
    print(f"replica log ends: {result.get('replica_log_ends')}")
    for example in result.get("examples", []):
        print(example)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    if not args.dir and result.get("ok"):
        shutil.rmtree(root, ignore_errors=True)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
