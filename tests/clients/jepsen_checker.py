"""The history checker of the fault-injection harness (`jepsen_harness.py`).

A history is what the clients saw, recorded as it happened:

- ``("ack", t, partition, offset, value)``: a write the cluster acknowledged at that offset;
- ``("read", t, reader, partition, offset, value)``: a record a reader was handed;
- ``("commit", t, group, partition, offset)``: a group's committed offset as OffsetFetch showed it;
- ``("fault", start, end, name)``: a fault the nemesis applied between two times;
- ``("final", partition, [(offset, value), ...])``: the whole partition read after every fault
  healed.

The checker holds the cluster to Kafka's promises, per partition:

- every acknowledged write is in the final log, once, at its acknowledged offset: otherwise it
  is *lost* (absent), *moved* (elsewhere) or *duplicated* (more than once);
- no offset ever holds two different values, across readers, the final read and the acks
  (*inconsistent*);
- each reader sees a partition's offsets in increasing order, and never a record the final
  log does not hold there (*stale*: it read above a high watermark that was later truncated),
  nor skips an offset the final log fills (*skipped*);
- a group's committed offsets never move backwards (*rewound*).

It also measures what the faults cost: the longest stretch without an acknowledgement that
overlaps each fault.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses


@dataclasses.dataclass
class Verdict:
    acknowledged: int = 0
    lost: list = dataclasses.field(default_factory=list)
    moved: list = dataclasses.field(default_factory=list)
    duplicated: list = dataclasses.field(default_factory=list)
    inconsistent: list = dataclasses.field(default_factory=list)
    stale: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    rewound: list = dataclasses.field(default_factory=list)
    unavailable: list = dataclasses.field(default_factory=list)  # (fault name, seconds)

    @property
    def valid(self) -> bool:
        return not (self.lost or self.moved or self.duplicated or self.inconsistent or self.stale
                    or self.skipped or self.rewound)

    def problems(self) -> list[str]:
        out = []
        for name in ("lost", "moved", "duplicated", "inconsistent", "stale", "skipped", "rewound"):
            found = getattr(self, name)
            if found:
                out.append(f"{len(found)} {name}, e.g. {found[:3]}")
        return out


def check(history: list[tuple]) -> Verdict:
    v = Verdict()
    acks = [e for e in history if e[0] == "ack"]
    reads = [e for e in history if e[0] == "read"]
    commits = [e for e in history if e[0] == "commit"]
    faults = [e for e in history if e[0] == "fault"]
    final: dict[int, list[tuple[int, bytes]]] = {e[1]: list(e[2]) for e in history if e[0] == "final"}
    v.acknowledged = len(acks)

    # Where each value sits in the final log, and what each offset holds.
    at: dict[int, dict[int, bytes]] = collections.defaultdict(dict)
    where: dict[bytes, list[tuple[int, int]]] = collections.defaultdict(list)
    for partition, records in final.items():
        for offset, value in records:
            if offset in at[partition] and at[partition][offset] != value:
                v.inconsistent.append((partition, offset, at[partition][offset], value))
            at[partition][offset] = value
            where[value].append((partition, offset))
    for value, places in where.items():
        if len(places) > 1:
            v.duplicated.append((value, places))

    # Every acknowledged write, once, at its offset.
    acked_at: dict[tuple[int, int], bytes] = {}
    for _, _, partition, offset, value in acks:
        previous = acked_at.get((partition, offset))
        if previous is not None and previous != value:
            v.inconsistent.append((partition, offset, previous, value))
        acked_at[(partition, offset)] = value
        places = where.get(value)
        if not places:
            v.lost.append((partition, offset, value))
        elif (partition, offset) not in places:
            v.moved.append((value, (partition, offset), places))

    # Readers: no offset with two values, offsets in order, nothing the final log lacks, no gaps
    # the final log fills.
    seen: dict[tuple[int, int], bytes] = {}
    last: dict[tuple[str, int], int] = {}
    for _, _, reader, partition, offset, value in reads:
        key = (partition, offset)
        if key in seen and seen[key] != value:
            v.inconsistent.append((partition, offset, seen[key], value))
        seen.setdefault(key, value)
        if key in acked_at and acked_at[key] != value:
            v.inconsistent.append((partition, offset, acked_at[key], value))
        if partition in final and at[partition].get(offset) != value:
            v.stale.append((reader, partition, offset, value, at[partition].get(offset)))
        previous = last.get((reader, partition))
        if previous is not None:
            if offset <= previous:
                # A reader may re-read after a rebalance or a reconnect; going back is allowed
                # only to re-read what it had (checked above), not to see a different history.
                pass
            elif partition in final:
                gap = [o for o in range(previous + 1, offset) if o in at[partition]]
                if gap:
                    v.skipped.append((reader, partition, previous, offset, gap[:3]))
        last[(reader, partition)] = max(offset, previous if previous is not None else offset)

    # Committed offsets never move backwards.
    committed: dict[tuple[str, int], int] = {}
    for _, t, group, partition, offset in sorted(commits, key=lambda e: e[1]):
        previous = committed.get((group, partition))
        if previous is not None and offset < previous:
            v.rewound.append((group, partition, previous, offset, t))
        committed[(group, partition)] = max(offset, previous if previous is not None else offset)

    # What each fault cost: the longest stretch without an acknowledgement on one partition
    # that overlaps it, over the partitions (writes to every partition never stop otherwise).
    ack_times: dict[int, list[float]] = collections.defaultdict(list)
    for e in acks:
        ack_times[e[2]].append(e[1])
    for times in ack_times.values():
        times.sort()
    for _, start, end, name in faults:
        worst = 0.0
        for times in ack_times.values():
            i = bisect.bisect_right(times, start)
            previous = times[i - 1] if i > 0 else start
            for t in times[i:]:
                worst = max(worst, t - previous)
                previous = t
                if t > end:
                    break
            else:
                worst = max(worst, end - previous)
        v.unavailable.append((name, round(worst, 3)))
    return v
