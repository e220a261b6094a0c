"""Validator-set changes: institutions join, leave and are replaced while the chain runs.

A change approved by execution at some height takes effect after a height at
least a window later: the old set orders and certifies every block up to it,
then the new set (its own view numbers, votes signed for its epoch) orders the
rest. Joiners follow the chain by fetching blocks until they become validators;
leavers keep following it.
"""

import pytest

from consensus.simulate import SimConfig, run
from consensus.simulate.runner import run_many

CHANGES = {
    "a fifth institution joins": (0, 1, 2, 3, 4),
    "one leaves": (0, 1, 2),
    "two are replaced": (2, 3, 4, 5),
    "three join": (0, 1, 2, 3, 4, 5, 6),
}


@pytest.mark.parametrize("members", CHANGES.values(), ids=CHANGES.keys())
def test_validator_set_change_keeps_safety_and_liveness(members: tuple[int, ...]) -> None:
    configs = [
        SimConfig(seed=seed, nodes=4, faults=faults, reconfigure=(4, members))
        for seed in range(12)
        for faults in ("none", "swarm")
    ]
    results = list(run_many(configs, jobs=2))
    assert [(r.seed, r.violations[:1], r.liveness_failure) for r in results if not r.ok] == []
    hosts = 4 + sum(1 for m in members if m >= 4)
    # Every host, joiners and leavers included, moved to the new validator set.
    assert all(r.marks["epoch_started_hosts"] >= hosts for r in results)


def test_swarm_changes_validator_sets_on_its_own() -> None:
    results = [run(SimConfig(seed=seed, nodes=4, faults="swarm")) for seed in range(40)]
    assert [r.seed for r in results if not r.ok] == []
    assert sum(r.marks["epoch_started"] for r in results) > 0
