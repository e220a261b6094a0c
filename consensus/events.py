"""What the runtime feeds a replica, and what the replica asks the runtime to do.

The contract, as in etcd's raft `Ready`: after each `Replica.step` the runtime
must, in this order,
  1. durably store every record in `Output.persist` (write-ahead: a replica's
     own votes are on disk before they leave the process, so after a crash it
     never signs a message that conflicts with one it sent),
  2. send every message in `Output.send` (best effort; the protocol re-sends),
  3. execute every block in `Output.deliver`, in order, and report each one
     back with an `Executed` event,
  4. start every fetch in `Output.fetch` and answer it with `BlocksFetched`
     or `FetchFailed`.
`Output.notices` and `Output.rejected` are for logs and metrics only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.messages import (
    CheckpointVote,
    Commit,
    CommitCertificate,
    Message,
    NewView,
    Prepare,
    PreparedCertificate,
    Proposal,
    ViewChange,
)
from consensus.types import ReplicaId, View
from ledger.block import Block
from ledger.checkpoint import CheckpointCertificate
from ledger.tx import Transaction
from ledger.validators import ValidatorSet

# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message from a peer, decoded; nothing in it is trusted yet."""

    message: Message


@dataclass(frozen=True, slots=True)
class RequestsReceived:
    """Client transactions admitted by this node (relayed to the peers) or relayed by a peer."""

    transactions: tuple[Transaction, ...]
    from_client: bool = True


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; the replica checks its timers against the clock reading."""


@dataclass(frozen=True, slots=True)
class Executed:
    """The runtime executed the delivered block at `height` and durably stored the result."""

    height: int
    state_root: bytes
    log_size: int
    log_root: bytes


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    """A decided block, with the 2f + 1 Commits that ordered it when this replica saw them."""

    block: Block
    certificate: CommitCertificate | None


@dataclass(frozen=True, slots=True)
class BlocksFetched:
    """A peer's answer to a fetch: consecutive blocks from the height asked for.

    Blocks up to the checkpoint certificate's height are proven by it (through
    their hash chain); each block after it must carry its commit certificate.
    """

    peer: bytes
    """The public key of the peer that answered."""
    certificate: CheckpointCertificate | None
    blocks: tuple[CommittedBlock, ...]


@dataclass(frozen=True, slots=True)
class FetchFailed:
    peer: bytes


@dataclass(frozen=True, slots=True)
class EpochScheduled:
    """Execution approved a new validator set: it orders the blocks after `end_height`.

    Every replica learns it by executing the same block, long enough before
    `end_height` (at least a window) that no vote of the current set can reach
    beyond it.
    """

    end_height: int
    validators: ValidatorSet


Event = (
    MessageReceived
    | RequestsReceived
    | Tick
    | Executed
    | BlocksFetched
    | FetchFailed
    | EpochScheduled
)

# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """A Commit this replica sent, with the prepared certificate that allowed it."""

    commit: Commit
    prepared: PreparedCertificate


Record = Proposal | Prepare | CommitRecord | CheckpointVote | ViewChange | NewView
"""Write-ahead records; stable certificates are persisted as `CheckpointCertificate`."""

PersistItem = Record | CheckpointCertificate


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restarted replica finds on its disk."""

    executed_height: int
    last_block_hash: bytes
    last_block_time_ms: int
    records: tuple[PersistItem, ...] = ()
    rejoining: bool = False
    """The write-ahead records were lost or rolled back (a restored backup, a new disk):
    the replica must not vote until it is past anything it may have voted on before."""
    epoch: int = 0
    validators: ValidatorSet | None = None
    """The current epoch's validator set (None: still the genesis set)."""
    scheduled: EpochScheduled | None = None
    """A validator-set change approved but not yet in force."""


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Fetch:
    """Ask `peer` for the committed blocks from `from_height` on, with a checkpoint certificate."""

    peer: bytes
    """The peer's public key (validator indices change with the validator set)."""
    from_height: int
    until_height: int | None = None
    """The answer must stop here (the end of an epoch: its blocks have other certificates)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message or request refused, and why (the sender's fault, not ours)."""

    kind: str
    sender: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class ViewChanged:
    view: View
    active: bool
    """False: this replica has asked for the view; True: the view's NewView is installed."""


@dataclass(frozen=True, slots=True)
class StableCheckpoint:
    certificate: CheckpointCertificate


@dataclass(frozen=True, slots=True)
class Diverged:
    """This replica's state differs from a quorum's; it has stopped signing."""

    height: int
    reason: str


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Blocks were fetched from a peer and delivered; progress for logs and `/v1/status`."""

    peer: bytes
    from_height: int
    to_height: int


@dataclass(frozen=True, slots=True)
class Rejoined:
    """A replica restored without its records is past everything it could have signed;
    it votes again (the runtime may forget that it was rejoining)."""

    stable_height: int


@dataclass(frozen=True, slots=True)
class EpochStarted:
    """A new validator set orders blocks from `validators.from_height`; the runtime stores it
    (and may drop every record of the previous epoch: its votes can never count again)."""

    epoch: int
    validators: ValidatorSet
    member: bool


@dataclass(frozen=True, slots=True)
class Resumed:
    """The replica was not stepped for `stalled_ms` (its process paused or starved); its
    request timers started again rather than expire at once."""

    stalled_ms: int


Notice = ViewChanged | StableCheckpoint | Diverged | CatchUp | Rejoined | EpochStarted | Resumed


@dataclass(slots=True)
class Output:
    persist: list[PersistItem] = field(default_factory=list)
    send: list[tuple[ReplicaId | None, Message]] = field(default_factory=list)
    """(peer, message); peer None means every other replica."""
    deliver: list[CommittedBlock] = field(default_factory=list)
    fetch: list[Fetch] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def broadcast(self, message: Message) -> None:
        self.send.append((None, message))
