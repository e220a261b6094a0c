"""Notarization family: applications, their automated audit, decisions and certificates.

The workflow, every step a transaction and every step recorded in the
application's history (which is itself evidence of how the decision came about):

    apply (applicant)  -> PENDING, with the automated audit's findings and recommendation
    issue (officer)    -> ISSUED, a Certificate is created
    reject (officer)   -> REJECTED, with a reason
    withdraw (applicant, before a decision) -> WITHDRAWN
    revoke (officer, later, on a certificate) -> the certificate is REVOKED, with a reason

A decided application is archived (closed to further steps). Nothing is ever
deleted: a revocation is appended to the certificate and to the history.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Annotated, Final

from ledger.encoding import MaxLength
from ledger.families.evidence import Kind
from ledger.hashing import Hash
from ledger.keys import PublicKeyBytes

FAMILY: Final = "notarization"
APPLY: Final = "apply"
ISSUE: Final = "issue"
REJECT: Final = "reject"
WITHDRAW: Final = "withdraw"
REVOKE: Final = "revoke"

EVIDENCE_PER_APPLICATION_MAX: Final = 100
TEXT_CHARS_MAX: Final = 1_000


class Purpose(enum.IntEnum):
    """What the notarization is for; each purpose requires some kinds of evidence."""

    CONTRACT = 1
    IDENTITY_DOCUMENT = 2
    INTELLECTUAL_PROPERTY = 3
    EVENT_RECORDING = 4
    OTHER = 5


REQUIRED_KINDS: Final[dict[Purpose, frozenset[Kind]]] = {
    Purpose.CONTRACT: frozenset({Kind.DOCUMENT}),
    Purpose.IDENTITY_DOCUMENT: frozenset({Kind.DOCUMENT, Kind.PHOTO}),
    Purpose.INTELLECTUAL_PROPERTY: frozenset(),
    Purpose.EVENT_RECORDING: frozenset({Kind.PHOTO, Kind.AUDIO, Kind.VIDEO}),
    Purpose.OTHER: frozenset(),
}
"""At least one evidence item of one of these kinds (empty: any kind will do)."""


class State(enum.IntEnum):
    PENDING = 1
    ISSUED = 2
    REJECTED = 3
    WITHDRAWN = 4


class CertificateState(enum.IntEnum):
    ACTIVE = 1
    REVOKED = 2


class Check(enum.IntEnum):
    """The automated audit's rules, in the order they are recorded."""

    APPLICANT_ENROLLED_AND_VERIFIED = 1
    EVIDENCE_PRESENT_AND_OWNED = 2
    REQUIRED_KINDS_PRESENT = 3
    NOTHING_REVOKED = 4


class Recommendation(enum.IntEnum):
    ISSUE = 1
    REJECT = 2


Text = Annotated[str, MaxLength(TEXT_CHARS_MAX)]


@dataclass(frozen=True, slots=True)
class Apply:
    evidence_ids: Annotated[tuple[Hash, ...], MaxLength(EVIDENCE_PER_APPLICATION_MAX)]
    purpose: Purpose
    description: Text


@dataclass(frozen=True, slots=True)
class Decide:
    """Payload of issue, reject and withdraw: the application, and a reason where one is due."""

    application_id: Hash
    reason: Text


@dataclass(frozen=True, slots=True)
class RevokeCertificate:
    certificate_id: Hash
    reason: Text


@dataclass(frozen=True, slots=True)
class Finding:
    check: Check
    passed: bool
    detail: str


class Step(enum.IntEnum):
    APPLIED = 1
    AUDITED = 2
    ISSUED = 3
    REJECTED = 4
    WITHDRAWN = 5
    ARCHIVED = 6
    CERTIFICATE_REVOKED = 7
    FEE_HELD = 8
    FEE_PAID = 9
    FEE_REFUNDED = 10


@dataclass(frozen=True, slots=True)
class Event:
    step: Step
    height: int
    time_ms: int
    actor: PublicKeyBytes
    tx_id: Hash
    detail: str


@dataclass(frozen=True, slots=True)
class Application:
    """State record at `application_key(id)`; `id` is the apply transaction's id."""

    id: Hash
    applicant: PublicKeyBytes
    institution: str
    """The applicant's institution."""
    evidence_ids: tuple[Hash, ...]
    purpose: Purpose
    description: str
    state: State
    findings: tuple[Finding, ...]
    recommendation: Recommendation
    fee_held: int
    certificate_id: Hash | None
    history: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class CertifiedEvidence:
    id: Hash
    kind: Kind
    private: bool
    registered_height: int
    registered_time_ms: int


@dataclass(frozen=True, slots=True)
class Certificate:
    """State record at `certificate_key(id)`: a notarial certificate."""

    id: Hash
    application_id: Hash
    applicant: PublicKeyBytes
    notary_office: str
    officer: PublicKeyBytes
    purpose: Purpose
    evidence: tuple[CertifiedEvidence, ...]
    issued_height: int
    issued_time_ms: int
    issue_tx_id: Hash
    state: CertificateState
    revoked_height: int | None
    revoked_time_ms: int | None
    revoked_reason: str | None


def application_key(application_id: bytes) -> bytes:
    return b"application/" + application_id


def certificate_key(certificate_id: bytes) -> bytes:
    return b"certificate/" + certificate_id


def evidence_certificates_key(evidence_id: bytes) -> bytes:
    """The ids of certificates covering an evidence item (to audit 'nothing revoked')."""
    return b"evidence-certificates/" + evidence_id


def certificate_id_for(application_id: bytes) -> bytes:
    return hashlib.sha256(b"notarychain/certificate\x00" + application_id).digest()


@dataclass(frozen=True, slots=True)
class CertificateIds:
    """State record at `evidence_certificates_key(id)`."""

    ids: tuple[Hash, ...]
