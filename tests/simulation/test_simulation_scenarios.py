"""Named fault scenarios, scripted rather than drawn from the swarm."""

from consensus.simulate import RunResult, Scripted, SimConfig, run


def scripted(
    *script: Scripted, heal_at_ms: int, behaviours: tuple[tuple[int, str], ...] = (), seed: int = 1
) -> RunResult:
    config = SimConfig(
        seed=seed, faults="scripted", script=script, heal_at_ms=heal_at_ms, behaviours=behaviours
    )
    return run(config)


def assert_safe_and_live(result: RunResult) -> None:
    assert result.violations == []
    assert result.liveness_failure is None
    assert result.commits > 0


def test_isolate_the_primary_then_heal() -> None:
    # Host 0 is the primary of view 0; with it cut off, the others must change view.
    result = scripted(Scripted(500, "isolate", (0,)), heal_at_ms=8_000)
    assert_safe_and_live(result)
    assert result.view_changes >= 1


def test_partition_two_by_two_then_heal() -> None:
    # Neither half has a quorum: nothing may commit on either side, and all resumes after.
    result = scripted(Scripted(300, "partition", (0, 1)), heal_at_ms=6_000)
    assert_safe_and_live(result)


def test_twin_primary_sends_different_blocks_to_two_halves() -> None:
    # Replica 0 runs twice with one key; each twin reaches half of the others.
    for seed in range(1, 6):
        result = scripted(heal_at_ms=6_000, behaviours=((0, "twin"),), seed=seed)
        assert_safe_and_live(result)


def test_equivocating_primary_is_replaced() -> None:
    result = scripted(heal_at_ms=4_000, behaviours=((0, "equivocate"),))
    assert_safe_and_live(result)
    assert result.marks["equivocating_proposal_sent"] > 0
    assert result.view_changes >= 1


def test_replica_restarted_after_losing_its_unsynced_tail() -> None:
    result = scripted(
        Scripted(700, "crash_mid_step", (2,)),
        Scripted(2_500, "restart", (2,)),
        heal_at_ms=5_000,
    )
    assert_safe_and_live(result)
    assert result.marks["crash_lost_unsynced_tail"] + result.marks["crash"] >= 1
    assert result.marks["restored_from_disk"] >= 1


def test_replica_crashed_for_long_catches_up_by_fetching_blocks() -> None:
    result = scripted(
        Scripted(200, "crash", (3,)),
        Scripted(9_000, "restart", (3,)),
        heal_at_ms=9_000,
    )
    assert_safe_and_live(result)
    assert result.state_transfers >= 1
