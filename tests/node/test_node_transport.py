"""The peer transport in one process: two institutions' transports over real mutual TLS.

A stream carries messages in order and is reopened after the peer restarts;
a peer without the stream is sent batches by POST; a malformed frame closes
the stream without reaching the replica.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from harness import free_ports

from consensus.messages import Message, Prepare, encode_message
from consensus.types import ReplicaId, SeqNo, View
from ledger.families.governance import Member
from ledger.genesis import Genesis
from node.material import InstitutionSpec, create_consortium
from node.transport import (
    GENESIS_HEADER,
    MESSAGES_PATH,
    SENDER_HEADER,
    STREAM_PATH,
    TlsFiles,
    Transport,
    client_context,
    server_context,
)

WAIT_S = 10.0
SENDER, RECEIVER = "sender", "receiver"


def prepare(seq: int) -> Prepare:
    """A message the transport carries as bytes (signatures are the replica's business)."""
    return Prepare(View(0), SeqNo(seq), bytes([seq % 256]) * 32, ReplicaId(0), b"\x00" * 64)


@dataclass
class Institution:
    root: Path
    genesis: Genesis
    name: str
    received: list[Message] = field(default_factory=list)

    @property
    def tls(self) -> TlsFiles:
        folder = self.root / self.name
        return TlsFiles(folder / "tls.crt", folder / "tls.key", self.root / "ca.crt")

    def member(self) -> Member:
        entry = next(i for i in self.genesis.institutions if i.name == self.name)
        node = entry.node
        key = bytes.fromhex(node.key)
        return Member(entry.name, entry.role, key, key, node.host, node.peer_port, node.api_port)

    def transport(self) -> Transport:
        return Transport(self.genesis, self.name, self.tls, self.received.append)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


async def no_blocks(request: web.Request) -> web.Response:
    return web.Response(status=404)


async def serve(
    transport: Transport,
    port: int,
    *,
    stream: bool = True,
    blocks: Callable[[web.Request], Any] = no_blocks,
) -> web.AppRunner:
    """The receiver's peer port; without the stream route, as a node that predates it."""
    app = transport.peer_app(blocks)
    if not stream:
        app = web.Application()
        app.router.add_post(MESSAGES_PATH, transport.handle_messages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context(transport.tls)).start()
    return runner


@pytest.fixture
def institutions(tmp_path: Path) -> tuple[Institution, Institution]:
    ports = free_ports(4)
    specs = [
        InstitutionSpec(SENDER, "notary", peer_port=ports[0], api_port=ports[1]),
        InstitutionSpec(RECEIVER, "enterprise", peer_port=ports[2], api_port=ports[3]),
    ]
    root = tmp_path / "consortium"
    genesis = create_consortium(root, specs, chain_id="transport-test")
    return Institution(root, genesis, SENDER), Institution(root, genesis, RECEIVER)


@pytest.fixture
async def sending(
    institutions: tuple[Institution, Institution],
) -> AsyncIterator[tuple[Transport, Institution]]:
    sender, receiver = institutions
    transport = sender.transport()
    await transport.start([sender.member(), receiver.member()])
    try:
        yield transport, receiver
    finally:
        await transport.stop()


async def test_a_stream_carries_messages_in_order_and_reopens_after_a_restart(
    sending: tuple[Transport, Institution],
) -> None:
    transport, receiver = sending
    port = receiver.member().peer_port
    inbound = receiver.transport()
    runner = await serve(inbound, port)
    link = next(iter(transport.links.values()))
    await until(lambda: link.reachable)
    for seq in range(1, 201):
        transport.send(None, prepare(seq))
    await until(lambda: len(receiver.received) == 200)
    assert receiver.received == [prepare(seq) for seq in range(1, 201)]
    assert len(inbound._streams) == 1  # one connection carried them all
    assert link.use_stream

    # The receiver stops: its port refuses new streams until it is gone (so none keeps
    # its shutdown waiting), then it restarts; the sender reopens the stream and goes on.
    await inbound.stop()
    await until(lambda: not link.reachable)
    await asyncio.sleep(0.5)  # the sender tries again meanwhile
    assert not link.reachable and not inbound._streams
    await runner.cleanup()
    inbound = receiver.transport()
    runner = await serve(inbound, port)
    await until(lambda: link.reachable)
    transport.send(None, prepare(201))
    await until(lambda: receiver.received[-1] == prepare(201))
    assert link.use_stream
    await inbound.stop()
    await runner.cleanup()


async def test_a_peer_without_the_stream_is_sent_batches_by_post(
    sending: tuple[Transport, Institution],
) -> None:
    transport, receiver = sending
    inbound = receiver.transport()
    runner = await serve(inbound, receiver.member().peer_port, stream=False)
    link = next(iter(transport.links.values()))
    await until(lambda: not link.use_stream)
    for seq in range(1, 51):
        transport.send(None, prepare(seq))
    await until(lambda: len(receiver.received) == 50)
    assert receiver.received == [prepare(seq) for seq in range(1, 51)]
    assert link.reachable
    await runner.cleanup()


@pytest.mark.parametrize(
    "frame",
    [b"\xc1", b"\x93\x01\x02\x03", "text, not binary"],
    ids=["not msgpack", "not byte strings", "text frame"],
)
async def test_a_malformed_frame_closes_the_stream_and_reaches_no_replica(
    institutions: tuple[Institution, Institution], frame: bytes | str
) -> None:
    sender, receiver = institutions
    inbound = receiver.transport()
    runner = await serve(inbound, receiver.member().peer_port)
    headers = {GENESIS_HEADER: sender.genesis.genesis_hash, SENDER_HEADER: SENDER}
    connector = aiohttp.TCPConnector(ssl=client_context(sender.tls))
    try:
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.ws_connect(
                f"https://127.0.0.1:{receiver.member().peer_port}{STREAM_PATH}",
                headers=headers,
                server_hostname=RECEIVER,
            ) as stream,
        ):
            if isinstance(frame, str):
                await stream.send_str(frame)
            else:
                await stream.send_bytes(frame)
            closing = await stream.receive(timeout=WAIT_S)
            assert closing.type is aiohttp.WSMsgType.CLOSE, closing
            assert closing.data == aiohttp.WSCloseCode.UNSUPPORTED_DATA
        assert receiver.received == []
        await until(lambda: not inbound._streams)
    finally:
        await inbound.stop()
        await runner.cleanup()


async def test_a_peer_that_goes_while_its_ping_is_answered_is_logged_not_raised(
    institutions: tuple[Institution, Institution], caplog: pytest.LogCaptureFixture
) -> None:
    """A peer paused or killed mid-stream: its last ping is read after its connection
    closed, and the pong cannot be written. That used to escape the handler as an
    error with a traceback in the log; it is one line now."""
    sender, receiver = institutions
    inbound = receiver.transport()
    port = receiver.member().peer_port
    runner = await serve(inbound, port)
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(sender.tls), server_hostname=RECEIVER
        )
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {STREAM_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"{GENESIS_HEADER}: {sender.genesis.genesis_hash}\r\n{SENDER_HEADER}: {SENDER}\r\n"
                "\r\n"
            ).encode()
        )
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        await until(lambda: len(inbound._streams) == 1)
        mask = os.urandom(4)
        payload = b"are you there"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        # A masked PING and the TLS close right behind it, read by the server together.
        writer.write(bytes([0x89, 0x80 | len(payload)]) + mask + masked)
        writer.close()
        await until(lambda: not inbound._streams)
    finally:
        await inbound.stop()
        await runner.cleanup()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_catch_up_answer_is_read_only_up_to_its_bound(
    sending: tuple[Transport, Institution],
) -> None:
    """A peer that answers a fetch with more than the asker reads (a lying peer could
    send without end) is cut off at the bound, not held in memory."""
    transport, receiver = sending
    answer = os.urandom(1024 * 1024)

    async def blocks(request: web.Request) -> web.Response:
        return web.Response(body=answer)

    inbound = receiver.transport()
    runner = await serve(inbound, receiver.member().peer_port, blocks=blocks)
    try:
        peer = receiver.member().node_key
        path = "/peer/v1/blocks?from=1"
        assert await transport.fetch(peer, path, len(answer)) == answer
        assert await transport.fetch(peer, path, len(answer) - 1) is None
    finally:
        await inbound.stop()
        await runner.cleanup()


async def test_a_dead_peers_queue_keeps_only_the_newest_messages_up_to_its_bound(
    sending: tuple[Transport, Institution], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages for a peer that is away wait in a queue bounded in bytes; the oldest go
    first, and when the peer is back it gets the newest, in order."""
    bound_bytes = 20_000
    monkeypatch.setattr("node.transport.QUEUE_BYTES_MAX", bound_bytes)
    transport, receiver = sending
    link = next(iter(transport.links.values()))
    for seq in range(1, 1001):
        transport.send(None, prepare(seq))
        assert link.queued_bytes <= bound_bytes
    assert link.dropped > 0 and not link.reachable

    inbound = receiver.transport()
    runner = await serve(inbound, receiver.member().peer_port)
    try:
        await until(lambda: bool(receiver.received) and receiver.received[-1] == prepare(1000))
        first = receiver.received[0]
        assert isinstance(first, Prepare) and first.seq > 1
        assert receiver.received == [prepare(seq) for seq in range(first.seq, 1001)]
        held_bytes = sum(len(encode_message(m)) for m in receiver.received)
        assert held_bytes <= bound_bytes, "no more than the bound was held"
    finally:
        await inbound.stop()
        await runner.cleanup()
