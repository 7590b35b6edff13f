"""A short fault schedule against a real cluster, every history checked (jepsen_harness.py):
kill -9 of leaders, of the active controller and of random nodes, pauses shorter and longer
than the session, controlled shutdowns and a rolling restart, network partitions (a leader cut
from its followers, the active controller from the other controllers, one-way loss, a node cut
from everyone), on three combined nodes and on three controllers with three brokers in turn,
under idempotent acks=all producers (librdkafka and kafka-python), assign-mode readers
(librdkafka and kafka-python) and a committing group member.
No acknowledged write may be lost, duplicated or moved, no reader may see a record the log
later lacks, committed offsets never go back, and the cluster is whole again within a minute
of the last fault. `cargo xtask jepsen` runs longer schedules."""

from __future__ import annotations

import os

import pytest

import jepsen_harness

RUNS = int(os.environ.get("FJORD_JEPSEN_RUNS", "5"))
SEED = int(os.environ.get("FJORD_JEPSEN_SEED", "1000"))


@pytest.mark.timeout(120 + RUNS * 150)
def test_a_short_fault_schedule_keeps_every_promise(tmp_path):
    code = jepsen_harness.main(["--runs", str(RUNS), "--seed", str(SEED), "--time", "30",
                                "--results", str(tmp_path / "jepsen")])
    print((tmp_path / "jepsen" / "table.md").read_text())
    assert code == 0, f"a run broke a promise; histories and logs in {tmp_path / 'jepsen'}"


def test_the_checker_catches_the_losses_of_an_unsafe_setting(tmp_path):
    """unclean.leader.election.enable=true with acks=1, and the leader killed while its follower
    lags: the out-of-sync follower is elected, and every write only the old leader held is lost
    (Kafka loses them the same way), while the writes both replicas held are kept. The harness's own recorder, final read and checker must
    report exactly those writes, and nothing else."""
    from confluent_kafka import Producer
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    import cluster as cl
    from fjordtest import RDKAFKA_LOG
    from jepsen_checker import check

    # Controllers apart, so both brokers can be down with the quorum whole.
    c = cl.Cluster(tmp_path / "unsafe", controllers=3, brokers=2,
                   extra_props={"replica.lag.time.max.ms": "1000"}).start()
    try:
        a, b = (n.id for n in c.brokers)
        topic = NewTopic(jepsen_harness.TOPIC, num_partitions=-1, replication_factor=-1,
                         replica_assignments={p: [a, b] for p in range(jepsen_harness.PARTITIONS)},
                         topic_configs={"unclean.leader.election.enable": "true", "min.insync.replicas": "1"})
        KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=30000).create_topics([topic])

        def led_by(node: int, isr: list[int]):
            return lambda: all(leader == node and sorted(i) == isr for leader, i in
                               jepsen_harness.partition_state(c.node(node).bootstrap).values()) or None
        cl.wait_until(f"{a} leading with ISR [{a}, {b}]", led_by(a, sorted([a, b])), 30)

        history = jepsen_harness.History()

        def produce(bootstrap: str, phase: str, count: int, acks: str = "1") -> list[bytes]:
            p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "enable.idempotence": False,
                          "message.timeout.ms": 30000, "logger": RDKAFKA_LOG})
            errors = []

            def on_delivery(err, msg):
                if err is None:
                    history.add("ack", history.now(), msg.partition(), msg.offset(), msg.value())
                else:
                    errors.append(err)
            values = [b"%s-%04d" % (phase.encode(), i) for i in range(count)]
            for v in values:
                p.produce(jepsen_harness.TOPIC, value=v, partition=0, on_delivery=on_delivery)
            assert p.flush(40) == 0 and not errors, errors
            return values

        # Held by both replicas (acks=all): these survive even the unclean election.
        produce(c.node(a).bootstrap, "both", 200, acks="all")
        c.node(b).pause()  # b lags: the leader drops it from the ISR and acks alone
        cl.wait_until(f"the ISR of {a} alone", led_by(a, [a]), 30)
        only_on_a = produce(c.node(a).bootstrap, "only-a", 200)
        c.node(a).stop(kill9=True)
        c.node(b).resume()
        cl.wait_until(f"{b}, out of sync, elected", led_by(b, [b]), 30)
        produce(c.node(b).bootstrap, "after", 100)
        c.node(a).start()
        c.wait_ready()
        cl.wait_until("the old leader back in the ISR", led_by(b, sorted([a, b])), 60)
        jepsen_harness.final_read(c.bootstrap, history)
    finally:
        c.close()

    verdict = check(history.events)
    assert not verdict.valid
    assert sorted(value for *_, value in verdict.lost) == sorted(only_on_a), verdict.problems()
    assert not verdict.duplicated and not verdict.moved, verdict.problems()
