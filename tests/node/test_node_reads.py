"""Reading your own writes: `min_height` on the API's requests, and the SDK that sends it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from cluster import expect_refusal

from client.errors import NodeUnavailable, Refused
from client.sdk import AsyncClient
from ledger.families import evidence

if TYPE_CHECKING:
    from cluster import Cluster, Reply, TxKit


@pytest.mark.cluster
def test_a_read_waits_for_the_height_asked_or_says_the_node_is_behind(
    make_cluster: Callable[..., Cluster], txkit: type[TxKit]
) -> None:
    cluster = make_cluster()
    assert cluster.applicant is not None
    height = cluster.height(0)

    # At or below this node's height: answered at once.
    reply = cluster.request(0, "GET", f"/v1/status?min_height={height}")
    assert reply.status == 200 and reply.json()["height"] >= height

    # A height the chain reaches while the read waits: answered once it is executed.
    answers: list[Reply] = []
    reader = threading.Thread(
        target=lambda: answers.append(
            cluster.request(1, "GET", f"/v1/status?min_height={height + 1}")
        )
    )
    reader.start()
    time.sleep(0.3)
    tx = txkit.evidence(cluster.chain_id, cluster.applicant, 1)[0]
    assert cluster.submit(tx.data, 2).status == 202
    reader.join(timeout=30)
    assert answers and answers[0].status == 200, answers
    assert answers[0].json()["height"] >= height + 1

    # A height far ahead: after the bounded wait, 503 behind (a client tries another node).
    expect_refusal(cluster.request(0, "GET", "/v1/status?min_height=1000000"), 503, "behind")
    # A submission too: admitted only by a node that has executed the height, since its
    # checks read the state (nothing is admitted here).
    late = txkit.evidence(cluster.chain_id, cluster.applicant, 1)[0]
    refused = cluster.request(
        0,
        "POST",
        "/v1/transactions?min_height=1000000",
        body=late.data,
        headers={"Content-Type": "application/msgpack"},
    )
    expect_refusal(refused, 503, "behind")
    unknown = cluster.request(0, "GET", f"/v1/transactions/{late.id}")
    expect_refusal(unknown, 404, "unknown_transaction")
    expect_refusal(cluster.request(0, "GET", "/v1/status?min_height=-1"), 400, "bad_parameter")
    expect_refusal(cluster.request(0, "GET", "/v1/status?min_height=soon"), 400, "bad_parameter")


@pytest.mark.cluster
def test_the_sdk_reads_at_least_the_height_of_its_own_writes(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster()
    assert cluster.applicant is not None and cluster.genesis is not None
    urls = [f"http://127.0.0.1:{cluster.api_port(i)}" for i in range(cluster.n)]

    async def scenario() -> None:
        async with AsyncClient(urls, cluster.genesis, cluster.applicant) as client:
            assert client.seen_height == 0
            item = evidence.Item(os.urandom(32), False, evidence.Kind.DOCUMENT, 1, None)
            registered = await client.register_evidence([item])
            assert client.seen_height >= 1
            evidence_id = registered.ids[0].hex()
            # Each read, from whichever node, carries the height and finds the record.
            for node in range(cluster.n):
                client._preferred = node
                record = await client.record("evidence", evidence_id)
                assert record["id"] in (item.digest, item.digest.hex()), record
            # The height goes with every read: one no node has reached is refused.
            client.observe(client.seen_height + 1_000_000)
            with pytest.raises(Refused) as refused:
                await client.get("/v1/status", node=0)
            assert (refused.value.code, refused.value.status) == ("behind", 503)
            # And with every submission: no node admits it, and none has it.
            other = evidence.Item(os.urandom(32), False, evidence.Kind.DOCUMENT, 1, None)
            tx = client.build(evidence.FAMILY, evidence.REGISTER, evidence.Register((other,)))
            with pytest.raises(NodeUnavailable):
                await client.submit(tx)
            for node in range(cluster.n):
                reply = cluster.request(node, "GET", f"/v1/transactions/{tx.id.hex()}")
                expect_refusal(reply, 404, "unknown_transaction")

    asyncio.run(scenario())
