"""One sequence number's entry in the replica's log (PBFT section 4.2)."""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.messages import Batch, Commit, Prepare, PrePrepare
from consensus.types import ReplicaId


@dataclass(slots=True)
class Slot:
    """What this replica knows of one sequence number in the current view (section 4.2)."""

    pre_prepare: PrePrepare | None = None
    batch: Batch | None = None
    prepares: dict[ReplicaId, Prepare] = field(default_factory=dict)
    commits: dict[ReplicaId, Commit] = field(default_factory=dict)
    my_prepare: Prepare | None = None
    my_commit: Commit | None = None
    committed: bool = False
    proposal_sent_ms: int | None = None
    """The primary: when it last sent this slot's proposal. Re-sent only once that is a
    full resend interval ago: a proposal carries the whole batch, and a backup that is
    merely busy (not cut off) would decode every copy."""
