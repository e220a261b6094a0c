"""Protocol messages (Castro and Liskov 1999/2002, with signatures instead of MACs).

Rule: every message a replica signs ends with `replica` and `signature`
fields; the signature covers the message's domain tag, the chain id and the
canonical encoding of every other field, so a vote for one chain, kind, view
or sequence number is never valid for another. Batches travel beside the
signed `PrePrepare` (which carries only their digest), as in the paper's
separation of requests from ordering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from consensus.types import ReplicaId, SeqNo, View
from ledger.checkpoint import Checkpoint, CheckpointCertificate
from ledger.encoding import decode, from_wire, pack, to_wire, unpack
from ledger.errors import DecodeError
from ledger.hashing import Hash, sha256, tag
from ledger.keys import PublicKeyBytes, SignatureBytes
from ledger.merkle import EMPTY_ROOT
from ledger.tx import ChainId, Transaction

BATCH_DOMAIN: Final = tag("batch/v1")


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """What a primary proposes for one sequence number; its hash is the PBFT digest."""

    chain_id: ChainId
    height: int
    view: int
    time_ms: int
    """The primary's clock; 0 for a null batch, which takes its time from the previous block."""
    tx_root: Hash
    proposer: PublicKeyBytes

    @property
    def digest(self) -> bytes:
        return sha256(BATCH_DOMAIN + pack(to_wire(self)))


@dataclass(frozen=True, slots=True)
class Batch:
    header: BatchHeader
    transactions: tuple[Transaction, ...]

    @property
    def digest(self) -> bytes:
        return self.header.digest


def null_batch(chain_id: str, seq: SeqNo, view: View, proposer: bytes) -> Batch:
    """The batch a new primary proposes for a sequence number nobody prepared."""
    return Batch(BatchHeader(chain_id, seq, view, 0, EMPTY_ROOT, proposer), ())


@dataclass(frozen=True, slots=True)
class PrePrepare:
    view: View
    seq: SeqNo
    digest: Hash
    replica: ReplicaId
    signature: SignatureBytes


@dataclass(frozen=True, slots=True)
class Prepare:
    view: View
    seq: SeqNo
    digest: Hash
    replica: ReplicaId
    signature: SignatureBytes


@dataclass(frozen=True, slots=True)
class Commit:
    view: View
    seq: SeqNo
    digest: Hash
    replica: ReplicaId
    signature: SignatureBytes


@dataclass(frozen=True, slots=True)
class Proposal:
    """A primary's PrePrepare with the batch it orders."""

    pre_prepare: PrePrepare
    batch: Batch


@dataclass(frozen=True, slots=True)
class CheckpointVote:
    """PBFT's CHECKPOINT; signed as `ledger.checkpoint.Checkpoint`, so votes form a certificate."""

    checkpoint: Checkpoint
    replica: ReplicaId
    signature: SignatureBytes


@dataclass(frozen=True, slots=True)
class PreparedCertificate:
    """A PrePrepare and 2f matching Prepares from other replicas, with the batch."""

    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]
    batch: Batch


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """2f + 1 matching Commits for a batch: it is decided. Travels with the block it became."""

    batch: BatchHeader
    commits: tuple[Commit, ...]


@dataclass(frozen=True, slots=True)
class ViewChange:
    new_view: View
    stable: CheckpointCertificate | None
    """The replica's latest stable checkpoint (None: nothing stable since genesis)."""
    prepared: tuple[PreparedCertificate, ...]
    """For each sequence number above the stable checkpoint, the highest-view prepared batch."""
    replica: ReplicaId
    signature: SignatureBytes


@dataclass(frozen=True, slots=True)
class NewView:
    view: View
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[PrePrepare, ...]
    replica: ReplicaId
    signature: SignatureBytes


@dataclass(frozen=True, slots=True)
class Status:
    """A periodic announcement: lets laggards catch up and replicas in old views rejoin."""

    epoch: int
    view: View
    executed_height: int
    stable_height: int
    replica: ReplicaId
    signature: SignatureBytes


@dataclass(frozen=True, slots=True)
class Requests:
    """Client transactions relayed between replicas, so every backup can watch the primary."""

    transactions: tuple[Transaction, ...]


Signed = PrePrepare | Prepare | Commit | ViewChange | NewView | Status
Message = Signed | Proposal | CheckpointVote | Requests

# Wire kinds: a stable number per message type; never reuse a number.
KINDS: Final[dict[type, int]] = {
    Proposal: 1,
    Prepare: 2,
    Commit: 3,
    CheckpointVote: 4,
    ViewChange: 5,
    NewView: 6,
    Status: 7,
    Requests: 8,
    PrePrepare: 9,
}
TYPES: Final[dict[int, type]] = {kind: cls for cls, kind in KINDS.items()}
_DOMAINS: Final[dict[type, bytes]] = {
    cls: tag(f"pbft/{cls.__name__.lower()}/v1")
    for cls in (PrePrepare, Prepare, Commit, ViewChange, NewView, Status)
}


def signing_bytes(chain_id: str, message: Signed, epoch: int = 0) -> bytes:
    """Domain tag, chain id, epoch, then every field but the trailing signature.

    The epoch (the validator set's number since genesis) is part of every vote, so a
    vote of one validator set can never count in another's quorum.
    """
    fields = to_wire(message)[:-1]
    prefix = _DOMAINS[type(message)] + chain_id.encode() + b"\x00" + epoch.to_bytes(8, "big")
    return prefix + pack(fields)


def encode_message(message: Message) -> bytes:
    return pack([KINDS[type(message)], to_wire(message)])


def decode_message(data: bytes, *, input_bytes_max: int) -> Message:
    """Decode one wire message of any kind; `DecodeError` for anything else."""
    wire: Any = unpack(data, input_bytes_max=input_bytes_max)
    if type(wire) is not tuple or len(wire) != 2 or type(wire[0]) is not int:
        raise DecodeError("a message is [kind, body]")
    cls = TYPES.get(wire[0])
    if cls is None:
        raise DecodeError(f"unknown message kind {wire[0]}")
    message: Message = from_wire(cls, wire[1])
    if encode_message(message) != data:
        raise DecodeError(f"{cls.__name__}: bytes are not in canonical form")
    return message


def decode_record(cls: type[Any], data: bytes) -> Any:
    """Decode a persisted record of a known type."""
    return decode(cls, data)
