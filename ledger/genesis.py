"""The consortium's genesis: who the institutions are and how the chain runs.

Rule: the genesis is the trust anchor. Every node and every offline verifier
starts from the same document; its SHA-256 over a canonical JSON form (sorted
keys, no whitespace) is the `genesis_hash` that peers compare before they talk,
so a node started with another consortium's genesis is refused with one clear
line. The validator set is the institutions' node keys, in document order.
This module parses text; reading the file is the caller's business (node and
client each do it), which keeps `ledger` free of I/O.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ledger.errors import LedgerError, SignatureError
from ledger.keys import parse_public_key_text
from ledger.validators import ValidatorSet

Role = Literal["notary", "enterprise", "observer"]
Port = Annotated[int, Field(ge=1, le=65535)]
KeyText = Annotated[str, Field(min_length=64, max_length=64)]


class GenesisError(LedgerError):
    """The genesis is invalid, or lacks what was asked of it; the message says which."""


def _check_key(value: str) -> str:
    try:
        parse_public_key_text(value)
    except SignatureError as exc:
        raise ValueError(exc.reason) from None
    return value


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodeEntry(Strict):
    key: KeyText
    """The node's Ed25519 signing key (hex): its vote in consensus."""
    host: str
    peer_port: Port
    api_port: Port

    @field_validator("key")
    @classmethod
    def _key_is_ed25519(cls, value: str) -> str:
        return _check_key(value)


class Institution(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    role: Role
    admin_key: KeyText
    """The institution's administrator key (hex): enrols identities, votes in governance."""
    node: NodeEntry

    @field_validator("admin_key")
    @classmethod
    def _admin_key_is_ed25519(cls, value: str) -> str:
        return _check_key(value)


class GenesisIdentity(Strict):
    """An identity enrolled from the start (for example a development applicant)."""

    key: KeyText
    institution: str
    role: Literal["applicant", "officer", "auditor"]
    name: Annotated[str, Field(min_length=1, max_length=120)]
    level: int = Field(0, ge=0, le=3)
    balance: int = Field(0, ge=0, le=10**15)
    """Initial prepaid balance (for development consortia)."""

    @field_validator("key")
    @classmethod
    def _key_is_ed25519(cls, value: str) -> str:
        return _check_key(value)


class ConsensusSettings(Strict):
    """The protocol parameters every node must share (`consensus.config.Parameters`)."""

    batch_size_max: int = Field(2048, ge=1)
    batch_bytes_max: int = Field(4 * 1024 * 1024, ge=1024)
    window_size: int = Field(64, ge=4)
    in_flight_max: int = Field(4, ge=1)
    pipelined_batch_min: int = Field(256, ge=1)
    checkpoint_interval: int = Field(1, ge=1)
    view_change_timeout_ms: int = Field(2_000, ge=10)
    view_change_timeout_max_ms: int = Field(32_000, ge=10)
    request_timeout_ms: int = Field(3_000, ge=10)
    request_wait_max_ms: int = Field(30_000, ge=10)
    resend_interval_ms: int = Field(500, ge=10)
    status_interval_ms: int = Field(1_000, ge=10)
    clock_skew_max_ms: int = Field(5_000, ge=1)
    tx_lifetime_max_ms: int = Field(120_000, ge=1_000)
    fetch_timeout_ms: int = Field(2_000, ge=10)
    pending_requests_max: int = Field(100_000, ge=1)

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> ConsensusSettings:
        if self.request_wait_max_ms < self.request_timeout_ms:
            raise ValueError("request_wait_max_ms must be at least request_timeout_ms")
        if self.view_change_timeout_max_ms < self.view_change_timeout_ms:
            raise ValueError("view_change_timeout_max_ms must be at least view_change_timeout_ms")
        return self

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


class Genesis(Strict):
    chain_id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
    created_at_ms: int
    institutions: tuple[Institution, ...] = Field(min_length=1)
    ca_certificate: str
    """PEM of the consortium CA that signs every node's TLS certificate."""
    consensus: ConsensusSettings = ConsensusSettings()
    families: dict[str, str] = {}
    """Transaction family name -> SHA-256 (hex) of its code, pinned for determinism."""
    identities: tuple[GenesisIdentity, ...] = ()
    fees: dict[str, int] = {}
    """The initial fee schedule: operation ("notarization.apply") -> amount."""

    @field_validator("institutions")
    @classmethod
    def _unique(cls, value: tuple[Institution, ...]) -> tuple[Institution, ...]:
        names = [i.name for i in value]
        if len(set(names)) != len(names):
            raise ValueError("institution names must be unique")
        keys = [i.node.key for i in value] + [i.admin_key for i in value]
        if len(set(keys)) != len(keys):
            raise ValueError("every node key and admin key must be distinct")
        return value

    @model_validator(mode="after")
    def _identities_belong(self) -> Genesis:
        names = {i.name for i in self.institutions}
        for identity in self.identities:
            if identity.institution not in names:
                raise ValueError(f"identity {identity.name!r} names an unknown institution")
        return self

    def canonical_json(self) -> bytes:
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()

    @property
    def genesis_hash(self) -> str:
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def validator_set(self) -> ValidatorSet:
        keys = tuple(bytes.fromhex(i.node.key) for i in self.institutions)
        return ValidatorSet(0, keys)

    def institution(self, name: str) -> Institution:
        for institution in self.institutions:
            if institution.name == name:
                return institution
        raise GenesisError(f"institution {name!r} is not in the genesis")

    def replica_id(self, name: str) -> int:
        return [i.name for i in self.institutions].index(self.institution(name).name)

    def to_json(self) -> str:
        """The file form: indented, keys sorted (the hash uses the compact form)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def parse_genesis(text: str | bytes) -> Genesis:
    """Parse and validate a genesis document; `GenesisError` names the first problem."""
    try:
        return Genesis.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise GenesisError(f"invalid genesis at {where}: {first['msg']}") from None
