"""With one node killed, every SDK and command-line operation still succeeds through the others.

The node killed (SIGKILL, by the PID this harness started) is the primary of
the current view and the first in the client's node list, so the client must
fail over on every call and the other three must change view before anything
new commits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

from client import Client, load_config, verify_certificate
from client.errors import Refused
from client.sdk import AsyncClient
from client.verify import check_not_revoked
from ledger.encoding import encode
from ledger.families.evidence import FAMILY, REGISTER, Item, Kind, Register
from ledger.families.notarization import Purpose
from ledger.tx import sign_transaction

FEE = 100


def the_primary(consortium) -> str:
    by_id = {}
    primary = None
    for name in consortium.names:
        with Client.connect([consortium.url(name)], consortium.genesis) as client:
            status = client.status()
        by_id[status["replica_id"]] = name
        primary = status["primary"]
    assert primary in by_id, (primary, by_id)
    return by_id[primary]


@pytest.fixture(scope="module")
def victim(consortium, tmp_path_factory: pytest.TempPathFactory, is_open) -> tuple[str, Path]:
    """Kill the primary; a client.toml listing it first; (its name, the config's path)."""
    name = the_primary(consortium)
    config = consortium.write_config(
        tmp_path_factory.mktemp("failover") / "client.toml", consortium.urls(first=name)
    )
    consortium.stop(name, signal.SIGKILL)
    assert consortium.processes[name].returncode == -signal.SIGKILL
    assert not is_open(int(consortium.url(name).rsplit(":", 1)[1])), f"{name} still answers"
    return name, config


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return str(result.stdout)


@pytest.mark.cluster
def test_every_cli_operation_succeeds_with_the_first_node_dead(
    consortium, victim, tmp_path: Path, cli
) -> None:
    name, config = victim
    dead_url = consortium.url(name)

    status = ok(cli("status", cwd=tmp_path, config=config))
    assert f"{dead_url:43} unreachable" in status, status
    assert status.count("height") == 3, status
    rows = json.loads(ok(cli("--json", "status", cwd=tmp_path, config=config)))["nodes"]
    assert [row["up"] for row in rows] == [False, True, True, True]

    contract = tmp_path / "contract.txt"
    contract.write_bytes(b"Sale of flat 4B, signed 30 November 2026\n" + os.urandom(8))
    added = json.loads(
        ok(
            cli(
                "--json",
                "evidence",
                "add",
                contract,
                "--receipts",
                tmp_path / "receipts",
                cwd=tmp_path,
                config=config,
            )
        )
    )
    evidence_id = added["evidence_id"]
    assert evidence_id == hashlib.sha256(contract.read_bytes()).hexdigest()
    assert added["state"] == "committed"
    assert len(added["tx_id"]) == 64
    assert added["height"] >= 1

    shown = json.loads(
        ok(cli("--json", "evidence", "show", evidence_id, cwd=tmp_path, config=config))
    )
    assert shown["evidence_id"] == evidence_id
    assert shown["kind"] == "document"
    found = json.loads(
        ok(cli("--json", "evidence", "find", "--file", contract, cwd=tmp_path, config=config))
    )
    assert found["evidence_id"] == evidence_id

    application_id = ok(
        cli(
            "-q",
            "notarize",
            "apply",
            evidence_id,
            "--purpose",
            "sale of a flat",
            "--category",
            "contract",
            cwd=tmp_path,
            config=config,
        )
    ).strip()
    assert len(application_id) == 64
    shown_text = ok(cli("notarize", "show", application_id, cwd=tmp_path, config=config))
    assert f"application {application_id}: pending" in shown_text
    assert "history:" in shown_text
    assert "recommendation issue" in shown_text

    issued = json.loads(
        ok(
            cli(
                "--json",
                "--as",
                "officer",
                "notarize",
                "issue",
                application_id,
                cwd=tmp_path,
                config=config,
            )
        )
    )
    certificate_id = issued["certificate_id"]
    assert issued["state"] == "issued"
    assert issued["application_id"] == application_id

    certificate = tmp_path / "certificate.json"
    html = tmp_path / "certificate.html"
    exported = ok(
        cli(
            "certificate",
            "export",
            certificate_id,
            "--out",
            certificate,
            "--html",
            html,
            cwd=tmp_path,
            config=config,
        )
    )
    assert "verified" in exported
    assert json.loads(certificate.read_text())["certificate_id"] == certificate_id
    assert html.read_text().startswith("<!doctype html>")

    verified = ok(
        cli("verify", contract, "--certificate", certificate, cwd=tmp_path, config=config)
    )
    assert verified.startswith("VALID: certificate verified"), verified
    verified = ok(
        cli(
            "verify",
            contract,
            "--receipt",
            tmp_path / "receipts" / "contract.txt.receipt.json",
            cwd=tmp_path,
            config=config,
        )
    )
    assert verified.startswith("VALID: receipt verified"), verified

    balance = json.loads(ok(cli("--json", "accounts", "balance", cwd=tmp_path, config=config)))
    assert (balance["balance"], balance["held"]) == (10_000 - FEE, 0)
    assert "balance 9900" in ok(cli("accounts", "balance", cwd=tmp_path, config=config))


@pytest.mark.cluster
def test_every_sdk_operation_succeeds_with_the_first_node_dead(consortium, victim) -> None:
    _, config_path = victim
    config = load_config(config_path)
    with (
        Client.from_config(config) as applicant,
        Client.from_config(config, "officer") as officer,
    ):
        status = applicant.status()
        assert status["chain_id"] == consortium.genesis.chain_id
        before = applicant.record("accounts", consortium.applicant.public_key.hex())

        content = b"Lease of shop 12\n" + os.urandom(8)
        digest = hashlib.sha256(content).digest()
        registered = applicant.register_evidence(
            [Item(digest, False, Kind.DOCUMENT, len(content), "lease.txt")]
        )
        assert registered.new == (True,)
        _, proven = applicant.proof("evidence", digest.hex())
        assert proven.state.get(b"evidence/" + digest) is not None

        application_id = applicant.apply([digest], Purpose.CONTRACT, "lease of a shop")
        application = applicant.record("applications", application_id)
        assert application["recommendation"] == "issue"
        officer.observe(applicant.seen_height)  # act on it only where it is executed
        certificate_id = officer.issue(application_id)
        assert applicant.record("applications", application_id)["state"] == "issued"

        document = applicant.certificate_document(certificate_id)
        result = verify_certificate(None, document, applicant.genesis)
        assert result.certificate is not None
        assert set(result.signers) <= set(consortium.names)
        _, fresh = applicant.proof("certificates", certificate_id)
        check_not_revoked(bytes.fromhex(certificate_id), fresh)

        after = applicant.record("accounts", consortium.applicant.public_key.hex())
        assert (after["balance"], after["held"]) == (before["balance"] - FEE, before["held"])
        history = [e["step"] for e in applicant.record("applications", application_id)["history"]]
        assert history.count("applied") == 1, "one intent, one transaction"


@pytest.mark.cluster
def test_a_transaction_given_to_every_node_with_the_first_one_dead(consortium, victim) -> None:
    """What the SDK does when no commit comes in time (the PBFT client rule): any node
    taking the transaction is enough; when none does, a node's reason is what the caller
    hears, not the dead node's silence."""
    _, config_path = victim
    config = load_config(config_path)

    async def run() -> None:
        async with AsyncClient.from_config(config) as client:
            assert client.key is not None
            digest = hashlib.sha256(os.urandom(32)).digest()
            item = Item(digest, False, Kind.DOCUMENT, 1, None)
            tx = client.build(FAMILY, REGISTER, Register((item,)))
            await client.submit_everywhere(tx)
            receipt = await client.wait(tx.id.hex())
            assert receipt.height >= 1

            expired = dataclasses.replace(
                tx.body, payload=encode(Register((item,))), nonce=os.urandom(16), expires_at_ms=1
            )
            with pytest.raises(Refused) as refused:
                await client.submit_everywhere(sign_transaction(expired, client.key))
            assert refused.value.code == "expired"

    asyncio.run(run())
