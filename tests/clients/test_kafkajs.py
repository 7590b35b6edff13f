"""kafkajs (2.2.4) against fjord, through tests/clients/kafkajs_roundtrip.js: admin, an
idempotent producer (none + gzip), offsets, and fetch-back with kafkajs' own decoder; then the
same records read with confluent-kafka (assign()) as an independent check. Then consumer groups
through tests/clients/kafkajs_group.js: three consumers split a topic, one leaves, a fresh one
resumes after the committed offsets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fjordtest import consume_all

HERE = Path(__file__).resolve().parent
NODE_MODULES = Path(os.environ.get("FJORD_CACHE", Path.home() / ".cache" / "fjord")) / "node" / "node_modules"
COUNT = 1000
PARTITIONS = 3
BASE_TS = int(time.time() * 1000) - 3_600_000  # recent: see test_confluent_kafka.py
BROKER_PROPS = {"group.initial.rebalance.delay.ms": "300"}


def expected(i):
    return {
        "partition": i % PARTITIONS,
        "offset": i // PARTITIONS,
        "key": f"key-{i}",
        "value": f"value-{i}-" + "z" * (i % 31),
        "headers": {"h-index": str(i), "h-client": "kafkajs"},
        "timestamp": str(BASE_TS + i),
    }


def run_node(script: str, *args: str) -> tuple[dict, str]:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "kafkajs").is_dir():
        pytest.fail(f"node or kafkajs missing (looked in {NODE_MODULES}): run tests/clients/install.sh",
                    pytrace=False)
    env = dict(os.environ, NODE_PATH=str(NODE_MODULES), KAFKAJS_NO_PARTITIONER_WARNING="1")
    proc = subprocess.run([node, str(HERE / script), *args], capture_output=True, env=env, timeout=150)
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{stderr[-5000:]}"
    return json.loads(proc.stdout), stderr


@pytest.fixture(scope="module")
def roundtrip(broker):
    return run_node("kafkajs_roundtrip.js", broker.bootstrap, "js-roundtrip", str(COUNT), str(BASE_TS))


def test_admin(roundtrip, broker):
    r, _ = roundtrip
    assert r["created"] is True
    assert r["createdAgain"] is False
    assert r["listed"] is True
    assert r["metadata"] == [{
        "name": "js-roundtrip",
        "partitions": [{"id": p, "leader": 1, "replicas": [1], "isr": [1]} for p in range(PARTITIONS)],
    }]
    assert r["cluster"]["brokers"] == [{"nodeId": 1, "host": "127.0.0.1", "port": broker.port}]
    assert r["cluster"]["controller"] == 1
    assert r["configs"]["cleanup.policy"] == "delete"
    assert r["configs"]["retention.ms"] == "604800000"


def test_produce_results_and_offsets(roundtrip):
    r, _ = roundtrip
    # Each send (100 messages, partition = i % 3) reports, per partition, the offset of its first
    # message there: (first i in the send with i % 3 == p) // 3, so offsets continue without gaps.
    assert r["sendResults"], "no send results"
    for s in r["sendResults"]:
        want = {}
        for i in range(s["from"], s["to"]):
            want.setdefault(i % PARTITIONS, i // PARTITIONS)
        got = {x["partition"]: (x["errorCode"], int(x["baseOffset"])) for x in s["results"]}
        assert got == {p: (0, o) for p, o in want.items()}, s
    per_part = {p: sum(1 for i in range(COUNT) if i % PARTITIONS == p) for p in range(PARTITIONS)}
    assert r["offsets"] == [{"partition": p, "low": "0", "high": str(per_part[p])} for p in range(PARTITIONS)]
    # The first record with timestamp >= BASE_TS + 30 is message 30, 31, 32: offset 10 in each partition.
    assert r["offsetsByTimestamp"] == [{"partition": p, "offset": "10"} for p in range(PARTITIONS)]


def test_kafkajs_fetch_back(roundtrip):
    r, _ = roundtrip
    for p in range(PARTITIONS):
        want = [expected(i) for i in range(COUNT) if i % PARTITIONS == p]
        got = r["fetched"][str(p)]
        assert len(got) == len(want), f"partition {p}"
        for w, g in zip(want, got):
            assert g == {k: w[k] for k in ("offset", "key", "value", "headers", "timestamp")}, f"partition {p}"


def test_confluent_reads_kafkajs_records(roundtrip, broker):
    got = consume_all(broker.bootstrap, "js-roundtrip", PARTITIONS, COUNT, timeout=30)
    for p in range(PARTITIONS):
        want = [expected(i) for i in range(COUNT) if i % PARTITIONS == p]
        recs = got.get(p, [])
        assert [(x.offset, x.key.decode(), x.value.decode(), dict((k, v.decode()) for k, v in x.headers), x.timestamp)
                for x in recs] == \
            [(w["offset"], w["key"], w["value"], w["headers"], int(w["timestamp"])) for w in want]


def test_kafkajs_consumer_group(broker):
    r, _ = run_node("kafkajs_group.js", broker.bootstrap, "js-group", "js-group")
    split = r["split"]
    assert sorted(p for ps in split.values() for p in ps) == list(range(6)), split
    assert all(split.values()), f"a member got nothing: {split}"
    assert r["consumed"] == 600
    assert r["committed"] == [{"partition": p, "offset": "100"} for p in range(6)]
    assert r["stateAfterLeaving"] == "Empty"
    assert (r["resumedCount"], r["resumedMinOffset"]) == (300, 100), "resumes after the committed offsets"
