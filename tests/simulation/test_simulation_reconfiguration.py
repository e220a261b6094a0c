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
from consensus.simulate.world import RESTART, World

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


def test_a_slow_executor_crashed_at_the_epoch_boundary_catches_up() -> None:
    """Found in review: a replica whose executor lagged started the next validator set's
    epoch once the old set's last block was delivered and certified, before executing
    it. Crashed then, it came back in the new epoch with old blocks still to execute,
    and the old set's certificates for them never checked against the new set: it
    stayed behind for good. A replica now starts an epoch only after executing its
    predecessor's last block, and the simulator flags any that does otherwise."""
    world = World(SimConfig(seed=1, nodes=4, faults="none", reconfigure=(4, (0, 1, 2, 3, 4))))
    slow = world.hosts[3]
    slow.execution_delay_ms = 300
    end = world.epoch_end()
    assert end is not None
    crashed_at: list[int] = []
    check = world._on_check

    def crash_between_delivery_and_execution(a: object, b: object) -> None:
        replica = slow.replica
        executed = slow.disk.app.executed_height
        if not crashed_at and replica is not None and executed < end <= replica.last_delivered:
            crashed_at.append(executed)
            world._crash(slow)
            world._push(world.now + 200, RESTART, slow.index, None)
        check(a, b)

    world._on_check = crash_between_delivery_and_execution  # type: ignore[method-assign]
    result = world.run()
    assert crashed_at and crashed_at[0] < end, "the crash came with the boundary unexecuted"
    assert result.ok, (result.violations[:1], result.liveness_failure)
    assert slow.replica is not None and slow.replica.epoch == 1
    assert slow.disk.app.executed_height == max(h.disk.app.executed_height for h in world.hosts)


def test_slow_executors_through_validator_set_changes_keep_safety_and_liveness() -> None:
    configs = [
        SimConfig(
            seed=seed,
            nodes=4,
            faults="swarm",
            reconfigure=(4, members),
            execution_delay_max_ms=300,
        )
        for seed in range(10)
        for members in CHANGES.values()
    ]
    results = list(run_many(configs, jobs=2))
    assert [(r.seed, r.violations[:1], r.liveness_failure) for r in results if not r.ok] == []
    assert sum(r.marks["slow_executor"] for r in results) > 0
