"""Vault family execution (see `ledger.families.vault` for the workflow).

Fees follow the fees family's rules: balances never go negative; a held fee
is in the payer's `held` until it is paid to the storing institutions'
revenue accounts or refunded. A fee split among institutions gives each the
same share and the first ones in the entry's order one unit more of any
remainder, so every node computes the same split.

Storage is paid by size and time: `store` and `renew` each pay
`STORE_FEE` x MiB x months to every storing institution, and move the entry's
`paid_until_ms`; `authorize_download` is refused with `storage_lapsed` once the
block time is past it. Nothing here ever erases content for a lapse.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Final

from ledger.encoding import encode
from ledger.families.evidence import Evidence, evidence_key
from ledger.families.fees import SCHEDULE_KEY, Account, Schedule, account_key
from ledger.families.fees import institution_account_key as revenue_key
from ledger.families.governance import INSTITUTIONS_KEY, Members
from ledger.families.identity import Identity, Role, identity_key
from ledger.families.vault import (
    ANSWER_REQUEST,
    AUTHORIZE_DOWNLOAD,
    CHUNK_BYTES_MAX,
    CHUNK_BYTES_MIN,
    CHUNKS_MAX,
    DELETE,
    DOWNLOAD_FEE,
    DOWNLOAD_WINDOW_MS,
    FAMILY,
    GRANT,
    GRANTEES_MAX,
    MONTH_MS,
    MONTHS_MAX,
    MONTHS_MIN,
    OPEN_REQUESTS_MAX,
    RENEW,
    REQUEST_ACCESS,
    REVOKE_GRANT,
    SET_ENCRYPTION_KEY,
    STORE,
    STORE_FEE,
    AccessRequest,
    AnswerRequest,
    AuthorizeDownload,
    Delete,
    DownloadAuthorization,
    EncryptionKey,
    Entry,
    Event,
    Grant,
    GrantRecord,
    Renew,
    Renewal,
    RequestAccess,
    RequestState,
    RevokeGrant,
    SetEncryptionKey,
    Step,
    Store,
    WrappedKey,
    chunk_count_for,
    download_key,
    encryption_key_key,
    entry_key,
    grant_key,
    history_key,
    request_key,
    storage_fee_per_institution,
)
from ledger.quorum import weak_quorum_size
from node.families.base import Context, Handler, Outcome, Refused, TableFamily

ANYONE: Final = (Role.ADMIN, Role.APPLICANT, Role.OFFICER, Role.AUDITOR)
FEE_MAX: Final = 2**62


# ---------------------------------------------------------------- helpers


def _short(key: bytes) -> str:
    return key.hex()[:16]


def _entry(ctx: Context, evidence_id: bytes) -> Entry:
    entry = ctx.get_model(Entry, entry_key(evidence_id))
    if entry is None:
        raise Refused("unknown_vault_entry", "no vault entry for this evidence")
    return entry


def _live_entry(ctx: Context, evidence_id: bytes) -> Entry:
    entry = _entry(ctx, evidence_id)
    if entry.deleted:
        raise Refused(
            "deleted",
            f"the content was erased at height {entry.deleted_height}: {entry.deleted_reason}",
        )
    return entry


def _owned_entry(ctx: Context, evidence_id: bytes) -> Entry:
    entry = _live_entry(ctx, evidence_id)
    if entry.owner != ctx.sender:
        raise Refused("not_owner", "only the owner of the content may do this")
    return entry


def _encryption_key(ctx: Context, identity: bytes) -> bytes:
    record = ctx.get_model(EncryptionKey, encryption_key_key(identity))
    if record is None:
        raise Refused(
            "no_encryption_key", f"identity {_short(identity)} has published no encryption key"
        )
    return record.key


def _schedule_fee(ctx: Context, operation: str) -> int:
    schedule = ctx.get_model(Schedule, SCHEDULE_KEY) or Schedule(())
    return schedule.fee(operation)


def _account(ctx: Context, owner: bytes) -> Account:
    return ctx.get_model(Account, account_key(owner)) or Account(0, 0)


def _charge(ctx: Context, payer: bytes, amount: int, *, hold: bool = False) -> None:
    """Take `amount` from the payer's balance (into `held` when `hold`); never below zero."""
    account = _account(ctx, payer)
    if account.balance < amount:
        raise Refused(
            "insufficient_balance", f"the fee is {amount} and the balance is {account.balance}"
        )
    held = account.held + amount if hold else account.held
    ctx.put_model(account_key(payer), Account(account.balance - amount, held))


def _release(ctx: Context, payer: bytes, amount: int, *, refund: bool) -> None:
    """Take a held fee out of `held`: back to the balance (`refund`), or for paying it out."""
    account = _account(ctx, payer)
    assert account.held >= amount, "a held fee is always in the payer's held balance"
    balance = account.balance + amount if refund else account.balance
    ctx.put_model(account_key(payer), Account(balance, account.held - amount))


def _pay(ctx: Context, institutions: tuple[str, ...], amount: int) -> str:
    """Split `amount` among the institutions' revenue accounts; a description of the split."""
    share, remainder = divmod(amount, len(institutions))
    parts = []
    for position, name in enumerate(institutions):
        paid = share + (1 if position < remainder else 0)
        revenue = ctx.get_model(Account, revenue_key(name)) or Account(0, 0)
        ctx.put_model(revenue_key(name), Account(revenue.balance + paid, revenue.held))
        parts.append(f"{paid} to {name}")
    return f"{amount}: " + ", ".join(parts)


def _append(ctx: Context, entry: Entry, *events: tuple[Step, str]) -> Entry:
    """Write the events to the entry's history; the entry with its new event count."""
    index = entry.events
    for step, detail in events:
        event = Event(step, ctx.height, ctx.time_ms, ctx.sender, ctx.tx_id, detail)
        ctx.put_model(history_key(entry.evidence_id, index), event)
        index += 1
    return dataclasses.replace(entry, events=index)


def _save(ctx: Context, entry: Entry) -> None:
    ctx.put_model(entry_key(entry.evidence_id), entry)


def _check_months(months: int) -> None:
    if not MONTHS_MIN <= months <= MONTHS_MAX:
        raise Refused(
            "bad_payload",
            f"storage is paid for {MONTHS_MIN} to {MONTHS_MAX} months at a time, not {months}",
        )


def _pay_storage(
    ctx: Context, plaintext_size: int, institutions: tuple[str, ...], months: int
) -> tuple[int, str]:
    """Charge the sender `months` of storage on every institution; (the total, the split)."""
    fee = _schedule_fee(ctx, STORE_FEE)
    total = storage_fee_per_institution(fee, plaintext_size, months) * len(institutions)
    if total > FEE_MAX:
        raise Refused("bad_payload", "the storage fee is out of range")
    _charge(ctx, ctx.sender, total)
    return total, _pay(ctx, institutions, total) if total else "0"


def _check_expiry(ctx: Context, expires_height: int | None, expires_ms: int | None) -> None:
    if expires_height is not None and expires_height <= ctx.height:
        raise Refused("bad_payload", f"the expiry height must be above {ctx.height}")
    if expires_ms is not None and expires_ms <= ctx.time_ms:
        raise Refused("bad_payload", "the expiry time has already passed")


def _expiry_text(expires_height: int | None, expires_ms: int | None) -> str:
    limits = []
    if expires_height is not None:
        limits.append(f"below height {expires_height}")
    if expires_ms is not None:
        limits.append(f"before {expires_ms} ms")
    return " and ".join(limits) or "without expiry"


# ---------------------------------------------------------------- operations


def set_encryption_key(ctx: Context) -> Outcome:
    payload = ctx.payload(SetEncryptionKey)
    if payload.key == bytes(len(payload.key)):
        raise Refused("bad_payload", "the all-zero X25519 key is not a key")
    ctx.put_model(
        encryption_key_key(ctx.sender), EncryptionKey(ctx.sender, payload.key, ctx.height)
    )
    return Outcome()


def _check_layout(payload: Store, record: Evidence) -> None:
    if record.private:
        raise Refused(
            "private_evidence",
            "private (salted) evidence cannot be checked by readers; "
            "register the content openly to store it",
        )
    if payload.plaintext_size != record.size:
        raise Refused("bad_payload", f"the evidence was registered with size {record.size}")
    if not CHUNK_BYTES_MIN <= payload.chunk_size <= CHUNK_BYTES_MAX:
        raise Refused(
            "bad_payload", f"the chunk size is between {CHUNK_BYTES_MIN} and {CHUNK_BYTES_MAX}"
        )
    expected = chunk_count_for(payload.plaintext_size, payload.chunk_size)
    if payload.chunk_count != expected or expected > CHUNKS_MAX:
        raise Refused(
            "bad_payload",
            f"{payload.plaintext_size} bytes in chunks of {payload.chunk_size} "
            f"make {expected} chunks (at most {CHUNKS_MAX})",
        )


def _check_institutions(ctx: Context, institutions: tuple[str, ...]) -> None:
    members = ctx.get_model(Members, INSTITUTIONS_KEY)
    names = set() if members is None else {m.name for m in members.members}
    unknown = [name for name in institutions if name not in names]
    if unknown:
        raise Refused("unknown_institution", f"not a member: {', '.join(unknown)}")
    if len(set(institutions)) != len(institutions):
        raise Refused("bad_payload", "an institution is named twice")
    needed = weak_quorum_size(max(1, len(names)))
    if len(institutions) < needed:
        raise Refused(
            "too_few_institutions",
            f"the content must be stored by at least {needed} institutions (f + 1)",
        )


def store(ctx: Context) -> Outcome:
    payload = ctx.payload(Store)
    record = ctx.get_model(Evidence, evidence_key(payload.evidence_id))
    if record is None:
        raise Refused("unknown_evidence", "register the evidence before storing its content")
    if record.owner != ctx.sender:
        raise Refused("not_owner", "only the evidence's owner may store its content")
    existing = ctx.get_model(Entry, entry_key(payload.evidence_id))
    if existing is not None:
        if existing.deleted:
            raise Refused(
                "deleted",
                f"the content was erased at height {existing.deleted_height}; erasure is final",
            )
        raise Refused("already_stored", f"stored at height {existing.stored_height}")
    _check_layout(payload, record)
    _check_months(payload.months)
    _check_institutions(ctx, payload.institutions)
    owner_encryption_key = _encryption_key(ctx, ctx.sender)
    total, split = _pay_storage(ctx, payload.plaintext_size, payload.institutions, payload.months)
    paid_until_ms = ctx.time_ms + payload.months * MONTH_MS
    entry = Entry(
        payload.evidence_id,
        ctx.sender,
        payload.ciphertext_hash,
        payload.chunk_size,
        payload.chunk_count,
        payload.plaintext_size,
        payload.owner_key,
        owner_encryption_key,
        payload.institutions,
        ctx.height,
        ctx.time_ms,
        ctx.tx_id,
        total,
        paid_until_ms,
        (),
        (),
        0,
        None,
        None,
        None,
        0,
    )
    entry = _append(
        ctx,
        entry,
        (
            Step.STORED,
            f"{payload.plaintext_size} bytes on {', '.join(payload.institutions)}, "
            f"paid for {payload.months} months until {paid_until_ms} ms",
        ),
        (Step.FEE_PAID, split),
    )
    _save(ctx, entry)
    return Outcome(payload.evidence_id)


def _put_grant(
    ctx: Context,
    entry: Entry,
    reader: bytes,
    wrapped_key: WrappedKey,
    *,
    expiry: tuple[int | None, int | None],
    request: AccessRequest | None,
) -> tuple[Entry, GrantRecord]:
    """Create or replace the reader's grant (a held fee of an earlier grant carries over)."""
    if reader == entry.owner:
        raise Refused("bad_payload", "the owner needs no grant")
    identity = ctx.get_model(Identity, identity_key(reader))
    if identity is None or not identity.active:
        raise Refused("unknown_identity", "the reader is not an enrolled, active identity")
    _check_expiry(ctx, *expiry)
    reader_key = _encryption_key(ctx, reader)
    previous = ctx.get_model(GrantRecord, grant_key(entry.evidence_id, reader))
    carried = 0 if previous is None or previous.revoked_height is not None else previous.fee_held
    grantees = entry.grantees if reader in entry.grantees else (*entry.grantees, reader)
    if len(grantees) > GRANTEES_MAX:
        raise Refused("too_many_grants", f"at most {GRANTEES_MAX} readers per entry")
    grant = GrantRecord(
        entry.evidence_id,
        reader,
        reader_key,
        wrapped_key,
        ctx.height,
        ctx.time_ms,
        expiry[0],
        expiry[1],
        None,
        None,
        None if request is None else request.id,
        carried + (0 if request is None else request.fee_held),
        0 if previous is None else previous.downloads,
    )
    ctx.put_model(grant_key(entry.evidence_id, reader), grant)
    return dataclasses.replace(entry, grantees=grantees), grant


def grant(ctx: Context) -> Outcome:
    payload = ctx.payload(Grant)
    entry = _owned_entry(ctx, payload.evidence_id)
    expiry = (payload.expires_height, payload.expires_ms)
    entry, _ = _put_grant(
        ctx, entry, payload.reader, payload.wrapped_key, expiry=expiry, request=None
    )
    detail = f"to {_short(payload.reader)} {_expiry_text(*expiry)}"
    _save(ctx, _append(ctx, entry, (Step.GRANTED, detail)))
    return Outcome()


def revoke_grant(ctx: Context) -> Outcome:
    payload = ctx.payload(RevokeGrant)
    entry = _owned_entry(ctx, payload.evidence_id)
    key = grant_key(entry.evidence_id, payload.reader)
    record = ctx.get_model(GrantRecord, key)
    if record is None:
        raise Refused("no_grant", f"{_short(payload.reader)} holds no grant for this content")
    if record.revoked_height is not None:
        raise Refused("grant_revoked", f"already revoked at height {record.revoked_height}")
    events: list[tuple[Step, str]] = [
        (Step.GRANT_REVOKED, f"from {_short(payload.reader)}: {payload.reason}")
    ]
    if record.fee_held:
        _release(ctx, payload.reader, record.fee_held, refund=True)
        events.append((Step.FEE_REFUNDED, f"{record.fee_held} to {_short(payload.reader)}"))
    ctx.put_model(
        key,
        dataclasses.replace(
            record, revoked_height=ctx.height, revoked_reason=payload.reason, fee_held=0
        ),
    )
    grantees = tuple(g for g in entry.grantees if g != payload.reader)
    _save(ctx, _append(ctx, dataclasses.replace(entry, grantees=grantees), *events))
    return Outcome()


def request_access(ctx: Context) -> Outcome:
    payload = ctx.payload(RequestAccess)
    entry = _live_entry(ctx, payload.evidence_id)
    if entry.owner == ctx.sender:
        raise Refused("bad_payload", "the owner needs no access request")
    if not payload.reason.strip():
        raise Refused("bad_payload", "an access request needs a reason")
    _encryption_key(ctx, ctx.sender)
    if len(entry.open_requests) >= OPEN_REQUESTS_MAX:
        raise Refused("too_many_requests", "the owner has too many unanswered requests")
    for open_id in entry.open_requests:
        other = ctx.get_model(AccessRequest, request_key(open_id))
        if other is not None and other.requester == ctx.sender:
            raise Refused("already_requested", f"request {open_id.hex()} is still pending")
    fee = _schedule_fee(ctx, DOWNLOAD_FEE)
    _charge(ctx, ctx.sender, fee, hold=True)
    request = AccessRequest(
        ctx.tx_id,
        entry.evidence_id,
        ctx.sender,
        payload.reason,
        RequestState.PENDING,
        fee,
        ctx.height,
        ctx.time_ms,
        None,
        None,
    )
    ctx.put_model(request_key(ctx.tx_id), request)
    entry = dataclasses.replace(entry, open_requests=(*entry.open_requests, ctx.tx_id))
    entry = _append(
        ctx,
        entry,
        (Step.ACCESS_REQUESTED, f"request {ctx.tx_id.hex()[:16]}: {payload.reason}"),
        (Step.FEE_HELD, str(fee)),
    )
    _save(ctx, entry)
    return Outcome(ctx.tx_id)


def answer_request(ctx: Context) -> Outcome:
    payload = ctx.payload(AnswerRequest)
    request = ctx.get_model(AccessRequest, request_key(payload.request_id))
    if request is None:
        raise Refused("unknown_request", "no access request with this id")
    entry = _owned_entry(ctx, request.evidence_id)
    if request.state is not RequestState.PENDING:
        raise Refused("wrong_state", f"the request is {request.state.name.lower()}")
    entry = dataclasses.replace(
        entry, open_requests=tuple(r for r in entry.open_requests if r != request.id)
    )
    label = f"request {request.id.hex()[:16]}"
    if payload.wrapped_key is None:
        if not payload.reason.strip():
            raise Refused("bad_payload", "a refusal needs a reason")
        _release(ctx, request.requester, request.fee_held, refund=True)
        state = RequestState.REFUSED
        events = [
            (Step.REQUEST_REFUSED, f"{label}: {payload.reason}"),
            (Step.FEE_REFUNDED, f"{request.fee_held} to {_short(request.requester)}"),
        ]
    else:
        expiry = (payload.expires_height, payload.expires_ms)
        entry, _ = _put_grant(
            ctx, entry, request.requester, payload.wrapped_key, expiry=expiry, request=request
        )
        state = RequestState.GRANTED
        events = [
            (
                Step.REQUEST_GRANTED,
                f"{label} to {_short(request.requester)} {_expiry_text(*expiry)}",
            )
        ]
    ctx.put_model(
        request_key(request.id),
        dataclasses.replace(
            request, state=state, answered_height=ctx.height, answer=payload.reason
        ),
    )
    _save(ctx, _append(ctx, entry, *events))
    return Outcome()


def authorize_download(ctx: Context) -> Outcome:
    payload = ctx.payload(AuthorizeDownload)
    entry = _live_entry(ctx, payload.evidence_id)
    lapse = entry.lapse_problem(ctx.time_ms)
    if lapse is not None:
        raise Refused(*lapse)
    fee = _schedule_fee(ctx, DOWNLOAD_FEE)
    if ctx.sender == entry.owner:
        _charge(ctx, ctx.sender, fee)
        paid = fee
    else:
        key = grant_key(entry.evidence_id, ctx.sender)
        record = ctx.get_model(GrantRecord, key)
        if record is None:
            raise Refused("no_grant", "the owner has not granted you access to this content")
        problem = record.problem(ctx.height, ctx.time_ms)
        if problem is not None:
            raise Refused(*problem)
        if record.fee_held:
            _release(ctx, ctx.sender, record.fee_held, refund=False)
            paid = record.fee_held
        else:
            _charge(ctx, ctx.sender, fee)
            paid = fee
        ctx.put_model(key, dataclasses.replace(record, fee_held=0, downloads=record.downloads + 1))
    split = _pay(ctx, entry.institutions, paid) if paid else "0"
    authorization = DownloadAuthorization(
        ctx.tx_id,
        entry.evidence_id,
        ctx.sender,
        ctx.height,
        ctx.time_ms,
        ctx.time_ms + DOWNLOAD_WINDOW_MS,
        paid,
    )
    ctx.put_model(download_key(ctx.tx_id), authorization)
    entry = dataclasses.replace(entry, downloads=entry.downloads + 1)
    entry = _append(
        ctx,
        entry,
        (Step.DOWNLOAD_AUTHORIZED, f"{_short(ctx.sender)} (authorization {ctx.tx_id.hex()[:16]})"),
        (Step.FEE_PAID, split),
    )
    _save(ctx, entry)
    return Outcome(ctx.tx_id)


def renew(ctx: Context) -> Outcome:
    """Pay for more months: the term runs on from its end, or from now if it has lapsed."""
    payload = ctx.payload(Renew)
    entry = _owned_entry(ctx, payload.evidence_id)
    _check_months(payload.months)
    total, split = _pay_storage(ctx, entry.plaintext_size, entry.institutions, payload.months)
    start_ms = max(entry.paid_until_ms, ctx.time_ms)
    paid_until_ms = start_ms + payload.months * MONTH_MS
    entry = dataclasses.replace(
        entry, paid_until_ms=paid_until_ms, storage_fee=entry.storage_fee + total
    )
    detail = f"{payload.months} months from {start_ms} ms, paid until {paid_until_ms} ms"
    _save(ctx, _append(ctx, entry, (Step.RENEWED, detail), (Step.FEE_PAID, split)))
    return Outcome(encode(Renewal(total, paid_until_ms)))


def delete(ctx: Context) -> Outcome:
    payload = ctx.payload(Delete)
    entry = _owned_entry(ctx, payload.evidence_id)
    events: list[tuple[Step, str]] = [(Step.DELETED, payload.reason or "erasure requested")]
    for request_id in entry.open_requests:
        request = ctx.get_model(AccessRequest, request_key(request_id))
        assert request is not None, "an open request is always recorded"
        _release(ctx, request.requester, request.fee_held, refund=True)
        ctx.put_model(
            request_key(request_id),
            dataclasses.replace(
                request,
                state=RequestState.CANCELLED,
                answered_height=ctx.height,
                answer="the content was erased",
            ),
        )
        events.append((Step.REQUEST_CANCELLED, f"request {request_id.hex()[:16]}"))
        events.append((Step.FEE_REFUNDED, f"{request.fee_held} to {_short(request.requester)}"))
    for reader in entry.grantees:
        key = grant_key(entry.evidence_id, reader)
        record = ctx.get_model(GrantRecord, key)
        if record is not None and record.fee_held:
            _release(ctx, reader, record.fee_held, refund=True)
            ctx.put_model(key, dataclasses.replace(record, fee_held=0))
            events.append((Step.FEE_REFUNDED, f"{record.fee_held} to {_short(reader)}"))
    erased = dataclasses.replace(
        entry,
        open_requests=(),
        deleted_height=ctx.height,
        deleted_time_ms=ctx.time_ms,
        deleted_reason=payload.reason or "erasure requested",
    )
    _save(ctx, _append(ctx, erased, *events))
    return Outcome()


class VaultFamily(TableFamily):
    name = FAMILY
    operations: ClassVar[dict[str, Handler]] = {
        SET_ENCRYPTION_KEY: set_encryption_key,
        STORE: store,
        GRANT: grant,
        REVOKE_GRANT: revoke_grant,
        REQUEST_ACCESS: request_access,
        ANSWER_REQUEST: answer_request,
        AUTHORIZE_DOWNLOAD: authorize_download,
        DELETE: delete,
        RENEW: renew,
    }
    roles: ClassVar[dict[str, tuple[Role, ...]]] = dict.fromkeys(operations, ANYONE)
