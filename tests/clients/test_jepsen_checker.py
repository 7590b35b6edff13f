"""The fault harness's checker bites: doctored histories are each reported for what they are."""

from __future__ import annotations

from jepsen_checker import check


def clean() -> list[tuple]:
    """Two partitions, six acknowledged writes, two readers, a group's commits, one fault."""
    values = {0: [b"a0", b"a1", b"a2"], 1: [b"b0", b"b1", b"b2"]}
    history: list[tuple] = [("fault", 1.0, 2.0, "kill-leader")]
    t = 0.0
    for p, vs in values.items():
        for o, v in enumerate(vs):
            t += 0.5
            history.append(("ack", t, p, o, v))
            history.append(("read", t + 0.1, "assign-0", p, o, v))
    history.append(("read", 5.0, "group-0", 0, 0, b"a0"))
    history.append(("read", 5.1, "group-0", 0, 1, b"a1"))
    history.append(("commit", 5.2, "g", 0, 2))
    history.append(("commit", 6.0, "g", 0, 3))
    for p, vs in values.items():
        history.append(("final", p, list(enumerate(vs))))
    return history


def final_of(history: list[tuple], partition: int) -> list:
    return next(e for e in history if e[0] == "final" and e[1] == partition)[2]


def test_a_clean_history_passes_and_unavailability_is_measured():
    verdict = check(clean())
    assert verdict.valid, verdict.problems()
    assert verdict.acknowledged == 6
    # Partition 0 is acked at 0.5, 1.0 and 1.5, partition 1 from 2.0 on: during the fault
    # (1.0 to 2.0) partition 1 went a whole second without an acknowledgement.
    assert verdict.unavailable == [("kill-leader", 1.0)]


def test_unavailability_is_the_worst_partition_s():
    history = [("fault", 10.0, 12.0, "partition-leader")]
    history += [("ack", 9.0 + i * 0.1, 0, i, b"a%d" % i) for i in range(60)]  # partition 0: never stops
    history += [("ack", 9.5, 1, 0, b"b0"), ("ack", 13.0, 1, 1, b"b1")]  # partition 1: 3.5 s without one
    history += [("final", 0, [(i, b"a%d" % i) for i in range(60)]), ("final", 1, [(0, b"b0"), (1, b"b1")])]
    assert check(history).unavailable == [("partition-leader", 3.5)]


def test_a_lost_acknowledged_write_is_reported():
    history = clean()
    final_of(history, 1).pop()  # b2 acknowledged at offset 2, gone after the faults
    history = [e for e in history if not (e[0] == "read" and e[-1] == b"b2")]
    verdict = check(history)
    assert [x[2] for x in verdict.lost] == [b"b2"]
    assert not verdict.valid


def test_a_duplicated_write_is_reported():
    history = clean()
    final_of(history, 0).append((3, b"a1"))  # a retried batch written twice
    verdict = check(history)
    assert [d[0] for d in verdict.duplicated] == [b"a1"]


def test_a_moved_write_is_reported():
    history = clean()
    records = final_of(history, 0)
    records[1], records[2] = (1, b"a2"), (2, b"a1")  # acknowledged at 1, found at 2
    history = [e for e in history if e[0] != "read"]
    verdict = check(history)
    assert sorted(m[0] for m in verdict.moved) == [b"a1", b"a2"]


def test_a_stale_read_of_a_truncated_record_is_reported():
    history = clean()
    # A reader was handed offset 3 of partition 1, which the final log never holds: it read above
    # a high watermark whose records were then truncated.
    history.append(("read", 4.0, "assign-0", 1, 3, b"ghost"))
    verdict = check(history)
    assert [(s[1], s[2], s[3]) for s in verdict.stale] == [(1, 3, b"ghost")]


def test_two_values_at_one_offset_are_reported():
    history = clean()
    history.append(("read", 4.0, "assign-1", 0, 1, b"other"))
    verdict = check(history)
    assert any(i[:2] == (0, 1) for i in verdict.inconsistent), verdict.inconsistent


def test_a_skipped_offset_is_reported():
    history = [e for e in clean() if not (e[0] == "read" and e[2] == "assign-0" and e[4] == 1 and e[3] == 0)]
    verdict = check(history)
    assert [(s[0], s[1], s[2], s[3]) for s in verdict.skipped] == [("assign-0", 0, 0, 2)]


def test_a_committed_offset_moving_back_is_reported():
    history = clean()
    history.append(("commit", 7.0, "g", 0, 1))
    verdict = check(history)
    assert verdict.rewound == [("g", 0, 3, 1, 7.0)]

