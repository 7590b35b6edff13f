"""Fault injection against a real cluster of `fjord server` processes, with real clients, checked
by `jepsen_checker.py`. `cargo xtask jepsen` runs it; so does `test_jepsen.py`, briefly.

One run: a cluster (`cluster.py`, sessions of 4 s) of three combined nodes, or of three
controllers and three brokers (`--layout`; `mixed` alternates them run by run), each node in
its own network namespace (`netns.py`), a topic of three partitions with RF 3 and
min.insync.replicas=2, and for `--time` seconds:

- workload: an idempotent acks=all producer on librdkafka and one on kafka-python (distinct
  values); assign-mode readers of every partition on librdkafka and on kafka-python; a consumer
  group member that commits as it goes; a poller of the group's committed offsets;
- nemesis, one fault at a time from a seeded schedule: kill -9 and restart of a partition
  leader, of the active controller or of a random node; SIGSTOP shorter and longer than the
  session, then SIGCONT; a controlled shutdown (SIGTERM) and restart; a rolling restart; a
  partition leader cut from the other brokers (clients still reach it); the active controller
  cut from the other controllers (a minority of one against a majority); packets lost one way
  between two nodes; a node cut from everyone, clients included. Each cut heals after 3-8 s;
  a full data disk on one broker (its log.dirs is a tmpfs of its own, the metadata log is
  elsewhere), freed after 3-6 s.

Then every fault heals, the run waits (bounded) for every partition to have a leader and a full
ISR, the producers flush, and each partition is read whole. The history (JSON lines) and the
nodes' logs stay under the results directory; the checker's verdict and figures are printed as
a table row.

    python jepsen_harness.py [--runs N] [--seed S] [--time SECONDS] [--nemesis NAME,...]
                             [--layout combined|split|mixed] [--network netns|loopback] [--results DIR]

"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import random
import shutil
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import cluster as cl  # noqa: E402
import netns  # noqa: E402
from fjordtest import RDKAFKA_LOG  # noqa: E402
from jepsen_checker import check  # noqa: E402

TOPIC = "jepsen"
PARTITIONS = 3
GROUP = "jepsen-group"
PROCESS_NEMESES = ["kill-leader", "kill-controller", "kill-random", "pause-short", "pause-long", "restart", "rolling"]
NETWORK_NEMESES = ["partition-leader", "partition-controller", "partition-oneway", "isolate"]
# Needs root, as the namespaces do: each node's data directory is a tmpfs of its own.
DISK_NEMESES = ["disk-full"]
NEMESES = PROCESS_NEMESES + NETWORK_NEMESES + DISK_NEMESES
PRIVILEGED_NEMESES = NETWORK_NEMESES + DISK_NEMESES
DATA_TMPFS_MB = 256
LAYOUTS = ["combined", "split", "mixed"]
RECOVERY_LIMIT_S = 60.0


class History:
    """The events of one run, with times in seconds since it began."""

    def __init__(self):
        self.start = time.monotonic()
        self.events: list[tuple] = []
        self.lock = threading.Lock()

    def now(self) -> float:
        return round(time.monotonic() - self.start, 4)

    def add(self, *event):
        with self.lock:
            self.events.append(event)


def _producers(bootstrap: str, history: History):
    from test_replication import KafkaPythonBackgroundProducer
    from test_restart import BackgroundProducer

    class Rdkafka(BackgroundProducer):
        def on_delivery(self, err, msg):
            super().on_delivery(err, msg)
            if err is None:
                history.add("ack", history.now(), msg.partition(), msg.offset(), msg.value())

    class KafkaPython(KafkaPythonBackgroundProducer):
        def collect(self, pending):
            seen = len(self.acked)
            super().collect(pending)
            t = history.now()
            for partition, offset, value in self.acked[seen:]:
                history.add("ack", t, partition, offset, value)

    a, b = Rdkafka(bootstrap, TOPIC), KafkaPython(bootstrap, TOPIC)
    a.prefix, b.prefix = b"c", b"k"
    return [a, b]


class Reader(threading.Thread):
    """Reads every partition (assign mode) or as a group member, recording each record."""

    def __init__(self, bootstrap: str, history: History, name: str, group: bool):
        super().__init__(daemon=True)
        self.history, self.name, self.group = history, name, group
        conf = {"bootstrap.servers": bootstrap, "group.id": GROUP if group else f"{name}-unused",
                "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000, "fetch.wait.max.ms": 100}
        self.consumer = Consumer(conf)
        self.stop_flag = threading.Event()
        self.exc = None

    def run(self):
        try:
            if self.group:
                self.consumer.subscribe([TOPIC])
            else:
                self.consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
            last_commit = time.monotonic()
            while not self.stop_flag.is_set():
                for msg in self.consumer.consume(500, timeout=0.2):
                    if msg.error() is None:
                        self.history.add("read", self.history.now(), self.name, msg.partition(), msg.offset(),
                                         msg.value())
                if self.group and time.monotonic() - last_commit > 0.2:
                    last_commit = time.monotonic()
                    try:
                        self.consumer.commit(asynchronous=False)
                    except Exception:  # nothing to commit yet, or a rebalance: try again later
                        pass
        except Exception as e:  # surfaced in the run's verdict
            self.exc = e
        finally:
            self.consumer.close()


class KafkaPythonReader(threading.Thread):
    """kafka-python's consumer, assigned every partition from the beginning, recording each record."""

    def __init__(self, bootstrap: str, history: History, name: str):
        super().__init__(daemon=True)
        self.history, self.name, self.bootstrap = history, name, bootstrap
        self.stop_flag = threading.Event()
        self.exc = None

    def run(self):
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KTopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","), enable_auto_commit=False,
                                 auto_offset_reset="earliest", fetch_max_wait_ms=100, request_timeout_ms=10000)
        try:
            tps = [KTopicPartition(TOPIC, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            while not self.stop_flag.is_set():
                for tp, msgs in consumer.poll(timeout_ms=200, max_records=500).items():
                    t = self.history.now()
                    for m in msgs:
                        self.history.add("read", t, self.name, tp.partition, m.offset, m.value)
        except Exception as e:  # surfaced in the run's verdict
            self.exc = e
        finally:
            consumer.close()


class CommitPoller(threading.Thread):
    """Records the group's committed offsets as OffsetFetch answers them, twice a second.
    kafka-python's admin client, not librdkafka's: librdkafka 2.x dereferences a consumer group
    an admin client does not have when an OffsetFetch answer says NOT_COORDINATOR, which it
    does while a coordinator moves, as Kafka's does (a segfault in rd_kafka_cgrp_op)."""

    def __init__(self, bootstrap: str, history: History):
        super().__init__(daemon=True)
        self.history = history
        self.bootstrap = bootstrap
        self.stop_flag = threading.Event()
        self.exc = None

    def run(self):
        from kafka import KafkaAdminClient
        from kafka import TopicPartition as KTopicPartition

        admin = None
        try:
            while not self.stop_flag.wait(0.5):
                try:
                    if admin is None:
                        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
                    tps = [KTopicPartition(TOPIC, p) for p in range(PARTITIONS)]
                    offsets = admin.list_group_offsets({GROUP: tps})[GROUP]
                except Exception:  # a coordinator moving, a node down: the next poll answers
                    continue
                t = self.history.now()
                for tp, meta in offsets.items():
                    if meta is not None and meta.offset >= 0:
                        self.history.add("commit", t, GROUP, tp.partition, meta.offset)
        finally:
            if admin is not None:
                admin.close()


def partition_state(bootstrap: str) -> dict[int, tuple[int, list[int]]]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(TOPIC, timeout=5)
    t = md.topics.get(TOPIC)
    if t is None or t.error is not None:
        return {}
    return {p: (pm.leader, sorted(pm.isrs)) for p, pm in t.partitions.items()}


class Nemesis:
    """Applies one fault at a time, from a seeded schedule, and heals it."""

    def __init__(self, c: cl.Cluster, rng: random.Random, history: History, names: list[str]):
        self.c, self.rng, self.history, self.names = c, rng, history, names
        self.applied: list[str] = []
        self.isolated: set[int] = set()

    def live_bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.c.brokers if n.alive() and not getattr(n, "paused", False)
                        and n.id not in self.isolated) or self.c.bootstrap

    def leader_of_some_partition(self) -> cl.Node:
        state = cl.wait_until("the partitions' state", lambda: partition_state(self.live_bootstrap()), 30)
        leaders = [leader for leader, _ in state.values() if leader >= 0]
        return self.c.node(self.rng.choice(leaders)) if leaders else self.rng.choice(self.c.brokers)

    def active_controller(self) -> cl.Node:
        return self.c.node(cl.wait_until("the active controller",
                                         lambda: self.c.active_controller(self.live_bootstrap().split(",")[0]), 30))

    def hold_cut(self):
        """Keeps the network fault for a while, then heals every link."""
        time.sleep(self.rng.uniform(3.0, 8.0))
        self.c.net.heal()
        self.isolated.clear()

    def wait_healthy(self, timeout: float = RECOVERY_LIMIT_S) -> float:
        """Seconds until every partition has a leader and a full ISR."""
        started = time.monotonic()

        def full():
            state = partition_state(self.live_bootstrap())
            return len(state) == PARTITIONS and all(leader >= 0 and len(isr) == len(self.c.brokers)
                                                    for leader, isr in state.values())
        cl.wait_until("every partition led with a full ISR", full, timeout, interval=0.2)
        return time.monotonic() - started

    def kill(self, node: cl.Node, down: float):
        node.stop(kill9=True)
        time.sleep(down)
        node.start()

    def pause(self, node: cl.Node, seconds: float):
        node.paused = True
        node.pause()
        time.sleep(seconds)
        node.resume()
        node.paused = False

    def one(self, name: str):
        start = self.history.now()
        if name == "kill-leader":
            self.kill(self.leader_of_some_partition(), self.rng.uniform(1, 4))
        elif name == "kill-controller":
            self.kill(self.active_controller(), self.rng.uniform(1, 4))
        elif name == "kill-random":
            self.kill(self.rng.choice(self.c.nodes), self.rng.uniform(1, 4))
        elif name == "pause-short":
            self.pause(self.rng.choice(self.c.nodes), self.rng.uniform(0.5, 2.0))
        elif name == "pause-long":
            self.pause(self.rng.choice(self.c.nodes), self.rng.uniform(5.0, 7.0))
        elif name == "restart":
            node = self.rng.choice(self.c.nodes)
            node.stop()
            node.start()
        elif name == "rolling":
            for node in self.c.nodes:
                node.stop()
                node.start()
                self.c.wait_ready(timeout=60)
                self.wait_healthy()
        elif name == "partition-leader":
            leader = self.leader_of_some_partition()
            for other in self.c.brokers:
                if other is not leader:
                    self.c.net.cut(leader.id, other.id)
            self.hold_cut()
        elif name == "partition-controller":
            active = self.active_controller()
            for other in self.c.nodes:
                if other.controller and other is not active:
                    self.c.net.cut(active.id, other.id)
            self.hold_cut()
        elif name == "partition-oneway":
            a, b = self.rng.sample(self.c.nodes, 2)
            self.c.net.drop(a.id, b.id)
            self.hold_cut()
        elif name == "isolate":
            node = self.rng.choice(self.c.nodes)
            self.isolated.add(node.id)
            self.c.net.isolate(node.id)
            self.hold_cut()
        elif name == "disk-full":
            node = self.rng.choice(self.c.brokers)
            node.fill_disk()
            time.sleep(self.rng.uniform(3.0, 6.0))
            node.free_disk()
        else:
            raise ValueError(f"unknown nemesis {name}")
        self.history.add("fault", start, self.history.now(), name)
        self.applied.append(name)
        print(f"  {start:7.2f}-{self.history.now():7.2f} s: {name}", flush=True)

    def heal(self):
        for node in self.c.nodes:
            if self.c.data_tmpfs_mb:
                node.free_disk()
        if self.c.net is not None:
            self.c.net.heal()
            self.isolated.clear()
        for node in self.c.nodes:
            if getattr(node, "paused", False):
                node.resume()
                node.paused = False
            if not node.alive():
                node.start()


def final_read(bootstrap: str, history: History, timeout: float = 90.0):
    """Every partition from its start to its high watermark, as the final word on the log."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "jepsen-final", "enable.auto.commit": False,
                         "logger": RDKAFKA_LOG})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in range(PARTITIONS)}
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        records: dict[int, list] = {p: [] for p in range(PARTITIONS)}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
                (records[p][-1][0] if records[p] else -1) < ends[p] - 1 for p in range(PARTITIONS)):
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error() is None:
                    records[msg.partition()].append((msg.offset(), msg.value()))
        short = {p: (len(records[p]), ends[p]) for p in range(PARTITIONS)
                 if (records[p][-1][0] if records[p] else -1) < ends[p] - 1}
        if short:
            raise RuntimeError(f"the final read did not reach the high watermarks: {short}")
        for p in range(PARTITIONS):
            history.add("final", p, records[p])
    finally:
        consumer.close()


def run_once(root: Path, seed: int, seconds: float, names: list[str], results: Path, layout: str = "combined",
             net: bool = True) -> dict:
    rng = random.Random(seed)
    shutil.rmtree(root, ignore_errors=True)
    c = cl.Cluster(root, controllers=3, brokers=3 if layout == "split" else 0, netns=net,
                   data_tmpfs_mb=DATA_TMPFS_MB if net else None).start()
    row = {"seed": seed, "layout": layout, "faults": [], "verdict": "error"}
    history = History()
    threads: list = []
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        fs = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})],
                                 operation_timeout=15)
        fs[TOPIC].result(timeout=30)
        nemesis = Nemesis(c, rng, history, names)
        nemesis.wait_healthy()
        history.start = time.monotonic()
        producers = _producers(c.bootstrap, history)
        readers = [Reader(c.bootstrap, history, "assign-0", group=False),
                   Reader(c.bootstrap, history, "group-0", group=True),
                   KafkaPythonReader(c.bootstrap, history, "kp-assign-0")]
        poller = CommitPoller(c.bootstrap, history)
        threads = [*producers, *readers, poller]
        for t in threads:
            t.start()
        deadline = time.monotonic() + seconds
        time.sleep(min(2.0, seconds / 4))
        while time.monotonic() < deadline:
            nemesis.one(rng.choice(names))
            time.sleep(rng.uniform(1.0, 3.0))
        healed = time.monotonic()
        nemesis.heal()
        c.wait_ready(timeout=60)
        nemesis.wait_healthy()
        recovery = time.monotonic() - healed
        time.sleep(1.0)  # some writes after the last heal
        for t in producers:
            t.stop_flag.set()
        for t in producers:
            t.join(90)
        for t in [*readers, poller]:
            t.stop_flag.set()
            t.join(30)
        final_read(c.bootstrap, history)
        verdict = check(history.events)
        errors = [f"{type(t).__name__}: {t.exc!r}" for t in threads if getattr(t, "exc", None)]
        row.update({
            "faults": nemesis.applied,
            "ops": sum(1 for e in history.events if e[0] in ("ack", "read")),
            "acknowledged": verdict.acknowledged,
            "lost": len(verdict.lost), "duplicated": len(verdict.duplicated), "moved": len(verdict.moved),
            "stale": len(verdict.stale) + len(verdict.skipped) + len(verdict.inconsistent),
            "rewound": len(verdict.rewound),
            "unavailable_s": round(sum(s for _, s in verdict.unavailable), 2),
            "worst_unavailable": max(verdict.unavailable, key=lambda u: u[1], default=("-", 0)),
            "unavailable_by_fault": verdict.unavailable,
            "recovery_s": round(recovery, 2),
            "problems": verdict.problems() + errors,
            "verdict": "valid" if verdict.valid and not errors else "INVALID",
        })
    except Exception as e:
        row["problems"] = [f"{type(e).__name__}: {e}"]
        raise
    finally:
        for t in threads:
            if hasattr(t, "stop_flag"):
                t.stop_flag.set()
        results.mkdir(parents=True, exist_ok=True)
        with gzip.open(results / f"history-{seed}.jsonl.gz", "wt") as out:
            for e in history.events:
                out.write(json.dumps(_jsonable(e)) + "\n")
        for node in c.nodes:
            node.resume()
        c.close(keep_data=True)
        for node in c.nodes:
            if node.log_path.exists():
                shutil.copy(node.log_path, results / f"seed-{seed}-node-{node.id}.log")
        shutil.rmtree(root, ignore_errors=True)
        (results / f"verdict-{seed}.json").write_text(json.dumps(row, indent=1, default=str))
    return row


def _jsonable(x):
    if isinstance(x, bytes):
        return x.decode()
    if isinstance(x, (list, tuple)):
        return [_jsonable(y) for y in x]
    return x


def load_history(path: Path) -> list[tuple]:
    """A history file back as events (values as text; the checker only compares them)."""
    def value(x):
        # Files written before values nested in "final" events were decoded hold their repr.
        if isinstance(x, str) and x.startswith("b'") and x.endswith("'"):
            return ast.literal_eval(x).decode()
        if isinstance(x, list):
            return [value(y) for y in x]
        return x
    with gzip.open(path, "rt") as f:
        return [tuple(value(x) for x in json.loads(line)) for line in f]


def fault_summary(unavailable: list[tuple[str, float]]) -> str:
    """Per fault type: how often it was applied and how long writes stopped (the longest stretch
    without an acknowledgement overlapping each application)."""
    by: dict[str, list[float]] = {}
    for name, seconds in unavailable:
        by.setdefault(name, []).append(seconds)
    lines = ["| fault | applied | unavailable s: median | p90 | max |", "|---|---|---|---|---|"]
    for name in sorted(by, key=lambda n: NEMESES.index(n) if n in NEMESES else len(NEMESES)):
        xs = sorted(by[name])
        lines.append(f"| {name} | {len(xs)} | {statistics.median(xs):.2f} | "
                     f"{xs[min(len(xs) - 1, int(len(xs) * 0.9))]:.2f} | {xs[-1]:.2f} |")
    return "\n".join(lines)


def summarize(results: Path) -> str:
    """Re-checks every history under `results` and sums up the faults."""
    unavailable, runs, acked = [], 0, 0
    for path in sorted(results.glob("history-*.jsonl.gz")):
        verdict = check(load_history(path))
        runs += 1
        acked += verdict.acknowledged
        unavailable += verdict.unavailable
        if not verdict.valid:
            print(f"{path.name}: INVALID: {verdict.problems()}")
    return f"{runs} histories, {acked} acknowledged writes, {len(unavailable)} faults\n\n" + fault_summary(unavailable)


def table(rows: list[dict]) -> str:
    header = ("| run | seed | layout | faults | ops | acknowledged | lost | duplicated | moved | stale reads | "
              "unavailable s (worst fault) | recovery s | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    for i, r in enumerate(rows, 1):
        worst = r.get("worst_unavailable", ("-", 0))
        lines.append(f"| {i} | {r['seed']} | {r.get('layout', '-')} | {','.join(r.get('faults', []))} | "
                     f"{r.get('ops', '-')} | "
                     f"{r.get('acknowledged', '-')} | {r.get('lost', '-')} | {r.get('duplicated', '-')} | "
                     f"{r.get('moved', '-')} | {r.get('stale', '-')} | {r.get('unavailable_s', '-')} "
                     f"({worst[0]} {worst[1]}) | {r.get('recovery_s', '-')} | {r['verdict']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=None, help="first seed (default: from the clock)")
    ap.add_argument("--time", type=float, default=30.0, help="seconds of faults per run")
    ap.add_argument("--nemesis", default=",".join(NEMESES), help=f"comma-separated, from {','.join(NEMESES)}")
    ap.add_argument("--layout", choices=LAYOUTS, default="mixed",
                    help="three combined nodes, three controllers and three brokers, or both in turn")
    ap.add_argument("--network", choices=["netns", "loopback"], default="netns",
                    help="a namespace per node (needed by the partition nemeses), or plain loopback")
    ap.add_argument("--results", type=Path, default=Path("target/jepsen"))
    ap.add_argument("--summarize", type=Path, metavar="DIR",
                    help="only re-check the histories in DIR and print the per-fault summary")
    args = ap.parse_args(argv)
    if args.summarize is not None:
        print(summarize(args.summarize))
        return 0
    names = [n.strip() for n in args.nemesis.split(",") if n.strip()]
    unknown = [n for n in names if n not in NEMESES]
    if unknown:
        ap.error(f"unknown nemesis {unknown}: choose from {NEMESES}")
    if args.network == "netns":
        why = netns.available()
        if why is not None:
            ap.error(f"network namespaces are not available here ({why}); "
                     f"--network loopback runs without the partition nemeses")
    elif any(n in PRIVILEGED_NEMESES for n in names):
        names = [n for n in names if n not in PRIVILEGED_NEMESES]
        print(f"--network loopback: without {','.join(PRIVILEGED_NEMESES)}", flush=True)
        if not names:
            ap.error("no nemesis left to run on loopback")
    first = args.seed if args.seed is not None else int(time.time()) % 100_000
    rows = []
    scratch = args.results / "scratch"
    for i in range(args.runs):
        seed = first + i
        layout = args.layout if args.layout != "mixed" else ("combined", "split")[i % 2]
        print(f"run {i + 1}/{args.runs}, seed {seed}, {layout}, {args.time:.0f} s of {','.join(names)}", flush=True)
        try:
            rows.append(run_once(scratch / f"run-{seed}", seed, args.time, names, args.results, layout,
                                 net=args.network == "netns"))
        except Exception as e:
            traceback.print_exc()
            rows.append({"seed": seed, "layout": layout, "verdict": "ERROR", "problems": [repr(e)]})
        finally:
            shutil.rmtree(scratch / f"run-{seed}", ignore_errors=True)
        r = rows[-1]
        if r["verdict"] != "valid":
            print(f"  seed {seed}: {r['verdict']}: {r.get('problems')}", flush=True)
    faults = fault_summary([u for r in rows for u in r.get("unavailable_by_fault", [])])
    print(table(rows))
    print(faults)
    (args.results / "table.md").write_text(table(rows) + "\n\n" + faults + "\n")
    failed = [r["seed"] for r in rows if r["verdict"] != "valid"]
    if failed:
        print(f"failed seeds (replay with --seed S --runs 1): {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
