"""Run the simulator over many seeds: `python -m consensus.simulate --help`.

Prints one line per failing seed, with the exact command that reproduces it,
then one JSON line of totals. Exits 1 if any run broke safety or liveness.
The same arguments always give the same `trace_hash`, whatever `--jobs` is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence

from consensus.simulate.runner import run_many
from consensus.simulate.world import SimConfig


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m consensus.simulate",
        description="Deterministic simulation of the PBFT replicas under faults.",
    )
    parser.add_argument("--seeds", type=int, default=100, help="number of runs (default 100)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--nodes", type=int, default=4, help="replicas: 4, 7, 10, ...")
    parser.add_argument("--faults", choices=("none", "swarm"), default="swarm")
    parser.add_argument("--byzantine", type=int, default=0, help="Byzantine replicas, 0..f")
    parser.add_argument("--real-crypto", action="store_true", help="sign with Ed25519")
    parser.add_argument(
        "--execution-delay-max-ms",
        type=int,
        default=0,
        help="executors of different speeds, up to this per block (default 0: in step)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--marks", action="store_true", help="also print the branches reached")
    args = parser.parse_args(argv)
    f = (args.nodes - 1) // 3
    if args.nodes < 1 or not 0 <= args.byzantine <= f:
        parser.error(f"--byzantine must be within 0..{f} for {args.nodes} nodes")
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs must be positive")
    if args.execution_delay_max_ms < 0:
        parser.error("--execution-delay-max-ms must not be negative")
    return args


def configs(args: argparse.Namespace) -> Iterator[SimConfig]:
    for seed in range(args.start, args.start + args.seeds):
        yield SimConfig(
            seed=seed,
            nodes=args.nodes,
            faults=args.faults,
            byzantine=args.byzantine,
            real_crypto=args.real_crypto,
            execution_delay_max_ms=args.execution_delay_max_ms,
        )


def reproduce_command(args: argparse.Namespace, seed: int) -> str:
    command = (
        f"python -m consensus.simulate --seeds 1 --start {seed} --nodes {args.nodes} "
        f"--faults {args.faults} --byzantine {args.byzantine}"
    )
    if args.execution_delay_max_ms:
        command += f" --execution-delay-max-ms {args.execution_delay_max_ms}"
    return command + (" --real-crypto" if args.real_crypto else "")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    trace = hashlib.sha256()
    totals: Counter[str] = Counter()
    marks: Counter[str] = Counter()
    for result in run_many(configs(args), args.jobs):
        trace.update(result.trace_hash.encode())
        totals["runs"] += 1
        totals["safety_violations"] += len(result.violations)
        totals["liveness_failures"] += result.liveness_failure is not None
        totals["commits"] += result.commits
        totals["view_changes"] += result.view_changes
        totals["state_transfers"] += result.state_transfers
        marks.update(result.marks)
        if not result.ok:
            problem = result.violations[0] if result.violations else result.liveness_failure
            print(f"FAIL seed {result.seed}: {problem}")
            print(f"  reproduce: {reproduce_command(args, result.seed)}", flush=True)
    summary: dict[str, object] = {
        key: totals[key]
        for key in (
            "runs",
            "safety_violations",
            "liveness_failures",
            "commits",
            "view_changes",
            "state_transfers",
        )
    }
    summary["trace_hash"] = trace.hexdigest()
    if args.marks:
        summary["marks"] = dict(sorted(marks.items()))
    print(json.dumps(summary))
    return 1 if totals["safety_violations"] or totals["liveness_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
