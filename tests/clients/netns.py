"""A private network for a multi-process cluster: one network namespace per node, joined by a
bridge in the host's namespace, so that faults can cut links between chosen nodes, or between
a node and the clients, from outside the processes.

    net = Net(3)                     # namespaces for nodes 1..3 on 198.18.N.0/24
    net.address(1)                   # "198.18.N.1": node 1's only address
    net.prefix(1)                    # ["ip", "netns", "exec", ns]: run a command inside node 1
    net.cut(1, 2)                    # node 1 and node 2 no longer reach each other
    net.drop(1, 2)                   # packets from node 1 to node 2 vanish (one way)
    net.isolate(3)                   # node 3 reaches nobody and nobody reaches it, clients included
    net.heal()                       # every link back
    net.close()                      # namespaces and bridge removed

Clients run in the host's namespace and reach the nodes through the bridge (host address
198.18.N.254), so a cut between nodes leaves clients connected. Cuts are iptables DROP rules
inside the namespaces: packets vanish, as on a real network, and connections time out rather
than fail at once. 198.18.0.0/15 is the range set aside for benchmarking networks (RFC 2544),
so it does not collide with the machine's own. Needs root (CAP_NET_ADMIN), iproute2 and
iptables; `available()` says whether this machine has them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess

_open: list["Net"] = []


@atexit.register
def _close_leftovers() -> None:
    for net in list(_open):
        net.close()


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def available() -> str | None:
    """None when namespaces and iptables work here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (tests/clients/install.sh installs iptables)"
    probe = f"fjordprobe{os.getpid()}"
    try:
        _run("ip", "netns", "add", probe)
        _run("ip", "netns", "exec", probe, "iptables", "-A", "OUTPUT", "-d", "198.18.0.1", "-j", "DROP")
    except RuntimeError as e:
        return str(e)
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


def _subnets_in_use() -> set[int]:
    out = _run("ip", "-o", "-4", "addr", "show").stdout
    used = set()
    for word in out.split():
        if word.startswith("198.18."):
            used.add(int(word.split(".")[2]))
    return used


class Net:
    HOST = 254

    def __init__(self, nodes: int):
        used = _subnets_in_use()
        start = os.getpid() % 250
        self.n = next(((start + i) % 250 for i in range(250) if (start + i) % 250 not in used), None)
        if self.n is None:
            raise RuntimeError("no free 198.18.N.0/24 subnet")
        self.nodes = list(range(1, nodes + 1))
        self.bridge = f"fjb{self.n}"
        # A namespace left by a run that crashed before its cleanup holds no bridge address, so
        # its subnet counts as free: remove what it left.
        for ns in _run("ip", "netns", "list").stdout.split("\n"):
            name = ns.split(" ")[0]
            if name.startswith(f"fjord{self.n}n"):
                _run("ip", "netns", "del", name, check=False)
        _run("ip", "link", "del", self.bridge, check=False)
        _open.append(self)
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.host}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for k in self.nodes:
            ns, outside = self.ns(k), f"fjv{self.n}n{k}"
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "add", outside, "type", "veth", "peer", "name", f"fjp{self.n}n{k}")
            _run("ip", "link", "set", f"fjp{self.n}n{k}", "netns", ns)
            _run("ip", "-n", ns, "link", "set", f"fjp{self.n}n{k}", "name", "eth0")
            _run("ip", "-n", ns, "addr", "add", f"{self.address(k)}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "link", "set", outside, "master", self.bridge)
            _run("ip", "link", "set", outside, "up")
        self.rules: list[str] = []

    @property
    def host(self) -> str:
        """The clients' address on the bridge."""
        return f"198.18.{self.n}.{self.HOST}"

    def ns(self, k: int) -> str:
        return f"fjord{self.n}n{k}"

    def address(self, k: int) -> str:
        return f"198.18.{self.n}.{k}"

    def prefix(self, k: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns(k)]

    def _iptables(self, k: int, *rule: str) -> None:
        _run("ip", "netns", "exec", self.ns(k), "iptables", "-w", *rule)

    def drop(self, src: int, dst: int) -> None:
        """Packets from node `src` to node `dst` (or to the clients, `dst=HOST`) vanish."""
        self._iptables(src, "-A", "OUTPUT", "-d", self.address(dst), "-j", "DROP")
        self.rules.append(f"{src}->{dst}")

    def cut(self, a: int, b: int) -> None:
        """Nodes `a` and `b` no longer reach each other, either way."""
        self.drop(a, b)
        self.drop(b, a)

    def isolate(self, k: int) -> None:
        """Node `k` reaches nobody, and nobody (clients included) reaches it."""
        self._iptables(k, "-A", "OUTPUT", "!", "-o", "lo", "-j", "DROP")
        self._iptables(k, "-A", "INPUT", "!", "-i", "lo", "-j", "DROP")
        self.rules.append(f"{k} isolated")

    def heal(self) -> None:
        for k in self.nodes:
            self._iptables(k, "-F")
        self.rules.clear()

    def close(self) -> None:
        if self not in _open:
            return
        _open.remove(self)
        for k in self.nodes:
            _run("ip", "netns", "del", self.ns(k), check=False)
        _run("ip", "link", "del", self.bridge, check=False)
