"""Crash recovery from the write-ahead records (consensus/recovery.py).

PBFT (OSDI'99, section 4.2 and the TOCS'02 paper's section on recovery) relies on
a non-faulty replica never sending two conflicting messages for one (view, seq):
a replica that prepared digest d in view v must not prepare d' != d there, even
after a crash. Here the replica persists every message it signs before it is
sent, and a restarted replica is rebuilt from those records (`Restored`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from consensus.events import CommitRecord, MessageReceived, Restored, ViewChanged
from consensus.messages import Commit, NewView, Prepare, ViewChange
from consensus.recovery import compact
from consensus.replica import Replica
from consensus.types import SeqNo, View

if TYPE_CHECKING:
    from conftest import Cluster

MakeCluster = Callable[..., "Cluster"]
TIMEOUT_MS = 3_000  # Parameters.request_timeout_ms


def prepared_not_committed(make_cluster: MakeCluster) -> Cluster:
    """Block 1 is delivered everywhere; replica 2 then sent a Prepare for seq 2 but, hearing
    no other prepares, neither commit; the others committed seq 2."""
    cluster = make_cluster(checkpoint_interval=100, batch_size_max=1)
    kit = cluster.kit
    cluster.submit(1, kit.tx(b"block one"))
    cluster.run()
    cluster.filter = lambda sender, receiver, m: not (isinstance(m, Prepare) and receiver == 2)
    cluster.now_ms += 10
    cluster.submit(1, kit.tx(b"block two", cluster.now_ms))
    cluster.run()
    cluster.filter = None
    assert len(cluster.delivered[2]) == 1 and len(cluster.delivered[0]) == 2
    kinds = [type(r).__name__ for r in cluster.persisted[2]]
    assert kinds == ["Prepare", "CommitRecord", "Prepare"]
    return cluster


def prepares_sent(output_send: Sequence[tuple[object, object]], digest: bytes) -> list[Prepare]:
    return [m for _, m in output_send if isinstance(m, Prepare) and m.digest == digest]


def test_a_restarted_replica_resumes_its_view_and_its_votes(make_cluster: MakeCluster) -> None:
    cluster = prepared_not_committed(make_cluster)
    before = cluster.replicas[2]
    replica = cluster.restart(2)
    assert replica is not before
    assert (replica.view, replica.active) == (before.view, before.active) == (0, True)
    assert replica.last_delivered == replica.executed == 1
    assert replica.last_block_hash == cluster.blocks(2)[0].hash
    assert set(replica.prepared) == {1}
    assert replica.slots[SeqNo(2)].my_prepare == before.slots[SeqNo(2)].my_prepare
    assert replica.slots[SeqNo(1)].my_commit == before.slots[SeqNo(1)].my_commit


def test_a_restarted_replica_refuses_to_prepare_another_batch_for_a_prepared_seq(
    make_cluster: MakeCluster,
) -> None:
    """The replica prepared digest d for (0, 2) before its crash; the (faulty) primary now
    sends it a validly signed Proposal for (0, 2) with another batch. It must not prepare it."""
    cluster = prepared_not_committed(make_cluster)
    kit = cluster.kit
    [original] = [r for r in cluster.persisted[2] if isinstance(r, Prepare) and r.seq == 2]
    replica = cluster.restart(2)
    other = kit.batch(2, [kit.tx(b"conflicting", cluster.now_ms)], time_ms=cluster.now_ms + 1)
    assert other.digest != original.digest
    conflicting = kit.proposal(other)

    output = cluster.receive(2, conflicting)
    assert prepares_sent(output.send, other.digest) == []
    assert not any(isinstance(r, Prepare) and r.digest == other.digest for r in output.persist)
    assert [r.reason for r in output.rejected] == [
        "seq 2: this replica prepared another batch in this view"
    ]
    assert replica.slots[SeqNo(2)].my_prepare == original

    # Control: without its records the same replica would have prepared the conflicting batch,
    # so the refusal above comes from what it persisted.
    amnesiac = kit.replica(
        2,
        cluster.params,
        Restored(1, replica.last_block_hash, replica.last_block_time_ms, records=()),
    )
    blank = amnesiac.step(MessageReceived(conflicting), cluster.now_ms)
    assert len(prepares_sent(blank.send, other.digest)) == 1


def test_a_restarted_replica_does_not_commit_another_batch_for_a_committed_seq(
    make_cluster: MakeCluster,
) -> None:
    """Seq 1 was committed before the crash; a conflicting pre-prepare for (0, 1) is evidence
    against the primary, never a reason to prepare the other batch."""
    cluster = prepared_not_committed(make_cluster)
    kit = cluster.kit
    cluster.restart(2)
    other = kit.batch(1, [kit.tx(b"rewrite history", cluster.now_ms)], time_ms=cluster.now_ms)
    output = cluster.receive(2, kit.proposal(other))
    assert prepares_sent(output.send, other.digest) == []
    assert not any(isinstance(m, Commit) and m.digest == other.digest for _, m in output.send)
    assert output.rejected != []


def test_a_restarted_replica_re_sends_the_same_votes(make_cluster: MakeCluster) -> None:
    """What a restarted replica repeats is exactly what it signed before (nothing new)."""
    cluster = prepared_not_committed(make_cluster)
    persisted = set(cluster.persisted[2])
    persisted_commits = {r.commit for r in cluster.persisted[2] if isinstance(r, CommitRecord)}
    cluster.restart(2)
    [output] = cluster.tick(0, replicas=[2])
    votes = [m for _, m in output.send if isinstance(m, Prepare | Commit)]
    assert votes
    assert all(m in persisted or m in persisted_commits for m in votes)
    cluster.assert_write_ahead(2)


def test_a_restarted_replica_finishes_the_seq_it_had_prepared(make_cluster: MakeCluster) -> None:
    cluster = prepared_not_committed(make_cluster)
    cluster.restart(2)
    cluster.tick(1_000)
    cluster.run()
    chains = [cluster.blocks(i) for i in range(4)]
    assert len(chains[0]) == 2
    assert all(chain == chains[0] for chain in chains)


def test_a_restarted_replica_does_not_suspect_the_primary_at_once(
    make_cluster: MakeCluster,
) -> None:
    """A replica that crashed after committing seq 2 (its Commit was sent, the others' had not
    arrived) restarts holding that batch's request. The request timer (request_timeout_ms,
    section 4.4) must run from the restart, not from clock reading 0: one Tick half a second
    after the restart must not make it abandon view 0."""
    cluster = make_cluster(checkpoint_interval=100, batch_size_max=1)
    kit = cluster.kit
    cluster.submit(1, kit.tx(b"block one"))
    cluster.run()
    cluster.filter = lambda sender, receiver, m: not (isinstance(m, Commit) and receiver == 2)
    cluster.now_ms += 10
    cluster.submit(1, kit.tx(b"block two", cluster.now_ms))
    cluster.run()
    cluster.filter = None
    assert [type(r).__name__ for r in cluster.persisted[2]][-1] == "CommitRecord"
    assert len(cluster.delivered[2]) == 1

    replica = cluster.restart(2)
    [output] = cluster.tick(500, replicas=[2])
    assert not any(isinstance(m, ViewChange) for _, m in output.send), (
        "the restarted replica asked for view 1 on its first Tick"
    )
    assert (replica.view, replica.active) == (0, True)
    # It re-sends its commit, the others re-send theirs, and it delivers block 2 in view 0.
    cluster.tick(0, replicas=[0, 1, 3])
    cluster.run()
    assert cluster.blocks(2) == cluster.blocks(0)
    assert (replica.view, replica.active) == (0, True)


def in_view_change(make_cluster: MakeCluster) -> Cluster:
    """Replica 2 timed out on a request the silent primary never ordered: it persisted a
    ViewChange for view 1 that nobody else joined."""
    cluster = make_cluster()
    cluster.filter = lambda sender, receiver, m: sender == 1  # only replica 1 is heard
    cluster.submit_everywhere(cluster.kit.tx(b"never ordered"), replicas=[1, 2])
    cluster.run()
    cluster.tick(TIMEOUT_MS, replicas=[2])
    cluster.run()
    assert any(isinstance(r, ViewChange) and r.new_view == 1 for r in cluster.persisted[2])
    assert (cluster.replicas[2].view, cluster.replicas[2].active) == (1, False)
    return cluster


def test_a_replica_that_persisted_a_view_change_restarts_inactive_in_that_view(
    make_cluster: MakeCluster,
) -> None:
    """A restarted replica never falls back to an earlier view (it would then prepare in a
    view it promised to leave)."""
    cluster = in_view_change(make_cluster)
    [own] = {r for r in cluster.persisted[2] if isinstance(r, ViewChange)}
    replica = cluster.restart(2)
    assert (replica.view, replica.active) == (1, False)

    kit = cluster.kit
    proposal = kit.proposal(kit.batch(1, [kit.tx(b"view 0 proposal")], time_ms=cluster.now_ms))
    output = cluster.receive(2, proposal)
    assert not any(isinstance(m, Prepare) for _, m in output.send), "no prepare in view 0"

    [tick] = cluster.tick(1_000, replicas=[2])
    repeated = [m for _, m in tick.send if isinstance(m, ViewChange)]
    assert repeated and set(repeated) == {own}, "it repeats the view change it signed"


def test_a_restarted_replica_completes_the_view_change_it_asked_for(
    make_cluster: MakeCluster,
) -> None:
    cluster = in_view_change(make_cluster)
    cluster.restart(2)
    cluster.filter = None
    # The others were not stepped while replica 2 timed out alone: to them that was a
    # stall, so their own timers start again at their next step and run a full timeout.
    cluster.advance(2 * TIMEOUT_MS)
    cluster.run()
    assert all((r.view, r.active) == (1, True) for r in cluster.replicas)
    assert ViewChanged(View(1), active=True) in cluster.notices(2, ViewChanged)
    assert all(len(cluster.blocks(i)) == 1 for i in range(4))


# ---------------------------------------------------------------- compaction


def busy_history(make_cluster: MakeCluster) -> Cluster:
    """Records of every kind: a stable checkpoint, commits above it in view 0, a view change,
    a NewView for view 1, votes in view 1, and a batch prepared but not committed in view 1."""
    cluster = make_cluster(checkpoint_interval=2, batch_size_max=1, in_flight_max=4)
    kit = cluster.kit
    cluster.submit(1, *kit.txs(3, prefix="view-0"))
    cluster.run()
    assert all(r.stable_height == 2 for r in cluster.replicas)

    # Replica 0 falls silent: view 1 is installed; its primary orders a request.
    cluster.filter = lambda sender, receiver, m: sender != 0
    cluster.now_ms += 10
    cluster.submit_everywhere(kit.tx(b"view-1", cluster.now_ms), replicas=[1, 2, 3])
    cluster.run()
    cluster.tick(TIMEOUT_MS)
    cluster.run()
    assert all((r.view, r.active) == (1, True) for r in cluster.replicas)

    # A batch prepared in view 1 whose commits are lost.
    cluster.filter = lambda sender, receiver, m: not isinstance(m, Commit)
    cluster.now_ms += 10
    cluster.submit(3, kit.tx(b"view-1 prepared", cluster.now_ms))
    cluster.run()
    cluster.filter = None
    assert any(r.prepared and max(r.prepared) > r.last_delivered for r in cluster.replicas)
    return cluster


def restored_state(replica: Replica) -> dict[str, object]:
    return {
        "view": replica.view,
        "active": replica.active,
        "prepared": sorted(replica.prepared),
        "stable_height": replica.stable_height,
        "slots": sorted(replica.slots),
        "my_prepares": {s: slot.my_prepare for s, slot in replica.slots.items()},
        "my_commits": {s: slot.my_commit for s, slot in replica.slots.items()},
        "new_view": replica.new_view_message,
        "next_seq": replica.next_seq,
    }


def test_compaction_keeps_what_a_restart_needs(make_cluster: MakeCluster) -> None:
    cluster = busy_history(make_cluster)
    kit = cluster.kit
    for index in range(4):
        records = cluster.persisted[index]
        kept = compact(records)
        assert len(kept) < len(records), "compaction dropped something"
        assert all(item in records for item in kept)
        full = kit.replica(index, cluster.params, cluster.restored(index))
        compacted = kit.replica(index, cluster.params, cluster.restored(index, kept))
        assert restored_state(compacted) == restored_state(full)
        assert (full.view, full.active) == (1, True)
        assert any(isinstance(r, NewView) for r in kept)


def test_compaction_keeps_a_pending_view_change(make_cluster: MakeCluster) -> None:
    cluster = in_view_change(make_cluster)
    records = cluster.persisted[2]
    kept = compact(records)
    full = cluster.kit.replica(2, cluster.params, cluster.restored(2))
    compacted = cluster.kit.replica(2, cluster.params, cluster.restored(2, kept))
    assert restored_state(compacted) == restored_state(full)
    assert (compacted.view, compacted.active) == (1, False)


def test_a_replica_restarted_from_compacted_records_rejoins_the_cluster(
    make_cluster: MakeCluster,
) -> None:
    cluster = busy_history(make_cluster)
    index = 2
    cluster.restart(index, compact(cluster.persisted[index]))
    cluster.tick(1_000)
    cluster.run()
    cluster.now_ms += 10
    cluster.submit(1, cluster.kit.tx(b"after restart", cluster.now_ms))
    cluster.run()
    chains = [cluster.blocks(i) for i in range(4)]
    assert all(chain == chains[0] for chain in chains)
    assert chains[0][-1].transactions[0].body.payload == b"after restart"
    assert cluster.replicas[index].last_delivered == len(chains[0])
    for i in range(4):
        cluster.assert_write_ahead(i)
