"""`Client`: the SDK for code that is not asyncio. Each call runs on a private event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from client.config import ClientConfig
from client.sdk import AsyncClient, Receipt
from ledger.families import evidence, governance, identity, notarization
from ledger.genesis import Genesis
from ledger.keys import PrivateKey
from ledger.proofs import ProofBundle, Verified
from ledger.tx import Transaction

T = TypeVar("T")


class Client:
    """The same operations as `AsyncClient`, as plain blocking calls."""

    def __init__(self, inner: AsyncClient) -> None:
        self._inner = inner
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    @classmethod
    def connect(
        cls, nodes: Sequence[str], genesis: Genesis, key: PrivateKey | None = None
    ) -> Client:
        return cls(AsyncClient(nodes, genesis, key))

    @classmethod
    def from_config(cls, config: ClientConfig, identity_name: str | None = None) -> Client:
        return cls(AsyncClient.from_config(config, identity_name))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()

    def close(self) -> None:
        self._run(self._inner.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def genesis(self) -> Genesis:
        return self._inner.genesis

    @property
    def key(self) -> PrivateKey | None:
        return self._inner.key

    def build(self, family: str, operation: str, payload: object) -> Transaction:
        return self._inner.build(family, operation, payload)

    @property
    def seen_height(self) -> int:
        """The highest block this client has seen committed (see `AsyncClient.observe`)."""
        return self._inner.seen_height

    def observe(self, height: int) -> None:
        self._inner.observe(height)

    def submit(self, tx: Transaction) -> str:
        return self._run(self._inner.submit(tx))

    def wait(self, tx_id: str, timeout_s: float | None = None) -> Receipt:
        return self._run(self._inner.wait(tx_id, timeout_s))

    def status(self, node: int | None = None) -> dict[str, Any]:
        return self._run(self._inner.status(node))

    def register_evidence(self, items: Sequence[evidence.Item]) -> evidence.Registered:
        return self._run(self._inner.register_evidence(items))

    def apply(
        self, evidence_ids: Sequence[bytes], purpose: notarization.Purpose, description: str
    ) -> str:
        return self._run(self._inner.apply(evidence_ids, purpose, description))

    def issue(self, application_id: str) -> str:
        return self._run(self._inner.issue(application_id))

    def reject(self, application_id: str, reason: str) -> None:
        self._run(self._inner.reject(application_id, reason))

    def withdraw(self, application_id: str, reason: str = "") -> None:
        self._run(self._inner.withdraw(application_id, reason))

    def revoke_certificate(self, certificate_id: str, reason: str) -> None:
        self._run(self._inner.revoke_certificate(certificate_id, reason))

    def enrol(self, key: bytes, role: identity.Role, name: str, level: int) -> None:
        self._run(self._inner.enrol(key, role, name, level))

    def credit(self, account: bytes, amount: int, memo: str = "") -> None:
        self._run(self._inner.credit(account, amount, memo))

    def propose(self, change: governance.Change, effective_height: int, description: str) -> str:
        return self._run(self._inner.propose(change, effective_height, description))

    def approve(self, proposal_id: str) -> None:
        self._run(self._inner.approve(proposal_id))

    def record(self, kind: str, record_id: str) -> dict[str, Any]:
        return self._run(self._inner.record(kind, record_id))

    def proof(self, kind: str, record_id: str) -> tuple[ProofBundle, Verified]:
        return self._run(self._inner.proof(kind, record_id))

    def certificate_document(self, certificate_id: str) -> dict[str, Any]:
        return self._run(self._inner.certificate_document(certificate_id))
