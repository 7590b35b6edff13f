"""Retention from a client's point of view: a topic with a short `retention.ms` and small
segments loses its old data by itself (ListOffsets earliest moves forward) while its newest
data stays readable; `retention.bytes` caps a partition; an AlterConfigs change applies
without a restart; a compacted topic refuses records without a key."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from fjordtest import RDKAFKA_LOG, admin, consume_all, create_topic

BROKER_PROPS = {"log.retention.check.interval.ms": "200", "log.segment.delete.delay.ms": "100"}


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "logger": RDKAFKA_LOG})
    for i in range(start, start + count):
        p.produce(topic, key=b"k%d" % i, value=b"v%06d" % i + b"x" * 100, partition=0)
        p.flush(10)  # one batch per record: many small segments
    assert p.flush(10) == 0


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks", "logger": RDKAFKA_LOG})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def wait_for(what, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_time_retention_removes_old_segments_and_keeps_the_newest(broker):
    topic = "retention-time"
    create_topic(broker.bootstrap, topic, 1, {"retention.ms": "1500", "segment.bytes": "1024"})
    produce(broker.bootstrap, topic, 0, 40)
    low, high = watermarks(broker.bootstrap, topic)
    assert (low, high) == (0, 40), "nothing expires at once"
    time.sleep(1.6)
    produce(broker.bootstrap, topic, 40, 10)
    # The first 40 records' segments expire; the newest stay readable.
    wait_for("earliest to move past the old records", lambda: watermarks(broker.bootstrap, topic)[0] >= 35)
    low, high = watermarks(broker.bootstrap, topic)
    assert high == 50 and low <= 40, (low, high)
    got = consume_all(broker.bootstrap, topic, 1, high - low, timeout=30, start=low)
    values = [r.value[:7] for r in got[0]]
    assert values[-10:] == [b"v%06d" % i for i in range(40, 50)]
    assert [r.offset for r in got[0]] == list(range(low, high)), "offsets are unchanged"
    # The deleted segments' files are gone from disk after file.delete.delay.ms.
    part = broker.data_dir / f"{topic}-0"
    wait_for("the .deleted files to be removed", lambda: not list(part.glob("*.deleted")), 10)
    assert all(int(f.stem) >= low - 40 for f in part.glob("*.log"))


def test_size_retention_and_a_config_change_without_restart(broker):
    topic = "retention-size"
    create_topic(broker.bootstrap, topic, 1, {"segment.bytes": "1024"})
    produce(broker.bootstrap, topic, 0, 60)
    time.sleep(0.5)
    assert watermarks(broker.bootstrap, topic)[0] == 0, "the default keeps a week"
    a = admin(broker.bootstrap)
    resource = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.bytes", "2048", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([resource])[resource].result(timeout=30)
    wait_for("retention.bytes to take effect", lambda: watermarks(broker.bootstrap, topic)[0] > 0)
    low, high = watermarks(broker.bootstrap, topic)
    assert high == 60
    # What remains is at most retention.bytes plus the active segment (Kafka's rule).
    part = broker.data_dir / f"{topic}-0"
    sizes = sorted((int(f.stem), f.stat().st_size) for f in part.glob("*.log"))
    assert sum(s for _, s in sizes[:-1]) <= 2048 + 1024, sizes
    got = consume_all(broker.bootstrap, topic, 1, high - low, timeout=30, start=low)
    assert got[0][-1].value[:7] == b"v000059"


def test_a_compacted_topic_refuses_records_without_a_key(broker):
    from kafka import KafkaProducer
    from kafka.errors import InvalidRecordError
    topic = "compacted-keys"
    create_topic(broker.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    try:
        producer.send(topic, key=b"k", value=b"kept").get(timeout=30)
        try:
            producer.send(topic, value=b"no key").get(timeout=30)
        except InvalidRecordError:
            pass
        else:
            raise AssertionError("a keyless record was accepted on a compacted topic")
        producer.send(topic, key=b"k", value=None).get(timeout=30)  # a tombstone is fine
    finally:
        producer.close()
    assert watermarks(broker.bootstrap, topic) == (0, 2)
