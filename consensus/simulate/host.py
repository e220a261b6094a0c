"""A simulated machine: one replica, its disk, its executor, and what it may do wrong.

The disk holds exactly what a real node keeps durably: the write-ahead
records, the executed blocks (each stored with the state it leads to, so a
block delivered and still queued for a slow executor is lost in a crash), the
stable certificates and the executed state. A crash discards the replica
object (its memory); a restart builds a new one from the disk. A crash
"mid-step" keeps only a prefix of the records the step wanted persisted and
none of what it wanted to send or execute, which is what a power cut between
a write and its fsync does.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from consensus.events import CommittedBlock, EpochScheduled, Executed, PersistItem, Restored
from consensus.fetching import select_fetch_answer
from consensus.recovery import compact
from consensus.replica import GENESIS_HASH, Replica
from ledger.block import tx_leaf
from ledger.checkpoint import CheckpointCertificate
from ledger.merkle import MerkleLog
from ledger.validators import ValidatorSet


class Behaviour(Enum):
    HONEST = "honest"
    TWIN = "twin"
    """Two copies of one replica (same key) in different partitions."""
    EQUIVOCATE = "equivocate"
    """As primary, sends different batches for one sequence number to two halves."""
    FORGE = "forge"
    """Injects forged, replayed, tampered and out-of-window messages, serves tampered
    blocks, and announces heights no one has."""
    WRONG_CHECKPOINT = "wrong_checkpoint"
    """Signs checkpoints with a wrong state root."""
    SILENT = "silent"
    """Runs but sends nothing."""


class AppState:
    """The simulated application: a hash chain over executed transaction ids.

    Execution is deterministic and skips a transaction whose id it has executed
    before, as the real executor does; `duplicates_skipped` counts those.
    """

    __slots__ = ("applied", "duplicates_skipped", "executed_height", "log", "state_root")

    def __init__(self) -> None:
        self.state_root = bytes(32)
        self.applied: set[bytes] = set()
        self.log = MerkleLog()
        self.executed_height = 0
        self.duplicates_skipped = 0

    def execute(self, committed: CommittedBlock) -> Executed:
        block = committed.block
        for tx in block.transactions:
            self.log.append(tx_leaf(tx))
            tx_id = tx.id
            if tx_id in self.applied:
                self.duplicates_skipped += 1
                continue
            self.applied.add(tx_id)
            self.state_root = hashlib.sha256(self.state_root + tx_id).digest()
        self.executed_height = block.header.height
        return Executed(block.header.height, self.state_root, self.log.size, self.log.root())


@dataclass(slots=True)
class Disk:
    records: list[PersistItem] = field(default_factory=list)
    blocks: dict[int, CommittedBlock] = field(default_factory=dict)
    certificates: dict[int, CheckpointCertificate] = field(default_factory=dict)
    app: AppState = field(default_factory=AppState)
    rejoining: bool = False
    """The records were lost (a restored backup): the replica restarts rejoining."""
    epoch: int = 0
    validators: ValidatorSet | None = None
    scheduled: EpochScheduled | None = None
    epoch_ends: list[int] = field(default_factory=list)

    def start_epoch(self, epoch: int, validators: ValidatorSet) -> None:
        """The previous validator set's records can never count again: keep certificates."""
        self.epoch, self.validators, self.scheduled = epoch, validators, None
        self.epoch_ends.append(validators.from_height - 1)
        self.records = [r for r in self.records if isinstance(r, CheckpointCertificate)]

    def restored(self) -> Restored:
        height = self.app.executed_height
        if height == 0:
            last_hash, last_time = GENESIS_HASH, 0
        else:
            header = self.blocks[height].block.header
            last_hash, last_time = self.blocks[height].block.hash, header.time_ms
        self.records = compact(self.records)
        return Restored(
            height,
            last_hash,
            last_time,
            tuple(self.records),
            self.rejoining,
            self.epoch,
            self.validators,
            self.scheduled,
        )

    def serve_fetch(
        self, from_height: int, chunk_max: int, until_height: int | None = None
    ) -> tuple[CheckpointCertificate | None, tuple[CommittedBlock, ...]] | None:
        """Consecutive provable blocks from `from_height` (the node serves by the same rule)."""
        ends = [e for e in self.epoch_ends if e >= from_height]
        if until_height is not None:
            ends.append(until_height)
        return select_fetch_answer(self, from_height, chunk_max, min(ends, default=None))

    def block(self, height: int) -> CommittedBlock | None:
        return self.blocks.get(height)

    def latest_certificate_between(self, low: int, high: int) -> CheckpointCertificate | None:
        for height in range(high, low - 1, -1):
            if height in self.certificates:
                return self.certificates[height]
        return None

    def first_certificate_from(self, height: int) -> CheckpointCertificate | None:
        later = [h for h in self.certificates if h >= height]
        return self.certificates[min(later)] if later else None


@dataclass(slots=True)
class Host:
    index: int
    replica_id: int
    behaviour: Behaviour
    disk: Disk = field(default_factory=Disk)
    replica: Replica | None = None
    skew_ms: int = 0
    crash_mid_step: bool = False
    tick_at: int = -1
    """Global time of the earliest Tick scheduled for this host (-1: none)."""
    heard: list[object] = field(default_factory=list)
    """Recent messages from others (a forger replays and tampers with them)."""
    restarts: int = 0
    execution_delay_ms: int = 0
    """How long this host's executor takes per delivered block (0: within the step that
    delivered it). A node executes on a thread of its own, so consensus may run ahead."""
    to_execute: deque[CommittedBlock] = field(default_factory=deque)
    """Delivered blocks waiting for the executor, in order (memory: a crash loses them)."""
    executor_free_ms: int = 0
    """When the executor finishes the last block queued."""

    @property
    def up(self) -> bool:
        return self.replica is not None

    @property
    def honest(self) -> bool:
        return self.behaviour is Behaviour.HONEST
