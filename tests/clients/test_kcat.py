"""Debian's kcat (librdkafka 2.0.2, an old client that misparses some newer responses) against
fjord: metadata listing, produce from stdin with keys and every codec, consume back in order."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

KCAT = shutil.which("kcat")
BROKER_PROPS = {"group.initial.rebalance.delay.ms": "300"}


@pytest.fixture(scope="module", autouse=True)
def need_kcat():
    if KCAT is None:
        pytest.fail("kcat not found on PATH: run tests/clients/install.sh", pytrace=False)


def kcat(bootstrap, *args, input=None, timeout=60):
    cmd = [KCAT, "-b", bootstrap, "-m", "15", *args]
    proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    return proc


def ok(proc):
    assert proc.returncode == 0, (f"kcat exited {proc.returncode}\nargs: {proc.args}\n"
                                  f"stderr: {proc.stderr.decode(errors='replace')[-3000:]}")
    return proc


def produce_lines(bootstrap, topic, lines, *args):
    data = b"".join(line + b"\n" for line in lines)
    proc = ok(kcat(bootstrap, "-P", "-t", topic, *args, input=data))
    err = proc.stderr.decode(errors="replace")
    assert "ERROR" not in err and "Failed" not in err, err[-3000:]


def consume(bootstrap, topic, fmt, *args):
    proc = ok(kcat(bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-f", fmt, *args))
    return proc.stdout


def test_metadata_list(broker):
    topic = "kc-listed"
    produce_lines(broker.bootstrap, topic, [b"k:v"], "-K:", "-p", "0")  # auto-creates
    out = ok(kcat(broker.bootstrap, "-L")).stdout.decode()
    assert f'topic "{topic}" with 3 partitions' in out, out
    assert f"broker 1 at 127.0.0.1:{broker.port}" in out, out

    md = json.loads(ok(kcat(broker.bootstrap, "-L", "-J", "-t", topic)).stdout)
    assert [b["id"] for b in md["brokers"]] == [1]
    assert md["brokers"][0]["name"] == f"127.0.0.1:{broker.port}"
    [t] = md["topics"]
    assert t["topic"] == topic
    parts = sorted(t["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    assert all(p["leader"] == 1 and [r["id"] for r in p["replicas"]] == [1] for p in parts), parts


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_keyed_lines_and_consume_in_order(broker, codec):
    topic = f"kc-lines-{codec}"
    lines = [b"key%d:line %d %s" % (i % 7, i, b"x" * (i % 50)) for i in range(2000)]
    args = ["-K:", "-p", "0"]
    if codec != "none":
        args += ["-z", codec]
    produce_lines(broker.bootstrap, topic, lines, *args)
    out = consume(broker.bootstrap, topic, "%k:%s\n", "-p", "0")
    assert out.splitlines() == lines

    # Offsets are 0..n-1 and every partition other than 0 is empty.
    out = consume(broker.bootstrap, topic, "%p %o\n")
    assert out.splitlines() == [b"0 %d" % i for i in range(len(lines))]


def test_headers_timestamps_and_offsets(broker):
    topic = "kc-headers"
    produce_lines(broker.bootstrap, topic, [b"a:1", b"b:2", b"c:3"], "-K:", "-p", "1",
                  "-H", "trace=abc", "-H", "empty=")
    out = consume(broker.bootstrap, topic, "%p|%o|%k|%s|%h\n", "-p", "1")
    assert out.splitlines() == [
        b"1|0|a|1|trace=abc,empty=",
        b"1|1|b|2|trace=abc,empty=",
        b"1|2|c|3|trace=abc,empty=",
    ]
    # Relative offset from the end: the last two.
    out = ok(kcat(broker.bootstrap, "-C", "-t", topic, "-p", "1", "-o", "-2", "-e", "-f", "%s\n")).stdout
    assert out.splitlines() == [b"2", b"3"]
    # Query mode: offset for a timestamp far in the past is the first one.
    out = ok(kcat(broker.bootstrap, "-Q", "-t", f"{topic}:1:1")).stdout.decode()
    assert f"{topic} [1] offset 0" in out, out


def test_null_values_and_empty_keys(broker):
    topic = "kc-nulls"
    # -Z: empty messages are sent as NULL values.
    produce_lines(broker.bootstrap, topic, [b"k1:", b"k2:v2", b":v3"], "-K:", "-Z", "-p", "0")
    out = consume(broker.bootstrap, topic, "%k|%S|%s\n", "-p", "0")
    # %S is the value length, -1 for NULL.
    assert out.splitlines() == [b"k1|-1|", b"k2|2|v2", b"|2|v3"]


def test_balanced_consumer_group_commits_and_resumes(broker):
    """`kcat -G`: a group member reads everything, commits on exit, and a second run of the
    same group reads only what was produced since."""
    topic, group = "kcat-group", "kcat-group-app"
    produce_lines(broker.bootstrap, topic, [b"k%d:v%d" % (i, i) for i in range(20)], "-K:")
    args = ("-G", group, "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", topic, "-e",
            "-f", "%s\n")
    first = ok(kcat(broker.bootstrap, *args)).stdout.split()
    assert sorted(first) == sorted(b"v%d" % i for i in range(20))
    produce_lines(broker.bootstrap, topic, [b"k%d:v%d" % (i, i) for i in range(20, 25)], "-K:")
    second = ok(kcat(broker.bootstrap, *args)).stdout.split()
    assert sorted(second) == sorted(b"v%d" % i for i in range(20, 25)), "resumes after the committed offsets"
