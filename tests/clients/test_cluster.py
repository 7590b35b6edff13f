"""Multi-node clusters of real `fjord server` processes, used by real clients.

- Three combined nodes, and three controllers with two brokers, start from property files;
  kafka-python, confluent-kafka, kcat and kafkajs see every broker, topics spread over the
  brokers, produce and consume go through each partition's leader, groups and the operator
  APIs (DescribeQuorum, ElectLeaders, DescribeConfigs on brokers) work from any broker.
- kill -9 of the active controller: another takes over within seconds, topic creation keeps
  working, and produce to partitions on live brokers never fails.
- SIGSTOP of a broker past its session: it is fenced, its partitions go offline (RF 1) and
  clients get Kafka's errors; SIGCONT: it is unfenced and serves again.
- A rolling restart leaves no partition without a leader and loses nothing.
- A node whose data belongs to another cluster refuses to join, saying so.
- `fjord dev cluster` starts and stops a local cluster.

Figures (failover, fencing, propagation) are printed; `measure_cluster.py` takes medians.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import ConfigResource, ConfigSource, NewTopic as CNewTopic, ResourceType
from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaConnectionError

import conftest
from cluster import Cluster, metadata, port_is_free, wait_until
from fjordtest import RDKAFKA_LOG, admin, consume_all
from test_kafkajs import run_node
from test_restart import BackgroundProducer, check_log_against_acks


def kadmin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)


@pytest.fixture(scope="module")
def combined(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("combined"), controllers=3).start()
    yield c
    c.close()


@pytest.fixture
def fresh_cluster(tmp_path):
    made = []

    def make(**kwargs) -> Cluster:
        c = Cluster(tmp_path / f"c{len(made)}", **kwargs)
        made.append(c)
        return c.start()

    yield make
    for c in made:
        c.close()


# -- three combined nodes -------------------------------------------------------------------------

def test_every_client_sees_every_broker_and_topics_spread_over_them(combined):
    brokers = {b.id for b in combined.brokers}
    assert set(admin(combined.brokers[1].bootstrap).list_topics(timeout=15).brokers) == brokers
    assert {b["broker_id"] for b in kadmin(combined.brokers[2].bootstrap).describe_cluster()["brokers"]} == brokers
    kcat = subprocess.run(["kcat", "-b", combined.brokers[0].bootstrap, "-L"], capture_output=True, text=True,
                          timeout=30)
    assert kcat.returncode == 0, kcat.stderr
    assert " 3 brokers:" in kcat.stdout, kcat.stdout

    kadmin(combined.bootstrap).create_topics([NewTopic("spread", 6, 1)])
    # Every broker agrees on the leaders, and the leaders are all three brokers, two each.
    views = [wait_until("spread's leaders", lambda b=b: (l := combined.leaders(b.bootstrap, "spread"))
                        and len(l) == 6 and l, 10) for b in combined.brokers]
    assert all(v == views[0] for v in views), views
    assert sorted(views[0].values()) == [1, 1, 2, 2, 3, 3], views[0]

    p = Producer({"bootstrap.servers": combined.bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "logger": RDKAFKA_LOG})
    failed = []
    for i in range(300):
        p.produce("spread", key=b"k%d" % i, value=b"v%d" % i,
                  on_delivery=lambda err, m: err and failed.append(str(err)))
    assert p.flush(30) == 0 and not failed, failed
    c = KafkaConsumer(bootstrap_servers=combined.brokers[2].bootstrap, enable_auto_commit=False,
                      consumer_timeout_ms=5000)
    c.assign([KTopicPartition("spread", i) for i in range(6)])
    c.seek_to_beginning()
    got = {}
    deadline = time.monotonic() + 30
    while len(got) < 300 and time.monotonic() < deadline:
        for m in c:
            got[m.key] = (m.partition, m.value)
            if len(got) == 300:
                break
    c.close()
    assert len(got) == 300
    assert all(got[b"k%d" % i][1] == b"v%d" % i for i in range(300))
    assert len({part for part, _ in got.values()}) == 6, "every partition, on every broker, got records"


def test_kafkajs_produces_and_fetches_through_each_leader(combined):
    r, _ = run_node("kafkajs_roundtrip.js", combined.brokers[1].bootstrap, "js-cluster", "300", str(int(time.time() * 1000)))
    assert r["created"] is True
    leaders = {p["leader"] for t in r["metadata"] for p in t["partitions"]}
    assert leaders == {1, 2, 3}, r["metadata"]
    assert sorted(b["nodeId"] for b in r["cluster"]["brokers"]) == [1, 2, 3]
    # kafkajs' own fetch back from each partition's leader, then librdkafka's.
    assert sorted(len(v) for v in r["fetched"].values()) == [100, 100, 100]
    got = consume_all(combined.bootstrap, "js-cluster", 3, 300, timeout=60)
    assert sum(len(v) for v in got.values()) == 300
    # kafkajs groups: the coordinator is wherever its __consumer_offsets partition leads.
    g, _ = run_node("kafkajs_group.js", combined.brokers[2].bootstrap, "js-cluster-group", "js-cluster-group")
    assert g["consumed"] == 600 and g["stateAfterLeaving"] == "Empty"
    assert (g["resumedCount"], g["resumedMinOffset"]) == (300, 100)


def test_a_group_consumes_across_the_cluster(combined):
    from confluent_kafka import Consumer
    kadmin(combined.bootstrap).create_topics([NewTopic("grouped", 3, 1)])
    p = Producer({"bootstrap.servers": combined.bootstrap, "logger": RDKAFKA_LOG})
    for i in range(90):
        p.produce("grouped", key=b"%d" % i, value=b"x")
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": combined.bootstrap, "group.id": "cluster-app",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "logger": RDKAFKA_LOG})
    c.subscribe(["grouped"])
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 90 and time.monotonic() < deadline:
        for m in c.consume(100, timeout=0.5):
            if m.error() is None:
                seen += 1
    assert seen == 90
    c.commit(asynchronous=False)
    c.close()
    out = combined.fjord("groups", "describe", "--group", "cluster-app").stdout
    lags = [int(line.split()[5]) for line in out.splitlines()[1:] if line.split()[:1] == ["cluster-app"]]
    assert lags == [0, 0, 0], out


def test_broker_configs_come_with_kafkas_types_and_sources(combined):
    resource = ConfigResource(ResourceType.BROKER, "2")
    a = admin(combined.bootstrap)
    configs = a.describe_configs([resource])[resource].result(timeout=30)
    assert configs["broker.session.timeout.ms"].value == "4000"
    assert configs["broker.session.timeout.ms"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["log.cleaner.threads"].value == "1"
    assert configs["log.cleaner.threads"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["node.id"].value == "2"
    from kafka.admin import ConfigResource as KResource, ConfigResourceType
    described = kadmin(combined.bootstrap).describe_configs(
        [KResource(ConfigResourceType.BROKER, "3")], include_synonyms=True, config_filter="all")
    entries = described["broker"]["3"]
    assert entries["broker.heartbeat.interval.ms"]["config_type"] == "INT"
    assert entries["auto.create.topics.enable"]["config_type"] == "BOOLEAN"
    assert entries["process.roles"] == entries["process.roles"] | {"value": "broker,controller",
                                                                    "config_source": "STATIC_BROKER_CONFIG"}


def test_the_quorum_is_described_alike_by_every_broker(combined):
    views = []
    for b in combined.brokers:
        q = kadmin(b.bootstrap).describe_metadata_quorum()["topics"][0]["partitions"][0]
        views.append(q["leader_id"])
        assert sorted(v["replica_id"] for v in q["current_voters"]) == [1, 2, 3]
        assert q["high_watermark"] > 0
    assert len(set(views)) == 1, views
    status = combined.quorum_status(combined.brokers[1].bootstrap)
    assert int(status["LeaderId"]) == views[0]
    replication = combined.fjord("quorum", "describe", "--replication").stdout
    assert [line.split()[-1] for line in replication.splitlines()[1:]] == ["Leader", "Follower", "Follower"]
    described = combined.describe()
    assert sorted(described) == [1, 2, 3] and not any(d["fenced"] for d in described.values())
    assert len({d["epoch"] for d in described.values()}) == 3, "each registration has its own epoch"


def test_metadata_reaches_every_broker_within_a_bound(combined):
    started = time.monotonic()
    kadmin(combined.brokers[0].bootstrap).create_topics([NewTopic("propagated", 4, 1)])
    created = time.monotonic()
    for b in combined.brokers:
        wait_until(f"broker {b.id} to know 'propagated'",
                   lambda b=b: len(combined.leaders(b.bootstrap, "propagated")) == 4, 5, interval=0.005)
    everywhere = time.monotonic()
    print(f"\nCreateTopics answered in {1000 * (created - started):.0f} ms; every broker had the topic "
          f"{1000 * (everywhere - created):.0f} ms later")
    assert everywhere - created < 2.0


def test_leader_elections_report_per_partition(combined):
    kadmin(combined.bootstrap).create_topics([NewTopic("elect", 2, 1)])
    result = kadmin(combined.bootstrap).elect_leaders(0, {"elect": [0, 1], "missing": [0]}, raise_errors=False)
    codes = {(r.topic, p.partition_id): p.error_code for r in result.replica_election_results
             for p in r.partition_result}
    assert codes == {("elect", 0): 84, ("elect", 1): 84, ("missing", 0): 3}, codes  # ELECTION_NOT_NEEDED
    tool = combined.fjord("leader-election", "--election-type", "preferred", "--all-topic-partitions")
    assert "No partition needed a leader election (PREFERRED)" in tool.stdout, tool.stdout


# -- three controllers and two brokers -----------------------------------------------------------

def test_controllers_and_brokers_in_separate_processes(fresh_cluster):
    c = fresh_cluster(controllers=3, brokers=2)
    assert set(admin(c.bootstrap).list_topics(timeout=15).brokers) == {4, 5}
    for node in c.nodes[:3]:
        assert node.client_port is None, "a controller-only node has no client listener"
    kadmin(c.bootstrap).create_topics([NewTopic("split", 4, 1)])
    leaders = wait_until("split's leaders", lambda: (l := c.leaders(c.brokers[0].bootstrap, "split"))
                         and len(l) == 4 and l, 10)
    assert sorted(leaders.values()) == [4, 4, 5, 5]
    p = Producer({"bootstrap.servers": c.bootstrap, "logger": RDKAFKA_LOG})
    for i in range(100):
        p.produce("split", key=b"%d" % i, value=b"v%d" % i)
    assert p.flush(30) == 0
    kcat = subprocess.run(["kcat", "-b", c.brokers[1].bootstrap, "-C", "-t", "split", "-o", "beginning", "-e",
                           "-q", "-f", "%s\n"], capture_output=True, text=True, timeout=60)
    assert sorted(kcat.stdout.split()) == sorted(f"v{i}" for i in range(100)), kcat.stderr
    q = kadmin(c.bootstrap).describe_metadata_quorum()["topics"][0]["partitions"][0]
    assert sorted(v["replica_id"] for v in q["current_voters"]) == [1, 2, 3]
    assert sorted(o["replica_id"] for o in q["observers"]) == [4, 5], "brokers follow the log as observers"


# -- faults ----------------------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_killing_the_active_controller_moves_control_and_never_stops_produce(fresh_cluster):
    c = fresh_cluster(controllers=3)
    old = c.active_controller()
    survivors = [n for n in c.nodes if n.id != old]
    a, b = (n.id for n in survivors)
    kadmin(c.bootstrap).create_topics([NewTopic("steady", replica_assignments={0: [a], 1: [b]},
                                                num_partitions=-1, replication_factor=-1)])
    wait_until("steady's leaders", lambda: len(c.leaders(survivors[0].bootstrap, "steady")) == 2, 10)
    bootstrap = ",".join(n.bootstrap for n in survivors)
    producer = BackgroundProducer(bootstrap, "steady")
    producer.start()
    wait_until("the first acknowledgements", lambda: len(producer.acked) > 50, 20)

    c.node(old).stop(kill9=True)
    killed = time.monotonic()
    new = wait_until("a new active controller",
                     lambda: (l := c.active_controller(survivors[0].bootstrap)) not in (old, -1) and l, 30,
                     interval=0.05)
    elected = time.monotonic()

    def create_after_failover():
        # Until its session expires the killed node is still listed as a broker, and
        # kafka-python's admin may pick it for a request and give up on the refused
        # connection instead of trying another node: try again, as an application would.
        try:
            kadmin(bootstrap).create_topics([NewTopic("after-failover", 2, 1)])
            return True
        except KafkaConnectionError:
            return None

    wait_until("CreateTopics after the failover", create_after_failover, 30, interval=0.2)
    created = time.monotonic()
    print(f"\ncontroller {old} killed: controller {new} active after {1000 * (elected - killed):.0f} ms, "
          f"CreateTopics answered {1000 * (created - killed):.0f} ms after the kill")
    assert elected - killed < 10
    acked_before = len(producer.acked)
    wait_until("more acknowledgements after the failover", lambda: len(producer.acked) > acked_before + 100, 30)
    producer.stop_flag.set()
    producer.join(90)
    assert producer.exc is None, producer.exc
    assert producer.remaining_after_flush == 0
    assert not producer.failed, f"{len(producer.failed)} produce requests failed, e.g. {producer.failed[:3]}"
    check_log_against_acks(bootstrap, "steady", producer.acked, {b"v%07d" % i for i in range(producer.produced)})

    # The killed controller comes back as a follower of the new one.
    c.node(old).start()
    c.wait_ready(brokers=c.brokers)
    assert c.active_controller() == new


@pytest.mark.timeout(180)
def test_a_paused_broker_is_fenced_and_serves_again_when_resumed(fresh_cluster):
    c = fresh_cluster(controllers=3)
    controller = c.active_controller()
    paused = next(n for n in c.brokers if n.id != controller)
    watcher = next(n for n in c.brokers if n.id not in (controller, paused.id))
    kadmin(c.bootstrap).create_topics([NewTopic("fenced", 3, 1)])
    leaders = wait_until("fenced's leaders", lambda: (l := c.leaders(watcher.bootstrap, "fenced")) and len(l) == 3
                         and l, 10)
    offline = next(p for p, leader in leaders.items() if leader == paused.id)
    online = next(p for p, leader in leaders.items() if leader != paused.id)

    paused.pause()
    stopped = time.monotonic()
    try:
        wait_until(f"broker {paused.id} to be fenced", lambda: c.describe(watcher.bootstrap)[paused.id]["fenced"], 30,
                   interval=0.05)
        fenced = time.monotonic()
        print(f"\nbroker {paused.id} paused: fenced after {1000 * (fenced - stopped):.0f} ms "
              f"(broker.session.timeout.ms=4000)")
        assert 3.0 < fenced - stopped < 15, "fenced only once its session has expired"
        view = metadata(watcher.bootstrap, ["fenced"])
        assert paused.id not in {b[0] for b in view["brokers"]}, "a fenced broker is not offered to clients"
        assert view["topics"]["fenced"][1][offline] == (5, -1), "LEADER_NOT_AVAILABLE, no leader elsewhere"
        # Clients: produce to the offline partition times out; the others keep working.
        kp = KafkaProducer(bootstrap_servers=watcher.bootstrap, max_block_ms=5000, request_timeout_ms=3000,
                           delivery_timeout_ms=4000, linger_ms=0)
        kp.send("fenced", b"live", partition=online).get(timeout=10)
        from kafka.errors import KafkaTimeoutError
        with pytest.raises(KafkaTimeoutError):
            kp.send("fenced", b"lost", partition=offline).get(timeout=10)
        kp.close(timeout=5)
        # An election cannot bring it back without the broker.
        tool = c.fjord("leader-election", "--election-type", "preferred", "--topic", "fenced",
                       "--partition", str(offline), bootstrap=watcher.bootstrap, check=False)
        assert tool.returncode != 0 and "PREFERRED_LEADER_NOT_AVAILABLE" in tool.stdout, tool.stdout
        tool = c.fjord("leader-election", "--election-type", "unclean", "--topic", "fenced",
                       "--partition", str(offline), bootstrap=watcher.bootstrap, check=False)
        assert tool.returncode != 0 and "ELIGIBLE_LEADERS_NOT_AVAILABLE" in tool.stdout, tool.stdout
    finally:
        paused.resume()
    resumed = time.monotonic()
    wait_until(f"broker {paused.id} to be unfenced", lambda: not c.describe(watcher.bootstrap)[paused.id]["fenced"],
               30, interval=0.05)
    wait_until("the partition to have its leader back", lambda: c.leaders(watcher.bootstrap, "fenced")[offline]
               == paused.id, 10)
    print(f"broker {paused.id} resumed: unfenced and leading again after {1000 * (time.monotonic() - resumed):.0f} ms")
    kp = KafkaProducer(bootstrap_servers=watcher.bootstrap, request_timeout_ms=10000)
    kp.send("fenced", b"back", partition=offline).get(timeout=30)
    kp.close(timeout=5)
    got = consume_all(c.bootstrap, "fenced", 3, 2, timeout=30)
    assert [r.value for r in got[offline]] == [b"back"]


@pytest.mark.timeout(240)
def test_a_rolling_restart_leaves_no_partition_without_a_leader(fresh_cluster):
    c = fresh_cluster(controllers=3)
    kadmin(c.bootstrap).create_topics([NewTopic("rolled", 6, 1)])
    wait_until("rolled's leaders", lambda: len(c.leaders(c.brokers[0].bootstrap, "rolled")) == 6, 10)
    p = Producer({"bootstrap.servers": c.bootstrap, "enable.idempotence": True, "logger": RDKAFKA_LOG})
    for i in range(600):
        p.produce("rolled", key=b"%d" % i, value=b"v%d" % i)
    assert p.flush(30) == 0
    for node in c.nodes:
        status = node.stop()
        assert status == 0, f"node {node.id} exited {status} on SIGTERM\n{node.log_tail()}"
        assert "controlled shutdown: the controller has moved" in node.log_path.read_text(), node.log_tail()
        node.start()
        c.wait_ready(brokers=c.brokers)

        def all_led():
            views = [c.leaders(b.bootstrap, "rolled") for b in c.brokers]
            return all(len(v) == 6 and all(leader >= 0 for leader in v.values()) for v in views)

        wait_until(f"every partition led after node {node.id} restarted", all_led, 20)
    got = consume_all(c.bootstrap, "rolled", 6, 600, timeout=60)
    assert sorted(r.value for recs in got.values() for r in recs) == sorted(b"v%d" % i for i in range(600))


def test_a_node_from_another_cluster_refuses_to_join(fresh_cluster):
    c = fresh_cluster(controllers=3)
    stranger = c.nodes[2]
    stranger.stop()
    meta = stranger.data_dir / "meta.properties"
    other = subprocess.run([str(c.bin), "storage", "random-uuid"], capture_output=True, text=True).stdout.strip()
    meta.write_text(re.sub(r"cluster\.id=.*", f"cluster.id={other}", meta.read_text()))
    stranger.start()
    status = stranger.proc.wait(timeout=60)
    assert status != 0
    log = stranger.log_path.read_text()
    assert "belongs to another cluster" in log, stranger.log_tail()
    # The others carry on.
    assert c.active_controller(c.nodes[0].bootstrap) in (1, 2)


def test_storage_format_pins_the_cluster_id(tmp_path):
    c = Cluster(tmp_path / "formatted", controllers=3)
    cluster_id = subprocess.run([str(c.bin), "storage", "random-uuid"], capture_output=True, text=True,
                                check=True).stdout.strip()
    for node in c.nodes:
        out = subprocess.run([str(c.bin), "storage", "format", "--config", str(node.props_file),
                              "--cluster-id", cluster_id], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    again = subprocess.run([str(c.bin), "storage", "format", "--config", str(c.nodes[0].props_file),
                            "--cluster-id", cluster_id], capture_output=True, text=True)
    assert again.returncode != 0 and "already formatted" in again.stderr
    bad = subprocess.run([str(c.bin), "storage", "format", "--config", str(c.nodes[0].props_file),
                          "--cluster-id", "not-an-id"], capture_output=True, text=True)
    assert bad.returncode != 0 and "base64" in bad.stderr
    try:
        c.start()
        assert kadmin(c.bootstrap).describe_cluster()["cluster_id"] == cluster_id
    finally:
        c.close()


def test_a_wrong_cluster_configuration_stops_start_up_with_one_line(tmp_path):
    c = Cluster(tmp_path / "wrong", controllers=3)
    props = c.nodes[0].props_file
    props.write_text(props.read_text().replace("node.id=1", "node.id=9"))
    out = subprocess.run([str(c.bin), "server", str(props)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not one of the voters" in errors[0], out.stderr


@pytest.mark.timeout(120)
def test_fjord_dev_cluster_starts_and_stops_a_local_cluster(tmp_path):
    base = next(p for p in range(21000, 60000, 37) if all(port_is_free(p + i) for i in range(6)))
    proc = subprocess.Popen([str(conftest.fjord_bin()), "dev", "cluster", "--nodes", "3", "--dir", str(tmp_path),
                             "--base-port", str(base)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=conftest._die_with_parent)
    try:
        line = proc.stdout.readline()
        assert line.startswith("cluster ready: --bootstrap-server "), (line, proc.stderr.read() if proc.poll() else "")
        bootstrap = line.split()[-1]
        assert bootstrap == f"127.0.0.1:{base},127.0.0.1:{base + 2},127.0.0.1:{base + 4}"
        assert set(admin(bootstrap).list_topics(timeout=15).brokers) == {1, 2, 3}
        pids = [int(m) for m in re.findall(r"\(pid (\d+)", proc.stderr.readline() + proc.stderr.readline()
                                           + proc.stderr.readline())]
        assert len(pids) == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    for pid in pids:
        assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0, "node left running"
    shutil.rmtree(tmp_path, ignore_errors=True)
