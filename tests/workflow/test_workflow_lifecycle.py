"""The notarization workflow end to end, through real node processes and the SDK.

Enrol, credit, register evidence, apply (with the automated audit), issue,
verify, revoke, verify again (now revoked), with the balances checked at each
step; and the two other ends of an application: rejection and withdrawal,
each refunding the held fee.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from client.errors import Refused, VerificationFailed
from client.sync import Client
from client.verify import check_not_revoked, verify_certificate
from ledger.encoding import decode
from ledger.families.evidence import Item, Kind
from ledger.families.fees import Account, account_key, institution_account_key
from ledger.families.identity import Role
from ledger.families.notarization import Purpose
from ledger.keys import PrivateKey

NOTARY = "notary-office"
FEE = 100
CHECKS = [
    "applicant_enrolled_and_verified",
    "evidence_present_and_owned",
    "required_kinds_present",
    "nothing_revoked",
]
PROOF_WAIT_S = 30.0


def balance(reader: Client, key: PrivateKey) -> tuple[int, int]:
    record = reader.record("accounts", key.public_key.hex())
    return int(record["balance"]), int(record["held"])


def proven_account(reader: Client, state_key: bytes, at_least: int = 0) -> Account | None:
    """An account read through a state proof verified against the genesis, at a checkpoint
    covering `at_least` (the institutions' revenue accounts have no plain API route)."""
    deadline = time.monotonic() + PROOF_WAIT_S
    while True:
        _, verified = reader.proof("state", state_key.hex())
        if verified.checkpoint.height >= at_least:
            assert state_key in verified.state, "the bundle does not prove the key asked for"
            value = verified.state[state_key]
            return None if value is None else decode(Account, value)
        assert time.monotonic() < deadline, f"no checkpoint covering height {at_least} in time"
        time.sleep(0.2)


def revenue(reader: Client, at_least: int | None = None) -> int:
    """The notary office's revenue, proven at the node's current height (or `at_least`)."""
    if at_least is None:
        at_least = int(reader.status()["height"])
    account = proven_account(reader, institution_account_key(NOTARY), at_least)
    return 0 if account is None else account.balance


def document_item(content: bytes, title: str, kind: Kind = Kind.DOCUMENT) -> Item:
    return Item(hashlib.sha256(content).digest(), False, kind, len(content), title)


def steps(application: dict[str, Any]) -> list[str]:
    return [event["step"] for event in application["history"]]


@pytest.mark.cluster
def test_enrol_apply_audit_issue_verify_revoke_with_balances(consortium, tmp_path: Path) -> None:
    admin_key = consortium.admin("initech")
    ada = PrivateKey.generate()
    genesis = consortium.genesis
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(admin_key) as admin,
        consortium.sync_client(ada) as applicant,
        consortium.sync_client(consortium.officer) as officer,
    ):
        # The institution's administrator enrols a second applicant and credits it.
        admin.enrol(ada.public_key, Role.APPLICANT, "Ada Lovelace", 1)
        identity = reader.record("identities", ada.public_key.hex())
        assert (identity["role"], identity["institution"], identity["level"]) == (
            "applicant",
            "initech",
            1,
        )
        assert identity["revoked_height"] is None
        with pytest.raises(Refused) as no_account:
            reader.record("accounts", ada.public_key.hex())
        assert no_account.value.code == "unknown_account"
        admin.credit(ada.public_key, 10_000, "prepaid")
        assert balance(reader, ada) == (10_000, 0)

        # Evidence: a document, registered once; registering it again returns the original.
        content = b"Sale of flat 4B, signed 30 November 2026\n" + os.urandom(16)
        item = document_item(content, "contract.txt")
        registered = applicant.register_evidence([item])
        assert registered.ids == (item.digest,)
        assert registered.new == (True,)
        record = reader.record("evidence", item.digest.hex())
        assert record["owner"] == ada.public_key.hex()
        assert record["kind"] == "document"
        assert record["size"] == len(content)
        again = applicant.register_evidence([item])
        assert again.new == (False,)
        assert reader.record("evidence", item.digest.hex()) == record

        revenue_before = revenue(reader)

        # Apply: the fee is held, the automated audit passes every check.
        application_id = applicant.apply([item.digest], Purpose.CONTRACT, "sale of a flat")
        application = reader.record("applications", application_id)
        assert application["state"] == "pending"
        assert application["applicant"] == ada.public_key.hex()
        assert application["institution"] == "initech"
        assert application["purpose"] == "contract"
        assert [f["check"] for f in application["findings"]] == CHECKS
        assert all(f["passed"] for f in application["findings"]), application["findings"]
        assert application["recommendation"] == "issue"
        assert application["fee_held"] == FEE
        assert application["certificate_id"] is None
        assert steps(application) == ["applied", "fee_held", "audited"]
        assert balance(reader, ada) == (10_000 - FEE, FEE)

        # Issue: a certificate; the held fee goes to the notary office. The officer acts
        # on the application only at a node that has executed it.
        officer.observe(applicant.seen_height)
        certificate_id = officer.issue(application_id)
        application = reader.record("applications", application_id)
        assert application["state"] == "issued"
        assert application["certificate_id"] == certificate_id
        issued_height = application["history"][-1]["height"]
        assert balance(reader, ada) == (10_000 - FEE, 0)
        assert revenue(reader, issued_height) == revenue_before + FEE
        proven_balance = proven_account(reader, account_key(ada.public_key), issued_height)
        assert proven_balance == Account(10_000 - FEE, 0)

        # The certificate document verifies against the genesis (and the file against it).
        document = applicant.certificate_document(certificate_id)
        assert document["status"] == "active"
        assert document["notary_office"] == NOTARY
        assert document["officer"] == consortium.officer.public_key.hex()
        proven = verify_certificate(None, document, genesis)
        assert proven.certificate is not None
        assert proven.certificate.id.hex() == certificate_id
        assert len(proven.signers) >= 3
        assert set(proven.signers) <= set(consortium.names)
        contract = tmp_path / "contract.txt"
        contract.write_bytes(content)
        assert verify_certificate(contract, document, genesis).sha256 == item.digest.hex()
        _, fresh = reader.proof("certificates", certificate_id)
        check_not_revoked(bytes.fromhex(certificate_id), fresh)

        # Revoke, then verify again against a fresh proof: reported as revoked.
        officer.revoke_certificate(certificate_id, "the signature was forged")
        _, fresh = reader.proof("certificates", certificate_id)
        with pytest.raises(VerificationFailed, match="revoked") as revoked:
            check_not_revoked(bytes.fromhex(certificate_id), fresh)
        assert "the signature was forged" in str(revoked.value)
        refreshed = reader.certificate_document(certificate_id)
        assert refreshed["status"] == "revoked"
        assert refreshed["revoked"]["reason"] == "the signature was forged"
        with pytest.raises(VerificationFailed, match="revoked"):
            verify_certificate(contract, refreshed, genesis)

        # The whole history is one query, and nothing was deleted.
        application = reader.record("applications", application_id)
        assert steps(application) == [
            "applied",
            "fee_held",
            "audited",
            "issued",
            "fee_paid",
            "archived",
            "certificate_revoked",
        ]
        assert application["state"] == "issued"
        assert application["history"][-1]["detail"] == "the signature was forged"
        assert reader.record("evidence", item.digest.hex()) == record
        # Revocation moves no money.
        revoked_height = application["history"][-1]["height"]
        assert balance(reader, ada) == (10_000 - FEE, 0)
        assert revenue(reader, revoked_height) == revenue_before + FEE


@pytest.mark.cluster
def test_a_rejection_refunds_the_held_fee(consortium) -> None:
    applicant_key = consortium.applicant
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(applicant_key) as applicant,
        consortium.sync_client(consortium.officer) as officer,
    ):
        # A photo for a contract: the audit finds the required kind missing.
        item = document_item(os.urandom(64), "scan.jpg", Kind.PHOTO)
        applicant.register_evidence([item])
        before = balance(reader, applicant_key)
        revenue_before = revenue(reader)
        application_id = applicant.apply([item.digest], Purpose.CONTRACT, "lease")
        application = reader.record("applications", application_id)
        failed = [f["check"] for f in application["findings"] if not f["passed"]]
        assert failed == ["required_kinds_present"]
        assert application["recommendation"] == "reject"
        assert balance(reader, applicant_key) == (before[0] - FEE, before[1] + FEE)

        officer.reject(application_id, "a contract needs a document")
        application = reader.record("applications", application_id)
        assert application["state"] == "rejected"
        assert application["certificate_id"] is None
        assert steps(application) == [
            "applied",
            "fee_held",
            "audited",
            "rejected",
            "fee_refunded",
            "archived",
        ]
        assert application["history"][3]["detail"] == "a contract needs a document"
        assert balance(reader, applicant_key) == before
        assert revenue(reader, application["history"][-1]["height"]) == revenue_before


@pytest.mark.cluster
def test_a_withdrawal_refunds_the_held_fee(consortium) -> None:
    applicant_key = consortium.applicant
    with (
        consortium.sync_client() as reader,
        consortium.sync_client(applicant_key) as applicant,
    ):
        item = document_item(os.urandom(64), "will.pdf")
        applicant.register_evidence([item])
        before = balance(reader, applicant_key)
        revenue_before = revenue(reader)
        application_id = applicant.apply([item.digest], Purpose.OTHER, "a will")
        assert balance(reader, applicant_key) == (before[0] - FEE, before[1] + FEE)
        applicant.withdraw(application_id, "changed my mind")
        application = reader.record("applications", application_id)
        assert application["state"] == "withdrawn"
        assert steps(application) == [
            "applied",
            "fee_held",
            "audited",
            "withdrawn",
            "fee_refunded",
            "archived",
        ]
        assert balance(reader, applicant_key) == before
        assert revenue(reader, application["history"][-1]["height"]) == revenue_before
