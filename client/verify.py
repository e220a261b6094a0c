"""Verification of receipts and certificates: with the genesis alone, trusting no node.

Each function returns what is proven, or raises `VerificationFailed` with the
precise reason: the file's hash does not match, the proof does not verify,
too few validators signed, the certificate is revoked, the validator set is
unknown...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.errors import VerificationFailed
from client.files import RECEIPT_FORMAT, sha256_file
from ledger.documents import CERTIFICATE_FORMAT, check_document_matches, proven_certificate
from ledger.encoding import decode
from ledger.errors import LedgerError
from ledger.families.evidence import Evidence, commitment, evidence_key
from ledger.families.notarization import Certificate, CertificateState
from ledger.genesis import Genesis
from ledger.proofs import Verified, bundle_from_json, verify_bundle


@dataclass(frozen=True, slots=True)
class Proven:
    """What a successful verification establishes."""

    sha256: str
    evidence_id: str
    trusted_time_ms: int
    time_bound_ms: int
    height: int
    checkpoint_height: int
    signers: tuple[str, ...]
    certificate: Certificate | None = None


def signer_names(genesis: Genesis, verified: Verified) -> tuple[str, ...]:
    by_key = {bytes.fromhex(i.node.key): i.name for i in genesis.institutions}
    return tuple(by_key.get(s, s.hex()[:16]) for s in verified.signers)


def _verify(document: dict[str, Any], genesis: Genesis) -> Verified:
    try:
        return verify_bundle(bundle_from_json(document.get("proof")), genesis)
    except LedgerError as exc:
        raise VerificationFailed(f"the proof does not verify: {exc}") from None


def _file_hash(path: Path) -> bytes:
    try:
        return sha256_file(path)[0]
    except FileNotFoundError:
        raise VerificationFailed(f"{path}: no such file") from None
    except OSError as exc:
        raise VerificationFailed(f"{path}: cannot read: {exc.strerror}") from None


def _hex(document: dict[str, Any], field: str, length: int = 32) -> bytes:
    value = document.get(field)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != length:
        raise VerificationFailed(f"the receipt's {field} is not {length} bytes of hex")
    return raw


def verify_receipt(path: Path, receipt: dict[str, Any], genesis: Genesis) -> Proven:
    if receipt.get("format") != RECEIPT_FORMAT:
        raise VerificationFailed(f"not a {RECEIPT_FORMAT} receipt")
    digest = _file_hash(path)
    if digest != _hex(receipt, "sha256"):
        raise VerificationFailed(
            f"hash mismatch: {path.name} has SHA-256 {digest.hex()[:16]}..., "
            f"the receipt is for {str(receipt.get('sha256'))[:16]}..."
        )
    evidence_id = digest
    if receipt.get("private"):
        evidence_id = commitment(_hex(receipt, "salt"), digest)
    if evidence_id != _hex(receipt, "evidence_id"):
        raise VerificationFailed("the receipt's evidence id does not match the file")
    verified = _verify(receipt, genesis)
    value = verified.state.get(evidence_key(evidence_id))
    if value is None:
        raise VerificationFailed("the proof does not contain this evidence")
    record = decode(Evidence, value)
    return Proven(
        sha256=digest.hex(),
        evidence_id=evidence_id.hex(),
        trusted_time_ms=record.time_ms,
        time_bound_ms=genesis.consensus.clock_skew_max_ms,
        height=record.height,
        checkpoint_height=verified.checkpoint.height,
        signers=signer_names(genesis, verified),
    )


def verify_certificate(path: Path | None, document: dict[str, Any], genesis: Genesis) -> Proven:
    if document.get("format") != CERTIFICATE_FORMAT:
        raise VerificationFailed(f"not a {CERTIFICATE_FORMAT} document")
    certificate_id = _hex(document, "certificate_id")
    verified = _verify(document, genesis)
    try:
        certificate = proven_certificate(verified, certificate_id)
        check_document_matches(document, certificate)
    except LedgerError as exc:
        raise VerificationFailed(str(exc)) from None
    digest = b""
    evidence_id = b""
    if path is not None:
        digest = _file_hash(path)
        ids = {e.id for e in certificate.evidence}
        if digest not in ids:
            raise VerificationFailed(
                f"hash mismatch: {path.name} (SHA-256 {digest.hex()[:16]}...) is not "
                "among the certificate's evidence"
            )
        evidence_id = digest
    revoked = certificate.state is CertificateState.REVOKED
    if revoked:
        raise VerificationFailed(
            f"the certificate was revoked at height {certificate.revoked_height}: "
            f"{certificate.revoked_reason}"
        )
    return Proven(
        sha256=digest.hex(),
        evidence_id=evidence_id.hex(),
        trusted_time_ms=certificate.issued_time_ms,
        time_bound_ms=genesis.consensus.clock_skew_max_ms,
        height=certificate.issued_height,
        checkpoint_height=verified.checkpoint.height,
        signers=signer_names(genesis, verified),
        certificate=certificate,
    )


def check_not_revoked(certificate_id: bytes, verified: Verified) -> None:
    """With a fresh proof from the chain: is the certificate still active?"""
    try:
        certificate = proven_certificate(verified, certificate_id)
    except LedgerError as exc:
        raise VerificationFailed(f"the chain's proof of the certificate's status: {exc}") from None
    if certificate.state is CertificateState.REVOKED:
        raise VerificationFailed(
            f"the certificate was revoked at height {certificate.revoked_height}: "
            f"{certificate.revoked_reason}"
        )
