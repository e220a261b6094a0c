"""Admission: what a node accepts from clients into its mempool, and why it refuses.

Rule: every check that can fail on bad input runs before anything changes,
and each failure is an `Refusal` with a stable code, an HTTP status and a
reason. In order: size, decoding, chain id, expiry window, duplicate (answered
with the existing status, never ordered twice), signature, the sender's
enrolment and role for the operation, then capacity (429 when this node's
queue is busy, 503 when its mempool is full).

Signatures checked here are remembered (`VerifiedSignatures`) so that the replica,
which checks every transaction in every batch, does not verify them twice.

The checks against state run in groups (`StateChecks`): requests that arrive
while one group is being checked wait for the next, which reads the database
once for all of them on a reader thread, so a burst of clients costs one
thread hop and one read transaction rather than two of each per request.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Final, Protocol

from ledger.encoding import decode
from ledger.errors import DecodeError
from ledger.families.identity import Identity, identity_key
from ledger.keys import verify
from ledger.tx import TX_BYTES_MAX, Transaction
from node.families.base import Context, Family, Refused

VERIFIED_SIGNATURES_MAX: Final = 50_000
"""A transaction is seen again within seconds of its first check (forwarded to the
primary, then in its proposal): 50,000 cover 50 s at 1,000 tx/s, and an older one is
simply checked again. Each entry costs about 160 bytes (32.5 MB for the 200,000 this
once was, which took a node over 300 MB in a million-transaction run)."""


class AdmissionRefusal(Exception):
    """A transaction this node will not admit: HTTP status, stable code, reason."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.status = status
        self.code = code
        self.reason = reason


class VerifiedSignatures:
    """Transactions whose signature this node has checked (bounded, oldest forgotten).

    They are remembered by id and signature together: the id covers the body
    only, so a copy of a checked body under another signature (from a client,
    or in a faulty primary's batch) is checked again rather than taken as good.
    """

    def __init__(self, capacity: int = VERIFIED_SIGNATURES_MAX) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def check(self, tx: Transaction) -> bool:
        """Whether the transaction's signature verifies for its sender (checked once)."""
        key = sha256(tx.id + tx.signature).digest()
        if key in self._seen:
            return True
        if not verify(tx.body.sender, tx.signature, tx.body.signing_bytes()):
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


def make_request_validator(
    chain_id: str, verified: VerifiedSignatures
) -> Callable[[Transaction], str | None]:
    """The replica's check of a client transaction it did not admit itself."""

    def validate(tx: Transaction) -> str | None:
        if tx.body.chain_id != chain_id:
            return "transaction for another chain"
        if not verified.check(tx):
            return "bad client signature"
        return None

    return validate


@dataclass(frozen=True, slots=True)
class Admitted:
    tx: Transaction
    tx_id: bytes


class Admission:
    def __init__(
        self,
        chain_id: str,
        lifetime_max_ms: int,
        families: Mapping[str, Family],
        verified: VerifiedSignatures,
    ) -> None:
        self.chain_id = chain_id
        self.lifetime_max_ms = lifetime_max_ms
        self.families = families
        self.verified = verified

    def decode(self, data: bytes) -> Admitted:
        """The checks that need no state: size, encoding, chain, expiry, signature, family."""
        if len(data) > TX_BYTES_MAX:
            raise AdmissionRefusal(
                413, "too_large", f"a transaction is at most {TX_BYTES_MAX} bytes"
            )
        try:
            tx = decode(Transaction, data, input_bytes_max=TX_BYTES_MAX)
        except DecodeError as exc:
            raise AdmissionRefusal(400, "bad_encoding", exc.reason) from None
        body = tx.body
        if body.chain_id != self.chain_id:
            raise AdmissionRefusal(400, "wrong_chain", f"this node runs chain {self.chain_id!r}")
        now_ms = int(time.time() * 1000)
        if body.expires_at_ms < now_ms:
            raise AdmissionRefusal(400, "expired", "the transaction's expiry has passed")
        if body.expires_at_ms > now_ms + self.lifetime_max_ms:
            raise AdmissionRefusal(
                400, "expiry_too_far", f"expiry may be at most {self.lifetime_max_ms} ms ahead"
            )
        family = self.families.get(body.family)
        roles = None if family is None else family.roles_for(body.operation)
        if roles is None:
            raise AdmissionRefusal(
                400, "unknown_operation", f"no operation {body.family}.{body.operation}"
            )
        return Admitted(tx, tx.id)

    def check_signature(self, admitted: Admitted) -> None:
        if not self.verified.check(admitted.tx):
            raise AdmissionRefusal(400, "bad_signature", "the signature does not verify")

    def check_sender(self, admitted: Admitted, read_state: Callable[[bytes], bytes | None]) -> None:
        """Enrolled, not revoked, and in a role allowed this operation (state as of now)."""
        body = admitted.tx.body
        data = read_state(identity_key(body.sender))
        identity = None if data is None else decode(Identity, data)
        if identity is None:
            raise AdmissionRefusal(403, "not_enrolled", "the sender is not an enrolled identity")
        if not identity.active:
            raise AdmissionRefusal(
                403, "revoked", f"the sender's identity was revoked: {identity.revoked_reason}"
            )
        family = self.families[body.family]
        roles = family.roles_for(body.operation) or ()
        if identity.role not in roles:
            allowed = " or ".join(r.name.lower() for r in roles)
            raise AdmissionRefusal(
                403, "wrong_role", f"{body.family}.{body.operation} needs a {allowed}"
            )


REFUSAL_STATUS: Final[dict[str, int]] = {
    "not_enrolled": 403,
    "revoked": 403,
    "wrong_role": 403,
    "wrong_institution": 403,
    "not_applicant": 403,
    "insufficient_balance": 402,
    "wrong_state": 409,
    "already_enrolled": 409,
    "already_revoked": 409,
    "already_approved": 409,
    "too_late": 409,
    "too_soon": 409,
}


def refusal_status(code: str) -> int:
    if code.startswith("unknown_"):
        return 404
    return REFUSAL_STATUS.get(code, 400)


def dry_run(
    admitted: Admitted,
    family: Family,
    read_state: Callable[[bytes], bytes | None],
    next_height: int,
) -> None:
    """Run the operation on the latest state and refuse now what execution would refuse.

    Execution stays authoritative (the state may change before the block), but
    a forbidden step is answered at once, with its reason, and changes nothing.
    """
    tx = admitted.tx
    ctx = Context(read_state, tx, admitted.tx_id, next_height, int(time.time() * 1000))
    try:
        family.apply(ctx, tx.body.operation)
    except Refused as refused:
        raise AdmissionRefusal(refusal_status(refused.code), refused.code, refused.reason) from None


class StateReader(Protocol):
    def state(self, key: bytes) -> bytes | None: ...

    def transaction(self, tx_id: bytes) -> Any: ...

    def snapshot(self) -> Any: ...


Known = Any
"""What `StateChecks.check` answers for a transaction already executed: its entry."""


class StateChecks:
    """The state-dependent admission checks, run in groups on a reader thread.

    `check` answers None when the transaction may be admitted, the stored
    entry when it was executed before, and raises `AdmissionRefusal` otherwise.
    """

    def __init__(
        self,
        admission: Admission,
        run_read: Callable[[Callable[[Any], list[Any]]], Awaitable[list[Any]]],
        next_height: Callable[[], int],
    ) -> None:
        self.admission = admission
        self.run_read = run_read
        self.next_height = next_height
        self._waiting: list[tuple[Admitted, asyncio.Future[Known | None]]] = []
        self._draining = False

    async def check(self, admitted: Admitted) -> Known | None:
        future: asyncio.Future[Known | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((admitted, future))
        if not self._draining:
            self._draining = True
            asyncio.create_task(self._drain())  # noqa: RUF006  (it ends when the queue is empty)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                read = functools.partial(
                    self._check_all,
                    group=[admitted for admitted, _ in group],
                    height=self.next_height(),
                )
                try:
                    results = await self.run_read(read)
                except Exception as exc:  # a database failure: every waiter hears of it
                    results = [exc] * len(group)
                for (_, future), result in zip(group, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._draining = False

    def _check_all(self, reader: StateReader, group: list[Admitted], height: int) -> list[Any]:
        results: list[Any] = []
        with reader.snapshot():
            for admitted in group:
                try:
                    entry = reader.transaction(admitted.tx_id)
                    if entry is None:
                        self.admission.check_sender(admitted, reader.state)
                        family = self.admission.families[admitted.tx.body.family]
                        dry_run(admitted, family, reader.state, height)
                    results.append(entry)
                except AdmissionRefusal as refusal:
                    results.append(refusal)
        return results
