"""Record look-ups and proof endpoints of the public API (`/v1/evidence/...`, `/v1/proofs/...`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from ledger.documents import certificate_document, render_certificate_html
from ledger.encoding import decode, encode
from ledger.families.evidence import Evidence, evidence_key
from ledger.families.fees import Account, account_key
from ledger.families.governance import INSTITUTIONS_KEY, Members, Proposal, proposal_key
from ledger.families.identity import Identity, identity_key
from ledger.families.notarization import (
    Application,
    Certificate,
    application_key,
    certificate_key,
)
from ledger.proofs import ProofBundle, bundle_to_json
from ledger.views import view
from node.api import MSGPACK, NODE_KEY, ApiError, respond
from node.proofs import NotYetProvable, build_bundle
from node.storage import Reader

if TYPE_CHECKING:
    from node.app import Node

T = TypeVar("T")

KEY_BYTES = 32


def _id(request: web.Request, name: str = "id") -> bytes:
    text = request.match_info[name]
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ApiError(400, "bad_id", f"{name} must be hex") from None
    if len(value) != KEY_BYTES:
        raise ApiError(
            400, "bad_id", f"{name} must be {KEY_BYTES} bytes ({2 * KEY_BYTES} hex digits)"
        )
    return value


async def _record(node: Node, cls: type[T], key: bytes, what: str) -> T:
    data = await node.reads.run(lambda reader: reader.state(key))
    if data is None:
        raise ApiError(404, f"unknown_{what}", f"no {what} with this id")
    return decode(cls, data)


def lookup(
    cls: type[Any], key_of: Callable[[bytes], bytes], what: str
) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        record = await _record(request.app[NODE_KEY], cls, key_of(_id(request)), what)
        return respond(request, view(record))

    return handler


async def get_members(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    members = await _record(node, Members, INSTITUTIONS_KEY, "members")
    return respond(request, view(members))


async def _bundle(node: Node, make: Callable[[Reader], ProofBundle]) -> ProofBundle:
    try:
        return await node.reads.run(make)
    except NotYetProvable as exc:
        raise ApiError(404, "not_yet_provable", f"{exc}; retry shortly") from None
    except KeyError:
        raise ApiError(
            404, "unknown_transaction", "no committed transaction with this id"
        ) from None


def _bundle_response(request: web.Request, bundle: ProofBundle) -> web.Response:
    if MSGPACK in request.headers.get("Accept", ""):
        return web.Response(body=encode(bundle), content_type=MSGPACK)
    return web.json_response(bundle_to_json(bundle))


def state_proof_of(
    key_of: Callable[[bytes], bytes],
    with_tx: Callable[[Any], bytes] | None,
    cls: type[Any] | None,
    what: str,
) -> Callable[[web.Request], Any]:
    """A proof bundle for a record (and, for records that name one, its transaction)."""

    async def handler(request: web.Request) -> web.Response:
        node = request.app[NODE_KEY]
        key = key_of(_id(request))
        tx_ids: tuple[bytes, ...] = ()
        at_least = 0
        if with_tx is not None and cls is not None:
            record = await _record(node, cls, key, what)
            tx_ids = (with_tx(record),)
            at_least = written_height(record)
        bundle = await _bundle(
            node, lambda reader: build_bundle(reader, node.genesis, (key,), tx_ids, at_least)
        )
        return _bundle_response(request, bundle)

    return handler


async def get_transaction_proof(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    tx_id = _id(request)
    bundle = await _bundle(node, lambda reader: build_bundle(reader, node.genesis, (), (tx_id,)))
    return _bundle_response(request, bundle)


async def get_state_proof(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    text = request.match_info["key"]
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ApiError(400, "bad_id", "key must be hex") from None
    if not key or len(key) > 1024:
        raise ApiError(400, "bad_id", "key must be 1 to 1024 bytes")
    bundle = await _bundle(node, lambda reader: build_bundle(reader, node.genesis, (key,)))
    return _bundle_response(request, bundle)


def written_height(record: Any) -> int:
    """The height at which a record was last written: a proof must be at least that recent."""
    if isinstance(record, Application):
        return record.history[-1].height
    if isinstance(record, Certificate):
        return max(record.issued_height, record.revoked_height or 0)
    return int(getattr(record, "height", 0))


async def _certificate_parts(request: web.Request) -> tuple[Node, dict[str, Any]]:
    node = request.app[NODE_KEY]
    certificate_id = _id(request)
    certificate = await _record(node, Certificate, certificate_key(certificate_id), "certificate")
    keys = (
        certificate_key(certificate_id),
        application_key(certificate.application_id),
        *(evidence_key(e.id) for e in certificate.evidence),
    )
    bundle = await _bundle(
        node,
        lambda reader: build_bundle(
            reader, node.genesis, keys, (certificate.issue_tx_id,), written_height(certificate)
        ),
    )
    base = str(request.url.origin())
    document = certificate_document(
        certificate, bundle, f"{base}/#/verify?certificate={certificate_id.hex()}"
    )
    return node, document


async def get_certificate_document(request: web.Request) -> web.Response:
    _, document = await _certificate_parts(request)
    return web.json_response(document)


async def get_certificate_html(request: web.Request) -> web.Response:
    _, document = await _certificate_parts(request)
    return web.Response(text=render_certificate_html(document), content_type="text/html")


def add_record_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/v1/evidence/{id}", lookup(Evidence, evidence_key, "evidence"))
    router.add_get("/v1/applications/{id}", lookup(Application, application_key, "application"))
    router.add_get("/v1/certificates/{id}", lookup(Certificate, certificate_key, "certificate"))
    router.add_get("/v1/certificates/{id}/document", get_certificate_document)
    router.add_get("/v1/certificates/{id}/html", get_certificate_html)
    router.add_get("/v1/accounts/{id}", lookup(Account, account_key, "account"))
    router.add_get("/v1/identities/{id}", lookup(Identity, identity_key, "identity"))
    router.add_get("/v1/governance/proposals/{id}", lookup(Proposal, proposal_key, "proposal"))
    router.add_get("/v1/members", get_members)
    router.add_get(
        "/v1/proofs/evidence/{id}",
        state_proof_of(evidence_key, lambda r: r.tx_id, Evidence, "evidence"),
    )
    router.add_get(
        "/v1/proofs/applications/{id}",
        state_proof_of(application_key, lambda r: r.id, Application, "application"),
    )
    router.add_get(
        "/v1/proofs/certificates/{id}",
        state_proof_of(certificate_key, lambda r: r.issue_tx_id, Certificate, "certificate"),
    )
    router.add_get("/v1/proofs/transactions/{id}", get_transaction_proof)
    router.add_get("/v1/proofs/state/{key}", get_state_proof)
