"""A short fault schedule against a real cluster, every history checked (jepsen_harness.py):
kill -9 of leaders, of the active controller and of random nodes, pauses shorter and longer
than the session, controlled shutdowns and a rolling restart, under idempotent acks=all
producers (librdkafka and kafka-python), an assign-mode reader and a committing group member.
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
