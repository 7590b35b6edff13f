"""`fjord topics` against a live broker, checked through a real client (confluent-kafka's
admin and Metadata): create with partitions and configs, list, describe in kafka-topics'
format, alter partitions and configs, delete; user errors exit non-zero without a trace."""

from __future__ import annotations

import subprocess

from confluent_kafka.admin import ConfigResource

from fjordtest import admin


def fjord(*args: str) -> subprocess.CompletedProcess:
    from conftest import fjord_bin
    return subprocess.run([str(fjord_bin()), "topics", *args], capture_output=True, text=True, timeout=60)


def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    resource = ConfigResource("topic", topic)
    a = admin(bootstrap)  # keep the client alive until the future resolves
    entries = a.describe_configs([resource])[resource].result(timeout=30)
    return {name: e.value for name, e in entries.items() if not e.is_default}


def test_create_list_describe_alter_delete(broker):
    b = ["--bootstrap-server", broker.bootstrap]
    out = fjord("create", "--topic", "cli-orders", "--partitions", "3",
                "--config", "cleanup.policy=compact", "--config", "retention.ms=3600000", *b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Created topic cli-orders."
    md = admin(broker.bootstrap).list_topics(timeout=10)
    assert len(md.topics["cli-orders"].partitions) == 3
    assert topic_configs(broker.bootstrap, "cli-orders") == {"cleanup.policy": "compact", "retention.ms": "3600000"}

    out = fjord("list", *b)
    assert out.returncode == 0 and "cli-orders" in out.stdout.split(), out

    out = fjord("describe", "--topic", "cli-orders", *b)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().split("\n")
    assert lines[0].startswith("Topic: cli-orders\tTopicId: ")
    assert "\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: " in lines[0]
    assert "cleanup.policy=compact" in lines[0] and "retention.ms=3600000" in lines[0]
    assert lines[1:] == [f"\tTopic: cli-orders\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1" for p in range(3)]

    out = fjord("alter", "--topic", "cli-orders", "--partitions", "5",
                "--config", "retention.ms=7200000", "--delete-config", "cleanup.policy", *b)
    assert out.returncode == 0, out.stderr
    md = admin(broker.bootstrap).list_topics(timeout=10)
    assert len(md.topics["cli-orders"].partitions) == 5
    assert topic_configs(broker.bootstrap, "cli-orders") == {"retention.ms": "7200000"}

    out = fjord("delete", "--topic", "cli-orders", *b)
    assert out.returncode == 0, out.stderr
    assert "cli-orders" not in fjord("list", *b).stdout.split()


def test_user_errors_exit_non_zero_with_one_line(broker):
    b = ["--bootstrap-server", broker.bootstrap]
    assert fjord("create", "--topic", "dup", *b).returncode == 0
    cases = [
        (fjord("create", "--topic", "dup", *b), "TOPIC_ALREADY_EXISTS"),
        (fjord("describe", "--topic", "missing", *b), "does not exist"),
        (fjord("delete", "--topic", "missing", *b), "UNKNOWN_TOPIC_OR_PARTITION"),
        (fjord("alter", "--topic", "dup", "--partitions", "1", *b), "INVALID_PARTITIONS"),
        (fjord("create", "--topic", "bad", "--config", "retention.ms", *b), "key=value"),
        (fjord("create", "--topic", "bad", "--config", "no.such.config=1", *b), "cannot create topic 'bad'"),
        (fjord("list", "--bootstrap-server", "127.0.0.1:1"), "127.0.0.1:1"),
    ]
    for out, expected in cases:
        assert out.returncode != 0, out
        assert expected in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "panicked" not in out.stderr
        assert len(out.stderr.strip().split("\n")) == 1, out.stderr
