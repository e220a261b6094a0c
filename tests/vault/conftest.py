"""A real local consortium for the vault's acceptance tests, with each node its own process.

`notarychain-node up` stops every node when one exits, and these tests must
stop one node on purpose; so the consortium is created exactly as `up` creates
it (`node.up.create_local`: a notary office, three enterprises, the development
applicant and officer, the development fee schedule with the vault's entries,
`client.toml`), and each node is started as `up` starts it
(`python -m node run --config DIR/NAME/node.toml`), by a PID this harness keeps.

Rules kept here: network only to 127.0.0.1; every wait is bounded; only the
processes started here are stopped, by their PIDs (SIGTERM, then SIGKILL).
Free ports, starting and stopping a node, status and log tails come from the
shared tests/support/harness.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
import pytest
from harness import READY_TIMEOUT_S, start_node, stop_process, tail

from node.up import create_local, write_client_config

NODES = 4
CLIENT_TIMEOUT_S = 600.0
START_ATTEMPTS = 3


def free_base_port() -> int:
    # A range of its own (the README tests start at 20000, the explorer's at 37000).
    return harness.free_base_port(44000, 173, NODES)


def status(url: str) -> dict[str, Any] | None:
    return harness.http_status(url, timeout_s=2)


@dataclass
class Consortium:
    data: Path
    names: tuple[str, ...]
    urls: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.data / "client.toml"

    def start(self, name: str) -> None:
        running = self.processes.get(name)
        assert running is None or running.poll() is not None, f"{name} is running"
        self.processes[name] = start_node(self.data / name / "node.toml", self.log_path(name))

    def log_path(self, name: str) -> Path:
        return self.data / name / "node.log"

    def stop(self, name: str, signum: int = signal.SIGTERM) -> None:
        """End one node by the PID this harness started (SIGKILL if it lingers)."""
        stop_process(self.processes.get(name), signum)

    def wait_until(self, names: tuple[str, ...], height_at_least: int = 0) -> None:
        """Until these nodes answer, agree on the height, and reach `height_at_least`."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            for name in names:
                process = self.processes[name]
                assert process.poll() is None, f"{name} exited:\n{self.log_tail(name)}"
            statuses = [status(self.urls[name]) for name in names]
            known = [s for s in statuses if s is not None]
            if len(known) == len(names):
                heights = {s["height"] for s in known}
                if len(heights) == 1 and min(heights) >= height_at_least:
                    return
            assert time.monotonic() < deadline, f"the nodes did not agree in time: {statuses}"
            time.sleep(0.3)

    def status_of(self, name: str) -> dict[str, Any]:
        answer = status(self.urls[name])
        assert answer is not None, f"{name} does not answer"
        return answer

    def height(self) -> int:
        heights = [s["height"] for s in map(status, self.urls.values()) if s is not None]
        return max(heights)

    def log_tail(self, name: str, lines: int = 20) -> str:
        return tail(self.log_path(name), lines)

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def cli(self, *args: str, identity: str | None = None) -> subprocess.CompletedProcess[str]:
        """`notarychain --config DATA/client.toml [--as IDENTITY] ARGS...` (not checked)."""
        chosen = [] if identity is None else ["--as", identity]
        return subprocess.run(
            [sys.executable, "-m", "client", "--config", str(self.config), *chosen, *args],
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT_S,
            check=False,
        )

    def ok(self, *args: str, identity: str | None = None) -> dict[str, Any]:
        """Run a command with --json; its answer (it must succeed)."""
        done = self.cli("--json", *args, identity=identity)
        assert done.returncode == 0, f"notarychain {' '.join(args)}: {done.stdout}{done.stderr}"
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def refused(self, *args: str, identity: str | None = None) -> str:
        """Run a command that must fail; its one line on stderr."""
        done = self.cli(*args, identity=identity)
        assert done.returncode == 1, f"notarychain {' '.join(args)} did not fail: {done.stdout}"
        assert "Traceback" not in done.stderr, done.stderr
        return done.stderr.strip()


def start_consortium(root: Path) -> Consortium:
    """Create and start a consortium; another port range if one was taken meanwhile."""
    for attempt in range(START_ATTEMPTS):
        data = root / f"data-{attempt}"
        data.mkdir()
        genesis = create_local(data, NODES, free_base_port())
        write_client_config(data, genesis)
        names = tuple(i.name for i in genesis.institutions)
        urls = {i.name: f"http://{i.node.host}:{i.node.api_port}" for i in genesis.institutions}
        cluster = Consortium(data, names, urls)
        for name in names:
            cluster.start(name)
        try:
            cluster.wait_until(names)
        except AssertionError:
            cluster.close()
            logs = " ".join(cluster.log_tail(name) for name in names)
            if "address already in use" in logs and attempt + 1 < START_ATTEMPTS:
                continue  # a port was free when chosen and taken before the node bound it
            raise
        return cluster
    raise AssertionError("unreachable: every attempt returns or raises")


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    cluster = start_consortium(tmp_path_factory.mktemp("vault"))
    try:
        yield cluster
    finally:
        cluster.close()
