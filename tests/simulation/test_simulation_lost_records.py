"""A replica whose consensus records are lost (a restored backup, a new disk) must rejoin safely.

Without its write-ahead records a restarted primary would propose a second,
different batch for a sequence number it already proposed: it would equivocate
although honest (tests/consensus/test_replica_lost_records.py shows it). The
rejoin rule (no vote until the stable checkpoint passes the (f + 1)-th highest
that a quorum of peers reports, plus a window) prevents it; here, runs that lose
records stay safe and live.
"""

from consensus.simulate import Scripted, SimConfig, run


def test_primary_restored_without_records_keeps_safety_and_liveness() -> None:
    for seed, at_ms in ((15, 700), (26, 500), (3, 300)):
        script = (Scripted(at_ms, "lose_records", (0,)), Scripted(at_ms + 50, "restart", (0,)))
        config = SimConfig(seed=seed, faults="scripted", heal_at_ms=5_000, script=script)
        result = run(config)
        assert result.violations == []
        assert result.liveness_failure is None
        assert result.marks["records_lost"] == 1


def test_swarm_without_byzantine_replicas_loses_records_safely() -> None:
    marks: dict[str, int] = {}
    for seed in range(60):
        result = run(SimConfig(seed=seed, nodes=4, faults="swarm", byzantine=0))
        assert result.ok, (seed, result.violations[:1], result.liveness_failure)
        for name in ("records_lost", "rejoined_after_losing_records"):
            marks[name] = marks.get(name, 0) + result.marks[name]
    assert marks["records_lost"] > 0
    assert marks["rejoined_after_losing_records"] > 0


def test_a_replica_that_lost_its_records_rejoins_beside_a_peer_announcing_false_heights() -> None:
    """A forging replica announces heights no one has. The rejoin floor comes from the
    (f + 1)-th highest claim of a quorum of peers, so the liar cannot hold the restored
    replica out (with the highest of the first f + 1 claims, this run never rejoined)."""
    script = (Scripted(300, "lose_records", (0,)), Scripted(350, "restart", (0,)))
    config = SimConfig(
        seed=3,
        nodes=7,
        faults="scripted",
        heal_at_ms=5_000,
        script=script,
        behaviours=((3, "forge"),),
    )
    result = run(config)
    assert result.ok, (result.violations[:1], result.liveness_failure)
    assert result.marks["lying_status_sent"] > 0
    assert result.marks["rejoined_after_losing_records"] == 1
