"""A replica's configuration: who is in the consortium and the protocol's parameters.

Times are abstract milliseconds of the clock the runtime feeds in; the
defaults suit a LAN or WAN consortium of a handful of institutions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.types import ReplicaId
from ledger.validators import ValidatorSet


@dataclass(frozen=True, slots=True)
class Parameters:
    batch_size_max: int = 2048
    """Transactions in one batch (one block)."""
    batch_bytes_max: int = 4 * 1024 * 1024
    """Encoded transaction bytes in one batch."""
    window_size: int = 64
    """PBFT's log size L: sequence numbers accepted are h < n <= h + L (h: stable checkpoint)."""
    in_flight_max: int = 4
    """Batches the primary proposes beyond the last committed one before waiting."""
    unexecuted_max: int = 8
    """Blocks the primary proposes beyond the last one it has executed. Commits are
    announced at execution, so consensus running further ahead of a slow executor (a
    large database, a busy disk) would only queue committed blocks in memory."""
    pipelined_batch_min: int = 256
    """While a batch is in flight, the next is proposed only once this many requests (or a
    full batch) wait; light load thus makes one small block at a time, not many tiny ones,
    and heavy load fills the pipeline with large blocks."""
    checkpoint_interval: int = 1
    """A checkpoint is signed after every block whose height is a multiple of this."""
    view_change_timeout_ms: int = 2_000
    """Base wait for a new view; it doubles with each failed view, up to the maximum."""
    view_change_timeout_max_ms: int = 32_000
    request_timeout_ms: int = 3_000
    """A request pending this long without being ordered, and without any block delivered
    meanwhile, makes a replica suspect the primary (and share the request with all)."""
    suspect_in_touch_only: bool = True
    """A backup suspects the primary only while it hears from enough peers to make a
    quorum with them (their Status within two status intervals). One cut off would
    otherwise ask alone for a view no one else wants, and stay outside consensus until
    the next real view change; it waits another timeout instead."""
    request_wait_max_ms: int = 30_000
    """However busy the primary, a request pending this long makes a replica suspect it
    (a primary that orders others' requests but censors one is replaced too)."""
    resend_interval_ms: int = 500
    """Unfinished protocol steps re-send this replica's own messages this often (lossy links)."""
    status_interval_ms: int = 1_000
    """How often a replica announces its view and heights (finds laggards, heals views)."""
    clock_skew_max_ms: int = 5_000
    """A block time is prepared only within this bound of the replica's own clock."""
    tx_lifetime_max_ms: int = 120_000
    """A transaction's expiry may be at most this far past the block time that includes it."""
    fetch_timeout_ms: int = 2_000
    """A block fetch from a peer that has not answered by then is abandoned."""
    pending_requests_max: int = 100_000
    """Requests held while waiting to be ordered; beyond this new ones are refused."""

    def __post_init__(self) -> None:
        for name in ("batch_size_max", "window_size", "in_flight_max", "unexecuted_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (a primary would never propose)")


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    chain_id: str
    validators: ValidatorSet
    """The genesis validator set (later sets come from `EpochScheduled` events)."""
    replica_id: ReplicaId | None
    """This replica's index in that set; None for a node that is not (yet) a validator."""
    parameters: Parameters = field(default_factory=Parameters)

    def __post_init__(self) -> None:
        if self.replica_id is not None and not 0 <= self.replica_id < self.validators.n:
            raise ValueError(f"replica {self.replica_id} is not in a set of {self.validators.n}")
