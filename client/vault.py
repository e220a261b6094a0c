"""The vault in the SDK: store encrypted evidence content with the consortium, share it, fetch it.

`AsyncVaultClient` is an `AsyncClient` with the vault's operations;
`VaultClient` is its blocking twin (a `Client`). Encryption is in
`client.vault_crypto`; the family's rules in `ledger.families.vault`.

Rules kept here:
- Plaintext and content keys never leave this process. A file is read three
  times, one chunk at a time: to hash it (its evidence id), to build the
  manifest under a fresh content key, and to encrypt and upload it, so memory
  stays bounded whatever the file's size (AES-GCM is deterministic for a given
  key, nonce and associated data, so the second and third passes agree).
- Every chunk goes to every storing institution's node (at least f + 1), so
  losing any f nodes loses nothing. An interrupted upload resumes: the entry
  is on chain, the owner's wrapped key recovers the content key, and a node
  that already has the manifest is asked (HEAD) which chunks it holds.
- A download fails over chunk by chunk between the storing nodes; each chunk is
  checked against the manifest, the manifest against the chain's ciphertext
  hash, and the decrypted file against the evidence id. A partial download is
  kept as `OUT.part` and resumed by the next attempt.
- What the chain says (entries, grants, encryption keys, members) is read with
  a proof bundle checked against the genesis: no node is trusted for it.
- Storage is paid by size and time: `store_file` pays for `months` (default
  `MONTHS_DEFAULT`), `renew` for more; a download of lapsed content is refused
  (`storage_lapsed`) until it is renewed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from client.config import ClientConfig
from client.errors import ClientError, NodeUnavailable, ProofInvalid, Refused
from client.files import kind_of, sha256_file
from client.sdk import AsyncClient, _refusal, load_key
from client.sync import Client
from client.vault_crypto import (
    Decryptor,
    IntegrityError,
    Layout,
    build_manifest,
    ciphertext_hash,
    encrypted_chunks,
    encryption_key_path,
    load_or_create_encryption_key,
    new_content_key,
    public_bytes,
    unwrap_key,
    wrap_key,
)
from ledger.encoding import decode, encode
from ledger.families import evidence
from ledger.families import vault as v
from ledger.families.fees import Account, institution_account_key
from ledger.genesis import Genesis
from ledger.keys import PrivateKey
from ledger.quorum import weak_quorum_size

T = TypeVar("T")

UPLOADS_IN_FLIGHT: Final = 4
"""Chunks being uploaded at once (each to every storing node): memory is about this many MiB."""
DOWNLOADS_IN_FLIGHT: Final = 4
"""Chunks fetched ahead of the one being decrypted."""
PROOF_WAIT_S: Final = 30.0
MONTHS_DEFAULT: Final = 12
"""The storage term a `put` pays for unless told otherwise."""
Progress = Callable[[int, int], None]
"""progress(bytes done, bytes in all): called as chunks complete."""


@dataclass(frozen=True, slots=True)
class Stored:
    evidence_id: str
    tx_id: str | None
    """The store transaction (None when an earlier `put` stored it and this one resumed)."""
    institutions: tuple[str, ...]
    plaintext_size: int
    chunk_count: int
    storage_fee: int
    """Storage fees paid for the entry in all (the store and any renewals)."""
    paid_until_ms: int
    """The end of the paid storage term."""
    uploaded_chunks: int
    """Chunk uploads this call made (chunks times nodes), fewer when resuming."""


@dataclass(frozen=True, slots=True)
class Renewed:
    evidence_id: str
    tx_id: str
    months: int
    fee_paid: int
    """What this renewal cost, to all storing institutions together."""
    paid_until_ms: int
    """The new end of the paid storage term."""


@dataclass(frozen=True, slots=True)
class Fetched:
    evidence_id: str
    path: Path
    size: int
    authorization: str
    fee_paid: int
    nodes: tuple[str, ...]
    """The storing nodes that served at least one chunk."""


class AsyncVaultClient(AsyncClient):
    def __init__(
        self,
        nodes: Sequence[str],
        genesis: Genesis,
        key: PrivateKey | None = None,
        timeout_s: float = 30.0,
        encryption_key_file: Path | None = None,
    ) -> None:
        super().__init__(nodes, genesis, key, timeout_s)
        self.encryption_key_file = encryption_key_file
        self._encryption_key: X25519PrivateKey | None = None
        self._urls: dict[str, str] | None = None

    @classmethod
    def from_config(
        cls, config: ClientConfig, identity: str | None = None, passphrase: bytes | None = None
    ) -> AsyncVaultClient:
        key_path = config.key_path(identity)
        key = load_key(key_path, passphrase)
        return cls(
            config.nodes, config.genesis(), key, config.timeout_s, encryption_key_path(key_path)
        )

    # ------------------------------------------------------------ keys and proven reads

    def encryption_key(self) -> X25519PrivateKey:
        if self._encryption_key is None:
            if self.encryption_key_file is None:
                raise ClientError("this client has no encryption key file")
            self._encryption_key = load_or_create_encryption_key(self.encryption_key_file)
        return self._encryption_key

    def _me(self) -> bytes:
        if self.key is None:
            raise ClientError("this client has no identity key to sign with")
        return self.key.public_key

    async def proven_state(self, key: bytes, at_least_height: int = 0) -> bytes | None:
        """A state value proven against the genesis, as of a checkpoint at or above a height."""
        deadline = time.monotonic() + PROOF_WAIT_S
        while True:
            _, verified = await self.proof("state", key.hex())
            if verified.checkpoint.height >= at_least_height:
                return verified.state.get(key)
            if time.monotonic() > deadline:
                raise ProofInvalid(f"no checkpoint at height {at_least_height} or above in time")
            await asyncio.sleep(0.2)

    async def _proven(self, cls: type[T], key: bytes, at_least_height: int = 0) -> T | None:
        data = await self.proven_state(key, at_least_height)
        return None if data is None else decode(cls, data)

    async def entry(self, evidence_id: bytes, at_least_height: int = 0) -> v.Entry:
        entry = await self._proven(v.Entry, v.entry_key(evidence_id), at_least_height)
        if entry is None:
            raise Refused("unknown_vault_entry", "no vault entry for this evidence", 404)
        return entry

    async def ensure_encryption_key(self) -> bytes:
        """Publish this identity's X25519 key on chain unless it is already there."""
        mine = public_bytes(self.encryption_key())
        published = await self._proven(v.EncryptionKey, v.encryption_key_key(self._me()))
        if published is None or published.key != mine:
            await self.execute(v.FAMILY, v.SET_ENCRYPTION_KEY, v.SetEncryptionKey(mine))
        return mine

    async def reader_encryption_key(self, reader: bytes) -> bytes:
        record = await self._proven(v.EncryptionKey, v.encryption_key_key(reader))
        if record is None:
            raise Refused(
                "no_encryption_key",
                f"identity {reader.hex()[:16]} has published no encryption key yet "
                "(it does so on its first vault command)",
            )
        return record.key

    async def members(self) -> list[dict[str, Any]]:
        """The consortium's members as f + 1 nodes agree on them (name, host, api_port...).

        (Not a proof bundle: the members record written at genesis has no stored value
        to prove it by on this version of the node.)
        """
        answer = await self.quorum_get("/v1/members")
        members: list[dict[str, Any]] = answer["members"]
        return members

    async def balance(self, account: bytes | None = None) -> Account:
        """A prepaid account as a node reports it (unproven, like `accounts balance`)."""
        try:
            record = await self.record("accounts", (account or self._me()).hex())
        except Refused as exc:
            if exc.code != "unknown_account":
                raise
            return Account(0, 0)
        return Account(int(record["balance"]), int(record["held"]))

    async def institution_balance(self, institution: str) -> Account:
        found = await self._proven(Account, institution_account_key(institution))
        return found or Account(0, 0)

    async def _institution_urls(self) -> dict[str, str]:
        """Each member's API address: a configured node that says it is that member's, or
        the address the members record gives."""
        if self._urls is None:
            urls = {
                str(m["name"]): f"http://{m['host']}:{m['api_port']}" for m in await self.members()
            }
            answers = await asyncio.gather(
                *(self.status(i) for i in range(len(self.nodes))), return_exceptions=True
            )
            for url, answer in zip(self.nodes, answers, strict=True):
                if isinstance(answer, dict) and answer.get("institution") in urls:
                    urls[str(answer["institution"])] = url
            self._urls = urls
        return self._urls

    async def choose_institutions(
        self, evidence_id: bytes, replicas: int | None
    ) -> tuple[str, ...]:
        """`replicas` members (default f + 1), starting at a place the evidence id picks."""
        names = [str(m["name"]) for m in await self.members()]
        count = max(replicas or 0, weak_quorum_size(len(names)))
        if count > len(names):
            raise ClientError(f"the consortium has only {len(names)} institutions")
        start = evidence_id[0] % len(names)
        return tuple(names[(start + i) % len(names)] for i in range(count))

    # ------------------------------------------------------------ raw transfers

    async def _transfer(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, bytes]:
        try:
            async with self._http().request(method, url, data=body, headers=headers) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise NodeUnavailable(f"{url}: {type(exc).__name__}") from None

    def _upload_header(
        self, evidence_id: bytes, institution: str, index: int, digest: bytes
    ) -> dict[str, str]:
        assert self.key is not None
        request = v.UploadRequest(
            self.genesis.chain_id, evidence_id, institution, index, digest, _now_ms()
        )
        signature = self.key.sign(v.UPLOAD_DOMAIN + encode(request))
        signed = v.SignedUpload(request, self.key.public_key, signature)
        return {"X-Notarychain-Upload": encode(signed).hex(), "Accept": "application/json"}

    def _download_header(
        self, authorization: bytes, evidence_id: bytes, index: int
    ) -> dict[str, str]:
        assert self.key is not None
        request = v.DownloadRequest(
            self.genesis.chain_id, authorization, evidence_id, index, _now_ms()
        )
        signature = self.key.sign(v.DOWNLOAD_DOMAIN + encode(request))
        signed = v.SignedDownload(request, self.key.public_key, signature)
        return {"X-Notarychain-Download": encode(signed).hex(), "Accept": "application/json"}

    # ------------------------------------------------------------ put

    async def store_file(
        self,
        path: Path,
        *,
        replicas: int | None = None,
        institutions: Sequence[str] | None = None,
        title: str | None = None,
        chunk_size: int = v.CHUNK_BYTES_DEFAULT,
        months: int = MONTHS_DEFAULT,
        progress: Progress | None = None,
    ) -> Stored:
        """Register (if needed), encrypt, store for `months` and upload a file.

        Resumes an earlier attempt (whose entry is already paid for: `months` is then
        unused; `renew` pays for more)."""
        _check_months(months)
        loop = asyncio.get_running_loop()
        try:
            digest, size = await loop.run_in_executor(None, sha256_file, path)
        except OSError as exc:
            raise ClientError(f"{path}: {exc.strerror or exc}") from None
        await self._register(path, digest, size, title)
        existing = await self._proven(v.Entry, v.entry_key(digest))
        tx_id = None
        if existing is None:
            tx_id, entry, content_key, manifest = await self._store(
                path,
                Layout(digest, size, chunk_size),
                replicas=replicas,
                institutions=institutions,
                months=months,
            )
        else:
            entry = existing
            content_key, manifest = await self._resume(path, entry)
        uploaded = await self._upload(path, entry, content_key, manifest, progress)
        return Stored(
            digest.hex(),
            tx_id,
            entry.institutions,
            entry.plaintext_size,
            entry.chunk_count,
            entry.storage_fee,
            entry.paid_until_ms,
            uploaded,
        )

    async def _register(self, path: Path, digest: bytes, size: int, title: str | None) -> None:
        record = await self._proven(evidence.Evidence, evidence.evidence_key(digest))
        if record is None:
            name = (title or path.name)[: evidence.TITLE_CHARS_MAX]
            item = evidence.Item(digest, False, kind_of(path), size, name)
            await self.register_evidence([item])
        elif record.owner != self._me():
            raise Refused("not_owner", "this file's evidence was registered by someone else", 403)

    async def _resume(self, path: Path, entry: v.Entry) -> tuple[bytes, bytes]:
        """The content key and manifest of an entry stored earlier (to resume its upload)."""
        if entry.deleted:
            raise Refused("deleted", "the content was erased; erasure is final", 410)
        if entry.owner != self._me():
            raise Refused("not_owner", "this content was stored by another identity", 403)
        content_key = unwrap_key(entry.owner_key, self.encryption_key(), entry.evidence_id)
        layout = Layout(entry.evidence_id, entry.plaintext_size, entry.chunk_size)
        loop = asyncio.get_running_loop()
        manifest = await loop.run_in_executor(None, build_manifest, path, content_key, layout)
        if ciphertext_hash(manifest) != entry.ciphertext_hash:
            raise IntegrityError("the file no longer encrypts to the stored ciphertext hash")
        return content_key, manifest

    async def _store(
        self,
        path: Path,
        layout: Layout,
        *,
        replicas: int | None,
        institutions: Sequence[str] | None,
        months: int,
    ) -> tuple[str, v.Entry, bytes, bytes]:
        """Encrypt once to build the manifest, and commit the entry; (tx, entry, key, manifest)."""
        digest, size = layout.evidence_id, layout.plaintext_size
        mine = await self.ensure_encryption_key()
        chosen = tuple(institutions or await self.choose_institutions(digest, replicas))
        content_key = new_content_key()
        loop = asyncio.get_running_loop()
        manifest = await loop.run_in_executor(None, build_manifest, path, content_key, layout)
        payload = v.Store(
            digest,
            ciphertext_hash(manifest),
            layout.chunk_size,
            layout.chunk_count,
            size,
            wrap_key(content_key, mine, digest),
            chosen,
            months,
        )
        receipt = await self.execute(v.FAMILY, v.STORE, payload)
        return receipt.tx_id, await self.entry(digest, receipt.height), content_key, manifest

    async def _upload(
        self,
        path: Path,
        entry: v.Entry,
        content_key: bytes,
        manifest: bytes,
        progress: Progress | None,
    ) -> int:
        """Every chunk to every storing node; the chunk uploads made (HEAD skips the rest).

        A node that fails is left out for the rest of this call while the others go on,
        so a later call has only that node's copy to finish."""
        urls = await self._institution_urls()
        targets = {name: urls[name] for name in entry.institutions if name in urls}
        failed = {name: "no address known" for name in entry.institutions if name not in urls}
        resuming: dict[str, bool] = {}
        for name, url in targets.items():
            try:
                resuming[name] = not await self._put_manifest(url, name, entry, manifest)
            except ClientError as exc:
                failed[name] = str(exc)
        hashes = [manifest[i : i + 32] for i in range(0, len(manifest), 32)]
        layout = Layout(entry.evidence_id, entry.plaintext_size, entry.chunk_size)
        total = entry.ciphertext_size
        done = 0
        uploads = 0
        slots = asyncio.Semaphore(UPLOADS_IN_FLIGHT)
        in_flight: set[asyncio.Task[None]] = set()

        async def one(index: int, chunk: bytes) -> None:
            nonlocal done, uploads
            names = [name for name in targets if name not in failed]
            try:
                results = await asyncio.gather(
                    *(
                        self._put_chunk(
                            targets[name],
                            name,
                            entry,
                            index=index,
                            digest=hashes[index],
                            chunk=chunk,
                            check_first=resuming[name],
                        )
                        for name in names
                    ),
                    return_exceptions=True,
                )
            finally:
                slots.release()
            for name, result in zip(names, results, strict=True):
                if isinstance(result, Exception):
                    failed.setdefault(name, str(result))
                elif isinstance(result, int):
                    uploads += result
            done += len(chunk)
            if progress is not None:
                progress(done, total)

        loop = asyncio.get_running_loop()
        chunks = encrypted_chunks(path, content_key, layout)
        try:
            while len(failed) < len(entry.institutions):
                await slots.acquire()
                item = await loop.run_in_executor(None, next, chunks, None)
                if item is None:
                    slots.release()
                    break
                task = asyncio.create_task(one(*item))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight)
        finally:
            chunks.close()
        if failed:
            problems = "; ".join(f"{name}: {reason}" for name, reason in sorted(failed.items()))
            raise ClientError(
                f"upload incomplete on {len(failed)} of {len(entry.institutions)} storing "
                f"nodes ({problems}); run the same put again to resume"
            )
        return uploads

    async def _put_manifest(self, url: str, name: str, entry: v.Entry, manifest: bytes) -> bool:
        """Give a node the manifest; True if it is new there (so no chunk can be there yet)."""
        headers = self._upload_header(entry.evidence_id, name, -1, entry.ciphertext_hash)
        path = f"/v1/vault/entries/{entry.evidence_id.hex()}/manifest"
        status, data = await self._transfer("PUT", url + path, headers, manifest)
        if status not in (200, 201):
            raise _refusal(status, _json(data))
        return status == 201

    async def _put_chunk(
        self,
        url: str,
        name: str,
        entry: v.Entry,
        *,
        index: int,
        digest: bytes,
        chunk: bytes,
        check_first: bool,
    ) -> int:
        path = f"/v1/vault/entries/{entry.evidence_id.hex()}/chunks/{index}"
        if check_first:
            status, _ = await self._transfer("HEAD", url + path, {})
            if status == 200:
                return 0
        headers = self._upload_header(entry.evidence_id, name, index, digest)
        status, data = await self._transfer("PUT", url + path, headers, chunk)
        if status not in (200, 201):
            raise _refusal(status, _json(data))
        return 1

    # ------------------------------------------------------------ get

    async def authorize_download(self, evidence_id: bytes) -> tuple[str, int]:
        """A committed download authorization: (its transaction id, its height)."""
        receipt = await self.execute(
            v.FAMILY, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(evidence_id)
        )
        return receipt.tx_id, receipt.height

    async def fetch_file(
        self, evidence_id: bytes, out: Path, progress: Progress | None = None
    ) -> Fetched:
        """Authorize a download, fetch, check and decrypt the content into `out`."""
        authorization, height = await self.authorize_download(evidence_id)
        entry = await self.entry(evidence_id, height)
        content_key = await self._content_key(entry, height)
        manifest, urls = await self._manifest(entry, bytes.fromhex(authorization))
        layout = Layout(evidence_id, entry.plaintext_size, entry.chunk_size)
        part = out.with_name(out.name + ".part")
        with part.open("r+b") if part.exists() else part.open("w+b") as handle:
            decryptor = Decryptor(handle, content_key, layout, manifest)
            used = await self._download(decryptor, urls, bytes.fromhex(authorization), progress)
            try:
                decryptor.finish()
            except IntegrityError:
                part.unlink(missing_ok=True)
                raise
        os.replace(part, out)
        record = await self._proven(
            v.DownloadAuthorization, v.download_key(bytes.fromhex(authorization)), height
        )
        return Fetched(
            evidence_id.hex(),
            out,
            entry.plaintext_size,
            authorization,
            0 if record is None else record.fee_paid,
            tuple(sorted(used)),
        )

    async def _download(
        self,
        decryptor: Decryptor,
        urls: list[str],
        authorization: bytes,
        progress: Progress | None,
    ) -> set[str]:
        """Fetch the chunks a few ahead, decrypt them in order; the nodes that served some."""
        layout = decryptor.layout
        start = decryptor.resume()
        done = start * layout.chunk_size
        used: set[str] = set()
        ahead: dict[int, asyncio.Task[tuple[bytes, str]]] = {}
        scheduled = start
        loop = asyncio.get_running_loop()
        try:
            for index in range(start, layout.chunk_count):
                while scheduled < min(layout.chunk_count, index + DOWNLOADS_IN_FLIGHT):
                    ahead[scheduled] = asyncio.create_task(
                        self._fetch_chunk(urls, decryptor, authorization, scheduled)
                    )
                    scheduled += 1
                chunk, url = await ahead.pop(index)
                used.add(url)
                await loop.run_in_executor(None, decryptor.add, index, chunk)
                done += len(chunk) - v.TAG_BYTES
                if progress is not None:
                    progress(done, layout.plaintext_size)
        finally:
            for task in ahead.values():
                task.cancel()
        return used

    async def _content_key(self, entry: v.Entry, height: int) -> bytes:
        private = self.encryption_key()
        if entry.owner == self._me():
            return unwrap_key(entry.owner_key, private, entry.evidence_id)
        grant = await self._proven(
            v.GrantRecord, v.grant_key(entry.evidence_id, self._me()), height
        )
        if grant is None:
            raise Refused("no_grant", "the owner has not granted you access to this content", 403)
        if grant.reader_encryption_key != public_bytes(private):
            raise IntegrityError(
                "the grant was wrapped for another encryption key of yours; ask for a new grant"
            )
        return unwrap_key(grant.wrapped_key, private, entry.evidence_id)

    async def _storing_urls(self, entry: v.Entry) -> list[str]:
        urls = await self._institution_urls()
        return [urls[name] for name in entry.institutions if name in urls]

    async def _manifest(self, entry: v.Entry, authorization: bytes) -> tuple[bytes, list[str]]:
        """The manifest from the first storing node that has a good one; the nodes to try."""
        urls = await self._storing_urls(entry)

        def problem(data: bytes) -> str | None:
            matches = len(data) == 32 * entry.chunk_count
            if matches and ciphertext_hash(data) == entry.ciphertext_hash:
                return None
            return "the manifest does not match the chain"

        data, _ = await self._download_first_good(
            urls, entry.evidence_id, -1, authorization, problem=problem, what="the manifest"
        )
        return data, urls

    async def _fetch_chunk(
        self, urls: list[str], decryptor: Decryptor, authorization: bytes, index: int
    ) -> tuple[bytes, str]:
        def problem(data: bytes) -> str | None:
            try:
                decryptor.check(index, data)
            except IntegrityError as exc:
                return str(exc)
            return None

        return await self._download_first_good(
            urls,
            decryptor.layout.evidence_id,
            index,
            authorization,
            problem=problem,
            what=f"chunk {index}",
        )

    async def _download_first_good(
        self,
        urls: list[str],
        evidence_id: bytes,
        index: int,
        authorization: bytes,
        *,
        problem: Callable[[bytes], str | None],
        what: str,
    ) -> tuple[bytes, str]:
        """The manifest (index -1) or a chunk from the first of `urls` whose answer has no
        `problem`, with that node's URL. A refusal that concerns the reader (401, 403, 410)
        is raised at once: another node would refuse it too."""
        tail = "manifest" if index < 0 else f"chunks/{index}"
        path = f"/v1/vault/entries/{evidence_id.hex()}/{tail}"
        problems = []
        for url in urls:
            headers = self._download_header(authorization, evidence_id, index)
            try:
                status, data = await self._transfer("GET", url + path, headers)
            except NodeUnavailable as exc:
                problems.append(str(exc))
                continue
            if status != 200:
                refusal = _refusal(status, _json(data))
                if status in (401, 403, 410):
                    raise refusal
                problems.append(f"{url}: {refusal}")
                continue
            wrong = problem(data)
            if wrong is None:
                return data, url
            problems.append(f"{url}: {wrong}")
        raise NodeUnavailable(f"no storing node gave {what}: " + "; ".join(problems))

    # ------------------------------------------------------------ sharing

    async def grant(
        self,
        evidence_id: bytes,
        reader: bytes,
        expires_height: int | None = None,
        expires_ms: int | None = None,
    ) -> str:
        entry = await self.entry(evidence_id)
        content_key = unwrap_key(entry.owner_key, self.encryption_key(), evidence_id)
        wrapped = wrap_key(content_key, await self.reader_encryption_key(reader), evidence_id)
        payload = v.Grant(evidence_id, reader, wrapped, expires_height, expires_ms)
        return (await self.execute(v.FAMILY, v.GRANT, payload)).tx_id

    async def revoke_grant(self, evidence_id: bytes, reader: bytes, reason: str = "") -> str:
        payload = v.RevokeGrant(evidence_id, reader, reason)
        return (await self.execute(v.FAMILY, v.REVOKE_GRANT, payload)).tx_id

    async def request_access(self, evidence_id: bytes, reason: str) -> str:
        await self.ensure_encryption_key()
        receipt = await self.execute(
            v.FAMILY, v.REQUEST_ACCESS, v.RequestAccess(evidence_id, reason)
        )
        return receipt.result.hex()

    async def access_request(self, request_id: bytes) -> v.AccessRequest:
        request = await self._proven(v.AccessRequest, v.request_key(request_id))
        if request is None:
            raise Refused("unknown_request", "no access request with this id", 404)
        return request

    async def answer_request(
        self,
        request_id: bytes,
        grant: bool,
        reason: str = "",
        expires_height: int | None = None,
        expires_ms: int | None = None,
    ) -> str:
        wrapped = None
        if grant:
            request = await self.access_request(request_id)
            entry = await self.entry(request.evidence_id)
            content_key = unwrap_key(entry.owner_key, self.encryption_key(), entry.evidence_id)
            reader_key = await self.reader_encryption_key(request.requester)
            wrapped = wrap_key(content_key, reader_key, entry.evidence_id)
        payload = v.AnswerRequest(request_id, wrapped, reason, expires_height, expires_ms)
        return (await self.execute(v.FAMILY, v.ANSWER_REQUEST, payload)).tx_id

    async def delete(self, evidence_id: bytes, reason: str = "") -> str:
        return (await self.execute(v.FAMILY, v.DELETE, v.Delete(evidence_id, reason))).tx_id

    async def renew(self, evidence_id: bytes, months: int) -> Renewed:
        """Pay for `months` more of storage (from the term's end, or from now if lapsed)."""
        _check_months(months)
        receipt = await self.execute(v.FAMILY, v.RENEW, v.Renew(evidence_id, months))
        renewal = decode(v.Renewal, receipt.result)
        return Renewed(evidence_id.hex(), receipt.tx_id, months, renewal.fee, renewal.paid_until_ms)

    async def vault_entry(self, evidence_id: bytes) -> dict[str, Any]:
        """The entry with its history, pending requests and grants, as a node describes it."""
        data: dict[str, Any] = await self.get(f"/v1/vault/entries/{evidence_id.hex()}")
        return data


class VaultClient(Client):
    """The vault's operations as plain blocking calls (a `Client` with more)."""

    def __init__(self, inner: AsyncVaultClient) -> None:
        super().__init__(inner)
        self.vault = inner

    @classmethod
    def from_config(cls, config: ClientConfig, identity_name: str | None = None) -> VaultClient:
        return cls(AsyncVaultClient.from_config(config, identity_name))

    def store_file(self, path: Path, **options: Any) -> Stored:
        return self._run(self.vault.store_file(path, **options))

    def fetch_file(
        self, evidence_id: bytes, out: Path, progress: Progress | None = None
    ) -> Fetched:
        return self._run(self.vault.fetch_file(evidence_id, out, progress))

    def grant(
        self,
        evidence_id: bytes,
        reader: bytes,
        expires_height: int | None = None,
        expires_ms: int | None = None,
    ) -> str:
        return self._run(self.vault.grant(evidence_id, reader, expires_height, expires_ms))

    def revoke_grant(self, evidence_id: bytes, reader: bytes, reason: str = "") -> str:
        return self._run(self.vault.revoke_grant(evidence_id, reader, reason))

    def request_access(self, evidence_id: bytes, reason: str) -> str:
        return self._run(self.vault.request_access(evidence_id, reason))

    def answer_request(
        self,
        request_id: bytes,
        grant: bool,
        reason: str = "",
        expires_height: int | None = None,
        expires_ms: int | None = None,
    ) -> str:
        return self._run(
            self.vault.answer_request(request_id, grant, reason, expires_height, expires_ms)
        )

    def delete(self, evidence_id: bytes, reason: str = "") -> str:
        return self._run(self.vault.delete(evidence_id, reason))

    def renew(self, evidence_id: bytes, months: int) -> Renewed:
        return self._run(self.vault.renew(evidence_id, months))

    def entry(self, evidence_id: bytes) -> v.Entry:
        return self._run(self.vault.entry(evidence_id))

    def vault_entry(self, evidence_id: bytes) -> dict[str, Any]:
        return self._run(self.vault.vault_entry(evidence_id))

    def ensure_encryption_key(self) -> bytes:
        return self._run(self.vault.ensure_encryption_key())

    def balance(self, account: bytes | None = None) -> Account:
        return self._run(self.vault.balance(account))

    def institution_balance(self, institution: str) -> Account:
        return self._run(self.vault.institution_balance(institution))


def _check_months(months: int) -> None:
    if not v.MONTHS_MIN <= months <= v.MONTHS_MAX:
        raise ClientError(
            f"storage is paid for {v.MONTHS_MIN} to {v.MONTHS_MAX} months at a time, not {months}"
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
