"""The transaction envelope.

A client signs the canonical bytes of a `TransactionBody` (domain tag
`notarychain/tx/v1`); the transaction id is SHA-256 of exactly those bytes,
so the id is fixed before signing and a signature cannot change it. The
`payload` is the family's own canonical encoding; the envelope does not look
inside. The replay guard is a random `nonce` plus `expires_at_ms`: a block may
only include the transaction while its time is not past the expiry, and the
node never orders one id twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Final

from ledger.encoding import Length, MaxLength, decode, encode
from ledger.errors import SignatureError
from ledger.hashing import sha256, tag
from ledger.keys import PrivateKey, PublicKeyBytes, SignatureBytes, verify

TX_DOMAIN: Final = tag("tx/v1")
NONCE_BYTES: Final = 16
NAME_CHARS_MAX: Final = 64
CHAIN_ID_CHARS_MAX: Final = 64
TX_BYTES_MAX: Final = 1024 * 1024
BATCH_TRANSACTIONS_MAX: Final = 1024
"""Transactions a node takes in one batched submission (half a block at the default size)."""

Name = Annotated[str, MaxLength(NAME_CHARS_MAX)]
ChainId = Annotated[str, MaxLength(CHAIN_ID_CHARS_MAX)]
Nonce = Annotated[bytes, Length(NONCE_BYTES)]


@dataclass(frozen=True)
class TransactionBody:
    """No `slots`: the signing bytes and the id are computed once and cached, because a
    node needs them many times per transaction (admission, batching, execution, proofs);
    so is the msgpack-ready form (`ledger.encoding`)."""

    __wire_cached__ = True

    chain_id: ChainId
    sender: PublicKeyBytes
    family: Name
    operation: Name
    payload: bytes
    nonce: Nonce
    expires_at_ms: int

    def signing_bytes(self) -> bytes:
        return self._signing_bytes

    @functools.cached_property
    def _signing_bytes(self) -> bytes:
        return TX_DOMAIN + encode(self)

    @functools.cached_property
    def id(self) -> bytes:
        return sha256(self._signing_bytes)


@dataclass(frozen=True)
class Transaction:
    """Kept whole in requests, proposals, records and blocks: its msgpack-ready form is
    cached (`ledger.encoding`), so each of those encodes it without walking it again."""

    __wire_cached__ = True

    body: TransactionBody
    signature: SignatureBytes

    @property
    def id(self) -> bytes:
        return self.body.id

    @functools.cached_property
    def leaf_data(self) -> bytes:
        """The canonical bytes of the signed transaction (its leaf in blocks and the log)."""
        return encode(self)

    def verify_signature(self) -> None:
        if not verify(self.body.sender, self.signature, self.body.signing_bytes()):
            raise SignatureError("transaction signature does not verify for its sender")

    def encode(self) -> bytes:
        return self.leaf_data

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        return decode(cls, data, input_bytes_max=TX_BYTES_MAX)


def sign_transaction(body: TransactionBody, key: PrivateKey) -> Transaction:
    if body.sender != key.public_key:
        raise SignatureError("the body's sender is not the signing key's public key")
    return Transaction(body, key.sign(body.signing_bytes()))
