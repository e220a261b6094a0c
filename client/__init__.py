"""The client: SDK and command line.

It depends on `ledger` only, so a verifier can install it without the server.

    from client import AsyncClient, Client, load_config
"""

from client.config import ClientConfig, load_config
from client.errors import (
    ClientError,
    ConfigError,
    NodeUnavailable,
    NotAuthorized,
    ProofInvalid,
    Refused,
    Rejected,
    Timeout,
    VerificationFailed,
)
from client.sdk import AsyncClient, Receipt
from client.sync import Client
from client.verify import Proven, verify_certificate, verify_receipt

__all__ = [
    "AsyncClient",
    "Client",
    "ClientConfig",
    "ClientError",
    "ConfigError",
    "NodeUnavailable",
    "NotAuthorized",
    "ProofInvalid",
    "Proven",
    "Receipt",
    "Refused",
    "Rejected",
    "Timeout",
    "VerificationFailed",
    "load_config",
    "verify_certificate",
    "verify_receipt",
]
