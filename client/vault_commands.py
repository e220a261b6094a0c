"""The `notarychain vault ...` commands; each returns a dict: `text` for people, the rest JSON."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from client.commands import _connected, _id, _key, _lines, progress_enabled
from client.errors import ClientError
from client.vault import AsyncVaultClient
from ledger.documents import iso_time
from ledger.families.vault import MIB


class ByteProgress:
    """A progress bar in MiB on stderr (only on a terminal, and never with --json)."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // max(1, total)
        rate = done / MIB / max(0.001, time.monotonic() - self.started)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done / MIB:.1f}/{total / MIB:.1f} MiB ({rate:.1f} MiB/s)"
        )
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def _vault(args: argparse.Namespace) -> AbstractAsyncContextManager[AsyncVaultClient]:
    return _connected(args, AsyncVaultClient)


def _evidence(args: argparse.Namespace) -> bytes:
    return bytes.fromhex(_id(args.evidence_id, "EVIDENCE_ID"))


def _expiry(args: argparse.Namespace) -> tuple[int | None, int | None]:
    height = getattr(args, "expires_height", None)
    seconds = getattr(args, "expires_in", None)
    if seconds is not None and seconds <= 0:
        raise ClientError("--expires-in takes a positive number of seconds")
    expires_ms = None if seconds is None else int((time.time() + seconds) * 1000)
    return height, expires_ms


async def vault_put(args: argparse.Namespace) -> dict[str, Any]:
    institutions = [n.strip() for n in args.institutions.split(",")] if args.institutions else None
    bar = ByteProgress("uploading", progress_enabled(args))
    async with _vault(args) as client:
        try:
            stored = await client.store_file(
                args.path,
                replicas=args.replicas,
                institutions=institutions,
                title=args.title,
                months=args.months,
                progress=bar,
            )
        finally:
            bar.finish()
    resumed = "" if stored.tx_id is not None else " (resumed an earlier upload)"
    return {
        "text": _lines(
            f"stored {stored.evidence_id}{resumed}",
            f"  {stored.plaintext_size} bytes in {stored.chunk_count} encrypted chunks on "
            f"{', '.join(stored.institutions)}",
            f"  storage fee {stored.storage_fee}, paid until {iso_time(stored.paid_until_ms)}; "
            f"{stored.uploaded_chunks} chunk uploads",
        ),
        "state": "stored",
        "evidence_id": stored.evidence_id,
        "tx_id": stored.tx_id,
        "institutions": list(stored.institutions),
        "size": stored.plaintext_size,
        "chunks": stored.chunk_count,
        "storage_fee": stored.storage_fee,
        "paid_until_ms": stored.paid_until_ms,
        "uploaded_chunks": stored.uploaded_chunks,
    }


async def vault_get(args: argparse.Namespace) -> dict[str, Any]:
    evidence_id = _evidence(args)
    bar = ByteProgress("downloading", progress_enabled(args))
    async with _vault(args) as client:
        try:
            fetched = await client.fetch_file(evidence_id, args.out, bar)
        finally:
            bar.finish()
    return {
        "text": _lines(
            f"wrote {fetched.path} ({fetched.size} bytes); its SHA-256 is the evidence id",
            f"  download authorization {fetched.authorization}, fee {fetched.fee_paid}",
        ),
        "state": "verified",
        "evidence_id": fetched.evidence_id,
        "tx_id": fetched.authorization,
        "path": str(fetched.path),
        "size": fetched.size,
        "fee_paid": fetched.fee_paid,
    }


async def vault_key(args: argparse.Namespace) -> dict[str, Any]:
    async with _vault(args) as client:
        public = await client.ensure_encryption_key()
        path = client.encryption_key_file
    return {
        "text": f"encryption key {public.hex()} published (private key in {path})",
        "state": "published",
        "encryption_key": public.hex(),
    }


async def vault_grant(args: argparse.Namespace) -> dict[str, Any]:
    evidence_id, reader = _evidence(args), _key(args.to)
    expires_height, expires_ms = _expiry(args)
    async with _vault(args) as client:
        tx_id = await client.grant(evidence_id, reader, expires_height, expires_ms)
    limits = []
    if expires_height is not None:
        limits.append(f"below height {expires_height}")
    if expires_ms is not None:
        limits.append(f"until {iso_time(expires_ms)}")
    return {
        "text": f"granted {reader.hex()} access to {evidence_id.hex()} "
        + (" and ".join(limits) or "without expiry"),
        "state": "granted",
        "evidence_id": evidence_id.hex(),
        "tx_id": tx_id,
        "reader": reader.hex(),
        "expires_height": expires_height,
        "expires_ms": expires_ms,
    }


async def vault_revoke(args: argparse.Namespace) -> dict[str, Any]:
    evidence_id, reader = _evidence(args), _key(args.to)
    async with _vault(args) as client:
        tx_id = await client.revoke_grant(evidence_id, reader, args.reason)
    return {
        "text": f"revoked the grant of {reader.hex()} for {evidence_id.hex()}",
        "state": "revoked",
        "evidence_id": evidence_id.hex(),
        "tx_id": tx_id,
        "reader": reader.hex(),
    }


async def vault_request(args: argparse.Namespace) -> dict[str, Any]:
    evidence_id = _evidence(args)
    async with _vault(args) as client:
        request_id = await client.request_access(evidence_id, args.reason)
    return {
        "text": f"access request {request_id} filed; the download fee is held until the "
        "owner answers",
        "state": "pending",
        "evidence_id": evidence_id.hex(),
        "tx_id": request_id,
        "request_id": request_id,
    }


async def vault_requests(args: argparse.Namespace) -> dict[str, Any]:
    evidence_id = _evidence(args)
    if args.answer is not None:
        return await _answer(args, evidence_id)
    if args.grant or args.refuse is not None:
        raise ClientError("--grant and --refuse go with --answer REQUEST_ID")
    async with _vault(args) as client:
        record = await client.vault_entry(evidence_id)
    pending = record["pending_requests"]
    lines = [f"{len(pending)} pending access requests for {evidence_id.hex()}"]
    lines += [
        f"  {r['id']}  from {r['requester']}  {iso_time(r['requested_time_ms'])}: {r['reason']}"
        for r in pending
    ]
    return {"text": _lines(*lines), "evidence_id": evidence_id.hex(), "requests": pending}


async def _answer(args: argparse.Namespace, evidence_id: bytes) -> dict[str, Any]:
    if args.grant == (args.refuse is not None):
        raise ClientError("answer with exactly one of --grant or --refuse REASON")
    request_id = _id(args.answer, "REQUEST_ID")
    expires_height, expires_ms = _expiry(args)
    async with _vault(args) as client:
        request = await client.access_request(bytes.fromhex(request_id))
        if request.evidence_id != evidence_id:
            raise ClientError(f"request {request_id[:16]} is for other evidence")
        tx_id = await client.answer_request(
            bytes.fromhex(request_id), args.grant, args.refuse or "", expires_height, expires_ms
        )
    state = "granted" if args.grant else "refused"
    return {
        "text": f"request {request_id} {state}",
        "state": state,
        "evidence_id": evidence_id.hex(),
        "request_id": request_id,
        "tx_id": tx_id,
        "reason": args.refuse,
    }


async def vault_delete(args: argparse.Namespace) -> dict[str, Any]:
    evidence_id = _evidence(args)
    async with _vault(args) as client:
        tx_id = await client.delete(evidence_id, args.reason)
    return {
        "text": _lines(
            f"erased the stored content of {evidence_id.hex()}",
            "  the evidence record, its trusted time and every proof stay valid",
        ),
        "state": "deleted",
        "evidence_id": evidence_id.hex(),
        "tx_id": tx_id,
    }


async def vault_renew(args: argparse.Namespace) -> dict[str, Any]:
    evidence_id = _evidence(args)
    async with _vault(args) as client:
        renewed = await client.renew(evidence_id, args.months)
    return {
        "text": _lines(
            f"renewed the storage of {evidence_id.hex()} for {renewed.months} months",
            f"  storage fee {renewed.fee_paid}, paid until {iso_time(renewed.paid_until_ms)}",
        ),
        "state": "renewed",
        "evidence_id": evidence_id.hex(),
        "tx_id": renewed.tx_id,
        "months": renewed.months,
        "fee_paid": renewed.fee_paid,
        "paid_until_ms": renewed.paid_until_ms,
    }


async def vault_show(args: argparse.Namespace) -> dict[str, Any]:
    evidence_id = _evidence(args)
    async with _vault(args) as client:
        record = await client.vault_entry(evidence_id)
    state = "deleted" if record["deleted_height"] is not None else "stored"
    paid_until_ms = int(record["paid_until_ms"])
    lapsed = state == "stored" and time.time() * 1000 > paid_until_ms
    note = " (lapsed: downloads are refused until it is renewed)" if lapsed else ""
    lines = [
        f"vault entry {evidence_id.hex()}: {state}",
        f"  owner {record['owner']}, {record['plaintext_size']} bytes in "
        f"{record['chunk_count']} chunks on {', '.join(record['institutions'])}",
        f"  storage paid until {iso_time(paid_until_ms)}{note}; "
        f"storage fees paid {record['storage_fee']}",
        f"  {len(record['grants'])} grants, {len(record['pending_requests'])} pending requests, "
        f"{record['downloads']} downloads",
        "  history:",
    ]
    lines += [
        f"    {iso_time(e['time_ms'])} h{e['height']:<6} {e['step']:20} {e['detail']}"
        for e in record["history"]
    ]
    return {"text": _lines(*lines), "state": state, "evidence_id": evidence_id.hex(), **record}
