"""A node serving a tampered answer is refused by the client.

A test double stands in front of one honest node (an aiohttp server on
127.0.0.1, in a thread): it forwards every request, and, when told, either
flips one byte of each `/v1/proofs/...` answer, or answers a proof question
with the (genuine, validly signed) proof of another record. The client is
configured with the double as its only node: the SDK raises `ProofInvalid`,
and the command line exits 1 with one line, never a traceback, and writes
nothing it could not prove.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from client import Client, ProofInvalid
from client.sdk import AsyncClient
from ledger.families.evidence import Evidence, Item, Kind, evidence_key
from ledger.families.notarization import Purpose

HOST = "127.0.0.1"
UPSTREAM = "enterprise-2"
FLIP_AT = (0.0, 0.1, 0.33, 0.5, 0.9, 1.0)
"""Where in the body the byte is flipped, as a fraction of its length."""


class TamperingProxy:
    """Forwards to `upstream`; `mode` is "pass", "flip" or "swap" (see the module doc)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.flip_at = 0.5
        self.swap: dict[str, str] = {}
        """Record id asked for -> record id whose proof is served instead."""
        self.tampered = 0
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        target = request.path_qs
        is_proof = request.path.startswith("/v1/proofs/")
        if self.mode == "swap" and is_proof:
            for asked, served in self.swap.items():
                if asked in target:
                    target = target.replace(asked, served)
                    self.tampered += 1
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("accept", "content-type")
        }
        async with self._session.request(
            request.method, self.upstream + target, data=await request.read(), headers=headers
        ) as response:
            body = await response.read()
            status = response.status
            content_type = response.headers.get("Content-Type", "application/octet-stream")
        if self.mode == "flip" and is_proof and status == 200 and body:
            position = min(len(body) - 1, int(len(body) * self.flip_at))
            body = body[:position] + bytes([body[position] ^ 0x01]) + body[position + 1 :]
            self.tampered += 1
        return web.Response(body=body, status=status, headers={"Content-Type": content_type})


@dataclass(frozen=True)
class Records:
    folder: Path
    evidence_a: bytes
    evidence_b: bytes
    application_a: str
    certificate_a: str
    certificate_b: str


@pytest.fixture(scope="module")
def proxy(consortium) -> Iterator[TamperingProxy]:
    proxy = TamperingProxy(consortium.url(UPSTREAM))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(autouse=True)
def _honest_again(proxy: TamperingProxy) -> Iterator[None]:
    yield
    proxy.mode = "pass"
    proxy.flip_at = 0.5
    proxy.swap = {}


@pytest.fixture(scope="module")
def records(consortium, tmp_path_factory: pytest.TempPathFactory) -> Records:
    """Two documents, each notarized, registered through honest nodes; the first's file and
    its certificate (exported from an honest node) saved in `folder`."""
    folder = tmp_path_factory.mktemp("tamper")
    made = []
    with (
        consortium.client(consortium.applicant) as applicant,
        consortium.client(consortium.officer) as officer,
    ):
        for name in ("a.txt", "b.txt"):
            content = f"document {name}\n".encode() + os.urandom(16)
            (folder / name).write_bytes(content)
            digest = hashlib.sha256(content).digest()
            applicant.register_evidence([Item(digest, False, Kind.DOCUMENT, len(content), name)])
            application_id = applicant.apply([digest], Purpose.CONTRACT, name)
            officer.observe(applicant.seen_height)  # act on it only where it is executed
            made.append((digest, application_id, officer.issue(application_id)))
        document = applicant.certificate_document(made[0][2])
    (folder / "cert.json").write_text(json.dumps(document, indent=2))
    return Records(folder, made[0][0], made[1][0], made[0][1], made[0][2], made[1][2])


def one_line_failure(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.cluster
def test_through_an_honest_proxy_everything_verifies(
    consortium, proxy: TamperingProxy, records: Records, cli
) -> None:
    with Client.connect([proxy.url], consortium.genesis) as client:
        _, verified = client.proof("evidence", records.evidence_a.hex())
        assert verified.state[evidence_key(records.evidence_a)] is not None
    config = consortium.write_config(records.folder / "proxy.toml", [proxy.url])
    result = cli("verify", "a.txt", "--certificate", "cert.json", cwd=records.folder, config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("VALID:")
    assert proxy.tampered == 0


@pytest.mark.cluster
def test_the_sdk_refuses_a_proof_with_a_flipped_byte(
    consortium, proxy: TamperingProxy, records: Records
) -> None:
    questions = [
        ("evidence", records.evidence_a.hex()),
        ("certificates", records.certificate_a),
        ("applications", records.application_a),
        ("state", evidence_key(records.evidence_a).hex()),
    ]
    proxy.mode = "flip"
    with Client.connect([proxy.url], consortium.genesis) as client:
        for kind, record_id in questions:
            for flip_at in FLIP_AT:
                proxy.flip_at = flip_at
                before = proxy.tampered
                with pytest.raises(ProofInvalid):
                    client.proof(kind, record_id)
                assert proxy.tampered > before, "the double did not tamper"


@pytest.mark.cluster
def test_the_cli_refuses_a_proof_with_a_flipped_byte(
    consortium, proxy: TamperingProxy, records: Records, cli
) -> None:
    config = consortium.write_config(records.folder / "proxy.toml", [proxy.url])
    proxy.mode = "flip"
    result = cli("verify", "a.txt", "--certificate", "cert.json", cwd=records.folder, config=config)
    line = one_line_failure(result)
    assert "proof" in line, line
    assert "VALID" not in result.stdout


@pytest.mark.cluster
@pytest.mark.parametrize("call", ["proven_record evidence", "proof evidence", "proof certificates"])
def test_the_sdk_refuses_the_proof_of_another_record(
    consortium, proxy: TamperingProxy, records: Records, call: str
) -> None:
    """Genuine, validly signed bundles, but for another evidence item or certificate: the
    answer does not match the question, so the SDK must not take it (`ProofInvalid`)."""
    proxy.mode = "swap"
    proxy.swap = {
        records.evidence_a.hex(): records.evidence_b.hex(),
        records.certificate_a: records.certificate_b,
    }

    async def ask(client: AsyncClient) -> object:
        if call == "proven_record evidence":
            key = evidence_key(records.evidence_a)
            return await client.proven_record("evidence", key, records.evidence_a.hex(), Evidence)
        if call == "proof evidence":
            return await client.proof("evidence", records.evidence_a.hex())
        return await client.proof("certificates", records.certificate_a)

    async def run() -> None:
        async with AsyncClient([proxy.url], consortium.genesis) as client:
            with pytest.raises(ProofInvalid):
                answer = await ask(client)
                pytest.fail(f"{call}: the proof of another record was accepted: {answer!r:.200}")

    asyncio.run(run())
    assert proxy.tampered >= 1


@pytest.mark.cluster
def test_the_cli_refuses_a_certificate_proof_of_another_certificate(
    consortium, proxy: TamperingProxy, records: Records, cli
) -> None:
    config = consortium.write_config(records.folder / "proxy.toml", [proxy.url])
    proxy.mode = "swap"
    proxy.swap = {records.certificate_a: records.certificate_b}
    result = cli("verify", "a.txt", "--certificate", "cert.json", cwd=records.folder, config=config)
    one_line_failure(result)
    assert "VALID" not in result.stdout
    assert proxy.tampered >= 1


@pytest.mark.cluster
def test_the_cli_writes_no_receipt_from_the_proof_of_another_record(
    consortium, proxy: TamperingProxy, records: Records, cli
) -> None:
    config = consortium.write_config(records.folder / "proxy.toml", [proxy.url])
    new = records.folder / "new.txt"
    new.write_bytes(b"a new document\n" + os.urandom(16))
    proxy.mode = "swap"
    proxy.swap = {hashlib.sha256(new.read_bytes()).hexdigest(): records.evidence_b.hex()}
    receipts = records.folder / "receipts"
    result = cli("evidence", "add", new, "--receipts", receipts, cwd=records.folder, config=config)
    one_line_failure(result)
    assert proxy.tampered >= 1
    assert not (receipts / "new.txt.receipt.json").exists()
