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


COLLECTOR_PROBE = """
import gc, json, weakref
from node.memory import COLLECTOR_THRESHOLDS, tune_collector

class Node:
    pass

started = Node()
tune_collector()
frozen = gc.get_freeze_count()
cycle = Node()
cycle.self = cycle
gone = weakref.ref(cycle)
del cycle
survived_at_once = gone() is not None  # a cycle waits for a collection
churn = [[] for _ in range(2 * COLLECTOR_THRESHOLDS[0])]  # enough allocations for one
print(json.dumps({
    "frozen": frozen,
    "thresholds": gc.get_threshold(),
    "expected": COLLECTOR_THRESHOLDS,
    "survived_at_once": survived_at_once,
    "collected": gone() is None,
    "started_is_tracked_but_frozen": gc.is_tracked(started) and started not in gc.get_objects(),
}))
"""


def test_the_tuned_collector_skips_start_up_objects_and_still_frees_cycles() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", COLLECTOR_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    figures = json.loads(completed.stdout)
    assert figures["frozen"] > 1000, figures
    assert figures["thresholds"] == figures["expected"], figures
    assert figures["survived_at_once"], figures
    assert figures["collected"], figures
    assert figures["started_is_tracked_but_frozen"], figures
