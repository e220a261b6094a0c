"""Bad input gets one clear line on stderr and a non-zero exit, never a traceback.

Each case runs `notarychain` as a subprocess: a missing file, a receipt of
another file, corrupt receipts (truncated JSON, a proof that is not base64, a
flipped byte in the bundle...), configurations with a wrong key (an identity
that is not a key file, is missing, is another kind of key, or is not
enrolled; an unknown TOML key...), a bad evidence id, and a node list nobody
answers on. Real receipts come from the module's consortium.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.keyfile import save_private_key
from ledger.keys import PrivateKey

GOOD_ID = "ab" * 32


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    config: str | None
    """A config file in the work folder, or None for no configuration at all."""
    says: str
    """What the one line must mention (case-insensitive)."""


def closed_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        sockets.append(probe)
    ports = [s.getsockname()[1] for s in sockets]
    for probe in sockets:
        probe.close()
    return ports


def write_config(
    path: Path, genesis: str, identity: str, nodes: list[str], extra: str = ""
) -> None:
    """A client.toml; paths relative to its folder (strings in JSON form are valid TOML)."""
    path.write_text(
        f"genesis = {json.dumps(genesis)}\nidentity = {json.dumps(identity)}\n"
        f"nodes = {json.dumps(nodes)}\n{extra}"
    )


@pytest.fixture(scope="module")
def work(consortium, tmp_path_factory: pytest.TempPathFactory, cli) -> Path:
    """Files, their genuine receipts, corrupt variants, and good and bad configurations."""
    folder = tmp_path_factory.mktemp("bad-input")
    (folder / "a.txt").write_bytes(b"the first file\n")
    (folder / "b.txt").write_bytes(b"the second file\n")
    good = consortium.write_config(folder / "good.toml")
    made = cli(
        "evidence", "add", "a.txt", "b.txt", "--receipts", "receipts", cwd=folder, config=good
    )
    assert made.returncode == 0, made.stdout + made.stderr
    shutil.copy(consortium.genesis_path, folder / "genesis.json")

    text = (folder / "receipts" / "a.txt.receipt.json").read_text()
    receipt = json.loads(text)
    (folder / "truncated.json").write_text(text[: len(text) // 2])
    variants = {
        "not-base64.json": {**receipt, "proof": {**receipt["proof"], "bundle": "**not base64**"}},
        "no-proof.json": {k: v for k, v in receipt.items() if k != "proof"},
        "wrong-id.json": {**receipt, "evidence_id": "cd" * 32},
        "private-no-salt.json": {**receipt, "private": True, "salt": None},
    }
    bundle = bytearray(base64.b64decode(receipt["proof"]["bundle"]))
    bundle[len(bundle) // 2] ^= 0x01
    flipped = base64.b64encode(bytes(bundle)).decode()
    variants["flipped.json"] = {**receipt, "proof": {**receipt["proof"], "bundle": flipped}}
    for name, document in variants.items():
        (folder / name).write_text(json.dumps(document))
    (folder / "list.json").write_text("[1, 2, 3]")

    genesis = "genesis.json"
    nodes = consortium.urls()
    save_private_key(folder / "stranger.key", PrivateKey.generate())
    write_config(folder / "identity-not-a-key.toml", genesis, "a.txt", nodes)
    write_config(folder / "identity-missing.toml", genesis, "nothere.key", nodes)
    tls_key = str(consortium.root.resolve() / "notary-office" / "tls.key")
    write_config(folder / "identity-tls.toml", genesis, tls_key, nodes)
    write_config(folder / "identity-folder.toml", genesis, "receipts", nodes)
    write_config(folder / "identity-stranger.toml", genesis, "stranger.key", nodes)
    write_config(folder / "unknown-key.toml", genesis, "stranger.key", nodes, 'colour = "blue"\n')
    (folder / "not-toml.toml").write_text("nodes = [\n")
    write_config(folder / "genesis-missing.toml", "nothere.json", "stranger.key", nodes)
    unreachable = [f"http://127.0.0.1:{port}" for port in closed_ports(3)]
    write_config(folder / "unreachable.toml", genesis, "stranger.key", unreachable)
    write_config(folder / "no-nodes.toml", genesis, "stranger.key", [])
    return folder


def offline(receipt: str, file: str = "a.txt", genesis: str = "genesis.json") -> tuple[str, ...]:
    return ("verify", file, "--receipt", receipt, "--genesis", genesis, "--offline")


A_RECEIPT = "receipts/a.txt.receipt.json"
CASES: dict[str, Case] = {
    "missing file": Case(("evidence", "add", "/nonexistent/contract.pdf"), "good.toml", "no such"),
    "missing folder among paths": Case(
        ("evidence", "add", "a.txt", "nope/"), "good.toml", "no such"
    ),
    "receipt of another file": Case(offline("receipts/b.txt.receipt.json"), None, "hash mismatch"),
    "truncated receipt": Case(offline("truncated.json"), None, "json"),
    "receipt proof not base64": Case(offline("not-base64.json"), None, "base64"),
    "flipped byte in the receipt's bundle": Case(offline("flipped.json"), None, "proof"),
    "receipt without a proof": Case(offline("no-proof.json"), None, "proof"),
    "receipt not a JSON object": Case(offline("list.json"), None, "receipt"),
    "receipt with a wrong evidence id": Case(offline("wrong-id.json"), None, "evidence id"),
    "private receipt without its salt": Case(offline("private-no-salt.json"), None, "salt"),
    "a receipt given as a certificate": Case(
        ("verify", "a.txt", "--certificate", A_RECEIPT, "--genesis", "genesis.json", "--offline"),
        None,
        "certificate",
    ),
    "genesis is a folder": Case(offline(A_RECEIPT, genesis="receipts"), None, "genesis"),
    "missing receipt": Case(offline("nothere.json"), None, "not found"),
    "missing file to verify": Case(offline(A_RECEIPT, file="nothere.txt"), None, "no such file"),
    "missing genesis": Case(offline(A_RECEIPT, genesis="nothere.json"), None, "genesis"),
    "not a genesis": Case(offline(A_RECEIPT, genesis="a.txt"), None, "a.txt"),
    "identity is not a key file": Case(("accounts", "balance"), "identity-not-a-key.toml", "key"),
    "identity is not a key file (evidence add)": Case(
        ("evidence", "add", "a.txt"), "identity-not-a-key.toml", "key"
    ),
    "identity key file missing": Case(
        ("accounts", "balance"), "identity-missing.toml", "not found"
    ),
    "identity is a TLS key": Case(("evidence", "add", "a.txt"), "identity-tls.toml", "ed25519"),
    "identity is a folder": Case(("accounts", "balance"), "identity-folder.toml", "key"),
    "identity not enrolled": Case(
        ("evidence", "add", "a.txt"), "identity-stranger.toml", "enrolled"
    ),
    "unknown identity name": Case(("--as", "nobody", "accounts", "balance"), "good.toml", "nobody"),
    "unknown TOML key": Case(("status",), "unknown-key.toml", "colour"),
    "not TOML": Case(("status",), "not-toml.toml", "toml"),
    "missing config": Case(("status",), "nothere.toml", "not found"),
    "config genesis missing": Case(("evidence", "add", "a.txt"), "genesis-missing.toml", "genesis"),
    "bad evidence id": Case(("evidence", "show", "xyz"), "good.toml", "64 hex digits"),
    "bad application id": Case(("notarize", "issue", "1234"), "good.toml", "64 hex digits"),
    "bad public key": Case(("identity", "show", "zz"), "good.toml", "public key"),
    "unknown evidence": Case(("evidence", "show", GOOD_ID), "good.toml", "unknown_evidence"),
    "unreachable nodes (show)": Case(("evidence", "show", GOOD_ID), "unreachable.toml", "no node"),
    "unreachable nodes (add)": Case(("evidence", "add", "a.txt"), "unreachable.toml", "no node"),
    "unreachable nodes (balance)": Case(("accounts", "balance"), "unreachable.toml", "no node"),
    "no nodes configured": Case(("accounts", "balance"), "no-nodes.toml", "no nodes"),
}


@pytest.mark.cluster
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_one_clear_line_and_a_non_zero_exit(work: Path, cli, name: str) -> None:
    case = CASES[name]
    config = None if case.config is None else work / case.config
    result = cli(*case.args, cwd=work, config=config, timeout_s=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"exit 0 for bad input\n{output}"
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    assert case.says.lower() in lines[0].lower(), lines[0]
    assert "VALID" not in result.stdout
