"""`client.toml`: which nodes to talk to, the trust anchor, and who the client is.

    genesis = "genesis.json"          # the consortium's genesis: the trust anchor
    identity = "dev/applicant.key"    # the key this client signs with
    nodes = ["http://127.0.0.1:7100", "http://127.0.0.1:7101"]

    [identities]                      # optional named keys, chosen with --as NAME
    officer = "dev/officer.key"

Paths are relative to the file. The file is found by `--config`, else the
environment variable NOTARYCHAIN_CONFIG, else `./client.toml`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from client.errors import ConfigError
from ledger.genesis import Genesis, GenesisError, parse_genesis

CONFIG_ENV: Final = "NOTARYCHAIN_CONFIG"
_KNOWN_KEYS: Final = {"genesis", "identity", "nodes", "identities", "timeout_s"}


@dataclass(frozen=True, slots=True)
class ClientConfig:
    path: Path | None
    genesis_path: Path
    nodes: tuple[str, ...]
    identity: Path | None
    identities: dict[str, Path] = field(default_factory=dict)
    timeout_s: float = 30.0

    def genesis(self) -> Genesis:
        return load_genesis(self.genesis_path)

    def key_path(self, name: str | None) -> Path:
        if name is None:
            if self.identity is None:
                raise ConfigError("no identity is configured: set `identity` in the client config")
            return self.identity
        if name not in self.identities:
            known = ", ".join(sorted(self.identities)) or "none"
            raise ConfigError(f"no identity named {name!r} (known: {known})")
        return self.identities[name]


def load_genesis(path: Path) -> Genesis:
    try:
        return parse_genesis(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: genesis file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the genesis: {exc.strerror}") from None
    except GenesisError as exc:
        raise ConfigError(f"{path}: {exc.reason}") from None


def find_config(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else Path("client.toml")


def _string(raw: dict[str, Any], key: str, path: Path) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: {key} must be a non-empty string")
    return value


def load_config(path: Path) -> ClientConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: client config not found (use --config or {CONFIG_ENV})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the client config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    base = path.parent
    if "genesis" not in raw:
        raise ConfigError(f"{path}: missing key 'genesis'")
    nodes = raw.get("nodes", [])
    if not isinstance(nodes, list) or not all(isinstance(n, str) and n for n in nodes):
        raise ConfigError(f"{path}: nodes must be a list of URLs")
    for url in nodes:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{path}: node {url!r} is not an http(s) URL")
    identities_raw = raw.get("identities", {})
    if not isinstance(identities_raw, dict) or not all(
        isinstance(v, str) for v in identities_raw.values()
    ):
        raise ConfigError(f"{path}: [identities] maps names to key file paths")
    timeout = raw.get("timeout_s", 30.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{path}: timeout_s must be a positive number")
    identity = base / _string(raw, "identity", path) if "identity" in raw else None
    return ClientConfig(
        path=path,
        genesis_path=base / _string(raw, "genesis", path),
        nodes=tuple(n.rstrip("/") for n in nodes),
        identity=identity,
        identities={name: base / value for name, value in identities_raw.items()},
        timeout_s=float(timeout),
    )
