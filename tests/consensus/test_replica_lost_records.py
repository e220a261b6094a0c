"""A primary whose write-ahead records are lost (a restored backup, a new disk).

Without its records it would propose a second, different batch for a sequence
number it already proposed in the same view: an honest replica equivocating.
Restarted as `rejoining` it proposes and votes nothing until it is past all of
that (consensus.recovery, PBFT's recovery estimate of the high watermark).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from consensus.messages import Commit, Prepare, PrePrepare, Proposal, Status
from consensus.types import ReplicaId, View

if TYPE_CHECKING:
    from conftest import Cluster

MakeCluster = Callable[..., "Cluster"]


def primary_with_batches_in_flight(make_cluster: MakeCluster) -> tuple[Cluster, list[PrePrepare]]:
    cluster = make_cluster(in_flight_max=4, batch_size_max=1)
    cluster.filter = lambda sender, receiver, m: not isinstance(m, Prepare | Commit)
    cluster.submit(0, *cluster.kit.txs(3, prefix="before the loss"))
    cluster.run()
    sent = [m.pre_prepare for m in cluster.sent(0, Proposal) if isinstance(m, Proposal)]
    assert [p.seq for p in sent] == [1, 2, 3]
    return cluster, sent


def restart_without_records(cluster: Cluster, rejoining: bool) -> list[PrePrepare]:
    restored = dataclasses.replace(cluster.restored(0, []), rejoining=rejoining)
    cluster.replicas[0] = cluster.kit.replica(0, cluster.params, restored)
    cluster.now_ms += 10
    output = cluster.submit(0, cluster.kit.tx(b"after the loss", cluster.now_ms))
    return [m.pre_prepare for _, m in output.send if isinstance(m, Proposal)]


def test_a_primary_that_ignores_its_lost_records_equivocates(make_cluster: MakeCluster) -> None:
    cluster, before = primary_with_batches_in_flight(make_cluster)
    after = restart_without_records(cluster, rejoining=False)
    assert after, "it proposes at once"
    first = after[0]
    assert (first.view, first.seq) == (before[0].view, before[0].seq)
    assert first.digest != before[0].digest, "a second batch for one (view, seq)"


def test_a_rejoining_primary_proposes_nothing_until_it_is_past_its_old_votes(
    make_cluster: MakeCluster,
) -> None:
    cluster, _ = primary_with_batches_in_flight(make_cluster)
    assert restart_without_records(cluster, rejoining=True) == []
    assert cluster.replicas[0].rejoining


def test_a_peer_claiming_a_height_no_one_has_cannot_keep_a_rejoining_replica_out(
    make_cluster: MakeCluster,
) -> None:
    """The rejoin floor is the (f + 1)-th highest stable height that a quorum of peers
    claims, plus a window: one liar's height is outvoted. (It used to be the highest of
    the first f + 1 claims, so a liar among them pinned the floor out of reach.)"""
    cluster = make_cluster()
    restart_without_records(cluster, rejoining=True)
    rejoining = cluster.replicas[0]
    kit = cluster.kit
    cluster.receive(0, kit.sign(Status(0, View(0), 2**62, 2**62, ReplicaId(3), b"")))
    cluster.receive(0, kit.sign(Status(0, View(0), 0, 0, ReplicaId(1), b"")))
    assert rejoining.rejoin_floor is None, "f + 1 claims, one of them perhaps a lie"
    cluster.receive(0, kit.sign(Status(0, View(0), 0, 0, ReplicaId(2), b"")))
    assert rejoining.rejoin_floor == cluster.params.window_size
    assert rejoining.rejoining


def test_a_rejoining_replica_votes_again_once_the_chain_passes_the_honest_floor(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(window_size=4, batch_size_max=1)
    index = 3
    restored = dataclasses.replace(cluster.restored(index, []), rejoining=True)
    cluster.replicas[index] = cluster.kit.replica(index, cluster.params, restored)
    rejoining = cluster.replicas[index]
    kit = cluster.kit
    lie = Status(0, View(0), 2**62, 2**62, ReplicaId(0), b"")
    for status in (lie, Status(0, View(0), 0, 0, ReplicaId(1), b"")):
        cluster.receive(index, kit.sign(status))
    cluster.receive(index, kit.sign(Status(0, View(0), 0, 0, ReplicaId(2), b"")))
    assert rejoining.rejoin_floor == 4
    for i in range(6):
        cluster.now_ms += 10
        cluster.submit(0, kit.tx(f"after the loss {i}".encode(), cluster.now_ms))
        cluster.run()
    assert not rejoining.rejoining
    assert rejoining.stable_height >= 4
    assert not [m for m in cluster.sent(index, Prepare) if isinstance(m, Prepare) and m.seq <= 4]
    cluster.now_ms += 10
    cluster.submit(0, kit.tx(b"with the rejoined replica", cluster.now_ms))
    cluster.run()
    assert rejoining.last_delivered == cluster.replicas[0].last_delivered == 7
    assert [m.seq for m in cluster.sent(index, Prepare) if isinstance(m, Prepare)][-1] == 7
