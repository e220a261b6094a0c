"""Fees family: prepaid accounts and the fee schedule, settled by the other families' steps.

Amounts are integers in the consortium's smallest unit. An institution's
administrator credits an identity's prepaid account; a notarization
application holds its fee from the applicant's balance; issuance pays it to
the notary office's account; rejection and withdrawal refund it. Balances
never go negative: a step that would need more than the balance is refused.
The schedule is set by governance (`governance` family, `SetFee`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from ledger.encoding import MaxLength
from ledger.keys import PublicKeyBytes

FAMILY: Final = "fees"
CREDIT: Final = "credit"

SCHEDULE_KEY: Final = b"fees/schedule"
APPLY_FEE: Final = "notarization.apply"
"""The schedule entry charged when an application is filed."""


@dataclass(frozen=True, slots=True)
class Credit:
    account: PublicKeyBytes
    amount: int
    memo: Annotated[str, MaxLength(200)]


@dataclass(frozen=True, slots=True)
class Account:
    """State record at `account_key(owner)`: an identity's prepaid balance."""

    balance: int
    held: int
    """Fees held for pending applications (not spendable)."""


@dataclass(frozen=True, slots=True)
class FeeEntry:
    operation: str
    amount: int


@dataclass(frozen=True, slots=True)
class Schedule:
    """State record at `SCHEDULE_KEY`."""

    entries: tuple[FeeEntry, ...]

    def fee(self, operation: str) -> int:
        for entry in self.entries:
            if entry.operation == operation:
                return entry.amount
        return 0


def account_key(owner: bytes) -> bytes:
    return b"account/" + owner


def institution_account_key(institution: str) -> bytes:
    """An institution's revenue account (the notary office is paid here)."""
    return b"account-institution/" + institution.encode()
