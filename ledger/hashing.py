"""SHA-256 helpers and the domain tags that keep signed byte strings apart.

Rule: every byte string that is signed or hashed for identity starts with a
domain tag naming what it is (`notarychain/tx/v1`, ...), so a signature made
for one kind of object can never be replayed as another kind.
"""

import hashlib
from typing import Annotated, Final

from ledger.encoding import Length, encode

HASH_BYTES: Final = 32

Hash = Annotated[bytes, Length(HASH_BYTES)]
"""A SHA-256 digest as it appears in models."""

ZERO_HASH: Final = bytes(HASH_BYTES)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def tag(name: str) -> bytes:
    """The domain tag for one kind of signed object (NUL-terminated, so no tag prefixes another)."""
    return b"notarychain/" + name.encode("ascii") + b"\x00"


def tagged_bytes(domain: bytes, value: object) -> bytes:
    """The bytes that are signed and hashed for `value` in `domain`."""
    return domain + encode(value)


def hash_hex(digest: bytes) -> str:
    return digest.hex()


def parse_hash_hex(text: str) -> bytes:
    """A 64-digit hex digest back to bytes; `ValueError` with the reason otherwise."""
    if len(text) != 2 * HASH_BYTES:
        raise ValueError(f"a hash has {2 * HASH_BYTES} hex digits, got {len(text)}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError("a hash is written in hex digits 0-9a-f") from None
