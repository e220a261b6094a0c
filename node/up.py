"""`notarychain-node up`: a local consortium for development, in one command.

Creates the consortium in the data directory when it holds none (a notary
office and enterprises, plus two development identities: an applicant and a
notary officer), starts every node as its own process with its log in
`DIR/NAME/node.log`, waits until they agree, prints their addresses, writes
`DIR/client.toml`, and stops them all on Ctrl-C or SIGTERM. Running it again
on the same directory resumes the same chain. It ends only the processes it
started, by their PIDs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any, Final

from ledger.families.fees import APPLY_FEE
from ledger.families.vault import DOWNLOAD_FEE, STORE_FEE
from ledger.genesis import Genesis, GenesisIdentity, parse_genesis
from ledger.keyfile import save_private_key
from ledger.keys import PrivateKey, public_key_text
from node.families import code_hashes
from node.material import InstitutionSpec, MaterialError, create_consortium, passphrase_from_env

READY_TIMEOUT_S: Final = 60.0
DEV_BALANCE: Final = 10_000
DEV_APPLY_FEE: Final = 100
DEV_VAULT_STORE_PER_MIB_MONTH: Final = 1
DEV_VAULT_DOWNLOAD: Final = 5
STOP_TIMEOUT_S: Final = 15.0


class UpError(Exception):
    pass


def local_specs(nodes: int, base_port: int) -> list[InstitutionSpec]:
    names = [("notary-office", "notary")] + [
        (f"enterprise-{i}", "enterprise") for i in range(1, nodes)
    ]
    return [
        InstitutionSpec(name, role, "127.0.0.1", base_port + 100 + i, base_port + i)
        for i, (name, role) in enumerate(names)
    ]


def create_local(data: Path, nodes: int, base_port: int) -> Genesis:
    if nodes < 1:
        raise UpError("--nodes must be at least 1")
    if not 1 <= base_port <= 65535 - 100 - nodes:
        raise UpError("--base-port leaves no room for the nodes' ports")
    specs = local_specs(nodes, base_port)
    applicant, officer = PrivateKey.generate(), PrivateKey.generate()
    identities = (
        GenesisIdentity(
            key=public_key_text(applicant.public_key),
            institution=specs[-1].name if nodes > 1 else specs[0].name,
            role="applicant",
            name="Development applicant",
            level=1,
            balance=DEV_BALANCE,
        ),
        GenesisIdentity(
            key=public_key_text(officer.public_key),
            institution=specs[0].name,
            role="officer",
            name="Development notary officer",
            level=3,
        ),
    )
    try:
        genesis = create_consortium(
            data,
            specs,
            chain_id=f"notarychain-local-{int(time.time())}",
            families=code_hashes(),
            identities=identities,
            fees={
                APPLY_FEE: DEV_APPLY_FEE,
                STORE_FEE: DEV_VAULT_STORE_PER_MIB_MONTH,
                DOWNLOAD_FEE: DEV_VAULT_DOWNLOAD,
            },
        )
    except MaterialError as exc:
        raise UpError(str(exc)) from None
    dev = data / "dev"
    dev.mkdir()
    passphrase = passphrase_from_env()
    save_private_key(dev / "applicant.key", applicant, passphrase)
    save_private_key(dev / "officer.key", officer, passphrase)
    return genesis


def write_client_config(data: Path, genesis: Genesis) -> Path:
    lines = [
        "# Written by `notarychain-node up`: a development client configuration.",
        "# Paths are relative to this file.",
        'genesis = "genesis.json"',
        'identity = "dev/applicant.key"',
        "nodes = [",
        *[f'  "http://{i.node.host}:{i.node.api_port}",' for i in genesis.institutions],
        "]",
        "",
        "[identities]",
        'applicant = "dev/applicant.key"',
        'officer = "dev/officer.key"',
        "",
    ]
    path = data / "client.toml"
    path.write_text("\n".join(lines))
    return path


def _status(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/v1/status", timeout=2) as response:  # noqa: S310
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _agreed(statuses: list[dict[str, Any] | None], genesis: Genesis) -> bool:
    if any(s is None for s in statuses):
        return False
    known = [s for s in statuses if s is not None]
    return (
        all(s["genesis_hash"] == genesis.genesis_hash for s in known)
        and len({(s["view"], s["height"]) for s in known}) == 1
        and all(all(p["reachable"] for p in s["peers"]) for s in known)
    )


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Consortium:
    def __init__(self, data: Path, genesis: Genesis, log_format: str) -> None:
        self.data = data
        self.genesis = genesis
        self.log_format = log_format
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def urls(self) -> list[str]:
        return [f"http://{i.node.host}:{i.node.api_port}" for i in self.genesis.institutions]

    def start(self) -> None:
        for institution in self.genesis.institutions:
            directory = self.data / institution.name
            log = (directory / "node.log").open("ab")
            self.processes[institution.name] = subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "node",
                    "run",
                    "--config",
                    str(directory / "node.toml"),
                    "--log-format",
                    self.log_format,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()

    def exited(self) -> tuple[str, int] | None:
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                return name, code
        return None

    def wait_until_agreed(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            gone = self.exited()
            if gone is not None:
                name, code = gone
                log = self.data / name / "node.log"
                raise UpError(f"node {name} exited with status {code}; its log ends:\n{_tail(log)}")
            if _agreed([_status(url) for url in self.urls()], self.genesis):
                return
            time.sleep(0.5)
        raise UpError(f"the nodes did not agree within {READY_TIMEOUT_S:.0f} s; see DIR/*/node.log")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_up(nodes: int, data: Path, base_port: int, log_format: str) -> int:
    data = data.resolve()
    try:
        genesis_path = data / "genesis.json"
        if genesis_path.exists():
            genesis = parse_genesis(genesis_path.read_bytes())
            print(f"resuming consortium {genesis.chain_id} in {data}")
        else:
            genesis = create_local(data, nodes, base_port)
            print(f"created consortium {genesis.chain_id} in {data}")
    except (UpError, OSError, ValueError) as exc:
        print(f"notarychain-node: {exc}", file=sys.stderr)
        return 1
    client_config = write_client_config(data, genesis)
    consortium = Consortium(data, genesis, log_format)
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    consortium.start()
    try:
        consortium.wait_until_agreed()
    except UpError as exc:
        consortium.stop()
        print(f"notarychain-node: {exc}", file=sys.stderr)
        return 1
    print(f"{len(genesis.institutions)} nodes agree (chain {genesis.chain_id}):")
    for institution, url in zip(genesis.institutions, consortium.urls(), strict=True):
        print(f"  {institution.name:16} explorer {url}/  api {url}/v1/status")
    print(f"client configuration: {client_config}")
    print("press Ctrl-C to stop every node")
    code = 0
    while not stopping:
        gone = consortium.exited()
        if gone is not None:
            name, status = gone
            print(
                f"notarychain-node: node {name} exited with status {status}; stopping all",
                file=sys.stderr,
            )
            code = 1
            break
        time.sleep(0.3)
    consortium.stop()
    print("all nodes stopped")
    return code
