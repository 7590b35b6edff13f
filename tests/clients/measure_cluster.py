"""Cluster figures, as medians over repeated runs (not a test; run by hand):

    cargo build --release -p fjord
    FJORD_BIN=target/release/fjord ~/.cache/fjord/venv/bin/python tests/clients/measure_cluster.py [RUNS]

- controller failover: kill -9 of the active controller to the moment a new node logs that it
  is the active controller (it has committed its epoch's first record and caught up);
- broker fencing: SIGSTOP of a broker to the active controller's record fencing it, with
  Kafka's default broker.session.timeout.ms (9000) and broker.heartbeat.interval.ms (2000);
- metadata propagation: a CreateTopics answer (the records committed) to every broker's
  Metadata listing the topic, polled every 2 ms;
- idle RSS of each node of a three-node cluster after 10 s of idleness.
"""

from __future__ import annotations

import datetime
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cluster as cl  # noqa: E402
from cluster import Cluster, wait_until  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def log_time(node, pattern: str, after: float) -> float | None:
    """Wall-clock time of the first line matching `pattern` logged after `after`."""
    for line in node.log_path.read_text(errors="replace").splitlines():
        m = STAMP.match(line)
        if not m or pattern not in line:
            continue
        t = datetime.datetime.fromisoformat(m.group(1)[:26]).replace(tzinfo=datetime.timezone.utc).timestamp()
        if t >= after:
            return t
    return None


def failover(root: Path) -> float:
    c = Cluster(root, controllers=3).start()
    try:
        old = c.active_controller()
        time.sleep(1)
        killed = time.time()
        c.node(old).stop(kill9=True)
        survivors = [n for n in c.nodes if n.id != old]
        return wait_until("a new active controller", lambda: next(
            (t - killed for n in survivors if (t := log_time(n, "this node is the active controller", killed))),
            None), 30, interval=0.05)
    finally:
        c.close()


def fencing(root: Path) -> float:
    saved = dict(cl.FAST_SESSIONS)
    cl.FAST_SESSIONS.clear()  # Kafka's defaults
    try:
        c = Cluster(root, controllers=3).start()
    finally:
        cl.FAST_SESSIONS.update(saved)
    try:
        controller = c.active_controller()
        victim = next(n for n in c.brokers if n.id != controller)
        time.sleep(1)
        paused = time.time()
        victim.pause()
        active = c.node(controller)
        return wait_until("the fence", lambda: (t := log_time(active, f"fencing a broker whose session expired "
                                                              f"broker={victim.id}", paused)) and t - paused,
                          40, interval=0.1)
    finally:
        c.close()


def propagation(root: Path, topics: int) -> tuple[list[float], list[int]]:
    c = Cluster(root, controllers=3).start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=c.brokers[0].bootstrap)
        delays = []
        for i in range(topics):
            admin.create_topics([NewTopic(f"p{i}", 3, 1)])
            answered = time.monotonic()
            pending = list(c.brokers)
            while pending:
                pending = [b for b in pending if len(c.leaders(b.bootstrap, f"p{i}")) != 3]
                time.sleep(0.002)
            delays.append(time.monotonic() - answered)
        admin.close()
        time.sleep(10)
        rss = [n.rss_kib() for n in c.nodes]
        return delays, rss
    finally:
        c.close()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(f"binary: {os.environ.get('FJORD_BIN', '(default)')}, {runs} runs each")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        f = [failover(root / f"f{i}") for i in range(runs)]
        print(f"controller failover (kill -9 -> new active controller): median {1000 * statistics.median(f):.0f} ms, "
              f"min {1000 * min(f):.0f}, max {1000 * max(f):.0f}")
        g = [fencing(root / f"g{i}") for i in range(runs)]
        print(f"broker fencing (SIGSTOP -> fence record, session 9000 ms): median {1000 * statistics.median(g):.0f} ms, "
              f"min {1000 * min(g):.0f}, max {1000 * max(g):.0f}")
        delays, rss = propagation(root / "p", 2 * runs)
        print(f"metadata propagation (CreateTopics answer -> every broker lists it): median "
              f"{1000 * statistics.median(delays):.1f} ms, max {1000 * max(delays):.1f} ms over {len(delays)} topics")
        print(f"idle RSS per node of a 3-node cluster: {', '.join(f'{r / 1024:.1f} MiB' for r in rss)}")


if __name__ == "__main__":
    main()
