"""Checkpoints and their certificates.

After executing block `height` every validator signs a `Checkpoint` (domain
`notarychain/checkpoint/v1`). A `CheckpointCertificate` holds a quorum
(2f + 1 of n = 3f + 1) of those signatures from distinct members; it proves the
block hash, the state root and the transaction log root at that height to
anyone who knows the validator set, which is what every proof bundle rests on.
Verification is strict: a certificate with any duplicate signer, outsider or
bad signature is rejected outright, not merely discounted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ledger.encoding import encode
from ledger.errors import CertificateError
from ledger.hashing import Hash, tag
from ledger.keys import (
    PrivateKey,
    PublicKeyBytes,
    SignatureBytes,
    VerifyFn,
    public_key_text,
    verify,
)
from ledger.tx import ChainId
from ledger.validators import ValidatorSet

CHECKPOINT_DOMAIN: Final = tag("checkpoint/v1")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    chain_id: ChainId
    height: int
    block_hash: Hash
    state_root: Hash
    log_size: int
    log_root: Hash
    time_ms: int

    def signing_bytes(self) -> bytes:
        return CHECKPOINT_DOMAIN + encode(self)


@dataclass(frozen=True, slots=True)
class Endorsement:
    """One validator's signature over some signed bytes."""

    signer: PublicKeyBytes
    signature: SignatureBytes


@dataclass(frozen=True, slots=True)
class CheckpointCertificate:
    checkpoint: Checkpoint
    endorsements: tuple[Endorsement, ...]


def sign_checkpoint(checkpoint: Checkpoint, key: PrivateKey) -> Endorsement:
    return Endorsement(key.public_key, key.sign(checkpoint.signing_bytes()))


def verify_endorsements(
    message: bytes,
    endorsements: tuple[Endorsement, ...],
    validators: ValidatorSet,
    verify_fn: VerifyFn = verify,
) -> None:
    """Raise `CertificateError` unless a quorum of distinct members signed `message`."""
    seen: set[bytes] = set()
    for endorsement in endorsements:
        signer = endorsement.signer
        if signer in seen:
            raise CertificateError(f"validator {public_key_text(signer)} signed twice")
        if signer not in validators:
            raise CertificateError(f"{public_key_text(signer)} is not in the validator set")
        if not verify_fn(signer, endorsement.signature, message):
            raise CertificateError(f"bad signature from validator {public_key_text(signer)}")
        seen.add(signer)
    if len(seen) < validators.quorum:
        raise CertificateError(
            f"{len(seen)} signatures, but a quorum of {validators.n} validators is "
            f"{validators.quorum}"
        )


def verify_certificate(
    certificate: CheckpointCertificate,
    validators: ValidatorSet,
    chain_id: str,
    verify_fn: VerifyFn = verify,
) -> None:
    if certificate.checkpoint.chain_id != chain_id:
        raise CertificateError(
            f"checkpoint is for chain {certificate.checkpoint.chain_id!r}, not {chain_id!r}"
        )
    verify_endorsements(
        certificate.checkpoint.signing_bytes(), certificate.endorsements, validators, verify_fn
    )
