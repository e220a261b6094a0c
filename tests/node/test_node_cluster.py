"""Four node processes order 1,000 transactions and end with identical chains."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cluster import Cluster

TX_COUNT = 1000


@pytest.mark.cluster
def test_four_nodes_commit_a_thousand_transactions_identically(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster()
    nodes = list(range(cluster.n))
    txs = cluster.make_txs(TX_COUNT)

    started = time.monotonic()
    cluster.submit_all(txs, nodes)
    height = cluster.wait_settled(nodes, timeout=90)
    print(
        f"{TX_COUNT} txs submitted and settled at height {height} in "
        f"{time.monotonic() - started:.1f} s"
    )
    assert height >= 1

    # Every submitted transaction is committed on every node, at the same height.
    by_node = {i: cluster.statuses_of(txs, i) for i in nodes}
    for k, tx in enumerate(txs):
        states = {i: by_node[i][k] for i in nodes}
        assert all(s["state"] == "committed" for s in states.values()), (tx.id, states)
        assert len({s["height"] for s in states.values()}) == 1, (tx.id, states)
        assert len({(s["index"], s["log_index"]) for s in states.values()}) == 1, (tx.id, states)
    committed_heights = {by_node[0][k]["height"] for k in range(TX_COUNT)}
    assert max(committed_heights) <= height

    # Identical chains: the same block hash at every height on all four nodes.
    chains = {i: cluster.block_hashes(i, height) for i in nodes}
    for h in range(1, height + 1):
        hashes = {i: chains[i][h - 1] for i in nodes}
        assert len(set(hashes.values())) == 1, f"block {h} differs: {hashes}"
    for i in nodes:
        reply = cluster.request(i, "GET", f"/v1/blocks/{height + 1}")
        assert reply.status == 404, (cluster.name(i), reply.status)
        assert reply.json()["error"]["code"] == "unknown_block"

    # The blocks hold exactly the submitted transactions, each once.
    ordered: list[str] = []
    for h in range(1, height + 1):
        ordered.extend(cluster.block(0, h)["transactions"])
    assert sorted(ordered) == sorted(tx.id for tx in txs)

    # The latest stable checkpoint agrees (all at the final height, same roots).
    checkpoints = {i: cluster.latest_checkpoint(i) for i in nodes}
    assert {c["height"] for c in checkpoints.values()} == {height}, checkpoints
    for field in ("block_hash", "state_root", "log_root", "log_size"):
        assert len({c[field] for c in checkpoints.values()}) == 1, (field, checkpoints)
    assert checkpoints[0]["block_hash"] == chains[0][-1]
    assert checkpoints[0]["log_size"] == TX_COUNT

    # A duplicate of a committed transaction is answered with its status, not ordered again.
    for i in nodes:
        tx = txs[i]
        reply = cluster.submit(tx.data, i)
        assert reply.status == 200, (cluster.name(i), reply.status, reply.body)
        data = reply.json()
        assert data["tx_id"] == tx.id
        assert data["state"] == "committed"
        assert data["height"] == by_node[i][i]["height"]
    assert cluster.wait_settled(nodes, timeout=30) == height
    assert all(cluster.status(i)["mempool"] == 0 for i in nodes)
