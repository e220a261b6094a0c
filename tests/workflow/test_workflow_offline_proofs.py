"""A proof taken from one node verifies with the genesis and the client alone, every node
stopped; and no single flipped bit of it survives verification.

The module's fixture registers a document, has it notarized, saves the proof
bundle, a receipt and the certificate document into a verifier's folder next
to a copy of the genesis, and then stops every node of the consortium.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from client.config import load_genesis
from client.errors import VerificationFailed
from client.files import HashedFile, receipt_document
from client.verify import verify_certificate, verify_receipt
from ledger.encoding import decode, encode
from ledger.errors import LedgerError
from ledger.families.evidence import Evidence, Item, Kind, evidence_key
from ledger.families.notarization import Purpose
from ledger.proofs import BUNDLE_BYTES_MAX, ProofBundle, bundle_from_json, verify_bundle

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 60


@dataclass(frozen=True)
class Saved:
    folder: Path
    """Holds only genesis.json, the file, its receipt, the bundle and the certificate."""
    evidence_id: bytes
    certificate_id: str
    bundle_bytes: bytes
    certificate_bundle_bytes: bytes


@pytest.fixture(scope="module")
def saved(consortium, tmp_path_factory: pytest.TempPathFactory) -> Saved:
    folder = tmp_path_factory.mktemp("verifier")
    content = b"Deed of gift, signed 1 December 2026\n" + os.urandom(32)
    digest = hashlib.sha256(content).digest()
    (folder / "deed.txt").write_bytes(content)
    with (
        consortium.sync_client(consortium.applicant, first="globex") as applicant,
        consortium.sync_client(consortium.officer) as officer,
    ):
        applicant.register_evidence([Item(digest, False, Kind.DOCUMENT, len(content), "deed")])
        application_id = applicant.apply([digest], Purpose.CONTRACT, "a gift")
        # The officer acts on the application: only at a node that has executed it.
        officer.observe(applicant.seen_height)
        certificate_id = officer.issue(application_id)
        bundle, verified = applicant.proof("evidence", digest.hex())
        document = applicant.certificate_document(certificate_id)
    record = decode(Evidence, verified.state[evidence_key(digest)])  # type: ignore[arg-type]
    hashed = HashedFile(folder / "deed.txt", digest, len(content), Kind.DOCUMENT, None)
    receipt = receipt_document(hashed, record.tx_id.hex(), record.height, record.time_ms, bundle)
    (folder / "deed.txt.receipt.json").write_text(json.dumps(receipt, indent=2))
    (folder / "certificate.json").write_text(json.dumps(document, indent=2))
    (folder / "bundle.bin").write_bytes(encode(bundle))
    shutil.copy(consortium.genesis_path, folder / "genesis.json")

    # Every node stops; nothing answers on their ports any more.
    consortium.stop_all()
    assert consortium.running() == [], consortium.running()
    for spec in consortium.specs:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", spec.api_port)) != 0, f"{spec.name} answers"
    return Saved(
        folder,
        digest,
        certificate_id,
        encode(bundle),
        encode(bundle_from_json(document["proof"])),
    )


def offline_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "NOTARYCHAIN_CONFIG"}


def run_cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


@pytest.mark.cluster
def test_the_saved_proofs_verify_with_only_the_genesis_while_every_node_is_stopped(
    saved: Saved,
) -> None:
    folder = saved.folder
    assert sorted(p.name for p in folder.iterdir()) == [
        "bundle.bin",
        "certificate.json",
        "deed.txt",
        "deed.txt.receipt.json",
        "genesis.json",
    ]
    genesis = load_genesis(folder / "genesis.json")

    bundle = decode(ProofBundle, (folder / "bundle.bin").read_bytes())
    verified = verify_bundle(bundle, genesis)
    record = decode(Evidence, verified.state[evidence_key(saved.evidence_id)])  # type: ignore[arg-type]
    assert record.id == saved.evidence_id
    assert len(verified.signers) >= 3
    assert [tx.id for tx, _ in verified.transactions] == [record.tx_id]

    receipt = json.loads((folder / "deed.txt.receipt.json").read_text())
    proven = verify_receipt(folder / "deed.txt", receipt, genesis)
    assert proven.sha256 == saved.evidence_id.hex()
    assert proven.trusted_time_ms == record.time_ms

    document = json.loads((folder / "certificate.json").read_text())
    proven = verify_certificate(folder / "deed.txt", document, genesis)
    assert proven.certificate is not None
    assert proven.certificate.id.hex() == saved.certificate_id

    for source in (["--certificate", "certificate.json"], ["--receipt", "deed.txt.receipt.json"]):
        result = run_cli(
            folder, "verify", "deed.txt", *source, "--genesis", "genesis.json", "--offline"
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("VALID:"), result.stdout
        assert saved.evidence_id.hex() in result.stdout
        assert "Traceback" not in result.stderr
    as_json = run_cli(
        folder,
        "--json",
        "verify",
        "deed.txt",
        "--certificate",
        "certificate.json",
        "--genesis",
        "genesis.json",
        "--offline",
    )
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert answer["state"] == "valid"
    assert answer["certificate_id"] == saved.certificate_id
    assert answer["sha256"] == saved.evidence_id.hex()


BLOCKER = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("node", "consensus"):
            raise ImportError(f"{name} is not available to a verifier")
        return None

sys.meta_path.insert(0, Blocker())
from client.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.cluster
def test_the_verifier_needs_neither_the_node_nor_the_consensus_package(saved: Saved) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER,
            "verify",
            "deed.txt",
            "--certificate",
            "certificate.json",
            "--genesis",
            "genesis.json",
            "--offline",
        ],
        cwd=saved.folder,
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("VALID:")


def flip_every_bit_position(data: bytes, genesis: Any) -> tuple[list[int], list[str]]:
    """Flip one bit in each byte in turn (a different bit per position); return the
    positions whose flip still verified, and any error that was not a `LedgerError`."""
    passed: list[int] = []
    unexpected: list[str] = []
    buffer = bytearray(data)
    for position in range(len(data)):
        mask = 1 << (position % 8)
        buffer[position] ^= mask
        try:
            bundle = decode(ProofBundle, bytes(buffer), input_bytes_max=BUNDLE_BYTES_MAX)
            verify_bundle(bundle, genesis)
        except LedgerError:
            pass
        except Exception as exc:
            unexpected.append(f"byte {position}: {type(exc).__name__}: {exc}")
        else:
            passed.append(position)
        buffer[position] ^= mask
    return passed, unexpected


@pytest.mark.cluster
@pytest.mark.parametrize("which", ["evidence bundle", "certificate bundle"])
def test_flipping_any_bit_of_a_bundle_makes_verification_fail(saved: Saved, which: str) -> None:
    genesis = load_genesis(saved.folder / "genesis.json")
    data = saved.bundle_bytes if which == "evidence bundle" else saved.certificate_bundle_bytes
    verify_bundle(decode(ProofBundle, data), genesis)  # the untouched bytes verify
    passed, unexpected = flip_every_bit_position(data, genesis)
    print(f"{which}: {len(data)} bytes, every position flipped")
    assert not unexpected, unexpected[:10]
    assert not passed, f"{len(passed)} flipped positions still verified: {passed[:20]}"


@pytest.mark.cluster
def test_a_flipped_bit_in_the_saved_certificate_fails_its_verification(saved: Saved) -> None:
    """The same through the client's document check, for a spread of positions."""
    genesis = load_genesis(saved.folder / "genesis.json")
    document = json.loads((saved.folder / "certificate.json").read_text())
    data = bytearray(saved.certificate_bundle_bytes)
    for position in range(0, len(data), max(1, len(data) // 64)):
        data[position] ^= 0x80
        tampered = {
            **document,
            "proof": {**document["proof"], "bundle": base64.b64encode(data).decode()},
        }
        with pytest.raises(VerificationFailed):
            verify_certificate(saved.folder / "deed.txt", tampered, genesis)
        data[position] ^= 0x80
