"""Ed25519 keys and signatures (RFC 8032).

Public keys travel as their raw 32 bytes and are shown as 64 hex digits.

Keys, signing and PEM files use the `cryptography` package (OpenSSL).
Verification uses libsodium (through PyNaCl), because a node verifies every
client signature and libsodium's check took 75 to 88 µs where OpenSSL's took
135 to 160 µs on the machine of docs/benchmarks.md. libsodium is also the
stricter of the two: it rejects, besides what OpenSSL rejects, small-order
public keys and `R` points and non-canonical point encodings. Every node runs
this same check, so they agree on every signature. A verifier using another
library, the client offline for instance, accepts all that the chain
accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import (
    crypto_core_ed25519_is_valid_point,
    crypto_scalarmult_ed25519_base_noclamp,
    crypto_sign_open,
)
from nacl.exceptions import CryptoError

from ledger.encoding import Length
from ledger.errors import KeyFileError, SignatureError

PUBLIC_KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
SEED_BYTES: Final = 32
NEUTRAL_POINT: Final = b"\x01" + bytes(31)
"""The encoding of the curve's neutral point: a public key of order 1."""

PublicKeyBytes = Annotated[bytes, Length(PUBLIC_KEY_BYTES)]
SignatureBytes = Annotated[bytes, Length(SIGNATURE_BYTES)]

VerifyFn = Callable[[bytes, bytes, bytes], bool]
"""verify(public_key, signature, message) -> bool: real Ed25519, or a simulator's stand-in."""


class PrivateKey:
    """An Ed25519 signing key. Never printed: `repr` shows only the public key."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key: bytes = key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        """The key of a 32-byte RFC 8032 seed (deterministic keys for tests and simulation)."""
        if len(seed) != SEED_BYTES:
            raise SignatureError(f"an Ed25519 seed has {SEED_BYTES} bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def seed(self) -> bytes:
        return self._key.private_bytes_raw()

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with the passphrase when one is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(data, password=passphrase or None)
        except TypeError as exc:  # encrypted without passphrase, or the reverse
            message = str(exc).lower()
            if "password was not given" in message:
                raise KeyFileError("the key is encrypted: a passphrase is needed") from None
            raise KeyFileError("the key is not encrypted, but a passphrase was given") from None
        except ValueError:
            raise KeyFileError("not a PEM private key, or the passphrase is wrong") from None
        except UnsupportedAlgorithm:
            raise KeyFileError("the key's algorithm is not supported") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"expected an Ed25519 key, got {type(key).__name__}")
        return cls(key)

    def __repr__(self) -> str:
        return f"PrivateKey(public_key={public_key_text(self.public_key)})"


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True only if `signature` is a valid Ed25519 signature of `message` by `public_key`."""
    # Required, not only quick: libsodium reads 32 key bytes whatever the length given.
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        crypto_sign_open(signature + message, public_key)
    except CryptoError:  # BadSignatureError: forged, corrupt, or a key no signature fits
        return False
    return True


def neutral_point_forgery() -> bytes:
    """A "signature" by `NEUTRAL_POINT` of every message under the cofactorless check.

    With the neutral point as the public key, (R, S) with R = SB satisfies SB = R + hA
    whatever h, hence whatever the message; libsodium refuses such keys.
    """
    scalar = (5).to_bytes(32, "little")
    return crypto_scalarmult_ed25519_base_noclamp(scalar) + scalar


def verifier_is_strict() -> bool:
    """Whether `verify` refuses the neutral point's universal forgery, as every node's must:
    a node whose library accepted it would accept signatures its peers refuse."""
    return not verify(NEUTRAL_POINT, neutral_point_forgery(), b"notarychain")


def public_key_text(public_key: bytes) -> str:
    return public_key.hex()


def parse_public_key_text(text: str) -> bytes:
    """64 hex digits back to a 32-byte public key; `SignatureError` with the reason otherwise."""
    text = text.strip()
    if len(text) != 2 * PUBLIC_KEY_BYTES:
        raise SignatureError(f"a public key has {2 * PUBLIC_KEY_BYTES} hex digits, got {len(text)}")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise SignatureError("a public key is written in hex digits 0-9a-f") from None
    # A key off the curve, spelled non-canonically, or of small order can sign nothing
    # that `verify` accepts: refuse it where it is named (a genesis file, a command).
    if not crypto_core_ed25519_is_valid_point(raw):
        raise SignatureError("not a valid Ed25519 public key")
    return raw
