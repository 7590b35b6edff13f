"""Durability and idempotence across broker restarts, with a real idempotent producer
(confluent-kafka, acks=all) running through the crash."""

from __future__ import annotations

import collections
import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

import wire
from fjordtest import RDKAFKA_LOG, admin, assign_consumer, consume_all, create_topic

PARTITIONS = 2


class AckRecorder(threading.Thread):
    """A producer thread's record of what happened: every acknowledged (partition, offset,
    value), every failure, how many values were produced, and what was left after the flush."""

    def __init__(self, topic, prefix: bytes = b"v"):
        super().__init__(daemon=True)
        self.topic = topic
        self.prefix = prefix  # values are prefix + a 7-digit sequence number
        self.stop_flag = threading.Event()
        self.acked: list[tuple[int, int, bytes]] = []
        self.failed: list[tuple[bytes, str]] = []
        self.produced = 0
        self.remaining_after_flush = None
        self.exc = None


class BackgroundProducer(AckRecorder):
    """Produces unique values ("v<seq>") at a bounded rate until stopped, then flushes.
    Records every acknowledged (partition, offset, value) from the delivery reports."""

    def __init__(self, bootstrap, topic):
        super().__init__(topic)
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "socket.timeout.ms": 10000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "retry.backoff.ms": 50,
            "logger": RDKAFKA_LOG,
        })

    def on_delivery(self, err, msg):
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            self.failed.append((msg.value(), str(err)))

    def run(self):
        try:
            seq = 0
            while not self.stop_flag.is_set():
                for _ in range(20):
                    value = self.prefix + b"%07d" % seq
                    try:
                        self.producer.produce(self.topic, key=b"k%d" % (seq % 16), value=value,
                                              on_delivery=self.on_delivery)
                    except BufferError:
                        break
                    seq += 1
                self.produced = seq
                self.producer.poll(0.005)
            self.remaining_after_flush = self.producer.flush(60)
        except Exception as e:  # surfaced by the test
            self.exc = e


def check_log_against_acks(bootstrap, topic, acked, produced_values):
    got = consume_all(bootstrap, topic, PARTITIONS, len(acked), timeout=60)
    problems = []
    log_values = collections.Counter()
    for p in range(PARTITIONS):
        recs = got.get(p, [])
        offsets = [r.offset for r in recs]
        if offsets != list(range(len(recs))):
            gaps = [(a, b) for a, b in zip(offsets, offsets[1:]) if b != a + 1][:5]
            problems.append(f"partition {p}: offsets not contiguous from 0 (first: {offsets[:3]}, gaps: {gaps})")
        log_values.update(r.value for r in recs)
    dups = [v for v, c in log_values.items() if c > 1]
    if dups:
        problems.append(f"{len(dups)} values appear more than once in the log, e.g. {sorted(dups)[:5]}")
    by_pos = {(p, r.offset): r.value for p, recs in got.items() for r in recs}
    wrong = [(p, o, v, by_pos.get((p, o))) for p, o, v in acked if by_pos.get((p, o)) != v]
    if wrong:
        problems.append(f"{len(wrong)} acknowledged records are not at their acknowledged offset, "
                        f"e.g. (partition, offset, acked value, log value) {wrong[:5]}")
    strangers = set(log_values) - set(produced_values)
    if strangers:
        problems.append(f"values in the log that were never produced: {sorted(strangers)[:5]}")
    assert not problems, "\n".join(problems)
    return got


@pytest.mark.timeout(150)
@pytest.mark.parametrize("kill9", [True, False], ids=["sigkill", "sigterm"])
def test_idempotent_producer_across_restart(fresh_broker, kill9):
    topic = "restart-topic"
    create_topic(fresh_broker.bootstrap, topic, PARTITIONS)
    bg = BackgroundProducer(fresh_broker.bootstrap, topic)
    bg.start()
    time.sleep(2.0)
    acked_before = len(bg.acked)
    assert acked_before > 0, "nothing acknowledged in the first 2 s"

    fresh_broker.restart(kill9=kill9)
    time.sleep(2.0)
    bg.stop_flag.set()
    bg.join(90)
    assert not bg.is_alive(), "producer did not finish flushing"
    assert bg.exc is None, repr(bg.exc)
    assert len(bg.acked) > acked_before, "no record acknowledged after the restart"
    # The producer retried through the restart: everything it produced was delivered.
    assert bg.remaining_after_flush == 0
    assert not bg.failed, f"{len(bg.failed)} delivery failures, e.g. {bg.failed[:5]}"
    assert len(bg.acked) == bg.produced

    produced_values = [b"v%07d" % i for i in range(bg.produced)]
    assert sorted(v for _, _, v in bg.acked) == produced_values, "an acknowledgement is missing or repeated"
    check_log_against_acks(fresh_broker.bootstrap, topic, bg.acked, produced_values)

    # The high watermarks equal what the log holds.
    c = assign_consumer(fresh_broker.bootstrap)
    counts = collections.Counter(p for p, _, _ in bg.acked)
    for p in range(PARTITIONS):
        assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=15) == (0, counts[p])
    c.close()


def test_data_and_offsets_survive_clean_and_unclean_restarts(fresh_broker):
    """Produce, restart (SIGTERM), produce, restart (SIGKILL), produce: offsets continue and all
    data is readable after each restart."""
    topic = "restart-cycles"
    create_topic(fresh_broker.bootstrap, topic, 1)
    all_values = []
    for round_, kill9 in enumerate([False, True, None]):
        p = Producer({"bootstrap.servers": fresh_broker.bootstrap, "enable.idempotence": True,
                      "linger.ms": 1, "logger": RDKAFKA_LOG})
        offsets = []
        values = [b"round%d-%04d" % (round_, i) for i in range(300)]
        for v in values:
            p.produce(topic, value=v, partition=0,
                      on_delivery=lambda err, msg: offsets.append(-1 if err else msg.offset()))
        assert p.flush(30) == 0
        start = len(all_values)
        assert offsets == list(range(start, start + len(values)))
        all_values += values
        got = consume_all(fresh_broker.bootstrap, topic, 1, len(all_values), timeout=30)
        assert [r.value for r in got[0]] == all_values
        assert [r.offset for r in got[0]] == list(range(len(all_values)))
        if kill9 is not None:
            fresh_broker.restart(kill9=kill9)
            if not kill9:
                assert fresh_broker.last_exit == 0, f"exit status {fresh_broker.last_exit} after SIGTERM"


def _produce_idempotent(sock, topic, pid, epoch, seq, values, corr):
    batch = wire.record_batch([(None, v) for v in values], int(time.time() * 1000),
                              producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    c, res = wire.parse_produce_v3(wire.request(sock, wire.produce_v3(topic, 0, batch, corr)))
    assert c == corr
    return res[(topic, 0)]


@pytest.mark.timeout(60)
def test_duplicate_batches_are_deduplicated_across_kill9(fresh_broker):
    """The same idempotent batch (producer id, epoch, sequence) sent again is answered with its
    original offset and not appended again, also after a SIGKILL and restart (the producer
    state is rebuilt from the log). A sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER (45)."""
    topic = "dedupe"
    create_topic(fresh_broker.bootstrap, topic, 1)
    with wire.connect(fresh_broker.bootstrap) as s:
        pid, epoch = wire.init_producer_id(s, 1)
        assert pid >= 0 and epoch >= 0
        assert _produce_idempotent(s, topic, pid, epoch, 0, [b"a0", b"a1"], 2) == (0, 0)
        assert _produce_idempotent(s, topic, pid, epoch, 2, [b"b0"], 3) == (0, 2)
        # Retries of both batches: same offsets, nothing appended.
        assert _produce_idempotent(s, topic, pid, epoch, 0, [b"a0", b"a1"], 4) == (0, 0)
        assert _produce_idempotent(s, topic, pid, epoch, 2, [b"b0"], 5) == (0, 2)
        # A gap in the sequence.
        err, _ = _produce_idempotent(s, topic, pid, epoch, 7, [b"gap"], 6)
        assert err == 45, f"expected OUT_OF_ORDER_SEQUENCE_NUMBER (45), got {err}"

    fresh_broker.restart(kill9=True)

    with wire.connect(fresh_broker.bootstrap) as s:
        assert _produce_idempotent(s, topic, pid, epoch, 2, [b"b0"], 7) == (0, 2)
        assert _produce_idempotent(s, topic, pid, epoch, 3, [b"c0"], 8) == (0, 3)
    got = consume_all(fresh_broker.bootstrap, topic, 1, 4, timeout=20)
    assert [(r.offset, r.value) for r in got[0]] == [(0, b"a0"), (1, b"a1"), (2, b"b0"), (3, b"c0")]


@pytest.mark.parametrize("how", ["create-topics", "auto-create"])
def test_reserved_topic_names_cannot_be_used(fresh_broker, how):
    """__cluster_metadata is the broker's own metadata log: a user topic of that name must be
    refused (Kafka: INVALID_REQUEST), whether by CreateTopics or by auto-creation on produce,
    produce to it must fail, and the broker must still start afterwards. __consumer_offsets,
    which the group coordinator owns, is refused to CreateTopics too."""
    bootstrap = fresh_broker.bootstrap
    problems = []
    a = admin(bootstrap)
    if how == "create-topics":
        for name in ("__cluster_metadata", "__consumer_offsets"):
            fs = a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], request_timeout=15)
            try:
                fs[name].result(timeout=30)
                problems.append(f"CreateTopics {name}: accepted (expected INVALID_REQUEST)")
            except KafkaException as e:
                if e.args[0].code() != KafkaError.INVALID_REQUEST:
                    problems.append(f"CreateTopics {name}: {e.args[0]} (expected INVALID_REQUEST)")

    p = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 5000, "logger": RDKAFKA_LOG})
    results = []
    p.produce("__cluster_metadata", value=b"user bytes in the metadata log",
              on_delivery=lambda err, msg: results.append((err, msg.offset())))
    p.flush(15)
    if results and results[0][0] is None:
        problems.append(f"Produce to __cluster_metadata ({how}): accepted at offset {results[0][1]}")

    try:
        fresh_broker.restart(kill9=False)
        if "__cluster_metadata" in a.list_topics(timeout=15).topics:
            problems.append("__cluster_metadata is listed as a topic")
    except pytest.fail.Exception as e:
        problems.append(f"restart after the attempts failed: {e}")
    assert not problems, "\n".join(problems)
