"""What a node refuses: strangers on the peer port, and bad transactions on the public API.

None of the refused requests may change the chain: heights are compared on
every node before and after (apart from the one transaction submitted
legitimately to test replays).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import http.client
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cluster import expect_refusal

from ledger.encoding import pack
from ledger.keys import PrivateKey
from ledger.tx import TX_BYTES_MAX, Transaction
from node.transport import GENESIS_HEADER, MESSAGES_PATH, SENDER_HEADER, STREAM_PATH

if TYPE_CHECKING:
    from cluster import Cluster, TxKit

HANDSHAKE_REFUSED = (
    ssl.SSLError,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    http.client.RemoteDisconnected,
)


PEER_ENDPOINTS = {
    # endpoint: (how a peer reaches it, the status that lets a member in)
    "messages": (("POST", MESSAGES_PATH), 204),
    "stream": (("GET", STREAM_PATH), 101),
}


def websocket_upgrade() -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }


def peer_call(
    cluster: Cluster,
    target: int,
    certificate: Path | None,
    key: Path | None,
    *,
    headers: dict[str, str],
    body: bytes = b"",
    endpoint: str = "messages",
) -> tuple[int, str]:
    """Call a node's peer endpoint over TLS (a batch of messages by POST, or the upgrade
    that opens a stream), trusting the consortium CA for the server."""
    (method, path), _ = PEER_ENDPOINTS[endpoint]
    if endpoint == "stream":
        headers = {**headers, **websocket_upgrade()}
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(cluster.root / "ca.crt")
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if certificate is not None and key is not None:
        context.load_cert_chain(str(certificate), str(key))
    connection = http.client.HTTPSConnection(
        "127.0.0.1", cluster.peer_port(target), context=context, timeout=10
    )
    try:
        connection.request(
            method,
            path,
            body=body if method == "POST" else None,
            headers={"Content-Type": "application/msgpack", **headers},
        )
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def member_headers(cluster: Cluster, sender: int, form: str = "name") -> dict[str, str]:
    """The headers a member node sends; `form` is how it names itself (index or name)."""
    assert cluster.genesis is not None
    value = cluster.name(sender) if form == "name" else str(sender)
    return {GENESIS_HEADER: cluster.genesis.genesis_hash, SENDER_HEADER: value}


def heights(cluster: Cluster) -> list[int]:
    return [cluster.height(i) for i in range(cluster.n)]


@pytest.fixture
def running(make_cluster: Callable[..., Cluster]) -> Cluster:
    return make_cluster()


@pytest.mark.cluster
@pytest.mark.parametrize("endpoint", sorted(PEER_ENDPOINTS))
def test_peer_port_refuses_strangers(
    running: Cluster, cluster_factory: Callable[..., Cluster], endpoint: str
) -> None:
    cluster = running
    _, admitted = PEER_ENDPOINTS[endpoint]
    call = functools.partial(peer_call, endpoint=endpoint)
    target = 0
    member = 3
    member_cert = cluster.directory(member) / "tls.crt"
    member_key = cluster.directory(member) / "tls.key"
    before = heights(cluster)

    # Control: a member with the right headers is let in (an empty batch of messages).
    # (The sender header names the sending node by institution or by replica index,
    # depending on the transport's version: use whichever this node accepts.)
    answers = {}
    for form in ("name", "index"):
        answers[form] = call(
            cluster,
            target,
            member_cert,
            member_key,
            headers=member_headers(cluster, member, form),
            body=pack([]),
        )
    accepted = [form for form, (status, _) in answers.items() if status == admitted]
    assert len(accepted) == 1, answers
    form = accepted[0]

    # A certificate from another consortium's CA, even with a member's name (every
    # consortium here has a "notary-office"), is refused in the handshake or with 403.
    other = cluster_factory("other-consortium")
    for stranger in range(other.n):
        assert other.name(stranger) == cluster.name(stranger)
        try:
            status, text = call(
                cluster,
                target,
                other.directory(stranger) / "tls.crt",
                other.directory(stranger) / "tls.key",
                headers=member_headers(cluster, stranger, form),
                body=pack([]),
            )
        except HANDSHAKE_REFUSED:
            continue
        assert status == 403, (other.name(stranger), status, text)

    # No client certificate at all: refused too.
    try:
        status, text = call(
            cluster, target, None, None, headers=member_headers(cluster, member, form)
        )
    except HANDSHAKE_REFUSED:
        pass
    else:
        assert status == 403, (status, text)

    # A member's certificate with another genesis: 409, naming the genesis.
    assert cluster.genesis is not None
    wrong = {**member_headers(cluster, member, form), GENESIS_HEADER: "ab" * 32}
    status, text = call(cluster, target, member_cert, member_key, headers=wrong, body=pack([]))
    assert status == 409, (status, text)
    assert "genesis" in text.lower(), text
    assert cluster.genesis.genesis_hash in text, text

    # A member's certificate claiming to be another replica: 403.
    status, text = call(
        cluster,
        target,
        member_cert,
        member_key,
        headers=member_headers(cluster, 1, form),
        body=pack([]),
    )
    assert status == 403, (status, text)

    assert heights(cluster) == before
    assert all(cluster.running(i) for i in range(cluster.n))


@pytest.mark.cluster
def test_public_api_refuses_bad_transactions_without_changing_the_chain(
    running: Cluster, txkit: type[TxKit]
) -> None:
    cluster = running
    assert cluster.applicant is not None
    applicant = cluster.applicant
    chain_id = cluster.chain_id
    nodes = list(range(cluster.n))
    before = heights(cluster)

    def bad_signature() -> bytes:
        tx = txkit.signed(txkit.evidence_body(chain_id, applicant), applicant).tx
        signature = bytearray(tx.signature)
        signature[7] ^= 0x01
        return Transaction(tx.body, bytes(signature)).encode()

    def signed_body(**changes: Any) -> bytes:
        body = txkit.evidence_body(chain_id, applicant)
        return txkit.signed(dataclasses.replace(body, **changes), applicant).data

    stranger = PrivateKey.generate()
    cases: list[tuple[str, Callable[[], bytes], int, str]] = [
        ("malformed", lambda: b"\xc1 this is not msgpack", 400, "bad_encoding"),
        (
            "truncated",
            lambda: txkit.evidence(chain_id, applicant, 1)[0].data[:-5],
            400,
            "bad_encoding",
        ),
        ("oversize", lambda: b"\x00" * (TX_BYTES_MAX + 1), 413, "too_large"),
        ("bad signature", bad_signature, 400, "bad_signature"),
        (
            "expired",
            lambda: txkit.evidence(chain_id, applicant, 1, expires_in_ms=-60_000)[0].data,
            400,
            "expired",
        ),
        (
            "expiry too far",
            lambda: txkit.evidence(chain_id, applicant, 1, expires_in_ms=3_600_000)[0].data,
            400,
            "expiry_too_far",
        ),
        ("wrong chain", lambda: signed_body(chain_id="some-other-chain"), 400, "wrong_chain"),
        ("unenrolled", lambda: txkit.evidence(chain_id, stranger, 1)[0].data, 403, "not_enrolled"),
        ("unknown operation", lambda: signed_body(operation="erase"), 400, "unknown_operation"),
        ("unknown family", lambda: signed_body(family="lottery"), 400, "unknown_operation"),
    ]
    for name, make, status, code in cases:
        for i in nodes:
            reply = cluster.submit(make(), i)
            try:
                expect_refusal(reply, status, code)
            except AssertionError as exc:
                raise AssertionError(f"{name} on {cluster.name(i)}: {exc}") from None

    # A JSON body that is not {"transaction": hex}.
    reply = cluster.request(
        0, "POST", "/v1/transactions", body=b"{}", headers={"Content-Type": "application/json"}
    )
    expect_refusal(reply, 400, "bad_request")

    # Nothing was admitted anywhere: no pending transaction, no new block.
    assert all(cluster.status(i)["mempool"] == 0 for i in nodes)
    assert cluster.wait_settled(nodes, timeout=30, quiet_polls=3) == before[0]
    assert heights(cluster) == before

    # One legitimate transaction commits; replaying it anywhere is answered with its
    # committed status (200) and orders nothing again.
    tx = txkit.evidence(chain_id, applicant, 1)[0]
    reply = cluster.submit(tx.data, 1)
    assert reply.status == 202, reply.body
    assert reply.json() == {"tx_id": tx.id, "state": "pending"}
    committed = {i: cluster.wait_committed(tx.id, i, timeout=30) for i in nodes}
    height = cluster.wait_settled(nodes, timeout=30)
    assert {c["height"] for c in committed.values()} == {height}
    assert height == before[0] + 1
    for i in nodes:
        for _ in range(2):
            reply = cluster.submit(tx.data, i)
            assert reply.status == 200, (cluster.name(i), reply.status, reply.body)
            data = reply.json()
            assert data["tx_id"] == tx.id
            assert data["state"] == "committed"
            assert data["height"] == height
        assert cluster.status(i)["mempool"] == 0
    assert cluster.wait_settled(nodes, timeout=30) == height
    assert heights(cluster) == [height] * cluster.n
    # The replayed transaction is in exactly one block.
    in_blocks = [h for h in range(1, height + 1) if tx.id in cluster.block(0, h)["transactions"]]
    assert in_blocks == [height]
