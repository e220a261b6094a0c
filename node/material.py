"""`notarychain-node init`: the consortium's keys, certificates, genesis and node configs.

Layout written under the output directory:

    genesis.json          the trust anchor every node and verifier shares
    ca.crt, ca.key        the consortium CA (keep ca.key offline in production)
    NAME/node.toml        one node's configuration
    NAME/node.key         its Ed25519 signing key (its vote in consensus)
    NAME/admin.key        the institution administrator's Ed25519 key
    NAME/tls.crt, tls.key its TLS identity, signed by the CA (mutual TLS between nodes)

Every private key is created with mode 0600, encrypted when a passphrase is
given through the environment variable named by `PASSPHRASE_ENV`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.genesis import ConsensusSettings, Genesis, GenesisIdentity, Institution, NodeEntry
from ledger.keyfile import save_private_key
from ledger.keys import PrivateKey, public_key_text
from node.config import write_node_config

PASSPHRASE_ENV = "NOTARYCHAIN_KEY_PASSPHRASE"  # noqa: S105  (the variable's name, not a secret)
CERT_VALIDITY_DAYS = 3650


class MaterialError(Exception):
    """The consortium material cannot be created; the message says why."""


@dataclass(frozen=True, slots=True)
class InstitutionSpec:
    name: str
    role: str
    host: str = "127.0.0.1"
    peer_port: int = 0
    api_port: int = 0


def passphrase_from_env() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _ec_key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Notary chain consortium"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(chain_id: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = _name(f"{chain_id} consortium CA")
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def make_node_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_certificate: x509.Certificate, name: str, host: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A TLS certificate for both ends of mutual TLS; its common name is the institution."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(name)]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt_names.append(x509.DNSName(host))
    if host != "127.0.0.1":
        alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, certificate


def create_consortium(
    out: Path,
    institutions: list[InstitutionSpec],
    *,
    chain_id: str | None = None,
    consensus: ConsensusSettings | None = None,
    families: dict[str, str] | None = None,
    identities: tuple[GenesisIdentity, ...] = (),
    fees: dict[str, int] | None = None,
) -> Genesis:
    """Write the whole consortium's material under `out` (which must be empty or absent)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise MaterialError(f"{out}: not empty; refusing to overwrite existing material")
    if not institutions:
        raise MaterialError("at least one --institution NAME:ROLE is needed")
    out.mkdir(parents=True, exist_ok=True)
    passphrase = passphrase_from_env()
    chain_id = chain_id or f"notarychain-{int(time.time())}"
    ca_key, ca_certificate = make_ca(chain_id)
    ca_pem = ca_certificate.public_bytes(serialization.Encoding.PEM)
    (out / "ca.crt").write_bytes(ca_pem)
    _write_secret(out / "ca.key", _ec_key_pem(ca_key, passphrase))
    entries: list[Institution] = []
    for spec in institutions:
        directory = out / spec.name
        directory.mkdir()
        node_key, admin_key = PrivateKey.generate(), PrivateKey.generate()
        save_private_key(directory / "node.key", node_key, passphrase)
        save_private_key(directory / "admin.key", admin_key, passphrase)
        tls_key, tls_certificate = make_node_certificate(
            ca_key, ca_certificate, spec.name, spec.host
        )
        (directory / "tls.crt").write_bytes(
            tls_certificate.public_bytes(serialization.Encoding.PEM)
        )
        _write_secret(directory / "tls.key", _ec_key_pem(tls_key, passphrase))
        entries.append(
            Institution(
                name=spec.name,
                role=spec.role,
                admin_key=public_key_text(admin_key.public_key),
                node=NodeEntry(
                    key=public_key_text(node_key.public_key),
                    host=spec.host,
                    peer_port=spec.peer_port,
                    api_port=spec.api_port,
                ),
            )
        )
    genesis = Genesis(
        chain_id=chain_id,
        created_at_ms=int(time.time() * 1000),
        institutions=tuple(entries),
        ca_certificate=ca_pem.decode(),
        consensus=consensus or ConsensusSettings(),
        families=families or {},
        identities=identities,
        fees=fees or {},
    )
    (out / "genesis.json").write_text(genesis.to_json())
    for spec in institutions:
        write_node_config(
            out / spec.name / "node.toml", spec.name, spec.host, spec.peer_port, spec.api_port
        )
    return genesis


def add_institution(
    out: Path, spec: InstitutionSpec, ca_passphrase: bytes | None = None
) -> tuple[Path, dict[str, object]]:
    """Material for an institution joining an existing consortium (the CA signs its TLS
    certificate); returns its directory and the member description governance needs."""
    genesis_path = out / "genesis.json"
    try:
        genesis = Genesis.model_validate_json(genesis_path.read_bytes())
        ca_certificate = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
        ca_key = serialization.load_pem_private_key((out / "ca.key").read_bytes(), ca_passphrase)
    except FileNotFoundError as exc:
        raise MaterialError(
            f"{exc.filename}: not found (run this in the consortium's folder)"
        ) from None
    except (ValueError, TypeError):
        raise MaterialError(f"{out}: the CA key cannot be read (wrong passphrase?)") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise MaterialError(f"{out}/ca.key: not the consortium CA's key")
    if spec.name in {i.name for i in genesis.institutions}:
        raise MaterialError(f"{spec.name} is already in the genesis")
    directory = out / spec.name
    if directory.exists():
        raise MaterialError(f"{directory}: already exists")
    directory.mkdir()
    passphrase = passphrase_from_env()
    node_key, admin_key = PrivateKey.generate(), PrivateKey.generate()
    save_private_key(directory / "node.key", node_key, passphrase)
    save_private_key(directory / "admin.key", admin_key, passphrase)
    tls_key, tls_certificate = make_node_certificate(ca_key, ca_certificate, spec.name, spec.host)
    (directory / "tls.crt").write_bytes(tls_certificate.public_bytes(serialization.Encoding.PEM))
    _write_secret(directory / "tls.key", _ec_key_pem(tls_key, passphrase))
    write_node_config(directory / "node.toml", spec.name, spec.host, spec.peer_port, spec.api_port)
    member: dict[str, object] = {
        "name": spec.name,
        "role": spec.role,
        "admin_key": public_key_text(admin_key.public_key),
        "node_key": public_key_text(node_key.public_key),
        "host": spec.host,
        "peer_port": spec.peer_port,
        "api_port": spec.api_port,
    }
    (directory / "member.json").write_text(json.dumps(member, indent=2) + "\n")
    return directory, member
