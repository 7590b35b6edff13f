"""The operator APIs any broker answers, used by real clients and raw requests.

- DescribeLogDirs (kafka-python's `describe_log_dirs`): on one node and on each node of a
  three-node cluster, every replica hosted there, led or followed, with its bytes on disk,
  and the file system's capacity.
- DescribeTopicPartitions (KIP-966): `fjord topics describe` on a cluster prints what Metadata
  says, `--under-replicated-partitions` included; kafka-python's `describe_topic_partitions`
  pages through topics with a partition limit and the broker's cursor.
- KIP-951: a Produce v10+ sent to a broker that does not lead a partition names the leader
  and its epoch, with the leader's endpoint; v9 carries neither.
"""

from __future__ import annotations

import os
import time

import pytest
from kafka import KafkaAdminClient, KafkaProducer

import wire
from cluster import Cluster, wait_until
from fjordtest import admin
from test_replication import create, partition_state, wait_isr


def kadmin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)


def sizes(result: dict) -> dict[tuple[str, int], int]:
    """{(topic, partition): bytes} of one broker's describe_log_dirs answer (one log dir)."""
    [log_dir] = result["log_dirs"]
    assert log_dir["error_code"] == 0, log_dir
    return {(t["name"], p["partition_index"]): p["partition_size"]
            for t in log_dir["topics"] for p in t["partitions"]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # A follower the leader stops hearing from leaves the ISR in 2 s; a session longer than a
    # pause keeps a paused node unfenced, so only the ISR changes (and short enough for the
    # last node's controlled shutdown, with no quorum left to answer it, to give up in time).
    c = Cluster(tmp_path_factory.mktemp("ops"), controllers=3,
                extra_props={"replica.lag.time.max.ms": "2000", "broker.session.timeout.ms": "12000"}).start()
    yield c
    c.close()


# -- DescribeLogDirs ---------------------------------------------------------------------------------

def test_describe_log_dirs_on_one_node(broker):
    create(broker.bootstrap, "dirs-one", 2, 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for i in range(50):
        producer.send("dirs-one", value=b"v%d" % i, partition=1)
    producer.flush(30)
    producer.close()

    [answer] = kadmin(broker.bootstrap).describe_log_dirs({"dirs-one": [0, 1], "no-such-topic": [0]})
    assert answer["broker"] == 1
    [log_dir] = answer["log_dirs"]
    assert log_dir["log_dir"] == os.path.abspath(broker.data_dir)
    assert 0 <= log_dir["usable_bytes"] <= log_dir["total_bytes"] and log_dir["total_bytes"] > 0, log_dir
    got = sizes(answer)
    assert set(got) == {("dirs-one", 0), ("dirs-one", 1)}, "the unknown topic is left out"
    assert got[("dirs-one", 0)] == 0 and got[("dirs-one", 1)] > 50 * 2, got
    partitions = [p for t in log_dir["topics"] for p in t["partitions"]]
    assert all(p["offset_lag"] == 0 and p["is_future_key"] is False for p in partitions), partitions


def test_describe_log_dirs_on_every_replica_of_a_cluster(cluster):
    topic = "dirs-rf3"
    create(cluster.bootstrap, topic, 3, 3)
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
    for i in range(300):
        producer.send(topic, value=b"record-%d" % i, partition=i % 3)
    producer.flush(30)
    producer.close()
    wait_isr(cluster.bootstrap, topic, 3)
    a = kadmin(cluster.bootstrap)

    def replicated():
        answers = {r["broker"]: sizes(r) for r in a.describe_log_dirs({topic: [0, 1, 2]})}
        ok = len(answers) == 3 and all(len(s) == 3 and all(v > 0 for v in s.values()) for s in answers.values())
        return answers if ok else None
    answers = wait_until("every broker to hold all three replicas", replicated, 30)
    # Each broker answers for itself, leader or follower, and the replicas hold the same log.
    for p in range(3):
        assert len({answers[b][(topic, p)] for b in answers}) == 1, answers


# -- DescribeTopicPartitions -------------------------------------------------------------------------

def describe_lines(c: Cluster, *args: str, bootstrap: str) -> list[str]:
    return c.fjord("topics", "describe", *args, bootstrap=bootstrap).stdout.strip("\n").split("\n")


def expected_line(topic: str, p: int, leader: int, replicas: list[int], isr: list[int]) -> str:
    join = lambda ids: ",".join(map(str, ids))  # noqa: E731
    return f"\tTopic: {topic}\tPartition: {p}\tLeader: {leader}\tReplicas: {join(replicas)}\tIsr: {join(isr)}"


def test_topics_describe_on_a_cluster_prints_what_metadata_says(cluster):
    topic = "described"
    create(cluster.bootstrap, topic, 4, 3, {"retention.ms": "3600000"})
    wait_isr(cluster.bootstrap, topic, 3)
    bootstrap = cluster.brokers[0].bootstrap
    md = admin(bootstrap).list_topics(topic, timeout=10).topics[topic]
    lines = describe_lines(cluster, "--topic", topic, bootstrap=bootstrap)
    assert lines[0].startswith(f"Topic: {topic}\tTopicId: ")
    assert lines[0].endswith("\tPartitionCount: 4\tReplicationFactor: 3\tConfigs: retention.ms=3600000"), lines[0]
    assert lines[1:] == [expected_line(topic, p, md.partitions[p].leader, md.partitions[p].replicas,
                                       md.partitions[p].isrs) for p in range(4)]

    # A paused node falls out of the ISR of the partitions it follows (the ones it leads keep
    # theirs: it is the one that would shrink them): those are under-replicated.
    live = [b for b in cluster.brokers if b.id != cluster.active_controller()]
    paused, asked = live[0], live[1]
    paused.pause()
    try:
        def shrunk():
            state = partition_state(asked.bootstrap, topic)
            under = {p: s for p, s in state.items() if len(s[2]) < 3}
            return state if under and all(s[0] != paused.id for s in under.values()) and \
                len(under) == sum(1 for s in state.values() if s[0] != paused.id) else None
        state = wait_until(f"node {paused.id} to leave the ISRs it follows", shrunk, 30)
        md = admin(asked.bootstrap).list_topics(topic, timeout=10).topics[topic]
        lines = describe_lines(cluster, "--topic", topic, "--under-replicated-partitions", bootstrap=asked.bootstrap)
        # Metadata as librdkafka exposes it has no offline replicas; if the paused node's session
        # ran out meanwhile, the tool rightly names it offline too.
        lines = [line.removesuffix(f"\tOffline: {paused.id}") for line in lines]
        expected = [expected_line(topic, p, m.leader, m.replicas, m.isrs)
                    for p, m in sorted(md.partitions.items()) if len(m.isrs) < len(m.replicas)]
        assert expected and lines == expected, (lines, expected, state)
    finally:
        paused.resume()
    # Caught up again, it rejoins: nothing is under-replicated, as the tool sees it from any broker.
    for b in cluster.brokers:
        wait_until(f"broker {b.id} to see full ISRs", lambda b=b: describe_lines(
            cluster, "--topic", topic, "--under-replicated-partitions", bootstrap=b.bootstrap) == [""], 60)


def test_describe_topic_partitions_pages_with_a_cursor(cluster):
    create(cluster.bootstrap, "paged-a", 5, 1)
    create(cluster.bootstrap, "paged-b", 3, 1)
    a = kadmin(cluster.brokers[1].bootstrap)
    topics = ["paged-b", "paged-a", "paged-missing"]
    pages, cursor = [], None
    while True:
        page = a.describe_topic_partitions(topics, response_partition_limit=3, cursor=cursor)
        pages.append([(t["name"], t["error_code"], [p["partition_index"] for p in t["partitions"]])
                      for t in page["topics"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, pages
    # In name order, three partitions a page, the cursor inside a topic or at the next one; the
    # missing topic is reported where its name falls.
    assert pages == [
        [("paged-a", 0, [0, 1, 2])],
        [("paged-a", 0, [3, 4]), ("paged-b", 0, [0])],
        [("paged-b", 0, [1, 2]), ("paged-missing", 3, [])],
    ], pages
    md = kadmin(cluster.bootstrap).describe_topics(["paged-a"])[0]
    whole = a.describe_topic_partitions(["paged-a"])["topics"][0]
    by_index = {p["partition_index"]: p for p in md["partitions"]}
    for p in whole["partitions"]:
        m = by_index[p["partition_index"]]
        assert (p["leader_id"], p["leader_epoch"], p["replica_nodes"], p["isr_nodes"]) == \
            (m["leader_id"], m["leader_epoch"], m["replica_nodes"], m["isr_nodes"]), (p, m)
    assert str(whole["topic_id"]) == str(md["topic_id"]) and whole["is_internal"] is False


# -- KIP-951 -----------------------------------------------------------------------------------------

def test_produce_to_a_follower_names_the_leader_and_its_endpoint(cluster):
    topic = "hinted"
    create(cluster.bootstrap, topic, 3, 3)
    wait_isr(cluster.bootstrap, topic, 3)
    md = {p["partition_index"]: p for p in kadmin(cluster.bootstrap).describe_topics([topic])[0]["partitions"]}
    asked = cluster.brokers[0]
    followed = [p for p, m in md.items() if m["leader_id"] != asked.id]
    assert followed, md
    ports = {b.id: b.client_port for b in cluster.brokers}
    batch = wire.record_batch([(None, b"hint me")], int(time.time() * 1000))
    with wire.connect(asked.bootstrap) as s:
        assert wire.supported_versions(s)[wire.API_PRODUCE][1] >= 10
        corr, parts, endpoints = wire.parse_produce_flexible(
            wire.request(s, wire.produce_flexible(10, topic, sorted(md), batch, correlation_id=7)))
        assert corr == 7
        for p, m in md.items():
            got = parts[(topic, p)]
            if m["leader_id"] == asked.id:
                assert (got["error"], got["current_leader"]) == (0, None), got
            else:
                assert got["error"] == 6, f"NOT_LEADER_OR_FOLLOWER: {got}"
                assert got["current_leader"] == (m["leader_id"], m["leader_epoch"]), (got, m)
        leaders = sorted({md[p]["leader_id"] for p in followed})
        assert sorted(e["node_id"] for e in endpoints) == leaders, "each leader named, once"
        assert all((e["host"], e["port"], e["rack"]) == ("127.0.0.1", ports[e["node_id"]], None)
                   for e in endpoints), endpoints

        # Before v10 there is nowhere to put the hints.
        _, parts, endpoints = wire.parse_produce_flexible(
            wire.request(s, wire.produce_flexible(9, topic, followed, batch, correlation_id=8)))
        assert endpoints == [] and all(parts[(topic, p)] == {"error": 6, "base_offset": -1, "current_leader": None}
                                       for p in followed), parts
