"""Payloads and state records of the transaction families, shared by node and client.

Each family's module defines the operations' payload models and the records
its execution writes to the state, all canonically encoded, so a client can
build transactions and read proven state without the node's code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Refusal:
    """The result of a transaction its family refused: a stable code and a reason."""

    code: str
    reason: str
