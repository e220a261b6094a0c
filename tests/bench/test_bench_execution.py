"""`bench/execution_memory.py`: the executor alone, its memory and CPU figures.

Runs the script as a user would (a separate process, a few hundred
transactions) and checks its report: each sample's figures, and with
`--statements` the CPU of each SQL statement the executor ran. Figures are
measured, never asserted beyond being there and positive.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "execution_memory.py"


def test_the_report_holds_memory_cpu_and_statement_figures(tmp_path: Path) -> None:
    out = tmp_path / "execution.json"
    arguments = ["--transactions", "300", "--block-size", "100", "--sample-every", "200"]
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments, "--statements", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(out.read_text())
    assert report["transactions"] == 300
    assert [s["committed"] for s in report["samples"]] == [200, 300]
    for sample in report["samples"]:
        assert sample["execute_cpu_us_per_tx"] > 0
        assert 0 < sample["rss_mb"] <= sample["peak_mb"]
    statements = report["statement_cpu_us_per_tx"]
    for name in ("INSERT OR IGNORE INTO smt_pages", "INSERT OR REPLACE INTO state", "COMMIT"):
        assert name in statements
    assert "SELECT key, value FROM state" in statements  # a block's keys, read ahead
