"""The web explorer: one static page served by every node at `/`, and the two reads it needs.

The page (`node/explorer/`: index.html, app.js, style.css; no build step, nothing
fetched from elsewhere) talks only to this node's public API. It checks proofs
in the browser against the genesis, so it trusts the node's answers no more
than the command line does. Two reads exist for it alone:

- `GET /v1/genesis`: the consortium's genesis document (the trust anchor;
  its canonical JSON hashes to the `genesis_hash` of `/v1/status`);
- `GET /v1/blocks?limit=N&to=H`: summaries of the N blocks up to height H
  (default: the latest executed), newest first, with each transaction's
  family, operation, sender and outcome.

Static assets are served by name from a fixed list of files that exist in the
folder; a request never becomes a path that reaches outside it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from node.api import INT_PARAM_MAX, NODE_KEY, ApiError, int_param, respond
from node.storage import Reader

if TYPE_CHECKING:
    from consensus.events import CommittedBlock

EXPLORER_DIR: Final = Path(__file__).resolve().with_name("explorer")
CONTENT_TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
ASSET_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(html|js|css|svg|png)$")
BLOCKS_LIMIT_DEFAULT: Final = 10
BLOCKS_LIMIT_MAX: Final = 100
TXS_PER_BLOCK_MAX: Final = 200
"""A block summary lists at most this many transactions (all are in `/v1/blocks/{height}`)."""

# The page runs only its own script and style and talks only to this node.
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> web.Response:
    if not ASSET_NAME.match(name):
        raise ApiError(404, "not_found", "no such explorer file")
    path = (EXPLORER_DIR / name).resolve()
    if path.parent != EXPLORER_DIR or not path.is_file():
        raise ApiError(404, "not_found", "no such explorer file")
    return web.Response(
        body=path.read_bytes(),
        content_type=CONTENT_TYPES[path.suffix],
        charset="utf-8" if path.suffix in (".html", ".js", ".css", ".svg") else None,
        headers=SECURITY_HEADERS,
    )


async def get_index(request: web.Request) -> web.Response:
    return _asset("index.html")


async def get_asset(request: web.Request) -> web.Response:
    return _asset(request.match_info["file"])


async def get_genesis(request: web.Request) -> web.Response:
    genesis = request.app[NODE_KEY].genesis
    return respond(request, genesis.model_dump(mode="json"))


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    return default if text is None else int_param(text, name, low, high)


def block_summary(reader: Reader, committed: CommittedBlock) -> dict[str, Any]:
    block = committed.block
    header = block.header
    transactions = []
    for tx in block.transactions[:TXS_PER_BLOCK_MAX]:
        entry = reader.transaction(tx.id)
        body = tx.body
        transactions.append(
            {
                "id": tx.id,
                "family": body.family,
                "operation": body.operation,
                "sender": body.sender,
                "code": None if entry is None else entry.code,
            }
        )
    return {
        "height": header.height,
        "hash": block.hash,
        "time_ms": header.time_ms,
        "view": header.view,
        "proposer": header.proposer,
        "previous_hash": header.previous_hash,
        "tx_root": header.tx_root,
        "tx_count": len(block.transactions),
        "transactions": transactions,
    }


async def get_blocks(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    top = node.driver.executed_height
    limit = _query_int(request, "limit", BLOCKS_LIMIT_DEFAULT, 1, BLOCKS_LIMIT_MAX)
    to = min(_query_int(request, "to", top, 0, INT_PARAM_MAX), top)
    start = max(1, to - limit + 1)

    def read(reader: Reader) -> list[dict[str, Any]]:
        blocks = reader.blocks(start, to) if to >= 1 else {}
        return [block_summary(reader, blocks[h]) for h in sorted(blocks, reverse=True)]

    blocks = await node.reads.run(read)
    return respond(request, {"height": top, "blocks": blocks})


def add_explorer_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/", get_index)
    router.add_get("/explorer/{file}", get_asset)
    router.add_get("/v1/genesis", get_genesis)
    router.add_get("/v1/blocks", get_blocks)
