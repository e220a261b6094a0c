"""Who signs, and how signatures are checked: an interface with two implementations.

`Ed25519Signer`/`ed25519_verify` are the real thing. `FastSigner` is the
simulator's stand-in: a keyed SHA-512 tag whose key only the simulated owner
knows, so it is unforgeable inside a run (a Byzantine replica cannot sign for
another one) while costing a hash instead of a curve operation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Protocol

from ledger.keys import PrivateKey, VerifyFn, verify


class Signer(Protocol):
    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


class Ed25519Signer:
    __slots__ = ("_key",)

    def __init__(self, key: PrivateKey) -> None:
        self._key = key

    @property
    def public_key(self) -> bytes:
        return self._key.public_key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


ed25519_verify: VerifyFn = verify


def _fast_tag(secret: bytes, message: bytes) -> bytes:
    return hashlib.sha512(secret + message).digest()


class FastSigner:
    """Simulation only: public key = SHA-256(secret), signature = SHA-512(secret || message)."""

    __slots__ = ("_secret", "public_key")

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self.public_key = hashlib.sha256(secret).digest()

    def sign(self, message: bytes) -> bytes:
        return _fast_tag(self._secret, message)


def fast_verifier(secrets: Mapping[bytes, bytes]) -> VerifyFn:
    """A verifier that knows every simulated party's secret, by public key."""

    def verify_fast(public_key: bytes, signature: bytes, message: bytes) -> bool:
        secret = secrets.get(public_key)
        return secret is not None and signature == _fast_tag(secret, message)

    return verify_fast
