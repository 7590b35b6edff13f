"""Consumer groups from real clients (confluent-kafka/librdkafka and kafka-python; kafkajs in
test_kafkajs.py): partitions split across members, failover at session timeout, committed
offsets that resume consumption and survive a broker restart, static members that restart
without a rebalance.

Each member runs in its own process (group_member.py) so that a crash is a real SIGKILL: no
LeaveGroup, nothing but the session timeout tells the coordinator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition

from fjordtest import RDKAFKA_LOG, admin, create_topic

HERE = Path(__file__).resolve().parent
CLIENTS = ["confluent", "kafka-python"]
PARTITIONS = 6
PER_PARTITION = 50
SESSION_MS = 3000
BROKER_PROPS = {
    "group.initial.rebalance.delay.ms": "300",
    "group.min.session.timeout.ms": "1000",
    "offsets.topic.num.partitions": "10",
}


class Member:
    """A group_member.py process and what it reported."""

    def __init__(self, client: str, bootstrap: str, topic: str, group: str, instance_id: str | None = None,
                 session_ms: int = SESSION_MS):
        cmd = [sys.executable, str(HERE / "group_member.py"), client, bootstrap, topic, group,
               "--session-ms", str(session_ms)]
        if instance_id:
            cmd += ["--instance-id", instance_id]
        self.name = instance_id or f"{client}-{id(self):x}"
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.events: list[dict] = []
        self.records: set[tuple[int, int]] = set()
        self.assignment: list[int] | None = None
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.lock:
                self.events.append(event)
                if event["ev"] == "assigned":
                    self.assignment = event["partitions"]
                elif event["ev"] == "revoked":
                    self.assignment = []
                elif event["ev"] == "records":
                    self.records.update(tuple(i) for i in event["items"])

    def stderr_tail(self, lines: int = 15) -> str:
        self.stderr.seek(0)
        return "".join(self.stderr.readlines()[-lines:])

    def assigned_events(self) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e["ev"] == "assigned"]

    def rebalances(self) -> int:
        with self.lock:
            return sum(1 for e in self.events if e["ev"] in ("assigned", "revoked"))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)


def wait_until(what: str, condition, timeout: float, members: list[Member] = ()) -> float:
    """Polls `condition` until true; returns the seconds it took. Fails with the members' state."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.05)
    state = {m.name: (m.assignment, len(m.records), m.proc.poll()) for m in members}
    exited = "".join(f"\n--- {m.name} exited {m.proc.returncode}:\n{m.stderr_tail()}"
                     for m in members if m.proc.poll() not in (None, -signal.SIGKILL))
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; members: {state}{exited}")


def split_evenly(members: list[Member]) -> bool:
    """Every partition assigned to exactly one live member, each member with some."""
    assignments = [m.assignment for m in members]
    if any(not a for a in assignments):
        return False
    flat = [p for a in assignments for p in a]
    return sorted(flat) == list(range(PARTITIONS))


def produce(bootstrap: str, topic: str, per_partition: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "logger": RDKAFKA_LOG})
    for partition in range(PARTITIONS):
        for i in range(per_partition):
            p.produce(topic, key=b"k%d" % i, value=b"v%d-%d" % (partition, i), partition=partition)
    assert p.flush(30) == 0


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    a = admin(bootstrap)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    result = a.list_consumer_group_offsets([request])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def all_records(count_per_partition: int) -> set[tuple[int, int]]:
    return {(p, o) for p in range(PARTITIONS) for o in range(count_per_partition)}


def consume_and_commit_everything(bootstrap: str, group: str, topic: str, members: list[Member],
                                  per_partition: int) -> None:
    """Waits until `members` have read every record and committed the end of every partition."""
    wait_until("every record consumed", lambda: consumed(members) >= all_records(per_partition), 60, members)
    end = {p: per_partition for p in range(PARTITIONS)}
    wait_until("offsets committed at the end", lambda: committed(bootstrap, group, topic) == end, 30, members)


def consumed(members: list[Member]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for m in members:
        with m.lock:
            out |= m.records
    return out


@pytest.mark.parametrize("client", CLIENTS)
def test_members_split_partitions_and_survivors_take_over_a_crashed_one(broker, client):
    topic, group = f"split-{client}", f"split-{client}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce(broker.bootstrap, topic, PER_PARTITION)
    members = [Member(client, broker.bootstrap, topic, group) for _ in range(3)]
    try:
        wait_until("3 members with disjoint assignments covering all partitions",
                   lambda: split_evenly(members), 60, members)
        wait_until("every record consumed", lambda: consumed(members) >= all_records(PER_PARTITION), 60, members)

        # A crash: no LeaveGroup. The survivors take over once the session times out.
        crashed, survivors = members[0], members[1:]
        crashed_partitions = list(crashed.assignment)
        crashed.kill()
        killed_at = time.monotonic()
        produce(broker.bootstrap, topic, PER_PARTITION)
        took = wait_until("the survivors to cover every partition", lambda: split_evenly(survivors), 60, survivors)
        assert took <= SESSION_MS / 1000 + 5, f"takeover took {took:.1f}s (session timeout {SESSION_MS} ms)"
        assert took >= SESSION_MS / 1000 - 1.5, f"takeover after {took:.1f}s: before the session timed out?"
        wait_until("every record consumed at least once",
                   lambda: consumed(members) >= all_records(2 * PER_PARTITION), 60, survivors)
        taken_over = {p for m in survivors for p in m.assignment} & set(crashed_partitions)
        assert taken_over == set(crashed_partitions)
        print(f"{client}: takeover {time.monotonic() - killed_at:.1f}s after SIGKILL")
    finally:
        for m in members:
            m.stop()


@pytest.mark.parametrize("client", CLIENTS)
def test_a_restarted_group_resumes_after_its_committed_offsets(broker, client):
    topic, group = f"resume-{client}", f"resume-{client}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce(broker.bootstrap, topic, PER_PARTITION)
    first = [Member(client, broker.bootstrap, topic, group) for _ in range(3)]
    try:
        consume_and_commit_everything(broker.bootstrap, group, topic, first, PER_PARTITION)
    finally:
        for m in first:
            m.stop()

    produce(broker.bootstrap, topic, PER_PARTITION)
    second = [Member(client, broker.bootstrap, topic, group) for _ in range(3)]
    try:
        new = all_records(2 * PER_PARTITION) - all_records(PER_PARTITION)
        wait_until("the new records consumed", lambda: consumed(second) >= new, 60, second)
        again = consumed(second) & all_records(PER_PARTITION)
        assert not again, f"records before the committed offsets were consumed again: {sorted(again)[:10]}"
    finally:
        for m in second:
            m.stop()


@pytest.mark.parametrize("client", CLIENTS)
def test_a_static_member_restarts_without_a_rebalance(broker, client):
    topic, group = f"static-{client}", f"static-{client}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    session_ms = 20_000
    a = Member(client, broker.bootstrap, topic, group, instance_id=f"{client}-a", session_ms=session_ms)
    b = Member(client, broker.bootstrap, topic, group, instance_id=f"{client}-b", session_ms=session_ms)
    restarted = None
    try:
        wait_until("two static members splitting the partitions", lambda: split_evenly([a, b]), 60, [a, b])
        time.sleep(1.0)  # settled: no rebalance in flight
        before = list(a.assignment)
        generation = a.assigned_events()[-1]["generation"]
        b_rebalances = b.rebalances()

        a.stop()  # a static member's close sends no LeaveGroup
        restarted = Member(client, broker.bootstrap, topic, group, instance_id=f"{client}-a", session_ms=session_ms)
        wait_until("the restarted member assigned", lambda: bool(restarted.assignment), 30, [restarted, b])
        time.sleep(2.0)  # a rebalance, if one were triggered, would reach b by now
        assert restarted.assignment == before, "the static member gets its old assignment back"
        assert b.rebalances() == b_rebalances, f"the other member saw a rebalance: {b.events[-4:]}"
        if generation is not None:
            assert restarted.assigned_events()[-1]["generation"] == generation, "generation unchanged"
    finally:
        for m in (a, b, restarted):
            if m is not None:
                m.stop()


def test_a_broker_restart_under_a_live_group_loses_no_committed_offset(make_broker):
    broker = make_broker(num_partitions=3, extra_props=BROKER_PROPS)
    topic, group = "restart-live", "restart-live"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce(broker.bootstrap, topic, PER_PARTITION)
    members = [Member("confluent", broker.bootstrap, topic, group) for _ in range(3)]
    try:
        consume_and_commit_everything(broker.bootstrap, group, topic, members, PER_PARTITION)
        expected = {p: PER_PARTITION for p in range(PARTITIONS)}

        broker.restart(kill9=True)
        assert committed(broker.bootstrap, group, topic) == expected, "committed offsets after a SIGKILL restart"
        broker.restart()
        assert committed(broker.bootstrap, group, topic) == expected, "committed offsets after a clean restart"

        # The live members find the coordinator again and carry on from their offsets.
        produce(broker.bootstrap, topic, PER_PARTITION)
        wait_until("the new records consumed", lambda: consumed(members) >= all_records(2 * PER_PARTITION), 90,
                   members)
        wait_until("the new offsets committed",
                   lambda: committed(broker.bootstrap, group, topic) == {p: 2 * PER_PARTITION for p in
                                                                         range(PARTITIONS)}, 30, members)
    finally:
        for m in members:
            m.stop()


def fjord_tool(*args: str) -> subprocess.CompletedProcess:
    from conftest import fjord_bin
    return subprocess.run([str(fjord_bin()), *args], capture_output=True, text=True, timeout=60)


def describe_rows(bootstrap: str, group: str) -> dict[int, dict[str, str]]:
    """`fjord groups describe`'s table, by partition."""
    out = fjord_tool("groups", "describe", "--group", group, "--bootstrap-server", bootstrap)
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stdout.splitlines() if l.strip()]
    header_at = next(i for i, l in enumerate(lines) if l.startswith("GROUP"))
    header = lines[header_at].split()
    rows = [dict(zip(header, l.split())) for l in lines[header_at + 1:]]
    return {int(r["PARTITION"]): r for r in rows}


def test_fjord_groups_shows_committed_offsets_log_end_and_lag(broker):
    from confluent_kafka import Consumer
    topic = "lag"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce(broker.bootstrap, topic, PER_PARTITION)

    # A live member that has consumed and committed everything: lag 0, and its id per partition.
    live = Member("confluent", broker.bootstrap, topic, "lag-live")
    try:
        consume_and_commit_everything(broker.bootstrap, "lag-live", topic, [live], PER_PARTITION)
        rows = describe_rows(broker.bootstrap, "lag-live")
        assert sorted(rows) == list(range(PARTITIONS))
        for r in rows.values():
            assert (r["CURRENT-OFFSET"], r["LOG-END-OFFSET"], r["LAG"]) == (str(PER_PARTITION),) * 2 + ("0",)
            assert r["CONSUMER-ID"] != "-" and r["HOST"] == "/127.0.0.1"
    finally:
        live.stop()

    # Offsets committed by hand (partition p at 10p), then more records: lag = end - committed.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lag-manual", "enable.auto.commit": False,
                  "logger": RDKAFKA_LOG})
    c.commit(offsets=[TopicPartition(topic, p, 10 * p) for p in range(PARTITIONS)], asynchronous=False)
    c.close()
    produce(broker.bootstrap, topic, 5)
    rows = describe_rows(broker.bootstrap, "lag-manual")
    end = PER_PARTITION + 5
    for p in range(PARTITIONS):
        r = rows[p]
        assert (int(r["CURRENT-OFFSET"]), int(r["LOG-END-OFFSET"]), int(r["LAG"])) == (10 * p, end, end - 10 * p)
        assert r["CONSUMER-ID"] == "-"

    listed = fjord_tool("groups", "list", "--state", "--bootstrap-server", broker.bootstrap)
    assert listed.returncode == 0, listed.stderr
    states = dict(l.split() for l in listed.stdout.splitlines()[1:])
    assert states["lag-live"] == "Empty" and states["lag-manual"] == "Empty"

    missing = fjord_tool("groups", "describe", "--group", "no-such-group", "--bootstrap-server", broker.bootstrap)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    down = fjord_tool("groups", "list", "--bootstrap-server", "127.0.0.1:1")
    assert down.returncode != 0 and "cannot connect" in down.stderr and "Traceback" not in down.stderr
