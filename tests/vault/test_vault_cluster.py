"""The vault's acceptance, through real node processes and the command line.

A 200 MB file is stored with one command at bounded memory (the CLI process's
peak resident memory is measured and printed), fetched by a grantee on another
identity and decrypted to the same SHA-256; a non-grantee, a revoked grantee
and an expired grant are refused with their reasons; with f nodes stopped the
content is still retrievable; no node's data directory holds the plaintext;
after deletion downloads are refused, the ciphertext is gone from every node,
and the evidence's receipt and certificate still verify offline; storage and
download fees show up in the balances as the schedule says.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from client.config import load_config
from client.vault import MONTHS_DEFAULT, AsyncVaultClient, VaultClient
from ledger.encoding import encode
from ledger.families import vault as v
from ledger.families.vault import MIB, mebibytes
from ledger.keyfile import load_private_key
from ledger.keys import PrivateKey
from node.up import DEV_APPLY_FEE, DEV_BALANCE, DEV_VAULT_DOWNLOAD, DEV_VAULT_STORE_PER_MIB_MONTH

pytestmark = pytest.mark.cluster

LARGE_FILE_BYTES = 200 * MIB
"""The acceptance asks for a 200 MB file (this is 200 MiB, a little more)."""
PEAK_RSS_BYTES_MAX = 150 * 1024 * 1024
COMMAND_TIMEOUT_S = 600
MARKER = b"NOTARYCHAIN-VAULT-PLAINTEXT-MARKER:" + bytes(range(0xC0, 0xDD))
MARKER_EVERY_CHUNKS = 16
CREDIT = 1_000
ERASE_WAIT_S = 60.0


def write_seeded_file(path: Path, size: int, seed: int) -> str:
    """A file of seeded random bytes, written 1 MiB at a time, with MARKER planted in it;
    its SHA-256 (hex)."""
    generator = random.Random(seed)
    digest = hashlib.sha256()
    written = 0
    index = 0
    with path.open("wb") as handle:
        while written < size:
            block = bytearray(generator.randbytes(min(MIB, size - written)))
            if index % MARKER_EVERY_CHUNKS == 0 and len(block) >= 1000 + len(MARKER):
                block[1000 : 1000 + len(MARKER)] = MARKER
            handle.write(block)
            digest.update(block)
            written += len(block)
            index += 1
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Files under `root` that contain `needle` (read in blocks, overlapping by its length)."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        tail = b""
        with path.open("rb") as handle:
            while block := handle.read(MIB):
                if needle in tail + block:
                    found.append(path)
                    break
                tail = block[-len(needle) :]
    return found


def chunk_files(node_dir: Path) -> list[Path]:
    vault = node_dir / "data" / "vault"
    if not vault.is_dir():
        return []
    return [p for p in vault.glob("??/*") if p.is_file()]


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int
    wall_s: float


# The command runs under this wrapper, which writes the process's own high-water
# resident memory (VmHWM) when it exits. Not wait4's ru_maxrss: the kernel folds
# into it the memory of the forking parent, here the whole pytest process.
PEAK_RSS_WRAPPER = """
import atexit, os, runpy, sys
def report():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            with open(os.environ["PEAK_RSS_FILE"], "w") as out:
                out.write(str(int(line.split()[1]) * 1024))
atexit.register(report)
module = sys.argv.pop(1)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run_measured(module: str, args: list[str], directory: Path) -> Measured:
    """Run `python -m module args`; its output, and its own peak resident memory."""
    out, err = directory / "measured.out", directory / "measured.err"
    peak = directory / "measured.peak"
    peak.unlink(missing_ok=True)
    environment = {**os.environ, "PEAK_RSS_FILE": str(peak)}
    started = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_WRAPPER, module, *args],
            stdout=stdout,
            stderr=stderr,
            env=environment,
            check=False,
            timeout=COMMAND_TIMEOUT_S,
        )
    wall_s = time.monotonic() - started
    assert peak.exists(), f"the command reported no peak memory: {err.read_text()}"
    return Measured(
        process.returncode, out.read_text(), err.read_text(), int(peak.read_text()), wall_s
    )


@dataclass(frozen=True)
class People:
    owner: str
    reader: str
    stranger: str
    late: str


@pytest.fixture(scope="module")
def people(consortium: Any) -> People:
    """Three more applicants, enrolled by an enterprise administrator and credited."""
    data: Path = consortium.data
    with consortium.config.open("a") as config:
        config.write(f'admin = "{consortium.names[-1]}/admin.key"\n')
        for name in ("reader", "stranger", "late"):
            config.write(f'{name} = "dev/{name}.key"\n')
    keys = {}
    for name in ("reader", "stranger", "late"):
        key = consortium.ok("identity", "new", "--out", str(data / "dev" / f"{name}.key"))
        keys[name] = key["public_key"]
        consortium.ok(
            "identity", "enrol", keys[name], "--role", "applicant", "--name", name, identity="admin"
        )
        consortium.ok("accounts", "credit", keys[name], str(CREDIT), identity="admin")
        consortium.ok("vault", "key", identity=name)
    owner = consortium.ok("identity", "show")["key"]
    return People(owner, keys["reader"], keys["stranger"], keys["late"])


@pytest.fixture(scope="module")
def sdk(consortium: Any) -> Iterator[VaultClient]:
    with VaultClient.from_config(load_config(consortium.config)) as client:
        yield client


def balance(consortium: Any, identity: str | None = None) -> int:
    return int(consortium.ok("accounts", "balance", identity=identity)["balance"])


def revenue(sdk: VaultClient, institutions: list[str]) -> dict[str, int]:
    return {name: sdk.institution_balance(name).balance for name in institutions}


def advance(consortium: Any, blocks: int, directory: Path) -> None:
    """Commit `blocks` more blocks (one small registration each)."""
    for i in range(blocks):
        path = directory / f"tick-{time.time_ns()}-{i}.txt"
        path.write_text(f"tick {i} {time.time_ns()}\n")
        consortium.ok("evidence", "add", str(path))


def test_large_file_stored_shared_refused_replicated_and_erased(
    consortium: Any, people: People, sdk: VaultClient, tmp_path: Path
) -> None:
    original = tmp_path / "hearing-recording.bin"
    started = time.monotonic()
    digest = write_seeded_file(original, LARGE_FILE_BYTES, seed=20261130)
    print(f"\ngenerated {LARGE_FILE_BYTES} bytes in {time.monotonic() - started:.1f} s")

    # The evidence's receipt, and a notarial certificate over it, for the end.
    receipts = tmp_path / "receipts"
    added = consortium.ok("evidence", "add", str(original), "--receipts", str(receipts))
    assert added["evidence_id"] == digest
    application = consortium.ok(
        "notarize", "apply", digest, "--purpose", "hearing recording", "--category", "other"
    )
    issued = consortium.ok("notarize", "issue", application["application_id"], identity="officer")
    certificate = tmp_path / "certificate.json"
    consortium.ok("certificate", "export", issued["certificate_id"], "--out", str(certificate))

    # One command stores it, at bounded memory.
    owner_before = balance(consortium)
    assert owner_before == DEV_BALANCE - DEV_APPLY_FEE
    put = run_measured(
        "client",
        [
            "--config",
            str(consortium.config),
            "--json",
            "vault",
            "put",
            str(original),
        ],
        tmp_path,
    )
    assert put.returncode == 0, put.stdout + put.stderr
    stored = json.loads(put.stdout)
    print(
        f"vault put of {LARGE_FILE_BYTES} bytes: peak RSS {put.peak_rss_bytes / MIB:.1f} MiB, "
        f"wall time {put.wall_s:.1f} s"
    )
    assert put.peak_rss_bytes < PEAK_RSS_BYTES_MAX
    assert stored["evidence_id"] == digest
    institutions: list[str] = stored["institutions"]
    assert len(institutions) >= 2  # f + 1 with n = 4
    assert stored["uploaded_chunks"] == len(institutions) * stored["chunks"]

    # The storage fee: per MiB and month (12 by default), to each storing institution.
    per_institution = DEV_VAULT_STORE_PER_MIB_MONTH * mebibytes(LARGE_FILE_BYTES) * MONTHS_DEFAULT
    assert stored["storage_fee"] == per_institution * len(institutions)
    assert balance(consortium) == owner_before - stored["storage_fee"]
    paid = revenue(sdk, institutions)
    assert all(amount >= per_institution for amount in paid.values()), paid

    # Each storing node holds every chunk; no node holds the plaintext.
    for name in consortium.names:
        held = chunk_files(consortium.data / name)
        assert len(held) == (stored["chunks"] if name in institutions else 0), name
        assert files_containing(consortium.data / name, MARKER) == [], name

    # A grantee on another identity fetches it: the same SHA-256, and the download fee.
    consortium.ok("vault", "grant", digest, "--to", people.reader)
    reader_before = balance(consortium, "reader")
    started = time.monotonic()
    fetched = consortium.ok(
        "vault", "get", digest, "--out", str(tmp_path / "r1"), identity="reader"
    )
    print(f"vault get: {time.monotonic() - started:.1f} s")
    assert sha256_of(tmp_path / "r1") == digest
    assert fetched["fee_paid"] == DEV_VAULT_DOWNLOAD
    assert balance(consortium, "reader") == reader_before - DEV_VAULT_DOWNLOAD
    after_download = revenue(sdk, institutions)
    assert sum(after_download.values()) - sum(paid.values()) == DEV_VAULT_DOWNLOAD
    (tmp_path / "r1").unlink()

    # A non-grantee and an expired grant are refused, with their reasons.
    assert "no_grant" in consortium.refused(
        "vault", "get", digest, "--out", str(tmp_path / "s"), identity="stranger"
    )
    expiry = consortium.height() + 3
    consortium.ok("vault", "grant", digest, "--to", people.late, "--expires-height", str(expiry))
    advance(consortium, 3, tmp_path)
    refusal = consortium.refused(
        "vault", "get", digest, "--out", str(tmp_path / "l"), identity="late"
    )
    assert "grant_expired" in refusal and str(expiry) in refusal
    assert balance(consortium, "stranger") == CREDIT and balance(consortium, "late") == CREDIT

    # With f nodes stopped (one storing node killed), the content is still retrievable.
    # The victim is a storing node other than the primary: this test is about the vault's
    # replicas, not about view changes (which tests/node and the simulator cover).
    primary = consortium.names[consortium.status_of(institutions[-1])["primary"]]
    victim = next(name for name in institutions if name != primary)
    consortium.stop(victim, signal.SIGKILL)
    consortium.ok("vault", "get", digest, "--out", str(tmp_path / "r2"), identity="reader")
    assert sha256_of(tmp_path / "r2") == digest
    (tmp_path / "r2").unlink()

    # A revoked grantee is refused.
    consortium.ok("vault", "revoke", digest, "--to", people.reader, "--reason", "case closed")
    assert "grant_revoked" in consortium.refused(
        "vault", "get", digest, "--out", str(tmp_path / "r3"), identity="reader"
    )

    # Erasure: downloads refused; the ciphertext gone from every node (the stopped one
    # drops it when it catches up); the receipt and the certificate still verify offline.
    consortium.ok("vault", "delete", digest, "--reason", "right to erasure")
    assert "deleted" in consortium.refused("vault", "get", digest, "--out", str(tmp_path / "o"))
    consortium.start(victim)
    consortium.wait_until(consortium.names, consortium.height())
    deadline = time.monotonic() + ERASE_WAIT_S
    while any(chunk_files(consortium.data / name) for name in consortium.names):
        assert time.monotonic() < deadline, "the ciphertext was not erased everywhere"
        time.sleep(0.3)
    history = consortium.ok("vault", "show", digest)
    steps = [event["step"] for event in history["history"]]
    for step in ("stored", "granted", "download_authorized", "grant_revoked", "deleted"):
        assert step in steps
    receipt = receipts / f"{original.name}.receipt.json"
    assert (
        consortium.ok("verify", str(original), "--receipt", str(receipt), "--offline")["state"]
        == "valid"
    )
    assert (
        consortium.ok("verify", str(original), "--certificate", str(certificate), "--offline")[
            "state"
        ]
        == "valid"
    )


def signed_download(
    key: PrivateKey,
    chain_id: str,
    authorization: str,
    evidence_id: str,
    *,
    index: int,
    skew_ms: int = 0,
) -> dict[str, str]:
    request = v.DownloadRequest(
        chain_id,
        bytes.fromhex(authorization),
        bytes.fromhex(evidence_id),
        index,
        int(time.time() * 1000) + skew_ms,
    )
    signature = key.sign(v.DOWNLOAD_DOMAIN + encode(request))
    signed = v.SignedDownload(request, key.public_key, signature)
    return {"X-Notarychain-Download": encode(signed).hex()}


def http(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body else None


def test_nodes_serve_ciphertext_only_to_signed_requests_of_active_grantees(
    consortium: Any, people: People, tmp_path: Path
) -> None:
    document = tmp_path / "deed.txt"
    digest = write_seeded_file(document, 5000, seed=11)
    stored = consortium.ok("vault", "put", str(document))
    consortium.ok("vault", "grant", digest, "--to", people.reader)
    config = load_config(consortium.config)
    chain_id = config.genesis().chain_id
    reader = load_private_key(consortium.data / "dev" / "reader.key")
    stranger = load_private_key(consortium.data / "dev" / "stranger.key")

    async def authorize() -> tuple[str, int]:
        async with AsyncVaultClient.from_config(config, "reader") as client:
            return await client.authorize_download(bytes.fromhex(digest))

    authorization, authorized_height = asyncio.run(authorize())
    # The authorization committed on the node the client asked; the raw requests below
    # go to a storing node, which must have executed that block first.
    consortium.wait_until(consortium.names, authorized_height)
    base = consortium.urls[stored["institutions"][0]] + f"/v1/vault/entries/{digest}"

    status, manifest = http(
        f"{base}/manifest",
        headers=signed_download(reader, chain_id, authorization, digest, index=-1),
    )
    assert status == 200 and len(manifest) == 32
    status, chunk = http(
        f"{base}/chunks/0",
        headers=signed_download(reader, chain_id, authorization, digest, index=0),
    )
    assert status == 200 and hashlib.sha256(chunk).digest() == manifest
    assert MARKER not in chunk
    assert http(f"{base}/chunks/0", "HEAD")[0] == 200

    def refusal(headers: dict[str, str] | None, path: str = "/chunks/0") -> tuple[int, str]:
        status, body = http(base + path, headers=headers)
        return status, body["error"]["code"]

    assert refusal(None) == (401, "unsigned")
    stale = signed_download(reader, chain_id, authorization, digest, index=0, skew_ms=-120_000)
    assert refusal(stale) == (401, "stale_request")
    other_chunk = signed_download(reader, chain_id, authorization, digest, index=-1)
    assert refusal(other_chunk) == (403, "wrong_request")
    borrowed = signed_download(stranger, chain_id, authorization, digest, index=0)
    assert refusal(borrowed) == (403, "not_authorized")
    consortium.ok("vault", "revoke", digest, "--to", people.reader)
    revoked = signed_download(reader, chain_id, authorization, digest, index=0)
    assert refusal(revoked) == (403, "grant_revoked")
    consortium.ok("vault", "delete", digest)
    erased = signed_download(reader, chain_id, authorization, digest, index=0)
    assert refusal(erased) == (410, "deleted")


def test_access_request_holds_refunds_and_pays_the_download_fee(
    consortium: Any, people: People, sdk: VaultClient, tmp_path: Path
) -> None:
    document = tmp_path / "contract.pdf"
    digest = write_seeded_file(document, 3 * MIB + 123, seed=7)
    stored = consortium.ok("vault", "put", str(document))
    institutions = stored["institutions"]
    fee = DEV_VAULT_STORE_PER_MIB_MONTH * 4 * MONTHS_DEFAULT * len(institutions)
    assert stored["storage_fee"] == fee

    start = balance(consortium, "stranger")
    first = consortium.ok("vault", "request", digest, "--reason", "court case", identity="stranger")
    assert balance(consortium, "stranger") == start - DEV_VAULT_DOWNLOAD
    listed = consortium.ok("vault", "requests", digest)
    assert [r["id"] for r in listed["requests"]] == [first["request_id"]]
    consortium.ok("vault", "requests", digest, "--answer", first["request_id"], "--refuse", "no")
    assert balance(consortium, "stranger") == start  # refunded

    second = consortium.ok("vault", "request", digest, "--reason", "again", identity="stranger")
    consortium.ok("vault", "requests", digest, "--answer", second["request_id"], "--grant")
    before = revenue(sdk, institutions)
    fetched = consortium.ok(
        "vault", "get", digest, "--out", str(tmp_path / "c"), identity="stranger"
    )
    assert sha256_of(tmp_path / "c") == digest
    assert fetched["fee_paid"] == DEV_VAULT_DOWNLOAD  # the held fee paid this download
    assert balance(consortium, "stranger") == start - DEV_VAULT_DOWNLOAD
    assert sum(revenue(sdk, institutions).values()) - sum(before.values()) == DEV_VAULT_DOWNLOAD
    account = consortium.ok("accounts", "balance", identity="stranger")
    assert account["held"] == 0

    steps = [e["step"] for e in consortium.ok("vault", "show", digest)["history"]]
    assert steps == [
        "stored",
        "fee_paid",
        "access_requested",
        "fee_held",
        "request_refused",
        "fee_refunded",
        "access_requested",
        "fee_held",
        "request_granted",
        "download_authorized",
        "fee_paid",
    ]


def test_an_upload_interrupted_by_a_stopped_node_resumes_where_it_stopped(
    consortium: Any, people: People, tmp_path: Path
) -> None:
    document = tmp_path / "site-survey.mp4"
    digest = write_seeded_file(document, 5 * MIB + 9, seed=5)
    primary = consortium.names[consortium.status_of(consortium.names[-1])["primary"]]
    storing = [name for name in consortium.names if name != primary][:2]
    down = storing[1]
    consortium.stop(down)
    failed = consortium.cli("vault", "put", str(document), "--institutions", ",".join(storing))
    assert failed.returncode == 1
    assert "upload incomplete" in failed.stderr and "resume" in failed.stderr
    consortium.start(down)
    consortium.wait_until(consortium.names, consortium.height())
    resumed = consortium.ok("vault", "put", str(document))
    assert resumed["tx_id"] is None  # the entry stored before is reused
    assert resumed["institutions"] == storing
    assert resumed["uploaded_chunks"] == resumed["chunks"]  # only the missing node's copy
    for name in storing:
        assert len(chunk_files(consortium.data / name)) >= resumed["chunks"]
    fetched = consortium.ok("vault", "get", digest, "--out", str(tmp_path / "back"))
    assert fetched["evidence_id"] == digest and sha256_of(tmp_path / "back") == digest


def test_storage_is_paid_by_size_and_time_and_renewed_from_the_command_line(
    consortium: Any, people: People, sdk: VaultClient, tmp_path: Path
) -> None:
    document = tmp_path / "lease.pdf"
    digest = write_seeded_file(document, 2 * MIB + 5, seed=3)  # charged as 3 MiB
    start = balance(consortium)
    stored = consortium.ok("vault", "put", str(document), "--months", "2")
    institutions = stored["institutions"]
    per_month = DEV_VAULT_STORE_PER_MIB_MONTH * 3  # to each storing institution
    assert stored["storage_fee"] == per_month * 2 * len(institutions)
    assert balance(consortium) == start - stored["storage_fee"]

    before = revenue(sdk, institutions)
    renewed = consortium.ok("vault", "renew", digest, "--months", "5")
    assert renewed["fee_paid"] == per_month * 5 * len(institutions)
    assert renewed["paid_until_ms"] == stored["paid_until_ms"] + 5 * v.MONTH_MS
    assert balance(consortium) == start - stored["storage_fee"] - renewed["fee_paid"]
    after = revenue(sdk, institutions)
    assert all(after[name] - before[name] == per_month * 5 for name in institutions)
    shown = consortium.ok("vault", "show", digest)
    assert shown["paid_until_ms"] == renewed["paid_until_ms"]
    assert [e["step"] for e in shown["history"]][-2:] == ["renewed", "fee_paid"]

    assert "not_owner" in consortium.refused(
        "vault", "renew", digest, "--months", "1", identity="stranger"
    )
    assert "1 to 120 months" in consortium.refused("vault", "renew", digest, "--months", "0")
    assert balance(consortium) == start - stored["storage_fee"] - renewed["fee_paid"]
