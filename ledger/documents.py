"""The notarial certificate as a document: JSON for machines, HTML for people.

Rule: node and client build the document from the same data with these
functions, so they never disagree. The JSON holds the readable facts and the
proof bundle that proves them; a verifier trusts only the bundle (checked
against the genesis), and checks that the readable facts match what it proves.
The HTML carries a QR code of the verification link.
"""

from __future__ import annotations

import datetime
import html
from typing import Any, Final

import segno

from ledger.encoding import decode
from ledger.errors import ProofError
from ledger.families.notarization import Certificate, certificate_key
from ledger.proofs import ProofBundle, Verified, bundle_to_json
from ledger.views import view

CERTIFICATE_FORMAT: Final = "notarychain-certificate/1"


def certificate_facts(certificate: Certificate) -> dict[str, Any]:
    """The readable facts of a certificate record (what a document states)."""
    return {
        "certificate_id": certificate.id.hex(),
        "status": certificate.state.name.lower(),
        "purpose": certificate.purpose.name.lower(),
        "applicant": certificate.applicant.hex(),
        "notary_office": certificate.notary_office,
        "officer": certificate.officer.hex(),
        "decision_time_ms": certificate.issued_time_ms,
        "decision_time": iso_time(certificate.issued_time_ms),
        "height": certificate.issued_height,
        "transaction_id": certificate.issue_tx_id.hex(),
        "evidence": [view(e) for e in certificate.evidence],
        "revoked": None
        if certificate.revoked_height is None
        else {
            "height": certificate.revoked_height,
            "time_ms": certificate.revoked_time_ms,
            "reason": certificate.revoked_reason,
        },
    }


def certificate_document(
    certificate: Certificate, bundle: ProofBundle, verify_url: str
) -> dict[str, Any]:
    return {
        "format": CERTIFICATE_FORMAT,
        **certificate_facts(certificate),
        "chain_id": bundle.chain_id,
        "proven_at_height": bundle.certificate.checkpoint.height,
        "verify_url": verify_url,
        "proof": bundle_to_json(bundle),
    }


def proven_certificate(verified: Verified, certificate_id: bytes) -> Certificate:
    """The certificate record a verified bundle proves (its state at the checkpoint)."""
    value = verified.state.get(certificate_key(certificate_id))
    if value is None:
        raise ProofError("the proof does not contain this certificate")
    return decode(Certificate, value)


def check_document_matches(document: dict[str, Any], certificate: Certificate) -> None:
    """The readable fields say what the proven record says (else someone edited them)."""
    for field, expected in certificate_facts(certificate).items():
        if document.get(field) != expected:
            raise ProofError(f"the document's {field} does not match the proven certificate")


def iso_time(time_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(time_ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def qr_svg(text: str) -> str:
    return str(segno.make(text, error="m").svg_inline(scale=4))


STYLE: Final = """
body{font-family:serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#111}
h1{font-size:1.6rem;border-bottom:2px solid #333}
table{border-collapse:collapse;width:100%}
td,th{border:1px solid #999;padding:.3rem;text-align:left;font-size:.9rem}
code{word-break:break-all}
.revoked{color:#a00;font-weight:bold}
.active{color:#070}
.qr{float:right;margin-left:1rem}
"""


def render_certificate_html(document: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td><code>{e(item['id'])}</code></td><td>{e(item['kind'])}</td>"
        f"<td>{e(iso_time(item['registered_time_ms']))}</td></tr>"
        for item in document["evidence"]
    )
    revoked = document.get("revoked")
    if revoked:
        when = e(iso_time(revoked["time_ms"]))
        status = f'<p class="revoked">REVOKED at {when}: {e(revoked["reason"])}</p>'
    else:
        status = '<p class="active">Active</p>'
    url = e(document["verify_url"])
    short_id = e(document["certificate_id"][:16])
    parts = [
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>Notarial certificate {short_id}</title><style>{STYLE}</style></head><body>",
        f'<div class="qr">{qr_svg(document["verify_url"])}</div>',
        "<h1>Notarial certificate</h1>",
        status,
        f"<p><b>Certificate</b> <code>{e(document['certificate_id'])}</code></p>",
        f"<p><b>Notary office</b> {e(document['notary_office'])};"
        f" <b>officer</b> <code>{e(document['officer'])}</code></p>",
        f"<p><b>Applicant</b> <code>{e(document['applicant'])}</code>;"
        f" <b>purpose</b> {e(document['purpose'])}</p>",
        f"<p><b>Decided</b> {e(document['decision_time'])} at height {document['height']}"
        f" (transaction <code>{e(document['transaction_id'])}</code>)</p>",
        "<table><tr><th>Evidence (SHA-256 or commitment)</th><th>Kind</th>"
        f"<th>Registered</th></tr>{rows}</table>",
        f"<p>Chain <code>{e(document['chain_id'])}</code>. Verify at"
        f' <a href="{url}">{url}</a>, or offline with the client:'
        " <code>notarychain verify FILE --certificate CERTIFICATE.json --offline</code>.</p>",
        "</body></html>\n",
    ]
    return "\n".join(parts)
