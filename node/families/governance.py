"""Governance family execution: proposals, approvals, and changes applied at their height."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, Final

from ledger.encoding import decode, encode
from ledger.families.fees import SCHEDULE_KEY, FeeEntry, Schedule
from ledger.families.governance import (
    APPROVE,
    FAMILY,
    INSTITUTIONS_KEY,
    PROPOSALS_KEY,
    PROPOSE,
    Approve,
    Change,
    ChangeKind,
    Members,
    OpenProposals,
    Proposal,
    ProposalState,
    Propose,
    proposal_key,
)
from ledger.families.identity import Identity, Role, identity_key
from ledger.quorum import quorum_size
from node.families.base import Context, Handler, Outcome, Refused, TableFamily

EFFECTIVE_DELAY_MIN: Final = 5
"""Heights between a proposal and its effect, at the least (membership needs more)."""
FEE_MAX: Final = 10**12


def _members(ctx: Context) -> Members:
    members = ctx.get_model(Members, INSTITUTIONS_KEY)
    assert members is not None, "the genesis writes the members at height 0"
    return members


def _membership_pending(ctx: Context) -> bool:
    open_ids = ctx.get_model(OpenProposals, PROPOSALS_KEY) or OpenProposals(())
    for proposal_id in open_ids.ids:
        proposal = ctx.get_model(Proposal, proposal_key(proposal_id))
        if proposal is not None and proposal.change.kind is not ChangeKind.SET_FEE:
            return True
    return False


def _check_change(change: Change, members: Members) -> None:
    names = {m.name for m in members.members}
    match change.kind:
        case ChangeKind.ADD_INSTITUTION:
            if change.add is None:
                raise Refused("bad_payload", "an add-institution change needs the institution")
            member = change.add.member
            if member.name in names:
                raise Refused("bad_payload", f"{member.name} is already a member")
            keys = {m.node_key for m in members.members} | {m.admin_key for m in members.members}
            if (
                member.node_key in keys
                or member.admin_key in keys
                or member.node_key == member.admin_key
            ):
                raise Refused("bad_payload", "the new institution's keys must be new and distinct")
            if member.role not in ("notary", "enterprise", "observer"):
                raise Refused("bad_payload", f"unknown role {member.role!r}")
        case ChangeKind.REMOVE_INSTITUTION:
            if change.remove is None or change.remove.name not in names:
                raise Refused("bad_payload", "remove names no member")
            if len(names) <= 1:
                raise Refused("bad_payload", "the last institution cannot be removed")
        case ChangeKind.SET_FEE:
            if change.fee is None or not 0 <= change.fee.amount <= FEE_MAX:
                raise Refused("bad_payload", f"a fee is between 0 and {FEE_MAX}")


class GovernanceFamily(TableFamily):
    name = FAMILY
    membership_delay = EFFECTIVE_DELAY_MIN

    def __init__(
        self, membership_delay: int = EFFECTIVE_DELAY_MIN, approval_margin: int = 1
    ) -> None:
        # A validator-set change must be approved at least a consensus window before its
        # height, so that every replica knows of it before any vote could reach past it.
        self.membership_delay = max(membership_delay, EFFECTIVE_DELAY_MIN, approval_margin + 1)
        self.approval_margin = approval_margin

    def propose(self, ctx: Context) -> Outcome:
        admin = ctx.sender_identity()
        payload = ctx.payload(Propose)
        members = _members(ctx)
        _check_change(payload.change, members)
        if payload.change.kind is not ChangeKind.SET_FEE and _membership_pending(ctx):
            raise Refused(
                "membership_change_pending",
                "another change of the consortium is pending; one at a time",
            )
        delay = (
            EFFECTIVE_DELAY_MIN
            if payload.change.kind is ChangeKind.SET_FEE
            else self.membership_delay
        )
        if payload.effective_height < ctx.height + delay:
            raise Refused(
                "too_soon",
                f"the change may take effect at height {ctx.height + delay} at the earliest",
            )
        state = ProposalState.OPEN
        if quorum_size(len(members.members)) <= 1:
            state = ProposalState.APPROVED
        proposal = Proposal(
            ctx.tx_id,
            payload.change,
            payload.effective_height,
            payload.description,
            admin.institution,
            (admin.institution,),
            state,
            None,
        )
        ctx.put_model(proposal_key(ctx.tx_id), proposal)
        open_ids = ctx.get_model(OpenProposals, PROPOSALS_KEY) or OpenProposals(())
        ctx.put_model(PROPOSALS_KEY, OpenProposals((*open_ids.ids, ctx.tx_id)))
        return Outcome(ctx.tx_id)

    def approve(self, ctx: Context) -> Outcome:
        admin = ctx.sender_identity()
        payload = ctx.payload(Approve)
        proposal = ctx.get_model(Proposal, proposal_key(payload.proposal_id))
        if proposal is None:
            raise Refused("unknown_proposal", "no proposal with this id")
        if proposal.state is not ProposalState.OPEN:
            raise Refused("wrong_state", f"the proposal is {proposal.state.name.lower()}")
        margin = 0 if proposal.change.kind is ChangeKind.SET_FEE else self.approval_margin
        if ctx.height + margin >= proposal.effective_height:
            raise Refused(
                "too_late",
                f"approvals must come before height {proposal.effective_height - margin}",
            )
        if admin.institution in proposal.approvals:
            raise Refused("already_approved", f"{admin.institution} already approved it")
        approvals = (*proposal.approvals, admin.institution)
        state = ProposalState.OPEN
        if len(approvals) >= quorum_size(len(_members(ctx).members)):
            state = ProposalState.APPROVED
        ctx.put_model(
            proposal_key(proposal.id),
            dataclasses.replace(
                proposal,
                approvals=approvals,
                state=state,
                decided_height=ctx.height if state is ProposalState.APPROVED else None,
            ),
        )
        return Outcome()

    roles: ClassVar[dict[str, tuple[Role, ...]]] = {PROPOSE: (Role.ADMIN,), APPROVE: (Role.ADMIN,)}

    def handlers(self) -> dict[str, Handler]:
        return {PROPOSE: self.propose, APPROVE: self.approve}


def apply_due_changes(
    height: int, read: Callable[[bytes], bytes | None], write: Callable[[bytes, bytes], None]
) -> Members | None:
    """At the start of block `height`: apply approved changes due now, expire unapproved ones.

    Returns the new membership when it changed (the validator set follows it).
    """
    data = read(PROPOSALS_KEY)
    if data is None:
        return None
    open_ids = decode(OpenProposals, data).ids
    still_open: list[bytes] = []
    changed: Members | None = None
    for proposal_id in open_ids:
        proposal = decode(Proposal, read(proposal_key(proposal_id)) or b"")
        if proposal.effective_height > height:
            still_open.append(proposal_id)
            continue
        if proposal.state is ProposalState.APPROVED:
            result = _apply_change(proposal.change, height, read, write)
            changed = result or changed
            final = ProposalState.APPLIED
        else:
            final = ProposalState.EXPIRED
        write(
            proposal_key(proposal_id),
            encode(dataclasses.replace(proposal, state=final, decided_height=height)),
        )
    if len(still_open) != len(open_ids):
        write(PROPOSALS_KEY, encode(OpenProposals(tuple(still_open))))
    return changed


def _apply_change(
    change: Change,
    height: int,
    read: Callable[[bytes], bytes | None],
    write: Callable[[bytes, bytes], None],
) -> Members | None:
    if change.kind is ChangeKind.SET_FEE and change.fee is not None:
        data = read(SCHEDULE_KEY)
        schedule = Schedule(()) if data is None else decode(Schedule, data)
        entries = [e for e in schedule.entries if e.operation != change.fee.operation]
        entries.append(FeeEntry(change.fee.operation, change.fee.amount))
        write(SCHEDULE_KEY, encode(Schedule(tuple(sorted(entries, key=lambda e: e.operation)))))
        return None
    members = decode(Members, read(INSTITUTIONS_KEY) or b"")
    updated = apply_membership_change(members, change, height)
    if change.kind is ChangeKind.ADD_INSTITUTION and change.add is not None:
        member = change.add.member
        admin = Identity(
            member.admin_key, member.name, Role.ADMIN, f"{member.name} admin", 3, height, None, None
        )
        write(identity_key(member.admin_key), encode(admin))
    elif change.kind is not ChangeKind.REMOVE_INSTITUTION:
        return None
    write(INSTITUTIONS_KEY, encode(updated))
    return updated


def apply_membership_change(members: Members, change: Change, height: int) -> Members:
    """The consortium after a membership change (the same rule execution applies)."""
    if change.kind is ChangeKind.ADD_INSTITUTION and change.add is not None:
        return Members((*members.members, change.add.member), height)
    if change.kind is ChangeKind.REMOVE_INSTITUTION and change.remove is not None:
        name = change.remove.name
        return Members(tuple(m for m in members.members if m.name != name), height)
    return members
