"""Seeds that once failed, kept as named regression tests (never skipped, never excluded)."""

import pytest

from consensus.simulate import SimConfig, run


def test_seed_975_view_change_survives_restart_for_peers_still_collecting() -> None:
    # A replica that left view 2 by timeout and then restarted had dropped its own
    # ViewChange for view 2, which its peers still needed to complete that view.
    result = run(SimConfig(seed=975, nodes=4, faults="swarm", byzantine=1))
    assert result.ok, (result.violations, result.liveness_failure)


def test_seed_1488_new_view_resent_after_its_primary_moved_on() -> None:
    # The primary of view 2 installed it, crashed, and moved on to view 3; peers that
    # had missed its NewView waited in view 2 forever until it re-sent the NewView.
    result = run(SimConfig(seed=1488, nodes=4, faults="swarm", byzantine=1))
    assert result.ok, (result.violations, result.liveness_failure)


@pytest.mark.parametrize("seed", [5])
def test_seed_view_change_help_does_not_storm(seed: int) -> None:
    # Answering every old ViewChange with our own made two replicas answer each other forever.
    result = run(SimConfig(seed=seed, nodes=4, faults="swarm", byzantine=1))
    assert result.ok, (result.violations, result.liveness_failure)


@pytest.mark.parametrize("seed", [420182, 420256])
def test_seed_a_slow_executor_is_owed_the_time_to_execute_the_chain(seed: int) -> None:
    # A host executing at 1.8 to 1.9 s per block was still working through its queue at
    # the liveness deadline: the run failed for the executor's speed, not the protocol's.
    # Liveness is now owed once even the slowest executor could have executed a block per
    # transaction; these runs must end with every transaction executed everywhere.
    config = SimConfig(seed=seed, nodes=4, byzantine=1, execution_delay_max_ms=2000)
    result = run(config)
    assert result.ok, (result.violations, result.liveness_failure)
    assert result.marks["proposal_waits_for_execution"] > 0
