"""Retention from a client's point of view: a topic with a short `retention.ms` and small
segments loses its old data by itself (ListOffsets earliest moves forward) while its newest
data stays readable; `retention.bytes` caps a partition; an AlterConfigs change applies
without a restart; a compacted topic refuses records without a key, is cleaned down to the
latest value per key, and loses a deleted key's tombstone after `delete.retention.ms`."""

from __future__ import annotations

import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from fjordtest import RDKAFKA_LOG, admin, consume_all, create_topic

BROKER_PROPS = {
    "log.retention.check.interval.ms": "200",
    "log.segment.delete.delay.ms": "100",
    "log.cleaner.backoff.ms": "100",
}


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


def read_compacted(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """Every record from the beginning, as (offset, key, value), with kafka-python."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500)
    try:
        tp = KTopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        got = []
        deadline = time.monotonic() + 20
        while consumer.position(tp) < end and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend((r.offset, r.key, r.value) for r in records)
        return got
    finally:
        consumer.close()


def roll_with_marker(bootstrap: str, topic: str, segment_ms: int) -> None:
    """Waits past segment.ms and writes one more record, which rolls the active segment so
    everything before it can be cleaned (Kafka rolls on append, as Fjord does)."""
    time.sleep(segment_ms / 1000 + 0.2)
    p = Producer({"bootstrap.servers": bootstrap, "logger": RDKAFKA_LOG})
    p.produce(topic, key=b"marker", value=b"roll", partition=0)
    assert p.flush(10) == 0


def test_a_compacted_topic_keeps_the_latest_value_per_key(broker):
    topic = "compacted-latest"
    create_topic(broker.bootstrap, topic, 1, {
        "cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "500",
        "min.cleanable.dirty.ratio": "0.01"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "logger": RDKAFKA_LOG})
    for round_ in range(100):
        for key in range(20):
            p.produce(topic, key=b"key-%02d" % key, value=b"round-%03d" % round_, partition=0)
        p.flush(10)
    assert p.flush(10) == 0
    roll_with_marker(broker.bootstrap, topic, 500)
    latest = {b"key-%02d" % k: b"round-099" for k in range(20)}

    def cleaned():
        records = read_compacted(broker.bootstrap, topic)
        return len(records) == 21 and records
    wait_for("the cleaner to compact the topic", cleaned, 30)
    records = read_compacted(broker.bootstrap, topic)
    assert {k: v for _, k, v in records if k != b"marker"} == latest
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and offsets[-1] == 2000, "offsets are preserved, with gaps"
    low, high = watermarks(broker.bootstrap, topic)
    assert (low, high) == (0, 2001), "compaction moves neither end of the log"
    part = broker.data_dir / f"{topic}-0"
    assert sum(f.stat().st_size for f in part.glob("*.log")) < 2000 * 30, "the old values' bytes are gone"
    # Each cleaned segment keeps its last batch's header, so segments still meet exactly (crash
    # recovery relies on it); the reads above went through those empty batches.
    from conftest import fjord_bin
    logs = [str(f) for f in sorted(part.glob("*.log"))]
    dump = subprocess.run([str(fjord_bin()), "dump-log", *logs], capture_output=True, text=True, check=True).stdout
    assert " count: 0 " in dump, dump[:3000]
    # The first dirty offset is checkpointed, as Kafka does, and survives a restart.
    checkpoint = (broker.data_dir / "cleaner-offset-checkpoint").read_text().split("\n")
    assert any(line.startswith(f"{topic} 0 ") for line in checkpoint), checkpoint
    broker.restart()
    assert read_compacted(broker.bootstrap, topic) == records


def test_a_tombstone_removes_its_key_after_delete_retention(broker):
    from kafka import KafkaProducer
    topic = "compacted-tombstone"
    create_topic(broker.bootstrap, topic, 1, {
        "cleanup.policy": "compact", "segment.ms": "300", "delete.retention.ms": "2000",
        "min.cleanable.dirty.ratio": "0.01"})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        producer.send(topic, key=b"gone", value=b"v1", partition=0)
        producer.send(topic, key=b"kept", value=b"v1", partition=0)
        producer.send(topic, key=b"gone", value=None, partition=0).get(timeout=30)
    finally:
        producer.close()
    roll_with_marker(broker.bootstrap, topic, 300)
    # First cleaning: the old value goes, the tombstone stays so consumers learn of the delete.
    wait_for("the value to be cleaned away", lambda: len(read_compacted(broker.bootstrap, topic)) == 3, 20)
    records = read_compacted(broker.bootstrap, topic)
    assert [(k, v) for _, k, v in records] == [(b"kept", b"v1"), (b"gone", None), (b"marker", b"roll")]
    tombstoned_at = time.monotonic()
    # After delete.retention.ms the tombstone goes too.
    wait_for("the tombstone to expire", lambda: len(read_compacted(broker.bootstrap, topic)) == 2, 20)
    assert time.monotonic() - tombstoned_at >= 1.0, "the tombstone stayed for delete.retention.ms"
    assert [(k, v) for _, k, v in read_compacted(broker.bootstrap, topic)] == [(b"kept", b"v1"), (b"marker", b"roll")]


def recovery_points(data_dir) -> dict[str, int]:
    """Partition 0's recovery point per topic, from `recovery-point-offset-checkpoint`."""
    path = data_dir / "recovery-point-offset-checkpoint"
    if not path.exists():
        return {}
    lines = path.read_text().split("\n")[2:]  # version, count
    return {t: int(o) for t, p, o in (line.split() for line in lines if line) if p == "0"}


def test_flush_ms_moves_the_recovery_point(broker):
    # Kafka's defaults never flush on a timer; flush.ms does, and the recovery point (written
    # to its checkpoint every few seconds) shows it. A topic without it stays at 0 meanwhile.
    create_topic(broker.bootstrap, "flush-timer", 1, {"flush.ms": "200"})
    create_topic(broker.bootstrap, "flush-default", 1)
    for topic in ("flush-timer", "flush-default"):
        produce(broker.bootstrap, topic, 0, 10)
    wait_for("the flush.ms topic's recovery point to reach the log end",
             lambda: recovery_points(broker.data_dir).get("flush-timer") == 10, 15)
    assert recovery_points(broker.data_dir).get("flush-default") == 0
