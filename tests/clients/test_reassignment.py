"""Partition reassignment on a cluster of real `fjord server` processes.

- `fjord reassign-partitions --generate/--execute/--verify` moves a busy topic off a broker
  while librdkafka produces to it (idempotent, acks=all): the new replicas catch up, the old one
  leaves and deletes its copy, and every acknowledged record is in the log exactly once at its
  acknowledged offset.
- kafka-python's admin client drives AlterPartitionReassignments and ListPartitionReassignments:
  a move to a broker that is down stays in progress and is listed with its adding and removing
  replicas, bad targets get Kafka's errors, and a cancel puts the partition back.
"""

from __future__ import annotations

import json

from kafka import KafkaAdminClient
from kafka import TopicPartition as KTopicPartition
from kafka.admin import NewTopic
from kafka.errors import InvalidReplicationAssignmentError, NoReassignmentInProgressError

from cluster import wait_until
from test_cluster import fresh_cluster, kadmin  # noqa: F401  (the fixture)
from test_replication import partition_state
from test_restart import PARTITIONS, BackgroundProducer, check_log_against_acks


def create_assigned(bootstrap: str, topic: str, assignment: list[list[int]]):
    new = NewTopic(topic, replica_assignments=dict(enumerate(assignment)), num_partitions=-1, replication_factor=-1)
    kadmin(bootstrap).create_topics([new])
    wait_until(f"{topic}'s leaders", lambda: len(partition_state(bootstrap, topic)) == len(assignment) or None, 30)


def test_a_busy_topic_moves_off_a_broker_without_losing_or_duplicating_a_record(fresh_cluster, tmp_path):
    c = fresh_cluster(controllers=3)
    topic = "moving"
    create_assigned(c.bootstrap, topic, [[1, 2], [2, 1]][:PARTITIONS])
    wait_until("both replicas in sync", lambda: all(
        len(isr) == 2 for _, _, isr in partition_state(c.bootstrap, topic).values()) or None, 30)
    bg = BackgroundProducer(c.bootstrap, topic)
    bg.start()
    try:
        wait_until("records acknowledged", lambda: len(bg.acked) > 200 or None, 30)

        topics_file = tmp_path / "topics.json"
        topics_file.write_text(json.dumps({"version": 1, "topics": [{"topic": topic}]}))
        out = c.fjord("reassign-partitions", "--topics-to-move-json-file", str(topics_file),
                      "--broker-list", "2,3", "--generate").stdout
        lines = out.splitlines()
        current = json.loads(lines[lines.index("Current partition replica assignment") + 1])
        proposed = json.loads(lines[lines.index("Proposed partition reassignment configuration") + 1])
        assert sorted((p["partition"], p["replicas"]) for p in current["partitions"]) == \
            [(0, [1, 2]), (1, [2, 1])][:PARTITIONS]
        assert all(sorted(p["replicas"]) == [2, 3] for p in proposed["partitions"]), proposed
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps(proposed))

        out = c.fjord("reassign-partitions", "--reassignment-json-file", str(plan), "--execute").stdout
        assert "Successfully started partition reassignments for" in out, out
        assert "Save this to use as the --reassignment-json-file option during rollback" in out

        def verified():
            proc = c.fjord("reassign-partitions", "--reassignment-json-file", str(plan), "--verify", check=False)
            return proc if proc.returncode == 0 else None
        done = wait_until("the reassignment to complete", verified, 60)
        assert done.stdout.count("is completed.") == PARTITIONS, done.stdout
        state = wait_until("the new replicas in sync", lambda: (s := partition_state(c.bootstrap, topic))
                           and all(isr == [2, 3] for _, _, isr in s.values()) and s, 30)
        assert all(replicas == [2, 3] and leader in (2, 3) for leader, replicas, _ in state.values()), state
        # The broker that left deletes its copies.
        gone = lambda: not any(c.node(1).data_dir.glob(f"{topic}-*")) or None  # noqa: E731
        wait_until("broker 1 to delete its replicas", gone, 30)
        assert "No partition reassignments found." in c.fjord("reassign-partitions", "--list").stdout
        # Keep producing to the new replicas for a moment.
        acked = len(bg.acked)
        wait_until("more records acknowledged after the move", lambda: len(bg.acked) > acked + 200 or None, 30)
    finally:
        bg.stop_flag.set()
        bg.join(90)
    assert bg.exc is None, bg.exc
    assert bg.remaining_after_flush == 0 and not bg.failed, bg.failed[:5]
    produced = {b"v%07d" % i for i in range(bg.produced)}
    check_log_against_acks(c.bootstrap, topic, bg.acked, produced)


def test_a_move_in_progress_is_listed_and_can_be_cancelled(fresh_cluster):
    c = fresh_cluster(controllers=3)
    active = c.active_controller()
    # Move a partition onto a broker that is down (and not the active controller), so the move
    # cannot complete until it is cancelled. Down, not paused: a client may pick any broker it
    # knows for its metadata, and a fenced one is no longer listed.
    down = next(n for n in c.brokers if n.id != active)
    others = [n.id for n in c.brokers if n.id != down.id]
    topic = "stuck"
    create_assigned(c.bootstrap, topic, [others])
    down.stop(kill9=True)
    bootstrap = c.node(others[0]).bootstrap
    wait_until(f"broker {down.id} fenced", lambda: c.describe(bootstrap)[down.id]["fenced"] or None, 30)
    kadmin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="reassign-test", request_timeout_ms=30000)
    tp = KTopicPartition(topic, 0)
    try:
        target = [others[0], down.id]
        assert kadmin.alter_partition_reassignments({tp: target}) == {tp: None}
        listed = kadmin.list_partition_reassignments()
        assert listed == {tp: {"replicas": [others[0], down.id, others[1]],
                               "adding_replicas": [down.id], "removing_replicas": [others[1]]}}, listed
        assert kadmin.list_partition_reassignments([KTopicPartition(topic, 5)]) == {}
        # While it is under way, the partition keeps its ISR and leader.
        leader, replicas, isr = partition_state(bootstrap, topic)[0]
        assert sorted(isr) == sorted(others) and leader in others, (leader, replicas, isr)
        plan = c.root / "plan.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": target}]}))
        proc = c.fjord("reassign-partitions", "--reassignment-json-file", str(plan), "--verify",
                       bootstrap=bootstrap, check=False)
        assert proc.returncode != 0 and f"Reassignment of partition {topic}-0 is still in progress." in proc.stdout, \
            proc.stdout + proc.stderr
        listing = c.fjord("reassign-partitions", "--list", bootstrap=bootstrap).stdout
        assert f"{topic}-0: replicas: {others[0]},{down.id},{others[1]}. adding: {down.id}. removing: {others[1]}." \
            in listing, listing
        described = c.fjord("topics", "describe", "--topic", topic, bootstrap=bootstrap).stdout
        assert f"\tAdding Replicas: {down.id}\tRemoving Replicas: {others[1]}" in described, described

        # Kafka's errors for bad targets.
        bad = kadmin.alter_partition_reassignments({tp: [others[0], 99], KTopicPartition(topic, 1): [1]})
        assert bad[tp] is InvalidReplicationAssignmentError, bad
        assert bad[KTopicPartition(topic, 1)].errno == 3, bad  # UNKNOWN_TOPIC_OR_PARTITION

        # Cancel: back to the replicas before the move.
        assert kadmin.alter_partition_reassignments({tp: None}) == {tp: None}
        assert kadmin.list_partition_reassignments() == {}
        leader, replicas, isr = partition_state(bootstrap, topic)[0]
        assert sorted(replicas) == sorted(others) and sorted(isr) == sorted(others), (leader, replicas, isr)
        assert kadmin.alter_partition_reassignments({tp: None}) == {tp: NoReassignmentInProgressError}
        described = c.fjord("topics", "describe", "--topic", topic, bootstrap=bootstrap).stdout
        assert "Adding Replicas" not in described and "Removing Replicas" not in described, described
    finally:
        kadmin.close()
    # The broker that was down comes back and never takes a copy of the partition.
    down.start()
    c.wait_ready()
    assert not any(down.data_dir.glob(f"{topic}-*"))
