"""`notarychain-node run` and `init` refuse bad input with one line on stderr, never a traceback.

No node runs for long here: each bad start must exit on its own (bounded by a
timeout that fails the test), and the good `init` only writes files.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ledger.genesis import parse_genesis
from node.config import load_node_config
from node.families import code_hashes
from node.storage import Store

if TYPE_CHECKING:
    from cluster import Cluster

EXIT_TIMEOUT_S = 60


def command() -> list[str]:
    script = Path(sys.executable).parent / "notarychain-node"
    return [str(script)] if script.exists() else [sys.executable, "-m", "node"]


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NOTARYCHAIN_KEY_PASSPHRASE"}
    return subprocess.run(
        [*command(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
        env=env,
        cwd=cwd,
        check=False,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode != 0, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    line = lines[0]
    print(f"stderr: {line}")
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
    return line


def set_in_toml(path: Path, key: str, value: str) -> None:
    lines = path.read_text().splitlines()
    changed = [f"{key} = {value}" if line.startswith(f"{key} =") else line for line in lines]
    assert changed != lines, f"{key} not in {path}"
    path.write_text("\n".join(changed) + "\n")


# ---------------------------------------------------------------- run: bad starts


def missing_file(c: Cluster) -> tuple[Path, tuple[str, ...]]:
    return c.directory(0) / "no-such-node.toml", ("no-such-node.toml", "not found")


def toml_syntax_error(c: Cluster) -> tuple[Path, tuple[str, ...]]:
    config = c.config_path(0)
    config.write_text(config.read_text().replace("[listen]", "[listen", 1))
    return config, ("node.toml", "TOML")


def unknown_key(c: Cluster) -> tuple[Path, tuple[str, ...]]:
    config = c.config_path(0)
    config.write_text(config.read_text().replace("[listen]\n", "[listen]\ncolour = 1\n", 1))
    return config, ("unknown key", "colour")


def port_zero(c: Cluster) -> tuple[Path, tuple[str, ...]]:
    set_in_toml(c.config_path(0), "peer_port", "0")
    return c.config_path(0), ("peer_port",)


def port_too_big(c: Cluster) -> tuple[Path, tuple[str, ...]]:
    set_in_toml(c.config_path(0), "api_port", "70000")
    return c.config_path(0), ("api_port",)


def missing_node_key(c: Cluster) -> tuple[Path, tuple[str, ...]]:
    (c.directory(0) / "node.key").unlink()
    return c.config_path(0), ("node_key", "node.key")


def swapped_node_keys(c: Cluster) -> tuple[Path, tuple[str, ...]]:
    mine, theirs = c.directory(0) / "node.key", c.directory(1) / "node.key"
    spare = c.root / "swap.key"
    shutil.move(mine, spare)
    shutil.move(theirs, mine)
    shutil.move(spare, theirs)
    return c.config_path(0), ("node.key", c.name(0), "genesis")


def data_dir_of_another_chain(c: Cluster, other: Cluster) -> tuple[Path, tuple[str, ...]]:
    assert other.genesis is not None
    store = Store(c.directory(0) / "data" / "chain.db", other.genesis.genesis_hash)
    store.close()
    return c.config_path(0), ("another chain",)


def family_hash_differs(c: Cluster) -> tuple[Path, tuple[str, ...]]:
    path = c.root / "genesis.json"
    document = json.loads(path.read_text())
    document["families"]["evidence"] = "00" * 32
    path.write_text(json.dumps(document, indent=2))
    return c.config_path(0), ("evidence", "genesis")


def family_missing(c: Cluster) -> tuple[Path, tuple[str, ...]]:
    path = c.root / "genesis.json"
    document = json.loads(path.read_text())
    del document["families"]["identity"]
    path.write_text(json.dumps(document, indent=2))
    return c.config_path(0), ("families", "identity")


BAD_STARTS: dict[str, Callable[[Cluster], tuple[Path, tuple[str, ...]]]] = {
    "missing config file": missing_file,
    "TOML syntax error": toml_syntax_error,
    "unknown key": unknown_key,
    "port 0": port_zero,
    "port 70000": port_too_big,
    "missing node key": missing_node_key,
    "node key of another institution": swapped_node_keys,
    "family code hash differs": family_hash_differs,
    "family missing from genesis": family_missing,
}


@pytest.mark.parametrize("case", sorted(BAD_STARTS))
def test_run_refuses_with_one_line(case: str, cluster_factory: Callable[..., Cluster]) -> None:
    consortium = cluster_factory()
    config, words = BAD_STARTS[case](consortium)
    result = cli("run", "--config", config, "--log-format", "text")
    assert_one_line_failure(result, *words)


def test_run_refuses_a_data_directory_of_another_chain(
    cluster_factory: Callable[..., Cluster],
) -> None:
    consortium = cluster_factory("mine")
    other = cluster_factory("other")
    config, words = data_dir_of_another_chain(consortium, other)
    result = cli("run", "--config", config)
    assert_one_line_failure(result, *words)


def test_run_refuses_a_data_directory_left_by_another_chains_node(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """As above, with the data directory a node of another consortium really created."""
    consortium = cluster_factory("mine")
    other = cluster_factory("other")
    other.start([0])
    try:
        deadline_polls = 300
        for _ in range(deadline_polls):
            if (other.directory(0) / "data" / "chain.db").exists() and other.try_status(0):
                break
            assert other.running(0), other.logs([0])
            time.sleep(0.1)
        else:
            raise AssertionError(f"the other node did not start:\n{other.logs([0])}")
    finally:
        other.stop(0)
    shutil.copytree(other.directory(0) / "data", consortium.directory(0) / "data")
    result = cli("run", "--config", consortium.config_path(0))
    assert_one_line_failure(result, "another chain")


# ---------------------------------------------------------------- init


@pytest.mark.parametrize("institution", ["notary-office", "notary-office:king"])
def test_init_refuses_a_bad_institution_with_one_line(institution: str, tmp_path: Path) -> None:
    out = tmp_path / "consortium"
    result = cli("init", "--out", out, "--institution", institution)
    assert_one_line_failure(result, institution)
    assert not out.exists() or not any(out.iterdir())


def test_init_refuses_a_non_empty_out(tmp_path: Path) -> None:
    out = tmp_path / "consortium"
    out.mkdir()
    (out / "keep.txt").write_text("precious\n")
    result = cli("init", "--out", out, "--institution", "notary-office:notary")
    assert_one_line_failure(result, "not empty")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious\n"


def test_init_creates_the_consortium(tmp_path: Path) -> None:
    out = tmp_path / "consortium"
    names = ["notary-office", "acme", "globex", "court"]
    roles = ["notary", "enterprise", "enterprise", "observer"]
    args: list[str | Path] = ["init", "--out", out, "--chain-id", "test-chain"]
    for name, role in zip(names, roles, strict=True):
        args += ["--institution", f"{name}:{role}"]
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

    genesis = parse_genesis((out / "genesis.json").read_bytes())
    assert genesis.chain_id == "test-chain"
    assert [i.name for i in genesis.institutions] == names
    assert [i.role for i in genesis.institutions] == roles
    assert genesis.families == code_hashes()
    assert (out / "ca.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert genesis.ca_certificate == (out / "ca.crt").read_text()
    assert stat.S_IMODE((out / "ca.key").stat().st_mode) == 0o600

    for name in names:
        directory = out / name
        for file in ("node.toml", "node.key", "admin.key", "tls.crt", "tls.key"):
            assert (directory / file).is_file(), directory / file
        for secret in ("node.key", "admin.key", "tls.key"):
            mode = stat.S_IMODE((directory / secret).stat().st_mode)
            assert mode == 0o600, f"{directory / secret}: mode {mode:o}"
        config = load_node_config(directory / "node.toml")
        entry = genesis.institution(name)
        assert config.institution == name
        assert (config.listen.peer_port, config.listen.api_port) == (
            entry.node.peer_port,
            entry.node.api_port,
        )
        assert config.genesis_path == (out / "genesis.json").resolve()
