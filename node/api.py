"""The public API under `/v1`: JSON for people, msgpack for the SDK (by the Accept header).

Rule: every error is a JSON (or msgpack) object `{"error": {"code", "message"}}`
with a 4xx status and a stable code; no input produces a 500 or a traceback.
A bug of ours that escapes a handler is logged with its traceback and
answered with a bare 500 `internal` error that reveals nothing. The one
exception is a request that is not HTTP at all (a bad request line, a header
over 8 KiB, broken framing): the HTTP server refuses it with a plain-text 400
before any route sees it, and the node logs one line (`node.logs`).

Integers in paths and queries are ASCII decimal digits within SQLite's range
(Python's `int` would also read `1_0`, ` 1` and other scripts' digits).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consensus.events import RequestsReceived
from ledger.encoding import decode, pack, to_wire, unpack_byte_strings
from ledger.errors import DecodeError
from ledger.families import Refusal
from ledger.hashing import HASH_BYTES
from ledger.tx import BATCH_TRANSACTIONS_MAX, Transaction
from node.admission import AdmissionRefusal, Admitted
from node.openapi import OPENAPI

if TYPE_CHECKING:
    from node.app import Node

log = logging.getLogger("notarychain.api")

MSGPACK: Final = "application/msgpack"
WAIT_S_MAX: Final = 30.0
MIN_HEIGHT_WAIT_S: Final = 5.0
REQUEST_BYTES_MAX: Final = 2 * 1024 * 1024
CHECKS_BETWEEN_YIELDS: Final = 64
"""Transactions of a batch checked (signatures: about 10 ms) before the event loop runs."""
NODE_KEY: Final[web.AppKey[Node]] = web.AppKey("node")
INT_PARAM_MAX: Final = 2**63 - 1
"""SQLite's largest integer: a height past it could not even be looked up."""
_INTEGER: Final = re.compile(r"-?[0-9]+")
_NUMBER: Final = re.compile(r"[0-9]+(\.[0-9]+)?")


class ApiError(Exception):
    """A request we refuse: HTTP status, stable code, message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def respond(request: web.Request, data: dict[str, Any], status: int = 200) -> web.Response:
    if MSGPACK in request.headers.get("Accept", ""):
        return web.Response(body=pack(data), status=status, content_type=MSGPACK)
    return web.Response(
        text=json.dumps(_jsonable(data)), status=status, content_type="application/json"
    )


def error_response(request: web.Request, status: int, code: str, message: str) -> web.Response:
    return respond(request, {"error": {"code": code, "message": message}}, status)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(request, exc.status, exc.code, exc.message)
    except AdmissionRefusal as exc:
        node = request.app[NODE_KEY]
        node.metrics.refused.labels(code=exc.code).inc()
        return error_response(request, exc.status, exc.code, exc.reason)
    except web.HTTPException as exc:
        if exc.status_code >= 400:
            code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
                exc.status_code, "bad_request"
            )
            return error_response(request, exc.status_code, code, exc.reason)
        raise
    except ConnectionResetError:
        # The client hung up mid-request: nobody to answer, and not our bug.
        log.info("client left during %s %s", request.method, request.path)
        return error_response(request, 400, "bad_request", "the connection closed mid-request")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(request, 500, "internal", "internal error; see the node's log")


@web.middleware
async def min_height_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Read your writes on any node: `?min_height=H` on any request waits (at most
    `MIN_HEIGHT_WAIT_S`) until this node has executed block H, then answers as
    usual; a node still behind answers 503 `behind`, and a client tries another.
    A client that saw its transaction committed at H thus never reads an older
    state from a node that lags, nor has a submission checked against one (an
    application filed at H is known to the node that admits its certificate)."""
    text = request.query.get("min_height")
    if text is None:
        return await handler(request)
    height = int_param(text, "min_height")
    driver = _node(request).driver
    if driver.executed_height < height:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(MIN_HEIGHT_WAIT_S), driver.committed:
                await driver.committed.wait_for(lambda: driver.executed_height >= height)
    if driver.executed_height < height:
        raise ApiError(
            503,
            "behind",
            f"this node has executed up to height {driver.executed_height}, not {height} yet",
        )
    return await handler(request)


def _node(request: web.Request) -> Node:
    return request.app[NODE_KEY]


def hex_param(request: web.Request, name: str = "id", length: int = HASH_BYTES) -> bytes:
    """A path parameter of `length` bytes in hex; 400 `bad_id` otherwise."""
    text = request.match_info[name]
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ApiError(400, "bad_id", f"{name} must be hex") from None
    if len(value) != length:
        raise ApiError(400, "bad_id", f"{name} must be {length} bytes ({2 * length} hex digits)")
    return value


def int_param(text: str, name: str, low: int = 0, high: int = INT_PARAM_MAX) -> int:
    """A path or query integer in [low, high]; 400 `bad_parameter` otherwise."""
    if _INTEGER.fullmatch(text) is None:
        raise ApiError(400, "bad_parameter", f"{name} must be an integer in decimal digits")
    # A long string of digits is out of range whatever it says; int() of thousands of
    # digits would cost time (and Python refuses more than 4,300).
    value = int(text) if len(text) <= 20 else (low - 1 if text[0] == "-" else high + 1)
    if not low <= value <= high:
        raise ApiError(400, "bad_parameter", f"{name} must be from {low} to {high}")
    return value


def seconds_param(text: str, name: str) -> float:
    """A wait in seconds (decimal digits, a fraction allowed), clamped to `WAIT_S_MAX`."""
    if _NUMBER.fullmatch(text) is None:
        raise ApiError(400, "bad_parameter", f"{name} must be a number of seconds, like 2.5")
    return min(float(text), WAIT_S_MAX)


async def get_status(request: web.Request) -> web.Response:
    return respond(request, _node(request).status())


async def post_transaction(request: web.Request) -> web.Response:
    content_type = request.headers.get("Content-Type", "")
    body = await request.read()
    if content_type.startswith("application/json"):
        try:
            data = bytes.fromhex(json.loads(body)["transaction"])
        except (ValueError, KeyError, TypeError, RecursionError):
            raise ApiError(
                400, "bad_request", 'JSON body must be {"transaction": "<hex of the encoding>"}'
            ) from None
    else:
        data = body
    [outcome] = await admit(_node(request), [data])
    if isinstance(outcome, AdmissionRefusal):
        return error_response(request, outcome.status, outcome.code, outcome.reason)
    return respond(request, outcome.view, outcome.status)


async def post_transaction_batch(request: web.Request) -> web.Response:
    """Many signed transactions in one request, each admitted or refused on its own.

    The answer lists one result per transaction, in order: what `POST
    /v1/transactions` would have answered for it alone, with that answer's
    HTTP status as `status` (202 admitted, 200 already known, 4xx/5xx with an
    `error` object). A request that is malformed as a whole admits nothing.
    """
    content_type = request.headers.get("Content-Type", "")
    body = await request.read()
    try:
        if content_type.startswith("application/json"):
            items = tuple(bytes.fromhex(t) for t in json.loads(body)["transactions"])
        else:
            items = unpack_byte_strings(body, input_bytes_max=REQUEST_BYTES_MAX)
    except (ValueError, KeyError, TypeError, RecursionError, DecodeError):
        raise ApiError(
            400,
            "bad_request",
            "the body must be an array of transaction encodings (msgpack), "
            'or JSON {"transactions": ["<hex of an encoding>", ...]}',
        ) from None
    if not items:
        raise ApiError(400, "bad_request", "the batch is empty")
    if len(items) > BATCH_TRANSACTIONS_MAX:
        raise ApiError(
            413, "too_large", f"at most {BATCH_TRANSACTIONS_MAX} transactions in one batch"
        )
    results = []
    for outcome in await admit(_node(request), list(items)):
        if isinstance(outcome, AdmissionRefusal):
            error = {"code": outcome.code, "message": outcome.reason}
            results.append({"status": outcome.status, "error": error})
        else:
            results.append({"status": outcome.status, **outcome.view})
    return respond(request, {"results": results})


@dataclass(frozen=True, slots=True)
class Outcome:
    """A transaction taken: 202 when admitted now, 200 when already known (its status)."""

    status: int
    view: dict[str, Any]


async def admit(node: Node, encodings: list[bytes]) -> list[Outcome | AdmissionRefusal]:
    """Admit transactions into the mempool; one outcome per encoding, in order.

    The checks of `node.admission` run on each; the state checks of all run
    together (one read on a reader thread); those that pass reach the replica
    as one event. A refusal changes nothing for its transaction.
    """
    outcomes: dict[int, Outcome | AdmissionRefusal] = {}
    checking: list[tuple[int, Admitted]] = []
    pool = node.driver.replica.pool
    for index, data in enumerate(encodings):
        if index and index % CHECKS_BETWEEN_YIELDS == 0:
            await asyncio.sleep(0)  # a large batch must not hold up consensus meanwhile
        try:
            admitted = node.admission.decode(data)
            if admitted.tx_id in pool:
                outcomes[index] = Outcome(200, unordered_view(admitted.tx_id, "pending"))
                continue
            node.admission.check_signature(admitted)
        except AdmissionRefusal as exc:
            outcomes[index] = exc
            continue
        checking.append((index, admitted))
    entries = await asyncio.gather(
        *(node.state_checks.check(admitted) for _, admitted in checking), return_exceptions=True
    )
    fresh: dict[bytes, tuple[Transaction, list[int]]] = {}
    for (index, admitted), entry in zip(checking, entries, strict=True):
        if isinstance(entry, AdmissionRefusal):
            outcomes[index] = entry
        elif isinstance(entry, BaseException):
            raise entry
        elif entry is not None:
            outcomes[index] = Outcome(200, transaction_view(admitted.tx_id, entry))
        else:
            fresh.setdefault(admitted.tx_id, (admitted.tx, []))[1].append(index)
    if fresh:
        outcomes.update(_enqueue(node, fresh))
    for outcome in outcomes.values():
        if isinstance(outcome, AdmissionRefusal):
            node.metrics.refused.labels(code=outcome.code).inc()
    return [outcomes[index] for index in range(len(encodings))]


def _enqueue(
    node: Node, fresh: dict[bytes, tuple[Transaction, list[int]]]
) -> dict[int, Outcome | AdmissionRefusal]:
    """Hand transactions that passed every check to the replica, as one event; those
    beyond the mempool's room are refused (a 202 must not be dropped by the replica)."""
    full = AdmissionRefusal(503, "mempool_full", "the mempool is full; retry later")
    taken = list(fresh.items())[: node.driver.replica.pool.room()]
    busy = None
    if taken and not node.driver.post(
        RequestsReceived(tuple(tx for _, (tx, _) in taken), from_client=True)
    ):
        busy = AdmissionRefusal(429, "busy", "the node is busy; retry later")
    outcomes: dict[int, Outcome | AdmissionRefusal] = {}
    for count, (tx_id, (_, indices)) in enumerate(fresh.items()):
        first: Outcome | AdmissionRefusal
        again: Outcome | AdmissionRefusal  # the same transaction later in the batch
        if count >= len(taken):
            first = again = full
        elif busy is not None:
            first = again = busy
        else:
            node.metrics.observe_admission(tx_id)
            first = Outcome(202, unordered_view(tx_id, "pending"))
            again = Outcome(200, unordered_view(tx_id, "pending"))
        outcomes[indices[0]] = first
        outcomes.update((index, again) for index in indices[1:])
    return outcomes


async def get_transaction(request: web.Request) -> web.Response:
    node = _node(request)
    tx_id = hex_param(request, "tx_id")
    wait_s = min(float(int_param(request.query.get("wait", "0"), "wait")), WAIT_S_MAX)
    status = await node.transaction_status(tx_id)
    if status["state"] == "pending" and wait_s > 0:
        await node.wait_for_transaction(tx_id, wait_s)
        status = await node.transaction_status(tx_id)
    if status["state"] == "unknown":
        raise ApiError(404, "unknown_transaction", "no such transaction here")
    return respond(request, status)


async def get_block(request: web.Request) -> web.Response:
    node = _node(request)
    height = int_param(request.match_info["height"], "height", 1)
    committed = await node.reads.run(lambda reader: reader.block(height))
    if committed is None:
        raise ApiError(404, "unknown_block", f"no block at height {height} yet")
    if MSGPACK in request.headers.get("Accept", ""):
        return web.Response(body=pack(to_wire(committed)), content_type=MSGPACK)
    header = committed.block.header
    return respond(
        request,
        {
            "height": header.height,
            "hash": committed.block.hash,
            "chain_id": header.chain_id,
            "view": header.view,
            "time_ms": header.time_ms,
            "previous_hash": header.previous_hash,
            "tx_root": header.tx_root,
            "proposer": header.proposer,
            "transactions": [tx.id for tx in committed.block.transactions],
            "commit_signers": []
            if committed.certificate is None
            else [c.replica for c in committed.certificate.commits],
        },
    )


async def get_latest_checkpoint(request: web.Request) -> web.Response:
    node = _node(request)
    certificate = await node.reads.run(lambda reader: reader.latest_certificate())
    if certificate is None:
        raise ApiError(404, "no_checkpoint", "no stable checkpoint yet")
    if MSGPACK in request.headers.get("Accept", ""):
        return web.Response(body=pack(to_wire(certificate)), content_type=MSGPACK)
    checkpoint = certificate.checkpoint
    return respond(
        request,
        {
            "checkpoint": {
                "chain_id": checkpoint.chain_id,
                "height": checkpoint.height,
                "block_hash": checkpoint.block_hash,
                "state_root": checkpoint.state_root,
                "log_size": checkpoint.log_size,
                "log_root": checkpoint.log_root,
                "time_ms": checkpoint.time_ms,
            },
            "endorsements": [
                {"signer": e.signer, "signature": e.signature} for e in certificate.endorsements
            ],
        },
    )


async def get_live(request: web.Request) -> web.Response:
    return respond(request, {"status": "live"})


async def get_ready(request: web.Request) -> web.Response:
    """Ready: connected to a quorum of the consortium and caught up with it."""
    problems = _node(request).readiness_problems()
    if problems:
        return respond(request, {"status": "not_ready", "problems": problems}, 503)
    return respond(request, {"status": "ready"})


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


async def get_metrics(request: web.Request) -> web.Response:
    node = _node(request)
    node.refresh_gauges()
    return web.Response(
        body=generate_latest(node.metrics.registry),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


def unordered_view(tx_id: bytes, state: str) -> dict[str, Any]:
    """A transaction in no block: "pending" (in the mempool) or "unknown"."""
    return {"tx_id": tx_id, "state": state}


def transaction_view(tx_id: bytes, entry: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "tx_id": tx_id,
        "height": entry.height,
        "index": entry.position,
        "log_index": entry.log_index,
        "code": entry.code,
    }
    if entry.code == "ok":
        view.update(state="committed", result=entry.result)
    else:
        refusal = decode(Refusal, entry.result)
        view.update(state="rejected", reason=refusal.reason)
    return view


def build_api(node: Node) -> web.Application:
    from node.commits import get_commits  # noqa: PLC0415  (these modules import this one)
    from node.explorer import add_explorer_routes  # noqa: PLC0415
    from node.records import add_record_routes  # noqa: PLC0415
    from node.vault import add_vault_routes  # noqa: PLC0415

    app = web.Application(
        middlewares=[errors_middleware, min_height_middleware], client_max_size=REQUEST_BYTES_MAX
    )
    app[NODE_KEY] = node
    app.router.add_get("/v1/status", get_status)
    app.router.add_post("/v1/transactions", post_transaction)
    app.router.add_post("/v1/transactions/batch", post_transaction_batch)
    app.router.add_get("/v1/transactions/{tx_id}", get_transaction)
    app.router.add_get("/v1/blocks/{height}", get_block)
    app.router.add_get("/v1/checkpoints/latest", get_latest_checkpoint)
    app.router.add_get("/v1/openapi.json", get_openapi)
    app.router.add_get("/v1/health/live", get_live)
    app.router.add_get("/v1/health/ready", get_ready)
    app.router.add_get("/v1/commits", get_commits)
    app.router.add_get("/metrics", get_metrics)
    add_record_routes(app)
    add_vault_routes(app)
    add_explorer_routes(app)
    return app
