"""Batched submission: `POST /v1/transactions/batch` and the SDK's `submit_many`.

Each transaction of a batch is admitted or refused on its own, with what a
single submission of it would have answered; a batch malformed as a whole
admits nothing; what is admitted commits once, and what is refused is nowhere.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from cluster import expect_refusal

from client.errors import Refused
from client.sdk import AsyncClient
from ledger.encoding import pack
from ledger.families import evidence
from ledger.genesis import ConsensusSettings
from ledger.keys import PrivateKey
from ledger.tx import BATCH_TRANSACTIONS_MAX, Transaction

if TYPE_CHECKING:
    from cluster import Cluster, Reply, TxKit

MSGPACK = {"Content-Type": "application/msgpack"}
JSON = {"Content-Type": "application/json"}


def post_batch(cluster: Cluster, node: int, body: bytes, headers: dict[str, str]) -> Reply:
    return cluster.request(node, "POST", "/v1/transactions/batch", body=body, headers=headers)


def one_item() -> evidence.Register:
    return evidence.Register(
        (evidence.Item(os.urandom(32), False, evidence.Kind.DOCUMENT, 1, None),)
    )


def mempools(cluster: Cluster) -> list[int]:
    return [cluster.status(i)["mempool"] for i in range(cluster.n)]


@pytest.mark.cluster
def test_each_transaction_of_a_batch_is_admitted_or_refused_on_its_own(
    make_cluster: Callable[..., Cluster], txkit: type[TxKit]
) -> None:
    cluster = make_cluster()
    assert cluster.applicant is not None
    applicant, chain_id = cluster.applicant, cluster.chain_id
    before = cluster.height(0)

    good = txkit.evidence(chain_id, applicant, 3)
    signature = bytearray(good[0].tx.signature)
    signature[7] ^= 0x01
    forged = Transaction(good[0].tx.body, bytes(signature)).encode()
    stranger = txkit.evidence(chain_id, PrivateKey.generate(), 1)[0]
    items = [
        good[0].data,
        b"\xc1 not a transaction",
        good[1].data,
        forged,
        stranger.data,
        good[2].data,
        good[0].data,  # the same transaction again in the same batch
    ]
    reply = post_batch(cluster, 1, pack(items), MSGPACK)
    assert reply.status == 200, reply.body[:300]
    results = reply.json()["results"]
    assert [r["status"] for r in results] == [202, 400, 202, 400, 403, 202, 200]
    assert [r.get("error", {}).get("code") for r in results] == [
        None,
        "bad_encoding",
        None,
        "bad_signature",
        "not_enrolled",
        None,
        None,
    ]
    assert [r.get("tx_id") for r in results] == [
        good[0].id,
        None,
        good[1].id,
        None,
        None,
        good[2].id,
        good[0].id,
    ]
    assert all(r["state"] == "pending" for r in results if "error" not in r)

    # What was admitted commits everywhere, once; what was refused is nowhere.
    for tx in good:
        for node in range(cluster.n):
            cluster.wait_committed(tx.id, node, timeout=30)
    height = cluster.wait_settled(list(range(cluster.n)), timeout=30)
    ordered = [
        tx_id
        for h in range(before + 1, height + 1)
        for tx_id in cluster.block(0, h)["transactions"]
    ]
    assert sorted(ordered) == sorted(tx.id for tx in good)
    assert cluster.request(0, "GET", f"/v1/transactions/{stranger.id}").status == 404

    # The same batch again, to another node: every good one answers as committed.
    again = post_batch(cluster, 2, pack([tx.data for tx in good]), MSGPACK).json()["results"]
    assert [(r["status"], r["state"]) for r in again] == [(200, "committed")] * 3

    # JSON works like msgpack.
    extra = txkit.evidence(chain_id, applicant, 1)[0]
    reply = post_batch(cluster, 0, json.dumps({"transactions": [extra.data.hex()]}).encode(), JSON)
    assert reply.status == 200, reply.body[:300]
    assert reply.json()["results"] == [{"status": 202, "tx_id": extra.id, "state": "pending"}]
    cluster.wait_committed(extra.id, 0, timeout=30)


@pytest.mark.cluster
def test_a_malformed_batch_admits_nothing(
    make_cluster: Callable[..., Cluster], txkit: type[TxKit]
) -> None:
    cluster = make_cluster()
    assert cluster.applicant is not None
    good = txkit.evidence(cluster.chain_id, cluster.applicant, BATCH_TRANSACTIONS_MAX + 1)
    before = cluster.height(0)
    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        ("not msgpack", b"\xc1\xc1", MSGPACK, 400, "bad_request"),
        ("not an array", pack(good[0].data), MSGPACK, 400, "bad_request"),
        ("not byte strings", pack([good[0].data, 7]), MSGPACK, 400, "bad_request"),
        ("empty", pack([]), MSGPACK, 400, "bad_request"),
        ("too many", pack([tx.data for tx in good]), MSGPACK, 413, "too_large"),
        ("JSON without transactions", b"{}", JSON, 400, "bad_request"),
        ("JSON not hex", b'{"transactions": ["zz"]}', JSON, 400, "bad_request"),
    ]
    for name, body, headers, status, code in cases:
        try:
            expect_refusal(post_batch(cluster, 0, body, headers), status, code)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    assert mempools(cluster) == [0] * cluster.n
    assert cluster.wait_settled(list(range(cluster.n)), timeout=30, quiet_polls=3) == before


@pytest.mark.cluster
def test_the_sdk_submits_many_and_reports_each_refusal(
    make_cluster: Callable[..., Cluster], txkit: type[TxKit]
) -> None:
    cluster = make_cluster()
    assert cluster.applicant is not None and cluster.genesis is not None
    applicant = cluster.applicant
    urls = [f"http://127.0.0.1:{cluster.api_port(i)}" for i in range(cluster.n)]

    async def scenario() -> tuple[list[Transaction], list[str | Refused], list[Any]]:
        async with AsyncClient(urls, cluster.genesis, applicant) as client:
            # More than one request's worth, so the SDK splits them.
            txs = [
                client.build(evidence.FAMILY, evidence.REGISTER, one_item())
                for _ in range(BATCH_TRANSACTIONS_MAX + 5)
            ]
            stranger = AsyncClient(urls, cluster.genesis, PrivateKey.generate())
            refused = stranger.build(evidence.FAMILY, evidence.REGISTER, one_item())
            outcomes = await client.submit_many([*txs, refused])
            receipts = await asyncio.gather(*(client.wait(tx.id.hex()) for tx in txs[::100]))
            return txs, outcomes, receipts

    txs, outcomes, receipts = asyncio.run(scenario())
    assert outcomes[:-1] == [tx.id.hex() for tx in txs]
    refusal = outcomes[-1]
    assert isinstance(refusal, Refused)
    assert (refusal.code, refusal.status) == ("not_enrolled", 403)
    assert [r.tx_id for r in receipts] == [tx.id.hex() for tx in txs[::100]]


@pytest.mark.cluster
def test_a_batch_beyond_the_mempools_room_is_refused_past_it(
    make_cluster: Callable[..., Cluster], txkit: type[TxKit]
) -> None:
    """Admitted means ordered: what the mempool has no room for gets 503, not a 202 that
    the replica would then drop."""
    cluster = make_cluster(consensus=ConsensusSettings(pending_requests_max=5))
    assert cluster.applicant is not None
    txs = txkit.evidence(cluster.chain_id, cluster.applicant, 8)
    reply = post_batch(cluster, 0, pack([tx.data for tx in txs]), MSGPACK)
    assert reply.status == 200, reply.body[:300]
    results = reply.json()["results"]
    assert [r["status"] for r in results] == [202] * 5 + [503] * 3
    assert {r["error"]["code"] for r in results[5:]} == {"mempool_full"}
    for tx in txs[:5]:
        cluster.wait_committed(tx.id, 0, timeout=30)
    cluster.wait_settled(list(range(cluster.n)), timeout=30)
    for tx in txs[5:]:
        assert cluster.request(0, "GET", f"/v1/transactions/{tx.id}").status == 404
