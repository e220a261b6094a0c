"""A consortium of real node processes for the notarization workflow tests.

Modelled on the governance test's harness (kept here, not imported: test
directories do not import each other): the consortium's material is made
with `create_consortium` on free ports of 127.0.0.1 (a notary office and three
enterprises, a development applicant with a prepaid balance at the last
enterprise and a notary officer at the notary office, the apply fee 100, as
`notarychain-node up` makes them), each node runs as `python -m node run`,
and every node is stopped by the PID this harness started.

Rules: network only to 127.0.0.1; every wait is bounded and fails with the
tail of each node's log; nothing but this harness's own processes is ended.

Test modules reach the harness through the module-scoped `consortium`
fixture (with `--import-mode=importlib` a conftest cannot be imported).
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client.sdk import AsyncClient
from client.sync import Client
from ledger.families.fees import APPLY_FEE
from ledger.genesis import ConsensusSettings, GenesisIdentity
from ledger.keyfile import load_private_key, save_private_key
from ledger.keys import PrivateKey, public_key_text
from node.families import code_hashes
from node.material import InstitutionSpec, create_consortium

HOST = "127.0.0.1"
NAMES = (
    ("notary-office", "notary"),
    ("acme", "enterprise"),
    ("globex", "enterprise"),
    ("initech", "enterprise"),
)
APPLICANT_INSTITUTION = NAMES[-1][0]
DEV_BALANCE = 10_000
DEV_APPLY_FEE = 100
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
CONSENSUS = ConsensusSettings(request_timeout_ms=1500, view_change_timeout_ms=1000)


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


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def http_status(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/v1/status", timeout=3) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


class Consortium:
    """Four node processes on 127.0.0.1, their material in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        ports = free_ports(2 * len(NAMES))
        self.specs = [
            InstitutionSpec(name, role, HOST, ports[2 * i], ports[2 * i + 1])
            for i, (name, role) in enumerate(NAMES)
        ]
        self.names = [name for name, _ in NAMES]
        applicant, officer = PrivateKey.generate(), PrivateKey.generate()
        self.genesis = create_consortium(
            root,
            self.specs,
            chain_id=f"notarychain-workflow-{os.getpid()}-{int(time.time() * 1000) % 10**8}",
            consensus=CONSENSUS,
            families=code_hashes(),
            identities=(
                GenesisIdentity(
                    key=public_key_text(applicant.public_key),
                    institution=APPLICANT_INSTITUTION,
                    role="applicant",
                    name="Development applicant",
                    level=1,
                    balance=DEV_BALANCE,
                ),
                GenesisIdentity(
                    key=public_key_text(officer.public_key),
                    institution=NAMES[0][0],
                    role="officer",
                    name="Development notary officer",
                    level=3,
                ),
            ),
            fees={APPLY_FEE: DEV_APPLY_FEE},
        )
        dev = root / "dev"
        dev.mkdir()
        save_private_key(dev / "applicant.key", applicant)
        save_private_key(dev / "officer.key", officer)
        self.applicant = applicant
        self.officer = officer

    # ---------------------------------------------------------- addresses and keys

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

    def admin(self, name: str) -> PrivateKey:
        return load_private_key(self.root / name / "admin.key")

    def log_path(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def logs(self) -> str:
        return "\n".join(f"==== {n} ====\n{tail(self.log_path(n))}" for n in self.names)

    # ---------------------------------------------------------- clients

    def client(self, key: PrivateKey | None = None, first: str | None = None) -> AsyncClient:
        return AsyncClient(self.urls(first), self.genesis, key)

    def sync_client(self, key: PrivateKey | None = None, first: str | None = None) -> Client:
        return Client(self.client(key, first))

    # ---------------------------------------------------------- processes

    def start(self, name: str) -> None:
        running = self.processes.get(name)
        assert running is None or running.poll() is not None, f"{name} is already running"
        with self.log_path(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "node",
                    "run",
                    "--config",
                    str(self.root / name / "node.toml"),
                    "--log-format",
                    "text",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

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
        """End one node by its PID (SIGKILL if it does not exit in time)."""
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, sig)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGTERM)
        for name in list(self.processes):
            with contextlib.suppress(Exception):
                self.stop(name, signal.SIGKILL)

    def running(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.poll() is None]

    def heights(self) -> dict[str, int]:
        heights = {}
        for name in self.names:
            status = http_status(self.url(name))
            assert status is not None, f"node {name} does not answer\n{self.logs()}"
            heights[name] = int(status["height"])
        return heights


def wait_until(
    predicate: Callable[[], bool], what: str, timeout_s: float = 60.0, every_s: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """One consortium per test module, started before its first test and stopped after."""
    consortium = Consortium(tmp_path_factory.mktemp("workflow") / "consortium")
    try:
        consortium.start_all()
        yield consortium
    finally:
        consortium.stop_all()


@pytest.fixture(scope="session")
def wait() -> Callable[..., None]:
    """`wait(predicate, what, timeout_s=60)`: a bounded poll with a clear failure message."""
    return wait_until
