"""Hostile and malformed input on raw sockets. The broker must close bad connections (without
allocating what a length prefix claims), answer what the protocol says to answer, and keep
serving everyone else."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from confluent_kafka import TopicPartition

import wire
from fjordtest import assign_consumer, consume_all, create_topic


def assert_serves(broker):
    """The broker still answers a well-formed ApiVersions, and a real client still works."""
    assert broker.alive(), f"broker died\n{broker.log_tail()}"
    with wire.connect(broker.bootstrap) as s:
        corr, err, apis = wire.parse_api_versions_v0(wire.request(s, wire.api_versions_request(0, 4242)))
        assert (corr, err) == (4242, 0)
        assert 18 in apis
    c = assign_consumer(broker.bootstrap)
    try:
        md = c.list_topics(timeout=10)
    finally:
        c.close()
    assert [b.id for b in md.brokers.values()] == [1]


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",           # size prefix 0x47455420 > max
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
    struct.pack(">i", 12) + b"\xff" * 12,                    # api key -1
    struct.pack(">i", 2) + b"\x00\x12",                      # frame too short for a header
    struct.pack(">i", 10) + struct.pack(">hhi", 18, 0, 1) + struct.pack(">h", 100),  # client id overruns frame
    struct.pack(">i", -5) + b"abcdefgh",                     # negative size
    struct.pack(">i", 0),                                    # empty frame
], ids=["http", "tls", "api-key-minus-1", "short-header", "client-id-overrun", "negative-size", "empty-frame"])
def test_garbage_closes_connection(broker, garbage):
    with wire.connect(broker.bootstrap) as s:
        s.sendall(garbage)
        assert wire.closed_by_peer(s, within=5.0), "connection still open 5 s after garbage"
    assert_serves(broker)


def test_huge_length_prefix_closed_without_allocating(broker):
    rss_before = broker.rss_kib()
    t0 = time.monotonic()
    with wire.connect(broker.bootstrap) as s:
        s.sendall(struct.pack(">i", 2_000_000_000) + struct.pack(">hhi", 0, 9, 1))
        assert wire.closed_by_peer(s, within=5.0), "connection still open 5 s after a 2 GB size prefix"
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, f"took {elapsed:.1f}s to close"
    grown_mib = (broker.rss_kib() - rss_before) / 1024
    assert grown_mib < 256, f"broker RSS grew by {grown_mib:.0f} MiB"
    assert_serves(broker)


def test_many_huge_prefixes_in_parallel(broker):
    """50 connections each claiming ~1.9 GB: the broker must not reserve memory for any of them."""
    rss_before = broker.rss_kib()
    socks = [wire.connect(broker.bootstrap) for _ in range(50)]
    try:
        for s in socks:
            s.sendall(struct.pack(">i", 1_900_000_000) + b"\x00\x00\x00\x09")
        for s in socks:
            assert wire.closed_by_peer(s, within=5.0)
    finally:
        for s in socks:
            s.close()
    assert (broker.rss_kib() - rss_before) / 1024 < 256
    assert_serves(broker)


def test_truncated_frame_then_close(broker):
    for cut in (1, 3, 4, 10, 30):
        req = wire.frame(wire.api_versions_request(3, 5))
        with wire.connect(broker.bootstrap) as s:
            s.sendall(req[:cut])
        # and a half-sent frame whose sender goes quiet: the broker must not block others
    idle = wire.connect(broker.bootstrap)
    idle.sendall(struct.pack(">i", 100) + b"\x00" * 10)
    try:
        assert_serves(broker)
    finally:
        idle.close()
    assert_serves(broker)


def test_two_requests_in_one_write_are_both_answered_in_order(broker):
    with wire.connect(broker.bootstrap) as s:
        s.sendall(wire.frame(wire.api_versions_request(0, 1)) + wire.frame(wire.api_versions_request(0, 2)))
        first, second = wire.recv_frame(s), wire.recv_frame(s)
    assert wire.parse_api_versions_v0(first)[:2] == (1, 0)
    assert wire.parse_api_versions_v0(second)[:2] == (2, 0)


def test_api_versions_unsupported_version(broker):
    with wire.connect(broker.bootstrap) as s:
        resp = wire.request(s, wire.api_versions_request(99, 777))
        corr, err, apis = wire.parse_api_versions_v0(resp)
        assert corr == 777
        assert err == 35, f"expected UNSUPPORTED_VERSION (35), got {err}"
        assert apis, "the supported-versions table must still be sent"
        assert 18 in apis and apis[18][0] == 0 and apis[18][1] >= 3, apis.get(18)
        assert 0 in apis and apis[0][1] >= 3, "Produce must be advertised"
        # The connection stays usable: a supported version now works on it.
        corr, err, _ = wire.parse_api_versions_v0(wire.request(s, wire.api_versions_request(0, 778)))
        assert (corr, err) == (778, 0)


def test_api_versions_v3_has_supported_table(broker):
    """v3 (flexible body, header v0 response): parse enough to see that Produce, Fetch and
    Metadata are there and that the ceilings follow the design (Produce <= 11, Fetch <= 12)."""
    with wire.connect(broker.bootstrap) as s:
        r = wire.Reader(wire.request(s, wire.api_versions_request(3, 9)))
    assert r.i32() == 9
    assert r.i16() == 0
    n = _uvarint(r) - 1
    apis = {}
    for _ in range(n):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        assert _uvarint(r) == 0  # per-entry tagged fields
        apis[key] = (lo, hi)
    for key in (0, 1, 2, 3, 18, 19, 20, 21, 22, 23, 32, 33, 37, 44, 60):
        assert key in apis, f"api {key} not advertised: {sorted(apis)}"
    assert apis[0][1] <= 11 and apis[1][1] <= 12, apis


def _uvarint(r: wire.Reader) -> int:
    shift = value = 0
    while True:
        b = r.take(1)[0]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value
        shift += 7


@pytest.mark.parametrize("api_key", [9999, 32767, 1000])
def test_unknown_api_key_closes_connection(broker, api_key):
    with wire.connect(broker.bootstrap) as s:
        s.sendall(wire.frame(wire.header_v1(api_key, 0, 1)))
        assert wire.closed_by_peer(s, within=5.0), f"connection open 5 s after api key {api_key}"
    assert_serves(broker)


def test_produce_below_version_floor_rejected(broker):
    """Produce v0-2 are advertised (for old librdkafka) but rejected: the connection is closed or
    the partition gets an error; nothing is appended either way."""
    topic = "bad-old-produce"
    create_topic(broker.bootstrap, topic, 1)
    batch = wire.record_batch([(b"k", b"v")], int(time.time() * 1000))
    body = struct.pack(">hi", -1, 5000) + struct.pack(">i", 1) + wire.string(topic)
    body += struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(batch)) + batch
    with wire.connect(broker.bootstrap) as s:
        s.sendall(wire.frame(wire.header_v1(0, 2, 31) + body))
        s.settimeout(5)
        try:
            data = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            data = b""
    if data:
        # Produce v2 response: [topic [partition error base_offset log_append_time]] throttle
        r = wire.Reader(data[4:])
        assert r.i32() == 31
        assert r.i32() == 1 and r.string() == topic and r.i32() == 1
        assert r.i32() == 0
        err = r.i16()
        assert err != 0, "Produce v2 must not be accepted"
    c = assign_consumer(broker.bootstrap)
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0)
    c.close()


def test_produce_with_corrupt_crc(broker):
    topic = "bad-crc"
    create_topic(broker.bootstrap, topic, 1)
    now = int(time.time() * 1000)
    good = [(b"k%d" % i, b"good value %d" % i) for i in range(5)]

    with wire.connect(broker.bootstrap) as s:
        # A valid batch first, through the same raw path: it must be appended at offset 0.
        corr, res = wire.parse_produce_v3(wire.request(s, wire.produce_v3(topic, 0, wire.record_batch(good, now), 1)))
        assert (corr, res) == (1, {(topic, 0): (0, 0)}), res

        bad = wire.record_batch([(b"evil", b"corrupt")], now, corrupt_crc=True)
        corr, res = wire.parse_produce_v3(wire.request(s, wire.produce_v3(topic, 0, bad, 2)))
        assert corr == 2
        err, _ = res[(topic, 0)]
        assert err == 2, f"expected CORRUPT_MESSAGE (2), got {err}"

        # A body byte flipped after the CRC was computed: also corrupt.
        flipped = bytearray(wire.record_batch([(b"k", b"flipped")], now))
        flipped[-3] ^= 0x40
        corr, res = wire.parse_produce_v3(wire.request(s, wire.produce_v3(topic, 0, bytes(flipped), 3)))
        assert res[(topic, 0)][0] == 2, res

        # The connection is still usable, and the next good batch gets offset 5.
        more = [(b"k9", b"after corruption")]
        corr, res = wire.parse_produce_v3(wire.request(s, wire.produce_v3(topic, 0, wire.record_batch(more, now), 4)))
        assert (corr, res) == (4, {(topic, 0): (0, 5)}), res

    got = consume_all(broker.bootstrap, topic, 1, 6, timeout=20)
    assert [(r.offset, r.key, r.value) for r in got[0]] == \
        [(i, k, v) for i, (k, v) in enumerate(good + more)]
    c = assign_consumer(broker.bootstrap)
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 6)
    c.close()


def test_produce_truncated_batch(broker):
    """A batch whose length field claims more bytes than the records field holds."""
    topic = "bad-truncated-batch"
    create_topic(broker.bootstrap, topic, 1)
    batch = wire.record_batch([(b"k", b"v" * 100)], int(time.time() * 1000))
    with wire.connect(broker.bootstrap) as s:
        s.sendall(wire.frame(wire.produce_v3(topic, 0, batch[:-20], 1)))
        s.settimeout(5)
        try:
            data = wire.recv_frame(s)
        except (ConnectionError, socket.timeout, OSError):
            data = None
    if data is not None:
        corr, res = wire.parse_produce_v3(data)
        assert res[(topic, 0)][0] in (2, 87), res  # CORRUPT_MESSAGE or INVALID_RECORD
    c = assign_consumer(broker.bootstrap)
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0)
    c.close()
    assert_serves(broker)


def test_metadata_without_auto_create(broker):
    with wire.connect(broker.bootstrap) as s:
        md = wire.metadata_v4(s, ["no-such-topic-here"], 11, auto_create=False)
        assert md["brokers"] == [(1, "127.0.0.1", broker.port, None)]
        err, parts = md["topics"]["no-such-topic-here"]
        assert err == 3, f"expected UNKNOWN_TOPIC_OR_PARTITION (3), got {err}"
        md = wire.metadata_v4(s, ["auto-made-by-metadata"], 12, auto_create=True)
        err, parts = md["topics"]["auto-made-by-metadata"]
        # Kafka may answer LEADER_NOT_AVAILABLE (5) while the new topic settles; then it is there.
        assert err in (0, 5), err
        md = wire.metadata_v4(s, ["auto-made-by-metadata"], 13, auto_create=False)
        err, parts = md["topics"]["auto-made-by-metadata"]
        assert err == 0 and sorted(parts) == [0, 1, 2] and all(v == (0, 1) for v in parts.values()), md
