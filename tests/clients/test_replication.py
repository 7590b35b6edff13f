"""Follower replication on a cluster of real `fjord server` processes, used by real clients.

- The seed 002 kafka-python snippet (a topic with replication_factor=3, acks="all", retries=5)
  runs unchanged on three brokers; every replica joins the ISR and holds every record.
- kill -9 of a partition leader under an idempotent acks=all producer (librdkafka and
  kafka-python, min.insync.replicas=2): a follower with the whole log takes over; every acknowledged record
  is readable exactly once at its acknowledged offset; the old leader rejoins the ISR.
- SIGSTOP of followers: the ISR shrinks after replica.lag.time.max.ms, acks=all keeps working
  while the ISR holds min.insync.replicas and gets NOT_ENOUGH_REPLICAS below it; SIGCONT: the
  followers catch up and rejoin.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import NewTopic as CNewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from cluster import wait_until
from fjordtest import RDKAFKA_LOG, admin
from test_cluster import fresh_cluster  # noqa: F401  (the fixture)
from test_restart import AckRecorder, BackgroundProducer, check_log_against_acks


def partition_state(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """{partition: (leader, replicas, isr)} as the cluster reports it."""
    md = admin(bootstrap).list_topics(topic, timeout=10)
    t = md.topics[topic]
    if t.error is not None:
        return {}
    return {p: (pm.leader, sorted(pm.replicas), sorted(pm.isrs)) for p, pm in t.partitions.items()}


def wait_isr(bootstrap: str, topic: str, size: int, timeout: float = 30.0, partitions: int | None = None):
    def full():
        state = partition_state(bootstrap, topic)
        if not state or (partitions is not None and len(state) != partitions):
            return None
        return state if all(len(isr) == size and leader >= 0 for leader, _, isr in state.values()) else None
    return wait_until(f"ISR of {size} on every partition of {topic}", full, timeout)


def create(bootstrap: str, topic: str, partitions: int, rf: int, configs: dict[str, str] | None = None):
    a = admin(bootstrap)
    fs = a.create_topics([CNewTopic(topic, partitions, rf, config=configs or {})], operation_timeout=15)
    fs[topic].result(timeout=30)


def test_the_seed_snippet_runs_on_three_brokers_with_three_replicas(fresh_cluster):
    c = fresh_cluster(controllers=3)
    bootstrap = c.brokers[0].bootstrap
    # The seed's code, with only the address changed.
    admin_client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-client")
    topic = NewTopic(name="test-topic", num_partitions=1, replication_factor=3)
    admin_client.create_topics(new_topics=[topic])
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", retries=5)
    topic = "test-topic"
    futures = []
    for i in range(10):
        key = f"key-{i}".encode()
        value = f"message-{i}".encode()
        futures.append(producer.send(topic, key=key, value=value))
    producer.flush()
    producer.close()

    assert [f.get(timeout=10).offset for f in futures] == list(range(10))
    state = wait_isr(bootstrap, "test-topic", 3)
    leader, replicas, isr = state[0]
    assert replicas == [1, 2, 3] and isr == [1, 2, 3], state
    # Every broker's copy: kill the leader twice over, and the records are still all there.
    for _ in range(2):
        old = c.node(partition_state(bootstrap, "test-topic")[0][0])
        old.stop(kill9=True)
        survivor = next(b for b in c.brokers if b.alive())
        wait_until("a new leader", lambda: (s := partition_state(survivor.bootstrap, "test-topic"))
                   and s[0][0] not in (-1, old.id), 30)
        consumer = KafkaConsumer("test-topic", bootstrap_servers=survivor.bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=10000, enable_auto_commit=False)
        got = [(m.offset, m.key, m.value) for m in consumer]
        consumer.close()
        assert got == [(i, f"key-{i}".encode(), f"message-{i}".encode()) for i in range(10)], got
        old.start()
        c.wait_ready()
        wait_isr(survivor.bootstrap, "test-topic", 3, timeout=60)


def test_a_replication_factor_above_the_broker_count_is_refused(fresh_cluster):
    c = fresh_cluster(controllers=3)
    a = admin(c.bootstrap)
    fs = a.create_topics([CNewTopic("rf4", 1, 4)], operation_timeout=15)
    with pytest.raises(Exception) as e:
        fs["rf4"].result(timeout=30)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR, e.value.args[0]


class KafkaPythonBackgroundProducer(AckRecorder):
    """BackgroundProducer's contract with kafka-python's idempotent producer: unique values at a
    bounded rate until stopped, every acknowledged (partition, offset, value) recorded."""

    def __init__(self, bootstrap, topic):
        super().__init__(topic)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                      linger_ms=5, delivery_timeout_ms=60000, request_timeout_ms=10000,
                                      retry_backoff_ms=50, reconnect_backoff_ms=50, reconnect_backoff_max_ms=500)

    def run(self):
        try:
            seq = 0
            pending = []
            while not self.stop_flag.is_set():
                for _ in range(20):
                    value = self.prefix + b"%07d" % seq
                    pending.append((value, self.producer.send(self.topic, key=b"k%d" % (seq % 16), value=value)))
                    seq += 1
                self.produced = seq
                self.collect(pending)
                time.sleep(0.005)
            self.producer.flush(60)
            self.collect(pending)
            self.remaining_after_flush = sum(1 for _, f in pending if not f.is_done)
            self.producer.close(10)
        except Exception as e:  # surfaced by the test
            self.exc = e

    def collect(self, pending):
        done = [(v, f) for v, f in pending if f.is_done]
        pending[:] = [(v, f) for v, f in pending if not f.is_done]
        for value, future in done:
            if future.succeeded():
                md = future.value
                self.acked.append((md.partition, md.offset, value))
            else:
                self.failed.append((value, repr(future.exception)))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", ["librdkafka", "kafka-python"])
def test_killing_a_leader_under_acks_all_loses_and_duplicates_nothing(fresh_cluster, client):
    c = fresh_cluster(controllers=3)
    topic = "failover"
    create(c.bootstrap, topic, 2, 3, {"min.insync.replicas": "2"})
    wait_isr(c.bootstrap, topic, 3, partitions=2)
    make = BackgroundProducer if client == "librdkafka" else KafkaPythonBackgroundProducer
    producer = make(c.bootstrap, topic)
    producer.start()
    wait_until("some acknowledged records", lambda: len(producer.acked) > 200, 30)
    victim = c.node(partition_state(c.bootstrap, topic)[0][0])
    killed_at = time.monotonic()
    victim.stop(kill9=True)
    acked_before = len(producer.acked)
    wait_until("acknowledgements after the kill", lambda: len(producer.acked) > acked_before + 200, 60)
    recovered_s = time.monotonic() - killed_at
    victim.start()
    c.wait_ready()
    live = c.brokers[0].bootstrap if c.brokers[0].alive() else c.bootstrap
    wait_isr(live, topic, 3, timeout=90, partitions=2)
    wait_until("more acknowledgements with the old leader back", lambda: len(producer.acked) > acked_before + 400, 60)
    producer.stop_flag.set()
    producer.join(timeout=90)
    assert producer.exc is None, producer.exc
    assert producer.remaining_after_flush == 0
    assert not producer.failed, producer.failed[:5]
    print(f"\nleader kill -9 -> 200 more acks: {recovered_s:.2f} s")
    # The dead leader is fenced as soon as its listeners refuse; a former ISR member must not
    # hold the new leader's high watermark back for replica.lag.time.max.ms.
    assert recovered_s < 10, recovered_s
    produced = [b"v%07d" % i for i in range(producer.produced)]
    check_log_against_acks(c.bootstrap, topic, producer.acked, produced)


@pytest.mark.timeout(180)
def test_paused_followers_leave_the_isr_and_rejoin_after_catching_up(fresh_cluster):
    # Controllers apart from the brokers, so pausing two brokers leaves the quorum whole; a
    # long session keeps the controller from fencing them: the ISR shrinks by
    # replica.lag.time.max.ms alone.
    c = fresh_cluster(controllers=3, brokers=3, extra_props={"replica.lag.time.max.ms": "2000",
                                                  "broker.session.timeout.ms": "60000"})
    topic = "lagging"
    create(c.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_isr(c.bootstrap, topic, 3)
    leader = partition_state(c.bootstrap, topic)[0][0]
    lead = c.node(leader)
    followers = [b for b in c.brokers if b.id != leader]
    producer = Producer({"bootstrap.servers": lead.bootstrap, "acks": "all", "enable.idempotence": False,
                         "message.timeout.ms": 20000, "request.timeout.ms": 6000, "retries": 0, "logger": RDKAFKA_LOG})

    def send(value: bytes) -> KafkaError | None:
        result = []
        producer.produce(topic, value=value, on_delivery=lambda err, msg: result.append(err))
        producer.flush(30)
        return result[0] if result else KafkaError(KafkaError._TIMED_OUT)

    assert send(b"all three") is None
    isr_of = lambda: partition_state(lead.bootstrap, topic)[0][2]  # noqa: E731
    followers[0].pause()
    try:
        # The paused follower holds the whole log until this record: the write waits for the
        # leader to drop it from the ISR after replica.lag.time.max.ms, then succeeds with two.
        started = time.monotonic()
        assert send(b"two of three") is None, "acks=all with the ISR at min.insync.replicas"
        shrunk_s = time.monotonic() - started
        assert len(isr_of()) == 2, isr_of()
        followers[1].pause()
        try:
            # Written, then the ISR falls below min.insync.replicas before it is replicated: the
            # high watermark stands still (KAFKA-15583), so the write is not acknowledged.
            err = send(b"one of three")
            assert err is not None and err.code() in (KafkaError.REQUEST_TIMED_OUT, KafkaError._MSG_TIMED_OUT,
                                                      KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND), err
            wait_until("the ISR to shrink to one", lambda: len(isr_of()) == 1, 30)
            # Refused before anything is written.
            err = send(b"refused")
            assert err is not None and err.code() == KafkaError.NOT_ENOUGH_REPLICAS, err
        finally:
            followers[1].resume()
    finally:
        followers[0].resume()
    wait_isr(lead.bootstrap, topic, 3, timeout=60)
    assert send(b"all three again") is None
    print(f"\nacks=all write across an ISR shrink after SIGSTOP (replica.lag.time.max.ms 2000): {shrunk_s:.2f} s")
    consumer = KafkaConsumer(topic, bootstrap_servers=lead.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=8000, enable_auto_commit=False)
    values = [m.value for m in consumer]
    consumer.close()
    assert values == [b"all three", b"two of three", b"one of three", b"all three again"], values


@pytest.mark.timeout(180)
def test_committed_offsets_survive_the_loss_of_the_group_coordinator(fresh_cluster):
    c = fresh_cluster(controllers=3)
    topic = "grouped"
    create(c.bootstrap, topic, 2, 3, {"min.insync.replicas": "2"})
    wait_isr(c.bootstrap, topic, 3, partitions=2)
    producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True,
                         "logger": RDKAFKA_LOG})
    total = 2000
    for i in range(total):
        producer.produce(topic, key=b"k%d" % (i % 7), value=b"v%05d" % i)
    assert producer.flush(30) == 0

    def consumer():
        return Consumer({"bootstrap.servers": c.bootstrap, "group.id": "survivors", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "session.timeout.ms": 6000, "logger": RDKAFKA_LOG})

    first = consumer()
    first.subscribe([topic])
    seen: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + 60
    while len(seen) < total // 2 and time.monotonic() < deadline:  # commits at every 100th
        m = first.poll(1.0)
        if m is None or m.error():
            continue
        seen.append((m.partition(), m.offset(), m.value()))
        if len(seen) % 100 == 0:
            first.commit(asynchronous=False)
    committed = {tp.partition: tp.offset
                 for tp in first.committed([TopicPartition(topic, p) for p in range(2)], timeout=10)}
    first.close()
    a = admin(c.bootstrap)  # alive until the future resolves
    coordinator = a.describe_consumer_groups(["survivors"])["survivors"].result(timeout=10).coordinator.id
    c.node(coordinator).stop(kill9=True)

    second = consumer()
    second.subscribe([topic])
    resumed: dict[int, int] = {}
    deadline = time.monotonic() + 90
    while len(seen) < total and time.monotonic() < deadline:
        m = second.poll(1.0)
        if m is None or m.error():
            continue
        resumed.setdefault(m.partition(), m.offset())
        seen.append((m.partition(), m.offset(), m.value()))
    second.close()
    # The new member starts exactly where the first one committed: nothing skipped, nothing
    # read twice, though the coordinator that took the commits is gone.
    # A partition the first member never committed (it read only from the other) starts at
    # the beginning (auto.offset.reset=earliest).
    expected = {p: (o if o >= 0 else 0) for p, o in committed.items() if p in resumed}
    assert resumed == expected, (resumed, committed)
    values = sorted(v for _, _, v in seen)
    assert values == sorted(b"v%05d" % i for i in range(total)), f"{len(values)} of {total}"


@pytest.mark.timeout(180)
def test_a_dead_broker_is_fenced_early_and_a_paused_one_is_not(fresh_cluster):
    # A session far longer than the test: only the controller's probe of a silent broker's
    # listeners can fence it in time, and it must do so only for a process that is gone.
    c = fresh_cluster(controllers=3, brokers=3, extra_props={"broker.session.timeout.ms": "60000",
                                                             "broker.heartbeat.interval.ms": "500"})
    topic = "fast"
    create(c.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_isr(c.bootstrap, topic, 3)
    brokers = [b for b in c.brokers]
    paused, dead = brokers[1], brokers[2]
    paused.pause()
    try:
        killed = time.monotonic()
        dead.stop(kill9=True)
        watcher = brokers[0]
        wait_until("the dead broker fenced", lambda: c.describe(watcher.bootstrap).get(dead.id, {}).get("fenced"), 20)
        fenced_s = time.monotonic() - killed
        time.sleep(3)
        assert not c.describe(watcher.bootstrap)[paused.id]["fenced"], "a paused, live broker was fenced"
    finally:
        paused.resume()
    print(f"\nkill -9 -> fenced with a 60 s session: {fenced_s:.2f} s")
    assert fenced_s < 10, fenced_s


@pytest.mark.timeout(180)
def test_an_offline_partition_takes_an_out_of_sync_leader_only_where_unclean_election_is_on(fresh_cluster):
    # Controllers apart, so both brokers can be down with the quorum whole.
    c = fresh_cluster(controllers=3, brokers=2)
    a, b = (n.id for n in c.brokers)
    for topic, unclean in (("unclean-on", "true"), ("unclean-off", "false")):
        kadmin_topic = NewTopic(topic, replica_assignments={0: [a, b]}, num_partitions=-1, replication_factor=-1,
                                topic_configs={"unclean.leader.election.enable": unclean})
        KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=30000).create_topics([kadmin_topic])
        wait_isr(c.bootstrap, topic, 2)
    producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "logger": RDKAFKA_LOG})
    for topic in ("unclean-on", "unclean-off"):
        for i in range(5):
            producer.produce(topic, value=b"before-%d" % i)
    assert producer.flush(30) == 0
    # b goes first: the ISR shrinks to a. Then a goes: both partitions are offline.
    c.node(b).stop(kill9=True)
    def alone():
        states = [partition_state(c.node(a).bootstrap, t) for t in ("unclean-on", "unclean-off")]
        return all(s and s[0][2] == [a] for s in states) or None
    wait_until(f"ISR of {a} alone", alone, 30)
    c.node(a).stop(kill9=True)
    c.node(b).start()
    c.wait_ready(brokers=[c.node(b)])
    bootstrap = c.node(b).bootstrap
    state = wait_until("the unclean-on partition led by the out-of-sync replica",
                       lambda: (s := partition_state(bootstrap, "unclean-on")) and s[0][0] == b and s, 30)
    assert state[0][2] == [b], state
    assert partition_state(bootstrap, "unclean-off")[0][0] == -1, "no unclean election where it is off"
    # The new leader takes writes; the controller said loudly what it did.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 20000, "logger": RDKAFKA_LOG})
    delivered = []
    p.produce("unclean-on", value=b"after", on_delivery=lambda err, msg: delivered.append(err))
    assert p.flush(30) == 0 and delivered == [None], delivered
    logs = "".join(n.log_path.read_text() for n in c.nodes if n.controller)
    assert "unclean leader election" in logs and "unclean-on" in logs
    assert partition_state(bootstrap, "unclean-off")[0][0] == -1
