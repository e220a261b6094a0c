"""A peer may lie: the chain stays safe and live.

Four nodes (n = 4, f = 1). Node 3 (enterprise-3) is stopped by the harness and
the test process plays that member as a Byzantine replica: it holds the
institution's files (its TLS certificate and key, its consensus signing key),
connects to the three honest nodes' peer ports exactly as a node does (a
WebSocket to `/peer/v1/stream`, or `POST /peer/v1/messages`, with the member's
client certificate, its name as `server_hostname` and the genesis and sender
headers), and serves that member's peer port itself, draining the streams the
honest nodes open to it and answering their block fetches with garbage.

While honest transactions flow through the honest nodes' public APIs, it sends
a bounded series of lies: malformed frames (not msgpack, not an array of byte
strings, empty, text, oversized, a lone message), undecodable messages inside a
valid batch, messages with a bad signature or naming another replica or one
outside the set, and validly signed but wrong votes (Prepares and Commits for
digests no proposal has, for sequence numbers far beyond the window or long
stable, for other views; proposals and pre-prepares from a replica that is not
the primary; checkpoint votes with a wrong state root; ViewChanges for higher
views; NewViews without a quorum; Statuses of another epoch or an enormous
height; relayed requests with forged client signatures).

Then: every acknowledged transaction commits on all three honest nodes, they
never leave the view they started in, their chains are identical, the
`notarychain_messages_rejected` counter rose for every kind of refused lie,
they all still run and their logs hold no traceback; the real node 3, started
again, catches up to the same chain and takes part.

The default consensus timeouts are used (not `fast_consensus`): one liar's
ViewChange plus one honest replica's request timeout make f + 1 replicas ahead,
a legitimate reason to change view; on this shared 2-core machine a shorter
request timeout would make that honest timeout, and so a view change that the
lie did not cause by itself, more likely.

What was observed (each lie's outcome on each node, the rejection counts by
kind, the fetches the liar answered, readiness while the enormous Status stood)
is written to `byzantine_report.json` under the test's tmp_path and printed.
While that Status stands, every honest node stays ready: a height counts only
once f + 1 peers claim it (`Replica.peers_executed_height`).

The second test makes the primary (node 0) the liar: it stops ordering and,
once, claims an enormous height to the backups. One faulty replica must not
stop the chain: the backups time the request they hold and replace the
primary. This test found that a single such Status used to disable every
backup's request timers (the replica took one peer's claim for being behind)
and every honest node's readiness; both now take the height f + 1 peers claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import aiohttp
import pytest
from aiohttp import web

from consensus.messages import (
    CheckpointVote,
    Commit,
    Message,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Proposal,
    Requests,
    Signed,
    Status,
    ViewChange,
    encode_message,
    null_batch,
    signing_bytes,
)
from consensus.types import ReplicaId, SeqNo, View
from ledger.checkpoint import Checkpoint, CheckpointCertificate, Endorsement
from ledger.encoding import pack, to_wire
from ledger.genesis import ConsensusSettings
from ledger.keyfile import load_private_key
from ledger.keys import PrivateKey
from ledger.tx import Transaction
from node.transport import (
    GENESIS_HEADER,
    MESSAGE_BYTES_MAX,
    MESSAGES_PATH,
    POST_BYTES_MAX,
    SENDER_HEADER,
    STREAM_PATH,
    TlsFiles,
    certificate_common_name,
    client_context,
    server_context,
)

if TYPE_CHECKING:
    from pathlib import Path

    from cluster import Cluster, Load, Monitor, TxKit

S = TypeVar("S", bound=Signed)

HOST: Final = "127.0.0.1"
LIAR: Final = 3  # enterprise-3: replica 3, a backup in view 0
PRIMARY: Final = 0
ROUNDS: Final = 3
"""Rounds of every lie but the enormous Status, to each honest node."""
ROUND_PAUSE_S: Final = 0.5
STATUS_LIES_MAX: Final = 16
"""Rounds of the enormous Status at most (each one may make every honest node fetch)."""
STATUS_PAUSE_S: Final = 0.5
WAIT_S: Final = 20.0
"""Bound on any one connection of the liar (the oversized frame is 20 MiB)."""
PROBE_S: Final = 0.5
"""How long the liar listens on a stream for the node to close it after valid frames."""
LOAD_INTERVAL_S: Final = 0.1
LOAD_LIMIT: Final = 600
COMMITS_BEFORE: Final = 5
COMMITS_AFTER: Final = 10
PROGRESS_WAIT_S: Final = 60.0
PRIMARY_LIE_WAIT_S: Final = 20.0
"""Bound on the view change that replaces a silent primary (seconds with fast_consensus)."""
ENORMOUS: Final = 2**62
UNSUPPORTED_DATA: Final = int(aiohttp.WSCloseCode.UNSUPPORTED_DATA)
REJECTED_LINE: Final = re.compile(
    r'notarychain_messages_rejected_total\{kind="(?P<kind>[^"]*)"\} (?P<value>\S+)'
)


# ---------------------------------------------------------------- the liar


class Liar:
    """The Byzantine member: node LIAR's own files, used by the test process."""

    def __init__(self, cluster: Cluster, index: int) -> None:
        assert cluster.genesis is not None
        directory = cluster.directory(index)
        self.cluster = cluster
        self.index = index
        self.replica = ReplicaId(index)
        self.name = cluster.name(index)
        self.chain_id = cluster.chain_id
        self.key = load_private_key(directory / "node.key")
        self.tls = TlsFiles(directory / "tls.crt", directory / "tls.key", cluster.root / "ca.crt")
        self.headers = {
            GENESIS_HEADER: cluster.genesis.genesis_hash,
            SENDER_HEADER: self.name,
            "Content-Type": "application/msgpack",
        }
        self.validators = cluster.genesis.validator_set().validators
        assert self.validators[index] == self.key.public_key

    def sign(self, message: S, epoch: int = 0) -> S:
        """Signed with the liar's key, whichever replica the message names."""
        signature = self.key.sign(signing_bytes(self.chain_id, message, epoch))
        return dataclasses.replace(message, signature=signature)

    def checkpoint_vote(self, checkpoint: Checkpoint, replica: ReplicaId) -> CheckpointVote:
        return CheckpointVote(checkpoint, replica, self.key.sign(checkpoint.signing_bytes()))

    def view_change(self, view: int, replica: ReplicaId | None = None) -> ViewChange:
        named = self.replica if replica is None else replica
        return self.sign(ViewChange(View(view), None, (), named, b""))


def flipped(message: S) -> S:
    """The same message with one bit of its signature changed."""
    signature = bytes([message.signature[0] ^ 0x01]) + message.signature[1:]
    return dataclasses.replace(message, signature=signature)


def random_hash() -> bytes:
    return os.urandom(32)


@dataclass(frozen=True, slots=True)
class Lie:
    name: str
    message: Message
    counted: str | None
    """The kind under which every honest node counts it rejected; None where a node may
    ignore it quietly (old or foreign views, sequence numbers already stable) or keep it
    (a validly signed vote it can only outvote)."""


def lies_for(
    liar: Liar, base: int, other: ReplicaId, txkit: type[TxKit], applicant: PrivateKey
) -> list[Lie]:
    """The protocol lies for one honest node, whose executed height (or stable one, if
    higher) is `base`; `other` is an honest replica that is not that node."""
    me, v0, chain = liar.replica, View(0), liar.chain_id
    primary = ReplicaId(PRIMARY)

    def prepare(seq: int, view: int = 0, replica: ReplicaId = me) -> Prepare:
        return liar.sign(Prepare(View(view), SeqNo(seq), random_hash(), replica, b""))

    def commit(seq: int, view: int = 0, replica: ReplicaId = me) -> Commit:
        return liar.sign(Commit(View(view), SeqNo(seq), random_hash(), replica, b""))

    def checkpoint(height: int, chain_id: str = chain) -> Checkpoint:
        return Checkpoint(chain_id, height, random_hash(), random_hash(), 1, random_hash(), 1)

    own_batch = null_batch(chain, SeqNo(base + 3), v0, liar.key.public_key)
    own_proposal = Proposal(
        liar.sign(PrePrepare(v0, SeqNo(base + 3), own_batch.digest, me, b"")), own_batch
    )
    primary_key = liar.validators[PRIMARY]
    next_batch = null_batch(chain, SeqNo(base + 1), v0, primary_key)
    forged_proposal = Proposal(
        liar.sign(PrePrepare(v0, SeqNo(base + 1), next_batch.digest, primary, b"")), next_batch
    )
    first_batch = null_batch(chain, SeqNo(1), v0, primary_key)
    forged_prepared = PreparedCertificate(
        liar.sign(PrePrepare(v0, SeqNo(1), first_batch.digest, primary, b"")), (), first_batch
    )
    own_view = liar.index  # the primary of view v is replica v mod n
    assert 1 <= own_view <= 5, "a view the liar also sends a ViewChange for"
    view_changes = tuple(liar.view_change(view) for view in range(1, 6))
    tx = txkit.signed(txkit.evidence_body(chain, applicant), applicant).tx
    other_chain_tx = txkit.signed(
        dataclasses.replace(txkit.evidence_body(chain, applicant), chain_id="another-chain"),
        applicant,
    ).tx
    forged_tx = Transaction(tx.body, bytes([tx.signature[0] ^ 0x01]) + tx.signature[1:])
    return [
        # Validly signed wrong votes: kept or ignored, never enough to decide anything.
        Lie("prepare for a digest no proposal has", prepare(base + 20), None),
        Lie("commit for a digest no proposal has", commit(base + 20), None),
        Lie("prepare for the next block, wrong digest", prepare(base + 1), None),
        Lie("commit for the next block, wrong digest", commit(base + 1), None),
        Lie("prepare for a future view", prepare(base + 2, view=1), None),
        Lie("commit for a future view", commit(base + 2, view=1), None),
        Lie("prepare for a view before the first", prepare(base + 2, view=-1), None),
        Lie("commit for a stale sequence number", commit(1), None),
        Lie(
            "checkpoint vote with a wrong state root (next height)",
            liar.checkpoint_vote(checkpoint(base + 1), me),
            None,
        ),
        Lie(
            "checkpoint vote with a wrong state root (a later height)",
            liar.checkpoint_vote(checkpoint(base + 2), me),
            None,
        ),
        *(Lie(f"view change for view {vc.new_view}", vc, None) for vc in view_changes),
        Lie("status of a future epoch", liar.sign(Status(7, v0, base, base, me, b""), 7), None),
        Lie(
            "status from a far-future view",
            liar.sign(Status(0, View(2**40), base, base, me, b"")),
            None,
        ),
        Lie("proposal forged in the primary's name", forged_proposal, None),
        # Refused by every honest node, and counted.
        Lie("prepare with a bad signature", flipped(prepare(base + 30)), "Prepare"),
        Lie("prepare naming another replica", prepare(base + 31, replica=other), "Prepare"),
        Lie(
            "prepare naming a replica outside the set",
            prepare(base + 32, replica=ReplicaId(7)),
            "Prepare",
        ),
        Lie("prepare far beyond the window", prepare(base + 10_000), "Prepare"),
        Lie("commit naming another replica", commit(base + 31, replica=other), "Commit"),
        Lie("commit far beyond the window", commit(base + 10_000), "Commit"),
        Lie("proposal from a replica that is not the primary", own_proposal, "Proposal"),
        Lie(
            "bare pre-prepare",
            liar.sign(PrePrepare(v0, SeqNo(base + 3), random_hash(), me, b"")),
            "PrePrepare",
        ),
        Lie(
            "checkpoint vote naming another replica",
            liar.checkpoint_vote(checkpoint(base + 12), other),
            "CheckpointVote",
        ),
        Lie(
            "checkpoint vote for another chain",
            liar.checkpoint_vote(checkpoint(base + 13, "another-chain"), me),
            "CheckpointVote",
        ),
        Lie("view change far ahead", liar.view_change(1_001), "ViewChange"),
        Lie("view change with a bad signature", flipped(liar.view_change(7)), "ViewChange"),
        Lie("view change naming another replica", liar.view_change(8, other), "ViewChange"),
        Lie(
            "view change carrying a forged prepared certificate",
            liar.sign(ViewChange(View(6), None, (forged_prepared,), me, b"")),
            "ViewChange",
        ),
        Lie(
            "new view from a replica that is not the view's primary",
            liar.sign(NewView(View(1), (view_changes[0],), (), me, b"")),
            "NewView",
        ),
        Lie(
            "new view for the liar's own view with one view change",
            liar.sign(NewView(View(own_view), (view_changes[own_view - 1],), (), me, b"")),
            "NewView",
        ),
        Lie(
            "new view for the liar's own view, view changes forged for others",
            liar.sign(
                NewView(
                    View(own_view),
                    (
                        view_changes[own_view - 1],
                        liar.view_change(own_view, ReplicaId(0)),
                        liar.view_change(own_view, ReplicaId(1)),
                    ),
                    (),
                    me,
                    b"",
                )
            ),
            "NewView",
        ),
        Lie(
            "status naming another replica",
            liar.sign(Status(0, v0, base, base, other, b"")),
            "Status",
        ),
        Lie("requests with a forged client signature", Requests((forged_tx,)), "request"),
        Lie("requests for another chain", Requests((other_chain_tx,)), "request"),
    ]


def undecodable(valid: bytes) -> list[bytes]:
    """Messages that do not decode, each on its own inside a well-formed batch."""
    assert valid[:2] == b"\x92\x02", "a Prepare's encoding starts with [2, ..."
    return [
        b"",
        b"\xc1 not msgpack",
        pack([99, []]),  # an unknown kind
        pack([2, [1, 2]]),  # a Prepare of the wrong shape
        b"\x92\xcc\x02" + valid[2:],  # a kind written in a wider integer: not canonical
        valid + b"\x00",  # trailing bytes
    ]


def garbage_frames(sample: bytes) -> list[tuple[str, bytes | str]]:
    return [
        ("frame: not msgpack", b"\xc1\xc1 not msgpack"),
        ("frame: an array of non-bytes", pack([1, 2, 3])),
        ("frame: empty", b""),
        ("frame: text", "a text frame, not a binary one"),
        ("frame: a lone message, not a batch", sample),
        ("frame: a map", b"\x81\xa1a\x01"),
    ]


OVERSIZED: Final = "frame: oversized (20 MiB + 1)"


# ---------------------------------------------------------------- the liar's own peer port


def block_answers(liar: Liar) -> list[tuple[str, Callable[[], web.Response]]]:
    """What the liar answers to `/peer/v1/blocks`, in turn for each node that asks."""
    checkpoint = Checkpoint(liar.chain_id, ENORMOUS, random_hash(), random_hash(), 1, b"\0" * 32, 1)
    alone = CheckpointCertificate(
        checkpoint,
        (Endorsement(liar.key.public_key, liar.key.sign(checkpoint.signing_bytes())),),
    )

    def msgpack_body(body: bytes) -> Callable[[], web.Response]:
        return lambda: web.Response(body=body, content_type="application/msgpack")

    return [
        ("no blocks", msgpack_body(pack([None, []]))),
        ("a certificate signed by the liar alone", msgpack_body(pack([to_wire(alone), []]))),
        ("bytes that are not msgpack", msgpack_body(b"\xc1" + os.urandom(63))),
        ("not found", lambda: web.Response(status=404, text="no blocks here")),
    ]


class LyingPeerPort:
    """The liar's peer port: drains the streams the honest nodes open to it, and answers
    their block fetches with garbage."""

    def __init__(self, liar: Liar, port: int) -> None:
        self.liar = liar
        self.port = port
        self.answers = block_answers(liar)
        self.served: dict[str, list[str]] = {}
        self.frames = 0
        self.streams: set[web.WebSocketResponse] = set()
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(STREAM_PATH, self.stream)
        app.router.add_get("/peer/v1/blocks", self.blocks)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, HOST, self.port, ssl_context=server_context(self.liar.tls))
        await site.start()

    async def stop(self) -> None:
        for stream in list(self.streams):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await stream.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        if self.runner is not None:
            await self.runner.cleanup()

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        stream = web.WebSocketResponse(max_msg_size=0)
        await stream.prepare(request)
        self.streams.add(stream)
        try:
            async for _ in stream:
                self.frames += 1
        finally:
            self.streams.discard(stream)
        return stream

    async def blocks(self, request: web.Request) -> web.Response:
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        served = self.served.setdefault(certificate_common_name(peercert) or "?", [])
        label, answer = self.answers[len(served) % len(self.answers)]
        served.append(label)
        return answer()


# ---------------------------------------------------------------- talking to honest nodes


async def post_batch(
    session: aiohttp.ClientSession,
    cluster: Cluster,
    liar: Liar,
    target: int,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
) -> str:
    """`POST /peer/v1/messages` as the member does; the node's answer, or how it ended."""
    try:
        async with (
            asyncio.timeout(WAIT_S),
            session.post(
                f"https://{HOST}:{cluster.peer_port(target)}{MESSAGES_PATH}",
                data=body,
                headers=liar.headers if headers is None else headers,
                server_hostname=cluster.name(target),
            ) as response,
        ):
            text = " ".join((await response.text()).split())[:100]
            return f"{response.status} {text}".strip()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return f"connection ended: {type(exc).__name__}"


async def tell(
    cluster: Cluster, liar: Liar, targets: Sequence[int], messages: Sequence[Message]
) -> list[str]:
    """One batch of the liar's messages to each target, by POST."""
    body = pack([encode_message(message) for message in messages])
    connector = aiohttp.TCPConnector(ssl=client_context(liar.tls))
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=WAIT_S)
    ) as session:
        return list(
            await asyncio.gather(
                *(post_batch(session, cluster, liar, target, body) for target in targets)
            )
        )


class Campaign:
    """The liar's connections to the honest nodes, and what each lie met there."""

    def __init__(
        self,
        cluster: Cluster,
        liar: Liar,
        honest: Sequence[int],
        txkit: type[TxKit],
        session: aiohttp.ClientSession,
    ) -> None:
        self.cluster = cluster
        self.liar = liar
        self.honest = list(honest)
        self.txkit = txkit
        self.session = session
        self.outcomes: dict[str, dict[str, list[str]]] = {}
        self.kinds: set[str] = set()

    def note(self, lie: str, target: int, outcome: str) -> None:
        self.outcomes.setdefault(lie, {}).setdefault(self.cluster.name(target), []).append(outcome)

    def url(self, target: int, path: str) -> str:
        return f"https://{HOST}:{self.cluster.peer_port(target)}{path}"

    def stream(self, target: int) -> Any:
        """A stream to `target`, opened as the member's node opens one."""
        return self.session.ws_connect(
            self.url(target, STREAM_PATH),
            headers=self.liar.headers,
            server_hostname=self.cluster.name(target),
            compress=0,
        )

    async def one_frame(self, target: int, frame: bytes | str) -> str:
        """Open a stream as the member does, write one frame, say how the node answered."""
        try:
            async with asyncio.timeout(WAIT_S), self.stream(target) as stream:
                if isinstance(frame, str):
                    await stream.send_str(frame)
                else:
                    await stream.send_bytes(frame)
                reply = await stream.receive()
                if reply.type is aiohttp.WSMsgType.CLOSE:
                    return f"closed {int(reply.data)}"
                return reply.type.name
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"connection ended: {type(exc).__name__}"

    async def frames_then_listen(self, target: int, frames: Sequence[bytes]) -> str:
        """Write well-formed batches into a stream; "open" if the node kept it open."""
        try:
            async with asyncio.timeout(WAIT_S), self.stream(target) as stream:
                for frame in frames:
                    await stream.send_bytes(frame)
                try:
                    reply = await stream.receive(timeout=PROBE_S)
                except TimeoutError:
                    return "open"
                if reply.type is aiohttp.WSMsgType.CLOSE:
                    return f"closed {int(reply.data)}"
                return reply.type.name
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"connection ended: {type(exc).__name__}"

    async def post(self, target: int, body: bytes, headers: dict[str, str] | None = None) -> str:
        return await post_batch(
            self.session, self.cluster, self.liar, target, body, headers=headers
        )

    def other(self, target: int) -> ReplicaId:
        return ReplicaId(next(i for i in self.honest if i != target))

    async def round(self, number: int) -> None:
        await asyncio.gather(*(self.round_at(number, target) for target in self.honest))

    async def round_at(self, number: int, target: int) -> None:
        status = await asyncio.to_thread(self.cluster.status, target)
        base = max(int(status["height"]), int(status["stable_height"]))
        assert self.cluster.applicant is not None
        lies = lies_for(self.liar, base, self.other(target), self.txkit, self.cluster.applicant)
        self.kinds.update(lie.counted for lie in lies if lie.counted is not None)
        encoded = [encode_message(lie.message) for lie in lies]
        sample = encoded[0]
        frames = garbage_frames(sample)
        if number == 0:
            frames.append((OVERSIZED, b"\x00" * (POST_BYTES_MAX + MESSAGE_BYTES_MAX + 1)))
        for label, frame in frames:
            self.note(label, target, await self.one_frame(target, frame))
        mixed = pack([*undecodable(sample), *encoded])
        self.note(
            "stream: the lies, after undecodable messages in the same batch",
            target,
            await self.frames_then_listen(target, [mixed, pack(encoded)]),
        )
        self.note(
            "POST: the lies, after undecodable messages in the same batch",
            target,
            await self.post(target, mixed),
        )
        self.note("POST: a body that is not msgpack", target, await self.post(target, b"\xc1"))
        self.note("POST: an empty body", target, await self.post(target, b""))
        if number == 0:
            claimed = {**self.liar.headers, SENDER_HEADER: self.cluster.name(PRIMARY)}
            self.note(
                "POST: the sender header names another institution",
                target,
                await self.post(target, pack([]), claimed),
            )

    async def enormous_status(self) -> str:
        status = self.liar.sign(Status(0, View(0), ENORMOUS, ENORMOUS, self.liar.replica, b""))
        batch = pack([encode_message(status)])
        outcomes = await asyncio.gather(*(self.post(target, batch) for target in self.honest))
        for target, outcome in zip(self.honest, outcomes, strict=True):
            self.note("POST: status claiming an enormous height", target, outcome)
        return ",".join(outcomes)


@dataclass
class CampaignReport:
    outcomes: dict[str, dict[str, list[str]]]
    counted_kinds: set[str]
    served: dict[str, list[str]]
    frames_from_honest: int
    readiness_under_status_lie: dict[str, Any]


async def run_campaign(
    cluster: Cluster, liar: Liar, honest: Sequence[int], txkit: type[TxKit]
) -> CampaignReport:
    port = LyingPeerPort(liar, cluster.peer_port(liar.index))
    await port.start()
    connector = aiohttp.TCPConnector(ssl=client_context(liar.tls), limit_per_host=8)
    readiness: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=WAIT_S)
        ) as session:
            campaign = Campaign(cluster, liar, honest, txkit, session)
            for number in range(ROUNDS):
                await campaign.round(number)
                await asyncio.sleep(ROUND_PAUSE_S)
            # The enormous Status last: while it stands, honest nodes think they are behind
            # (so they stop timing requests); each Status makes them fetch from the liar.
            wanted = len(port.answers)
            for _ in range(STATUS_LIES_MAX):
                await campaign.enormous_status()
                await asyncio.sleep(STATUS_PAUSE_S)
                if all(len(port.served.get(cluster.name(t), [])) >= wanted for t in honest):
                    break
            for target in honest:
                reply = await asyncio.to_thread(cluster.request, target, "GET", "/v1/health/ready")
                readiness[cluster.name(target)] = {"http": reply.status, **reply.json()}
    finally:
        await port.stop()
    return CampaignReport(campaign.outcomes, campaign.kinds, port.served, port.frames, readiness)


# ---------------------------------------------------------------- checks


def rejected_by_kind(cluster: Cluster, i: int) -> dict[str, float]:
    reply = cluster.request(i, "GET", "/metrics")
    assert reply.status == 200, (cluster.name(i), reply.status)
    counts: dict[str, float] = {}
    for line in reply.body.decode().splitlines():
        match = REJECTED_LINE.fullmatch(line)
        if match is not None:
            counts[match["kind"]] = float(match["value"])
    return counts


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def wait_commits(load: Load, count: int, after: float, what: str, cluster: Cluster) -> None:
    """Until `count` transactions acknowledged after `after` (time.monotonic()) committed."""
    deadline = time.monotonic() + PROGRESS_WAIT_S
    while time.monotonic() < deadline:
        if sum(c.acked_at > after for c in list(load.commits.values())) >= count:
            return
        time.sleep(0.1)
    raise cluster.fail(f"fewer than {count} commits {what}: {load.summary()}")


def assert_committed_everywhere(cluster: Cluster, load: Load, nodes: Sequence[int]) -> None:
    """Every acknowledged transaction is committed on each node, at one height."""
    acked = list(load.acked)
    txs = [ack.tx for ack in acked]
    per_node = {i: cluster.statuses_of(txs, i) for i in nodes}
    for k, tx in enumerate(txs):
        states = {cluster.name(i): per_node[i][k] for i in nodes}
        assert all(s["state"] == "committed" for s in states.values()), (tx.id, states)
        assert len({s["height"] for s in states.values()}) == 1, (tx.id, states)


def assert_no_traceback(cluster: Cluster, nodes: Sequence[int]) -> None:
    for i in nodes:
        text = cluster.log_text(i)
        if "Traceback" in text:
            start = text.index("Traceback")
            excerpt = text[max(0, start - 800) : start + 3000]
            raise AssertionError(f"{cluster.name(i)} logged a traceback:\n{excerpt}")


def wait_ready_everywhere(cluster: Cluster, nodes: Sequence[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = {}
        for i in nodes:
            reply = cluster.request(i, "GET", "/v1/health/ready")
            last[cluster.name(i)] = (reply.status, reply.json())
        if all(status == 200 for status, _ in last.values()):
            return
        time.sleep(0.3)
    raise cluster.fail(f"not all of {[cluster.name(i) for i in nodes]} ready: {last}")


def assert_lies_met(
    cluster: Cluster,
    report: CampaignReport,
    *,
    log_counts: dict[str, dict[str, int]],
    deltas: dict[str, dict[str, float]],
    honest: Sequence[int],
    liar: Liar,
) -> None:
    """Every lie was met as it should be, and the refused ones were counted.

    Malformed frames close the stream (1003), an oversized one ends it; well-formed
    batches are taken whatever their messages, and the refused messages are counted.
    """
    outcomes = report.outcomes
    for label, _ in garbage_frames(b""):
        for name, seen in outcomes[label].items():
            assert seen == [f"closed {UNSUPPORTED_DATA}"] * ROUNDS, (label, name, seen)
    for name, seen in outcomes[OVERSIZED].items():
        assert len(seen) == 1, (name, seen)
        assert seen[0].startswith(("closed ", "connection ended")), (name, seen)
        assert "TimeoutError" not in seen[0], (OVERSIZED, name, seen)
    expected_posts = {
        "stream: the lies, after undecodable messages in the same batch": "open",
        "POST: the lies, after undecodable messages in the same batch": "204",
        "POST: a body that is not msgpack": "400",
        "POST: an empty body": "400",
        "POST: the sender header names another institution": "403",
        "POST: status claiming an enormous height": "204",
    }
    for label, prefix in expected_posts.items():
        for name, seen in outcomes[label].items():
            assert seen and all(s.startswith(prefix) for s in seen), (label, name, seen)
    garbage_sent = len(garbage_frames(b"")) * ROUNDS
    for i in honest:
        counts = log_counts[cluster.name(i)]
        assert counts[f"closing the stream from {liar.name}"] == garbage_sent, counts
        # One line per batch with undecodable messages (one by stream, one by POST a
        # round), not one per message: a member cannot flood the log with one batch.
        assert counts["undecodable message"] == 2 * ROUNDS, counts

    # The refused lies were counted, kind by kind, on every honest node.
    for i in honest:
        name = cluster.name(i)
        missing = sorted(kind for kind in report.counted_kinds if kind not in deltas[name])
        assert not missing, (name, missing, deltas[name])
        if len(report.served.get(name, [])) >= 2:  # it took a garbage answer the replica reads
            assert "BlocksFetched" in deltas[name], (name, report.served, deltas[name])


# ---------------------------------------------------------------- the test


@pytest.mark.cluster
def test_a_lying_peer_leaves_the_chain_safe_and_live(
    make_cluster: Callable[..., Cluster],
    txkit: type[TxKit],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    cluster = make_cluster()
    everyone = list(range(cluster.n))
    honest = [i for i in everyone if i != LIAR]

    # All four commit a few transactions; then the harness stops node 3 and the test
    # process takes its place.
    warm = cluster.make_txs(3)
    cluster.submit_all(warm, honest)
    for tx in warm:
        for i in everyone:
            cluster.wait_committed(tx.id, i, timeout=30)
    cluster.stop(LIAR)
    assert not cluster.running(LIAR)
    liar = Liar(cluster, LIAR)

    started = {i: cluster.status(i) for i in honest}
    view = started[honest[0]]["view"]
    assert all((s["view"], s["view_active"]) == (view, True) for s in started.values()), started
    rejected_before = {i: rejected_by_kind(cluster, i) for i in honest}

    monitors: list[Monitor] = [cluster.monitor(i, interval=0.25).start() for i in honest]
    load = cluster.load(honest, interval=LOAD_INTERVAL_S, limit=LOAD_LIMIT).start()
    try:
        wait_commits(load, COMMITS_BEFORE, 0.0, "before the lies", cluster)
        lies_started = time.monotonic()
        report = asyncio.run(run_campaign(cluster, liar, honest, txkit))
        lies_ended = time.monotonic()
        # Live after the lies too: transactions submitted afterwards commit.
        wait_commits(load, COMMITS_AFTER, lies_ended, "after the lies", cluster)
    finally:
        load.stop()
        for monitor in monitors:
            monitor.stop()
    during = sum(lies_started < c.acked_at < lies_ended for c in load.commits.values())

    rejected_after = {i: rejected_by_kind(cluster, i) for i in honest}
    deltas = {
        cluster.name(i): {
            kind: rejected_after[i][kind] - rejected_before[i].get(kind, 0.0)
            for kind in sorted(rejected_after[i])
            if rejected_after[i][kind] > rejected_before[i].get(kind, 0.0)
        }
        for i in honest
    }
    logs = {i: cluster.log_text(i) for i in honest}
    log_counts = {
        cluster.name(i): {
            needle: len(lines_with(logs[i], needle))
            for needle in (
                f"closing the stream from {liar.name}",
                f"stream from {liar.name} broke",
                "undecodable message",
                "Traceback",
            )
        }
        for i in honest
    }
    summary = {
        "lies_outcomes": report.outcomes,
        "rejected_deltas": deltas,
        "block_fetches_answered": report.served,
        "frames_streamed_to_the_liar": report.frames_from_honest,
        "readiness_while_the_enormous_status_stood": report.readiness_under_status_lie,
        "log_lines": log_counts,
        "commits_acked_during_the_lies": during,
        "load": load.summary(),
    }
    (tmp_path / "byzantine_report.json").write_text(json.dumps(summary, indent=2))
    print(f"\nbyzantine peer report: {json.dumps(summary, indent=2)}")
    record_property("byzantine_report", json.dumps(summary))

    # Nothing crashed or logged a traceback.
    assert all(cluster.running(i) for i in honest), cluster.summary()
    assert_no_traceback(cluster, honest)

    # Live: every acknowledged transaction committed, on all three, at one height.
    assert during > 0, f"nothing acknowledged during the lies committed: {load.summary()}"
    assert not load.not_committed, f"acknowledged but not committed: {load.summary()}"
    assert not load.unreachable, f"an honest API did not answer: {load.summary()}"
    assert len(load.commits) == len(load.acked), load.summary()
    assert_committed_everywhere(cluster, load, honest)

    # No view change: every sample of every honest node is in the starting view, active.
    for monitor in monitors:
        moved = [s for s in monitor.samples if (s[2], s[3]) != (view, True)]
        assert monitor.samples, f"no status samples from {cluster.name(monitor.node)}"
        assert not moved, (cluster.name(monitor.node), moved[:5])

    # Safe: one chain.
    height = cluster.wait_settled(honest, timeout=60)
    for i in honest:
        status = cluster.status(i)
        assert (status["view"], status["view_active"]) == (view, True), status
        assert not status["diverged"], status
    cluster.assert_identical_chains(honest, height)

    assert_lies_met(cluster, report, log_counts=log_counts, deltas=deltas, honest=honest, liar=liar)

    # One liar's enormous height made no honest node report itself not ready.
    for name, answer in report.readiness_under_status_lie.items():
        assert answer["http"] == 200, (name, answer)

    # The real node 3 comes back: it catches up to the same chain and takes part.
    cluster.start([LIAR])
    cluster.wait_ready()
    cluster.wait_height(LIAR, height, timeout=60)
    txs = cluster.make_txs(8)
    cluster.submit_all(txs, everyone)
    for tx in txs:
        for i in everyone:
            cluster.wait_committed(tx.id, i, timeout=60)
    final = cluster.wait_settled(everyone, timeout=60)
    assert final > height
    cluster.assert_identical_chains(everyone, final)
    checkpoints = {cluster.name(i): cluster.latest_checkpoint(i) for i in everyone}
    for field in ("height", "block_hash", "state_root", "log_root", "log_size"):
        assert len({c[field] for c in checkpoints.values()}) == 1, (field, checkpoints)
    for i in everyone:
        status = cluster.status(i)
        assert (status["view"], status["view_active"]) == (view, True), status
    # Its own Status replaced the enormous one: every node is ready again.
    wait_ready_everywhere(cluster, everyone)
    assert all(cluster.running(i) for i in everyone), cluster.summary()
    assert_no_traceback(cluster, everyone)


@pytest.mark.cluster
def test_a_lying_primary_that_stops_ordering_is_still_replaced(
    make_cluster: Callable[..., Cluster], fast_consensus: ConsensusSettings
) -> None:
    """The one liar is the primary: it stops ordering and, just before, tells the backups
    that the chain is at an enormous height. PBFT must still replace it: each backup times
    the request it holds, suspects the primary, and the three honest replicas (more than
    f + 1) install view 1, whose primary orders the request.

    (Without the lie this is the crash of test_node_faults, where the view changes within
    seconds with these timeouts.)"""
    cluster = make_cluster(consensus=fast_consensus)
    backups = [i for i in range(cluster.n) if i != PRIMARY]
    warm = cluster.make_txs(1)[0]
    cluster.submit_acked(warm, backups[0])
    for i in range(cluster.n):
        cluster.wait_committed(warm.id, i, timeout=30)
    assert cluster.status(backups[0])["primary"] == PRIMARY

    cluster.stop(PRIMARY)
    liar = Liar(cluster, PRIMARY)
    status = liar.sign(Status(0, View(0), ENORMOUS, ENORMOUS, liar.replica, b""))
    told = asyncio.run(tell(cluster, liar, backups, [status]))
    assert all(answer.startswith("204") for answer in told), told

    tx = cluster.make_txs(1)[0]
    cluster.submit_acked(tx, backups[0])
    for i in backups:
        cluster.wait_committed(tx.id, i, timeout=PRIMARY_LIE_WAIT_S)
    for i in backups:
        status_now = cluster.status(i)
        assert status_now["view"] > 0 and status_now["view_active"], status_now
        assert status_now["primary"] != PRIMARY, status_now
    assert_no_traceback(cluster, backups)
