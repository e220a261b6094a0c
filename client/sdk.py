"""The SDK: build, sign, submit and follow transactions; read answers with their proofs.

`AsyncClient` is the asyncio client; `Client` (in `client.sync`) wraps it for
plain code. Rules:
- A transaction is built and signed once; if a node is down or slow the same
  signed bytes (same id) go to the next node, so one intent is never two
  transactions, and nodes answer a known id with its existing status.
- Reads come either with a proof bundle checked against the genesis (the
  trust anchor; no node is trusted) or, when asked, as f + 1 matching answers
  from different nodes.
- Every failure is a `client.errors.ClientError` subclass with the node's
  code and message where there is one.
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

from client.config import ClientConfig
from client.errors import (
    ClientError,
    ConfigError,
    NodeUnavailable,
    NotAuthorized,
    ProofInvalid,
    Refused,
    Rejected,
    Timeout,
)
from ledger.encoding import decode, encode, pack, unpack_document
from ledger.errors import LedgerError
from ledger.families import evidence, fees, governance, identity, notarization
from ledger.genesis import Genesis
from ledger.keyfile import load_private_key
from ledger.keys import PrivateKey
from ledger.proofs import ProofBundle, Verified, verify_bundle
from ledger.quorum import weak_quorum_size
from ledger.tx import BATCH_TRANSACTIONS_MAX, Transaction, TransactionBody, sign_transaction

T = TypeVar("T")

MSGPACK: Final = "application/msgpack"
EXPIRY_MS: Final = 60_000
RETRYABLE: Final = frozenset({429, 500, 502, 503, 504})
AUTH_CODES: Final = frozenset({"not_enrolled", "revoked", "wrong_role", "wrong_institution"})


@dataclass(frozen=True, slots=True)
class Receipt:
    """A committed transaction: where it is and what its family returned."""

    tx_id: str
    height: int
    index: int
    log_index: int
    result: bytes


class AsyncClient:
    def __init__(
        self,
        nodes: Sequence[str],
        genesis: Genesis,
        key: PrivateKey | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        if not nodes:
            raise ClientError("no nodes to talk to")
        self.nodes = [n.rstrip("/") for n in nodes]
        self.genesis = genesis
        self.key = key
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._preferred = 0
        self.seen_height = 0
        """The highest block this client saw its transactions committed in: reads ask
        nodes for at least this height (`min_height`), so a lagging node never answers
        with a state older than the client's own writes."""

    @classmethod
    def from_config(
        cls, config: ClientConfig, identity: str | None = None, passphrase: bytes | None = None
    ) -> AsyncClient:
        key = None
        if identity is not None or config.identity is not None:
            key = load_key(config.key_path(identity), passphrase)
        return cls(config.nodes, config.genesis(), key, config.timeout_s)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.timeout_s, connect=min(5.0, self.timeout_s))
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    # ------------------------------------------------------------ HTTP with failover

    async def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        node: int | None = None,
        raw: bool = False,
        any_height: bool = False,
    ) -> tuple[int, Any]:
        """One request, failing over to the next node on connection errors and 5xx.

        It asks for at least the height this client has seen (`min_height`) unless
        `any_height`: a node that has not executed it answers 503 and the next is tried.
        """
        if not any_height:
            path = self._at_least_seen(path)
        order = [node] if node is not None else self._order()
        last_error = "no node tried"
        for index in order:
            url = self.nodes[index] + path
            try:
                async with self._http().request(
                    method,
                    url,
                    data=body,
                    headers={"Accept": MSGPACK, "Content-Type": MSGPACK},
                ) as response:
                    data = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last_error = f"{self.nodes[index]}: {type(exc).__name__}"
                continue
            if status in RETRYABLE and node is None:
                last_error = f"{self.nodes[index]}: HTTP {status}"
                continue
            self._preferred = index
            if raw and status == 200:
                return status, data
            return status, _decode_body(data)
        raise NodeUnavailable(f"no node answered ({last_error})")

    def _order(self) -> list[int]:
        count = len(self.nodes)
        return [(self._preferred + i) % count for i in range(count)]

    def observe(self, height: int) -> None:
        """Count block `height` as seen: from now on, reads and submissions go only to
        nodes that have executed it. For a fact learned elsewhere, such as another
        party's receipt: acting on it at a node that lags would find it missing."""
        self.seen_height = max(self.seen_height, height)

    def _at_least_seen(self, path: str) -> str:
        if not self.seen_height:
            return path
        return f"{path}{'&' if '?' in path else '?'}min_height={self.seen_height}"

    async def get(self, path: str, node: int | None = None) -> Any:
        status, data = await self._call("GET", path, node=node)
        if status != 200:
            raise _refusal(status, data)
        return data

    # ------------------------------------------------------------ transactions

    def build(self, family: str, operation: str, payload: object) -> Transaction:
        if self.key is None:
            raise ClientError("this client has no identity key to sign with")
        body = TransactionBody(
            chain_id=self.genesis.chain_id,
            sender=self.key.public_key,
            family=family,
            operation=operation,
            payload=encode(payload),
            nonce=os.urandom(16),
            expires_at_ms=int(time.time() * 1000) + EXPIRY_MS,
        )
        return sign_transaction(body, self.key)

    async def submit(self, tx: Transaction) -> str:
        """Send a signed transaction; returns its id (hex). Safe to repeat."""
        status, data = await self._call("POST", "/v1/transactions", encode(tx))
        if status not in (200, 202):
            raise _refusal(status, data)
        return str(data["tx_id"].hex() if isinstance(data["tx_id"], bytes) else data["tx_id"])

    async def submit_many(self, txs: Sequence[Transaction]) -> list[str | Refused]:
        """Send signed transactions in batches (one request per `BATCH_TRANSACTIONS_MAX`).

        Each is admitted or refused on its own: the answer holds, in order, its id
        (hex) or its refusal (not raised; a node's 429 or 503 is one too, to retry
        later or elsewhere). A request no node answers raises `NodeUnavailable`, one
        refused as a whole `Refused`; the transactions of earlier requests may have
        been admitted by then, and submitting all again is safe.
        """
        outcomes: list[str | Refused] = []
        for start in range(0, len(txs), BATCH_TRANSACTIONS_MAX):
            chunk = txs[start : start + BATCH_TRANSACTIONS_MAX]
            body = pack([tx.encode() for tx in chunk])
            status, data = await self._call("POST", "/v1/transactions/batch", body)
            results = data.get("results") if isinstance(data, dict) else None
            if status != 200 or not isinstance(results, list) or len(results) != len(chunk):
                raise _refusal(status, data)
            for result in results:
                if "error" in result:
                    outcomes.append(_refusal(int(result["status"]), result))
                else:
                    outcomes.append(result["tx_id"].hex())
        return outcomes

    async def wait(self, tx_id: str, timeout_s: float | None = None) -> Receipt:
        """Wait until the transaction is committed; `Rejected` if its family refused it."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"transaction {tx_id[:16]} not committed in time (it may still be)")
            wait_s = max(1, min(int(remaining), 25))
            try:
                # Any height: a node waits here for the commit rather than refusing.
                status, data = await self._call(
                    "GET", f"/v1/transactions/{tx_id}?wait={wait_s}", any_height=True
                )
            except NodeUnavailable:
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                continue
            if status == 404:
                await asyncio.sleep(0.2)
                continue
            if status != 200:
                raise _refusal(status, data)
            state = data["state"]
            if state in ("committed", "rejected"):
                self.seen_height = max(self.seen_height, data["height"])
            if state == "committed":
                return Receipt(
                    tx_id, data["height"], data["index"], data["log_index"], data.get("result", b"")
                )
            if state == "rejected":
                raise Rejected(tx_id, data["code"], data["reason"], data["height"])

    async def execute(self, family: str, operation: str, payload: object) -> Receipt:
        """Build, sign, submit (with failover) and wait for the commit."""
        tx = self.build(family, operation, payload)
        tx_id = await self.submit(tx)
        try:
            return await self.wait(tx_id)
        except (Timeout, NodeUnavailable):
            # The node we used may have died before relaying it, or be cut off from the
            # primary: as a PBFT client does, give the request to every node.
            await self.submit_everywhere(tx)
            return await self.wait(tx_id)

    async def submit_everywhere(self, tx: Transaction) -> None:
        """Give a signed transaction to every node at once; fine if one of them takes it."""
        body = encode(tx)

        async def one(index: int) -> ClientError | None:
            try:
                status, data = await self._call("POST", "/v1/transactions", body, node=index)
            except NodeUnavailable as exc:
                return exc
            if status in (200, 202):
                return None
            if status in RETRYABLE:
                return NodeUnavailable(f"{self.nodes[index]}: HTTP {status}")
            return _refusal(status, data)

        preferred = self._preferred
        problems = await asyncio.gather(*(one(i) for i in range(len(self.nodes))))
        self._preferred = preferred
        if all(problems):
            # A node's reason (the transaction expired, its sender is unknown...) says more
            # than another node's silence or load.
            refusals = [p for p in problems if isinstance(p, Refused)]
            if refusals:
                raise refusals[0]
            raise NodeUnavailable("no node took it: " + "; ".join(str(p) for p in problems))

    # ------------------------------------------------------------ families

    async def register_evidence(self, items: Sequence[evidence.Item]) -> evidence.Registered:
        receipt = await self.execute(
            evidence.FAMILY, evidence.REGISTER, evidence.Register(tuple(items))
        )
        return decode(evidence.Registered, receipt.result)

    async def apply(
        self, evidence_ids: Sequence[bytes], purpose: notarization.Purpose, description: str
    ) -> str:
        payload = notarization.Apply(tuple(evidence_ids), purpose, description)
        receipt = await self.execute(notarization.FAMILY, notarization.APPLY, payload)
        return receipt.result.hex()

    async def issue(self, application_id: str) -> str:
        payload = notarization.Decide(bytes.fromhex(application_id), "")
        receipt = await self.execute(notarization.FAMILY, notarization.ISSUE, payload)
        return receipt.result.hex()

    async def reject(self, application_id: str, reason: str) -> None:
        payload = notarization.Decide(bytes.fromhex(application_id), reason)
        await self.execute(notarization.FAMILY, notarization.REJECT, payload)

    async def withdraw(self, application_id: str, reason: str = "") -> None:
        payload = notarization.Decide(bytes.fromhex(application_id), reason)
        await self.execute(notarization.FAMILY, notarization.WITHDRAW, payload)

    async def revoke_certificate(self, certificate_id: str, reason: str) -> None:
        payload = notarization.RevokeCertificate(bytes.fromhex(certificate_id), reason)
        await self.execute(notarization.FAMILY, notarization.REVOKE, payload)

    async def enrol(self, key: bytes, role: identity.Role, name: str, level: int) -> None:
        await self.execute(identity.FAMILY, identity.ENROL, identity.Enrol(key, role, name, level))

    async def revoke_identity(self, key: bytes, reason: str) -> None:
        await self.execute(identity.FAMILY, identity.REVOKE, identity.Revoke(key, reason))

    async def credit(self, account: bytes, amount: int, memo: str = "") -> None:
        await self.execute(fees.FAMILY, fees.CREDIT, fees.Credit(account, amount, memo))

    async def propose(
        self, change: governance.Change, effective_height: int, description: str
    ) -> str:
        payload = governance.Propose(change, effective_height, description)
        receipt = await self.execute(governance.FAMILY, governance.PROPOSE, payload)
        return receipt.result.hex()

    async def approve(self, proposal_id: str) -> None:
        payload = governance.Approve(bytes.fromhex(proposal_id))
        await self.execute(governance.FAMILY, governance.APPROVE, payload)

    # ------------------------------------------------------------ reads

    async def status(self, node: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = await self.get("/v1/status", node)
        return data

    async def record(self, kind: str, record_id: str) -> dict[str, Any]:
        """A record as the node describes it (unproven): evidence, applications, certificates..."""
        data: dict[str, Any] = await self.get(f"/v1/{kind}/{record_id}")
        return data

    async def _provable(self, path: str, raw: bool) -> Any:
        """GET something built on a checkpoint; waits while the newest one is still forming."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            status, data = await self._call("GET", path, raw=raw)
            if status == 200:
                return data
            refusal = _refusal(status, data)
            if refusal.code != "not_yet_provable" or time.monotonic() > deadline:
                raise refusal
            await asyncio.sleep(0.2)

    async def proof(self, kind: str, record_id: str) -> tuple[ProofBundle, Verified]:
        """A record's proof bundle from any node, verified against the genesis.

        `kind` is one of `PROOF_KINDS`. The bundle must answer the question asked: it
        covers the record's state key (its value or its absence) and, for a transaction,
        includes that transaction; else `ProofInvalid`, however valid its signatures.
        """
        key, tx_id = proof_subject(kind, record_id)
        data = await self._provable(f"/v1/proofs/{kind}/{record_id}", raw=True)
        try:
            bundle = decode(ProofBundle, data)
            verified = verify_bundle(bundle, self.genesis)
        except LedgerError as exc:
            raise ProofInvalid(f"the node's proof does not verify: {exc}") from None
        if key is not None and key not in verified.state:
            raise ProofInvalid(f"the node's proof is not about {kind} {record_id}")
        if tx_id is not None and all(tx.id != tx_id for tx, _ in verified.transactions):
            raise ProofInvalid(f"the node's proof does not include transaction {record_id}")
        return bundle, verified

    async def proven_record(self, kind: str, key: bytes, record_id: str, cls: type[T]) -> T | None:
        """The record under `key`, proven (None: proven absent). The bundle must cover `key`."""
        _, verified = await self.proof(kind, record_id)
        if key not in verified.state:
            raise ProofInvalid(f"the node's proof of {kind} {record_id} does not cover this key")
        value = verified.state[key]
        if value is None:
            return None
        try:
            return decode(cls, value)
        except LedgerError as exc:
            raise ProofInvalid(f"the proven {kind} record does not decode: {exc}") from None

    async def quorum_get(self, path: str) -> Any:
        """An answer that f + 1 nodes gave identically (at least one of them is honest)."""
        needed = weak_quorum_size(len(self.genesis.institutions))
        answers: dict[bytes, int] = {}
        results = await asyncio.gather(
            *(self._call("GET", path, node=i) for i in range(len(self.nodes))),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                continue
            status, data = result
            if status == 200:
                canonical = pack(data)
                answers[canonical] = answers.get(canonical, 0) + 1
                if answers[canonical] >= needed:
                    return data
        raise ProofInvalid(f"fewer than {needed} nodes gave the same answer to {path}")

    async def certificate_document(self, certificate_id: str) -> dict[str, Any]:
        data = await self._provable(f"/v1/certificates/{certificate_id}/document", raw=False)
        if not isinstance(data, dict):
            raise ProofInvalid("the node's certificate document is not a JSON object")
        if str(data.get("certificate_id")).lower() != certificate_id.lower():
            raise ProofInvalid(f"the node's document is not about certificate {certificate_id}")
        return data


PROOF_KINDS: Final[dict[str, Callable[[bytes], bytes] | None]] = {
    "evidence": evidence.evidence_key,
    "applications": notarization.application_key,
    "certificates": notarization.certificate_key,
    "state": lambda key: key,
    "transactions": None,
}
"""What `AsyncClient.proof` can ask for: the state key of a record id (None: a transaction)."""


def proof_subject(kind: str, record_id: str) -> tuple[bytes | None, bytes | None]:
    """(state key, transaction id) a proof of `kind` `record_id` must cover."""
    if kind not in PROOF_KINDS:
        raise ClientError(f"no proofs of {kind!r}; one of {', '.join(PROOF_KINDS)}")
    try:
        raw = bytes.fromhex(record_id)
    except ValueError:
        raise ClientError(f"{kind} id {record_id[:80]!r} is not hex") from None
    key_of = PROOF_KINDS[kind]
    return (None, raw) if key_of is None else (key_of(raw), None)


def load_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    try:
        return load_private_key(path, passphrase or _env_passphrase())
    except LedgerError as exc:
        raise ConfigError(str(exc)) from None


def _env_passphrase() -> bytes | None:
    value = os.environ.get("NOTARYCHAIN_KEY_PASSPHRASE")
    return value.encode() if value else None


def _decode_body(data: bytes) -> Any:
    if not data:
        return None
    if data[:1] in (b"{", b"["):
        try:
            return json.loads(data)
        except ValueError:
            return None
    try:
        return unpack_document(data)
    except LedgerError:
        return data


def _refusal(status: int, data: Any) -> Refused:
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return Refused("http_error", f"HTTP {status}", status)
    code, message = str(error.get("code")), str(error.get("message"))
    if code in AUTH_CODES:
        return NotAuthorized(code, message, status)
    return Refused(code, message, status)
