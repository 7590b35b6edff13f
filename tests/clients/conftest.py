"""Fixtures for the real-client compatibility suite: a fresh `fjord server` on a free loopback port.

`broker` (one per test module) and `fresh_broker` (one per test) yield a `Broker`:

    broker.bootstrap        "127.0.0.1:<port>"
    broker.proc             the subprocess.Popen of the running server
    broker.data_dir         its log.dirs (a pathlib.Path, kept across restarts)
    broker.restart(kill9=False)   stop (SIGTERM, or SIGKILL when kill9) and start again on the
                                  same port and data dir; returns when it serves again

It also unpacks as a tuple: `bootstrap, proc, data_dir, restart = broker`.

The binary is $FJORD_BIN (default <repo>/target/debug/fjord). If it is missing, every test that
needs a broker FAILS (never skips): a suite that silently skips would hide a broken build.
Tests that need other properties use the `make_broker` factory fixture.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import random
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from wire import api_versions_v0_request, recv_frame

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "target" / "debug" / "fjord"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

_live_brokers: list["Broker"] = []
_failed: set[str] = set()  # node ids and module names with a failed setup or call


def fjord_bin() -> Path:
    path = Path(os.environ.get("FJORD_BIN", str(DEFAULT_BIN)))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"fjord broker binary not found or not executable: {path}\n"
            "Build it first (`cargo build -p fjord`) or point FJORD_BIN at it. "
            "The client compatibility suite fails rather than skips without a broker.",
            pytrace=False,
        )
    return path


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies (no orphaned brokers)."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@atexit.register
def _kill_leftover_brokers() -> None:
    for b in list(_live_brokers):
        if b.proc is not None and b.proc.poll() is None:
            b.proc.kill()


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range, never handed out before in this
    run: a port the kernel picked for us (bind to 0) can be taken by an outgoing connection's
    source port between this check and the server's bind."""
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20000, max(low, 20001))
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def probe_api_versions(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if the port answers an ApiVersions v0 request with error code 0."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(api_versions_v0_request(7))
            frame = recv_frame(s)
    except OSError:
        return False
    if len(frame) < 6:
        return False
    corr, err = struct.unpack(">ih", frame[:6])
    return corr == 7 and err == 0


class Broker:
    def __init__(self, data_dir: Path, port: int | None = None, num_partitions: int = 1,
                 extra_props: dict[str, str] | None = None):
        self.bin = fjord_bin()
        self.port = port or free_port()
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir = self.data_dir.parent
        self.props_file = self.work_dir / "server.properties"
        self.log_path = self.work_dir / "broker.log"
        self.num_partitions = num_partitions
        self.extra_props = dict(extra_props or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.unclean_stops = 0
        self.last_exit: int | None = None
        self._write_props()

    # -- tuple-style access: bootstrap, proc, data_dir, restart = broker
    def __iter__(self):
        return iter((self.bootstrap, self.proc, self.data_dir, self.restart))

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_props(self) -> None:
        props = {
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.num_partitions),
            "auto.create.topics.enable": "true",
        }
        props.update(self.extra_props)
        self.props_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def start(self) -> "Broker":
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== fjord start #{self.starts}: {self.bin} server {self.props_file}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [str(self.bin), "server", str(self.props_file)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.work_dir, start_new_session=True, preexec_fn=_die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"fjord exited with status {self.proc.returncode} during startup.\n"
                            f"{self.log_tail()}", pytrace=False)
            if probe_api_versions(self.host, self.port, timeout=1.0):
                return self
            time.sleep(0.05)
        self.stop(kill9=True)
        pytest.fail(f"fjord did not answer ApiVersions on {self.bootstrap} within "
                    f"{START_TIMEOUT_S:.0f}s.\n{self.log_tail()}", pytrace=False)

    def stop(self, kill9: bool = False) -> int | None:
        """Stop the broker: SIGKILL if kill9, else SIGTERM then SIGKILL after 10 s. Returns the exit status."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        if kill9:
            proc.send_signal(signal.SIGKILL)
            return proc.wait()
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.unclean_stops += 1
            return proc.returncode

    def restart(self, kill9: bool = False) -> "Broker":
        """Stop (SIGTERM, or SIGKILL if kill9) and start again on the same port and data dir.
        The stopped process's exit status is kept in `last_exit` (Popen style: -9 for SIGKILL)."""
        self.last_exit = self.stop(kill9=kill9)
        return self.start()

    def rss_kib(self) -> int:
        """Resident memory of the broker process, in KiB (Linux /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no broker log)"
        return f"--- last {min(lines, len(text))} lines of {self.log_path} ---\n" + "\n".join(text[-lines:])


def _start_broker(tmp_root: Path, **kwargs) -> Broker:
    broker = Broker(tmp_root / "data", **kwargs)
    _live_brokers.append(broker)
    try:
        return broker.start()
    except BaseException:
        _live_brokers.remove(broker)
        raise


def _finish_broker(broker: Broker, keep_data: bool = True) -> None:
    """Stop the broker. Its data dir is removed unless keep_data (a failure to look into) or
    FJORD_KEEP_DATA is set: the codec tests alone write ~400 MB and pytest keeps 3 runs."""
    try:
        status = broker.stop()
        if broker.unclean_stops:
            pytest.fail(f"fjord did not exit within {STOP_TIMEOUT_S:.0f}s of SIGTERM; "
                        f"it was killed.\n{broker.log_tail()}", pytrace=False)
        # A clean shutdown on SIGTERM exits 0 (or by the signal if it does not handle it).
        if status not in (0, -signal.SIGTERM, None):
            print(f"note: fjord exited with status {status} on SIGTERM\n{broker.log_tail(20)}")
    finally:
        if broker in _live_brokers:
            _live_brokers.remove(broker)
        if not keep_data and not os.environ.get("FJORD_KEEP_DATA") and not broker.alive():
            shutil.rmtree(broker.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def broker(tmp_path_factory, request):
    """One broker per test module (3 partitions by default for auto-created topics).

    A module can set `BROKER_PROPS = {...}` to add server properties."""
    extra = getattr(request.module, "BROKER_PROPS", None)
    b = _start_broker(tmp_path_factory.mktemp("fjord"), num_partitions=3, extra_props=extra)
    yield b
    _finish_broker(b, keep_data=request.module.__name__ in _failed)


@pytest.fixture
def fresh_broker(tmp_path, request):
    """A broker of its own for one test (for restarts and fault injection)."""
    b = _start_broker(tmp_path, num_partitions=3)
    yield b
    _finish_broker(b, keep_data=request.node.nodeid in _failed)


@pytest.fixture
def make_broker(tmp_path, request):
    """Factory: make_broker(num_partitions=1, extra_props={...}) -> started Broker, stopped at teardown."""
    made: list[Broker] = []

    def make(**kwargs) -> Broker:
        b = _start_broker(tmp_path / f"b{len(made)}", **kwargs)
        made.append(b)
        return b

    yield make
    for b in made:
        _finish_broker(b, keep_data=request.node.nodeid in _failed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of each live broker's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        _failed.add(item.nodeid)
        _failed.add(item.module.__name__)
        for b in _live_brokers:
            report.sections.append((f"fjord broker log ({b.bootstrap})", b.log_tail(40)))


def pytest_report_header(config):
    path = Path(os.environ.get("FJORD_BIN", str(DEFAULT_BIN)))
    return f"fjord binary: {path} ({'present' if path.is_file() else 'MISSING'})"

