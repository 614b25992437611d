"""Kafka clients pipeline requests on one connection and match answers by
order as much as by correlation id (librdkafka keeps up to
`max.in.flight` requests outstanding). The broker must answer in request
order even when an early request waits (a Produce with acks=all waits for
its fsync) and later ones could be answered at once."""

import kafka_wire
from kafka_wire import API_API_VERSIONS, API_LIST_OFFSETS, API_METADATA, API_PRODUCE, Record
from readback import create_topic

ROUNDS = 40


def test_answers_leave_in_request_order(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    batch = kafka_wire.record_batch([Record(b"k", b"v" * 100)], base_timestamp=1_700_000_000_000)
    list_latest = (kafka_wire.i32(-1) + kafka_wire.i8(0)
                   + kafka_wire.array([kafka_wire.string(topic) + kafka_wire.array(
                       [kafka_wire.i32(0) + kafka_wire.i32(-1) + kafka_wire.i64(kafka_wire.LATEST)])]))
    with kafka_wire.Connection(broker.address, timeout=30) as conn:
        sent = []
        for _ in range(ROUNDS):
            sent.append(conn.send_request(API_PRODUCE, 9, kafka_wire.produce_v9_body(topic, 0, batch, acks=-1),
                                          flexible=True))
            sent.append(conn.send_request(API_LIST_OFFSETS, 4, list_latest, flexible=False))
            sent.append(conn.send_request(API_METADATA, 4, kafka_wire.metadata_v4_body([topic], False),
                                          flexible=False))
            sent.append(conn.send_request(API_API_VERSIONS, 0, b"", flexible=False))
        received = []
        latest_seen, produced_at = [], []
        for n in range(len(sent)):
            r = kafka_wire.Reader(conn.recv_frame())
            received.append(r.i32())
            if n % 4 == 0 and received[-1] == sent[n]:
                r.skip_tags()
                answer = kafka_wire.parse_produce_v9(r, topic, 0)
                assert answer.error_code == 0, answer
                produced_at.append(answer.base_offset)
            if n % 4 == 1 and received[-1] == sent[n]:  # ListOffsets v4: throttle, topics[name, partitions[...]]
                r.i32()
                r.array_len(), r.string(), r.array_len()
                r.i32()
                assert r.i16() == 0
                r.i64()
                latest_seen.append(r.i64())
    assert received == sent, f"answers out of order: first differences " \
        f"{[(a, b) for a, b in zip(received, sent) if a != b][:5]}"
    assert produced_at == list(range(ROUNDS)), f"pipelined produces got offsets {produced_at}"
    # The high watermark the ListOffsets answers saw never went backwards,
    # and every acks=all Produce is in the log at the end.
    assert latest_seen == sorted(latest_seen), f"high watermark went backwards: {latest_seen}"
    with kafka_wire.Connection(broker.address) as conn:
        assert kafka_wire.list_offset(conn, topic, 0, kafka_wire.LATEST) == (0, ROUNDS)
