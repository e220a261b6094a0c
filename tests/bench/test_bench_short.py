"""`notarychain-node bench` for a few seconds: its report holds the figures the issue names.

Real node processes and load generators on 127.0.0.1. Only the report's shape
and its arithmetic are asserted (the ceiling and the fraction follow from the
measured figures); speed itself is measured, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import harness
import pytest

NODES = 4


def bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run `notarychain-node bench` with `args` and return its JSON report."""
    report = tmp_path / "bench.json"
    base = harness.free_base_port(27100, 10, NODES)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "node",
            "bench",
            "--nodes",
            str(NODES),
            "--base-port",
            str(base),
            "--json",
            str(report),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    figures: dict[str, Any] = json.loads(report.read_text())
    return figures


@pytest.mark.cluster
def test_a_short_bench_reports_every_named_figure(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    figures = bench(tmp_path, "--duration", "5", "--concurrency", "32", "--samples", str(samples))

    assert figures["nodes"] == NODES
    assert figures["committed"] > 0 and figures["tx_per_s"] > 0
    assert figures["committed"] <= figures["submitted"]
    latency = figures["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert isinstance(figures["view_changes"], int) and figures["view_changes"] >= 0
    assert len(figures["rss_mb_per_node"]) == NODES
    assert figures["rss_mb_max"] == max(figures["rss_mb_per_node"]) > 0
    assert figures["cores"] == os.cpu_count()
    ceiling = figures["cores"] * figures["verify_per_s_per_core"] / NODES
    assert figures["ceiling_tx_per_s"] == pytest.approx(ceiling, rel=0.01)
    fraction = figures["tx_per_s"] / figures["ceiling_tx_per_s"]
    assert figures["ceiling_fraction"] == pytest.approx(fraction, rel=0.01, abs=0.001)
    # The event loop (the main thread) is one of the node's threads: part of its CPU.
    assert 0 < figures["node_cpu_ms_per_tx_event_loop"] <= figures["node_cpu_ms_per_tx"]
    # Blocks counted over the same window: their sizes and the CPU agree with the totals.
    assert 1 <= figures["blocks"] <= figures["committed"]
    assert figures["tx_per_block"] == pytest.approx(
        figures["committed"] / figures["blocks"], abs=0.1
    )
    per_block = figures["node_cpu_ms_per_tx"] * figures["committed"] / figures["blocks"]
    assert figures["node_cpu_ms_per_block"] == pytest.approx(per_block, rel=0.02, abs=0.02)
    assert figures["proof"]["failed"] == 0
    assert figures["data_dir"] is None, "no path of this machine in a report meant to be kept"

    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert lines, "at least one sample, at the start of the load"
    for sample in lines:
        assert len(sample["rss_mb"]) == len(sample["peak_rss_mb"]) == NODES
        pairs = zip(sample["rss_mb"], sample["peak_rss_mb"], strict=True)
        assert all(0 < rss <= peak for rss, peak in pairs)


@pytest.mark.cluster
def test_the_load_stops_after_the_transactions_asked_for(tmp_path: Path) -> None:
    """The duration (120 s) is far more than 150 transactions need: the cap ends the load
    and every transaction is committed."""
    figures = bench(tmp_path, "--duration", "120", "--concurrency", "16", "--transactions", "150")
    assert figures["submitted"] == figures["committed"] == 150
    assert figures["refused"] == figures["errors"] == 0


@pytest.mark.cluster
@pytest.mark.parametrize("load", [("--concurrency", "64"), ("--rate", "100")], ids=str)
def test_batched_submission_commits_every_transaction(
    tmp_path: Path, load: tuple[str, str]
) -> None:
    """Clients sending up to 32 transactions per request (closed and open loop): every
    one is admitted and committed, and the report says how they were sent."""
    figures = bench(
        tmp_path, "--duration", "60", *load, "--transactions", "300", "--submit-batch", "32"
    )
    assert figures["submit_batch"] == 32
    assert figures["submitted"] == figures["committed"] == 300
    assert figures["refused"] == figures["errors"] == 0
