"""The new primary's choice of batches (PBFT section 4.4, "new-view").

Rule: from 2f + 1 valid ViewChange messages, min-s is the latest stable
checkpoint among them and max-s the highest prepared sequence number; every
sequence number in between gets the batch of the prepared certificate with
the highest view (a batch that might have committed anywhere is prepared in
at least one of any 2f + 1 replicas, so it is carried over), or a null batch
when none prepared it. Backups recompute this from the same messages and
accept the NewView only if it matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.messages import Batch, PreparedCertificate, ViewChange, null_batch
from consensus.types import SeqNo, View
from ledger.checkpoint import CheckpointCertificate

VIEW_CHANGES_KEPT = 16
"""Own ViewChanges kept for views not yet installed (re-sent to peers that lack them)."""


@dataclass(frozen=True, slots=True)
class NewViewPlan:
    stable: CheckpointCertificate | None
    """The certificate of min-s (None: min-s is the epoch's base)."""
    batches: tuple[Batch, ...]
    """The batches for min-s + 1 ... max-s, in order."""
    min_s: int


def plan_new_view(
    chain_id: str,
    view: View,
    primary_key: bytes,
    view_changes: Sequence[ViewChange],
    base: int = 0,
) -> NewViewPlan:
    """`base`: the last height of earlier validator sets (min-s is never below it)."""
    stable: CheckpointCertificate | None = None
    for message in view_changes:
        if message.stable is not None and (
            stable is None or message.stable.checkpoint.height > stable.checkpoint.height
        ):
            stable = message.stable
    min_s = base if stable is None else max(base, stable.checkpoint.height)
    highest: dict[int, PreparedCertificate] = {}
    for message in view_changes:
        for certificate in message.prepared:
            seq = certificate.pre_prepare.seq
            if seq <= min_s:
                continue
            known = highest.get(seq)
            if known is None or certificate.pre_prepare.view > known.pre_prepare.view:
                highest[seq] = certificate
    max_s = max(highest, default=min_s)
    batches = tuple(
        highest[seq].batch
        if seq in highest
        else null_batch(chain_id, SeqNo(seq), view, primary_key)
        for seq in range(min_s + 1, max_s + 1)
    )
    return NewViewPlan(stable, batches, min_s)
