"""Shared harness for the multi-process tests that start real nodes on 127.0.0.1.

Used by tests/client, tests/workflow and tests/vault (their conftests keep
only what is specific to them): free ports, starting `python -m node run
--config DIR/NAME/node.toml --log-format text` with its output in a log file,
the tail of a log, polling a node's `/v1/status`, a bounded wait, stopping a
process by the PID this harness started, and `DevConsortium`, four nodes made
with `create_consortium` and the development identities and fee that
`notarychain-node up` makes.

How it is imported: `pyproject.toml` puts `tests/support` (this module's
folder, and nothing else) on `sys.path` through pytest's own `pythonpath`
setting, and the conftests `import harness`. With `--import-mode=importlib`
test directories are not packages and cannot import each other by name;
loading a file by path works but needs a chosen module name and a
`sys.modules` entry to share one copy. A plain module on `sys.path` is
imported once, under one name, by the ordinary import system (`cluster`, the
consortium harness of tests/node and tests/operations, is one too). Not
`tests` itself: its folders `client`, `node`... would then shadow the
project's packages as namespace packages whenever the project is found
through an import hook (an editable install) rather than a path entry.
`pythonpath` changes the pytest process only: the node and client
subprocesses see the environment unchanged.

Rules kept here: network only to 127.0.0.1; every wait is bounded and fails
with a message; processes are ended only by the PIDs this harness started
(SIGTERM or the signal asked for, then SIGKILL if one lingers).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ledger.families.fees import APPLY_FEE
from ledger.genesis import ConsensusSettings, GenesisIdentity
from ledger.keyfile import save_private_key
from ledger.keys import PrivateKey, public_key_text
from node.families import code_hashes
from node.material import InstitutionSpec, create_consortium

HOST = "127.0.0.1"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
DEV_BALANCE = 10_000
DEV_APPLY_FEE = 100
CONSENSUS = ConsensusSettings(request_timeout_ms=1500, view_change_timeout_ms=1000)


# ---------------------------------------------------------------- ports


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the kernel just handed out (held together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind((HOST, 0))
            sockets.append(probe)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for probe in sockets:
            probe.close()


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((HOST, port)) == 0


def ports_free(base: int, nodes: int) -> bool:
    """The API ports `base..` and the peer ports `base+100..` of `nodes` nodes are all free."""
    for port in [base + i for i in range(nodes)] + [base + 100 + i for i in range(nodes)]:
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                return False
    return True


def free_base_port(first: int, step: int, nodes: int = 4) -> int:
    """The first base port from `first` (by `step`, below 60000) for `node up --base-port`."""
    for base in range(first, 60000, step):
        if ports_free(base, nodes):
            return base
    raise AssertionError("no free port range on this machine")


# ---------------------------------------------------------------- logs, status, waits


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def http_status(url: str, timeout_s: float = 3.0) -> dict[str, Any] | None:
    """A node's `/v1/status`, or None if it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/v1/status", timeout=timeout_s) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_until(
    predicate: Callable[[], bool], what: str, timeout_s: float = 60.0, every_s: float = 0.2
) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# ---------------------------------------------------------------- node processes


def start_node(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`python -m node run --config CONFIG --log-format text`, its output appended to `log`."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node",
                "run",
                "--config",
                str(config),
                "--log-format",
                "text",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(
    process: subprocess.Popen[bytes] | None,
    sig: int = signal.SIGTERM,
    timeout_s: float = STOP_TIMEOUT_S,
) -> None:
    """End a process this harness started, by its PID (SIGKILL if it lingers)."""
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)


def stop_processes(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every one still running, then SIGKILL to any that has not exited."""
    started = list(processes)
    for process in started:
        if process.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGTERM)
    for process in started:
        with contextlib.suppress(Exception):
            stop_process(process, signal.SIGKILL)


# ---------------------------------------------------------------- a development consortium


class DevConsortium:
    """Four node processes on 127.0.0.1, their material in `root`.

    Made with `create_consortium` on free ports: the institutions `names`
    (the first a notary office), a development applicant with a prepaid
    balance at the last one and a notary officer at the first, the apply fee
    100, as `notarychain-node up` makes them; their keys in `root/dev`. Each
    node's output goes to `root/NAME.log`.
    """

    def __init__(self, root: Path, names: Sequence[tuple[str, str]], chain: str) -> None:
        self.root = root
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        ports = free_ports(2 * len(names))
        self.specs = [
            InstitutionSpec(name, role, HOST, ports[2 * i], ports[2 * i + 1])
            for i, (name, role) in enumerate(names)
        ]
        self.names = [name for name, _ in names]
        self.applicant, self.officer = PrivateKey.generate(), PrivateKey.generate()
        self.genesis = create_consortium(
            root,
            self.specs,
            chain_id=f"notarychain-{chain}-{os.getpid()}-{int(time.time() * 1000) % 10**8}",
            consensus=CONSENSUS,
            families=code_hashes(),
            identities=(
                GenesisIdentity(
                    key=public_key_text(self.applicant.public_key),
                    institution=self.names[-1],
                    role="applicant",
                    name="Development applicant",
                    level=1,
                    balance=DEV_BALANCE,
                ),
                GenesisIdentity(
                    key=public_key_text(self.officer.public_key),
                    institution=self.names[0],
                    role="officer",
                    name="Development notary officer",
                    level=3,
                ),
            ),
            fees={APPLY_FEE: DEV_APPLY_FEE},
        )
        (root / "dev").mkdir()
        save_private_key(root / "dev" / "applicant.key", self.applicant)
        save_private_key(root / "dev" / "officer.key", self.officer)

    # ---------------------------------------------------------- addresses and logs

    @property
    def genesis_path(self) -> Path:
        return self.root / "genesis.json"

    def url(self, name: str) -> str:
        spec = next(s for s in self.specs if s.name == name)
        return f"http://{HOST}:{spec.api_port}"

    def urls(self, first: str | None = None) -> list[str]:
        """Every node's API URL; `first` (a name) moved to the front of the list."""
        names = list(self.names)
        if first is not None:
            names.remove(first)
            names.insert(0, first)
        return [self.url(n) for n in names]

    def log_path(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def logs(self) -> str:
        return "\n".join(f"==== {n} ====\n{tail(self.log_path(n))}" for n in self.names)

    # ---------------------------------------------------------- processes

    def start(self, name: str) -> None:
        running = self.processes.get(name)
        assert running is None or running.poll() is not None, f"{name} is already running"
        self.processes[name] = start_node(self.root / name / "node.toml", self.log_path(name))

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)
        self.wait_ready()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Every node answers, on this genesis, at one height, with every peer reachable."""
        deadline = time.monotonic() + timeout_s
        statuses: list[dict[str, Any] | None] = []
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(
                        f"node {name} exited with status {process.returncode}\n{self.logs()}"
                    )
            statuses = [http_status(self.url(n)) for n in self.names]
            known = [s for s in statuses if s is not None]
            if (
                len(known) == len(self.names)
                and all(s["genesis_hash"] == self.genesis.genesis_hash for s in known)
                and len({s["height"] for s in known}) == 1
                and all(all(p["reachable"] for p in s["peers"]) for s in known)
            ):
                return
            time.sleep(0.3)
        raise AssertionError(
            f"the consortium was not ready within {timeout_s:.0f} s: {statuses}\n{self.logs()}"
        )

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """End one node by the PID this harness started (SIGKILL if it lingers)."""
        stop_process(self.processes.get(name), sig)

    def stop_all(self) -> None:
        stop_processes(self.processes.values())


Started = TypeVar("Started", bound=DevConsortium)


@contextlib.contextmanager
def running(consortium: Started) -> Iterator[Started]:
    """Start every node and wait until ready; stop them all on the way out, whatever happens."""
    try:
        consortium.start_all()
        yield consortium
    finally:
        consortium.stop_all()
