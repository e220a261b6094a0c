"""Evidence family execution: register items (see `ledger.families.evidence`)."""

from __future__ import annotations

from typing import ClassVar

from ledger.encoding import encode
from ledger.families.evidence import (
    FAMILY,
    REGISTER,
    Evidence,
    Register,
    Registered,
    evidence_key,
)
from ledger.families.identity import Role
from node.families.base import Context, Handler, Outcome, ReadsHint, Refused, TableFamily

SIZE_MAX = 2**63 - 1


def register(ctx: Context) -> Outcome:
    payload = ctx.payload(Register)
    if not payload.items:
        raise Refused("bad_payload", "a registration needs at least one item")
    ids: list[bytes] = []
    new: list[bool] = []
    for item in payload.items:
        if not 0 <= item.size <= SIZE_MAX:
            raise Refused("bad_payload", "item size out of range")
        key = evidence_key(item.digest)
        fresh = ctx.get(key) is None
        if fresh:
            record = Evidence(
                item.digest,
                item.private,
                item.kind,
                item.size,
                item.title,
                ctx.sender,
                ctx.height,
                ctx.time_ms,
                ctx.tx_id,
            )
            ctx.put_model(key, record)
        ids.append(item.digest)
        new.append(fresh)
    return Outcome(encode(Registered(tuple(ids), tuple(new))))


def register_reads(ctx: Context) -> tuple[bytes, ...]:
    return tuple(evidence_key(item.digest) for item in ctx.payload(Register).items)


class EvidenceFamily(TableFamily):
    name = FAMILY
    operations: ClassVar[dict[str, Handler]] = {REGISTER: register}
    roles: ClassVar[dict[str, tuple[Role, ...]]] = {
        REGISTER: (Role.APPLICANT, Role.OFFICER, Role.ADMIN)
    }
    hints: ClassVar[dict[str, ReadsHint]] = {REGISTER: register_reads}
