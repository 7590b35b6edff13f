"""Replication figures against real processes (not a test; run by hand):

    cargo build --release -p fjord
    FJORD_BIN=target/release/fjord ~/.cache/fjord/venv/bin/python tests/clients/measure_replication.py [RUNS]

- leader failover: kill -9 of a partition's leader (RF 3, min.insync.replicas 2, Kafka's
  default broker.session.timeout.ms 9000 and heartbeats) under an idempotent acks=all producer
  sending every 5 ms, to the first acknowledgement of a record sent after the kill;
- with `rdkafka` (`FJORD_BIN_BEFORE=old-binary` to compare, run by run): 1M records of 1 KiB
  from rdkafka_performance, acks=all, into one partition with RF 3 on three fresh combined
  nodes per run, and the dd bound in 1 KiB blocks;
- produce throughput with `fjord perf produce` on three combined nodes, RF 3 and acks=all,
  against one node with RF 1 and acks=1 in the same run (each byte lands on three disks of the
  same machine, and the three brokers share its two cores with the load generator).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cluster as cl  # noqa: E402
from cluster import Cluster, wait_until  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def create(bootstrap: str, topic: str, partitions: int, rf: int, configs: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, rf, config=configs)])[topic].result(timeout=30)


def leader_of(bootstrap: str, topic: str) -> tuple[int, int]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    p = md.topics[topic].partitions[0]
    return p.leader, len(p.isrs)


def leader_failover(root: Path) -> tuple[float, bool, float]:
    saved = dict(cl.FAST_SESSIONS)
    cl.FAST_SESSIONS.clear()  # Kafka's defaults
    try:
        extra = dict(kv.split("=", 1) for kv in os.environ.get("FJORD_EXTRA_PROPS", "").split(",") if kv)
        c = Cluster(root, controllers=3, extra_props=extra).start()
    finally:
        cl.FAST_SESSIONS.update(saved)
    try:
        create(c.bootstrap, "failover", 1, 3, {"min.insync.replicas": "2"})
        wait_until("a full ISR", lambda: leader_of(c.bootstrap, "failover")[1] == 3, 30)
        acks: list[tuple[float, float]] = []
        stop = threading.Event()
        producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True,
                             "linger.ms": 0, "message.timeout.ms": 120000, "reconnect.backoff.ms": 20,
                             "reconnect.backoff.max.ms": 200, "retry.backoff.ms": 20,
                             "retry.backoff.max.ms": int(os.environ.get("RETRY_BACKOFF_MAX_MS", "1000"))})

        def run() -> None:
            while not stop.is_set():
                sent = time.time()
                producer.produce("failover", value=repr(sent).encode(),
                                 on_delivery=lambda err, msg, sent=sent: err is None and acks.append((sent, time.time())))
                producer.poll(0.005)
            producer.flush(60)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        time.sleep(2)
        victim = c.node(leader_of(c.bootstrap, "failover")[0])
        was_controller = c.active_controller() == victim.id
        killed = time.time()
        victim.stop(kill9=True)
        survivor = next(n for n in c.brokers if n.id != victim.id)
        elected = wait_until("a new leader in the metadata", lambda: (
            c.leaders(survivor.bootstrap, "failover").get(0, -1) not in (-1, victim.id)) and time.time() - killed,
            60, interval=0.01)
        recovered = wait_until("an acknowledgement of a record sent after the kill",
                               lambda: next((a - killed for s, a in list(acks) if s > killed), None), 60, interval=0.02)
        stop.set()
        thread.join(90)
        return recovered, was_controller, elected
    finally:
        c.close()


RATE = re.compile(r"([\d.]+) records/sec \(([\d.]+) MB/sec\).*?([\d.]+) ms avg latency.*?([\d.]+) ms max")


def perf(bin_: str, bootstrap: str, topic: str, records: int, size: int, acks: str, batch: int) -> str:
    out = subprocess.run([bin_, "perf", "produce", "--topic", topic, "--num-records", str(records), "--record-size",
                          str(size), "--throughput", "-1", "--acks", acks, "--batch-size", str(batch),
                          "--bootstrap-server", bootstrap],
                         capture_output=True, text=True, timeout=600)
    lines = [line for line in out.stdout.splitlines() if "records sent" in line]
    return lines[-1] if lines else out.stdout + out.stderr


def throughput(root: Path) -> None:
    bin_ = str(cl.conftest.fjord_bin())
    # The tool's default batch.size (16 KiB, as Kafka's), and 128 KiB for 1 KiB records: with
    # five requests in flight per broker, a batch per round trip bounds what acks=all can do.
    cases = [(1_000_000, 100, 1, 16384), (1_000_000, 100, 8, 16384), (200_000, 1024, 1, 16384),
             (200_000, 1024, 8, 16384), (300_000, 1024, 1, 131072), (300_000, 1024, 8, 131072)]
    single = Cluster(root / "single", controllers=1).start()
    try:
        for records, size, partitions, batch in cases:
            topic = f"one-{size}-{partitions}-{batch}"
            create(single.bootstrap, topic, partitions, 1, {})
            print(f"1 node, RF 1, acks=1, {records} x {size} B, {partitions} partition(s), batch {batch}: "
                  f"{perf(bin_, single.bootstrap, topic, records, size, '1', batch)}")
    finally:
        single.close()
    three = Cluster(root / "three", controllers=3).start()
    try:
        for records, size, partitions, batch in cases:
            topic = f"three-{size}-{partitions}-{batch}"
            create(three.bootstrap, topic, partitions, 3, {"min.insync.replicas": "2"})
            print(f"3 nodes, RF 3, acks=all, {records} x {size} B, {partitions} partition(s), batch {batch}: "
                  f"{perf(bin_, three.bootstrap, topic, records, size, 'all', batch)}")
    finally:
        three.close()


def rdkafka_rf3(root: Path, bin_: str, records: int = 1_000_000) -> float:
    """rdkafka_performance's delivered rec/s for 1 KiB acks=all records into one partition with
    RF 3 (min.insync.replicas 2) on three fresh combined nodes of `bin_`."""
    os.environ["FJORD_BIN"] = bin_
    c = Cluster(root, controllers=3).start()
    try:
        create(c.bootstrap, "t", 1, 3, {"min.insync.replicas": "2"})
        tool = Path.home() / ".cache/fjord/rdkafka_performance"
        out = subprocess.run([str(tool / "rdkafka_performance"), "-P", "-t", "t", "-b", c.bootstrap, "-s", "1024",
                              "-c", str(records), "-a", "-1", "-u", "-X", "linger.ms=5"],
                             capture_output=True, text=True, timeout=600, env=dict(os.environ, LD_LIBRARY_PATH=str(tool)))
        rows = [line for line in out.stdout.splitlines() if line.startswith("|") and "elapsed" not in line]
        cells = [x.strip() for x in rows[-1].strip("|").split("|")]
        assert int(cells[4]) == records, f"only {cells[4]} of {records} delivered"
        return float(cells[5])  # dr_m/s
    finally:
        c.close()


def rdkafka_pairs(root: Path, runs: int) -> None:
    """FJORD_BIN against FJORD_BIN_BEFORE (if set), interleaved run by run, and the dd bound."""
    bins = {"after": os.environ["FJORD_BIN"]}
    if os.environ.get("FJORD_BIN_BEFORE"):
        bins = {"before": os.environ["FJORD_BIN_BEFORE"], **bins}
    rates: dict[str, list[float]] = {k: [] for k in bins}
    for i in range(runs):
        for label, bin_ in bins.items():
            rates[label].append(rdkafka_rf3(root / f"{label}{i}", bin_))
            print(f"run {i + 1}, {label}: {rates[label][-1]:.0f} rec/s", flush=True)
    dd = []
    for _ in range(3):
        subprocess.run(["sync"])
        out = subprocess.run(["dd", "if=/dev/zero", f"of={root / 'dd.bin'}", "bs=1024", "count=1000000"],
                             capture_output=True, text=True).stderr
        line = next(x for x in out.splitlines() if "copied" in x)
        dd.append(float(line.split()[0]) / float(line.split(", ")[-2].rstrip(" s")))
        (root / "dd.bin").unlink()
    third = statistics.median(dd) / 3
    for label, xs in rates.items():
        m = statistics.median(xs)
        print(f"{label}: median {m:.0f} rec/s = {m * 1024 / third:.2f} x one third of dd "
              f"({statistics.median(dd) / 1e9:.2f} GB/s in 1 KiB blocks)")


def main() -> None:
    # Usage: measure_replication.py [RUNS] [failover | rdkafka]
    #   failover: leader failover only; rdkafka: RF 3 1 KiB produce throughput only
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(f"binary: {os.environ.get('FJORD_BIN', '(default)')}, {runs} runs")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "rdkafka" in sys.argv[2:]:
            rdkafka_pairs(root, runs)
            return
        runs_ = [leader_failover(root / f"f{i}") for i in range(runs)]
        f = [r for r, _, _ in runs_]
        e = [x for _, _, x in runs_]
        print(f"new leader in the metadata (kill -9 -> a survivor's Metadata names it): median "
              f"{1000 * statistics.median(e):.0f} ms, min {1000 * min(e):.0f}, max {1000 * max(e):.0f}")
        print(f"leader failover (kill -9 -> first ack of a record sent after it, session 9000 ms): median "
              f"{1000 * statistics.median(f):.0f} ms, min {1000 * min(f):.0f}, max {1000 * max(f):.0f}")
        for label, group in (("the leader was the active controller too", [r for r, c, _ in runs_ if c]),
                             ("the leader was not the active controller", [r for r, c, _ in runs_ if not c])):
            if group:
                print(f"  {label}: {len(group)} runs, median {1000 * statistics.median(group):.0f} ms, "
                      f"max {1000 * max(group):.0f}")
        if "failover" in sys.argv[2:]:
            return
        throughput(root / "t")
        dd = subprocess.run(["dd", "if=/dev/zero", f"of={root / 'dd.bin'}", "bs=1M", "count=1024", "conv=fdatasync"],
                            capture_output=True, text=True)
        print(f"dd write bound: {dd.stderr.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()
