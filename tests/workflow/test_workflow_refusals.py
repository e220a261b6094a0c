"""Every forbidden step is refused with a stable code and a reason, and changes nothing.

Admission refuses, before anything is ordered, what execution would refuse on
the latest state; so after each refusal every node's height and every record
the step touches (application, certificate, evidence, accounts, the notary
office's revenue) are what they were before.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from client.errors import ClientError, NotAuthorized, Refused, Rejected
from client.sync import Client
from ledger.encoding import decode
from ledger.families.evidence import Item, Kind
from ledger.families.fees import Account, institution_account_key
from ledger.families.identity import Role
from ledger.families.notarization import FAMILY, ISSUE, Decide, Purpose
from ledger.keys import PrivateKey

SETTLE_S = 1.0
PROOF_WAIT_S = 30.0
"""A moment for the nodes to order anything that slipped through (nothing should)."""


@dataclass
class World:
    evidence_id: bytes
    pending_id: str
    issued_id: str
    certificate_id: str


def new_item(kind: Kind = Kind.DOCUMENT) -> Item:
    content = os.urandom(48)
    return Item(hashlib.sha256(content).digest(), False, kind, len(content), "doc.txt")


def read(reader: Client, kind: str, record_id: str) -> dict[str, Any] | None:
    try:
        return reader.record(kind, record_id)
    except Refused as exc:
        assert exc.code.startswith("unknown_"), exc
        return None


def settled_heights(consortium, wait) -> dict[str, int]:
    """Every node's height, once they all agree on it."""
    heights: dict[str, int] = {}

    def agreed() -> bool:
        heights.update(consortium.heights())
        return len(set(heights.values())) == 1

    wait(agreed, "the nodes to agree on one height", 30)
    return dict(heights)


def proven_revenue(reader: Client, at_least: int) -> Account | None:
    """The notary office's revenue account, proven at a checkpoint covering `at_least`."""
    key = institution_account_key("notary-office")
    deadline = time.monotonic() + PROOF_WAIT_S
    while True:
        _, verified = reader.proof("state", key.hex())
        if verified.checkpoint.height >= at_least:
            value = verified.state[key]
            return None if value is None else decode(Account, value)
        assert time.monotonic() < deadline, f"no checkpoint covering height {at_least} in time"
        time.sleep(0.2)


def snapshot(consortium, wait, reader: Client, watched: dict[str, list[str]]) -> dict[str, Any]:
    """The heights of all nodes and each watched record (by API kind), plus the revenue."""
    heights = settled_heights(consortium, wait)
    return {
        "heights": heights,
        "revenue": proven_revenue(reader, max(heights.values())),
        **{
            f"{kind}/{record_id}": read(reader, kind, record_id)
            for kind, ids in watched.items()
            for record_id in ids
        },
    }


def assert_refused(
    consortium,
    wait,
    reader: Client,
    step: Callable[[], object],
    *,
    code: str,
    watched: dict[str, list[str]],
    authorization: bool | None,
) -> Refused:
    """`step` raises `Refused` with `code` (a `NotAuthorized` when `authorization`; either
    when None), and every node's height and every watched record stay as they were."""
    before = snapshot(consortium, wait, reader, watched)
    with pytest.raises(Refused) as refused:
        step()
    assert refused.value.code == code, refused.value
    assert refused.value.reason.strip(), "a refusal carries a reason"
    if authorization is not None:
        assert isinstance(refused.value, NotAuthorized) is authorization, type(refused.value)
    time.sleep(SETTLE_S)
    after = snapshot(consortium, wait, reader, watched)
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"a refused step changed the chain: {changed}"
    return refused.value


@pytest.fixture(scope="module")
def world(consortium) -> World:
    """Evidence of the development applicant, one pending and one issued application."""
    with (
        consortium.sync_client(consortium.applicant) as applicant,
        consortium.sync_client(consortium.officer) as officer,
    ):
        item = new_item()
        applicant.register_evidence([item])
        pending = applicant.apply([item.digest], Purpose.CONTRACT, "pending")
        issued = applicant.apply([item.digest], Purpose.CONTRACT, "issued")
        officer.observe(applicant.seen_height)  # act on it only where it is executed
        certificate_id = officer.issue(issued)
    return World(item.digest, pending, issued, certificate_id)


def accounts(*keys: PrivateKey) -> list[str]:
    return [k.public_key.hex() for k in keys]


@pytest.mark.cluster
def test_wrong_role_an_applicant_cannot_issue_and_an_officer_cannot_apply(
    consortium, wait, world: World
) -> None:
    applicant_key, officer_key = consortium.applicant, consortium.officer
    watched = {
        "applications": [world.pending_id],
        "accounts": accounts(applicant_key),
    }
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(applicant_key) as applicant,
        consortium.sync_client(officer_key) as officer,
    ):
        refusal = assert_refused(
            consortium,
            wait,
            reader,
            lambda: applicant.issue(world.pending_id),
            code="wrong_role",
            watched=watched,
            authorization=True,
        )
        assert refusal.status == 403
        assert "officer" in refusal.reason
        assert_refused(
            consortium,
            wait,
            reader,
            lambda: applicant.reject(world.pending_id, "no"),
            code="wrong_role",
            watched=watched,
            authorization=True,
        )
        assert_refused(
            consortium,
            wait,
            reader,
            lambda: officer.apply([world.evidence_id], Purpose.CONTRACT, "not mine"),
            code="wrong_role",
            watched={**watched, "accounts": accounts(applicant_key, officer_key)},
            authorization=True,
        )


@pytest.mark.cluster
def test_wrong_state_issue_reject_withdraw_after_issue(consortium, wait, world: World) -> None:
    watched = {
        "applications": [world.issued_id],
        "certificates": [world.certificate_id],
        "accounts": accounts(consortium.applicant),
    }
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(consortium.applicant) as applicant,
        consortium.sync_client(consortium.officer) as officer,
    ):
        for step in (
            lambda: officer.issue(world.issued_id),
            lambda: officer.reject(world.issued_id, "too late"),
            lambda: applicant.withdraw(world.issued_id),
        ):
            refusal = assert_refused(
                consortium,
                wait,
                reader,
                step,
                code="wrong_state",
                watched=watched,
                authorization=False,
            )
            assert refusal.status == 409
            assert "issued" in refusal.reason, "the reason names the current state"


@pytest.mark.cluster
def test_unknown_evidence_and_unknown_application(consortium, wait, world: World) -> None:
    unknown = os.urandom(32)
    watched = {"accounts": accounts(consortium.applicant), "evidence": [unknown.hex()]}
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(consortium.applicant) as applicant,
        consortium.sync_client(consortium.officer) as officer,
    ):
        refusal = assert_refused(
            consortium,
            wait,
            reader,
            lambda: applicant.apply([world.evidence_id, unknown], Purpose.CONTRACT, "x"),
            code="unknown_evidence",
            watched=watched,
            authorization=False,
        )
        assert refusal.status == 404
        assert unknown.hex() in refusal.reason
        assert_refused(
            consortium,
            wait,
            reader,
            lambda: officer.issue(os.urandom(32).hex()),
            code="unknown_application",
            watched=watched,
            authorization=False,
        )


@pytest.mark.cluster
def test_double_issue_only_one_certificate_and_one_payment(consortium, wait) -> None:
    """Two issue transactions for one pending application, in flight at once: the first
    issues; the second is refused (at admission, or at execution if it was admitted
    before the first committed) and pays nothing twice."""
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(consortium.applicant) as applicant,
        consortium.sync_client(consortium.officer) as officer,
    ):
        item = new_item()
        applicant.register_evidence([item])
        application_id = applicant.apply([item.digest], Purpose.CONTRACT, "double")
        account_before = reader.record("accounts", consortium.applicant.public_key.hex())
        revenue_before = proven_revenue(reader, max(settled_heights(consortium, wait).values()))
        payload = Decide(bytes.fromhex(application_id), "")
        txs = [officer.build(FAMILY, ISSUE, payload) for _ in range(2)]
        assert txs[0].id != txs[1].id
        outcomes: list[object] = []
        submitted = []
        for tx in txs:
            try:
                submitted.append(officer.submit(tx))
            except Refused as exc:
                outcomes.append(exc)
        for tx_id in submitted:
            try:
                outcomes.append(officer.wait(tx_id))
            except ClientError as exc:
                outcomes.append(exc)
        refused = [o for o in outcomes if isinstance(o, Refused | Rejected)]
        committed = [o for o in outcomes if not isinstance(o, ClientError)]
        assert len(committed) == 1, outcomes
        assert len(refused) == 1, outcomes
        assert refused[0].code == "wrong_state", refused[0]  # type: ignore[union-attr]
        application = reader.record("applications", application_id)
        assert application["state"] == "issued"
        assert [e["step"] for e in application["history"]].count("issued") == 1
        assert [e["step"] for e in application["history"]].count("fee_paid") == 1
        account = reader.record("accounts", consortium.applicant.public_key.hex())
        assert account["balance"] == account_before["balance"]
        assert account["held"] == account_before["held"] - 100
        revenue_after = proven_revenue(reader, max(settled_heights(consortium, wait).values()))
        assert revenue_after is not None
        assert revenue_after.balance == (revenue_before.balance if revenue_before else 0) + 100


@pytest.mark.cluster
def test_insufficient_balance(consortium, wait) -> None:
    poor = PrivateKey.generate()
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(consortium.admin("initech")) as admin,
        consortium.sync_client(poor) as applicant,
    ):
        admin.enrol(poor.public_key, Role.APPLICANT, "No Funds", 1)
        item = new_item()
        applicant.register_evidence([item])
        refusal = assert_refused(
            consortium,
            wait,
            reader,
            lambda: applicant.apply([item.digest], Purpose.CONTRACT, "no money"),
            code="insufficient_balance",
            watched={"accounts": accounts(poor), "evidence": [item.digest.hex()]},
            authorization=False,
        )
        assert refusal.status == 402
        assert "100" in refusal.reason
        assert read(reader, "accounts", poor.public_key.hex()) is None


@pytest.mark.cluster
def test_unenrolled_sender(consortium, wait, world: World) -> None:
    stranger = PrivateKey.generate()
    item = new_item()
    watched = {"evidence": [item.digest.hex()], "accounts": accounts(stranger)}
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(stranger) as client,
    ):
        for step in (
            lambda: client.register_evidence([item]),
            lambda: client.apply([world.evidence_id], Purpose.CONTRACT, "x"),
            lambda: client.issue(world.pending_id),
        ):
            refusal = assert_refused(
                consortium,
                wait,
                reader,
                step,
                code="not_enrolled",
                watched=watched,
                authorization=True,
            )
            assert refusal.status == 403


@pytest.mark.cluster
def test_only_the_applicant_may_withdraw(consortium, wait, world: World) -> None:
    other = PrivateKey.generate()
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(consortium.admin("initech")) as admin,
        consortium.sync_client(other) as client,
    ):
        admin.enrol(other.public_key, Role.APPLICANT, "Someone Else", 1)
        assert_refused(
            consortium,
            wait,
            reader,
            lambda: client.withdraw(world.pending_id),
            code="not_applicant",
            watched={
                "applications": [world.pending_id],
                "accounts": accounts(consortium.applicant),
            },
            authorization=None,
        )


@pytest.mark.cluster
def test_revoke_twice(consortium, wait) -> None:
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(consortium.applicant) as applicant,
        consortium.sync_client(consortium.officer) as officer,
    ):
        item = new_item()
        applicant.register_evidence([item])
        application_id = applicant.apply([item.digest], Purpose.CONTRACT, "r")
        officer.observe(applicant.seen_height)  # act on it only where it is executed
        certificate_id = officer.issue(application_id)
        officer.revoke_certificate(certificate_id, "first revocation")
        certificate = reader.record("certificates", certificate_id)
        assert certificate["state"] == "revoked"
        refusal = assert_refused(
            consortium,
            wait,
            reader,
            lambda: officer.revoke_certificate(certificate_id, "second revocation"),
            code="wrong_state",
            watched={
                "certificates": [certificate_id],
                "applications": [certificate["application_id"]],
            },
            authorization=False,
        )
        assert refusal.status == 409
        assert str(certificate["revoked_height"]) in refusal.reason
        assert reader.record("certificates", certificate_id)["revoked_reason"] == (
            "first revocation"
        )
        # An applicant cannot revoke at all.
        assert_refused(
            consortium,
            wait,
            reader,
            lambda: applicant.revoke_certificate(certificate_id, "mine"),
            code="wrong_role",
            watched={"certificates": [certificate_id]},
            authorization=True,
        )
