"""Governance family: changes to the consortium, approved by a quorum of institutions.

An institution administrator proposes a change to take effect at a stated
later height; administrators of other institutions approve it; once a quorum
of institutions (the same arithmetic as validator quorums) has approved it
before that height, it takes effect at that height. A proposal not approved
in time expires. Adding or removing an institution changes the validator set
(at the stated height, which must leave the consensus window room to drain).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Final

from ledger.encoding import MaxLength
from ledger.hashing import Hash
from ledger.keys import PublicKeyBytes

FAMILY: Final = "governance"
PROPOSE: Final = "propose"
APPROVE: Final = "approve"

PROPOSALS_KEY: Final = b"governance/open"
INSTITUTIONS_KEY: Final = b"governance/institutions"


class ProposalState(enum.IntEnum):
    OPEN = 1
    APPROVED = 2
    """Approved by a quorum; takes effect at its height."""
    APPLIED = 3
    EXPIRED = 4


@dataclass(frozen=True, slots=True)
class Member:
    """An institution and its node, as the consortium knows it."""

    name: str
    role: str
    admin_key: PublicKeyBytes
    node_key: PublicKeyBytes
    host: str
    peer_port: int
    api_port: int


@dataclass(frozen=True, slots=True)
class AddInstitution:
    member: Member


@dataclass(frozen=True, slots=True)
class RemoveInstitution:
    name: str


@dataclass(frozen=True, slots=True)
class SetFee:
    operation: str
    amount: int


class ChangeKind(enum.IntEnum):
    ADD_INSTITUTION = 1
    REMOVE_INSTITUTION = 2
    SET_FEE = 3


@dataclass(frozen=True, slots=True)
class Change:
    """Exactly one of the fields matching `kind` is set."""

    kind: ChangeKind
    add: AddInstitution | None
    remove: RemoveInstitution | None
    fee: SetFee | None


@dataclass(frozen=True, slots=True)
class Propose:
    change: Change
    effective_height: int
    description: Annotated[str, MaxLength(1_000)]


@dataclass(frozen=True, slots=True)
class Approve:
    proposal_id: Hash


@dataclass(frozen=True, slots=True)
class Proposal:
    """State record at `proposal_key(id)`; `id` is the propose transaction's id."""

    id: Hash
    change: Change
    effective_height: int
    description: str
    proposer: str
    approvals: tuple[str, ...]
    """Institutions that approved (the proposer's included)."""
    state: ProposalState
    decided_height: int | None


@dataclass(frozen=True, slots=True)
class OpenProposals:
    """State record at `PROPOSALS_KEY`: ids of proposals not yet applied or expired."""

    ids: tuple[Hash, ...]


@dataclass(frozen=True, slots=True)
class Members:
    """State record at `INSTITUTIONS_KEY`: the consortium now (genesis, then governance)."""

    members: tuple[Member, ...]
    since_height: int


def proposal_key(proposal_id: bytes) -> bytes:
    return b"governance/proposal/" + proposal_id
