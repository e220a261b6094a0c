"""A fifth institution joins through governance while transactions keep flowing.

Real node processes on 127.0.0.1: the new institution's material is made with
`notarychain-node add-institution`, its node starts as a follower, three
administrators approve the proposal, and at the stated height the validator
set grows to five; the new node caught up and votes, and a proof made after
the change verifies with the genesis alone (it carries the change).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import free_ports

from client.errors import ClientError
from client.sdk import AsyncClient
from ledger.families.evidence import Item, Kind, evidence_key
from ledger.families.governance import AddInstitution, Change, ChangeKind, Member
from ledger.genesis import ConsensusSettings, GenesisIdentity
from ledger.keyfile import load_private_key, save_private_key
from ledger.keys import PrivateKey, public_key_text
from node.families import code_hashes
from node.material import InstitutionSpec, create_consortium

NAMES = (
    ("notary-office", "notary"),
    ("acme", "enterprise"),
    ("globex", "enterprise"),
    ("initech", "enterprise"),
)
WINDOW = 8
WAIT_S = 120


class Consortium:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        ports = free_ports(2 * len(NAMES) + 2)
        self.specs = [
            InstitutionSpec(name, role, "127.0.0.1", ports[2 * i], ports[2 * i + 1])
            for i, (name, role) in enumerate(NAMES)
        ]
        self.new_ports = ports[-2:]
        self.applicant = PrivateKey.generate()
        self.genesis = create_consortium(
            root,
            self.specs,
            chain_id="notarychain-membership-test",
            consensus=ConsensusSettings(window_size=WINDOW, request_timeout_ms=1500),
            families=code_hashes(),
            identities=(
                GenesisIdentity(
                    key=public_key_text(self.applicant.public_key),
                    institution="acme",
                    role="applicant",
                    name="load",
                ),
            ),
        )
        save_private_key(root / "applicant.key", self.applicant)

    def api(self, name: str) -> str:
        if name == "court":
            return f"http://127.0.0.1:{self.new_ports[1]}"
        spec = next(s for s in self.specs if s.name == name)
        return f"http://127.0.0.1:{spec.api_port}"

    def start(self, name: str) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node",
                "run",
                "--config",
                str(self.root / name / "node.toml"),
                "--log-format",
                "text",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self, lines: int = 30) -> str:
        parts = []
        for name in self.processes:
            text = (self.root / f"{name}.log").read_text(errors="replace").splitlines()
            parts.append(f"==== {name}\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def client(self, names: list[str], key: PrivateKey | None = None) -> AsyncClient:
        return AsyncClient([self.api(n) for n in names], self.genesis, key)


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    consortium = Consortium(tmp_path / "consortium")
    try:
        for name, _ in NAMES:
            consortium.start(name)
        yield consortium
    finally:
        consortium.stop()


async def wait_for(predicate, what: str, timeout_s: float = WAIT_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def keep_writing(consortium: Consortium, stop: threading.Event, committed: list[bytes]) -> None:
    """A client registering evidence one item at a time until told to stop."""

    async def run() -> None:
        names = [name for name, _ in NAMES]
        async with consortium.client(names, consortium.applicant) as client:
            while not stop.is_set():
                digest = hashlib.sha256(os.urandom(32)).digest()
                try:
                    await client.register_evidence([Item(digest, False, Kind.DOCUMENT, 1, None)])
                except ClientError:
                    await asyncio.sleep(0.2)  # refused or unavailable: try again
                    continue
                committed.append(digest)

    asyncio.run(run())


@pytest.mark.cluster
def test_a_fifth_institution_joins_while_transactions_flow(consortium: Consortium) -> None:
    root = consortium.root
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "node",
            "add-institution",
            "--consortium",
            str(root),
            "--institution",
            "court:observer",
            "--api-port",
            str(consortium.new_ports[1]),
            "--peer-port",
            str(consortium.new_ports[0]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    consortium.start("court")

    stop = threading.Event()
    committed: list[bytes] = []
    writer = threading.Thread(target=keep_writing, args=(consortium, stop, committed))
    writer.start()
    try:
        asyncio.run(join_court(consortium, committed))
    except (AssertionError, ClientError) as failure:
        raise AssertionError(f"{failure}\n{consortium.logs()}") from failure
    finally:
        stop.set()
        writer.join(timeout=60)
    assert len(committed) > 2 * WINDOW


async def join_court(consortium: Consortium, committed: list[bytes]) -> None:
    root = consortium.root
    names = [name for name, _ in NAMES]
    admins = {n: load_private_key(root / n / "admin.key") for n in names}
    data = json.loads((root / "court" / "member.json").read_text())
    member = Member(
        data["name"],
        data["role"],
        bytes.fromhex(data["admin_key"]),
        bytes.fromhex(data["node_key"]),
        data["host"],
        data["peer_port"],
        data["api_port"],
    )
    async with consortium.client(names) as reader:
        await wait_for(lambda: _height_at_least(reader, 3), "the first blocks")
        effective = (await reader.status())["height"] + 2 * WINDOW + 10
        change = Change(ChangeKind.ADD_INSTITUTION, AddInstitution(member), None, None)
        async with consortium.client(names, admins["notary-office"]) as proposer:
            proposal_id = await proposer.propose(change, effective, "the court joins")
        for name in ("acme", "globex"):
            async with consortium.client(names, admins[name]) as approver:
                await approver.approve(proposal_id)

        async def approved() -> bool:
            # The last approval was acknowledged by its own node; the reader's node may
            # not have executed that block yet, and then still shows the proposal open.
            record = await reader.record("governance/proposals", proposal_id)
            return bool(record["state"] == "approved")

        await wait_for(approved, "the reader's node to show the proposal approved")

        court = consortium.client(["court"])
        try:

            async def court_votes() -> bool:
                try:
                    status = await court.status()
                except ClientError:
                    return False  # not up yet
                return bool(status["validator"]) and status["epoch"] == 1

            await wait_for(court_votes, "the court to become a validator")
            for name in names:
                status = await reader.status(names.index(name))
                assert status["epoch"] == 1
            # The chain goes on with five validators, the court's node among them.
            before = (await court.status())["height"]
            await wait_for(lambda: _height_at_least(court, before + 5), "blocks after the change")
            last = committed[-1]

            async def court_has_it() -> bool:
                try:
                    await court.record("evidence", last.hex())
                except ClientError:
                    return False  # acknowledged by another node; the court is a block behind
                return True

            await wait_for(court_has_it, "the court to execute the last acknowledged block")
            _, verified = await court.proof("evidence", last.hex())
            assert verified.state[evidence_key(last)] is not None
            assert verified.validators.n == 5
            bundle, _ = await court.proof("evidence", last.hex())
            assert len(bundle.validator_set_changes) == 1
        finally:
            await court.close()


async def _height_at_least(client: AsyncClient, height: int) -> bool:
    try:
        return int((await client.status())["height"]) >= height
    except ClientError:
        return False  # not up yet
