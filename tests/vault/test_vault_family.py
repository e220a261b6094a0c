"""The vault family's rules, executed on a small in-memory state (no node, no network).

Block time is an input here (`Chain.time_ms`), so storage terms are tested by moving it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from ledger.encoding import decode, encode
from ledger.families import vault as v
from ledger.families.evidence import Evidence, Kind, evidence_key
from ledger.families.fees import (
    SCHEDULE_KEY,
    Account,
    FeeEntry,
    Schedule,
    account_key,
    institution_account_key,
)
from ledger.families.governance import INSTITUTIONS_KEY, Member, Members
from ledger.families.identity import Identity, Role, identity_key
from ledger.keys import PrivateKey
from ledger.tx import Transaction, TransactionBody, sign_transaction
from node.admission import AdmissionRefusal, Admitted, dry_run
from node.api import ApiError
from node.families.base import Context, Refused
from node.families.vault import VaultFamily
from node.vault import _download_check, _upload_check

STORE_PER_MIB_MONTH = 2
MONTHS = 3
"""The storage term `store_payload` pays for."""
DOWNLOAD = 5
INSTITUTIONS = ("notary-office", "enterprise-1", "enterprise-2", "enterprise-3")
SIZE = 3 * v.MIB + 1  # 4 MiB charged


def wrapped() -> v.WrappedKey:
    return v.WrappedKey(os.urandom(32), os.urandom(v.WRAPPED_KEY_BYTES))


@dataclass
class Chain:
    """A state dict and a clock; `run` executes one vault operation like the executor."""

    state: dict[bytes, bytes] = field(default_factory=dict)
    height: int = 10
    time_ms: int = 1_000_000
    family: VaultFamily = field(default_factory=VaultFamily)

    def put(self, key: bytes, value: object) -> None:
        self.state[key] = encode(value)

    def get(self, cls: type, key: bytes) -> object:
        return decode(cls, self.state[key])

    def transaction(self, sender: PrivateKey, operation: str, payload: object) -> Transaction:
        body = TransactionBody(
            "test-chain",
            sender.public_key,
            v.FAMILY,
            operation,
            encode(payload),
            os.urandom(16),
            2**40,
        )
        return sign_transaction(body, sender)

    def run(self, sender: PrivateKey, operation: str, payload: object) -> bytes:
        tx = self.transaction(sender, operation, payload)
        ctx = Context(self.state.get, tx, tx.id, self.height, self.time_ms)
        try:
            outcome = self.family.apply(ctx, operation)
        finally:
            self.height += 1
            self.time_ms += 1_000
        self.state.update(ctx.writes)  # only when the operation did not refuse
        return outcome.result or tx.id

    def refused(self, sender: PrivateKey, operation: str, payload: object) -> Refused:
        before = dict(self.state)
        with pytest.raises(Refused) as caught:
            self.run(sender, operation, payload)
        assert self.state == before, "a refused operation changes nothing"
        return caught.value

    def balance(self, key: PrivateKey) -> Account:
        data = self.state.get(account_key(key.public_key))
        return Account(0, 0) if data is None else decode(Account, data)

    def revenue(self) -> int:
        total = 0
        for name in INSTITUTIONS:
            data = self.state.get(institution_account_key(name))
            total += 0 if data is None else decode(Account, data).balance
        return total

    def entry(self, evidence_id: bytes) -> v.Entry:
        return decode(v.Entry, self.state[v.entry_key(evidence_id)])

    def history(self, evidence_id: bytes) -> list[v.Step]:
        entry = self.entry(evidence_id)
        return [
            decode(v.Event, self.state[v.history_key(evidence_id, i)]).step
            for i in range(entry.events)
        ]


@dataclass
class World:
    chain: Chain
    owner: PrivateKey
    reader: PrivateKey
    stranger: PrivateKey
    evidence_id: bytes


def enrol(chain: Chain, key: PrivateKey, balance: int, encryption: bool = True) -> None:
    chain.put(
        identity_key(key.public_key),
        Identity(key.public_key, "enterprise-3", Role.APPLICANT, "someone", 1, 0, None, None),
    )
    chain.put(account_key(key.public_key), Account(balance, 0))
    if encryption:
        chain.run(key, v.SET_ENCRYPTION_KEY, v.SetEncryptionKey(os.urandom(32)))


@pytest.fixture
def world() -> Iterator[World]:
    chain = Chain()
    members = tuple(
        Member(name, "enterprise", os.urandom(32), os.urandom(32), "127.0.0.1", 1, 2)
        for name in INSTITUTIONS
    )
    chain.put(INSTITUTIONS_KEY, Members(members, 0))
    chain.put(
        SCHEDULE_KEY,
        Schedule((FeeEntry(v.DOWNLOAD_FEE, DOWNLOAD), FeeEntry(v.STORE_FEE, STORE_PER_MIB_MONTH))),
    )
    owner, reader, stranger = (PrivateKey.generate() for _ in range(3))
    for key in (owner, reader, stranger):
        enrol(chain, key, 1_000)
    evidence_id = hashlib.sha256(b"the file").digest()
    chain.put(
        evidence_key(evidence_id),
        Evidence(evidence_id, False, Kind.VIDEO, SIZE, "f", owner.public_key, 1, 1, bytes(32)),
    )
    yield World(chain, owner, reader, stranger, evidence_id)


def store_payload(world: World, **changes: object) -> v.Store:
    fields: dict[str, object] = {
        "evidence_id": world.evidence_id,
        "ciphertext_hash": os.urandom(32),
        "chunk_size": v.MIB,
        "chunk_count": 4,
        "plaintext_size": SIZE,
        "owner_key": wrapped(),
        "institutions": INSTITUTIONS[:2],
        "months": MONTHS,
    }
    fields.update(changes)
    return v.Store(**fields)  # type: ignore[arg-type]


def stored(world: World) -> World:
    world.chain.run(world.owner, v.STORE, store_payload(world))
    return world


def grant(world: World, reader: PrivateKey, **expiry: int) -> None:
    payload = v.Grant(
        world.evidence_id,
        reader.public_key,
        wrapped(),
        expiry.get("height"),
        expiry.get("time_ms"),
    )
    world.chain.run(world.owner, v.GRANT, payload)


def download(world: World, who: PrivateKey) -> bytes:
    return world.chain.run(who, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(world.evidence_id))


def test_store_pays_each_storing_institution_per_mib_and_month(world: World) -> None:
    stored_at_ms = world.chain.time_ms
    stored(world)
    fee = STORE_PER_MIB_MONTH * 4 * MONTHS
    assert world.chain.balance(world.owner) == Account(1_000 - 2 * fee, 0)
    for name in INSTITUTIONS[:2]:
        revenue = decode(Account, world.chain.state[institution_account_key(name)])
        assert revenue.balance == fee
    entry = world.chain.entry(world.evidence_id)
    assert (entry.storage_fee, entry.chunk_count, entry.deleted) == (2 * fee, 4, False)
    assert entry.paid_until_ms == stored_at_ms + MONTHS * v.MONTH_MS
    assert world.chain.history(world.evidence_id) == [v.Step.STORED, v.Step.FEE_PAID]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"chunk_count": 3}, "bad_payload"),
        ({"plaintext_size": SIZE + 1}, "bad_payload"),
        ({"chunk_size": 100}, "bad_payload"),
        ({"institutions": INSTITUTIONS[:1]}, "too_few_institutions"),
        ({"institutions": ("enterprise-1", "enterprise-1")}, "bad_payload"),
        ({"institutions": ("enterprise-1", "elsewhere")}, "unknown_institution"),
        ({"evidence_id": bytes(32)}, "unknown_evidence"),
    ],
)
def test_store_refuses_a_bad_layout_or_too_few_replicas(
    world: World, changes: dict[str, object], code: str
) -> None:
    assert world.chain.refused(world.owner, v.STORE, store_payload(world, **changes)).code == code


def test_only_the_owner_stores_and_only_once(world: World) -> None:
    assert world.chain.refused(world.reader, v.STORE, store_payload(world)).code == "not_owner"
    stored(world)
    assert world.chain.refused(world.owner, v.STORE, store_payload(world)).code == "already_stored"


def test_a_store_the_balance_cannot_pay_is_refused(world: World) -> None:
    world.chain.put(account_key(world.owner.public_key), Account(15, 0))
    refusal = world.chain.refused(world.owner, v.STORE, store_payload(world))
    assert refusal.code == "insufficient_balance"
    assert world.chain.balance(world.owner) == Account(15, 0)


def test_a_store_needs_the_owners_encryption_key(world: World) -> None:
    del world.chain.state[v.encryption_key_key(world.owner.public_key)]
    refusal = world.chain.refused(world.owner, v.STORE, store_payload(world))
    assert refusal.code == "no_encryption_key"


def test_a_grantee_downloads_and_pays_the_storing_institutions(world: World) -> None:
    stored(world)
    grant(world, world.reader)
    revenue = world.chain.revenue()
    authorization = download(world, world.reader)
    assert world.chain.balance(world.reader) == Account(1_000 - DOWNLOAD, 0)
    assert world.chain.revenue() == revenue + DOWNLOAD
    record = decode(v.DownloadAuthorization, world.chain.state[v.download_key(authorization)])
    assert record.reader == world.reader.public_key
    assert record.fee_paid == DOWNLOAD
    assert record.valid_until_ms == record.time_ms + v.DOWNLOAD_WINDOW_MS
    first, second = (
        decode(Account, world.chain.state[institution_account_key(n)]).balance
        for n in INSTITUTIONS[:2]
    )
    storage = STORE_PER_MIB_MONTH * 4 * MONTHS
    assert (first, second) == (storage + 3, storage + 2)  # 5 split 3 + 2


def test_non_grantee_revoked_and_expired_grants_are_refused(world: World) -> None:
    stored(world)
    chain = world.chain
    assert (
        chain.refused(
            world.stranger, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(world.evidence_id)
        ).code
        == "no_grant"
    )
    grant(world, world.reader)
    chain.run(
        world.owner,
        v.REVOKE_GRANT,
        v.RevokeGrant(world.evidence_id, world.reader.public_key, "ended"),
    )
    refusal = chain.refused(
        world.reader, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(world.evidence_id)
    )
    assert refusal.code == "grant_revoked"
    grant(world, world.stranger, height=chain.height + 2)
    download(world, world.stranger)  # still below the expiry height
    refusal = chain.refused(
        world.stranger, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(world.evidence_id)
    )
    assert refusal.code == "grant_expired"
    grant(world, world.stranger, time_ms=chain.time_ms + 500)
    refusal = chain.refused(
        world.stranger, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(world.evidence_id)
    )
    assert refusal.code == "grant_expired"


def test_a_download_the_balance_cannot_pay_is_refused(world: World) -> None:
    stored(world)
    grant(world, world.reader)
    world.chain.put(account_key(world.reader.public_key), Account(DOWNLOAD - 1, 0))
    refusal = world.chain.refused(
        world.reader, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(world.evidence_id)
    )
    assert refusal.code == "insufficient_balance"


def test_only_the_owner_grants_and_only_to_readers_with_a_key(world: World) -> None:
    stored(world)
    payload = v.Grant(world.evidence_id, world.stranger.public_key, wrapped(), None, None)
    assert world.chain.refused(world.reader, v.GRANT, payload).code == "not_owner"
    newcomer = PrivateKey.generate()
    enrol(world.chain, newcomer, 10, encryption=False)
    payload = v.Grant(world.evidence_id, newcomer.public_key, wrapped(), None, None)
    assert world.chain.refused(world.owner, v.GRANT, payload).code == "no_encryption_key"
    payload = v.Grant(world.evidence_id, world.reader.public_key, wrapped(), 3, None)
    assert world.chain.refused(world.owner, v.GRANT, payload).code == "bad_payload"


def test_a_refused_request_is_refunded_and_a_granted_one_pays_the_first_download(
    world: World,
) -> None:
    stored(world)
    chain = world.chain
    request = v.RequestAccess(world.evidence_id, "court case")
    first = chain.run(world.stranger, v.REQUEST_ACCESS, request)
    assert chain.balance(world.stranger) == Account(1_000 - DOWNLOAD, DOWNLOAD)
    again = chain.refused(world.stranger, v.REQUEST_ACCESS, request)
    assert again.code == "already_requested"
    chain.run(world.owner, v.ANSWER_REQUEST, v.AnswerRequest(first, None, "no", None, None))
    assert chain.balance(world.stranger) == Account(1_000, 0)
    answered = decode(v.AccessRequest, chain.state[v.request_key(first)])
    assert (answered.state, answered.answer) == (v.RequestState.REFUSED, "no")

    second = chain.run(world.stranger, v.REQUEST_ACCESS, request)
    chain.run(world.owner, v.ANSWER_REQUEST, v.AnswerRequest(second, wrapped(), "", None, None))
    assert chain.balance(world.stranger) == Account(1_000 - DOWNLOAD, DOWNLOAD)  # still held
    revenue = chain.revenue()
    download(world, world.stranger)
    assert chain.balance(world.stranger) == Account(1_000 - DOWNLOAD, 0)  # the hold paid it
    assert chain.revenue() == revenue + DOWNLOAD
    download(world, world.stranger)
    assert chain.balance(world.stranger) == Account(1_000 - 2 * DOWNLOAD, 0)
    assert chain.history(world.evidence_id)[2:] == [
        v.Step.ACCESS_REQUESTED,
        v.Step.FEE_HELD,
        v.Step.REQUEST_REFUSED,
        v.Step.FEE_REFUNDED,
        v.Step.ACCESS_REQUESTED,
        v.Step.FEE_HELD,
        v.Step.REQUEST_GRANTED,
        v.Step.DOWNLOAD_AUTHORIZED,
        v.Step.FEE_PAID,
        v.Step.DOWNLOAD_AUTHORIZED,
        v.Step.FEE_PAID,
    ]


def test_revoking_a_grant_refunds_its_unspent_hold(world: World) -> None:
    stored(world)
    chain = world.chain
    request = chain.run(world.stranger, v.REQUEST_ACCESS, v.RequestAccess(world.evidence_id, "r"))
    chain.run(world.owner, v.ANSWER_REQUEST, v.AnswerRequest(request, wrapped(), "", None, None))
    chain.run(
        world.owner, v.REVOKE_GRANT, v.RevokeGrant(world.evidence_id, world.stranger.public_key, "")
    )
    assert chain.balance(world.stranger) == Account(1_000, 0)


def test_erasure_refunds_holds_and_refuses_everything_after(world: World) -> None:
    stored(world)
    chain = world.chain
    grant(world, world.reader)
    chain.run(world.stranger, v.REQUEST_ACCESS, v.RequestAccess(world.evidence_id, "please"))
    chain.run(world.owner, v.DELETE, v.Delete(world.evidence_id, "erasure request"))
    entry = chain.entry(world.evidence_id)
    assert entry.deleted and entry.open_requests == ()
    assert chain.balance(world.stranger) == Account(1_000, 0)
    assert evidence_key(world.evidence_id) in chain.state  # the evidence record stays
    for sender, operation, payload in (
        (world.reader, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(world.evidence_id)),
        (world.owner, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(world.evidence_id)),
        (world.owner, v.DELETE, v.Delete(world.evidence_id, "")),
        (world.stranger, v.REQUEST_ACCESS, v.RequestAccess(world.evidence_id, "x")),
        (world.owner, v.STORE, store_payload(world)),
    ):
        assert chain.refused(sender, operation, payload).code == "deleted"
    assert chain.history(world.evidence_id)[-4:] == [
        v.Step.FEE_HELD,
        v.Step.DELETED,
        v.Step.REQUEST_CANCELLED,
        v.Step.FEE_REFUNDED,
    ]


# ---------------------------------------------------------------- retention: size and time


def renew(world: World, months: int, who: PrivateKey | None = None) -> v.Renewal:
    result = world.chain.run(who or world.owner, v.RENEW, v.Renew(world.evidence_id, months))
    return decode(v.Renewal, result)


def revenues(chain: Chain) -> dict[str, int]:
    found = {}
    for name in INSTITUTIONS:
        data = chain.state.get(institution_account_key(name))
        found[name] = 0 if data is None else decode(Account, data).balance
    return found


@pytest.mark.parametrize("months", [0, -1, v.MONTHS_MAX + 1, 10**6])
def test_a_store_for_a_bad_number_of_months_is_refused(world: World, months: int) -> None:
    refusal = world.chain.refused(world.owner, v.STORE, store_payload(world, months=months))
    assert refusal.code == "bad_payload"
    assert "months" in refusal.reason and str(months) in refusal.reason


@pytest.mark.parametrize("months", [v.MONTHS_MIN, v.MONTHS_MAX])
def test_the_storage_fee_is_per_mib_per_month_on_each_institution(
    world: World, months: int
) -> None:
    chain = world.chain
    chain.put(account_key(world.owner.public_key), Account(10**6, 0))
    stored_at_ms = chain.time_ms
    chain.run(world.owner, v.STORE, store_payload(world, months=months))
    per_institution = STORE_PER_MIB_MONTH * 4 * months  # SIZE is charged as 4 MiB
    assert chain.balance(world.owner) == Account(10**6 - 2 * per_institution, 0)
    assert revenues(chain) == {
        INSTITUTIONS[0]: per_institution,
        INSTITUTIONS[1]: per_institution,
        INSTITUTIONS[2]: 0,
        INSTITUTIONS[3]: 0,
    }
    entry = chain.entry(world.evidence_id)
    assert entry.paid_until_ms == stored_at_ms + months * 30 * 24 * 3600 * 1000
    assert entry.storage_fee == 2 * per_institution


def test_renewing_pays_by_size_and_time_and_extends_the_paid_term(world: World) -> None:
    stored(world)
    chain = world.chain
    first = chain.entry(world.evidence_id)
    owner_before, revenue_before = chain.balance(world.owner), revenues(chain)
    renewal = renew(world, 5)
    per_institution = STORE_PER_MIB_MONTH * 4 * 5
    assert renewal == v.Renewal(2 * per_institution, first.paid_until_ms + 5 * v.MONTH_MS)
    assert chain.balance(world.owner) == Account(owner_before.balance - 2 * per_institution, 0)
    after = revenues(chain)
    for name in INSTITUTIONS[:2]:
        assert after[name] == revenue_before[name] + per_institution
    entry = chain.entry(world.evidence_id)
    # Not lapsed: the term runs on from its end, not from now.
    assert entry.paid_until_ms == first.paid_until_ms + 5 * v.MONTH_MS
    assert entry.storage_fee == first.storage_fee + 2 * per_institution
    assert chain.history(world.evidence_id)[-2:] == [v.Step.RENEWED, v.Step.FEE_PAID]
    renewed = decode(v.Event, chain.state[v.history_key(world.evidence_id, entry.events - 2)])
    assert renewed.actor == world.owner.public_key
    assert str(entry.paid_until_ms) in renewed.detail


def test_renewing_lapsed_storage_runs_from_now(world: World) -> None:
    stored(world)
    chain = world.chain
    lapsed_at_ms = chain.entry(world.evidence_id).paid_until_ms
    chain.time_ms = lapsed_at_ms + 7 * 24 * 3_600_000  # a week after the term ended
    renewed_at_ms = chain.time_ms
    assert renew(world, 2).paid_until_ms == renewed_at_ms + 2 * v.MONTH_MS
    assert chain.entry(world.evidence_id).paid_until_ms == renewed_at_ms + 2 * v.MONTH_MS


def test_downloads_are_refused_while_storage_has_lapsed_and_work_after_renewal(
    world: World,
) -> None:
    stored(world)
    chain = world.chain
    grant(world, world.reader)
    paid_until_ms = chain.entry(world.evidence_id).paid_until_ms
    chain.time_ms = paid_until_ms  # the last paid millisecond
    download(world, world.reader)
    chain.time_ms = paid_until_ms + 1
    for who in (world.reader, world.owner):
        before = chain.balance(who)
        refusal = chain.refused(who, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(world.evidence_id))
        assert refusal.code == "storage_lapsed"
        assert str(paid_until_ms) in refusal.reason
        assert chain.balance(who) == before

    # Grants, revocations, access requests and erasure stay possible while lapsed.
    grant(world, world.stranger)
    chain.run(
        world.owner,
        v.REVOKE_GRANT,
        v.RevokeGrant(world.evidence_id, world.stranger.public_key, "ended"),
    )
    newcomer = PrivateKey.generate()
    enrol(chain, newcomer, 100)
    chain.run(newcomer, v.REQUEST_ACCESS, v.RequestAccess(world.evidence_id, "audit"))
    assert not chain.entry(world.evidence_id).deleted  # nothing was dropped by the lapse

    renew(world, 1)
    revenue = chain.revenue()
    download(world, world.reader)
    assert chain.revenue() == revenue + DOWNLOAD
    download(world, world.owner)


def test_refused_renewals_change_nothing(world: World) -> None:
    chain = world.chain
    payload = v.Renew(world.evidence_id, 1)
    assert chain.refused(world.owner, v.RENEW, payload).code == "unknown_vault_entry"
    stored(world)
    assert chain.refused(world.reader, v.RENEW, payload).code == "not_owner"
    for months in (0, -3, v.MONTHS_MAX + 1):
        refusal = chain.refused(world.owner, v.RENEW, v.Renew(world.evidence_id, months))
        assert refusal.code == "bad_payload" and "months" in refusal.reason
    chain.put(account_key(world.owner.public_key), Account(STORE_PER_MIB_MONTH * 4 * 2 - 1, 0))
    assert chain.refused(world.owner, v.RENEW, payload).code == "insufficient_balance"
    chain.put(account_key(world.owner.public_key), Account(1_000, 0))
    chain.run(world.owner, v.DELETE, v.Delete(world.evidence_id, "erasure request"))
    assert chain.refused(world.owner, v.RENEW, payload).code == "deleted"
    assert chain.refused(world.reader, v.RENEW, payload).code == "deleted"


def test_admission_refuses_what_execution_refuses(world: World) -> None:
    """Admission dry-runs on the latest state at the node's clock: the harness's block times
    are in 1970, so its entries have long lapsed by now."""
    chain = world.chain

    def admit(sender: PrivateKey, operation: str, payload: object) -> None:
        tx = chain.transaction(sender, operation, payload)
        before = dict(chain.state)
        try:
            dry_run(Admitted(tx, tx.id), chain.family, chain.state.get, chain.height)
        finally:
            assert chain.state == before

    with pytest.raises(AdmissionRefusal) as caught:
        admit(world.owner, v.STORE, store_payload(world, months=0))
    assert caught.value.code == "bad_payload"
    stored(world)
    grant(world, world.reader)
    for who in (world.reader, world.owner):
        with pytest.raises(AdmissionRefusal) as caught:
            admit(who, v.AUTHORIZE_DOWNLOAD, v.AuthorizeDownload(world.evidence_id))
        assert caught.value.code == "storage_lapsed"
    cases: list[tuple[PrivateKey, str, object, str]] = [
        (world.reader, v.RENEW, v.Renew(world.evidence_id, 1), "not_owner"),
        (world.owner, v.RENEW, v.Renew(world.evidence_id, 0), "bad_payload"),
    ]
    for sender, operation, payload, code in cases:
        with pytest.raises(AdmissionRefusal) as caught:
            admit(sender, operation, payload)
        assert caught.value.code == code
    admit(world.owner, v.RENEW, v.Renew(world.evidence_id, 1))  # admitted


def test_a_node_refuses_to_serve_lapsed_content_until_it_is_renewed(world: World) -> None:
    """The download route's state checks (`node.vault._download_check`), at the node's clock."""
    stored(world)
    chain = world.chain
    grant(world, world.reader)
    paid_until_ms = chain.entry(world.evidence_id).paid_until_ms
    chain.time_ms = paid_until_ms - 60_000  # authorized a minute before the term ends
    authorization = download(world, world.reader)
    request = v.DownloadRequest("test-chain", authorization, world.evidence_id, 0, 0)
    signed = v.SignedDownload(request, world.reader.public_key, bytes(64))
    reader: Any = SimpleNamespace(state=chain.state.get)
    node: Any = SimpleNamespace(config=SimpleNamespace(institution=INSTITUTIONS[0]))

    def check(now_ms: int) -> v.Entry:
        return _download_check(reader, node, signed, chain.height, now_ms)

    assert check(paid_until_ms).evidence_id == world.evidence_id
    with pytest.raises(ApiError) as caught:
        check(paid_until_ms + 1)
    assert (caught.value.status, caught.value.code) == (403, "storage_lapsed")
    renew(world, 1)
    assert check(paid_until_ms + 1).paid_until_ms == paid_until_ms + v.MONTH_MS


def test_a_node_takes_no_upload_for_lapsed_storage_until_it_is_renewed(world: World) -> None:
    """The upload route's state checks (`node.vault._upload_check`), at the node's clock."""
    stored(world)
    chain = world.chain
    entry = chain.entry(world.evidence_id)
    node: Any = SimpleNamespace(config=SimpleNamespace(institution=INSTITUTIONS[0]))
    owner = world.owner.public_key

    _upload_check(node, entry, owner, entry.paid_until_ms)  # the last paid millisecond
    with pytest.raises(ApiError) as caught:
        _upload_check(node, entry, owner, entry.paid_until_ms + 1)
    assert (caught.value.status, caught.value.code) == (403, "storage_lapsed")
    with pytest.raises(ApiError) as caught:
        _upload_check(node, entry, world.reader.public_key, entry.paid_until_ms)
    assert (caught.value.status, caught.value.code) == (403, "not_owner")
    renew(world, 1)
    renewed = chain.entry(world.evidence_id)
    _upload_check(node, renewed, owner, entry.paid_until_ms + 1)
