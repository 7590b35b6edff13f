"""Produce modes a Kafka user relies on: acks=0 (no response at all; a failure closes the
connection) and LogAppendTime topics (the broker's clock replaces the producer's timestamps)."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_LOG_APPEND_TIME, Producer, TopicPartition

import wire
from fjordtest import RDKAFKA_LOG, assign_consumer, consume_all, create_topic


def test_acks_zero_gets_no_response_and_its_records_land(broker):
    create_topic(broker.bootstrap, "acks0", 1)
    now = int(time.time() * 1000)
    batch = wire.record_batch([(b"k", b"fire-and-forget")], now)
    with wire.connect(broker.bootstrap) as s:
        s.sendall(wire.frame(wire.produce_v3("acks0", 0, batch, correlation_id=7, acks=0)))
        # The next response on this connection must answer the next request: the produce
        # got none.
        corr, err, _ = wire.parse_api_versions_v0(wire.request(s, wire.api_versions_request(0, 8)))
        assert (corr, err) == (8, 0)
    got = consume_all(broker.bootstrap, "acks0", 1, expected=1)
    assert [(r.offset, r.value) for r in got[0]] == [(0, b"fire-and-forget")]


def test_a_failed_acks_zero_produce_closes_the_connection(broker):
    create_topic(broker.bootstrap, "acks0bad", 1)
    batch = wire.record_batch([(b"k", b"v")], int(time.time() * 1000), corrupt_crc=True)
    with wire.connect(broker.bootstrap) as s:
        s.sendall(wire.frame(wire.produce_v3("acks0bad", 0, batch, correlation_id=1, acks=0)))
        assert wire.closed_by_peer(s, within=5.0), "an acks=0 failure must close the connection"
    assert broker.alive()


def test_librdkafka_acks_zero_producer(broker):
    create_topic(broker.bootstrap, "acks0rd", 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": 0, "enable.idempotence": False,
                  "linger.ms": 5, "logger": RDKAFKA_LOG})
    for i in range(1000):
        p.produce("acks0rd", value=f"v{i}".encode())
    assert p.flush(30) == 0
    got = consume_all(broker.bootstrap, "acks0rd", 1, expected=1000)
    assert [r.value for r in got[0]] == [f"v{i}".encode() for i in range(1000)]


def test_log_append_time_replaces_the_producers_timestamps(broker):
    create_topic(broker.bootstrap, "appendtime", 1, {"message.timestamp.type": "LogAppendTime"})
    producer_ts = int(time.time() * 1000) - 30 * 60 * 1000
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "logger": RDKAFKA_LOG})
    before = int(time.time() * 1000)
    for i in range(10):
        p.produce("appendtime", value=f"v{i}".encode(), timestamp=producer_ts)
    assert p.flush(30) == 0
    after = int(time.time() * 1000)
    c = assign_consumer(broker.bootstrap)
    c.assign([TopicPartition("appendtime", 0, OFFSET_BEGINNING)])
    seen = []
    deadline = time.monotonic() + 30
    try:
        while len(seen) < 10 and time.monotonic() < deadline:
            for m in c.consume(num_messages=100, timeout=0.5):
                if m.error() is None:
                    seen.append(m.timestamp())
    finally:
        c.close()
    assert len(seen) == 10
    for ts_type, ts in seen:
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= ts <= after + 1000, (ts, before, after)
