"""What the deployment tests (tests/deploy) share: the repository's Dockerfile read as the
container runs it, the API's routes, running a documented `notarychain-node init` line,
and checking a node's files as the container or pod would see them.

On `sys.path` through pytest's `pythonpath` setting, as `harness` is (see its docstring).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ledger.genesis import Genesis, parse_genesis
from ledger.keyfile import load_private_key
from ledger.keys import public_key_text
from node.api import build_api
from node.config import load_node_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_README = ROOT / "deploy" / "README.md"
INSTITUTIONS = ("notary-office", "enterprise-1", "enterprise-2", "enterprise-3")


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def dockerfile_cmd() -> list[str]:
    """The Dockerfile's CMD (exec form): the arguments the node command runs with."""
    match = re.search(r"^CMD (\[.*\])$", dockerfile(), re.MULTILINE)
    assert match is not None, "the Dockerfile has a CMD in exec form"
    command: list[str] = json.loads(match.group(1))
    return command


def dockerfile_data_link() -> tuple[str, str]:
    """(target, link) of the one symbolic link the image makes for the data directory."""
    found: list[tuple[str, str]] = re.findall(r"ln -s (\S+) (\S+)", dockerfile())
    assert len(found) == 1
    return found[0]


def api_paths() -> set[str]:
    app = build_api(None)  # type: ignore[arg-type]  # the route table needs no node
    return {route.resource.canonical for route in app.router.routes() if route.resource}


def run_init(command: str, out: Path) -> Genesis:
    """Run a documented `notarychain-node init ...` line with its --out replaced by `out`."""
    argv = shlex.split(command)
    assert argv[:2] == ["notarychain-node", "init"]
    argv[argv.index("--out") + 1] = str(out)
    env = {k: v for k, v in os.environ.items() if k != "NOTARYCHAIN_KEY_PASSPHRASE"}
    subprocess.run(
        [sys.executable, "-m", "node", *argv[1:]],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return parse_genesis((out / "genesis.json").read_bytes())


def check_node_root(config_path: Path, institution: str, genesis: Genesis, data: Path) -> None:
    """The node's config at `config_path` loads and is `institution`'s, with its data in `data`."""
    config = load_node_config(config_path)  # fails on any missing file
    entry = genesis.institution(institution)
    assert config.institution == institution
    assert config.data_dir == data.resolve()
    assert (config.listen.host, config.listen.peer_port, config.listen.api_port) == (
        entry.node.host,
        entry.node.peer_port,
        entry.node.api_port,
    )
    assert parse_genesis(config.genesis_path.read_bytes()).genesis_hash == genesis.genesis_hash
    assert config.ca_cert_path.read_text() == genesis.ca_certificate
    node_key = load_private_key(config.node_key_path)
    assert public_key_text(node_key.public_key) == entry.node.key
    certificate = x509.load_pem_x509_certificate(config.tls_cert_path.read_bytes())
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [n.value for n in names] == [institution]
    tls_key = serialization.load_pem_private_key(config.tls_key_path.read_bytes(), None)
    assert tls_key.public_key() == certificate.public_key()
