"""Checkpoints and garbage collection (Castro and Liskov, OSDI'99, section 4.3).

After executing a block whose height is a multiple of the checkpoint interval,
a replica multicasts a CHECKPOINT (here a signed `CheckpointVote`). 2f + 1
matching votes make the checkpoint *stable*: they form its proof (a
`CheckpointCertificate`) and every log entry at or below it is discarded. A
replica whose own checkpoint differs from the one a quorum signed has diverged
from the correct state and must stop signing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from consensus.events import Diverged, Executed, Output, StableCheckpoint, Tick
from consensus.messages import CheckpointVote, Requests
from ledger.checkpoint import Checkpoint, CheckpointCertificate, verify_certificate

if TYPE_CHECKING:
    from conftest import Cluster

MakeCluster = Callable[..., "Cluster"]


def ordered_but_not_executed(make_cluster: MakeCluster, blocks: int, **kwargs: object) -> Cluster:
    """A cluster that has delivered `blocks` one-transaction blocks everywhere, none executed."""
    cluster = make_cluster(
        auto_execute=False, checkpoint_interval=2, batch_size_max=1, in_flight_max=4, **kwargs
    )
    cluster.submit(1, *cluster.kit.txs(blocks))
    cluster.run()
    for index in range(4):
        assert len(cluster.delivered[index]) == blocks
    return cluster


def test_a_checkpoint_vote_is_signed_after_executing_a_multiple_of_the_interval(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.3: a replica produces a checkpoint when its sequence number is divisible
    by the interval, and persists its vote before sending it (write-ahead)."""
    cluster = ordered_but_not_executed(make_cluster, 3)
    kit = cluster.kit
    first, second, third = cluster.execute(2)

    for quiet in (first, third):  # heights 1 and 3 are not multiples of 2
        assert not any(isinstance(m, CheckpointVote) for _, m in quiet.send)
        assert not any(isinstance(r, CheckpointVote) for r in quiet.persist)

    [(target, vote)] = [(t, m) for t, m in second.send if isinstance(m, CheckpointVote)]
    assert target is None, "broadcast to every other replica"
    assert isinstance(vote, CheckpointVote)
    assert second.persist == [vote], "persisted in the same Output that sends it"
    block = cluster.blocks(2)[1]
    executed = cluster.history[2][-2].event  # replica 2's Executed(2)
    assert isinstance(executed, Executed)
    assert executed.height == 2
    assert vote.replica == 2
    assert vote.checkpoint == Checkpoint(
        kit.chain_id,
        2,
        block.hash,
        executed.state_root,
        executed.log_size,
        executed.log_root,
        block.header.time_ms,
    )
    assert kit.verify(kit.key(2), vote.signature, vote.checkpoint.signing_bytes())
    cluster.assert_write_ahead(2)


def test_2f_votes_do_not_make_a_checkpoint_stable(make_cluster: MakeCluster) -> None:
    cluster = ordered_but_not_executed(make_cluster, 2)
    for index in (0, 1):  # 2f = 2 replicas vote
        cluster.execute(index)
    cluster.run()
    for index in range(4):
        assert cluster.notices(index, StableCheckpoint) == []
        assert cluster.replicas[index].stable is None
        assert set(cluster.replicas[index].slots) == {1, 2}


def test_2f_plus_1_matching_votes_make_a_stable_checkpoint_with_a_quorum_certificate(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.3: 2f + 1 matching CHECKPOINT messages are the proof of a stable checkpoint."""
    cluster = ordered_but_not_executed(make_cluster, 3)
    kit = cluster.kit
    for index in range(4):
        assert set(cluster.replicas[index].slots) == {1, 2, 3}
        cluster.execute(index)
    cluster.run()

    for index in range(4):
        replica = cluster.replicas[index]
        notices = cluster.notices(index, StableCheckpoint)
        assert len(notices) == 1
        notice = notices[0]
        assert isinstance(notice, StableCheckpoint)
        certificate = notice.certificate
        assert certificate.checkpoint == replica.own_checkpoints[2]
        assert certificate.checkpoint.block_hash == cluster.blocks(index)[1].hash
        assert len(certificate.endorsements) == kit.quorum
        assert len({e.signer for e in certificate.endorsements}) == kit.quorum
        verify_certificate(certificate, kit.validators, kit.chain_id, verify_fn=kit.verify)
        assert replica.stable == certificate
        assert replica.stable_height == 2
        # The certificate is persisted in the Output that announces it.
        [output] = [o for o in cluster.outputs(index) if notice in o.notices]
        assert certificate in output.persist
        assert isinstance(output.persist[-1], CheckpointCertificate)


def test_a_stable_checkpoint_garbage_collects_the_log_at_and_below_it(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.3: discard pre-prepares, prepares, commits and checkpoints up to the stable one."""
    cluster = ordered_but_not_executed(make_cluster, 3)
    for index in range(4):
        cluster.execute(index)
    cluster.run()
    for index in range(4):
        replica = cluster.replicas[index]
        assert set(replica.slots) == {3}, "only the entry above the stable checkpoint is kept"
        assert all(seq > 2 for seq in replica.prepared)
        assert all(seq > 2 for seq in replica.committed)
        assert all(height > 2 for height in replica.checkpoint_votes)
        assert all(height >= 2 for height in replica.own_checkpoints)


def test_the_low_water_mark_moves_up_with_the_stable_checkpoint(make_cluster: MakeCluster) -> None:
    """Section 4.3: h becomes the stable checkpoint, so seq <= h is no longer accepted."""
    cluster = ordered_but_not_executed(make_cluster, 2)
    for index in range(4):
        cluster.execute(index)
    cluster.run()
    kit = cluster.kit
    late = kit.prepare(0, 2, b"\x07" * 32, 2)
    replica = cluster.replicas[1]
    output = cluster.receive(1, late)
    assert output == Output()
    assert 2 not in replica.slots


def _diverging_cluster(make_cluster: MakeCluster, *, auto_execute: bool) -> Cluster:
    # Replica 3's executor is faulty: from genesis on its state root differs from the others'.
    return make_cluster(
        auto_execute=auto_execute,
        salts={3: b"faulty"},
        checkpoint_interval=2,
        batch_size_max=1,
        in_flight_max=4,
    )


def _assert_stops_signing(cluster: Cluster, index: int) -> None:
    """Every later event, of every kind, gives an empty Output."""
    kit = cluster.kit
    blocks_before = len(cluster.delivered[index])
    steps_before = len(cluster.history[index])
    cluster.submit(1, kit.tx(b"after divergence"))
    cluster.run()
    assert len(cluster.blocks(0)) == blocks_before + 1, "the others go on"
    cluster.submit(index, kit.tx(b"a request for the diverged replica"))
    cluster.receive(index, Requests((kit.tx(b"a request relayed to it"),)))
    cluster.tick(10_000)
    cluster.run()
    cluster.tick(10_000)
    later = [s for s in cluster.history[index][steps_before:] if not isinstance(s.event, Executed)]
    kinds = {type(getattr(s.event, "message", s.event)).__name__ for s in later}
    assert {"Proposal", "Prepare", "Commit", "Requests", "Tick", "RequestsReceived"} <= kinds
    assert all(s.output == Output() for s in later)
    assert len(cluster.delivered[index]) == blocks_before


def test_a_replica_outvoted_on_its_state_root_diverges_and_stops_signing(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.3: a quorum's checkpoint is the correct state; one that differs from ours
    proves our state wrong. The replica says so (Diverged) and signs nothing more."""
    cluster = _diverging_cluster(make_cluster, auto_execute=True)
    # Replica 3 hears the others' votes only after it has voted itself.
    cluster.hold = lambda sender, receiver, m: isinstance(m, CheckpointVote) and receiver == 3
    cluster.submit(1, *cluster.kit.txs(2))
    cluster.run()
    assert all(cluster.replicas[i].stable_height == 2 for i in (0, 1, 2))
    own = cluster.replicas[3].own_checkpoints[2]
    assert own != cluster.replicas[0].own_checkpoints[2]
    assert own.block_hash == cluster.replicas[0].own_checkpoints[2].block_hash

    cluster.release_held()
    cluster.run()
    diverged = cluster.notices(3, Diverged)
    assert diverged == [Diverged(2, "a quorum signed a different checkpoint")]
    assert cluster.notices(3, StableCheckpoint) == []
    assert cluster.replicas[3].diverged
    _assert_stops_signing(cluster, 3)


def test_a_replica_whose_execution_differs_from_an_adopted_checkpoint_diverges(
    make_cluster: MakeCluster,
) -> None:
    """The same when the quorum's certificate arrives before this replica executes."""
    cluster = _diverging_cluster(make_cluster, auto_execute=False)
    cluster.submit(1, *cluster.kit.txs(2))
    cluster.run()
    for index in (0, 1, 2):
        cluster.execute(index)
    cluster.run()
    assert cluster.replicas[3].stable_height == 2  # adopted from the others' votes
    outputs = cluster.execute(3)
    assert outputs[-1].notices == [Diverged(2, "state differs from the stable checkpoint")]
    assert not any(isinstance(m, CheckpointVote) for o in outputs for _, m in o.send)
    assert cluster.step(3, Tick()) == Output()
    _assert_stops_signing(cluster, 3)
