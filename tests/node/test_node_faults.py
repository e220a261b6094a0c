"""Crash faults: kill -9 the primary or a backup under load, then restart it; and a
backup paused (SIGSTOP) past its timers, then continued; a node whose disk fills.

The pause after the primary is killed is measured and written to
`primary_kill_pause.json` under the test's tmp_path (and printed); it is a
measurement, not an assertion.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ledger.genesis import ConsensusSettings

if TYPE_CHECKING:
    from cluster import Cluster, Load

PRIMARY = 0  # notary-office: replica 0, primary of view 0
BACKUP = 2  # enterprise-2


def assert_present(cluster: Cluster, load: Load, nodes: list[int]) -> None:
    """Every transaction the client saw committed is committed on each node, at one height."""
    commits = list(load.commits.values())
    txs = [c.tx for c in commits]
    per_node = {i: cluster.statuses_of(txs, i) for i in nodes}
    for k, commit in enumerate(commits):
        states = {cluster.name(i): per_node[i][k] for i in nodes}
        assert all(s["state"] == "committed" for s in states.values()), (commit.tx.id, states)
        heights = {s["height"] for s in states.values()}
        assert heights == {commit.height}, (commit.tx.id, commit.height, states)


def acked_after(load: Load, count: int, after: float = 0.0, timeout: float = 60.0) -> int:
    """Wait (up to `timeout`) for `count` transactions acknowledged after the monotonic
    time `after`; the number there is."""
    deadline = time.monotonic() + timeout
    while True:
        seen = sum(c.acked_at > after for c in load.commits.values())
        if seen >= count or time.monotonic() >= deadline:
            return seen
        time.sleep(0.1)


def wait_view_change(cluster: Cluster, nodes: list[int], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: list[Any] = []
    for _ in range(int(timeout / 0.2) + 10):
        last = [cluster.try_status(i) for i in nodes]
        if all(s is not None and s["view"] > 0 and s["view_active"] for s in last):
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    summary = [None if s is None else (s["view"], s["view_active"], s["height"]) for s in last]
    raise cluster.fail(f"no view change installed on {nodes} in {timeout:.0f} s: {summary}")


@pytest.mark.cluster
def test_primary_killed_view_change_then_restart_catches_up(
    make_cluster: Callable[..., Cluster],
    fast_consensus: ConsensusSettings,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    cluster = make_cluster(consensus=fast_consensus)
    survivors = [i for i in range(cluster.n) if i != PRIMARY]
    assert cluster.status(PRIMARY)["primary"] == PRIMARY

    load = cluster.load(survivors, interval=0.02).start()
    monitor = cluster.monitor(survivors[0]).start()
    try:
        assert acked_after(load, 50) >= 50, f"no progress before the kill: {load.summary()}"
        committed_before = dict(load.commits)

        height_at_kill = cluster.height(survivors[0])
        killed_at = time.monotonic()
        cluster.kill(PRIMARY)

        wait_view_change(cluster, survivors)
        # Commits resume: transactions submitted after the view change commit.
        resumed = acked_after(load, 50, killed_at)
        assert resumed >= 50, f"commits did not resume after the kill: {load.summary()}"
    finally:
        load.stop()
        monitor.stop()

    # The pause: from the kill to the first commit after it on a survivor (measured only).
    first_commit = next(
        ((t, h, v) for t, h, v, _ in monitor.samples if t > killed_at and h > height_at_kill),
        None,
    )
    first_new_view_commit = next(
        (
            (t, h, v)
            for t, h, v, active in monitor.samples
            if t > killed_at and h > height_at_kill and v > 0 and active
        ),
        None,
    )
    first_client_commit = min(
        (c.at for c in load.commits.values() if c.at > killed_at), default=None
    )
    pause = {
        "kill_to_first_commit_s": None if first_commit is None else first_commit[0] - killed_at,
        "kill_to_first_commit_in_new_view_s": None
        if first_new_view_commit is None
        else first_new_view_commit[0] - killed_at,
        "kill_to_first_client_observed_commit_s": None
        if first_client_commit is None
        else first_client_commit - killed_at,
        "height_at_kill": height_at_kill,
        "view_after": None if first_new_view_commit is None else first_new_view_commit[2],
        "consensus": {
            "request_timeout_ms": fast_consensus.request_timeout_ms,
            "view_change_timeout_ms": fast_consensus.view_change_timeout_ms,
        },
    }
    (tmp_path / "primary_kill_pause.json").write_text(json.dumps(pause, indent=2))
    print(f"\nprimary-kill pause: {json.dumps(pause)}")
    record_property("primary_kill_pause", json.dumps(pause))

    assert not load.not_committed, (
        f"acknowledged but never committed: {load.summary()}; nodes: {cluster.summary()}"
    )
    height = cluster.wait_settled(survivors, timeout=60)
    for i in survivors:
        status = cluster.status(i)
        assert status["view"] > 0 and status["view_active"], status
        assert status["primary"] != PRIMARY, status
    assert_present(cluster, load, survivors)
    assert all(c.tx.id in load.commits for c in committed_before.values())
    cluster.assert_identical_chains(survivors, height)

    # Restart the killed primary: it catches up to the same height and latest block.
    cluster.restart(PRIMARY)
    cluster.wait_ready()
    cluster.wait_height(PRIMARY, height, timeout=60)
    assert cluster.wait_settled(timeout=60) == height
    latest = {cluster.name(i): cluster.block(i, height)["hash"] for i in range(cluster.n)}
    assert len(set(latest.values())) == 1, latest
    assert_present(cluster, load, [PRIMARY])

    # And it takes part again: new transactions, some submitted to it, commit everywhere.
    txs = cluster.make_txs(20)
    cluster.submit_all(txs, list(range(cluster.n)))
    for tx in txs:
        cluster.wait_committed(tx.id, PRIMARY, timeout=60)
    final = cluster.wait_settled(timeout=60)
    assert final > height
    cluster.assert_identical_chains(list(range(cluster.n)), final)


@pytest.mark.cluster
def test_backup_killed_under_load_restarts_to_identical_state(
    make_cluster: Callable[..., Cluster],
    fast_consensus: ConsensusSettings,
) -> None:
    cluster = make_cluster(consensus=fast_consensus)
    everyone = list(range(cluster.n))
    others = [i for i in everyone if i != BACKUP]

    load = cluster.load(others, interval=0.02).start()
    try:
        assert acked_after(load, 50) >= 50, f"no progress before the kill: {load.summary()}"
        cluster.kill(BACKUP)
        killed_at = time.monotonic()
        # The other three keep committing without it.
        assert acked_after(load, 100, killed_at) >= 100, load.summary()
        cluster.restart(BACKUP)
        cluster.wait_ready()
        load.targets = everyone  # clients reach the restarted backup too
        restarted_at = time.monotonic()
        assert acked_after(load, 100, restarted_at) >= 100, (
            f"{load.summary()}; nodes: {cluster.summary()}"
        )
    finally:
        load.stop()

    assert not load.not_committed, (
        f"acknowledged but never committed: {load.summary()}; nodes: {cluster.summary()}"
    )
    height = cluster.wait_settled(everyone, timeout=60)
    cluster.assert_identical_chains(everyone, height)
    assert_present(cluster, load, everyone)

    checkpoints = {cluster.name(i): cluster.latest_checkpoint(i) for i in everyone}
    assert {c["height"] for c in checkpoints.values()} == {height}, checkpoints
    for field in ("block_hash", "state_root", "log_root", "log_size"):
        assert len({c[field] for c in checkpoints.values()}) == 1, (field, checkpoints)


@pytest.mark.cluster
def test_backup_far_behind_catches_up_while_requests_keep_arriving(
    make_cluster: Callable[..., Cluster],
    fast_consensus: ConsensusSettings,
) -> None:
    """A backup restarted more than one fetch (256 blocks) behind, under load, catches up.

    Clients submit to it as soon as it is up; their requests wait in its pool
    (until it executes the blocks holding them), older than the request
    timeout, while it is still fetching the blocks it missed.
    """
    cluster = make_cluster(consensus=fast_consensus)
    everyone = list(range(cluster.n))
    others = [i for i in everyone if i != BACKUP]

    cluster.kill(BACKUP)
    load = cluster.load(others, interval=0.02).start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and cluster.height(others[0]) < 400:
            time.sleep(0.2)
        gap = cluster.height(others[0])
        assert gap >= 400, f"the others did not get 400 blocks ahead: {load.summary()}"
        cluster.restart(BACKUP)
        cluster.wait_ready()
        load.targets = everyone  # clients now reach the restarted backup too
        cluster.wait_height(BACKUP, gap, timeout=60)
        cluster.wait_height(BACKUP, cluster.height(others[0]), timeout=60)
    finally:
        load.stop()

    assert not load.not_committed, (
        f"acknowledged but never committed: {load.summary()}; nodes: {cluster.summary()}"
    )
    height = cluster.wait_settled(everyone, timeout=60)
    cluster.assert_identical_chains(everyone, height)
    assert_present(cluster, load, everyone)


@pytest.mark.cluster
def test_nodes_started_one_by_one_commit_what_the_first_one_took(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """Regression: a consortium started node by node, a client writing to the first node
    from the start. That node times the request while the primary is not running. It
    used to ask for view 1 alone and stay there, outside consensus, while the others,
    started later, followed view 0. Hearing from no peer it now holds its suspicion (a
    view change needs a quorum) and stays in view 0; the requests it holds and the ones
    its client keeps sending commit once the others are up."""
    cluster = cluster_factory(consensus=ConsensusSettings(request_timeout_ms=1500))
    cluster.start([BACKUP])
    cluster.wait_ready([BACKUP])
    early = cluster.make_txs(1)[0]
    cluster.submit_acked(early, BACKUP)
    time.sleep(5)  # three request timeouts and more, alone
    status = cluster.status(BACKUP)
    assert (status["view"], status["view_active"]) == (0, True), status
    assert "view 1 requested" not in cluster.log_text(BACKUP)

    others = [i for i in range(cluster.n) if i != BACKUP]
    cluster.start(others)
    cluster.wait_ready()
    later = cluster.make_txs(1)[0]
    cluster.submit_acked(later, BACKUP)
    for tx in (early, later):
        for i in range(cluster.n):
            cluster.wait_committed(tx.id, i, timeout=60)
    height = cluster.wait_settled(timeout=60)
    cluster.assert_identical_chains(list(range(cluster.n)), height)
    assert all(cluster.status(i)["view"] == 0 for i in range(cluster.n))


@pytest.mark.cluster
def test_a_paused_backup_resumes_in_the_view_of_the_others(
    make_cluster: Callable[..., Cluster],
    fast_consensus: ConsensusSettings,
) -> None:
    """A backup stopped (SIGSTOP) for longer than the request timeout, then continued,
    finds its clock past every request timer. It did not watch the primary meanwhile,
    so it starts its timers again (and logs it) rather than ask alone for a view no one
    else wants, which would keep it out of consensus until the next real view change.
    (Whether its first step sees the timers or the queued news first is up to the
    event loop; tests/consensus/test_replica_view_change.py pins the timer case.)"""
    cluster = make_cluster(consensus=fast_consensus)
    everyone = list(range(cluster.n))
    others = [i for i in everyone if i != BACKUP]
    log_start = cluster.log_path(BACKUP).stat().st_size
    load = cluster.load(others, interval=0.02).start()
    pid = cluster.processes[BACKUP].pid
    try:
        assert acked_after(load, 50) >= 50, f"no progress before the pause: {load.summary()}"
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(5)  # the fast request timeout is 1.5 s
        finally:
            os.kill(pid, signal.SIGCONT)
        acked_after(load, 100, time.monotonic())
        cluster.wait_height(BACKUP, cluster.height(others[0]), timeout=60)
    finally:
        load.stop()

    assert not load.not_committed, load.summary()
    height = cluster.wait_settled(everyone, timeout=60)
    cluster.assert_identical_chains(everyone, height)
    statuses = [cluster.status(i) for i in everyone]
    assert [(s["view"], s["view_active"]) for s in statuses] == [(0, True)] * cluster.n, (
        cluster.summary()
    )
    log = cluster.log_text(BACKUP, since=log_start)
    assert "did not run for" in log, log[-2000:]
    assert "view 1 requested" not in log


@pytest.mark.cluster
def test_a_node_that_cannot_write_its_database_stops_with_one_line_and_resumes_later(
    make_cluster: Callable[..., Cluster],
    fast_consensus: ConsensusSettings,
) -> None:
    """A full disk, made real with a file size limit on the node's process: its next
    write fails. It stops at once with one line that says what to do (no traceback, and
    no loop left running alone), and, started again with room, it resumes from what it
    stored and catches up; nothing acknowledged is lost."""
    cluster = make_cluster(consensus=fast_consensus)
    everyone = list(range(cluster.n))
    others = [i for i in everyone if i != BACKUP]
    log_start = cluster.log_path(BACKUP).stat().st_size
    load = cluster.load(others, interval=0.02).start()
    try:
        assert acked_after(load, 50) >= 50, f"no progress before the disk fills: {load.summary()}"
        data = cluster.log_path(BACKUP).parent
        largest = max(p.stat().st_size for p in data.rglob("*") if p.is_file())
        limit = largest + 1_000_000
        resource.prlimit(cluster.processes[BACKUP].pid, resource.RLIMIT_FSIZE, (limit, limit))
        cluster.processes[BACKUP].wait(timeout=60)
        assert cluster.processes[BACKUP].returncode == 1
        log = cluster.log_text(BACKUP, since=log_start)
        assert "Traceback" not in log, log[-3000:]
        last = log.strip().splitlines()[-1]
        assert last.startswith("notarychain-node: the node stopped: the database could not be")
        assert "free disk space" in last

        cluster.start([BACKUP])  # a new process, without the limit
        cluster.wait_ready()
        load.targets = everyone
        assert acked_after(load, 50, time.monotonic()) >= 50, load.summary()
    finally:
        load.stop()

    assert not load.not_committed, load.summary()
    height = cluster.wait_settled(everyone, timeout=60)
    cluster.assert_identical_chains(everyone, height)
    assert_present(cluster, load, everyone)
