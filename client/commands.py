"""The command line's commands. Each returns a dict: `text` for people, the rest for `--json`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from client.config import ClientConfig, find_config, load_config, load_genesis
from client.errors import ClientError, ConfigError, ProofInvalid, VerificationFailed
from client.files import (
    Found,
    HashedFile,
    expand,
    kind_of,
    load_json_file,
    receipt_document,
    receipt_path,
    sha256_file,
    shared_receipt,
)
from client.sdk import AsyncClient
from client.verify import Proven, check_not_revoked, verify_certificate, verify_receipt
from ledger.documents import iso_time, render_certificate_html
from ledger.encoding import decode
from ledger.families import evidence, governance, identity, notarization
from ledger.genesis import Genesis
from ledger.keyfile import save_private_key
from ledger.keys import PrivateKey, parse_public_key_text
from ledger.tx import TX_BYTES_MAX

HASH_THREADS = 4
PROOF_CONCURRENCY = 16
ITEM_BYTES_ESTIMATE = 400
ITEMS_PER_TX = min(evidence.ITEMS_MAX, (TX_BYTES_MAX - 4096) // ITEM_BYTES_ESTIMATE)


QUIET_FIELDS = (
    "certificate_id",
    "application_id",
    "evidence_id",
    "proposal_id",
    "public_key",
    "tx_id",
)


def print_result(result: dict[str, Any], as_json: bool, quiet: bool = False) -> None:
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "text"}))
    elif quiet:
        field = next((f for f in QUIET_FIELDS if result.get(f)), None)
        print(result[field] if field else result.get("state", ""))
    else:
        print(result.get("text", ""))


def progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "no_progress", False) and not args.json and os.isatty(2)


def _config(args: argparse.Namespace) -> ClientConfig:
    return load_config(find_config(args.config))


C = TypeVar("C", bound=AsyncClient)


@asynccontextmanager
async def _connected(args: argparse.Namespace, kind: type[C]) -> AsyncIterator[C]:
    """A client of `kind` for the command's config and identity, closed afterwards."""
    config = _config(args)
    if not config.nodes:
        raise ConfigError(f"{config.path}: no nodes are configured")
    client = kind.from_config(config, args.identity)
    assert isinstance(client, kind)  # from_config builds its own class
    try:
        yield client
    finally:
        await client.close()


def _client(args: argparse.Namespace) -> AbstractAsyncContextManager[AsyncClient]:
    return _connected(args, AsyncClient)


def _key(text: str) -> bytes:
    try:
        return parse_public_key_text(text)
    except Exception as exc:
        raise ClientError(f"{text!r} is not a public key: {exc}") from None


def _id(text: str, what: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ClientError(f"{what} must be 64 hex digits")
    return raw.hex()


def _lines(*lines: str) -> str:
    return "\n".join(lines)


# ---------------------------------------------------------------- status and identities


async def status(args: argparse.Namespace) -> dict[str, Any]:
    config = _config(args)
    genesis = config.genesis()
    async with _client(args) as client:
        rows = []
        for index, url in enumerate(client.nodes):
            try:
                data = await client.status(index)
                rows.append({"url": url, "up": True, **data})
            except ClientError as exc:
                rows.append({"url": url, "up": False, "reason": str(exc)})
    text = [f"chain {genesis.chain_id}, {len(genesis.institutions)} institutions"]
    for row in rows:
        if row["up"]:
            text.append(
                f"  {row['institution']:16} {row['url']:26} height {row['height']:>7} "
                f"view {row['view']} primary {row['primary']} mempool {row['mempool']}"
            )
        else:
            text.append(f"  {row['url']:43} unreachable ({row['reason']})")
    return {"text": _lines(*text), "chain_id": genesis.chain_id, "nodes": rows}


async def identity_new(args: argparse.Namespace) -> dict[str, Any]:
    key = PrivateKey.generate()
    passphrase = os.environ.get("NOTARYCHAIN_KEY_PASSPHRASE")
    try:
        save_private_key(args.out, key, passphrase.encode() if passphrase else None)
    except Exception as exc:
        raise ClientError(str(exc)) from None
    public = key.public_key.hex()
    return {
        "text": _lines(
            f"wrote {args.out} (mode 0600)",
            f"public key {public}",
            "ask your institution's administrator to enrol it",
        ),
        "public_key": public,
    }


async def identity_show(args: argparse.Namespace) -> dict[str, Any]:
    async with _client(args) as client:
        key = args.key or (client.key.public_key.hex() if client.key else None)
        if key is None:
            raise ClientError("give a public key, or configure an identity")
        record = await client.record("identities", _key(key).hex())
    state = "active" if record["revoked_height"] is None else "revoked"
    return {
        "text": f"{record['name']} ({record['role']}, {record['institution']}), "
        f"level {record['level']}, {state}",
        "state": state,
        **record,
    }


async def identity_enrol(args: argparse.Namespace) -> dict[str, Any]:
    async with _client(args) as client:
        role = identity.Role[args.role.upper()]
        await client.enrol(_key(args.key), role, args.name, args.level)
    return {"text": f"enrolled {args.name} as {args.role}", "state": "committed"}


# ---------------------------------------------------------------- evidence


class Progress:
    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled, self.done = total, label, enabled, 0
        self.started = time.monotonic()

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.enabled:
            width = 30
            filled = width * self.done // max(1, self.total)
            rate = self.done / max(0.001, time.monotonic() - self.started)
            sys.stderr.write(
                f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total} ({rate:.0f}/s)"
            )
            sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _hash_all(found: list[Found], args: argparse.Namespace, progress: Progress) -> list[HashedFile]:
    def one(item: Found) -> HashedFile:
        path = item.path
        try:
            digest, size = sha256_file(path)
        except OSError as exc:
            raise ClientError(f"{path}: cannot read: {exc.strerror or exc}") from None
        kind = kind_of(path) if args.kind == "auto" else evidence.Kind[args.kind.upper()]
        salt = os.urandom(32) if args.private else None
        return HashedFile(path, digest, size, kind, salt, item.relative)

    hashed: list[HashedFile] = []
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        for item in pool.map(one, found):
            hashed.append(item)
            progress.advance()
    return hashed


async def evidence_add(args: argparse.Namespace) -> dict[str, Any]:
    try:
        found = expand(list(args.paths))
    except OSError as exc:
        raise ClientError(str(exc)) from None
    if not found:
        raise ClientError("no files to register")
    clash = shared_receipt(found) if args.receipts is not None else None
    if clash is not None:
        one, other, name = clash
        raise ClientError(
            f"{one} and {other} would share the receipt {args.receipts / name}: "
            "register them with separate --receipts folders"
        )
    show = progress_enabled(args) and len(found) > 1
    hashing = Progress(len(found), "hashing   ", show)
    hashed = await asyncio.get_running_loop().run_in_executor(None, _hash_all, found, args, hashing)
    hashing.finish()
    if args.receipts is not None:
        args.receipts.mkdir(parents=True, exist_ok=True)
    registering = Progress(len(hashed), "registering", show)
    results: list[dict[str, Any]] = []
    async with _client(args) as client:
        for start in range(0, len(hashed), ITEMS_PER_TX):
            chunk = hashed[start : start + ITEMS_PER_TX]
            results.extend(await _register_chunk(client, chunk, args))
            registering.advance(len(chunk))
    registering.finish()
    new = sum(1 for r in results if r["new"])
    text = [f"registered {len(results)} items ({new} new, {len(results) - new} known before)"]
    if len(results) <= 20:
        text += [f"  {r['evidence_id']}  {r['file']}  {iso_time(r['time_ms'])}" for r in results]
    if args.receipts is not None:
        text.append(f"receipts in {args.receipts}")
    first = results[0]
    return {
        "text": _lines(*text),
        "state": "committed",
        "tx_id": first["tx_id"],
        "height": first["height"],
        "evidence_id": first["evidence_id"],
        "items": results,
    }


async def _register_chunk(
    client: AsyncClient, chunk: Sequence[HashedFile], args: argparse.Namespace
) -> list[dict[str, Any]]:
    items = [
        evidence.Item(
            h.evidence_id,
            h.salt is not None,
            h.kind,
            h.size,
            (args.title or h.path.name)[: evidence.TITLE_CHARS_MAX],
        )
        for h in chunk
    ]
    tx = client.build(evidence.FAMILY, evidence.REGISTER, evidence.Register(tuple(items)))
    tx_id = await client.submit(tx)
    receipt = await client.wait(tx_id)
    registered = decode(evidence.Registered, receipt.result)
    semaphore = asyncio.Semaphore(PROOF_CONCURRENCY)

    async def finish(item: HashedFile, new: bool) -> dict[str, Any]:
        async with semaphore:
            bundle, verified = await client.proof("evidence", item.evidence_id.hex())
        record = verified.state.get(evidence.evidence_key(item.evidence_id))
        if record is None:
            raise ProofInvalid(
                f"{item.path}: the node's proof shows no evidence {item.evidence_id.hex()}"
            )
        proven = decode(evidence.Evidence, record)
        if args.receipts is not None:
            document = receipt_document(
                item, proven.tx_id.hex(), proven.height, proven.time_ms, bundle
            )
            target = receipt_path(args.receipts, item)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(document, indent=2) + "\n")
        return {
            "file": str(item.path),
            "evidence_id": item.evidence_id.hex(),
            "sha256": item.sha256.hex(),
            "new": new,
            "tx_id": proven.tx_id.hex(),
            "height": proven.height,
            "time_ms": proven.time_ms,
        }

    return list(
        await asyncio.gather(*(finish(h, n) for h, n in zip(chunk, registered.new, strict=True)))
    )


async def evidence_show(args: argparse.Namespace) -> dict[str, Any]:
    evidence_id = _id(args.evidence_id, "EVIDENCE_ID")
    async with _client(args) as client:
        record = await client.record("evidence", evidence_id)
    return {"text": _evidence_text(record), "evidence_id": evidence_id, **record}


def _evidence_text(record: dict[str, Any]) -> str:
    return _lines(
        f"evidence {record['id']}",
        f"  kind {record['kind']}, {record['size']} bytes, title {record['title']!r}",
        f"  trusted time {iso_time(record['time_ms'])} (height {record['height']})",
        f"  owner {record['owner']}",
    )


async def evidence_find(args: argparse.Namespace) -> dict[str, Any]:
    try:
        digest, _ = sha256_file(args.file)
    except OSError as exc:
        raise ClientError(f"{args.file}: {exc.strerror or exc}") from None
    async with _client(args) as client:
        record = await client.record("evidence", digest.hex())
    return {"text": _evidence_text(record), "evidence_id": digest.hex(), **record}


# ---------------------------------------------------------------- notarization


async def notarize_apply(args: argparse.Namespace) -> dict[str, Any]:
    ids = [bytes.fromhex(_id(e, "EVIDENCE_ID")) for e in args.evidence_ids]
    purpose = notarization.Purpose[args.category.upper().replace("-", "_")]
    async with _client(args) as client:
        application_id = await client.apply(ids, purpose, args.purpose)
        record = await client.record("applications", application_id)
    failed = [f["check"] for f in record["findings"] if not f["passed"]]
    return {
        "text": _lines(
            f"application {application_id}",
            f"  state {record['state']}, audit recommends {record['recommendation']}"
            + (f" (failed: {', '.join(failed)})" if failed else ""),
            f"  fee held {record['fee_held']}",
        ),
        "application_id": application_id,
        "state": record["state"],
        "recommendation": record["recommendation"],
    }


async def notarize_show(args: argparse.Namespace) -> dict[str, Any]:
    application_id = _id(args.application_id, "APP_ID")
    async with _client(args) as client:
        record = await client.record("applications", application_id)
    lines = [
        f"application {application_id}: {record['state']} ({record['purpose']}: "
        f"{record['description']})",
        f"  applicant {record['applicant']} ({record['institution']})",
        "  audit: "
        + ", ".join(
            f"{f['check']} {'ok' if f['passed'] else 'FAILED'}" for f in record["findings"]
        ),
        f"  recommendation {record['recommendation']}",
    ]
    if record["certificate_id"]:
        lines.append(f"  certificate {record['certificate_id']}")
    lines.append("  history:")
    lines += [
        f"    {iso_time(e['time_ms'])} h{e['height']:<6} {e['step']:20} {e['detail']}"
        for e in record["history"]
    ]
    return {
        "text": _lines(*lines),
        "application_id": application_id,
        "state": record["state"],
        **record,
    }


async def notarize_issue(args: argparse.Namespace) -> dict[str, Any]:
    application_id = _id(args.application_id, "APP_ID")
    async with _client(args) as client:
        certificate_id = await client.issue(application_id)
    return {
        "text": f"issued certificate {certificate_id}",
        "application_id": application_id,
        "certificate_id": certificate_id,
        "state": "issued",
    }


async def notarize_reject(args: argparse.Namespace) -> dict[str, Any]:
    application_id = _id(args.application_id, "APP_ID")
    async with _client(args) as client:
        await client.reject(application_id, args.reason)
    return {
        "text": f"rejected {application_id}",
        "application_id": application_id,
        "state": "rejected",
        "reason": args.reason,
    }


async def notarize_withdraw(args: argparse.Namespace) -> dict[str, Any]:
    application_id = _id(args.application_id, "APP_ID")
    async with _client(args) as client:
        await client.withdraw(application_id)
    return {
        "text": f"withdrew {application_id}",
        "application_id": application_id,
        "state": "withdrawn",
    }


async def certificate_revoke(args: argparse.Namespace) -> dict[str, Any]:
    certificate_id = _id(args.certificate_id, "CERT_ID")
    async with _client(args) as client:
        await client.revoke_certificate(certificate_id, args.reason)
    return {
        "text": f"revoked certificate {certificate_id}",
        "certificate_id": certificate_id,
        "state": "revoked",
        "reason": args.reason,
    }


async def certificate_export(args: argparse.Namespace) -> dict[str, Any]:
    certificate_id = _id(args.certificate_id, "CERT_ID")
    async with _client(args) as client:
        document = await client.certificate_document(certificate_id)
        proven = verify_certificate(None, document, client.genesis)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    text = [f"wrote {args.out} (verified: {len(proven.signers)} validators signed)"]
    if args.html is not None:
        args.html.write_text(render_certificate_html(document))
        text.append(f"wrote {args.html}")
    return {"text": _lines(*text), "certificate_id": certificate_id, "state": document["status"]}


# ---------------------------------------------------------------- verification


def _verify_genesis(args: argparse.Namespace) -> Genesis:
    if args.genesis is not None:
        return load_genesis(args.genesis)
    return _config(args).genesis()


async def verify(args: argparse.Namespace) -> dict[str, Any]:
    genesis = _verify_genesis(args)
    if args.receipt is not None:
        if args.path is None:
            raise ClientError("give the file to verify against the receipt")
        proven = verify_receipt(args.path, load_json_file(args.receipt, "receipt"), genesis)
        return _proven_result(proven, "receipt", genesis)
    document = load_json_file(args.certificate, "certificate")
    proven = verify_certificate(args.path, document, genesis)
    if args.offline:
        result = _proven_result(proven, "certificate", genesis)
        result["text"] += (
            f"\n  note          offline: the status is as proven at height "
            f"{proven.checkpoint_height}; verify online to see any later revocation"
        )
        return result
    async with _client(args) as client:
        _, fresh = await client.proof("certificates", document["certificate_id"])
    check_not_revoked(bytes.fromhex(document["certificate_id"]), fresh)
    return _proven_result(proven, "certificate", genesis)


def _proven_result(proven: Proven, source: str, genesis: Genesis) -> dict[str, Any]:
    bound_s = proven.time_bound_ms / 1000
    lines = [
        f"VALID: {source} verified against genesis {genesis.chain_id}",
        f"  sha256        {proven.sha256 or '(no file given)'}",
        f"  trusted time  {iso_time(proven.trusted_time_ms)} (within {bound_s:g} s of the clocks"
        " of at least f + 1 honest institutions)",
        f"  height        {proven.height} (proven at checkpoint {proven.checkpoint_height})",
        f"  signed by     {', '.join(proven.signers)}",
    ]
    if proven.certificate is not None:
        lines.insert(
            1,
            f"  certificate   {proven.certificate.id.hex()} "
            f"({proven.certificate.notary_office}, active)",
        )
    return {
        "text": _lines(*lines),
        "state": "valid",
        "sha256": proven.sha256,
        "evidence_id": proven.evidence_id,
        "trusted_time_ms": proven.trusted_time_ms,
        "time_bound_ms": proven.time_bound_ms,
        "height": proven.height,
        "signers": list(proven.signers),
        "certificate_id": None if proven.certificate is None else proven.certificate.id.hex(),
    }


# ---------------------------------------------------------------- accounts and governance


async def accounts_balance(args: argparse.Namespace) -> dict[str, Any]:
    async with _client(args) as client:
        key = args.key or (client.key.public_key.hex() if client.key else None)
        if key is None:
            raise ClientError("give a public key, or configure an identity")
        try:
            record = await client.record("accounts", _key(key).hex())
        except ClientError as exc:
            if "unknown_account" not in str(exc):
                raise
            record = {"balance": 0, "held": 0}
    return {
        "text": f"balance {record['balance']} (held for applications: {record['held']})",
        **record,
    }


async def accounts_credit(args: argparse.Namespace) -> dict[str, Any]:
    async with _client(args) as client:
        await client.credit(_key(args.key), args.amount, args.memo)
    return {"text": f"credited {args.amount}", "state": "committed"}


async def governance_propose(args: argparse.Namespace) -> dict[str, Any]:
    change = _change(args)
    async with _client(args) as client:
        proposal_id = await client.propose(change, args.at, args.description)
    return {"text": f"proposal {proposal_id}", "proposal_id": proposal_id, "state": "open"}


def _change(args: argparse.Namespace) -> governance.Change:
    kind = governance.ChangeKind
    if args.set_fee:
        operation, _, amount = args.set_fee.partition("=")
        if not operation or not amount.isdigit():
            raise ClientError("--set-fee takes OPERATION=AMOUNT")
        fee = governance.SetFee(operation, int(amount))
        return governance.Change(kind.SET_FEE, None, None, fee)
    if args.remove_institution:
        remove = governance.RemoveInstitution(args.remove_institution)
        return governance.Change(kind.REMOVE_INSTITUTION, None, remove, None)
    data = load_json_file(args.add_institution, "member description")
    try:
        member = governance.Member(
            data["name"],
            data["role"],
            _key(data["admin_key"]),
            _key(data["node_key"]),
            data["host"],
            int(data["peer_port"]),
            int(data["api_port"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationFailed(f"{args.add_institution}: missing or bad field {exc}") from None
    return governance.Change(kind.ADD_INSTITUTION, governance.AddInstitution(member), None, None)


async def governance_approve(args: argparse.Namespace) -> dict[str, Any]:
    proposal_id = _id(args.proposal_id, "PROPOSAL_ID")
    async with _client(args) as client:
        await client.approve(proposal_id)
        record = await client.record("governance/proposals", proposal_id)
    return {
        "text": f"approved; the proposal is {record['state']}",
        "proposal_id": proposal_id,
        "state": record["state"],
    }


async def governance_show(args: argparse.Namespace) -> dict[str, Any]:
    proposal_id = _id(args.proposal_id, "PROPOSAL_ID")
    async with _client(args) as client:
        record = await client.record("governance/proposals", proposal_id)
    return {
        "text": _lines(
            f"proposal {proposal_id}: {record['state']}, effective at {record['effective_height']}",
            f"  change {record['change']['kind']}; approvals: {', '.join(record['approvals'])}",
        ),
        "proposal_id": proposal_id,
        "state": record["state"],
        **record,
    }
