"""Crash recovery: rebuild a replica from its write-ahead records.

Rule: a restarted replica resumes the highest view it ever signed for, with
every vote it sent in that view, so it cannot sign a second, different
pre-prepare, prepare, commit or view change for a (view, seq) it already
signed (the "lost lock" a volatile replica would suffer). Whatever it had only
received and not persisted is simply gone: peers re-send, and checkpoint
certificates plus fetching fill any gap in its chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from consensus.events import CommitRecord, PersistItem, Restored
from consensus.messages import CheckpointVote, NewView, Prepare, Proposal, ViewChange
from consensus.types import SeqNo, View
from consensus.view_change import VIEW_CHANGES_KEPT, plan_new_view
from ledger.checkpoint import CheckpointCertificate

if TYPE_CHECKING:
    from consensus.replica import Replica


def record_seq(item: PersistItem) -> int | None:
    """The sequence number (height) a record is about; None for view-level records."""
    match item:
        case Proposal():
            return item.pre_prepare.seq
        case Prepare():
            return item.seq
        case CommitRecord():
            return item.commit.seq
        case CheckpointVote():
            return item.checkpoint.height
        case CheckpointCertificate():
            return item.checkpoint.height
        case _:
            return None


def _view_of(item: PersistItem) -> int:
    match item:
        case Proposal():
            return item.pre_prepare.view
        case Prepare():
            return item.view
        case CommitRecord():
            return item.commit.view
        case NewView():
            return item.view
        case ViewChange():
            return item.new_view
        case _:
            return 0


def compact(items: Iterable[PersistItem]) -> list[PersistItem]:
    """The records a restart still needs; the rest may be deleted.

    Keeps the latest stable certificate, the latest NewView, our ViewChanges
    for views after it, prepared certificates above the stable checkpoint, and
    the votes of the latest view above it.
    """
    items = list(items)
    certificates = [i for i in items if isinstance(i, CheckpointCertificate)]
    stable = max(certificates, key=lambda c: c.checkpoint.height, default=None)
    stable_height = 0 if stable is None else stable.checkpoint.height
    latest_view = max((_view_of(i) for i in items), default=0)
    kept: list[PersistItem] = [] if stable is None else [stable]
    new_views = [i for i in items if isinstance(i, NewView)]
    latest_new_view = max(new_views, key=_view_of, default=None)
    if latest_new_view is not None:
        kept.append(latest_new_view)
    # Our ViewChanges for views not yet installed: a peer still collecting for one of
    # them may need ours re-sent, or it can never complete that view.
    installed = 0 if latest_new_view is None else latest_new_view.view
    pending = sorted(
        (i for i in items if isinstance(i, ViewChange) and i.new_view > installed),
        key=_view_of,
    )
    kept.extend(pending[-VIEW_CHANGES_KEPT:])
    for item in items:
        seq = record_seq(item)
        if seq is None or seq <= stable_height or isinstance(item, CheckpointCertificate):
            continue
        if isinstance(item, CommitRecord | CheckpointVote) or _view_of(item) == latest_view:
            kept.append(item)
    return kept


def restore_into(replica: Replica, restored: Restored) -> None:
    if restored.validators is not None:
        replica._set_validators(restored.validators, restored.epoch)
    if restored.scheduled is not None:
        replica.epoch_end = restored.scheduled.end_height
        replica.next_validators = restored.scheduled.validators
    replica.executed = replica.last_delivered = restored.executed_height
    replica.last_block_hash = restored.last_block_hash
    replica.last_block_time_ms = restored.last_block_time_ms
    replica.next_seq = SeqNo(restored.executed_height + 1)
    records = restored.records
    certificates = [r for r in records if isinstance(r, CheckpointCertificate)]
    replica.stable = max(certificates, key=lambda c: c.checkpoint.height, default=None)
    _restore_view(replica, records)
    stable_height = replica.stable_height
    for record in records:
        if isinstance(record, CommitRecord) and record.commit.seq > stable_height:
            seq = record.commit.seq
            known = replica.prepared.get(seq)
            if known is None or known.pre_prepare.view < record.prepared.pre_prepare.view:
                replica.prepared[seq] = record.prepared
        elif isinstance(record, CheckpointVote) and record.replica == replica.id:
            height = record.checkpoint.height
            if height > stable_height:
                replica.own_checkpoints[height] = record.checkpoint
                replica.checkpoint_votes.setdefault(height, {})[replica.id] = record
    if replica.active:
        _restore_slots(replica, records)
    replica.marks["restored_from_disk"] += 1


def _restore_view(replica: Replica, records: tuple[PersistItem, ...]) -> None:
    new_views = [r for r in records if isinstance(r, NewView)]
    latest_new_view = max(new_views, key=lambda m: m.view, default=None)
    own_changes = [r for r in records if isinstance(r, ViewChange) and r.replica == replica.id]
    latest_change = max(own_changes, key=lambda m: m.new_view, default=None)
    voted_view = max(
        (_view_of(r) for r in records if isinstance(r, Proposal | Prepare | CommitRecord)),
        default=0,
    )
    active_view = max(voted_view, 0 if latest_new_view is None else latest_new_view.view)
    for change in own_changes:
        if change.new_view > active_view:
            replica.my_view_changes[change.new_view] = change
    replica.new_view_message = latest_new_view
    if latest_change is not None and latest_change.new_view > active_view:
        replica.view = latest_change.new_view
        replica.active = False
        replica.view_changes[latest_change.new_view] = {replica.id: latest_change}
        replica.marks["restored_during_view_change"] += 1
        return
    replica.view = View(active_view)
    replica.active = True


def _restore_slots(replica: Replica, records: tuple[PersistItem, ...]) -> None:
    view, stable_height = replica.view, replica.stable_height
    new_view = replica.new_view_message
    if new_view is not None and new_view.view == view:
        primary_key = replica.keys[new_view.replica]
        plan = plan_new_view(
            replica.chain_id, view, primary_key, new_view.view_changes, replica.epoch_base
        )
        for pre_prepare, batch in zip(new_view.pre_prepares, plan.batches, strict=True):
            if pre_prepare.seq > stable_height:
                slot = replica._slot(pre_prepare.seq)
                slot.pre_prepare, slot.batch = pre_prepare, batch
        replica.next_seq = SeqNo(max(replica.next_seq, plan.min_s + len(plan.batches) + 1))
    for record in records:
        seq = record_seq(record)
        if seq is None or seq <= stable_height or _view_of(record) != view:
            continue
        slot = replica._slot(SeqNo(seq))
        match record:
            case Proposal():
                slot.pre_prepare, slot.batch = record.pre_prepare, record.batch
                replica.next_seq = SeqNo(max(replica.next_seq, seq + 1))
            case Prepare():
                slot.my_prepare = record
                slot.prepares[replica.id] = record
            case CommitRecord():
                certificate = record.prepared
                slot.pre_prepare, slot.batch = certificate.pre_prepare, certificate.batch
                for prepare in certificate.prepares:
                    slot.prepares.setdefault(prepare.replica, prepare)
                slot.my_commit = record.commit
                slot.commits[replica.id] = record.commit
    for seq, slot in replica.slots.items():
        if slot.batch is not None and seq > replica.last_delivered:
            ids = [tx.id for tx in slot.batch.transactions]
            for tx_id, tx in zip(ids, slot.batch.transactions, strict=True):
                replica.pool.add(tx_id, tx, replica.now_ms)
            replica.pool.assign(ids, seq)
