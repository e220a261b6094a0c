"""Node-to-node transport: signed messages as msgpack over a WebSocket per peer, with mutual TLS.

Rules:
- Both ends present certificates from the consortium's CA. The server maps the
  client certificate's common name to an institution of the genesis and
  refuses anyone else; the client checks the server certificate against the
  institution it meant to reach (its name is in the certificate's SANs). On
  top of that every consensus message is signed by the sender's node key and
  checked by the replica.
- Peers must share the genesis: each request carries its hash, and a
  mismatch is refused with a 409 that says so.
- One stream per peer and direction: the sender opens a WebSocket to the
  peer's `/peer/v1/stream` (the upgrade is authenticated like any peer
  request) and writes each batch of queued messages as one binary frame. No
  reply is awaited: a message goes out as soon as the replica emits it,
  instead of waiting behind the previous request's response, and a node
  spends a frame, not an HTTP request and response, per batch. A round of
  PBFT is a handful of small messages per peer, so at light load this
  per-message cost, not the transactions, set a node's CPU per block.
- Outbound messages are coalesced per peer while the stream is busy; each
  peer's queue is bounded (oldest messages are dropped, the protocol
  re-sends what matters), so a slow or dead peer never stalls the others; a
  broken stream is reopened with exponential backoff. A message written into
  a stream that then breaks is lost like a dropped packet: PBFT re-sends.
- `POST /peer/v1/messages` (one batch per request) stays: a peer whose node
  predates the stream gets a 404 on the upgrade and is sent batches by POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from consensus.messages import Message, decode_message, encode_message
from ledger.encoding import pack, unpack_byte_strings
from ledger.errors import DecodeError
from ledger.families.governance import Member
from ledger.genesis import Genesis

log = logging.getLogger("notarychain.transport")

GENESIS_HEADER: Final = "X-Notarychain-Genesis"
SENDER_HEADER: Final = "X-Notarychain-Sender"
MESSAGE_BYTES_MAX: Final = 16 * 1024 * 1024
POST_BYTES_MAX: Final = 4 * 1024 * 1024
QUEUE_BYTES_MAX: Final = 16 * 1024 * 1024
"""Per peer. A dead or paused peer's queue fills to this and stays there, on every other
node, for as long as it is away: at a thousand transactions per second that is about
half a minute of traffic, older than anything the peer could use (it fetches blocks
it missed), so a larger bound would only be memory held for a peer that is gone."""
READ_CHUNK_BYTES: Final = 256 * 1024
BACKOFF_MIN_S: Final = 0.05
BACKOFF_MAX_S: Final = 2.0
REQUEST_TIMEOUT_S: Final = 10.0
HEARTBEAT_S: Final = 5.0
"""Ping period on a stream; a peer silent past it (a half-open connection) is dropped."""
CLOSE_TIMEOUT_S: Final = 1.0
STREAM_STABLE_S: Final = 1.0
"""A stream that lasted this long resets the reconnection backoff."""
STREAM_RETRY_S: Final = 60.0
"""A peer that had no stream (404) is offered one again after this long."""
STREAM_PATH: Final = "/peer/v1/stream"
MESSAGES_PATH: Final = "/peer/v1/messages"
NETWORK_ERRORS: Final = (aiohttp.ClientError, TimeoutError, OSError, RuntimeError)
"""What a peer's connection may raise when it fails; aiohttp raises RuntimeError
("Connection closed.") when a connection drops while a body is read."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    certificate: Path
    key: Path
    ca: Path
    passphrase: bytes | None = None


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
    context.load_cert_chain(str(tls.certificate), str(tls.key), password=tls.passphrase)
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def client_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca))
    context.load_cert_chain(str(tls.certificate), str(tls.key), password=tls.passphrase)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def certificate_common_name(peercert: dict[str, Any] | None) -> str | None:
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class PeerLink:
    """The outbound path to one peer: a bounded queue drained by one sender task."""

    def __init__(self, transport: Transport, member: Member) -> None:
        self.transport = transport
        self.node_key = member.node_key
        self.name = member.name
        self.url = f"https://{member.host}:{member.peer_port}"
        self.host = member.host
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.reachable = False
        self.dropped = 0
        self.failures = 0
        self.use_stream = True
        """False after the peer answered the upgrade with 404 (a node without streams)."""
        self.stream_retry_at = 0.0

    def enqueue(self, data: bytes) -> None:
        self.queue.append(data)
        self.queued_bytes += len(data)
        while self.queued_bytes > QUEUE_BYTES_MAX and len(self.queue) > 1:
            self.queued_bytes -= len(self.queue.popleft())
            self.dropped += 1
        self.wakeup.set()

    def _take_batch(self) -> list[bytes]:
        batch: list[bytes] = []
        size = 0
        while self.queue and (not batch or size + len(self.queue[0]) <= POST_BYTES_MAX):
            data = self.queue.popleft()
            self.queued_bytes -= len(data)
            batch.append(data)
            size += len(data)
        return batch

    async def run(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            if not self.use_stream and time.monotonic() >= self.stream_retry_at:
                self.use_stream = True  # the peer may have been upgraded meanwhile
            if self.use_stream:
                stream = await self._open_stream()
                if stream is not None:
                    log.info("stream to peer %s open", self.name)
                    self.reachable = True
                    self.failures = 0
                    opened = time.monotonic()
                    await self._send_over(stream)
                    self.reachable = False
                    log.info("stream to peer %s closed", self.name)
                    if time.monotonic() - opened >= STREAM_STABLE_S:
                        backoff = BACKOFF_MIN_S  # a peer that drops us at once waits longer
            else:
                if not self.queue:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wakeup.wait(), STREAM_RETRY_S)
                self.wakeup.clear()
                while self.queue:
                    if not await self._post(self._take_batch()):
                        break
                    backoff = BACKOFF_MIN_S
                else:
                    continue
            # Messages queued meanwhile wait for the link; the bound drops the oldest.
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _open_stream(self) -> aiohttp.ClientWebSocketResponse | None:
        session = self.transport.session
        assert session is not None
        try:
            return await session.ws_connect(
                f"{self.url}{STREAM_PATH}",
                headers=self.transport.headers,
                server_hostname=self.name,
                proxy=self.transport.proxy,
                heartbeat=HEARTBEAT_S,
                compress=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 404:
                log.info("peer %s has no message stream: sending by POST", self.name)
                self.use_stream = False
                self.stream_retry_at = time.monotonic() + STREAM_RETRY_S
            elif exc.status in (403, 409) and self.failures == 0:
                log.error(
                    "peer %s refused our stream (HTTP %d): is it on this consortium's genesis?",
                    self.name,
                    exc.status,
                )
            self._failed(exc)
        except NETWORK_ERRORS as exc:
            self._failed(exc)
        return None

    async def _send_over(self, stream: aiohttp.ClientWebSocketResponse) -> None:
        """Write queued batches into the stream until it breaks."""
        closed = asyncio.create_task(self._until_closed(stream))
        try:
            while not (stream.closed or closed.done()):
                while self.queue and not (stream.closed or closed.done()):
                    # Bounded: a half-open peer with a full send buffer must not hold us.
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        await stream.send_bytes(pack(self._take_batch()))
                await self.wakeup.wait()
                self.wakeup.clear()
        except NETWORK_ERRORS as exc:
            self._failed(exc)
        finally:
            closed.cancel()
            # asyncio.wait, not await: a cancellation of this task itself must go through.
            await asyncio.wait({closed})
            if not closed.cancelled():
                closed.exception()  # the stream's end is known; its reason is not needed
            await stream.close()

    async def _until_closed(self, stream: aiohttp.ClientWebSocketResponse) -> None:
        """Read the stream (pongs, a close) so its heartbeat works; wake the sender at its end."""
        try:
            async for _ in stream:
                pass  # the peer sends nothing on this stream
        finally:
            self.wakeup.set()

    def _failed(self, exc: BaseException) -> None:
        if self.reachable or self.failures == 0:
            log.info("peer %s unreachable: %s", self.name, type(exc).__name__)
        self.reachable = False
        self.failures += 1

    async def _post(self, batch: list[bytes]) -> bool:
        session = self.transport.session
        assert session is not None
        try:
            async with session.post(
                f"{self.url}{MESSAGES_PATH}",
                data=pack(batch),
                headers=self.transport.headers,
                server_hostname=self.name,
                proxy=self.transport.proxy,
            ) as response:
                if response.status == 409:
                    log.error("peer %s refused us: %s", self.name, (await response.text())[:300])
                ok = response.status == 204
        except NETWORK_ERRORS as exc:
            self._failed(exc)
            return False
        self.reachable = ok
        return ok


class Transport:
    """Sends to and receives from the other institutions' nodes.

    The peers are the consortium's current members (the genesis ones, then as
    governance changes them); links are keyed by node key. Any certificate of
    the consortium's CA may connect (a joining institution fetches blocks before
    it is a member); consensus messages still count only with a validator's
    signature, which the replica checks.
    """

    def __init__(
        self,
        genesis: Genesis,
        name: str,
        tls: TlsFiles,
        on_message: Callable[[Message], None],
        proxy: str | None = None,
    ) -> None:
        self.proxy = proxy
        self.genesis = genesis
        self.name = name
        self.tls = tls
        self.on_message = on_message
        self.genesis_hash = genesis.genesis_hash
        self.headers = {
            GENESIS_HEADER: self.genesis_hash,
            SENDER_HEADER: name,
            "Content-Type": "application/msgpack",
        }
        self.session: aiohttp.ClientSession | None = None
        self.links: dict[bytes, PeerLink] = {}
        self._tasks: dict[bytes, asyncio.Task[None]] = {}
        self.refused = 0
        self._streams: set[web.WebSocketResponse] = set()
        """Inbound streams, closed at stop (the server would otherwise wait for them)."""
        self.stopping = False
        """Set at stop: new inbound streams are refused, so none outlives the node."""

    async def start(self, members: Sequence[Member]) -> None:
        connector = aiohttp.TCPConnector(ssl=client_context(self.tls), limit_per_host=2)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        )
        self.set_peers(members)

    def set_peers(self, members: Sequence[Member]) -> None:
        """Links to these members (the consortium changed): new ones opened, gone ones closed."""
        wanted = {m.node_key: m for m in members if m.name != self.name}
        for key in [k for k in self.links if k not in wanted]:
            self._tasks.pop(key).cancel()
            del self.links[key]
        for key, member in wanted.items():
            if key not in self.links:
                link = PeerLink(self, member)
                self.links[key] = link
                self._tasks[key] = asyncio.create_task(link.run(), name=f"peer-{member.name}")

    async def stop(self) -> None:
        self.stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for stream in list(self._streams):
            await stream.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        if self.session is not None:
            await self.session.close()

    def send(self, target: bytes | None, message: Message) -> None:
        """To one peer by node key, or (None) to every peer."""
        data = encode_message(message)
        if target is None:
            for link in self.links.values():
                link.enqueue(data)
        elif target in self.links:
            self.links[target].enqueue(data)

    async def fetch(self, peer: bytes, path: str, bytes_max: int) -> bytes | None:
        """GET a peer-only resource (catch-up) from the node with this key; None if it
        cannot answer, or sends more than `bytes_max` (it is not read further)."""
        link = self.links.get(peer)
        if link is None or self.session is None:
            return None
        try:
            async with self.session.get(
                f"{link.url}{path}",
                headers=self.headers,
                server_hostname=link.name,
                proxy=self.proxy,
            ) as response:
                if response.status != 200:
                    return None
                body = bytearray()
                async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
                    body += chunk
                    if len(body) > bytes_max:
                        log.warning(
                            "an answer from %s is over %d bytes; not read further",
                            link.name,
                            bytes_max,
                        )
                        return None
                return bytes(body)
        except NETWORK_ERRORS:
            return None

    # ------------------------------------------------------------ server side

    def authenticate(self, request: web.Request) -> str:
        """The sending institution (its certificate is from our CA, or TLS refused it)."""
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        name = certificate_common_name(peercert)
        if name is None:
            self.refused += 1
            raise web.HTTPForbidden(text="not a member of this consortium")
        if request.headers.get(GENESIS_HEADER) != self.genesis_hash:
            self.refused += 1
            raise web.HTTPConflict(
                text=f"genesis mismatch: this node runs genesis {self.genesis_hash}"
            )
        if request.headers.get(SENDER_HEADER) != name:
            self.refused += 1
            raise web.HTTPForbidden(text="sender header does not match the certificate")
        return name

    async def handle_messages(self, request: web.Request) -> web.Response:
        """One batch of messages per request (peers without the stream)."""
        name = self.authenticate(request)
        reason = self._deliver(await request.read(), name)
        if reason is not None:
            raise web.HTTPBadRequest(text=reason)
        return web.Response(status=204)

    async def handle_stream(self, request: web.Request) -> web.WebSocketResponse:
        """A peer's stream: every binary frame is one batch of messages."""
        name = self.authenticate(request)
        if self.stopping:
            raise web.HTTPServiceUnavailable(text="this node is stopping")
        stream = web.WebSocketResponse(
            heartbeat=HEARTBEAT_S, compress=False, max_msg_size=POST_BYTES_MAX + MESSAGE_BYTES_MAX
        )
        await stream.prepare(request)
        self._streams.add(stream)
        try:
            async for frame in stream:
                if frame.type is aiohttp.WSMsgType.ERROR:
                    log.info("stream from %s broke: %s", name, stream.exception())
                    break
                if frame.type is not aiohttp.WSMsgType.BINARY:
                    reason: str | None = "a frame of messages is binary"
                else:
                    reason = self._deliver(frame.data, name)
                if reason is not None:
                    log.warning("closing the stream from %s: %s", name, reason)
                    await stream.close(code=aiohttp.WSCloseCode.UNSUPPORTED_DATA)
        except ConnectionResetError as exc:
            # The peer went while this side answered a ping (a node paused or killed).
            log.info("stream from %s reset: %s", name, exc)
        finally:
            self._streams.discard(stream)
        return stream

    def _deliver(self, body: bytes, sender: str) -> str | None:
        """Hand a batch's messages to the replica; the reason when the batch is malformed.
        A message that does not decode is skipped: it may be from a newer peer. One line
        per batch says so, however many there are (a batch can hold millions)."""
        try:
            items = unpack_byte_strings(body, input_bytes_max=POST_BYTES_MAX + MESSAGE_BYTES_MAX)
        except DecodeError as exc:
            return exc.reason
        skipped, first_reason = 0, ""
        for data in items:
            try:
                message = decode_message(data, input_bytes_max=MESSAGE_BYTES_MAX)
            except DecodeError as exc:
                skipped += 1
                first_reason = first_reason or exc.reason
                continue
            self.on_message(message)
        if skipped:
            log.warning(
                "%d undecodable message(s) of %d from %s, the first: %s",
                skipped,
                len(items),
                sender,
                first_reason,
            )
        return None

    def peer_app(self, blocks_handler: Callable[[web.Request], Any]) -> web.Application:
        app = web.Application(client_max_size=POST_BYTES_MAX + MESSAGE_BYTES_MAX)
        app.router.add_post(MESSAGES_PATH, self.handle_messages)
        app.router.add_get(STREAM_PATH, self.handle_stream)
        app.router.add_get("/peer/v1/blocks", blocks_handler)
        return app
