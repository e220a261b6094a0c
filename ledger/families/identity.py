"""Identity family: who may send transactions, and in which role.

An institution's administrator (its key is in the genesis) enrols identities
for its institution and revokes them; revocation is appended, never deleted.
Only an enrolled, unrevoked identity's transactions are admitted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Final

from ledger.encoding import MaxLength
from ledger.keys import PublicKeyBytes

FAMILY: Final = "identity"
ENROL: Final = "enrol"
REVOKE: Final = "revoke"

NAME_CHARS_MAX: Final = 120
REASON_CHARS_MAX: Final = 500


class Role(enum.IntEnum):
    ADMIN = 1
    """An institution's administrator: enrols identities, votes in governance."""
    APPLICANT = 2
    OFFICER = 3
    """A notary officer: decides applications, revokes certificates."""
    AUDITOR = 4


@dataclass(frozen=True, slots=True)
class Enrol:
    key: PublicKeyBytes
    role: Role
    name: Annotated[str, MaxLength(NAME_CHARS_MAX)]
    level: int
    """Verification level 0..3 (0: self-declared, 3: verified in person)."""


@dataclass(frozen=True, slots=True)
class Revoke:
    key: PublicKeyBytes
    reason: Annotated[str, MaxLength(REASON_CHARS_MAX)]


@dataclass(frozen=True, slots=True)
class Identity:
    """State record at `identity_key(key)`."""

    key: PublicKeyBytes
    institution: str
    role: Role
    name: str
    level: int
    enrolled_height: int
    revoked_height: int | None
    revoked_reason: str | None

    @property
    def active(self) -> bool:
        return self.revoked_height is None


def identity_key(key: bytes) -> bytes:
    return b"identity/" + key
