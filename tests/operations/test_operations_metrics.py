"""`/metrics` (Prometheus text format) moves during a benchmark-like run and a view change.

Real node processes on 127.0.0.1 (the harness of tests/node), driven by the
bench's own load generator (`python -m node.loadgen`, open loop at a fixed
rate for a few seconds). The nodes' `/metrics` pages are parsed with
prometheus_client's parser: the commit-latency histogram, the committed
transactions counter and the height grow with the load and agree with each
other and with the API; when the primary is killed, the survivors' view
gauge and view-change counter go up. Nothing here asserts how fast anything
is; every wait is bounded and fails with a message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.genesis import ConsensusSettings

if TYPE_CHECKING:
    from cluster import Cluster

PRIMARY = 0  # notary-office: the primary of view 0, killed at the end
SCRAPED = 1  # enterprise-1: scraped throughout, a survivor of the kill
LOAD_RATE = 40
LOAD_DURATION_S = 5
LOAD_DRAIN_S = 3
LOADGEN_TIMEOUT_S = 60.0

LATENCY = "notarychain_commit_latency_seconds"
COMMITTED = "notarychain_transactions_committed_total"
ADMITTED = "notarychain_transactions_admitted_total"
HEIGHT = "notarychain_height"
VIEW = "notarychain_view"
VIEW_CHANGES = "notarychain_view_changes_total"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Scrape:
    """One parsed `/metrics` page: every sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: Samples = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                self.samples[key] = float(sample.value)

    def value(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        assert key in self.samples, f"no sample {name}{labels} in /metrics:\n{self.text[:3000]}"
        return self.samples[key]

    def buckets(self, name: str) -> list[tuple[float, float]]:
        """(upper bound, cumulative count) of a histogram, in order of the bound."""
        found = [
            (float(dict(labels)["le"]), value)
            for (sample, labels), value in self.samples.items()
            if sample == f"{name}_bucket"
        ]
        return sorted(found)


def scrape(cluster: Cluster, i: int) -> Scrape:
    reply = cluster.request(i, "GET", "/metrics")
    if reply.status != 200:
        raise cluster.fail(f"{cluster.name(i)}: GET /metrics answered {reply.status}")
    assert reply.content_type.startswith("text/plain"), reply.content_type
    return Scrape(reply.body.decode())


def assert_histogram_consistent(page: Scrape, name: str) -> None:
    buckets = page.buckets(name)
    assert buckets and buckets[-1][0] == float("inf"), buckets
    counts = [count for _, count in buckets]
    assert counts == sorted(counts), f"{name} buckets are not cumulative: {buckets}"
    assert buckets[-1][1] == page.value(f"{name}_count"), (buckets, page.value(f"{name}_count"))
    assert page.value(f"{name}_sum") >= 0


def wait_scrape(
    cluster: Cluster,
    nodes: Sequence[int],
    condition: Callable[[Scrape], bool],
    what: str,
    timeout: float = 30.0,
) -> dict[int, Scrape]:
    """Scrape `nodes` until `condition` holds on every one of them (bounded)."""
    deadline = time.monotonic() + timeout
    pages: dict[int, Scrape] = {}
    for _ in range(int(timeout / 0.2) + 10):
        pages = {i: scrape(cluster, i) for i in nodes}
        if all(condition(page) for page in pages.values()):
            return pages
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    raise cluster.fail(f"/metrics: {what} not seen on {list(nodes)} within {timeout:.0f} s")


def start_loadgen(cluster: Cluster, out: Path) -> subprocess.Popen[bytes]:
    """The bench's load generator (a process this test starts and ends by PID)."""
    command = [sys.executable, "-m", "node.loadgen"]
    for i in range(cluster.n):
        command += ["--node", f"http://127.0.0.1:{cluster.api_port(i)}"]
    command += [
        "--key",
        str(cluster.root / "dev" / "applicant.key"),
        "--chain-id",
        cluster.chain_id,
        "--rate",
        str(LOAD_RATE),
        "--duration",
        str(LOAD_DURATION_S),
        "--drain",
        str(LOAD_DRAIN_S),
        "--out",
        str(out),
    ]
    log = (out.parent / "loadgen.log").open("wb")
    try:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


@pytest.mark.cluster
def test_metrics_move_under_load_and_view_change(
    make_cluster: Callable[..., Cluster],
    fast_consensus: ConsensusSettings,
    tmp_path: Path,
) -> None:
    cluster = make_cluster(consensus=fast_consensus)
    everyone = list(range(cluster.n))
    survivors = [i for i in everyone if i != PRIMARY]
    assert cluster.status(PRIMARY)["primary"] == PRIMARY

    before = {i: scrape(cluster, i) for i in everyone}
    for page in before.values():
        assert page.types[LATENCY] == "histogram", page.types
        assert page.types["notarychain_transactions_committed"] == "counter", page.types
        assert page.types["notarychain_view_changes"] == "counter", page.types
        assert page.types[HEIGHT] == "gauge" and page.types[VIEW] == "gauge", page.types
        assert page.value(VIEW) == 0 and page.value(VIEW_CHANGES) == 0
        assert_histogram_consistent(page, LATENCY)
    first = before[SCRAPED]

    # A benchmark-like run: the bench's load generator, open loop, round-robin to all nodes.
    out = tmp_path / "loadgen.json"
    loadgen = start_loadgen(cluster, out)
    try:
        during = wait_scrape(
            cluster,
            [SCRAPED],
            lambda page: (
                page.value(f"{LATENCY}_count") > first.value(f"{LATENCY}_count")
                and page.value(COMMITTED) > first.value(COMMITTED)
                and page.value(HEIGHT) > first.value(HEIGHT)
            ),
            "commit latency, committed transactions and height growing under load",
        )[SCRAPED]
        loadgen.wait(timeout=LOADGEN_TIMEOUT_S)
    finally:
        if loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait(timeout=10)
    assert loadgen.returncode == 0, (out.parent / "loadgen.log").read_text(errors="replace")
    result = json.loads(out.read_text())
    assert result["committed"] > 0 and result["errors"] == 0, {
        k: result[k] for k in ("submitted", "committed", "refused", "refusals", "errors")
    }

    height = cluster.wait_settled(timeout=30)
    after = {i: scrape(cluster, i) for i in everyone}
    page = after[SCRAPED]
    assert page.value(f"{LATENCY}_count") >= during.value(f"{LATENCY}_count")
    assert page.value(f"{LATENCY}_sum") > first.value(f"{LATENCY}_sum")
    assert page.value(COMMITTED) >= during.value(COMMITTED)
    assert page.value(HEIGHT) == height > first.value(HEIGHT)
    for i, each in after.items():
        assert_histogram_consistent(each, LATENCY)
        assert each.value(HEIGHT) == height, (cluster.name(i), each.value(HEIGHT), height)
        # Every node executed the same blocks, so counted the same transactions: at least
        # those the load generator saw committed.
        assert each.value(COMMITTED) == page.value(COMMITTED), cluster.name(i)
        assert each.value(COMMITTED) >= result["committed"], (cluster.name(i), result)
        # Each node times only what it admitted itself, and has timed all of that.
        assert each.value(f"{LATENCY}_count") == each.value(ADMITTED), cluster.name(i)
    # Each committed transaction was admitted, and timed, by exactly one node.
    assert sum(each.value(f"{LATENCY}_count") for each in after.values()) == page.value(COMMITTED)

    # The primary dies (SIGKILL by its PID); requests to the survivors force a view change.
    cluster.kill(PRIMARY)
    txs = cluster.make_txs(6)
    for k, tx in enumerate(txs):
        cluster.submit_acked(tx, survivors[k % len(survivors)])
    changed = wait_scrape(
        cluster,
        survivors,
        lambda each: each.value(VIEW) >= 1 and each.value(VIEW_CHANGES) >= 1,
        "a view change (notarychain_view and notarychain_view_changes_total up)",
    )
    for tx in txs:
        cluster.wait_committed(tx.id, SCRAPED, timeout=30)
    final_height = cluster.wait_settled(survivors, timeout=30)
    final = {i: scrape(cluster, i) for i in survivors}
    for i in survivors:
        status = cluster.status(i)
        assert status["view"] >= 1 and status["primary"] != PRIMARY, status
        each = final[i]
        assert each.value(VIEW) == status["view"], (cluster.name(i), status)
        assert each.value(VIEW_CHANGES) >= changed[i].value(VIEW_CHANGES) >= 1
        assert each.value(VIEW_CHANGES) > after[i].value(VIEW_CHANGES)
        assert each.value(HEIGHT) == final_height > height
        assert each.value(COMMITTED) == after[i].value(COMMITTED) + len(txs)
