"""`notarychain`: the command line for applicants, notary officers and verifiers.

Human output by default, `--json` for scripts. Every failure is one line on
stderr and a non-zero exit status (1: the operation or verification failed;
2: the command line was wrong), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from client import commands, vault_commands
from client.errors import ClientError
from client.vault import MONTHS_DEFAULT
from ledger import __version__
from ledger.errors import (
    CertificateError,
    DecodeError,
    LedgerError,
    ProofError,
    SignatureError,
)
from ledger.families.vault import MONTHS_MAX, MONTHS_MIN

EXIT_FAILED = 1
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a command-line mistake is one line on stderr (then exit status 2),
    not the usage block; `--help` still prints the full usage. Subcommands inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())}\n")


Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]

PURPOSES = ("contract", "identity-document", "intellectual-property", "event-recording", "other")
KINDS = ("auto", "document", "photo", "audio", "video", "other")


def _add(
    commands_: Any, name: str, handler: Handler, help_text: str, example: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands_.add_parser(
        name, help=help_text, description=help_text, epilog=f"example: {example}"
    )
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="notarychain",
        description="Register evidence, follow notarizations and verify proofs on a Notary chain.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        help="client.toml (default: $NOTARYCHAIN_CONFIG or ./client.toml)",
    )
    parser.add_argument("--as", dest="identity", metavar="NAME", help="sign as a named identity")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the id the command produced"
    )
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add(top, "status", commands.status, "show the nodes and the chain", "notarychain status")
    for group in (
        _identity,
        _evidence,
        _notarize,
        _certificate,
        _verify,
        _accounts,
        _governance,
        _vault,
    ):
        group(top)
    return parser


def _group(top: Any, name: str, help_text: str) -> Any:
    return top.add_parser(name, help=help_text).add_subparsers(dest="sub", metavar="SUBCOMMAND")


def _identity(top: Any) -> None:
    group = _group(top, "identity", "identities and keys")
    new = _add(
        group,
        "new",
        commands.identity_new,
        "create a new key file (0600)",
        "notarychain identity new --out me.key",
    )
    new.add_argument("--out", type=Path, required=True)
    show = _add(
        group,
        "show",
        commands.identity_show,
        "show an enrolled identity",
        "notarychain identity show",
    )
    show.add_argument("key", nargs="?", help="public key (hex); default: your own")
    enrol = _add(
        group,
        "enrol",
        commands.identity_enrol,
        "enrol an identity for your institution (administrators)",
        "notarychain --as admin identity enrol KEY --role applicant --name 'Ada'",
    )
    enrol.add_argument("key")
    enrol.add_argument("--role", choices=("applicant", "officer", "auditor"), required=True)
    enrol.add_argument("--name", required=True)
    enrol.add_argument("--level", type=int, default=1, choices=range(4))


def _evidence(top: Any) -> None:
    group = _group(top, "evidence", "register and look up evidence")
    add = _add(
        group,
        "add",
        commands.evidence_add,
        "register files and folders (hashed locally; the content never leaves)",
        "notarychain evidence add photos/ contract.pdf --receipts receipts/",
    )
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add.add_argument(
        "--receipts",
        type=Path,
        help="write NAME.receipt.json per file here (a folder's files at their path under it)",
    )
    add.add_argument("--kind", choices=KINDS, default="auto")
    add.add_argument(
        "--private", action="store_true", help="register a salted commitment instead of the hash"
    )
    add.add_argument("--title", help="a title for every item (default: the file name)")
    add.add_argument("--no-progress", action="store_true")
    show = _add(
        group,
        "show",
        commands.evidence_show,
        "show an evidence record",
        "notarychain evidence show EVIDENCE_ID",
    )
    show.add_argument("evidence_id")
    find = _add(
        group,
        "find",
        commands.evidence_find,
        "look up a file's evidence record",
        "notarychain evidence find --file contract.pdf",
    )
    find.add_argument("--file", type=Path, required=True)


def _notarize(top: Any) -> None:
    group = _group(top, "notarize", "applications for notarization")
    apply = _add(
        group,
        "apply",
        commands.notarize_apply,
        "apply for notarization",
        "notarychain notarize apply EVIDENCE_ID --purpose 'sale of a flat' --category contract",
    )
    apply.add_argument("evidence_ids", nargs="+", metavar="EVIDENCE_ID")
    apply.add_argument("--purpose", required=True, help="what the notarization is for")
    apply.add_argument(
        "--category",
        choices=PURPOSES,
        default="other",
        help="the audit checks the evidence kinds this category needs",
    )
    for name, handler, help_text in (
        ("show", commands.notarize_show, "show an application with its full history"),
        ("issue", commands.notarize_issue, "issue the certificate (notary officers)"),
        ("withdraw", commands.notarize_withdraw, "withdraw your application before a decision"),
    ):
        sub = _add(group, name, handler, help_text, f"notarychain notarize {name} APP_ID")
        sub.add_argument("application_id", metavar="APP_ID")
    reject = _add(
        group,
        "reject",
        commands.notarize_reject,
        "reject (notary officers)",
        "notarychain notarize reject APP_ID --reason 'illegible scan'",
    )
    reject.add_argument("application_id", metavar="APP_ID")
    reject.add_argument("--reason", required=True)


def _certificate(top: Any) -> None:
    group = _group(top, "certificate", "notarial certificates")
    revoke = _add(
        group,
        "revoke",
        commands.certificate_revoke,
        "revoke a certificate (notary officers)",
        "notarychain certificate revoke CERT_ID --reason 'forged evidence'",
    )
    revoke.add_argument("certificate_id", metavar="CERT_ID")
    revoke.add_argument("--reason", required=True)
    export = _add(
        group,
        "export",
        commands.certificate_export,
        "save the certificate (JSON with its proof; optionally HTML)",
        "notarychain certificate export CERT_ID --out cert.json --html cert.html",
    )
    export.add_argument("certificate_id", metavar="CERT_ID")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--html", type=Path)


def _verify(top: Any) -> None:
    verify = _add(
        top,
        "verify",
        commands.verify,
        "verify a file against a receipt or a certificate",
        "notarychain verify contract.pdf --receipt contract.pdf.receipt.json --offline",
    )
    verify.add_argument("path", type=Path, nargs="?", metavar="PATH")
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--receipt", type=Path)
    source.add_argument("--certificate", type=Path)
    verify.add_argument("--genesis", type=Path, help="the consortium's genesis.json")
    verify.add_argument(
        "--offline", action="store_true", help="use only the files given: contact no node"
    )


def _accounts(top: Any) -> None:
    group = _group(top, "accounts", "prepaid accounts")
    balance = _add(
        group,
        "balance",
        commands.accounts_balance,
        "show a balance",
        "notarychain accounts balance",
    )
    balance.add_argument("key", nargs="?", help="public key (hex); default: your own")
    credit = _add(
        group,
        "credit",
        commands.accounts_credit,
        "credit a prepaid account (administrators)",
        "notarychain --as admin accounts credit KEY 1000",
    )
    credit.add_argument("key")
    credit.add_argument("amount", type=int)
    credit.add_argument("--memo", default="")


def _governance(top: Any) -> None:
    group = _group(top, "governance", "consortium changes")
    propose = _add(
        group,
        "propose",
        commands.governance_propose,
        "propose a change (administrators)",
        "notarychain --as admin governance propose --set-fee notarization.apply=150 --at 5000",
    )
    what = propose.add_mutually_exclusive_group(required=True)
    what.add_argument("--set-fee", metavar="OPERATION=AMOUNT")
    what.add_argument("--remove-institution", metavar="NAME")
    what.add_argument(
        "--add-institution",
        type=Path,
        metavar="MEMBER.json",
        help='{"name","role","admin_key","node_key","host","peer_port","api_port"}',
    )
    propose.add_argument("--at", type=int, required=True, help="the height it takes effect")
    propose.add_argument("--description", default="")
    approve = _add(
        group,
        "approve",
        commands.governance_approve,
        "approve a proposal (administrators)",
        "notarychain --as admin governance approve PROPOSAL_ID",
    )
    approve.add_argument("proposal_id")
    show = _add(
        group,
        "show",
        commands.governance_show,
        "show a proposal",
        "notarychain governance show PROPOSAL_ID",
    )
    show.add_argument("proposal_id")


def _vault(top: Any) -> None:
    group = _group(top, "vault", "encrypted content kept by the consortium, shared by grants")
    put = _add(
        group,
        "put",
        vault_commands.vault_put,
        "encrypt a file here and store it on f + 1 or more institutions' nodes "
        "(registers its evidence if needed; running it again resumes an upload)",
        "notarychain vault put video.mp4",
    )
    put.add_argument("path", type=Path, metavar="PATH")
    put.add_argument("--replicas", type=int, help="storing institutions (default and least: f + 1)")
    put.add_argument("--institutions", metavar="A,B", help="the storing institutions, by name")
    put.add_argument("--title", help="the evidence title (default: the file name)")
    _months_argument(put, MONTHS_DEFAULT)
    put.add_argument("--no-progress", action="store_true")
    get = _add(
        group,
        "get",
        vault_commands.vault_get,
        "download, check and decrypt stored content (pays the download fee)",
        "notarychain vault get EVIDENCE_ID --out video.mp4",
    )
    get.add_argument("evidence_id", metavar="EVIDENCE_ID")
    get.add_argument("--out", type=Path, required=True)
    get.add_argument("--no-progress", action="store_true")
    _add(
        group,
        "key",
        vault_commands.vault_key,
        "publish your encryption key, so that owners can grant you access",
        "notarychain vault key",
    )
    grant = _add(
        group,
        "grant",
        vault_commands.vault_grant,
        "let an identity download your content, optionally until a height or for a time",
        "notarychain vault grant EVIDENCE_ID --to KEY --expires-height 5000",
    )
    grant.add_argument("evidence_id", metavar="EVIDENCE_ID")
    grant.add_argument("--to", required=True, metavar="KEY", help="the reader's public key")
    _expiry_arguments(grant)
    revoke = _add(
        group,
        "revoke",
        vault_commands.vault_revoke,
        "revoke an identity's grant",
        "notarychain vault revoke EVIDENCE_ID --to KEY --reason 'contract ended'",
    )
    revoke.add_argument("evidence_id", metavar="EVIDENCE_ID")
    revoke.add_argument("--to", required=True, metavar="KEY", help="the reader's public key")
    revoke.add_argument("--reason", default="")
    request = _add(
        group,
        "request",
        vault_commands.vault_request,
        "ask the owner for access (the download fee is held until the answer)",
        "notarychain vault request EVIDENCE_ID --reason 'court case 12/2026'",
    )
    request.add_argument("evidence_id", metavar="EVIDENCE_ID")
    request.add_argument("--reason", required=True)
    requests = _add(
        group,
        "requests",
        vault_commands.vault_requests,
        "list pending access requests, or answer one",
        "notarychain vault requests EVIDENCE_ID --answer REQUEST_ID --refuse 'not a party'",
    )
    requests.add_argument("evidence_id", metavar="EVIDENCE_ID")
    requests.add_argument("--answer", metavar="REQUEST_ID")
    requests.add_argument("--grant", action="store_true", help="grant the request")
    requests.add_argument("--refuse", metavar="REASON", help="refuse it (the fee is refunded)")
    _expiry_arguments(requests)
    delete = _add(
        group,
        "delete",
        vault_commands.vault_delete,
        "erase the stored content (the evidence record and its proofs stay valid)",
        "notarychain vault delete EVIDENCE_ID --reason 'erasure request'",
    )
    delete.add_argument("evidence_id", metavar="EVIDENCE_ID")
    delete.add_argument("--reason", default="")
    renew = _add(
        group,
        "renew",
        vault_commands.vault_renew,
        "pay for more months of storage (from the paid term's end, or from now if it lapsed)",
        "notarychain vault renew EVIDENCE_ID --months 12",
    )
    renew.add_argument("evidence_id", metavar="EVIDENCE_ID")
    _months_argument(renew, None)
    show = _add(
        group,
        "show",
        vault_commands.vault_show,
        "show a vault entry with its grants and full history",
        "notarychain vault show EVIDENCE_ID",
    )
    show.add_argument("evidence_id", metavar="EVIDENCE_ID")


def _months_argument(parser: argparse.ArgumentParser, default: int | None) -> None:
    what = f"default {default}" if default is not None else "required"
    parser.add_argument(
        "--months",
        type=int,
        default=default,
        required=default is None,
        metavar="N",
        help=f"30-day months of storage to pay for, {MONTHS_MIN} to {MONTHS_MAX} ({what})",
    )


def _expiry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expires-height", type=int, metavar="H", help="active below height H")
    parser.add_argument("--expires-in", type=float, metavar="SECONDS", help="active this long")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        result = asyncio.run(handler(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the boundary: one line, never a traceback
        reason = failure_reason(exc)
        if args.json:
            print(json.dumps({"state": "failed", "reason": reason}))
        print(f"notarychain: {reason}", file=sys.stderr)
        return EXIT_FAILED
    commands.print_result(result, args.json, args.quiet)
    return 0


def failure_reason(exc: Exception) -> str:
    """One line for any failure: the SDK's and the ledger's errors say what is wrong; any
    other exception is a bug in this program, reported as such."""
    if isinstance(exc, ClientError):
        text = str(exc)
    elif isinstance(exc, ProofError | CertificateError):
        text = f"the proof does not verify: {exc}"
    elif isinstance(exc, DecodeError):
        text = f"malformed data: {exc}"
    elif isinstance(exc, SignatureError):
        text = f"bad signature or key: {exc}"
    elif isinstance(exc, LedgerError):
        text = str(exc)
    elif isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror or exc}"
    else:
        text = f"internal error ({type(exc).__name__}: {exc}); please report it"
    return " ".join(text.split()) or type(exc).__name__
