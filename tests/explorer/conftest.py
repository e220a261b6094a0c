"""Fixtures for the explorer's browser tests: a real local consortium and a real Chromium.

`consortium` runs `python -m node up` in a temporary directory (as a newcomer
would), registers one file through the command-line client, and stops every
node with SIGINT to the PID it started. `browser` is Debian's Chromium driven
by Playwright (never a downloaded browser: `playwright install` is not used);
when it is missing the tests fail, saying how to install it.

Rules kept here: network only to 127.0.0.1; every wait is bounded; only the
processes started here are stopped, by their PIDs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("NOTARYCHAIN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "install Debian's Chromium with `sudo .ci/install-browser` "
    "(or `apt-get install -y chromium chromium-driver`), and Playwright for Python with "
    "`pip install -e '.[test]'`; do not run `playwright install`"
)
UP_READY_S = 90.0
STOP_TIMEOUT_S = 30.0
CLIENT_TIMEOUT_S = 120.0
NODES = 4
SAMPLE_NAME = "explorer-sample.txt"


def ports_free(base: int) -> bool:
    for port in [base + i for i in range(NODES)] + [base + 100 + i for i in range(NODES)]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port() -> int:
    # A range of its own (the README tests walk from 20000 in steps of 211).
    for base in range(37000, 60000, 157):
        if ports_free(base):
            return base
    raise AssertionError("no free port range on this machine")


def run_client(data: Path, *args: str) -> str:
    """`notarychain --config DATA/client.toml ARGS...`; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "client", "--config", str(data / "client.toml"), *args],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"notarychain {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def register_file(data: Path, path: Path) -> dict[str, Any]:
    """Register a file through the command-line client; its --json answer."""
    answer: dict[str, Any] = json.loads(run_client(data, "--json", "evidence", "add", str(path)))
    return answer


@dataclass(frozen=True)
class Consortium:
    data: Path
    url: str
    """This node's explorer: the notary office's API address."""
    chain_id: str
    names: tuple[str, ...]
    sample: Path
    """The file registered through the client."""
    registered: dict[str, Any]
    """The client's --json answer: tx_id, height, evidence_id, items[0].time_ms..."""


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    root = tmp_path_factory.mktemp("explorer")
    data = root / "data"
    base = free_base_port()
    log_path = root / "up.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "node", "up", "--base-port", str(base), "--data", str(data)],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + UP_READY_S
        while "press Ctrl-C" not in log_path.read_text():
            assert process.poll() is None, f"`node up` exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"no consortium in time:\n{log_path.read_text()}"
            time.sleep(0.3)
        genesis = json.loads((data / "genesis.json").read_text())
        sample = root / SAMPLE_NAME
        sample.write_text(f"Lease of shop 12, signed 30 November 2026 ({time.time_ns()})\n")
        registered = register_file(data, sample)
        yield Consortium(
            data=data,
            url=f"http://127.0.0.1:{base}/",
            chain_id=genesis["chain_id"],
            names=tuple(i["name"] for i in genesis["institutions"]),
            sample=sample,
            registered=registered,
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        log.close()


@pytest.fixture
def register(consortium: Consortium) -> Callable[[Path], dict[str, Any]]:
    """Register one more file on the running consortium."""
    return lambda path: register_file(consortium.data, path)


@pytest.fixture
def client(consortium: Consortium) -> Callable[..., str]:
    """Run the command-line client against the running consortium; its output."""
    return lambda *args: run_client(consortium.data, *args)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright; a clear failure (not a skip) without it."""
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: {INSTALL_HINT}", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Playwright for Python is not installed: {INSTALL_HINT}", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; any uncaught script error on it fails the test."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"
