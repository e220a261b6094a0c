"""Harness for the client's end-to-end tests: real nodes, the `notarychain` command line.

Two ways to get a consortium on 127.0.0.1 (the shared parts in tests/support/harness.py):
- `Consortium`: four `python -m node run` processes this harness starts and
  stops by PID (`harness.DevConsortium`: material from `create_consortium` on
  free ports, with the development identities and fee that `notarychain-node
  up` makes), so a test can kill one node; `write_config` writes a
  `client.toml` for it;
- `Up`: `python -m node up --base-port P` on a free port range, stopped by
  SIGINT, as a newcomer runs it.

The command line runs as a subprocess (`python -m client`, the same `main` as
the `notarychain` script), optionally under a pseudo-terminal so that it
draws its progress bar. Every wait is bounded and fails with a message.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import harness
import pytest
from harness import READY_TIMEOUT_S, STOP_TIMEOUT_S, port_open, tail, wait_until

from client.sdk import AsyncClient
from client.sync import Client
from ledger.keys import PrivateKey

NAMES = (
    ("notary-office", "notary"),
    ("enterprise-1", "enterprise"),
    ("enterprise-2", "enterprise"),
    ("enterprise-3", "enterprise"),
)
CLI_TIMEOUT_S = 120.0


# ---------------------------------------------------------------- node processes we own


class Consortium(harness.DevConsortium):
    def __init__(self, root: Path) -> None:
        super().__init__(root, NAMES, chain="client")

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


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """Four node processes owned by this module's tests."""
    with harness.running(Consortium(tmp_path_factory.mktemp("client") / "consortium")) as started:
        yield started


# ---------------------------------------------------------------- notarychain-node up


class Up:
    """`python -m node up --base-port P --data DIR`, run in `cwd`; stopped by SIGINT."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.data = cwd / "notarychain-data"
        self.log = cwd / "up.log"
        self.base_port = harness.free_base_port(21000 + (os.getpid() % 97) * 7, 211)
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
