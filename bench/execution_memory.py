"""Memory and CPU of execution and storage alone over a long chain, without consensus or HTTP.

One process builds blocks of signed evidence registrations and executes them
with the node's own `Executor` on a real SQLite store (the node's settings),
the way a node does after consensus, and samples its resident memory
(VmRSS, and VmHWM, the peak) as the chain grows. It answers whether the
memory a node needs grows with the chain's length, in minutes rather than the
hours a full consortium would take to commit a million transactions.

    python bench/execution_memory.py --transactions 1000000 --json out.json
    python bench/execution_memory.py --transactions 33000 --block-size 220 --statements

Each sample also holds the CPU time `Executor.execute` took per transaction
since the previous sample (`execute_cpu_us_per_tx`, the thread's own CPU, so
signing the next block and waiting on the disk are not in it). With
`--statements` the report adds, per SQL statement of the executor's
connection, its CPU per transaction over the whole run.
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from consensus.events import CommittedBlock
from ledger.block import Block, BlockHeader, transactions_root
from ledger.genesis import GenesisIdentity
from ledger.keys import PrivateKey, public_key_text
from node.executor import Executor
from node.families import code_hashes, instantiate
from node.loadgen import make_transactions
from node.material import InstitutionSpec, create_consortium
from node.storage import Store

NAMES = (("notary-office", "notary"), ("acme", "enterprise"))


def memory_mb() -> dict[str, float]:
    """This process's resident memory now and at its peak, in MB (from /proc)."""
    figures: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = int(value.split()[0]) / 1024
    return {"rss_mb": round(figures["VmRSS"], 1), "peak_mb": round(figures["VmHWM"], 1)}


class StatementClock:
    """The executor's connection, timing (thread CPU) each statement it runs."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.cpu_s: defaultdict[str, float] = defaultdict(float)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        return self._timed(self.db.execute, sql, args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        return self._timed(self.db.executemany, sql, args)

    def _timed(
        self, run: Callable[..., sqlite3.Cursor], sql: str, args: tuple[Any, ...]
    ) -> sqlite3.Cursor:
        start = time.thread_time()
        try:
            return run(sql, *args)
        finally:
            self.cpu_s[_statement_name(sql)] += time.thread_time() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def _statement_name(sql: str) -> str:
    """A statement's first words up to its table: "INSERT OR IGNORE INTO smt_pages"."""
    words = sql.split()
    for i, word in enumerate(words):
        if word.upper() in ("INTO", "FROM"):
            return " ".join(words[: i + 2])
    return " ".join(words[:2])


def run(
    transactions: int, block_size: int, sample_every: int, work: Path, statements: bool = False
) -> dict[str, Any]:
    key = PrivateKey.generate()
    specs = [
        InstitutionSpec(name, role, "127.0.0.1", 20000 + 2 * i, 20001 + 2 * i)
        for i, (name, role) in enumerate(NAMES)
    ]
    genesis = create_consortium(
        work / "consortium",
        specs,
        chain_id="notarychain-memory",
        families=code_hashes(),
        identities=(
            GenesisIdentity(
                key=public_key_text(key.public_key),
                institution="acme",
                role="applicant",
                name="load",
            ),
        ),
    )
    store = Store(work / "chain.db", genesis.genesis_hash)
    executor = Executor(store, genesis, instantiate(genesis))
    clock = StatementClock(store.db) if statements else None
    if clock is not None:
        store.db = cast(sqlite3.Connection, clock)
    proposer = genesis.validator_set().validators[0]
    previous = executor.head.block_hash
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    executed = sampled = 0
    execute_cpu_s = 0.0
    height = executor.head.height
    while executed < transactions:
        count = min(block_size, transactions - executed)
        txs = tuple(make_transactions(key, genesis.chain_id, count, 100))
        height += 1
        header = BlockHeader(
            genesis.chain_id,
            height,
            0,
            int(time.time() * 1000),
            previous,
            transactions_root(txs),
            proposer,
        )
        block = Block(header, txs)
        start_cpu_s = time.thread_time()
        executor.execute(CommittedBlock(block, None))
        execute_cpu_s += time.thread_time() - start_cpu_s
        previous = block.hash
        executed += count
        if executed % sample_every < count or executed == transactions:
            gc.collect()
            sample = {
                "committed": executed,
                "elapsed_s": round(time.monotonic() - started, 1),
                "execute_cpu_us_per_tx": round(1e6 * execute_cpu_s / (executed - sampled), 1),
                **memory_mb(),
                "database_mb": round(_database_bytes(work) / 1e6, 1),
                "written_mb": round(_written_bytes() / 1e6, 1),
            }
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            execute_cpu_s, sampled = 0.0, executed
    store.close()
    report: dict[str, Any] = {
        "transactions": executed,
        "block_size": block_size,
        "samples": samples,
    }
    if clock is not None:
        costliest = sorted(clock.cpu_s.items(), key=lambda item: -item[1])
        report["statement_cpu_us_per_tx"] = {
            name: round(1e6 * cpu_s / executed, 1) for name, cpu_s in costliest
        }
        print(json.dumps(report["statement_cpu_us_per_tx"], indent=2), flush=True)
    return report


def _written_bytes() -> int:
    """Bytes this process has caused to be written to storage (/proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "write_bytes":
            return int(value)
    return 0


def _database_bytes(work: Path) -> int:
    return sum(p.stat().st_size for p in work.glob("chain.db*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--block-size", type=int, default=500)
    parser.add_argument("--sample-every", type=int, default=50_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--statements", action="store_true", help="report each SQL statement's CPU per transaction"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="notarychain-memory-") as work:
        report = run(
            args.transactions, args.block_size, args.sample_every, Path(work), args.statements
        )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
