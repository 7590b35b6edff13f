"""Multi-process Fjord clusters for the cluster tests: each node a `fjord server` process with
its own property file, data directory and log, on loopback ports picked at start.

    c = Cluster(tmp_path, controllers=3)              # three combined broker+controller nodes
    c = Cluster(tmp_path, controllers=3, brokers=2)   # three controllers, two brokers
    c = Cluster(tmp_path, netns=True)  # each node in its own network namespace (netns.py)
    c = Cluster(tmp_path, data_tmpfs_mb=64)  # log.dirs on a small tmpfs each, to fill (root only)
    c.start()                  # returns once every broker lists every broker
    c.bootstrap                # "127.0.0.1:p1,127.0.0.1:p2,..." (the brokers)
    c.nodes[i]                 # Node: .id .proc .stop(kill9) .start() .pause() .resume()
    c.active_controller()      # the metadata quorum's leader, from DescribeQuorum
    c.close()                  # SIGTERM every node (SIGKILL after a deadline), remove data

Nodes are stopped by process id; every wait has a deadline. Node processes die with the test
process (PR_SET_PDEATHSIG), so a crashed run leaves nothing behind.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import conftest
from netns import Net
import wire

STOP_TIMEOUT_S = 20.0

# Short sessions so fencing tests are quick; Kafka's defaults are 9000 / 2000.
FAST_SESSIONS = {
    "broker.session.timeout.ms": "4000",
    "broker.heartbeat.interval.ms": "500",
}

_live: list["Node"] = []


@atexit.register
def _kill_leftovers() -> None:
    for node in list(_live):
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()


def wait_until(what: str, check, timeout: float, interval: float = 0.1):
    """Polls `check()` until it returns something truthy; fails with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as e:  # noqa: BLE001 - a node may be down while we poll
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def metadata(address: str, topics: list[str] | None = None, timeout: float = 3.0) -> dict:
    """One Metadata v4 request to one broker: {"brokers": [(id, host, port, rack)], "topics": ...}."""
    with wire.connect(address, timeout=timeout) as s:
        return wire.metadata_v4(s, topics or [], correlation_id=1, auto_create=False)


class Node:
    def __init__(self, cluster: "Cluster", node_id: int, controller: bool, broker: bool):
        self.cluster = cluster
        self.id = node_id
        self.controller = controller
        self.broker = broker
        if cluster.net is not None:
            # Alone on its address: Kafka's usual ports.
            self.host = cluster.net.address(node_id)
            self.client_port = 9092 if broker else None
            self.controller_port = 9093 if controller else None
        else:
            self.host = "127.0.0.1"
            self.client_port = conftest.free_port() if broker else None
            self.controller_port = conftest.free_port() if controller else None
        self.dir = cluster.root / f"node-{node_id}"
        self.data_dir = self.dir / "data"
        self.props_file = self.dir / "server.properties"
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        """This node's client address (for the failure-report hook, also on controllers)."""
        port = self.client_port or self.controller_port
        return f"{self.host}:{port}"

    def write_props(self) -> None:
        roles = ",".join(r for r, on in (("broker", self.broker), ("controller", self.controller)) if on)
        listeners = []
        if self.broker:
            listeners.append(f"PLAINTEXT://{self.host}:{self.client_port}")
        if self.controller:
            listeners.append(f"CONTROLLER://{self.host}:{self.controller_port}")
        props = {
            "process.roles": roles,
            "node.id": str(self.id),
            "controller.quorum.voters": self.cluster.voters(),
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join(listeners),
            "log.dirs": str(self.data_dir),
            "num.partitions": "3",
            "offsets.topic.num.partitions": "6",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.cluster.data_tmpfs_mb:
            # The data directory fills; the metadata log stays on the ordinary disk.
            props["metadata.log.dir"] = str(self.dir / "metadata")
        if self.broker:
            props["advertised.listeners"] = f"PLAINTEXT://{self.host}:{self.client_port}"
            props["inter.broker.listener.name"] = "PLAINTEXT"
        props.update(FAST_SESSIONS)
        props.update(self.cluster.extra_props)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.props_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def start(self) -> "Node":
        assert self.proc is None or self.proc.poll() is not None, f"node {self.id} already running"
        if self.cluster.data_tmpfs_mb and not os.path.ismount(self.data_dir):
            self.data_dir.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.cluster.data_tmpfs_mb}m", "tmpfs",
                            str(self.data_dir)], check=True, capture_output=True, timeout=30)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== fjord start #{self.starts} of node {self.id}\n".encode())
            log.flush()
            prefix = self.cluster.net.prefix(self.id) if self.cluster.net is not None else []
            self.proc = subprocess.Popen(
                [*prefix, str(self.cluster.bin), "server", str(self.props_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.dir, start_new_session=True, preexec_fn=conftest._die_with_parent,
            )
        if self not in _live:
            _live.append(self)
            conftest._live_brokers.append(self)
        return self

    def stop(self, kill9: bool = False) -> int | None:
        """SIGKILL if kill9, else SIGTERM (a controlled shutdown) and SIGKILL after a deadline."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        if kill9:
            proc.send_signal(signal.SIGKILL)
            return proc.wait()
        self.resume()  # a paused process cannot act on SIGTERM
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"node {self.id} did not stop within {STOP_TIMEOUT_S:.0f}s of SIGTERM\n"
                                 f"{self.log_tail()}")

    @property
    def filler(self) -> Path:
        return self.data_dir / "disk-filler"

    def fill_disk(self) -> int:
        """Takes every free byte of this node's data file system; returns how many."""
        st = os.statvfs(self.data_dir)
        free = st.f_bavail * st.f_frsize
        fd = os.open(self.filler, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            taken = 0
            # Whole free space first, then what is left a block at a time (the file's own
            # metadata takes a little).
            for size in (free, 1 << 20, st.f_frsize):
                while True:
                    try:
                        os.posix_fallocate(fd, taken, size)
                    except OSError:
                        break
                    taken += size
            return taken
        finally:
            os.close(fd)

    def free_disk(self) -> None:
        self.filler.unlink(missing_ok=True)

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return f"--- last {min(lines, len(text))} lines of {self.log_path} ---\n" + "\n".join(text[-lines:])

    def serves(self, brokers: int) -> bool:
        """True once this broker answers Metadata listing `brokers` brokers."""
        return len(metadata(self.bootstrap)["brokers"]) == brokers


class Cluster:
    def __init__(self, root: Path, controllers: int = 3, brokers: int = 0,
                 extra_props: dict[str, str] | None = None, netns: bool = False,
                 data_tmpfs_mb: int | None = None):
        self.bin = conftest.fjord_bin()
        self.root = Path(root)
        self.extra_props = dict(extra_props or {})
        split = brokers > 0
        self.net = Net(controllers + brokers) if netns else None
        self.data_tmpfs_mb = data_tmpfs_mb
        self.nodes = [Node(self, i, controller=True, broker=not split) for i in range(1, controllers + 1)]
        self.nodes += [Node(self, controllers + i, controller=False, broker=True) for i in range(1, brokers + 1)]
        for node in self.nodes:
            node.write_props()

    def voters(self) -> str:
        return ",".join(f"{n.id}@{n.host}:{n.controller_port}" for n in self.nodes if n.controller)

    @property
    def brokers(self) -> list[Node]:
        return [n for n in self.nodes if n.broker]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.brokers if n.alive()) or self.brokers[0].bootstrap

    def node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def start(self, timeout: float = 60.0) -> "Cluster":
        for node in self.nodes:
            node.start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0, brokers: list[Node] | None = None) -> None:
        """Waits until every live broker lists every expected broker."""
        expected = brokers if brokers is not None else [b for b in self.brokers if b.alive()]
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is not None and node in expected:
                pytest.fail(f"node {node.id} exited with {node.proc.returncode}\n{node.log_tail()}",
                            pytrace=False)
        for b in expected:
            wait_until(f"broker {b.id} to list {len(expected)} brokers", lambda b=b: b.serves(len(expected)),
                       timeout)

    def fjord(self, *args: str, bootstrap: str | None = None, check: bool = True,
              timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs a `fjord` tool against the cluster."""
        cmd = [str(self.bin), *args, "--bootstrap-server", bootstrap or self.bootstrap]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def quorum_status(self, bootstrap: str | None = None) -> dict[str, str]:
        out = self.fjord("quorum", "describe", "--status", bootstrap=bootstrap, timeout=20).stdout
        return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}

    def active_controller(self, bootstrap: str | None = None) -> int:
        return int(self.quorum_status(bootstrap)["LeaderId"])

    def describe(self, bootstrap: str | None = None) -> dict[int, dict]:
        """`fjord cluster describe` as {broker id: {endpoint, epoch, fenced}}."""
        out = self.fjord("cluster", "describe", bootstrap=bootstrap, timeout=20).stdout
        rows = {}
        for line in out.splitlines():
            cells = line.split()
            if cells and cells[0].isdigit():
                rows[int(cells[0])] = {"endpoint": cells[1], "rack": cells[2], "epoch": int(cells[3]),
                                       "fenced": cells[4] == "true"}
        return rows

    def leaders(self, address: str, topic: str) -> dict[int, int]:
        """{partition: leader} of `topic` as broker `address` sees it."""
        err, parts = metadata(address, [topic])["topics"][topic]
        return {p: leader for p, (_perr, leader) in parts.items()}

    def close(self, keep_data: bool = False) -> None:
        errors = []
        # Brokers first: a broker's controlled shutdown needs the controllers to answer.
        for node in sorted(self.nodes, key=lambda n: n.controller):
            try:
                node.stop()
            except AssertionError as e:
                errors.append(str(e))
            if node in _live:
                _live.remove(node)
            if node in conftest._live_brokers:
                conftest._live_brokers.remove(node)
        if self.net is not None:
            self.net.close()
        for node in self.nodes:
            if os.path.ismount(node.data_dir):
                subprocess.run(["umount", "-l", str(node.data_dir)], capture_output=True, timeout=30)
        if not keep_data and not os.environ.get("FJORD_KEEP_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
