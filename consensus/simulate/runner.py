"""Many runs, optionally on several processes; results come back in seed order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from consensus.simulate.world import RunResult, SimConfig, run


def run_many(configs: Iterable[SimConfig], jobs: int = 1) -> Iterator[RunResult]:
    if jobs == 1:
        yield from map(run, configs)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(run, configs, chunksize=8)
