"""`node.memory`: freed heap memory goes back to the operating system when trimmed."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json
from pathlib import Path
from node.memory import heap_trimmer

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

trim = heap_trimmer()
chunks = [bytearray(1000) for _ in range(100_000)]  # about 100 MB, each from malloc
pin = bytearray(1000)  # above them in the heap, so freeing them leaves a hole, not a top
del chunks
freed = rss_mb()
trim()
print(json.dumps({"freed_mb": freed, "trimmed_mb": rss_mb(), "pin": len(pin)}))
"""


def test_trimming_returns_freed_heap_memory_to_the_system() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    figures = json.loads(completed.stdout)
    assert figures["freed_mb"] - figures["trimmed_mb"] > 50, figures
