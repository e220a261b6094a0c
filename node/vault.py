"""The vault's ciphertext on a node: content-addressed chunk files, and the `/v1/vault` routes.

Rules kept here:
- Ciphertext lives in files, never in SQLite: chunk `h` (its SHA-256, hex) at
  `DATA/vault/h[:2]/h`, and an entry's manifest (its chunk hashes, concatenated)
  at `DATA/vault/manifests/ID.manifest`. Each file is written to a temporary
  file, fsynced and renamed, so a reader never sees half of one; a manifest is
  accepted only if it hashes to the entry's committed ciphertext hash, and a
  chunk only if it hashes to the manifest's hash at its index.
- Uploads need the entry's owner's signature (`SignedUpload`) naming this
  node's institution, within `REQUEST_SKEW_MS` of this node's clock; the entry
  must be committed, not erased, list this institution, and have its storage
  paid at this node's clock (403 `storage_lapsed`). Each owner's bytes
  on this node are bounded by a quota (`NOTARYCHAIN_VAULT_QUOTA_BYTES`, default
  `QUOTA_BYTES_DEFAULT`).
- Downloads need a reader's signature (`SignedDownload`) naming a committed
  `authorize_download` of that reader for that entry, still within its window,
  with the reader's grant active at this node's executed height and clock, the
  entry's storage paid at this node's clock (403 `storage_lapsed` otherwise,
  as `authorize_download` is refused), and the entry not erased. `HEAD` of a
  chunk (to resume an upload) needs nothing: it tells only whether an
  unguessable hash is here.
- Erasure: the executor reports each block's state writes once the block is
  stored (`Executor.after_block`); an entry written as erased at that height has
  its chunks and manifest removed by the vault's own thread. The state, and so
  every node's execution, is untouched by this: it is a side effect after the fact.
  Lapsed storage is never erased here: its files stay until the owner renews
  (then they are served again) or deletes the entry.
- All file I/O runs on the vault's thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aiohttp import web

from ledger.encoding import decode, encode
from ledger.errors import DecodeError
from ledger.families.vault import (
    DOWNLOAD_DOMAIN,
    ENTRY_PREFIX,
    REQUEST_SKEW_MS,
    TAG_BYTES,
    UPLOAD_DOMAIN,
    AccessRequest,
    DownloadAuthorization,
    EncryptionKey,
    Entry,
    Event,
    GrantRecord,
    SignedDownload,
    SignedUpload,
    download_key,
    encryption_key_key,
    entry_key,
    grant_key,
    history_key,
    request_key,
)
from ledger.keys import verify
from ledger.views import view
from node.api import NODE_KEY, ApiError, hex_param, int_param, respond
from node.storage import Reader

if TYPE_CHECKING:
    from node.app import Node

log = logging.getLogger("notarychain.vault")

T = TypeVar("T")

UPLOAD_HEADER: Final = "X-Notarychain-Upload"
DOWNLOAD_HEADER: Final = "X-Notarychain-Download"
QUOTA_ENV: Final = "NOTARYCHAIN_VAULT_QUOTA_BYTES"
QUOTA_BYTES_DEFAULT: Final = 64 * 1024**3
HASH_BYTES: Final = 32
HISTORY_PAGE_MAX: Final = 1000
IO_THREADS: Final = 4
SIGNED_HEADER_BYTES_MAX: Final = 1024


class VaultError(Exception):
    """A request the vault refuses: HTTP status, stable code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def api(self) -> ApiError:
        return ApiError(self.status, self.code, self.message)


@dataclass(frozen=True, slots=True)
class Usage:
    owner: bytes
    size: int


DISK_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _storage_error(exc: OSError) -> OSError | VaultError:
    """The error a failed write becomes: a full disk is said so; anything else stays an
    OSError (a fault of this node, answered as an internal error and logged)."""
    if exc.errno in DISK_FULL_ERRNOS:
        return VaultError(
            507, "storage_full", "this node's disk is full; try a node that keeps the entry"
        )
    return exc


class VaultStore:
    """The chunk and manifest files of one node (synchronous: call it on `pool`)."""

    def __init__(self, root: Path, quota_bytes: int) -> None:
        self.root = root
        self.quota_bytes = quota_bytes
        self.manifests = root / "manifests"
        self.tmp = root / "tmp"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():  # half-written files of a crashed run
            leftover.unlink(missing_ok=True)
        self.pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="vault")
        self._lock = threading.Lock()
        self.usage: dict[bytes, int] = {}
        for evidence_id in self.entry_ids():
            owned = self._usage_of(evidence_id)
            if owned is not None:
                self.usage[owned.owner] = self.usage.get(owned.owner, 0) + owned.size

    # ------------------------------------------------------------ paths

    def chunk_path(self, digest: bytes) -> Path:
        name = digest.hex()
        return self.root / name[:2] / name

    def manifest_path(self, evidence_id: bytes) -> Path:
        return self.manifests / f"{evidence_id.hex()}.manifest"

    def usage_path(self, evidence_id: bytes) -> Path:
        return self.manifests / f"{evidence_id.hex()}.json"

    def entry_ids(self) -> list[bytes]:
        return [bytes.fromhex(p.name.split(".")[0]) for p in self.manifests.glob("*.manifest")]

    def _usage_of(self, evidence_id: bytes) -> Usage | None:
        try:
            data = json.loads(self.usage_path(evidence_id).read_text())
            return Usage(bytes.fromhex(data["owner"]), int(data["bytes"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # ------------------------------------------------------------ writing

    def _write_atomically(self, path: Path, data: bytes) -> None:
        """A full disk (or quota, or file size limit) is the client's 507, not a 500."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.tmp)
        except OSError as exc:
            raise _storage_error(exc) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException as exc:
            Path(temporary).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _storage_error(exc) from None
            raise

    def put_manifest(self, entry: Entry, data: bytes) -> bool:
        """Keep the entry's manifest; False if it was already here."""
        if len(data) != HASH_BYTES * entry.chunk_count:
            raise VaultError(
                400, "bad_manifest", f"the manifest lists {entry.chunk_count} chunk hashes"
            )
        if hashlib.sha256(data).digest() != entry.ciphertext_hash:
            raise VaultError(
                400, "hash_mismatch", "the manifest does not hash to the entry's ciphertext hash"
            )
        path = self.manifest_path(entry.evidence_id)
        with self._lock:
            if path.exists():
                return False
            used = self.usage.get(entry.owner, 0)
            if used + entry.ciphertext_size > self.quota_bytes:
                raise VaultError(
                    507,
                    "quota_exceeded",
                    f"this node keeps at most {self.quota_bytes} bytes per identity "
                    f"({used} in use)",
                )
            self.usage[entry.owner] = used + entry.ciphertext_size
        record = {"owner": entry.owner.hex(), "bytes": entry.ciphertext_size}
        try:
            self._write_atomically(self.usage_path(entry.evidence_id), json.dumps(record).encode())
            self._write_atomically(path, data)
        except (OSError, VaultError):
            with self._lock:
                self.usage[entry.owner] -= entry.ciphertext_size
            raise
        return True

    def put_chunk(self, expected: bytes, data: bytes) -> bool:
        """Keep a chunk whose SHA-256 is `expected`; False if it was already here."""
        if hashlib.sha256(data).digest() != expected:
            raise VaultError(400, "hash_mismatch", "the chunk does not hash to its manifest entry")
        path = self.chunk_path(expected)
        if path.exists():
            return False
        self._write_atomically(path, data)
        return True

    # ------------------------------------------------------------ reading

    def chunk_hash(self, evidence_id: bytes, index: int) -> bytes | None:
        """The manifest's hash at `index`, or None without a manifest."""
        try:
            with self.manifest_path(evidence_id).open("rb") as handle:
                handle.seek(HASH_BYTES * index)
                digest = handle.read(HASH_BYTES)
        except FileNotFoundError:
            return None
        return digest if len(digest) == HASH_BYTES else None

    def read_manifest(self, evidence_id: bytes) -> bytes | None:
        try:
            return self.manifest_path(evidence_id).read_bytes()
        except FileNotFoundError:
            return None

    def has_chunk(self, digest: bytes) -> bool:
        return self.chunk_path(digest).is_file()

    def read_chunk(self, digest: bytes) -> bytes | None:
        try:
            return self.chunk_path(digest).read_bytes()
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------ erasure

    def erase(self, evidence_id: bytes) -> int:
        """Remove an entry's chunks and manifest; the number of chunk files removed."""
        removed = 0
        path = self.manifest_path(evidence_id)
        with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
            while digest := handle.read(HASH_BYTES):
                chunk = self.chunk_path(digest)
                if chunk.exists():
                    chunk.unlink(missing_ok=True)
                    removed += 1
        owned = self._usage_of(evidence_id)
        path.unlink(missing_ok=True)
        self.usage_path(evidence_id).unlink(missing_ok=True)
        if owned is not None:
            with self._lock:
                self.usage[owned.owner] = max(0, self.usage.get(owned.owner, 0) - owned.size)
        return removed

    def erase_logged(self, evidence_id: bytes) -> None:
        try:
            removed = self.erase(evidence_id)
        except OSError:
            log.exception("could not erase the vault content of %s", evidence_id.hex())
            return
        log.info("erased vault content of %s (%d chunk files)", evidence_id.hex(), removed)

    def after_block(self, height: int, writes: Mapping[bytes, bytes]) -> None:
        """Executor observer (storage thread): hand entries erased at `height` to the pool."""
        for key, value in writes.items():
            if key.startswith(ENTRY_PREFIX):
                entry = decode(Entry, value)
                if entry.deleted_height == height:
                    try:
                        self.pool.submit(self.erase_logged, entry.evidence_id)
                    except RuntimeError:  # shutting down: the next start's sweep erases it
                        log.warning("erasure of %s left to the next start", key.hex())

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def quota_bytes() -> int:
    text = os.environ.get(QUOTA_ENV)
    if text is None:
        return QUOTA_BYTES_DEFAULT
    try:
        return max(0, int(text))
    except ValueError:
        log.warning(
            "%s=%r is not a number of bytes; using %d", QUOTA_ENV, text, QUOTA_BYTES_DEFAULT
        )
        return QUOTA_BYTES_DEFAULT


class VaultService:
    """What the routes share: the store (made when the API starts, since it needs the node)."""

    def __init__(self) -> None:
        self._store: VaultStore | None = None

    @property
    def store(self) -> VaultStore:
        if self._store is None:
            raise ApiError(503, "vault_unavailable", "the vault is not running on this node")
        return self._store

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        store = self.store
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(store.pool, fn, *args)
        except VaultError as exc:
            raise exc.api() from None

    async def start(self, app: web.Application) -> None:
        node = app[NODE_KEY]
        quota = quota_bytes()
        self._store = VaultStore(node.config.data_dir / "vault", quota)
        node.executor.after_block.append(self._store.after_block)
        await self._sweep(node)

    async def _sweep(self, node: Node) -> None:
        """Erase what an erasure left behind (a crash between the block and the removal)."""
        store = self.store

        def erased(reader: Reader, evidence_ids: list[bytes]) -> list[bytes]:
            found = []
            for evidence_id in evidence_ids:
                data = reader.state(entry_key(evidence_id))
                if data is not None and decode(Entry, data).deleted:
                    found.append(evidence_id)
            return found

        present = await self.io(store.entry_ids)
        for evidence_id in await node.reads.run(lambda reader: erased(reader, present)):
            await self.io(store.erase_logged, evidence_id)

    async def stop(self, app: web.Application) -> None:
        if self._store is not None:
            self._store.close()


VAULT_KEY: Final[web.AppKey[VaultService]] = web.AppKey("vault", VaultService)


# ---------------------------------------------------------------- request checks


def _index(request: web.Request) -> int:
    return int_param(request.match_info["index"], "the chunk index")


def _signed(request: web.Request, header: str, cls: type[T]) -> T:
    text = request.headers.get(header)
    if text is None:
        raise ApiError(401, "unsigned", f"this request needs a signed {header} header")
    if len(text) > 2 * SIGNED_HEADER_BYTES_MAX:
        raise ApiError(400, "bad_request", f"the {header} header is too long")
    try:
        return decode(cls, bytes.fromhex(text))
    except (ValueError, DecodeError) as exc:
        raise ApiError(400, "bad_request", f"the {header} header does not decode: {exc}") from None


def _check_fresh(node: Node, chain_id: str, time_ms: int) -> None:
    if chain_id != node.genesis.chain_id:
        raise ApiError(400, "wrong_chain", f"this node runs chain {node.genesis.chain_id!r}")
    if abs(int(time.time() * 1000) - time_ms) > REQUEST_SKEW_MS:
        raise ApiError(
            401, "stale_request", f"the request's time is not within {REQUEST_SKEW_MS} ms of ours"
        )


def _stored_here(node: Node, entry: Entry) -> None:
    if entry.deleted:
        raise ApiError(410, "deleted", f"the content was erased at height {entry.deleted_height}")
    if node.config.institution not in entry.institutions:
        raise ApiError(
            409, "not_stored_here", f"{node.config.institution} is not a storing institution"
        )


async def _entry(node: Node, evidence_id: bytes) -> Entry:
    data = await node.reads.run(lambda reader: reader.state(entry_key(evidence_id)))
    if data is None:
        raise ApiError(404, "unknown_vault_entry", "no committed vault entry for this evidence")
    return decode(Entry, data)


async def _upload_entry(request: web.Request, index: int) -> tuple[Entry, SignedUpload]:
    """Check a signed upload of the manifest (index -1) or a chunk; the entry it is for."""
    node = request.app[NODE_KEY]
    evidence_id = hex_param(request)
    signed = _signed(request, UPLOAD_HEADER, SignedUpload)
    upload = signed.request
    _check_fresh(node, upload.chain_id, upload.time_ms)
    if (upload.evidence_id, upload.institution, upload.index) != (
        evidence_id,
        node.config.institution,
        index,
    ):
        raise ApiError(403, "wrong_request", "the signed request is for another upload")
    if not verify(signed.signer, signed.signature, UPLOAD_DOMAIN + encode(upload)):
        raise ApiError(403, "bad_signature", "the upload request's signature does not verify")
    entry = await _entry(node, evidence_id)
    _upload_check(node, entry, signed.signer, int(time.time() * 1000))
    return entry, signed


def _upload_check(node: Node, entry: Entry, signer: bytes, now_ms: int) -> None:
    """The state checks of an upload: the owner's, to a storing node, of paid storage (a
    lapsed entry takes no new bytes until it is renewed)."""
    if signer != entry.owner:
        raise ApiError(403, "not_owner", "only the entry's owner may upload its content")
    _stored_here(node, entry)
    lapse = entry.lapse_problem(now_ms)
    if lapse is not None:
        raise ApiError(403, *lapse)


def _download_check(
    reader: Reader, node: Node, signed: SignedDownload, height: int, now_ms: int
) -> Entry:
    """The state checks of a download request (on a reader thread)."""
    wanted = signed.request

    def record(cls: type[T], key: bytes) -> T | None:
        data = reader.state(key)
        return None if data is None else decode(cls, data)

    authorization = record(DownloadAuthorization, download_key(wanted.authorization))
    if authorization is None:
        raise ApiError(404, "unknown_authorization", "no committed download authorization")
    if (authorization.reader, authorization.evidence_id) != (signed.signer, wanted.evidence_id):
        raise ApiError(403, "not_authorized", "the authorization is for another reader or entry")
    if now_ms > authorization.valid_until_ms:
        raise ApiError(403, "authorization_expired", "the download authorization has expired")
    entry = record(Entry, entry_key(wanted.evidence_id))
    if entry is None:
        raise ApiError(404, "unknown_vault_entry", "no committed vault entry for this evidence")
    _stored_here(node, entry)
    lapse = entry.lapse_problem(now_ms)
    if lapse is not None:
        raise ApiError(403, *lapse)
    if signed.signer != entry.owner:
        grant = record(GrantRecord, grant_key(entry.evidence_id, signed.signer))
        if grant is None:
            raise ApiError(403, "no_grant", "the owner has not granted this identity access")
        problem = grant.problem(height, now_ms)
        if problem is not None:
            raise ApiError(403, *problem)
    return entry


async def _download_entry(request: web.Request, index: int) -> Entry:
    node = request.app[NODE_KEY]
    evidence_id = hex_param(request)
    signed = _signed(request, DOWNLOAD_HEADER, SignedDownload)
    wanted = signed.request
    _check_fresh(node, wanted.chain_id, wanted.time_ms)
    if (wanted.evidence_id, wanted.index) != (evidence_id, index):
        raise ApiError(403, "wrong_request", "the signed request is for another download")
    if not verify(signed.signer, signed.signature, DOWNLOAD_DOMAIN + encode(wanted)):
        raise ApiError(403, "bad_signature", "the download request's signature does not verify")
    height = node.driver.executed_height
    now_ms = int(time.time() * 1000)
    return await node.reads.run(
        lambda reader: _download_check(reader, node, signed, height, now_ms)
    )


async def _body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes (read as it streams in)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"at most {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for piece in request.content.iter_chunked(256 * 1024):
        size += len(piece)
        if size > limit:
            raise ApiError(413, "too_large", f"at most {limit} bytes")
        parts.append(piece)
    return b"".join(parts)


# ---------------------------------------------------------------- handlers


async def put_manifest(request: web.Request) -> web.Response:
    vault = request.app[VAULT_KEY]
    entry, signed = await _upload_entry(request, -1)
    if signed.request.digest != entry.ciphertext_hash:
        raise ApiError(403, "wrong_request", "the signed hash is not the entry's ciphertext hash")
    data = await _body(request, HASH_BYTES * entry.chunk_count)
    created = await vault.io(vault.store.put_manifest, entry, data)
    return respond(request, {"stored": created}, 201 if created else 200)


async def get_manifest(request: web.Request) -> web.Response:
    vault = request.app[VAULT_KEY]
    entry = await _download_entry(request, -1)
    data = await vault.io(vault.store.read_manifest, entry.evidence_id)
    if data is None:
        raise ApiError(404, "missing_manifest", "this node has not received the manifest")
    return web.Response(body=data, content_type="application/octet-stream")


async def _expected_hash(vault: VaultService, entry: Entry, index: int) -> bytes:
    if not 0 <= index < entry.chunk_count:
        raise ApiError(404, "unknown_chunk", f"the entry has chunks 0..{entry.chunk_count - 1}")
    digest = await vault.io(vault.store.chunk_hash, entry.evidence_id, index)
    if digest is None:
        raise ApiError(409, "missing_manifest", "upload the manifest first")
    return digest


async def put_chunk(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    vault = request.app[VAULT_KEY]
    index = _index(request)
    entry, signed = await _upload_entry(request, index)
    expected = await _expected_hash(vault, entry, index)
    if signed.request.digest != expected:
        raise ApiError(403, "wrong_request", "the signed hash is not the manifest's")
    data = await _body(request, entry.chunk_size + TAG_BYTES)
    created = await vault.io(vault.store.put_chunk, expected, data)
    if (await _entry(node, entry.evidence_id)).deleted:  # erased while this chunk came in
        await vault.io(vault.store.erase_logged, entry.evidence_id)
        raise ApiError(410, "deleted", "the content was erased")
    return respond(request, {"stored": created}, 201 if created else 200)


async def get_chunk(request: web.Request) -> web.StreamResponse:
    vault = request.app[VAULT_KEY]
    index = _index(request)
    if request.method == "HEAD":
        node = request.app[NODE_KEY]
        entry = await _entry(node, hex_param(request))
        expected = await _expected_hash(vault, entry, index)
        present = await vault.io(vault.store.has_chunk, expected)
        return web.Response(status=200 if present else 404)
    entry = await _download_entry(request, index)
    expected = await _expected_hash(vault, entry, index)
    data = await vault.io(vault.store.read_chunk, expected)
    if data is None:
        raise ApiError(404, "missing_chunk", "this node does not hold that chunk")
    return web.Response(body=data, content_type="application/octet-stream")


async def get_entry(request: web.Request) -> web.Response:
    """The entry with its history (unproven, like the other record look-ups)."""
    node = request.app[NODE_KEY]
    evidence_id = hex_param(request)

    def read(reader: Reader) -> dict[str, Any] | None:
        data = reader.state(entry_key(evidence_id))
        if data is None:
            return None
        entry = decode(Entry, data)
        start = max(0, entry.events - HISTORY_PAGE_MAX)
        history = []
        for index in range(start, entry.events):
            event = reader.state(history_key(evidence_id, index))
            if event is not None:
                history.append(view(decode(Event, event)))
        requests = []
        for request_id in entry.open_requests:
            found = reader.state(request_key(request_id))
            if found is not None:
                requests.append(view(decode(AccessRequest, found)))
        grants = []
        for reader_key in entry.grantees:
            found = reader.state(grant_key(evidence_id, reader_key))
            if found is not None:
                grants.append(view(decode(GrantRecord, found)))
        return {
            **view(entry),
            "history": history,
            "pending_requests": requests,
            "grants": grants,
        }

    answer = await node.reads.run(read)
    if answer is None:
        raise ApiError(404, "unknown_vault_entry", "no vault entry for this evidence")
    return respond(request, answer)


def _record_route(cls: type[Any], key_of: Callable[[web.Request], bytes], what: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        node = request.app[NODE_KEY]
        key = key_of(request)
        data = await node.reads.run(lambda reader: reader.state(key))
        if data is None:
            raise ApiError(404, f"unknown_{what}", f"no {what.replace('_', ' ')} here")
        return respond(request, view(decode(cls, data)))

    return handler


def add_vault_routes(app: web.Application) -> None:
    service = VaultService()
    app[VAULT_KEY] = service
    app.on_startup.append(service.start)
    app.on_cleanup.append(service.stop)
    router = app.router
    router.add_get("/v1/vault/entries/{id}", get_entry)
    router.add_put("/v1/vault/entries/{id}/manifest", put_manifest)
    router.add_get("/v1/vault/entries/{id}/manifest", get_manifest)
    router.add_put("/v1/vault/entries/{id}/chunks/{index}", put_chunk)
    router.add_get("/v1/vault/entries/{id}/chunks/{index}", get_chunk)
    router.add_get(
        "/v1/vault/grants/{id}/{reader}",
        _record_route(
            GrantRecord, lambda r: grant_key(hex_param(r), hex_param(r, "reader")), "grant"
        ),
    )
    router.add_get(
        "/v1/vault/requests/{id}",
        _record_route(AccessRequest, lambda r: request_key(hex_param(r)), "access_request"),
    )
    router.add_get(
        "/v1/vault/downloads/{id}",
        _record_route(DownloadAuthorization, lambda r: download_key(hex_param(r)), "authorization"),
    )
    router.add_get(
        "/v1/vault/encryption-keys/{id}",
        _record_route(EncryptionKey, lambda r: encryption_key_key(hex_param(r)), "encryption_key"),
    )
