"""A replica whose consensus records are lost (a restored backup, a new disk) must rejoin safely.

Without its write-ahead records a restarted primary would propose a second,
different batch for a sequence number it already proposed: it would equivocate
although honest. The rejoin rule (no vote until the stable checkpoint passes
what f + 1 peers report plus a window) prevents it; these scenarios show both.
"""

from consensus.replica import Replica
from consensus.simulate import RunResult, Scripted, SimConfig, run


class ForgetsItLostRecords(Replica):
    """A deliberately wrong replica: restarts from a backup as if nothing were lost."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.rejoining = False


def primary_loses_records(replica_class: type[Replica]) -> RunResult:
    # Seed 15 with the primary's disk replaced 700 ms in, while batches are in flight.
    script = (Scripted(700, "lose_records", (0,)), Scripted(750, "restart", (0,)))
    config = SimConfig(
        seed=15, faults="scripted", heal_at_ms=5_000, script=script, replica_class=replica_class
    )
    return run(config)


def test_primary_restored_without_records_does_not_equivocate() -> None:
    result = primary_loses_records(Replica)
    assert result.violations == []
    assert result.liveness_failure is None
    assert result.marks["records_lost"] == 1


def test_ignoring_the_loss_of_records_is_caught_as_equivocation() -> None:
    result = primary_loses_records(ForgetsItLostRecords)
    assert any("signed two different pre-prepares" in v for v in result.violations)


def test_swarm_without_byzantine_replicas_loses_records_safely() -> None:
    marks: dict[str, int] = {}
    for seed in range(60):
        result = run(SimConfig(seed=seed, nodes=4, faults="swarm", byzantine=0))
        assert result.ok, (seed, result.violations[:1], result.liveness_failure)
        for name in ("records_lost", "rejoined_after_losing_records"):
            marks[name] = marks.get(name, 0) + result.marks[name]
    assert marks["records_lost"] > 0
    assert marks["rejoined_after_losing_records"] > 0
