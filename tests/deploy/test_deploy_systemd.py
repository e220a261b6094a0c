"""deploy/systemd/notarychain-node.service and the install steps of deploy/README.md.

The unit's config path pattern is filled in for each institution of a real
`notarychain-node init` output laid out as the README installs it under
/etc/notarychain (in a temporary root), and loaded as the node loads it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from ledger.genesis import parse_genesis
from ledger.keyfile import load_private_key
from ledger.keys import public_key_text
from node.cli import build_parser
from node.cli import main as node_main
from node.config import load_node_config
from node.material import PASSPHRASE_ENV

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "notarychain-node.service"
DEPLOY_README = ROOT / "deploy" / "README.md"
INSTITUTIONS = ("notary-office", "enterprise-1", "enterprise-2", "enterprise-3")


def unit() -> dict[str, list[tuple[str, str]]]:
    """Section -> [(key, value)] in order (systemd allows repeated keys)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), "keep each setting on one line"
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        assert current is not None, f"{line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{line!r} is not KEY=VALUE"
        sections[current].append((key.strip(), value.strip()))
    return sections


def one(section: str, key: str) -> str:
    values = [v for k, v in unit()[section] if k == key]
    assert len(values) == 1, f"[{section}] {key}: expected one setting, found {values}"
    return values[0]


def every(section: str, key: str) -> list[str]:
    return [v for k, v in unit()[section] if k == key]


def exec_start() -> list[str]:
    return shlex.split(one("Service", "ExecStart"))


def readme_systemd() -> str:
    section = DEPLOY_README.read_text().split("\n## systemd\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1
    return blocks[0]


def environment_file() -> str:
    return one("Service", "EnvironmentFile")


def test_runs_the_node_with_the_institutions_node_toml() -> None:
    argv = exec_start()
    assert argv[0].startswith("/"), "systemd wants an absolute path"
    assert Path(argv[0]).name == "notarychain-node"
    assert argv[1:3] == ["run", "--config"]
    assert argv[3] == "/etc/notarychain/${NOTARYCHAIN_INSTITUTION}/node.toml"
    assert build_parser().parse_args(argv[1:]).command == "run"
    assert len(argv) == 4


def test_institution_and_passphrase_come_from_a_required_environment_file() -> None:
    path = environment_file()
    assert not path.startswith("-"), "a missing environment file must stop the start"
    steps = readme_systemd()
    written = re.search(r"printf '([^']*)'.*\n.*install -m 0600 /dev/stdin (\S+)", steps)
    assert written is not None, "the README must write the environment file, mode 0600"
    assert written.group(2) == path
    assert written.group(1).startswith("NOTARYCHAIN_INSTITUTION=")
    assert PASSPHRASE_ENV in steps
    assert PASSPHRASE_ENV in UNIT.read_text()


def test_runs_as_a_dedicated_user_and_restarts_on_failure() -> None:
    assert one("Service", "User") == "notarychain"
    assert one("Service", "Group") == "notarychain"
    assert "useradd --system" in readme_systemd()
    assert one("Service", "Restart") == "on-failure"
    assert one("Unit", "After") == "network-online.target"
    assert one("Install", "WantedBy") == "multi-user.target"


def test_hardening() -> None:
    assert one("Service", "NoNewPrivileges") == "yes"
    assert one("Service", "ProtectSystem") == "strict"
    assert one("Service", "PrivateTmp") == "yes"
    assert one("Service", "ProtectHome") == "yes"
    assert one("Service", "CapabilityBoundingSet") == ""
    assert every("Service", "SystemCallFilter")
    state = "/var/lib/" + one("Service", "StateDirectory")
    assert every("Service", "ReadWritePaths") == [state]


def test_the_data_link_points_into_the_writable_state_directory() -> None:
    links = re.findall(r"ln -s (\S+) (\S+)", readme_systemd())
    assert len(links) == 1
    target, link = links[0]
    assert target in every("Service", "ReadWritePaths")
    assert target == "/var/lib/" + one("Service", "StateDirectory")
    config = exec_start()[3].replace("${NOTARYCHAIN_INSTITUTION}", "notary-office")
    assert link == str(Path(config).parent / "data")  # init's data_dir = "data"


def test_the_config_pattern_loads_for_every_institution_of_an_init_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTARYCHAIN_KEY_PASSPHRASE", raising=False)
    out = tmp_path / "consortium"
    hosts = ",".join(f"{name}.example" for name in INSTITUTIONS)
    roles = ["notary"] + ["enterprise"] * (len(INSTITUTIONS) - 1)
    institutions = [f"--institution={n}:{r}" for n, r in zip(INSTITUTIONS, roles, strict=True)]
    assert node_main(["init", "--out", str(out), *institutions, "--hosts", hosts]) == 0
    genesis = parse_genesis((out / "genesis.json").read_bytes())
    root = tmp_path / "root"
    etc = root / "etc" / "notarychain"
    state = root / one("Service", "ReadWritePaths").lstrip("/")
    state.mkdir(parents=True)
    etc.mkdir(parents=True)
    for name in ("genesis.json", "ca.crt"):  # what the README installs
        shutil.copy2(out / name, etc / name)
    pattern = exec_start()[3]
    for name in INSTITUTIONS:
        directory = etc / name
        directory.mkdir()
        for file in ("node.toml", "node.key", "tls.crt", "tls.key"):
            shutil.copy2(out / name / file, directory / file)
        (directory / "data").symlink_to(state)
        config = load_node_config(
            root / pattern.replace("${NOTARYCHAIN_INSTITUTION}", name).lstrip("/")
        )
        assert config.institution == name
        assert config.data_dir == state.resolve()
        assert config.genesis_path == (etc / "genesis.json").resolve()
        key = load_private_key(config.node_key_path)
        assert public_key_text(key.public_key) == genesis.institution(name).node.key


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_every_setting(tmp_path: Path) -> None:
    # the binary is not installed here: verify the unit with a stand-in for it
    text = UNIT.read_text().replace(exec_start()[0], "/bin/true")
    (tmp_path / UNIT.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / UNIT.name)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr
