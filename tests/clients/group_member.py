"""One consumer-group member in a process of its own, so a test can SIGKILL it (a crash: no
LeaveGroup, noticed only at session timeout) or SIGTERM it (a clean close).

    python group_member.py CLIENT BOOTSTRAP TOPIC GROUP [--instance-id ID] [--session-ms MS]

CLIENT is `confluent` (librdkafka) or `kafka-python`. The member subscribes to TOPIC, commits
synchronously after every batch it reads, and prints JSON lines on stdout:

    {"ev": "assigned", "partitions": [...], "generation": G}   generation: kafka-python only
    {"ev": "revoked", "partitions": [...]}
    {"ev": "records", "items": [[partition, offset], ...]}
    {"ev": "commit_failed", "error": "..."}                 retried after the next poll
    {"ev": "closed"}

It stops by itself after --max-seconds (default 120).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

stop = False


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def on_term(signum, frame) -> None:
    global stop
    stop = True


def commit(call, failure: type[Exception]) -> bool:
    """Commits synchronously. A commit refused because the group is rebalancing is normal
    (Kafka refuses commits between JoinGroup and SyncGroup); the member reports it and tries
    again after its next poll, as an application would."""
    try:
        call()
        return True
    except failure as e:
        emit(ev="commit_failed", error=str(e))
        return False


def run_confluent(args) -> None:
    from confluent_kafka import Consumer, KafkaException

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": args.session_ms,
        "heartbeat.interval.ms": max(100, args.session_ms // 10),
        "fetch.wait.max.ms": 100,
        "partition.assignment.strategy": "range",
    }
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    c = Consumer(conf)
    c.subscribe(
        [args.topic],
        on_assign=lambda c, ps: emit(ev="assigned", partitions=sorted(p.partition for p in ps), generation=None),
        on_revoke=lambda c, ps: emit(ev="revoked", partitions=sorted(p.partition for p in ps)),
    )
    deadline = time.monotonic() + args.max_seconds
    uncommitted = False
    while not stop and time.monotonic() < deadline:
        msgs = c.consume(num_messages=1000, timeout=0.2)
        items = [[m.partition(), m.offset()] for m in msgs if m.error() is None]
        if items:
            emit(ev="records", items=items)
            uncommitted = True
        if uncommitted:
            uncommitted = not commit(lambda: c.commit(asynchronous=False), KafkaException)
    c.close()
    emit(ev="closed")


def run_kafka_python(args) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.errors import CommitFailedError

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        group_instance_id=args.instance_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=args.session_ms,
        heartbeat_interval_ms=max(100, args.session_ms // 10),
        fetch_max_wait_ms=100,
    )

    def generation() -> int | None:
        # The client keeps the generation privately; the test compares it across a restart.
        g = getattr(consumer._coordinator, "_generation", None)
        return getattr(g, "generation_id", None)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            emit(ev="revoked", partitions=sorted(p.partition for p in revoked))

        def on_partitions_assigned(self, assigned):
            emit(ev="assigned", partitions=sorted(p.partition for p in assigned), generation=generation())

    consumer.subscribe([args.topic], listener=Listener())
    deadline = time.monotonic() + args.max_seconds
    uncommitted = False
    while not stop and time.monotonic() < deadline:
        polled = consumer.poll(timeout_ms=200, max_records=1000)
        items = [[r.partition, r.offset] for records in polled.values() for r in records]
        if items:
            emit(ev="records", items=items)
            uncommitted = True
        if uncommitted:
            uncommitted = not commit(consumer.commit, CommitFailedError)
    consumer.close()
    emit(ev="closed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=["confluent", "kafka-python"])
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("--instance-id")
    parser.add_argument("--session-ms", type=int, default=6000)
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    if args.client == "confluent":
        run_confluent(args)
    else:
        run_kafka_python(args)


if __name__ == "__main__":
    main()
