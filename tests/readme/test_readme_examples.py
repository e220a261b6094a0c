"""The README's command-line and SDK examples, run as written against `notarychain-node up`."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
UP_READY_S = 90


def readme_block(language: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, f"expected one {language} block in the README's 'Using it'"
    return blocks[0]


def ports_free(base: int, nodes: int) -> bool:
    for port in [base + i for i in range(nodes)] + [base + 100 + i for i in range(nodes)]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port(nodes: int = 4) -> int:
    for base in range(20000, 60000, 211):
        if ports_free(base, nodes):
            return base
    raise AssertionError("no free port range on this machine")


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Path]:
    """`notarychain-node up` in tmp_path (as a newcomer would run it), stopped by SIGINT."""
    base = free_base_port()
    log = (tmp_path / "up.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "node", "up", "--base-port", str(base)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + UP_READY_S
        while "press Ctrl-C" not in (tmp_path / "up.log").read_text():
            assert process.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, "the consortium did not come up"
            time.sleep(0.3)
        yield tmp_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@pytest.mark.cluster
def test_readme_cli_and_sdk_examples_run_as_written(consortium: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NOTARYCHAIN_CONFIG"}
    cli = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block("sh")],
        cwd=consortium,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert cli.stdout.count("VALID:") == 2
    assert "history:" in cli.stdout
    assert "balance 9900" in cli.stdout  # the development fee of 100 was paid on issue
    assert (consortium / "certificate.html").read_text().startswith("<!doctype html>")
    sdk = subprocess.run(
        [sys.executable, "-c", readme_block("python")],
        cwd=consortium,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert sdk.returncode == 0, sdk.stdout + sdk.stderr
    assert re.search(r"certificate [0-9a-f]{64} signed by \S+", sdk.stdout)


@pytest.mark.cluster
def test_up_stops_every_node_on_interrupt_and_resumes_the_same_chain(tmp_path: Path) -> None:
    base = free_base_port()
    chain_ids = []
    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, "-m", "node", "up", "--base-port", str(base)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = ""
        assert process.stdout is not None
        deadline = time.monotonic() + UP_READY_S
        while "press Ctrl-C" not in output and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output += line
        assert "4 nodes agree" in output, output
        chain_ids.append(re.search(r"chain (notarychain-local-\d+)", output).group(1))  # type: ignore[union-attr]
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
        assert process.returncode == 0
        assert "all nodes stopped" in rest
    assert chain_ids[0] == chain_ids[1]
