"""Durability and idempotence across broker restarts, with a real idempotent producer
(confluent-kafka, acks=all) running through the crash."""

from __future__ import annotations

import collections
import threading
import time

import pytest
from confluent_kafka import Producer, TopicPartition

from fjordtest import RDKAFKA_LOG, assign_consumer, consume_all, create_topic

PARTITIONS = 2


class BackgroundProducer(threading.Thread):
    """Produces unique values ("v<seq>") at a bounded rate until stopped, then flushes.
    Records every acknowledged (partition, offset, value) from the delivery reports."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.topic = topic
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
        self.stop_flag = threading.Event()
        self.acked: list[tuple[int, int, bytes]] = []
        self.failed: list[tuple[bytes, str]] = []
        self.produced = 0
        self.remaining_after_flush = None
        self.exc = None

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
                    value = b"v%07d" % seq
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
