"""docker-compose.yml against the material its own header's `notarychain-node init` makes.

The init command is run for real (into a temporary directory); each service is
checked against the genesis entry of its institution, and the files it mounts
are laid out as the container would see them, then loaded as the node loads
its config. The `docker run` example of deploy/README.md gets the same check.
"""

from __future__ import annotations

import re
import shlex
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from deployment import (
    DEPLOY_README,
    INSTITUTIONS,
    ROOT,
    api_paths,
    check_node_root,
    dockerfile_cmd,
    dockerfile_data_link,
    run_init,
)

from ledger.genesis import Genesis, parse_genesis
from node.cli import build_parser
from node.cli import main as node_main

COMPOSE = ROOT / "docker-compose.yml"
INIT_COMMAND = (
    "notarychain-node init --out consortium --institution notary-office:notary "
    "--institution enterprise-1:enterprise --institution enterprise-2:enterprise "
    "--institution enterprise-3:enterprise "
    "--hosts notary-office,enterprise-1,enterprise-2,enterprise-3 --base-port 7100"
)


def dockerfile_cmd_config() -> str:
    return str(build_parser().parse_args(dockerfile_cmd()).config)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Genesis]:
    out = tmp_path_factory.mktemp("compose") / "consortium"
    return out, run_init(INIT_COMMAND, out)


def test_the_init_command_is_documented_in_the_compose_file_and_the_deploy_readme() -> None:
    header = [
        line.lstrip("#").strip()
        for line in COMPOSE.read_text().splitlines()
        if line.lstrip("#").strip().startswith("notarychain-node init")
    ]
    assert header == [INIT_COMMAND]
    readme = [line.strip() for line in DEPLOY_README.read_text().splitlines()]
    assert INIT_COMMAND in readme
    assert build_parser().parse_args(shlex.split(INIT_COMMAND)[1:]).command == "init"


def test_init_assigns_the_documented_hosts_and_ports(consortium: tuple[Path, Genesis]) -> None:
    out, genesis = consortium
    assert [
        (i.name, i.node.host, i.node.api_port, i.node.peer_port) for i in genesis.institutions
    ] == [(name, name, 7100 + i, 7200 + i) for i, name in enumerate(INSTITUTIONS)]
    for name in INSTITUTIONS:
        listen = tomllib.loads((out / name / "node.toml").read_text())["listen"]
        node = genesis.institution(name).node
        assert listen == {"host": name, "api_port": node.api_port, "peer_port": node.peer_port}


def test_one_service_per_institution_named_and_hosted_as_in_the_genesis(
    compose: dict[str, Any], consortium: tuple[Path, Genesis]
) -> None:
    _, genesis = consortium
    services = compose["services"]
    assert set(services) == {i.name for i in genesis.institutions} == set(INSTITUTIONS)
    for name, service in services.items():
        # the node binds to its genesis host: the container must resolve it to itself
        assert service["hostname"] == name == genesis.institution(name).node.host
    networks = {tuple(service["networks"]) for service in services.values()}
    assert len(networks) == 1, "all nodes must share one network to reach each other"
    assert set(next(iter(networks))) <= set(compose["networks"])


def published(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) of each published port, short or long syntax."""
    result = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            result.append((int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        assert len(parts) in (2, 3), f"{port!r}: publish host:container explicitly"
        result.append((int(parts[-2]), int(parts[-1])))
    return result


def test_published_ports_are_the_institutions_api_ports(
    compose: dict[str, Any], consortium: tuple[Path, Genesis]
) -> None:
    _, genesis = consortium
    for name, service in compose["services"].items():
        node = genesis.institution(name).node
        ports = published(service)
        assert (node.api_port, node.api_port) in ports
        for host_port, container_port in ports:
            assert container_port in (node.api_port, node.peer_port)
            assert host_port == container_port


def test_healthchecks_probe_each_nodes_own_api(
    compose: dict[str, Any], consortium: tuple[Path, Genesis]
) -> None:
    _, genesis = consortium
    paths = api_paths()
    for name, service in compose["services"].items():
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD"
        assert "curl" not in test
        urls = re.findall(r"http://([^:/'\"]+):(\d+)(/[^'\"]*)", " ".join(test))
        assert len(urls) == 1, test
        host, port, path = urls[0]
        node = genesis.institution(name).node
        assert (host, int(port)) == (node.host, node.api_port)
        assert path in paths
        assert path.startswith("/v1/health/")


def test_passphrase_and_image_settings(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        assert "NOTARYCHAIN_KEY_PASSPHRASE" in service["environment"], "passed through, unset"
        assert service["build"]["context"] == "."
        assert (ROOT / service["build"].get("dockerfile", "Dockerfile")).is_file()
        assert service["restart"] in ("unless-stopped", "always", "on-failure")
        assert service.get("user") is None, "the image's non-root user is used"
        assert "command" not in service and "entrypoint" not in service


def mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each volume entry, short syntax."""
    result = []
    for entry in service["volumes"]:
        parts = entry.split(":")
        assert len(parts) in (2, 3), entry
        result.append((parts[0], parts[1], len(parts) == 3 and "ro" in parts[2].split(",")))
    return result


def lay_out(root: Path, files: dict[str, Path], volume_targets: list[str]) -> Path:
    """Build the container's view under `root`: files, volumes, the image's data link."""
    link_target, link = dockerfile_data_link()
    for target in [*volume_targets, link_target]:
        (root / target.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for target, source in files.items():
        destination = root / target.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    (root / link.lstrip("/")).symlink_to(root / link_target.lstrip("/"))
    return root / link_target.lstrip("/")


def test_each_services_mounts_make_its_node_config_load(
    compose: dict[str, Any], consortium: tuple[Path, Genesis], tmp_path: Path
) -> None:
    out, genesis = consortium
    link_target, _ = dockerfile_data_link()
    for name, service in compose["services"].items():
        files: dict[str, Path] = {}
        volumes: list[str] = []
        for source, target, read_only in mounts(service):
            if source.startswith("./"):
                relative = Path(source).relative_to("consortium")
                path = out / relative
                assert path.is_file(), f"{name}: {source} is not made by init"
                assert read_only, f"{name}: {source} must be mounted read-only"
                assert path.name not in ("ca.key", "admin.key"), f"{name} must not see {source}"
                if path.parent != out:
                    assert path.parent.name == name, f"{name} mounts another's {source}"
                files[target] = path
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
                assert not read_only
                volumes.append(target)
        assert volumes == [link_target], f"{name}: its data volume belongs at {link_target}"
        root = tmp_path / name
        data = lay_out(root, files, volumes)
        check_node_root(root / dockerfile_cmd_config().lstrip("/"), name, genesis, data)


def test_the_readme_docker_run_example_makes_a_working_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTARYCHAIN_KEY_PASSPHRASE", raising=False)
    text = DEPLOY_README.read_text()
    init = re.search(r"(notarychain-node init --out consortium \\\n.*?)\n\n", text, re.DOTALL)
    command = init.group(1).replace("\\\n", " ")
    assert "notary.example" in command
    out = tmp_path / "consortium"
    argv = shlex.split(command)
    argv[argv.index("--out") + 1] = str(out)
    assert node_main(argv[1:]) == 0
    genesis = parse_genesis((out / "genesis.json").read_bytes())
    run = re.search(r"(docker run -d .*?notarychain-node)\n", text, re.DOTALL)
    argv = shlex.split(run.group(1).replace("\\\n", " ").replace("$PWD", str(tmp_path)))
    hostname = argv[argv.index("--hostname") + 1]
    institution = next(i for i in genesis.institutions if i.node.host == hostname)
    files: dict[str, Path] = {}
    volumes: list[str] = []
    ports = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-p"]
    assert sorted(ports) == sorted(
        f"{p}:{p}" for p in (institution.node.api_port, institution.node.peer_port)
    )
    for i, arg in enumerate(argv):
        if arg != "-v":
            continue
        source, target, *mode = argv[i + 1].split(":")
        if source.startswith("/"):
            assert mode == ["ro"]
            files[target] = Path(source)
        else:
            volumes.append(target)
    root = tmp_path / "root"
    data = lay_out(root, files, volumes)
    check_node_root(root / dockerfile_cmd_config().lstrip("/"), institution.name, genesis, data)
