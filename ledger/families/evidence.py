"""Evidence family: the hash of a document, photo, audio or video, time-stamped on chain.

The committed block's time is the evidence's trusted time. Content may be
registered openly (its SHA-256) or privately (a salted commitment
SHA-256(salt || SHA-256(content)), so nobody can test a guessed file against
the chain). The evidence id is the content hash, or the commitment; registering
an id again returns the original record instead of making a second one.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Annotated, Final

from ledger.encoding import MaxLength
from ledger.hashing import Hash
from ledger.keys import PublicKeyBytes

FAMILY: Final = "evidence"
REGISTER: Final = "register"

ITEMS_MAX: Final = 5_000
TITLE_CHARS_MAX: Final = 200


class Kind(enum.IntEnum):
    DOCUMENT = 1
    PHOTO = 2
    AUDIO = 3
    VIDEO = 4
    OTHER = 5


@dataclass(frozen=True, slots=True)
class Item:
    digest: Hash
    """SHA-256 of the content, or the salted commitment when `private`."""
    private: bool
    kind: Kind
    size: int
    title: Annotated[str, MaxLength(TITLE_CHARS_MAX)] | None


@dataclass(frozen=True, slots=True)
class Register:
    items: Annotated[tuple[Item, ...], MaxLength(ITEMS_MAX)]


@dataclass(frozen=True, slots=True)
class Evidence:
    """State record at `evidence_key(id)`; `id` is `Item.digest`."""

    id: Hash
    private: bool
    kind: Kind
    size: int
    title: str | None
    owner: PublicKeyBytes
    height: int
    time_ms: int
    tx_id: Hash


@dataclass(frozen=True, slots=True)
class Registered:
    """The result of a register transaction: each item's id and whether it was new."""

    ids: tuple[Hash, ...]
    new: tuple[bool, ...]


def evidence_key(evidence_id: bytes) -> bytes:
    return b"evidence/" + evidence_id


def commitment(salt: bytes, content_hash: bytes) -> bytes:
    return hashlib.sha256(salt + content_hash).digest()
