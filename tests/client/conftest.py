"""Harness for the client's end-to-end tests: real nodes, the `notarychain` command line.

Two ways to get a consortium on 127.0.0.1 (kept here, not imported from other
test directories):
- `Consortium`: four `python -m node run` processes this harness starts and
  stops by PID (material from `create_consortium` on free ports, with the
  development identities and fee that `notarychain-node up` makes), so a test
  can kill one node; `write_config` writes a `client.toml` for it;
- `Up`: `python -m node up --base-port P` on a free port range, stopped by
  SIGINT, as a newcomer runs it.

The command line runs as a subprocess (`python -m client`, the same `main` as
the `notarychain` script), optionally under a pseudo-terminal so that it
draws its progress bar. Every wait is bounded and fails with a message.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from client.sdk import AsyncClient
from client.sync import Client
from ledger.families.fees import APPLY_FEE
from ledger.genesis import ConsensusSettings, GenesisIdentity
from ledger.keyfile import save_private_key
from ledger.keys import PrivateKey, public_key_text
from node.families import code_hashes
from node.material import InstitutionSpec, create_consortium

HOST = "127.0.0.1"
NAMES = (
    ("notary-office", "notary"),
    ("enterprise-1", "enterprise"),
    ("enterprise-2", "enterprise"),
    ("enterprise-3", "enterprise"),
)
DEV_BALANCE = 10_000
DEV_APPLY_FEE = 100
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
CLI_TIMEOUT_S = 120.0
CONSENSUS = ConsensusSettings(request_timeout_ms=1500, view_change_timeout_ms=1000)


def free_ports(count: int) -> list[int]:
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


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# ---------------------------------------------------------------- node processes we own


class Consortium:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        ports = free_ports(2 * len(NAMES))
        self.specs = [
            InstitutionSpec(name, role, HOST, ports[2 * i], ports[2 * i + 1])
            for i, (name, role) in enumerate(NAMES)
        ]
        self.names = [name for name, _ in NAMES]
        self.applicant, self.officer = PrivateKey.generate(), PrivateKey.generate()
        self.genesis = create_consortium(
            root,
            self.specs,
            chain_id=f"notarychain-client-{os.getpid()}-{int(time.time() * 1000) % 10**8}",
            consensus=CONSENSUS,
            families=code_hashes(),
            identities=(
                GenesisIdentity(
                    key=public_key_text(self.applicant.public_key),
                    institution=NAMES[-1][0],
                    role="applicant",
                    name="Development applicant",
                    level=1,
                    balance=DEV_BALANCE,
                ),
                GenesisIdentity(
                    key=public_key_text(self.officer.public_key),
                    institution=NAMES[0][0],
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

    @property
    def genesis_path(self) -> Path:
        return self.root / "genesis.json"

    def url(self, name: str) -> str:
        spec = next(s for s in self.specs if s.name == name)
        return f"http://{HOST}:{spec.api_port}"

    def urls(self, first: str | None = None) -> list[str]:
        names = list(self.names)
        if first is not None:
            names.remove(first)
            names.insert(0, first)
        return [self.url(n) for n in names]

    def write_config(self, path: Path, nodes: Sequence[str] | None = None) -> Path:
        """A client.toml in `path`'s folder: these nodes, the genesis, both dev identities."""
        root = self.root.resolve()
        lines = [
            f'genesis = "{root / "genesis.json"}"',
            f'identity = "{root / "dev" / "applicant.key"}"',
            "nodes = [" + ", ".join(f'"{u}"' for u in (nodes or self.urls())) + "]",
            "timeout_s = 30",
            "",
            "[identities]",
            f'applicant = "{root / "dev" / "applicant.key"}"',
            f'officer = "{root / "dev" / "officer.key"}"',
            "",
        ]
        path.write_text("\n".join(lines))
        return path

    def client(self, key: PrivateKey | None = None, nodes: Sequence[str] | None = None) -> Client:
        return Client(AsyncClient(list(nodes or self.urls()), self.genesis, key))

    def log_path(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def logs(self) -> str:
        return "\n".join(f"==== {n} ====\n{tail(self.log_path(n))}" for n in self.names)

    def start(self, name: str) -> None:
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
        deadline = time.monotonic() + READY_TIMEOUT_S
        statuses: list[dict[str, Any] | None] = []
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"node {name} exited early\n{self.logs()}")
            statuses = [http_status(self.url(n)) for n in self.names]
            known = [s for s in statuses if s is not None]
            if (
                len(known) == len(self.names)
                and len({s["height"] for s in known}) == 1
                and all(all(p["reachable"] for p in s["peers"]) for s in known)
            ):
                return
            time.sleep(0.3)
        raise AssertionError(f"the consortium was not ready: {statuses}\n{self.logs()}")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """End one node by the PID this harness started (SIGKILL if it lingers)."""
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


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """Four node processes owned by this module's tests."""
    consortium = Consortium(tmp_path_factory.mktemp("client") / "consortium")
    try:
        consortium.start_all()
        yield consortium
    finally:
        consortium.stop_all()


# ---------------------------------------------------------------- notarychain-node up


def _ports_free(base: int, nodes: int) -> bool:
    for port in [base + i for i in range(nodes)] + [base + 100 + i for i in range(nodes)]:
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                return False
    return True


def free_base_port(nodes: int = 4) -> int:
    for base in range(21000 + (os.getpid() % 97) * 7, 60000, 211):
        if _ports_free(base, nodes):
            return base
    raise AssertionError("no free port range on this machine")


class Up:
    """`python -m node up --base-port P --data DIR`, run in `cwd`; stopped by SIGINT."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.data = cwd / "notarychain-data"
        self.log = cwd / "up.log"
        self.base_port = free_base_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.data / "client.toml"

    @property
    def genesis_path(self) -> Path:
        return self.data / "genesis.json"

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "node",
                    "up",
                    "--base-port",
                    str(self.base_port),
                    "--data",
                    str(self.data),
                ],
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "press Ctrl-C" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"the consortium did not come up:\n{tail(self.log)}"
            time.sleep(0.3)

    def api_ports(self) -> list[int]:
        return [self.base_port + i for i in range(len(NAMES))]

    def stop(self) -> int:
        """SIGINT to `up` (it stops every node it started); its exit status."""
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(f"`up` did not stop on SIGINT:\n{tail(self.log)}") from None
        return process.returncode


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """One `notarychain-node up` per test module (a test may stop it early)."""
    consortium = Up(tmp_path_factory.mktemp("up"))
    try:
        consortium.start()
        yield consortium
    finally:
        with contextlib.suppress(Exception):
            consortium.stop()


# ---------------------------------------------------------------- the command line


def cli_env(config: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NOTARYCHAIN_CONFIG"}
    if config is not None:
        env["NOTARYCHAIN_CONFIG"] = str(config)
    return env


def run_cli(
    *args: str | Path, cwd: Path, config: Path | None = None, timeout_s: float = CLI_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """`notarychain ARGS...` as a subprocess, stdout and stderr captured (no terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "client", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=cli_env(config),
        timeout=timeout_s,
        check=False,
    )


def run_cli_in_pty(
    *args: str | Path, cwd: Path, config: Path | None = None, timeout_s: float = CLI_TIMEOUT_S
) -> tuple[int, str]:
    """`notarychain ARGS...` with a pseudo-terminal as its stdin, stdout and stderr."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "client", *map(str, args)],
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cli_env(config),
        close_fds=True,
    )
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(
                    f"notarychain {' '.join(map(str, args))} did not finish in {timeout_s:.0f} s:"
                    f"\n{output.decode(errors='replace')[-2000:]}"
                )
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end is closed (the process ended)
                break
            if not chunk:
                break
            output += chunk
        process.wait(timeout=STOP_TIMEOUT_S)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, output.decode(errors="replace")


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`cli(*args, cwd=..., config=None)`: run `notarychain` (see `run_cli`)."""
    return run_cli


@pytest.fixture(scope="session")
def cli_in_pty() -> Callable[..., tuple[int, str]]:
    return run_cli_in_pty


@pytest.fixture(scope="session")
def wait() -> Callable[..., None]:
    return wait_until


@pytest.fixture(scope="session")
def is_open() -> Callable[[int], bool]:
    return port_open
