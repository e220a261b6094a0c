"""Fees family execution: an institution administrator credits a prepaid account."""

from __future__ import annotations

from typing import ClassVar, Final

from ledger.families.fees import CREDIT, FAMILY, Account, Credit, account_key
from ledger.families.identity import Identity, Role, identity_key
from node.families.base import Context, Handler, Outcome, Refused, TableFamily

CREDIT_MAX: Final = 10**15
BALANCE_MAX: Final = 2**62


def credit(ctx: Context) -> Outcome:
    payload = ctx.payload(Credit)
    if not 0 < payload.amount <= CREDIT_MAX:
        raise Refused("bad_payload", f"a credit is between 1 and {CREDIT_MAX}")
    if ctx.get_model(Identity, identity_key(payload.account)) is None:
        raise Refused("unknown_identity", "the account's owner is not an enrolled identity")
    account = ctx.get_model(Account, account_key(payload.account)) or Account(0, 0)
    if account.balance + payload.amount > BALANCE_MAX:
        raise Refused("bad_payload", "the balance would exceed its maximum")
    ctx.put_model(
        account_key(payload.account), Account(account.balance + payload.amount, account.held)
    )
    return Outcome()


class FeesFamily(TableFamily):
    name = FAMILY
    operations: ClassVar[dict[str, Handler]] = {CREDIT: credit}
    roles: ClassVar[dict[str, tuple[Role, ...]]] = {CREDIT: (Role.ADMIN,)}
