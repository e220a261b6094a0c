"""Identity family execution: enrol and revoke identities (see `ledger.families.identity`)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ledger.families.identity import (
    ENROL,
    FAMILY,
    REVOKE,
    Enrol,
    Identity,
    Revoke,
    Role,
    identity_key,
)
from node.families.base import Context, Handler, Outcome, Refused, TableFamily

LEVEL_MAX = 3


def enrol(ctx: Context) -> Outcome:
    admin = ctx.sender_identity()
    payload = ctx.payload(Enrol)
    if not 0 <= payload.level <= LEVEL_MAX:
        raise Refused("bad_payload", f"verification level must be 0..{LEVEL_MAX}")
    if payload.role is Role.ADMIN:
        raise Refused(
            "wrong_role", "institution administrators are set by the genesis or governance"
        )
    existing = ctx.get_model(Identity, identity_key(payload.key))
    if existing is not None:
        state = "enrolled" if existing.active else "revoked"
        raise Refused("already_enrolled", f"this key is already {state} ({existing.institution})")
    if not payload.name.strip():
        raise Refused("bad_payload", "an identity needs a name")
    identity = Identity(
        payload.key,
        admin.institution,
        payload.role,
        payload.name,
        payload.level,
        ctx.height,
        None,
        None,
    )
    ctx.put_model(identity_key(payload.key), identity)
    return Outcome()


def revoke(ctx: Context) -> Outcome:
    admin = ctx.sender_identity()
    payload = ctx.payload(Revoke)
    identity = ctx.get_model(Identity, identity_key(payload.key))
    if identity is None:
        raise Refused("unknown_identity", "no identity is enrolled with this key")
    if identity.institution != admin.institution:
        raise Refused("wrong_institution", f"the identity belongs to {identity.institution}")
    if not identity.active:
        raise Refused("already_revoked", f"revoked at height {identity.revoked_height}")
    if identity.role is Role.ADMIN:
        raise Refused("wrong_role", "institution administrators change only by governance")
    if not payload.reason.strip():
        raise Refused("bad_payload", "a revocation needs a reason")
    revoked = dataclasses.replace(
        identity, revoked_height=ctx.height, revoked_reason=payload.reason
    )
    ctx.put_model(identity_key(payload.key), revoked)
    return Outcome()


class IdentityFamily(TableFamily):
    name = FAMILY
    operations: ClassVar[dict[str, Handler]] = {ENROL: enrol, REVOKE: revoke}
    roles: ClassVar[dict[str, tuple[Role, ...]]] = {ENROL: (Role.ADMIN,), REVOKE: (Role.ADMIN,)}
