"""kafka-python 3.x against fjord: admin (create/list/validate topics), an idempotent producer
(kafka-python 3.x enables idempotence by default, so InitProducerId is exercised), and a
group-less consumer (assign + seek_to_beginning: no group APIs needed)."""

from __future__ import annotations

import collections
import time
import warnings

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka import errors as Errors

# NewTopic lists are deprecated in kafka-python 3 (dicts preferred) but still supported; the
# brief's snippets use them, so silence the warning rather than rewrite the snippet.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def admin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15_000)
    yield a
    a.close()


def create(admin, name, partitions=1, rf=1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=rf)])


def topic_result(response, name):
    [t] = [t for t in response["topics"] if t["name"] == name]
    return t


def test_create_and_list_topic(admin):
    resp = create(admin, "kp-orders", partitions=3)
    t = topic_result(resp, "kp-orders")
    assert t["error_code"] == 0, t

    assert "kp-orders" in admin.list_topics()
    [desc] = admin.describe_topics(["kp-orders"])
    assert desc["error_code"] == 0
    parts = sorted(desc["partitions"], key=lambda p: p["partition_index"])
    assert [p["partition_index"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["error_code"] == 0
        assert p["leader_id"] == 1, p
        assert p["replica_nodes"] == [1], p
        assert p["isr_nodes"] == [1], p


def test_create_existing_topic_fails(admin):
    create(admin, "kp-dup", partitions=1)
    with pytest.raises(Errors.TopicAlreadyExistsError):
        create(admin, "kp-dup", partitions=1)


def test_replication_factor_above_cluster_size_fails(admin):
    with pytest.raises(Errors.InvalidReplicationFactorError):
        create(admin, "kp-rf3", partitions=1, rf=3)
    assert "kp-rf3" not in admin.list_topics()


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "bad/name", "bad name", "bad*name"],
                         ids=["empty", "dot", "dotdot", "len250", "slash", "space", "star"])
def test_invalid_topic_names_rejected(admin, name):
    with pytest.raises(Errors.InvalidTopicError):
        create(admin, name)
    assert name not in admin.list_topics()


def test_longest_legal_name_accepted(admin):
    name = "L" * 249
    t = topic_result(create(admin, name), name)
    assert t["error_code"] == 0
    assert name in admin.list_topics()


def test_consumer_offsets_cannot_be_created_by_users(admin):
    # Kafka itself only prohibits __cluster_metadata (INVALID_REQUEST); fjord also reserves
    # __consumer_offsets, which its group coordinator owns. Any broker-side refusal is accepted.
    with pytest.raises(Errors.BrokerResponseError) as info:
        create(admin, "__consumer_offsets", partitions=1)
    assert info.value.errno in (
        Errors.InvalidRequestError.errno,
        Errors.InvalidTopicError.errno,
        Errors.TopicAlreadyExistsError.errno,
        Errors.TopicAuthorizationFailedError.errno,
    ), info.value


def test_cluster_metadata_topic_cannot_be_created(admin):
    with pytest.raises(Errors.InvalidRequestError):
        create(admin, "__cluster_metadata", partitions=1)


def test_colliding_topic_names_rejected(admin):
    t = topic_result(create(admin, "kp.collide"), "kp.collide")
    assert t["error_code"] == 0
    with pytest.raises(Errors.InvalidTopicError):
        create(admin, "kp_collide")
    assert "kp_collide" not in admin.list_topics()


def test_idempotent_produce_then_assign_consume(broker, admin):
    topic = "kp-roundtrip"
    create(admin, topic, partitions=3)
    n = 1000

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", retries=5,
                             linger_ms=2, request_timeout_ms=15_000)
    assert producer.config["enable_idempotence"], "kafka-python 3.x should default to idempotence"
    sent = []
    futures = []
    for i in range(n):
        key = f"key-{i % 37}".encode()
        value = f"value-{i:05d}-".encode() + bytes([i % 256]) * (i % 17)
        sent.append((key, value))
        futures.append(producer.send(topic, key=key, value=value))
    producer.flush(timeout=30)
    metas = [f.get(timeout=30) for f in futures]
    producer.close(timeout=10)

    # Per partition, in send order, offsets are exactly 0, 1, 2, ... (no gaps, no reuse).
    expected = collections.defaultdict(list)  # partition -> [(offset, key, value)]
    for (key, value), md in zip(sent, metas):
        assert md.topic == topic
        expected[md.partition].append((md.offset, key, value))
    assert sum(len(v) for v in expected.values()) == n
    assert len(expected) > 1, "1000 records over 37 keys should spread over several partitions"
    for p, recs in expected.items():
        assert [o for o, _, _ in recs] == list(range(len(recs))), f"partition {p} offsets"
    # The same key always lands on the same partition.
    key_part = {}
    for p, recs in expected.items():
        for _, key, _ in recs:
            assert key_part.setdefault(key, p) == p

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False, fetch_max_wait_ms=200,
                             request_timeout_ms=15_000)
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    assert consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}
    assert consumer.end_offsets(tps) == {TopicPartition(topic, p): len(expected.get(p, [])) for p in range(3)}

    got = collections.defaultdict(list)
    deadline = time.monotonic() + 30
    total = 0
    while total < n and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            for r in records:
                got[tp.partition].append((r.offset, r.key, r.value))
                total += 1
    consumer.close()
    assert total == n, f"consumed {total} of {n}"
    for p in range(3):
        assert got.get(p, []) == expected.get(p, []), f"partition {p} differs"


def test_auto_create_on_produce(broker, admin):
    topic = "kp-auto-created"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=15_000)
    md = producer.send(topic, key=b"k", value=b"v").get(timeout=30)
    producer.close(timeout=10)
    assert md.offset == 0
    assert topic in admin.list_topics()
    [desc] = admin.describe_topics([topic])
    # num.partitions=3 in the module broker's server.properties
    assert len(desc["partitions"]) == 3
