"""`fjord produce`, `fjord consume`, `fjord groups reset-offsets|delete` and `fjord perf`
against a live broker, each checked through real clients: records the tool sends are read back
by librdkafka (and land on the partition kafka-python's partitioner picks for their key),
records librdkafka sends are printed by the tool in kafka-console-consumer's format, and group
offsets the tool commits or resets are what librdkafka's consumer sees."""

from __future__ import annotations

import re
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka.partitioner.default import murmur2

from fjordtest import RDKAFKA_LOG, consume_all, create_topic

BROKER_PROPS = {"group.initial.rebalance.delay.ms": "300"}


def fjord(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    from conftest import fjord_bin
    return subprocess.run([str(fjord_bin()), *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def kafka_partition(key: bytes, partitions: int) -> int:
    """Where Kafka's default partitioner (murmur2, as kafka-python implements it) puts a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def produce_with_librdkafka(bootstrap: str, topic: str, records: list[tuple], **conf) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "logger": RDKAFKA_LOG, **conf})
    for partition, key, value, headers in records:
        p.produce(topic, key=key, value=value, partition=partition, headers=headers)
    assert p.flush(30) == 0


def group_consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "logger": RDKAFKA_LOG})


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    c = group_consumer(bootstrap, group)
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return [tp.offset for tp in got]
    finally:
        c.close()


def test_produce_keys_headers_and_nulls_reach_clients(broker):
    b = ["--bootstrap-server", broker.bootstrap]
    create_topic(broker.bootstrap, "console-in", 4)
    keys = [f"user-{i}" for i in range(40)]
    lines = "".join(f"trace:{i},team:x\t{k}|value {i}\n" for i, k in enumerate(keys))
    lines += "NO_HEADERS\tuser-0|NULL\n"  # a tombstone through --null-marker
    out = fjord("produce", "--topic", "console-in", "--parse-headers", "--key-separator", "|",
                "--header", "source=cli", "--null-marker", "NULL", "--compression", "lz4", *b, stdin=lines)
    assert out.returncode == 0, out.stderr
    got = consume_all(broker.bootstrap, "console-in", 4, expected=41)
    seen = {}
    for partition, recs in got.items():
        for r in recs:
            seen.setdefault(r.key, []).append((partition, r.value, r.headers))
    for i, k in enumerate(keys):
        partition, value, headers = seen[k.encode()][0]
        assert partition == kafka_partition(k.encode(), 4), k
        assert value == f"value {i}".encode()
        assert headers == (("source", b"cli"), ("trace", str(i).encode()), ("team", b"x"))
    assert seen[b"user-0"][1] == (kafka_partition(b"user-0", 4), None, (("source", b"cli"),))


def test_produce_acks_and_partition_choice(broker):
    b = ["--bootstrap-server", broker.bootstrap]
    create_topic(broker.bootstrap, "console-acks", 3)
    for acks in ["0", "1", "all"]:
        out = fjord("produce", "--topic", "console-acks", "--partition", "2", "--acks", acks, *b,
                    stdin="".join(f"{acks}-{i}\n" for i in range(5)))
        assert out.returncode == 0, out.stderr
    got = consume_all(broker.bootstrap, "console-acks", 3, expected=15)
    assert set(got) == {2}
    assert [r.value.decode() for r in got[2]] == [f"{a}-{i}" for a in ["0", "1", "all"] for i in range(5)]


def producer_ids(broker, topic: str) -> list[tuple[int, int]]:
    """(producerId, baseSequence) of every batch in the topic's partition 0, from dump-log."""
    segment = broker.data_dir / f"{topic}-0" / "00000000000000000000.log"
    out = fjord("dump-log", str(segment))
    assert out.returncode == 0, out.stderr
    return [(int(m[1]), int(m[0])) for m in re.findall(r"baseSequence: (-?\d+) .*?producerId: (-?\d+)", out.stdout)]


def test_produce_is_idempotent_when_acks_is_all(broker):
    """As Kafka's producer since 3.0: acks=all turns idempotence on (batches carry a producer id
    and sequences), other acks leave it off, and --producer-property overrides it."""
    b = ["--bootstrap-server", broker.bootstrap]
    runs = [("idem-all", ["--acks", "all", "--batch-size", "64"]),
            ("idem-one", ["--acks", "1"]),
            ("idem-off", ["--acks", "all", "--producer-property", "enable.idempotence=false"])]
    for topic, flags in runs:
        create_topic(broker.bootstrap, topic, 1)
        out = fjord("produce", "--topic", topic, *flags, *b, stdin="".join(f"record-{i}\n" for i in range(20)))
        assert out.returncode == 0, out.stderr
        got = consume_all(broker.bootstrap, topic, 1, expected=20)
        assert [r.value.decode() for r in got[0]] == [f"record-{i}" for i in range(20)]
    batches = producer_ids(broker, "idem-all")
    assert len(batches) > 1 and len({pid for pid, _ in batches}) == 1 and batches[0][0] >= 0, batches
    sequences = [seq for _, seq in batches]
    assert sequences[0] == 0 and sequences == sorted(sequences), sequences
    assert {pid for pid, _ in producer_ids(broker, "idem-one")} == {-1}
    assert {pid for pid, _ in producer_ids(broker, "idem-off")} == {-1}


def test_consume_prints_in_kafkas_console_format(broker):
    b = ["--bootstrap-server", broker.bootstrap]
    create_topic(broker.bootstrap, "console-out", 2)
    records = [(i % 2, f"k{i}".encode(), f"v{i}".encode(), [("h", f"{i}".encode())]) for i in range(6)]
    records.append((0, None, b"no-key", []))
    produce_with_librdkafka(broker.bootstrap, "console-out", records, **{"compression.type": "zstd"})
    stamps = {}
    for partition, recs in consume_all(broker.bootstrap, "console-out", 2, expected=7).items():
        for r in recs:
            stamps[(partition, r.offset)] = r.timestamp

    out = fjord("consume", "--topic", "console-out", "--from-beginning", "--max-messages", "7",
                "--print-timestamp", "--print-partition", "--print-offset", "--print-headers",
                "--print-key", *b)
    assert out.returncode == 0, out.stderr
    assert "Processed a total of 7 messages" in out.stderr
    expected = set()
    for i in range(6):
        p, offset = i % 2, i // 2
        expected.add(f"CreateTime:{stamps[(p, offset)]}\tPartition:{p}\tOffset:{offset}\th:{i}\tk{i}\tv{i}")
    expected.add(f"CreateTime:{stamps[(0, 3)]}\tPartition:0\tOffset:3\tNO_HEADERS\tnull\tno-key")
    assert set(out.stdout.strip().split("\n")) == expected

    # One partition from an offset, value only; then stop when nothing more arrives.
    out = fjord("consume", "--topic", "console-out", "--partition", "1", "--offset", "1",
                "--timeout-ms", "1500", *b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["v3", "v5"]

    # Without --from-beginning only new records show up.
    proc = subprocess.Popen([str(__import__("conftest").fjord_bin()), "consume", "--topic", "console-out",
                             "--max-messages", "1", "--print-key", "--key-separator", "=", *b],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    produce_with_librdkafka(broker.bootstrap, "console-out", [(1, b"new", b"record", [])])
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert stdout == "new=record\n"


def test_group_consume_commits_and_offsets_reset(broker):
    b = ["--bootstrap-server", broker.bootstrap]
    create_topic(broker.bootstrap, "console-grp", 2)
    produce_with_librdkafka(broker.bootstrap, "console-grp",
                            [(i % 2, None, f"m{i}".encode(), []) for i in range(20)])
    out = fjord("consume", "--topic", "console-grp", "--group", "cg", "--from-beginning", "--max-messages", "12", *b)
    assert out.returncode == 0, out.stderr
    first = out.stdout.split()
    assert len(first) == 12
    offsets = committed(broker.bootstrap, "cg", "console-grp", 2)
    assert sum(offsets) == 12, offsets
    # The next member of the group continues where the first stopped: nothing twice, nothing lost.
    out = fjord("consume", "--topic", "console-grp", "--group", "cg", "--timeout-ms", "2000", *b)
    assert out.returncode == 0, out.stderr
    assert sorted(first + out.stdout.split()) == sorted(f"m{i}" for i in range(20))
    assert committed(broker.bootstrap, "cg", "console-grp", 2) == [10, 10]

    # A dry run shows the new offsets and changes nothing.
    out = fjord("groups", "reset-offsets", "--group", "cg", "--topic", "console-grp", "--to-earliest", *b)
    assert out.returncode == 0, out.stderr
    assert "NEW-OFFSET" in out.stdout and "Dry run" in out.stderr
    assert committed(broker.bootstrap, "cg", "console-grp", 2) == [10, 10]
    for args, want in [
        (["--topic", "console-grp", "--to-offset", "3"], [3, 3]),
        (["--topic", "console-grp:1", "--to-earliest"], [3, 0]),
        (["--all-topics", "--shift-by", "-2"], [1, 0]),
        (["--all-topics", "--to-offset", "99"], [10, 10]),  # clamped to the log end
        (["--all-topics", "--to-datetime", "2000-01-01T00:00:00.000Z"], [0, 0]),
        (["--all-topics", "--to-latest"], [10, 10]),
    ]:
        out = fjord("groups", "reset-offsets", "--group", "cg", *args, "--execute", *b)
        assert out.returncode == 0, (args, out.stderr)
        assert committed(broker.bootstrap, "cg", "console-grp", 2) == want, args

    # librdkafka consumes from the reset offsets.
    fjord("groups", "reset-offsets", "--group", "cg", "--topic", "console-grp:0", "--to-offset", "8", "--execute", *b)
    c = group_consumer(broker.bootstrap, "cg")
    c.subscribe(["console-grp"])
    try:
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
        assert sorted(got) == [b"m16", b"m18"]
        # An active group can be neither reset nor deleted.
        out = fjord("groups", "reset-offsets", "--group", "cg", "--all-topics", "--to-earliest", "--execute", *b)
        assert out.returncode != 0 and "inactive" in out.stderr, out
        out = fjord("groups", "delete", "--group", "cg", *b)
        assert out.returncode != 0 and "not empty" in out.stderr, out
    finally:
        c.close()
    out = fjord("groups", "delete", "--group", "cg", *b)
    assert out.returncode == 0 and "successful" in out.stdout, out
    assert "cg" not in fjord("groups", "list", *b).stdout.split()


def test_perf_produce_and_consume(broker):
    b = ["--bootstrap-server", broker.bootstrap]
    create_topic(broker.bootstrap, "console-perf", 1)
    out = fjord("perf", "produce", "--topic", "console-perf", "--num-records", "30000", "--record-size", "100",
                "--throughput", "-1", "--acks", "1", "--reporting-interval", "200", *b)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().split("\n")[-1]
    final = re.fullmatch(r"30000 records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, "
                         r"[\d.]+ ms max latency, [\d.]+ ms 50th, [\d.]+ ms 95th, [\d.]+ ms 99th, [\d.]+ ms 99.9th\.",
                         last)
    assert final, last
    got = consume_all(broker.bootstrap, "console-perf", 1, expected=30000)
    assert sum(len(v) for v in got.values()) == 30000
    assert all(len(r.value) == 100 for r in got[0])

    # A rate limit holds: 2000 records at 4000/s take about half a second.
    started = time.monotonic()
    out = fjord("perf", "produce", "--topic", "console-perf", "--num-records", "2000", "--record-size", "10",
                "--throughput", "4000", *b)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started >= 0.45

    out = fjord("perf", "consume", "--topic", "console-perf", "--messages", "32000", *b)
    assert out.returncode == 0, out.stderr
    header, values = out.stdout.strip().split("\n")
    row = dict(zip([h.strip() for h in header.split(",")], [v.strip() for v in values.split(",")]))
    assert row["data.consumed.in.nMsg"] == "32000"
    assert abs(float(row["data.consumed.in.MB"]) - (30000 * 100 + 2000 * 10) / 2**20) < 0.001


def test_user_errors_exit_non_zero_with_one_line(broker):
    b = ["--bootstrap-server", broker.bootstrap]
    create_topic(broker.bootstrap, "console-err", 1)
    cases = [
        (fjord("produce", "--topic", "console-err", "--partition", "5", *b, stdin="x\n"), "UNKNOWN_TOPIC_OR_PARTITION"),
        (fjord("produce", "--topic", "console-err", "--key-separator", ":", *b, stdin="no separator\n"),
         "line 1: no key separator"),
        (fjord("produce", "--topic", "console-err", "--acks", "2", *b, stdin=""), "--acks"),
        (fjord("produce", "--topic", "console-err", "--acks", "1", "--producer-property", "enable.idempotence=true",
               *b, stdin="x\n"), "enable.idempotence needs acks=all"),
        (fjord("perf", "produce", "--topic", "console-err", "--num-records", "1", "--record-size", "1",
               "--throughput", "-1", "--producer-props", "max.in.flight.requests.per.connection=9", *b),
         "max.in.flight.requests.per.connection"),
        (fjord("produce", "--topic", "console-err", "--producer-property", "socket.nagle=1", *b, stdin=""),
         "unknown or unsupported producer property socket.nagle"),
        (fjord("consume", "--topic", "missing-topic", "--timeout-ms", "100", *b), "UNKNOWN_TOPIC_OR_PARTITION"),
        (fjord("consume", "--topic", "console-err", "--offset", "3", *b), "--offset needs --partition"),
        (fjord("consume", "--topic", "console-err", "--partition", "0", "--offset", "x", *b), "--offset x"),
        (fjord("groups", "reset-offsets", "--group", "nobody", "--all-topics", "--to-earliest", *b),
         "no committed offsets"),
        (fjord("groups", "reset-offsets", "--group", "g", "--topic", "console-err",
               "--to-datetime", "yesterday", *b), "--to-datetime yesterday"),
        (fjord("groups", "delete", "--group", "nobody", *b), "does not exist"),
        (fjord("produce", "--topic", "t", "--bootstrap-server", "127.0.0.1:1", stdin="x\n"), "127.0.0.1:1"),
        (fjord("perf", "produce", "--topic", "t", "--num-records", "1", "--record-size", "1",
               "--throughput", "-1", "--bootstrap-server", "127.0.0.1:1"), "127.0.0.1:1"),
    ]
    for out, expected in cases:
        assert out.returncode != 0, out
        assert expected in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "panicked" not in out.stderr
        lines = [line for line in out.stderr.strip().split("\n") if not line.startswith("Deletion of")]
        assert len(lines) == 1, out.stderr
