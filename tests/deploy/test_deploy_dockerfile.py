"""The Dockerfile and .dockerignore, read as Docker would read them (no Docker engine needed).

The image's HEALTHCHECK command is run for real against a node started from
`notarychain-node init` output on 127.0.0.1, and against stand-in servers.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from deployment import api_paths

from node.cli import build_parser
from node.cli import main as node_main

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
START_TIMEOUT_S = 30.0


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        result.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def arguments(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def only(name: str) -> str:
    found = arguments(name)
    assert len(found) == 1, f"expected one {name} in the Dockerfile, found {len(found)}"
    return found[0]


def exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list), f"{text!r} is not the exec (JSON array) form"
    assert all(isinstance(item, str) for item in value)
    return value


def build_args() -> dict[str, str]:
    defaults = {}
    for rest in arguments("ARG"):
        name, _, default = rest.partition("=")
        defaults[name.strip()] = default.strip()
    return defaults


def env_vars() -> dict[str, str]:
    values: dict[str, str] = {}
    for rest in arguments("ENV"):
        for item in shlex.split(rest):
            name, sep, value = item.partition("=")
            assert sep, f"ENV {rest!r}: use the NAME=value form"
            values[name] = value
    return values


def expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables[m.group(1) or m.group(2)], text)


# ---------------------------------------------------------------- building


def test_base_image_is_python_311_slim() -> None:
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", only("FROM").split()[0])


def test_copies_exactly_the_installable_project_and_installs_it() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sources: list[str] = []
    for rest in arguments("COPY"):
        parts = rest.split()
        assert not any(p.startswith("--from") for p in parts)
        sources += parts[:-1]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    packages = {name.split(".")[0] for name in pyproject["tool"]["setuptools"]["packages"]}
    assert packages == {"ledger", "consensus", "node", "client"}
    assert set(sources) == {"pyproject.toml", pyproject["project"]["readme"], *packages}
    assert any("pip install --no-cache-dir ." in run for run in arguments("RUN"))


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(glob):
            if glob.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif glob.startswith("**", i):
                regex += ".*"
                i += 2
            elif glob[i] == "*":
                regex += "[^/]*"
                i += 1
            elif glob[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(glob[i])
                i += 1
        patterns.append((keep, re.compile(regex)))
    return patterns


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for keep, pattern in dockerignore_patterns():
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            included = keep
    return included


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "ledger/__init__.py",
        "consensus/replica.py",
        "node/cli.py",
        "node/families/__init__.py",
        "client/cli.py",
        "node/py.typed",
    ],
)
def test_dockerignore_keeps_what_the_build_copies(path: str) -> None:
    assert (ROOT / path).exists()
    assert in_build_context(path)


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        "consortium/ca.key",
        "consortium/notary-office/node.key",
        "consortium-k8s/enterprise-1/tls.key",
        "data/chain.db",
        "notarychain-data/notary-office/node.key",
        "tests/node/conftest.py",
        "bench/out/x.json",
        "node/__pycache__/cli.cpython-311.pyc",
        ".mypy_cache/x",
    ],
)
def test_dockerignore_keeps_keys_data_and_clutter_out(path: str) -> None:
    assert not in_build_context(path)


# ---------------------------------------------------------------- running


def test_runs_as_a_non_root_user() -> None:
    user = expand(only("USER"), build_args())
    name, _, group = user.partition(":")
    assert name not in ("root", "0", "")
    assert group not in ("root", "0")
    assert name.isdigit(), "a numeric USER lets Kubernetes check runAsNonRoot"
    creating = [run for run in arguments("RUN") if "useradd" in run]
    assert creating
    assert "--uid" in creating[0]


def test_entrypoint_is_the_node_command_and_cmd_runs_the_fixed_config() -> None:
    assert exec_form(only("ENTRYPOINT")) == ["notarychain-node"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "notarychain-node" in pyproject["project"]["scripts"]
    command = exec_form(only("CMD"))
    args = build_parser().parse_args(command)
    assert args.command == "run"
    assert str(args.config) == env_vars()["NOTARYCHAIN_CONFIG"] == "/consortium/node/node.toml"


def test_data_volume_is_where_the_relative_data_dir_lands() -> None:
    assert exec_form(only("VOLUME")) == ["/data"]
    config = Path(exec_form(only("CMD"))[-1])
    links = [re.search(r"ln -s (\S+) (\S+)", run) for run in arguments("RUN")]
    found = [(m.group(1), m.group(2)) for m in links if m]
    # init writes data_dir = "data", relative to node.toml
    assert found == [("/data", str(config.parent / "data"))]
    assert any(re.search(r"chown \S+ /data", run) for run in arguments("RUN"))


def healthcheck() -> tuple[list[str], list[str]]:
    """(options, exec-form command) of the HEALTHCHECK."""
    rest = only("HEALTHCHECK")
    options, sep, command = rest.partition("CMD ")
    assert sep, "HEALTHCHECK must have a CMD"
    return options.split(), exec_form(command)


def test_healthcheck_is_python_urllib_on_the_live_endpoint() -> None:
    options, command = healthcheck()
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "curl" not in command[2]
    assert "/v1/health/live" in command[2]
    assert "/v1/health/live" in api_paths()
    assert any(o.startswith("--timeout=") for o in options)


def run_healthcheck(config: Path) -> subprocess.CompletedProcess[str]:
    _, command = healthcheck()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NOTARYCHAIN_CONFIG"] = str(config)
    env["http_proxy"] = "http://127.0.0.1:9"  # the check must not use a proxy
    return subprocess.run(
        [sys.executable, *command[1:]],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )


class _Recorder(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []  # noqa: RUF012  (reset per server)

    def do_GET(self) -> None:
        self.paths.append(self.path)
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[tuple[int, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"paths": [], "status": 200})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def write_config(path: Path, host: str, api_port: int) -> Path:
    path.write_text(
        f'[node]\ninstitution = "x"\n'
        f'[listen]\nhost = "{host}"\npeer_port = 1\napi_port = {api_port}\n'
    )
    return path


def test_healthcheck_reads_host_and_api_port_from_the_config(
    tmp_path: Path, stand_in: tuple[int, type[_Recorder]]
) -> None:
    port, handler = stand_in
    result = run_healthcheck(write_config(tmp_path / "node.toml", "127.0.0.1", port))
    assert result.returncode == 0, result.stderr
    assert handler.paths == ["/v1/health/live"]


def test_healthcheck_fails_on_an_error_status(
    tmp_path: Path, stand_in: tuple[int, type[_Recorder]]
) -> None:
    port, handler = stand_in
    handler.status = 503
    result = run_healthcheck(write_config(tmp_path / "node.toml", "127.0.0.1", port))
    assert result.returncode != 0


def free_base_port() -> int:
    """A base port P with P and P + 100 free on 127.0.0.1 (init's API and peer ports)."""
    for base in range(23000, 60000, 137):
        try:
            for port in (base, base + 100):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no free port pair on 127.0.0.1")


def live(port: int) -> bool:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"http://127.0.0.1:{port}/v1/health/live", timeout=2
        ) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.cluster
def test_healthcheck_passes_on_a_running_node_and_fails_once_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTARYCHAIN_KEY_PASSPHRASE", raising=False)
    base = free_base_port()
    out = tmp_path / "c"
    init = ["init", "--out", str(out), "--institution", "solo:notary", "--base-port", str(base)]
    assert node_main(init) == 0
    config = out / "solo" / "node.toml"
    log = (tmp_path / "node.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "node", "run", "--config", str(config)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not live(base):
            assert process.poll() is None, (tmp_path / "node.log").read_text()
            assert time.monotonic() < deadline, "the node never came up"
            time.sleep(0.1)
        result = run_healthcheck(config)
        assert result.returncode == 0, result.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    assert process.returncode == 0
    assert run_healthcheck(config).returncode != 0
