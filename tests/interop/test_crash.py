"""kill -9 mid-stream with acks=all and the default durability (fsync):
every record the broker acknowledged is there after recovery, at the offset
it was acknowledged with, and the recovered logs are dense.

Records the producer sent but never saw acknowledged may or may not be
present (the broker may have written them just before dying); the checker
allows them, as long as each is a record we really sent.
"""

import threading
import time

from readback import assert_dense, create_topic, producer, read_partitions

PARTITIONS = 3
ACKS_BEFORE_KILL = 20_000
PRODUCE_DEADLINE_S = 60


def test_kill9_loses_no_acknowledged_record(broker, topic):
    create_topic(broker.bootstrap, topic, PARTITIONS)

    # Short timeouts: once the broker is dead, pending messages should fail
    # quickly instead of holding the test up.
    p = producer(broker.bootstrap, **{"linger.ms": 2, "message.timeout.ms": 5000,
                                      "retries": 0, "socket.timeout.ms": 3000})
    acked: dict[int, dict[int, bytes]] = {i: {} for i in range(PARTITIONS)}
    failed = []
    lock = threading.Lock()

    def on_delivery(err, msg):
        with lock:
            if err is None:
                prior = acked[msg.partition()].setdefault(msg.offset(), msg.value())
                assert prior == msg.value(), f"two records acknowledged at {msg.partition()}/{msg.offset()}"
            else:
                failed.append(err)

    sent = set()
    deadline = time.monotonic() + PRODUCE_DEADLINE_S
    i = 0
    killed_at_acks = None
    while time.monotonic() < deadline:
        value = f"crash-{i}".encode()
        try:
            p.produce(topic, key=str(i).encode(), value=value, on_delivery=on_delivery)
            sent.add(value)
            i += 1
        except BufferError:
            pass
        p.poll(0)
        n_acked = sum(len(v) for v in acked.values())
        if n_acked >= ACKS_BEFORE_KILL and len(p) > 0:
            # Mid-stream: acknowledged records behind us, in-flight ones ahead.
            killed_at_acks = n_acked
            broker.kill()
            break
    assert killed_at_acks is not None, (
        f"only {sum(len(v) for v in acked.values())} acks within {PRODUCE_DEADLINE_S}s; broker too slow?")
    # Collect the outcome of everything still in flight (acks that arrived
    # just before the kill are delivered by these polls).
    p.flush(15)
    total_acked = sum(len(v) for v in acked.values())
    assert total_acked >= killed_at_acks

    broker.start()
    got = read_partitions(broker.bootstrap, topic, PARTITIONS, timeout=60)
    for part in range(PARTITIONS):
        records = got[part]
        assert_dense(records)
        by_offset = {c.offset: c.value for c in records}
        missing = [o for o in sorted(acked[part]) if o not in by_offset]
        assert not missing, (
            f"partition {part}: {len(missing)} acknowledged offsets missing after kill -9 "
            f"(first {missing[:5]}, log end {len(records)}, acked up to {max(acked[part])})")
        wrong = [(o, acked[part][o], by_offset[o]) for o in sorted(acked[part]) if by_offset[o] != acked[part][o]]
        assert not wrong, f"partition {part}: acknowledged offsets hold other values: {wrong[:5]}"
        strangers = [c for c in records if c.value not in sent]
        assert not strangers, f"partition {part}: records never sent: {strangers[:3]}"
    values = [c.value for part in got.values() for c in part]
    assert len(values) == len(set(values)), "a record appears twice (retries are off)"
