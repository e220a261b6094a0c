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

from consensus.messages import Commit, Prepare, PrePrepare, Proposal

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
