"""A short soak: real nodes under a nemesis lose no acknowledged transaction.

The same command as the long soak (`notarychain-node soak --duration 600`), for
under two minutes; it exits non-zero if any acknowledged transaction is missing
from any node, if chains or state roots differ, if more than f nodes were ever
faulty at once, or if commits did not resume after a fault.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.cluster
def test_short_soak_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "node",
            "soak",
            "--duration",
            "50",
            "--rate",
            "15",
            "--seed",
            "7",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where the soak makes its consortium
    )
    summary = json.loads(report.read_text())
    print(json.dumps(summary, indent=2))
    assert completed.returncode == 0, summary["problems"] or completed.stderr[-2000:]
    assert summary["ok"] and summary["problems"] == []
    assert summary["acknowledged"] > 100
    assert summary["max_concurrent_faults"] <= 1
    assert sum(summary["faults"].values()) >= 3
    # The longest pause is placed in the run, to be read against the fault log.
    assert 0 < summary["longest_pause_from_s"] < summary["duration_s"]
    assert not list(tmp_path.glob("notarychain-soak-*")), "a passed soak removes its nodes' data"
