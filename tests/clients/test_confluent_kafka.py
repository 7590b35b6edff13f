"""confluent-kafka (librdkafka 2.x) against fjord: idempotent produce with every codec, a
byte-exact read-back (keys, values, headers, timestamps, order), and the admin and offset APIs."""

from __future__ import annotations

import collections
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                   NewTopic, OffsetSpec, ResourceType)

from fjordtest import RDKAFKA_LOG, Rec, admin, assign_consumer, consume_all, create_topic

N_RECORDS = 100_000
PARTITIONS = 3
# Recent explicit timestamps: old ones would be due for deletion under the default 7-day
# retention, and future ones past message.timestamp.after.max.ms (1 h) are refused.
BASE_TS = int(time.time() * 1000) - 3_600_000


def produce(bootstrap, topic, n, codec="none", base_ts=BASE_TS, **extra):
    """Produce n records with keys, 2 headers and explicit timestamps; return
    {partition: [Rec in send order]} built from the delivery reports."""
    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": codec,
        "socket.timeout.ms": 15000,
        "message.timeout.ms": 60000,
        "logger": RDKAFKA_LOG,
        # Idempotence, topic and broker state changes at debug level: captured, shown on failure.
        "debug": "eos,topic,broker",
    }
    conf.update(extra)
    p = Producer(conf)
    delivered: dict[int, tuple[int, int]] = {}
    errors: list[str] = []

    def on_delivery(err, msg, i):
        if err is not None:
            errors.append(f"record {i}: {err}")
        else:
            delivered[i] = (msg.partition(), msg.offset())

    sent = []
    for i in range(n):
        key = b"key-%d" % (i % 1009)
        value = b"value-%06d|" % i + b"abcdefgh" * (i % 13)  # compressible, varying sizes
        headers = [("h-index", b"%d" % i), ("h-codec", codec.encode())]
        ts = base_ts + i
        sent.append((key, value, tuple(headers), ts))
        while True:
            try:
                p.produce(topic, value=value, key=key, headers=headers, timestamp=ts,
                          on_delivery=lambda err, msg, i=i: on_delivery(err, msg, i))
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    remaining = p.flush(60)
    if remaining or errors:
        try:
            md = p.list_topics(topic, timeout=5).topics[topic]
            state = f"metadata: error={md.error} partitions={ {k: (v.leader, v.error) for k, v in md.partitions.items()} }"
        except Exception as e:  # the diagnosis must not hide the failure
            state = f"metadata request failed: {e}"
        raise AssertionError(f"{remaining} records still queued after flush, {len(errors)} failed "
                             f"(e.g. {errors[:3]}); {state}. librdkafka's log is under 'Captured log'.")
    assert len(delivered) == n

    by_partition = collections.defaultdict(list)
    for i, (key, value, headers, ts) in enumerate(sent):
        part, off = delivered[i]
        by_partition[part].append(Rec(off, key, value, headers, ts))
    return dict(by_partition)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_idempotent_produce_consume_every_codec(broker, codec):
    topic = f"ck-codec-{codec}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    expected = produce(broker.bootstrap, topic, N_RECORDS, codec)

    # Delivery reports: per partition, in produce order, offsets 0..n-1.
    for part, recs in expected.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"partition {part}: offsets not contiguous"

    got = consume_all(broker.bootstrap, topic, PARTITIONS, N_RECORDS, timeout=90)
    for part in range(PARTITIONS):
        exp, act = expected.get(part, []), got.get(part, [])
        assert len(act) == len(exp), f"partition {part}: consumed {len(act)}, produced {len(exp)}"
        for e, a in zip(exp, act):
            assert a == e, f"partition {part} offset {e.offset}: expected {e}, got {a}"


def test_admin_create_describe_alter_configs(broker):
    a = admin(broker.bootstrap)
    topic = "ck-configs"
    fs = a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                                   config={"retention.ms": "86400000"})], operation_timeout=15)
    fs[topic].result(timeout=30)

    md = a.list_topics(timeout=15)
    assert topic in md.topics
    assert sorted(md.topics[topic].partitions) == [0, 1]
    assert all(p.leader == 1 for p in md.topics[topic].partitions.values())

    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = a.describe_configs([res])[res].result(timeout=30)
    assert configs["retention.ms"].value == "86400000"
    assert not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "delete"

    alter = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([alter])[alter].result(timeout=30)
    configs = a.describe_configs([res])[res].result(timeout=30)
    assert configs["retention.ms"].value == "3600000"

    # DELETE reverts to the default (7 days, Kafka's log.retention.hours=168).
    alter = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([alter])[alter].result(timeout=30)
    configs = a.describe_configs([res])[res].result(timeout=30)
    assert configs["retention.ms"].value == "604800000"

    # An unknown config name is refused.
    bad = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as info:
        a.incremental_alter_configs([bad])[bad].result(timeout=30)
    assert info.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_admin_create_partitions_and_delete_topic(broker):
    a = admin(broker.bootstrap)
    topic = "ck-grow"
    create_topic(broker.bootstrap, topic, 2)
    a.create_partitions([NewPartitions(topic, 5)], operation_timeout=15)[topic].result(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if len(a.list_topics(topic, timeout=10).topics[topic].partitions) == 5:
            break
        time.sleep(0.1)
    assert sorted(a.list_topics(topic, timeout=10).topics[topic].partitions) == [0, 1, 2, 3, 4]

    # Fewer partitions than now: refused.
    with pytest.raises(KafkaException) as info:
        a.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=30)
    assert info.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    a.delete_topics([topic], operation_timeout=15)[topic].result(timeout=30)
    deadline = time.monotonic() + 10
    while topic in a.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    assert topic not in a.list_topics(timeout=10).topics


def test_describe_cluster(broker):
    a = admin(broker.bootstrap)
    desc = a.describe_cluster(request_timeout=15).result(timeout=30)
    assert [n.id for n in desc.nodes] == [1]
    assert desc.nodes[0].host == "127.0.0.1"
    assert desc.nodes[0].port == broker.port
    assert desc.controller is not None and desc.controller.id == 1
    assert desc.cluster_id


def test_offsets_watermarks_times_and_delete_records(broker):
    topic = "ck-offsets"
    create_topic(broker.bootstrap, topic, 1)
    n = 500
    base = int(time.time() * 1000) - 7_200_000
    # Record i has timestamp base + i, so each timestamp lookup has exactly one answer.
    expected = produce(broker.bootstrap, topic, n, "none", base_ts=base)
    assert [r.timestamp for r in expected[0]] == [base + i for i in range(n)]

    c = assign_consumer(broker.bootstrap)
    tp = TopicPartition(topic, 0)
    assert c.get_watermark_offsets(tp, timeout=15) == (0, n)

    # offsets_for_times: the earliest offset whose timestamp >= the given one; past the last
    # record, OFFSET_END (-1). One lookup per call: a request naming the same partition twice
    # is ambiguous (librdkafka maps every entry to the one answer).
    for ts, want in [(base + 123, 123), (base - 5, 0), (base, 0), (base + n - 1, n - 1),
                     (base + n + 1000, OFFSET_END)]:
        [r] = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=15)
        assert (r.offset, r.error) == (want, None), f"offsets_for_times({ts - base:+d}): {r}"

    a = admin(broker.bootstrap)
    specs = {TopicPartition(topic, 0): OffsetSpec.earliest()}
    assert a.list_offsets(specs)[TopicPartition(topic, 0)].result(timeout=30).offset == 0
    specs = {TopicPartition(topic, 0): OffsetSpec.latest()}
    assert a.list_offsets(specs)[TopicPartition(topic, 0)].result(timeout=30).offset == n
    specs = {TopicPartition(topic, 0): OffsetSpec.for_timestamp(base + 300)}
    info = a.list_offsets(specs)[TopicPartition(topic, 0)].result(timeout=30)
    assert (info.offset, info.timestamp) == (300, base + 300)
    specs = {TopicPartition(topic, 0): OffsetSpec.max_timestamp()}
    info = a.list_offsets(specs)[TopicPartition(topic, 0)].result(timeout=30)
    assert (info.offset, info.timestamp) == (n - 1, base + n - 1)

    # delete_records moves the low watermark; what remains reads back from there.
    deleted = a.delete_records([TopicPartition(topic, 0, 200)])[TopicPartition(topic, 0)].result(timeout=30)
    assert deleted.low_watermark == 200
    assert c.get_watermark_offsets(tp, timeout=15) == (200, n)
    specs = {TopicPartition(topic, 0): OffsetSpec.earliest()}
    assert a.list_offsets(specs)[TopicPartition(topic, 0)].result(timeout=30).offset == 200
    c.close()

    got = consume_all(broker.bootstrap, topic, 1, n - 200, timeout=30)
    assert got[0] == expected[0][200:]

    # Deleting beyond the high watermark is refused.
    with pytest.raises(KafkaException) as info:
        a.delete_records([TopicPartition(topic, 0, n + 10)])[TopicPartition(topic, 0)].result(timeout=30)
    assert info.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE


def test_consumer_offset_out_of_range_after_delete_records(broker):
    """Fetching below the log start offset answers OFFSET_OUT_OF_RANGE (surfaced by
    auto.offset.reset=error), not stale data."""
    topic = "ck-oor"
    create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, 50, "none")
    a = admin(broker.bootstrap)
    a.delete_records([TopicPartition(topic, 0, 30)])[TopicPartition(topic, 0)].result(timeout=30)
    c = assign_consumer(broker.bootstrap)
    c.assign([TopicPartition(topic, 0, 10)])
    deadline = time.monotonic() + 20
    seen_error = None
    offsets = []
    while time.monotonic() < deadline and seen_error is None:
        for m in c.consume(num_messages=100, timeout=0.5):
            if m.error() is None:
                offsets.append(m.offset())
            elif m.error().code() != KafkaError._PARTITION_EOF:
                seen_error = m.error()
    c.close()
    assert all(o >= 30 for o in offsets), f"records below the log start offset were served: {offsets[:5]}"
    assert seen_error is not None and seen_error.code() == KafkaError._AUTO_OFFSET_RESET, seen_error


def test_legacy_alter_configs_replaces_the_whole_set(broker):
    """AlterConfigs (non-incremental) sets exactly the given configs: those left out revert to
    their defaults (Kafka's semantics, unlike IncrementalAlterConfigs)."""
    a = admin(broker.bootstrap)
    topic = "ck-legacy-alter"
    create_topic(broker.bootstrap, topic, 1, config={"retention.ms": "86400000", "segment.bytes": "10485760"})
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = a.describe_configs([res])[res].result(timeout=30)
    assert (configs["retention.ms"].value, configs["segment.bytes"].value) == ("86400000", "10485760")

    alter = ConfigResource(ResourceType.TOPIC, topic, set_config={"cleanup.policy": "compact"})
    a.alter_configs([alter])[alter].result(timeout=30)
    configs = a.describe_configs([res])[res].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["retention.ms"].value == "604800000"
    assert configs["segment.bytes"].value == "1073741824"


def test_long_poll_fetch_wakes_on_produce(broker):
    """A consumer waiting at the end of the log (fetch.wait.max.ms=5000) gets a new record as
    soon as it is produced, not when its wait runs out."""
    topic = "ck-long-poll"
    create_topic(broker.bootstrap, topic, 1)
    c = assign_consumer(broker.bootstrap, **{"fetch.wait.max.ms": 5000, "enable.partition.eof": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    assert c.poll(1.5) is None  # nothing yet; the fetch is parked on the broker
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "logger": RDKAFKA_LOG})
    time.sleep(0.5)
    t0 = time.monotonic()
    p.produce(topic, value=b"wake up")
    assert p.flush(10) == 0
    m = c.poll(10)
    latency = time.monotonic() - t0
    c.close()
    assert m is not None and m.error() is None and m.value() == b"wake up"
    assert latency < 2.0, f"record arrived {latency:.1f}s after produce: the parked fetch did not wake"


def test_message_size_limits(broker):
    topic = "ck-sizes"
    create_topic(broker.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 4_000_000,
                  "enable.idempotence": False, "acks": "all", "logger": RDKAFKA_LOG})
    results = []
    big_ok = bytes(range(256)) * 3500            # 896,000 bytes: under max.message.bytes (1048588)
    too_big = b"z" * 2_000_000                   # over it
    p.produce(topic, value=big_ok, on_delivery=lambda err, msg: results.append(("ok", err)))
    p.produce(topic, value=too_big, on_delivery=lambda err, msg: results.append(("big", err)))
    assert p.flush(30) == 0
    assert dict(results)["ok"] is None, results
    err = dict(results)["big"]
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    got = consume_all(broker.bootstrap, topic, 1, 1, timeout=30)
    assert [r.value for r in got[0]] == [big_ok]


def test_delete_and_recreate_topic_starts_empty(broker):
    a = admin(broker.bootstrap)
    topic = "ck-recreate"
    create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, 10)
    a.delete_topics([topic], operation_timeout=15)[topic].result(timeout=30)
    deadline = time.monotonic() + 10
    while True:
        try:
            create_topic(broker.bootstrap, topic, 2)
            break
        except KafkaException as e:  # deletion may still be in progress
            if time.monotonic() > deadline or e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            time.sleep(0.2)
    c = assign_consumer(broker.bootstrap)
    for part in range(2):
        assert c.get_watermark_offsets(TopicPartition(topic, part), timeout=15) == (0, 0)
    c.close()
    expected = produce(broker.bootstrap, topic, 5)
    got = consume_all(broker.bootstrap, topic, 2, 5, timeout=30)
    for part in range(2):
        assert got.get(part, []) == expected.get(part, [])


def test_only_the_records_at_fault_fail_with_invalid_record(broker):
    """KIP-467: a batch refused for some of its records names them (Produce v8+ record_errors),
    so librdkafka fails exactly those with INVALID_RECORD and the rest of the batch with
    _INVALID_DIFFERENT_RECORD. Without the names every record would fail with INVALID_RECORD."""
    topic = "ck-record-errors"
    create_topic(broker.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": False, "acks": "all",
                  "linger.ms": 200, "retries": 0, "logger": RDKAFKA_LOG})
    results = {}
    keys = [b"k0", None, b"k2", None, b"k4"]
    for i, key in enumerate(keys):
        p.produce(topic, value=b"v%d" % i, key=key, partition=0,
                  on_delivery=lambda err, msg, i=i: results.__setitem__(i, err))
    assert p.flush(30) == 0
    codes = {i: (err.code() if err else None) for i, err in results.items()}
    assert codes == {0: KafkaError._INVALID_DIFFERENT_RECORD, 1: KafkaError.INVALID_RECORD,
                     2: KafkaError._INVALID_DIFFERENT_RECORD, 3: KafkaError.INVALID_RECORD,
                     4: KafkaError._INVALID_DIFFERENT_RECORD}, codes
    # The keyed ones may be sent again on their own, and land.
    for i in (0, 2, 4):
        p.produce(topic, value=b"v%d" % i, key=keys[i], partition=0)
    assert p.flush(30) == 0
    got = consume_all(broker.bootstrap, topic, 1, 3, timeout=30)
    assert [r.value for r in got[0]] == [b"v0", b"v2", b"v4"]
