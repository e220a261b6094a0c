"""The benchmark series behind docs/benchmarks.md, and its plots.

    python bench/scale.py [--duration 20] [--only nodes,batch,load,steady,...] [--plot-only]
    python bench/scale.py --tables

Each point is one run of `notarychain-node bench` (its own consortium of real
node processes, real TLS, real SQLite, separate load-generator processes),
whose JSON lands in `bench/results/scale/NAME.json` (kept in the repository:
the figures docs/benchmarks.md quotes). The series, each client sending one
transaction per request unless said otherwise:

- nodes: 4, 7 and 10 nodes, closed loop at 256 transactions in flight;
- batch: 4 nodes, block size limits from 16 to 2048 transactions, closed loop;
- load: 4 nodes, open loop at rising offered rates (the latency-versus-load curve);
- steady: 4 nodes, closed loop, 60 s;
- submit: 4 nodes, closed loop at 1024 in flight, clients sending 1 to 256
  transactions per request (`POST /v1/transactions/batch`);
- load-batched: the latency-versus-load curve with up to 64 per request;
- steady-batched: the steady run with up to 64 per request.

Then `docs/bench-nodes.png`, `docs/bench-batch.png`, `docs/bench-submit.png`
and `docs/bench-load.png` are drawn from those files (needs the `bench` extra: matplotlib). Figures
only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "scale"
DOCS = ROOT / "docs"

CONCURRENCY = 256
NODES = (4, 7, 10)
BATCHES = (16, 64, 256, 1024, 2048)
RATES = (50, 100, 200, 300, 400, 500, 600)
STEADY_S = 60.0
BATCHED_CONCURRENCY = 1024
SUBMIT_BATCHES = (1, 16, 64, 256)
SUBMIT_BATCH = 64
BATCHED_RATES = (200, 400, 600, 800, 1000)


def runs(duration_s: float) -> dict[str, list[tuple[str, list[str]]]]:
    """Series name -> (run name, bench arguments) in order."""
    seconds = str(duration_s)
    return {
        "nodes": [
            (
                f"nodes-{n}",
                ["--nodes", str(n), "--concurrency", str(CONCURRENCY), "--duration", seconds],
            )
            for n in NODES
        ],
        "batch": [
            (
                f"batch-{b}",
                ["--batch-max", str(b), "--concurrency", str(CONCURRENCY), "--duration", seconds],
            )
            for b in BATCHES
        ],
        "load": [(f"rate-{r}", ["--rate", str(r), "--duration", seconds]) for r in RATES],
        "steady": [("steady", ["--concurrency", str(CONCURRENCY), "--duration", str(STEADY_S)])],
        "submit": [
            (
                f"submit-{b}",
                [
                    "--submit-batch",
                    str(b),
                    "--concurrency",
                    str(BATCHED_CONCURRENCY),
                    "--duration",
                    seconds,
                ],
            )
            for b in SUBMIT_BATCHES
        ],
        "load-batched": [
            (
                f"rate-{r}-batched",
                ["--rate", str(r), "--submit-batch", str(SUBMIT_BATCH), "--duration", seconds],
            )
            for r in BATCHED_RATES
        ],
        "steady-batched": [
            (
                "steady-batched",
                [
                    "--concurrency",
                    str(BATCHED_CONCURRENCY),
                    "--submit-batch",
                    str(SUBMIT_BATCH),
                    "--duration",
                    str(STEADY_S),
                ],
            )
        ],
    }


def run_one(name: str, arguments: list[str]) -> None:
    out = OUT / f"{name}.json"
    command = [sys.executable, "-m", "node", "bench", *arguments, "--json", str(out)]
    print("$ notarychain-node bench " + " ".join(arguments), flush=True)
    subprocess.run(command, check=True)


def load(name: str) -> dict[str, Any] | None:
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def plot(duration_s: float) -> None:
    # Imported here so that --tables works without the `bench` extra (matplotlib).
    import matplotlib.pyplot as plt  # noqa: PLC0415

    series = runs(duration_s)

    def figures(key: str) -> list[dict[str, Any]]:
        return [f for name, _ in series[key] if (f := load(name)) is not None]

    def draw(key: str, x_of: str, x_label: str, title: str, log_x: bool = False) -> None:
        points = figures(key)
        if not points:
            return
        figure, throughput = plt.subplots(figsize=(6.4, 4.0))
        xs = [p[x_of] for p in points]
        throughput.plot(xs, [p["tx_per_s"] for p in points], "o-", color="tab:blue")
        throughput.set_xlabel(x_label)
        throughput.set_ylabel("committed tx/s", color="tab:blue")
        throughput.set_ylim(bottom=0)
        if log_x:
            throughput.set_xscale("log", base=2)
        latency = throughput.twinx()
        for percentile, style in (("p50", "s--"), ("p99", "^:")):
            latency.plot(
                xs,
                [p["latency_ms"][percentile] for p in points],
                style,
                color="tab:red",
                label=f"latency {percentile}",
            )
        latency.set_ylabel("commit latency (ms)", color="tab:red")
        latency.set_ylim(bottom=0)
        latency.legend(loc="lower left")
        throughput.set_title(title)
        figure.tight_layout()
        figure.savefig(DOCS / f"bench-{key}.png", dpi=110)
        plt.close(figure)

    draw("nodes", "nodes", "nodes", f"Scale: closed loop, {CONCURRENCY} in flight")
    draw("batch", "batch_max", "block size limit (transactions)", "Batch size: 4 nodes", True)
    draw(
        "submit",
        "submit_batch",
        "transactions per submission request",
        f"Batched submission: 4 nodes, {BATCHED_CONCURRENCY} in flight",
        True,
    )

    points = figures("load")
    if points:
        figure, axis = plt.subplots(figsize=(6.4, 4.0))
        curves = (("load", "one per request", "tab:blue"), ("load-batched", "batched", "tab:green"))
        for key, label, color in curves:
            points = figures(key)
            achieved = [p["tx_per_s"] for p in points]
            for percentile, style in (("p50", "o-"), ("p99", "^:")):
                axis.plot(
                    achieved,
                    [p["latency_ms"][percentile] for p in points],
                    style,
                    color=color,
                    label=f"{percentile}, {label}",
                )
        axis.set_xlabel("committed tx/s (open loop, offered rate rising)")
        axis.set_ylabel("commit latency (ms)")
        axis.set_ylim(bottom=0)
        axis.set_title("Latency versus load: 4 nodes")
        axis.legend()
        figure.tight_layout()
        figure.savefig(DOCS / "bench-load.png", dpi=110)
        plt.close(figure)


def tables(duration_s: float) -> str:
    """The results as the markdown tables of docs/benchmarks.md."""
    header = (
        "| run | nodes | load | per request | block limit | committed tx/s | p50 ms | p90 ms "
        "| p99 ms | max ms | view changes | peak RSS MB | CPU ms/tx/node | ceiling fraction |\n"
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |"
    )
    lines = []
    for key, entries in runs(duration_s).items():
        lines += [f"\n**{key}**\n", header]
        for name, _ in entries:
            f = load(name)
            if f is None:
                continue
            offered = (
                f"open {f['offered_rate']:g}/s"
                if f["offered_rate"]
                else f"closed {f['concurrency']}"
            )
            latency = f["latency_ms"]
            lines.append(
                f"| {name} | {f['nodes']} | {offered} | {f.get('submit_batch', 1)} "
                f"| {f['batch_max']} | {f['tx_per_s']} "
                f"| {latency['p50']} | {latency['p90']} | {latency['p99']} | {latency['max']} "
                f"| {f['view_changes']} | {f['rss_mb_max']} | {f['node_cpu_ms_per_tx']} "
                f"| {f['ceiling_fraction']} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per point")
    parser.add_argument("--only", default=",".join(runs(0)), help="series to run")
    parser.add_argument("--plot-only", action="store_true", help="draw from existing results")
    parser.add_argument("--tables", action="store_true", help="print the results as markdown")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.tables:
        print(tables(args.duration))
        return 0
    if not args.plot_only:
        series = runs(args.duration)
        for key in args.only.split(","):
            for name, arguments in series[key]:
                run_one(name, arguments)
    plot(args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
