"""The execution contract of a transaction family.

Rule: `apply` is deterministic. It may read and write the state only through
its `Context`, must not read clocks, randomness, files or the network, and
refuses an operation by raising `Refused` with a stable code and a reason;
the executor then discards every write that transaction made, records the
refusal as the transaction's result, and moves on (the block stays valid).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

from ledger.encoding import decode, encode
from ledger.errors import DecodeError
from ledger.families.identity import Identity, Role, identity_key
from ledger.tx import Transaction

T = TypeVar("T")

IDENTITIES_DECODED_MAX = 10_000


@functools.lru_cache(maxsize=IDENTITIES_DECODED_MAX)
def _decode_identity(data: bytes) -> Identity:
    """Senders repeat from one transaction to the next; an identity record (immutable bytes,
    a frozen model) is decoded once."""
    return decode(Identity, data)


class Refused(Exception):
    """The operation is not allowed; `code` is stable, `reason` is for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class Context:
    """One transaction's view of the state: reads see earlier writes of the block."""

    __slots__ = ("_identity", "_payload", "_read", "height", "time_ms", "tx", "tx_id", "writes")

    def __init__(
        self,
        read: Callable[[bytes], bytes | None],
        tx: Transaction,
        tx_id: bytes,
        height: int,
        time_ms: int,
    ) -> None:
        self._read = read
        self.tx = tx
        self.tx_id = tx_id
        self.height = height
        self.time_ms = time_ms
        self.writes: dict[bytes, bytes] = {}
        self._identity: Identity | None = None
        self._payload: object = None

    @property
    def sender(self) -> bytes:
        return self.tx.body.sender

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._read(key)

    def get_model(self, cls: type[T], key: bytes) -> T | None:
        data = self.get(key)
        return None if data is None else decode(cls, data)

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def put_model(self, key: bytes, value: object) -> None:
        self.put(key, encode(value))

    def payload(self, cls: type[T]) -> T:
        """The operation's payload as a `cls` (decoded once: `reads` and `apply` both ask)."""
        if type(self._payload) is cls:
            return self._payload
        try:
            payload = decode(cls, self.tx.body.payload)
        except DecodeError as exc:
            raise Refused("bad_payload", exc.reason) from None
        self._payload = payload
        return payload

    def sender_identity(self) -> Identity:
        if self._identity is not None:
            return self._identity
        data = self.get(identity_key(self.sender))
        identity = None if data is None else _decode_identity(data)
        if identity is None or not identity.active:
            raise Refused("not_enrolled", "the sender is not an enrolled identity")
        self._identity = identity
        return identity

    def require_role(self, *roles: Role) -> Identity:
        identity = self.sender_identity()
        if identity.role not in roles:
            names = " or ".join(r.name.lower() for r in roles)
            raise Refused(
                "wrong_role", f"only a {names} may do this, not a {identity.role.name.lower()}"
            )
        return identity


@dataclass(frozen=True, slots=True)
class Outcome:
    result: bytes = b""


class Family(Protocol):
    name: str

    def roles_for(self, operation: str) -> tuple[Role, ...] | None: ...

    def apply(self, ctx: Context, operation: str) -> Outcome: ...

    def reads(self, ctx: Context, operation: str) -> tuple[bytes, ...]: ...


def unknown_operation(family: str, operation: str) -> Refused:
    return Refused("unknown_operation", f"family {family!r} has no operation {operation!r}")


Handler = Callable[[Context], Outcome]
ReadsHint = Callable[[Context], tuple[bytes, ...]]


class TableFamily:
    """A family whose operations are a table: an unknown one is one lookup failing.

    `roles` says who may perform each operation; the check runs at admission
    (to refuse early) and again at execution (where it is authoritative).
    """

    name = ""
    operations: ClassVar[dict[str, Handler]] = {}
    roles: ClassVar[dict[str, tuple[Role, ...]]] = {}
    hints: ClassVar[dict[str, ReadsHint]] = {}
    """Per operation, the state keys it will read, where that is cheap to tell."""

    def handlers(self) -> dict[str, Handler]:
        return self.operations

    def roles_for(self, operation: str) -> tuple[Role, ...] | None:
        """Who may perform `operation`; None if there is no such operation."""
        return self.roles.get(operation) if operation in self.handlers() else None

    def apply(self, ctx: Context, operation: str) -> Outcome:
        handler = self.handlers().get(operation)
        if handler is None:
            raise unknown_operation(self.name, operation)
        ctx.require_role(*self.roles[operation])
        outcome: Outcome = handler(ctx)
        return outcome

    def reads(self, ctx: Context, operation: str) -> tuple[bytes, ...]:
        """Keys `apply` will read: a hint, so the executor reads a block's keys in one query.

        A hint runs before any transaction of the block, so it may look at the
        transaction (`ctx.tx`, `ctx.payload`) but never at the state. A wrong or
        missing hint costs only speed: `apply` reads what it reads.
        """
        hint = self.hints.get(operation)
        if hint is None:
            return ()
        try:
            return hint(ctx)
        except Exception:  # only advice: `apply` refuses or fails on its own
            return ()
        finally:
            ctx._identity = None  # nothing read before the block's earlier transactions ran
