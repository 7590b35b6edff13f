"""A full data disk: the broker refuses writes with KAFKA_STORAGE_ERROR, keeps serving reads
and every other request, loses nothing it acknowledged, and takes writes again as soon as space
returns, without a restart. The node's log.dirs is a small tmpfs of its own (mounting needs
root, as CI runs); the metadata log is elsewhere (metadata.log.dir), so only partition data
meets the full disk."""

from __future__ import annotations

import os

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaStorageError

import cluster as cl

pytestmark = pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                                reason="mounting a tmpfs needs root")


def read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[int, bytes]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    for m in consumer:
        got.append((m.offset, m.value))
        if len(got) >= expected:
            break
    consumer.close()
    return got


def test_a_full_disk_refuses_writes_cleanly_and_recovers_when_space_returns(tmp_path):
    c = cl.Cluster(tmp_path / "c", controllers=1, data_tmpfs_mb=16).start()
    try:
        node = c.nodes[0]
        pid = node.proc.pid
        assert (node.dir / "metadata" / "__cluster_metadata-0").is_dir(), "metadata.log.dir was not used"
        assert not (node.data_dir / "__cluster_metadata-0").exists()
        KafkaAdminClient(bootstrap_servers=c.bootstrap).create_topics([NewTopic("full", 1, 1), NewTopic("other", 1, 1)])
        producer = KafkaProducer(bootstrap_servers=c.bootstrap, acks=1, retries=0, linger_ms=0,
                                 max_block_ms=10000, request_timeout_ms=10000)
        acked: list[bytes] = []

        def send(value: bytes) -> Exception | None:
            try:
                producer.send("full", value=value, partition=0).get(timeout=15)
            except KafkaStorageError as e:
                return e
            acked.append(value)
            return None

        for i in range(200):
            assert send(b"before-%04d" % i) is None
        assert node.fill_disk() > 0
        # The active segment's last page may still hold a few small records; after that, every
        # write is refused with Kafka's storage error.
        refusal = next((e for i in range(5000) if (e := send(b"full-%04d" % i)) is not None), None)
        assert isinstance(refusal, KafkaStorageError), "a write to a full disk was never refused"
        assert send(b"refused-again") is not None, "a second write to the full disk was taken"

        # Everything else goes on: metadata, and reads of what was acknowledged.
        assert set(cl.metadata(c.bootstrap, ["full", "other"])["topics"]) == {"full", "other"}
        assert [v for _, v in read_all(c.bootstrap, "full", len(acked))] == acked
        assert node.alive() and node.proc.pid == pid

        node.free_disk()
        for i in range(200):
            assert send(b"after-%04d" % i) is None, "writes were still refused after space returned"
        producer.close()
        got = read_all(c.bootstrap, "full", len(acked))
        assert [o for o, _ in got] == list(range(len(acked))), "offsets are not contiguous"
        assert [v for _, v in got] == acked, "the log does not hold exactly the acknowledged writes"
        assert node.alive() and node.proc.pid == pid and node.starts == 1
        assert "KAFKA_STORAGE_ERROR" in node.log_path.read_text()
    finally:
        c.close()
