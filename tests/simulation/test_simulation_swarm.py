"""The swarm: hundreds of seeds of random faults with a Byzantine replica, and what they reach.

A green run must not be an empty one: the rare branches that matter are
counted by the replicas ("marks") and this test demands that the swarm
reached each of them.
"""

from collections import Counter

from consensus.simulate import SimConfig
from consensus.simulate.runner import run_many

SWARM_SEEDS = 300

RARE_BRANCHES = (
    "prepared_batch_carried_into_new_view",
    "state_transfer",
    "crash_lost_unsynced_tail",
    "restored_from_disk",
    "restored_during_view_change",
    "equivocation_detected",
    "view_change_timeout_doubled",
    "joined_view_change_of_f_plus_one",
    "new_view_resent_to_laggard",
    "forged_fetch_answer",
)


def test_swarm_with_one_byzantine_replica_keeps_safety_and_liveness() -> None:
    configs = (SimConfig(seed=s, nodes=4, faults="swarm", byzantine=1) for s in range(SWARM_SEEDS))
    marks: Counter[str] = Counter()
    failures = []
    commits = 0
    for result in run_many(configs, jobs=2):
        marks.update(result.marks)
        commits += result.commits
        if not result.ok:
            failures.append((result.seed, result.violations[:1], result.liveness_failure))
    assert failures == []
    assert commits > SWARM_SEEDS * 5
    unreached = [name for name in RARE_BRANCHES if marks[name] == 0]
    assert unreached == []


def test_runs_with_real_ed25519_signatures_keep_safety_and_liveness() -> None:
    configs = [
        SimConfig(seed=s, nodes=4, faults="swarm", byzantine=1, real_crypto=True) for s in range(8)
    ]
    results = list(run_many(configs, jobs=2))
    assert [r.seed for r in results if not r.ok] == []
    assert sum(r.marks["forged_message_sent"] for r in results) > 0 or all(
        r.marks["byzantine_forge"] == 0 for r in results
    )


def test_seven_and_ten_replicas_with_f_byzantine_keep_safety_and_liveness() -> None:
    configs = [SimConfig(seed=s, nodes=7, byzantine=2) for s in range(12)]
    configs += [SimConfig(seed=s, nodes=10, byzantine=3) for s in range(6)]
    failures = [
        (r.seed, r.violations[:1], r.liveness_failure)
        for r in run_many(configs, jobs=2)
        if not r.ok
    ]
    assert failures == []


def test_slow_executors_keep_safety_and_liveness_and_hold_the_primary_back() -> None:
    """A node executes on a thread of its own: consensus runs ahead of execution, a crash
    loses the blocks delivered and not yet executed, and a primary whose executor lags
    `unexecuted_max` blocks stops proposing until it catches up."""
    configs = (
        SimConfig(seed=s, nodes=4, byzantine=1, execution_delay_max_ms=200) for s in range(60)
    )
    marks: Counter[str] = Counter()
    failures = []
    for result in run_many(configs, jobs=2):
        marks.update(result.marks)
        if not result.ok:
            failures.append((result.seed, result.violations[:1], result.liveness_failure))
    assert failures == []
    assert marks["slow_executor"] > 0
    assert marks["proposal_waits_for_execution"] > 0
    assert marks["crash"] > 0
