"""Notarization family execution (see `ledger.families.notarization` for the workflow)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ledger.families.evidence import Evidence, evidence_key
from ledger.families.fees import APPLY_FEE, SCHEDULE_KEY, Account, Schedule, account_key
from ledger.families.fees import institution_account_key as revenue_key
from ledger.families.governance import INSTITUTIONS_KEY, Members
from ledger.families.identity import Identity, Role
from ledger.families.notarization import (
    APPLY,
    FAMILY,
    ISSUE,
    REJECT,
    REQUIRED_KINDS,
    REVOKE,
    WITHDRAW,
    Application,
    Apply,
    Certificate,
    CertificateIds,
    CertificateState,
    CertifiedEvidence,
    Check,
    Decide,
    Event,
    Finding,
    Recommendation,
    RevokeCertificate,
    State,
    Step,
    application_key,
    certificate_id_for,
    certificate_key,
    evidence_certificates_key,
)
from node.families.base import Context, Handler, Outcome, Refused, TableFamily

VERIFIED_LEVEL_MIN = 1


def _event(ctx: Context, step: Step, detail: str = "") -> Event:
    return Event(step, ctx.height, ctx.time_ms, ctx.sender, ctx.tx_id, detail)


def _account(ctx: Context, owner: bytes) -> Account:
    return ctx.get_model(Account, account_key(owner)) or Account(0, 0)


def _application(ctx: Context, application_id: bytes) -> Application:
    application = ctx.get_model(Application, application_key(application_id))
    if application is None:
        raise Refused("unknown_application", "no application with this id")
    return application


def _require_pending(application: Application) -> None:
    if application.state is not State.PENDING:
        raise Refused(
            "wrong_state",
            f"the application is {application.state.name.lower()}, not pending",
        )


def _require_notary_officer(ctx: Context) -> Identity:
    officer = ctx.sender_identity()
    members = ctx.get_model(Members, INSTITUTIONS_KEY)
    roles = {} if members is None else {m.name: m.role for m in members.members}
    if roles.get(officer.institution) != "notary":
        raise Refused("wrong_institution", f"{officer.institution} is not a notary office")
    return officer


def _audit(
    ctx: Context, applicant: Identity, payload: Apply, records: list[Evidence]
) -> tuple[Finding, ...]:
    """The automated audit: deterministic rules over the state, each recorded as a finding."""
    verified = applicant.active and applicant.level >= VERIFIED_LEVEL_MIN
    foreign = [r.id.hex()[:16] for r in records if r.owner != applicant.key]
    required = REQUIRED_KINDS[payload.purpose]
    kinds = {r.kind for r in records}
    kinds_ok = not required or bool(kinds & required)
    revoked = []
    for record in records:
        covering = ctx.get_model(CertificateIds, evidence_certificates_key(record.id))
        for certificate_id in () if covering is None else covering.ids:
            certificate = ctx.get_model(Certificate, certificate_key(certificate_id))
            if certificate is not None and certificate.state is CertificateState.REVOKED:
                revoked.append(record.id.hex()[:16])
    wanted = ", ".join(sorted(k.name.lower() for k in required)) or "any"
    return (
        Finding(
            Check.APPLICANT_ENROLLED_AND_VERIFIED,
            verified,
            f"verification level {applicant.level} (at least {VERIFIED_LEVEL_MIN} needed)",
        ),
        Finding(
            Check.EVIDENCE_PRESENT_AND_OWNED,
            not foreign,
            "all evidence registered by the applicant"
            if not foreign
            else f"registered by someone else: {', '.join(foreign)}",
        ),
        Finding(
            Check.REQUIRED_KINDS_PRESENT,
            kinds_ok,
            f"{payload.purpose.name.lower()} needs {wanted}; present: "
            + ", ".join(sorted(k.name.lower() for k in kinds)),
        ),
        Finding(
            Check.NOTHING_REVOKED,
            not revoked,
            "no evidence under a revoked certificate"
            if not revoked
            else f"under a revoked certificate: {', '.join(revoked)}",
        ),
    )


def apply(ctx: Context) -> Outcome:
    applicant = ctx.sender_identity()
    payload = ctx.payload(Apply)
    if not payload.evidence_ids:
        raise Refused("bad_payload", "an application needs at least one evidence id")
    if len(set(payload.evidence_ids)) != len(payload.evidence_ids):
        raise Refused("bad_payload", "an evidence id appears twice")
    records: list[Evidence] = []
    for evidence_id in payload.evidence_ids:
        record = ctx.get_model(Evidence, evidence_key(evidence_id))
        if record is None:
            raise Refused("unknown_evidence", f"no evidence {evidence_id.hex()}")
        records.append(record)
    schedule = ctx.get_model(Schedule, SCHEDULE_KEY) or Schedule(())
    fee = schedule.fee(APPLY_FEE)
    account = _account(ctx, applicant.key)
    if account.balance < fee:
        raise Refused(
            "insufficient_balance", f"the fee is {fee} and the balance is {account.balance}"
        )
    ctx.put_model(account_key(applicant.key), Account(account.balance - fee, account.held + fee))
    findings = _audit(ctx, applicant, payload, records)
    failed = [f.check.name.lower() for f in findings if not f.passed]
    recommendation = Recommendation.REJECT if failed else Recommendation.ISSUE
    audit_note = "recommend issue" if not failed else "recommend reject: " + ", ".join(failed)
    application = Application(
        ctx.tx_id,
        applicant.key,
        applicant.institution,
        payload.evidence_ids,
        payload.purpose,
        payload.description,
        State.PENDING,
        findings,
        recommendation,
        fee,
        None,
        (
            _event(ctx, Step.APPLIED, payload.purpose.name.lower()),
            _event(ctx, Step.FEE_HELD, str(fee)),
            _event(ctx, Step.AUDITED, audit_note),
        ),
    )
    ctx.put_model(application_key(ctx.tx_id), application)
    return Outcome(ctx.tx_id)


def issue(ctx: Context) -> Outcome:
    officer = _require_notary_officer(ctx)
    payload = ctx.payload(Decide)
    application = _application(ctx, payload.application_id)
    _require_pending(application)
    certificate_id = certificate_id_for(application.id)
    evidence = []
    for evidence_id in application.evidence_ids:
        record = ctx.get_model(Evidence, evidence_key(evidence_id))
        assert record is not None, "evidence is never deleted"
        evidence.append(
            CertifiedEvidence(record.id, record.kind, record.private, record.height, record.time_ms)
        )
        covering = ctx.get_model(CertificateIds, evidence_certificates_key(evidence_id))
        ids = () if covering is None else covering.ids
        ctx.put_model(
            evidence_certificates_key(evidence_id), CertificateIds((*ids, certificate_id))
        )
    certificate = Certificate(
        certificate_id,
        application.id,
        application.applicant,
        officer.institution,
        officer.key,
        application.purpose,
        tuple(evidence),
        ctx.height,
        ctx.time_ms,
        ctx.tx_id,
        CertificateState.ACTIVE,
        None,
        None,
        None,
    )
    ctx.put_model(certificate_key(certificate_id), certificate)
    _settle(ctx, application, pay_to=officer.institution)
    history = (
        _event(ctx, Step.ISSUED, certificate_id.hex()),
        _event(ctx, Step.FEE_PAID, f"{application.fee_held} to {officer.institution}"),
        _event(ctx, Step.ARCHIVED),
    )
    _save(ctx, application, State.ISSUED, history, certificate_id)
    return Outcome(certificate_id)


def reject(ctx: Context) -> Outcome:
    _require_notary_officer(ctx)
    payload = ctx.payload(Decide)
    if not payload.reason.strip():
        raise Refused("bad_payload", "a rejection needs a reason")
    application = _application(ctx, payload.application_id)
    _require_pending(application)
    _settle(ctx, application, pay_to=None)
    history = (
        _event(ctx, Step.REJECTED, payload.reason),
        _event(ctx, Step.FEE_REFUNDED, str(application.fee_held)),
        _event(ctx, Step.ARCHIVED),
    )
    _save(ctx, application, State.REJECTED, history, None)
    return Outcome()


def withdraw(ctx: Context) -> Outcome:
    payload = ctx.payload(Decide)
    application = _application(ctx, payload.application_id)
    if application.applicant != ctx.sender:
        raise Refused("not_applicant", "only the applicant may withdraw an application")
    _require_pending(application)
    _settle(ctx, application, pay_to=None)
    history = (
        _event(ctx, Step.WITHDRAWN, payload.reason),
        _event(ctx, Step.FEE_REFUNDED, str(application.fee_held)),
        _event(ctx, Step.ARCHIVED),
    )
    _save(ctx, application, State.WITHDRAWN, history, None)
    return Outcome()


def revoke(ctx: Context) -> Outcome:
    officer = _require_notary_officer(ctx)
    payload = ctx.payload(RevokeCertificate)
    if not payload.reason.strip():
        raise Refused("bad_payload", "a revocation needs a reason")
    certificate = ctx.get_model(Certificate, certificate_key(payload.certificate_id))
    if certificate is None:
        raise Refused("unknown_certificate", "no certificate with this id")
    if certificate.notary_office != officer.institution:
        raise Refused(
            "wrong_institution", f"the certificate was issued by {certificate.notary_office}"
        )
    if certificate.state is CertificateState.REVOKED:
        raise Refused(
            "wrong_state", f"the certificate was revoked at height {certificate.revoked_height}"
        )
    revoked = dataclasses.replace(
        certificate,
        state=CertificateState.REVOKED,
        revoked_height=ctx.height,
        revoked_time_ms=ctx.time_ms,
        revoked_reason=payload.reason,
    )
    ctx.put_model(certificate_key(certificate.id), revoked)
    application = _application(ctx, certificate.application_id)
    event = _event(ctx, Step.CERTIFICATE_REVOKED, payload.reason)
    ctx.put_model(
        application_key(application.id),
        dataclasses.replace(application, history=(*application.history, event)),
    )
    return Outcome()


def _settle(ctx: Context, application: Application, pay_to: str | None) -> None:
    """Release the held fee: paid to the notary office on issue, else back to the applicant."""
    fee = application.fee_held
    account = _account(ctx, application.applicant)
    assert account.held >= fee, "a held fee is always in the applicant's held balance"
    if pay_to is None:
        ctx.put_model(
            account_key(application.applicant), Account(account.balance + fee, account.held - fee)
        )
        return
    ctx.put_model(account_key(application.applicant), Account(account.balance, account.held - fee))
    revenue = ctx.get_model(Account, revenue_key(pay_to)) or Account(0, 0)
    ctx.put_model(revenue_key(pay_to), Account(revenue.balance + fee, revenue.held))


def _save(
    ctx: Context,
    application: Application,
    state: State,
    events: tuple[Event, ...],
    certificate_id: bytes | None,
) -> None:
    updated = dataclasses.replace(
        application,
        state=state,
        certificate_id=certificate_id,
        history=(*application.history, *events),
    )
    ctx.put_model(application_key(application.id), updated)


class NotarizationFamily(TableFamily):
    name = FAMILY
    operations: ClassVar[dict[str, Handler]] = {
        APPLY: apply,
        ISSUE: issue,
        REJECT: reject,
        WITHDRAW: withdraw,
        REVOKE: revoke,
    }
    roles: ClassVar[dict[str, tuple[Role, ...]]] = {
        APPLY: (Role.APPLICANT,),
        ISSUE: (Role.OFFICER,),
        REJECT: (Role.OFFICER,),
        WITHDRAW: (Role.APPLICANT,),
        REVOKE: (Role.OFFICER,),
    }
