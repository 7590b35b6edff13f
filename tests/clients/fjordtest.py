"""Shared client-side helpers for the compatibility tests. These consumers use assign() with
explicit offsets; consumer groups are tested in test_groups.py and test_kafkajs.py."""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


@dataclass(frozen=True)
class Rec:
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()
    timestamp: int | None = None


# librdkafka's own log lines go to Python logging (captured by pytest, shown with a failing
# test) instead of straight to stderr, where clients that outlive a stopped broker add noise.
RDKAFKA_LOG = logging.getLogger("librdkafka")
RDKAFKA_LOG.setLevel(logging.DEBUG)  # only clients configured with `debug` log below INFO


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 15000, "logger": RDKAFKA_LOG})


def create_topic(bootstrap: str, name: str, partitions: int, config: dict | None = None) -> None:
    a = admin(bootstrap)  # keep the client alive until the future resolves
    fs = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=15, request_timeout=20)
    fs[name].result(timeout=30)


def assign_consumer(bootstrap: str, **extra) -> Consumer:
    """A confluent-kafka consumer for assign() only. librdkafka requires group.id to be set, but
    with assign(), explicit start offsets and no commits it never uses the group."""
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "fjord-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 15000,
        "logger": RDKAFKA_LOG,
    }
    conf.update(extra)
    return Consumer(conf)


def consume_all(bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 60.0,
                start: int = OFFSET_BEGINNING) -> dict[int, list[Rec]]:
    """Read every partition from `start` until all are at EOF and `expected` records were read
    (or the timeout passes). Returns {partition: [Rec, ...]} in log order."""
    c = assign_consumer(bootstrap)
    c.assign([TopicPartition(topic, p, start) for p in range(partitions)])
    got: dict[int, list[Rec]] = collections.defaultdict(list)
    at_eof: set[int] = set()
    errors: list[str] = []
    total = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for m in c.consume(num_messages=10000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_eof.add(m.partition())
                    else:
                        errors.append(str(err))
                        if err.fatal():
                            raise AssertionError(f"fatal consumer error: {err}")
                    continue
                at_eof.discard(m.partition())
                ts_type, ts = m.timestamp()
                got[m.partition()].append(
                    Rec(m.offset(), m.key(), m.value(), tuple(m.headers() or ()), ts))
                total += 1
            if total >= expected and len(at_eof) == partitions:
                break
    finally:
        c.close()
    if total < expected:
        raise AssertionError(f"consumed {total} of {expected} records from {topic} in {timeout}s; "
                             f"partitions at EOF: {sorted(at_eof)}; errors: {errors[:10]}")
    return dict(got)
