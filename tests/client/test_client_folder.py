"""A folder of 1,000 files registered with one command, then verified with every node stopped.

Against `python -m node up` (one for the module; the last test stops it):
`notarychain evidence add FOLDER --receipts DIR` runs under a pseudo-terminal
(so it draws its progress bar) and writes each receipt at the file's path
under FOLDER, inside DIR; then `up` is interrupted, which stops every
node, and each of the 1,000 receipts verifies offline: all of them through
`client.verify.verify_receipt`, a sample through
`notarychain verify FILE --receipt R --genesis GENESIS --offline`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from client.config import load_genesis
from client.errors import VerificationFailed
from client.verify import verify_receipt

FILES = 1_000
FOLDERS = ("", "contracts", "contracts/2026", "photos", "photos/site-visit/day-1", "misc/a/b/c")
CLI_SAMPLE = 20
PARALLEL_CLI = 4


def make_folder(root: Path, count: int, seed: int) -> list[Path]:
    """`count` small files of random content under a few nested folders (unique names)."""
    rng = random.Random(seed)
    suffixes = (".txt", ".pdf", ".jpg", ".wav", ".mp4", ".bin")
    files = []
    for i in range(count):
        folder = root / FOLDERS[i % len(FOLDERS)]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"item-{i:04d}{suffixes[i % len(suffixes)]}"
        path.write_bytes(os.urandom(rng.randint(1, 2048)))
        files.append(path)
    return files


def verify_with_cli(
    pairs: list[tuple[Path, Path]], genesis: Path, cwd: Path
) -> list[subprocess.CompletedProcess[str]]:
    """`notarychain verify FILE --receipt R --genesis G --offline` for each pair, a few at
    a time (no configuration: the command may use only the files it is given)."""
    env = {k: v for k, v in os.environ.items() if k != "NOTARYCHAIN_CONFIG"}
    results = []
    for start in range(0, len(pairs), PARALLEL_CLI):
        running = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "client",
                    "verify",
                    str(path),
                    "--receipt",
                    str(receipt),
                    "--genesis",
                    str(genesis),
                    "--offline",
                ],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for path, receipt in pairs[start : start + PARALLEL_CLI]
        ]
        for process in running:
            out, err = process.communicate(timeout=120)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


@pytest.mark.cluster
def test_files_of_the_same_name_in_different_folders_each_get_their_receipt(
    up, tmp_path: Path, cli
) -> None:
    """`--receipts DIR` writes a receipt per item: two `notes.txt` in two folders must not
    share one receipt file (the second would overwrite the first's, losing its proof).
    Receipts mirror the folder: DIR/case-1/notes.txt.receipt.json."""
    folder = tmp_path / "cases"
    for case in ("case-1", "case-2"):
        (folder / case).mkdir(parents=True)
        (folder / case / "notes.txt").write_bytes(os.urandom(64))
    receipts = tmp_path / "receipts"
    result = cli("evidence", "add", folder, "--receipts", receipts, cwd=tmp_path, config=up.config)
    assert result.returncode == 0, result.stderr
    genesis = load_genesis(up.genesis_path)
    written = sorted(receipts.rglob("*.receipt.json"))
    documents = [json.loads(p.read_text()) for p in written]
    covered = set()
    for case in ("case-1", "case-2"):
        path = folder / case / "notes.txt"
        for document in documents:
            try:
                verify_receipt(path, document, genesis)
            except VerificationFailed:  # another file's receipt
                continue
            covered.add(case)
    assert covered == {"case-1", "case-2"}, (
        f"only {sorted(covered)} have a receipt that verifies; receipts written: "
        f"{[str(p.relative_to(receipts)) for p in written]}"
    )
    for case in ("case-1", "case-2"):
        assert (receipts / case / "notes.txt.receipt.json").is_file(), case


@pytest.mark.cluster
def test_a_folder_of_1000_files_in_one_command_then_every_receipt_verifies_offline(
    up, tmp_path: Path, cli_in_pty, is_open
) -> None:
    folder = tmp_path / "evidence"
    files = make_folder(folder, FILES, seed=1)
    receipts = tmp_path / "receipts"

    code, output = cli_in_pty(
        "evidence", "add", folder, "--receipts", receipts, cwd=tmp_path, config=up.config
    )
    assert code == 0, output[-3000:]
    assert "Traceback" not in output
    assert "hashing" in output, output[-2000:]
    assert "registering" in output, output[-2000:]
    assert f"{FILES}/{FILES}" in output, output[-2000:]
    assert f"registered {FILES} items ({FILES} new, 0 known before)" in output, output[-2000:]

    # Stop every node: SIGINT to `up`, which ends the processes it started.
    assert up.stop() == 0, up.log.read_text()[-2000:]
    assert "all nodes stopped" in up.log.read_text()
    open_ports = [port for port in up.api_ports() if is_open(port)]
    assert not open_ports, f"nodes still answer on {open_ports}"

    genesis = load_genesis(up.genesis_path)
    written = sorted(receipts.rglob("*.receipt.json"))
    assert len(written) == FILES
    pairs = [
        (path, receipts / path.relative_to(folder).parent / f"{path.name}.receipt.json")
        for path in files
    ]
    heights = set()
    for path, receipt_path in pairs:
        receipt = json.loads(receipt_path.read_text())
        proven = verify_receipt(path, receipt, genesis)
        assert receipt["file"] == path.name
        assert proven.sha256 == receipt["sha256"]
        heights.add(proven.height)
    assert len(heights) == 1, "1,000 small items fit one transaction, so one block"

    sample = random.Random(2).sample(pairs, CLI_SAMPLE)
    for (path, _), result in zip(
        sample, verify_with_cli(sample, up.genesis_path, tmp_path), strict=True
    ):
        assert result.returncode == 0, (path, result.stdout, result.stderr)
        assert result.stdout.startswith("VALID: receipt verified against genesis"), result.stdout
        assert "Traceback" not in result.stderr
