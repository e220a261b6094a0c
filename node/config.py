"""`node.toml`: one node's configuration, validated with one clear line per problem.

Paths in the file are relative to the file's own directory, so a consortium
directory can be moved or mounted elsewhere as a whole. Unknown keys, bad
ports and missing files are errors, never silently ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Port = Annotated[int, Field(ge=1, le=65535)]


class ConfigError(Exception):
    """The node's configuration cannot be used; the message says what is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodeSection(_Section):
    institution: str
    genesis: str = "../genesis.json"
    data_dir: str = "data"
    node_key: str = "node.key"
    tls_cert: str = "tls.crt"
    tls_key: str = "tls.key"
    ca_cert: str = "../ca.crt"


class ListenSection(_Section):
    host: str = "127.0.0.1"
    peer_port: Port
    api_port: Port


class LogSection(_Section):
    format: Literal["json", "text"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class TransportSection(_Section):
    proxy: str | None = None
    """An HTTP CONNECT proxy for connections to peers (an institution's egress proxy; the
    soak test's fault injector). TLS stays end to end through it."""
    clock_offset_ms: int = 0
    """Added to this node's clock reading (only for fault-injection tests of clock skew)."""


class NodeFile(_Section):
    node: NodeSection
    listen: ListenSection
    log: LogSection = LogSection()
    transport: TransportSection = TransportSection()


class NodeConfig:
    """A validated node.toml, with its paths resolved against the file's directory."""

    def __init__(self, path: Path, data: NodeFile) -> None:
        self.path = path
        self.base = path.parent
        self.data = data
        self.institution = data.node.institution
        self.listen = data.listen
        self.log = data.log
        self.transport = data.transport

    def resolve(self, relative: str) -> Path:
        return (self.base / relative).resolve()

    @property
    def genesis_path(self) -> Path:
        return self.resolve(self.data.node.genesis)

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.data.node.data_dir)

    @property
    def node_key_path(self) -> Path:
        return self.resolve(self.data.node.node_key)

    @property
    def tls_cert_path(self) -> Path:
        return self.resolve(self.data.node.tls_cert)

    @property
    def tls_key_path(self) -> Path:
        return self.resolve(self.data.node.tls_key)

    @property
    def ca_cert_path(self) -> Path:
        return self.resolve(self.data.node.ca_cert)

    def check_files(self) -> None:
        for label, path in (
            ("genesis", self.genesis_path),
            ("node_key", self.node_key_path),
            ("tls_cert", self.tls_cert_path),
            ("tls_key", self.tls_key_path),
            ("ca_cert", self.ca_cert_path),
        ):
            if not path.is_file():
                raise ConfigError(f"{self.path}: [node] {label} = {path} does not exist")


def load_node_config(path: Path) -> NodeConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        data = NodeFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from None
    config = NodeConfig(path.resolve(), data)
    config.check_files()
    return config


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    location = first["loc"]
    where = ".".join(str(p) for p in location)
    if first["type"] == "extra_forbidden":
        return f"unknown key {where!r}"
    if first["type"] == "missing":
        return f"missing key {where!r}"
    return f"{where}: {first['msg']}"


def write_node_config(
    path: Path, institution: str, host: str, peer_port: int, api_port: int
) -> None:
    path.write_text(
        "# Notary chain node configuration; paths are relative to this file.\n"
        "[node]\n"
        f'institution = "{institution}"\n'
        'genesis = "../genesis.json"\n'
        'data_dir = "data"\n'
        'node_key = "node.key"\n'
        'tls_cert = "tls.crt"\n'
        'tls_key = "tls.key"\n'
        'ca_cert = "../ca.crt"\n'
        "\n[listen]\n"
        f'host = "{host}"\n'
        f"peer_port = {peer_port}\n"
        f"api_port = {api_port}\n"
        "\n[log]\n"
        'format = "json"\n'
        'level = "info"\n'
    )
