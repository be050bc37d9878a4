"""Bank accounts: debtor accounts (deploy/bank.yaml), creditor tokens (the vault), sandbox test IBANs.

Resolved details live only in memory and in the written file: never in Kafka, logs or the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from schwifty import IBAN

# The local sandbox bank's closed accounts: `concord bank answer` rejects these AC01.
SANDBOX_CLOSED_PREFIX = "9999"
# A German bank code schwifty's registry knows, so generated IBANs pass full validation.
_SANDBOX_BANK_CODE = "37040044"
_SANDBOX_BIC = "COBADEFFXXX"


@dataclass(frozen=True)
class Account:
    iban: str
    name: str
    bic: str | None = None

    def __repr__(self) -> str:  # never print bank details by accident (logs, tracebacks)
        return "Account(<redacted>)"


class Unresolved(StrEnum):
    UNKNOWN_ACCOUNT = "unknown_account"


def sandbox_iban(seed: str, *, closed: bool = False) -> str:
    """A deterministic, valid test IBAN (check digits by schwifty) for `seed`."""
    digits = str(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))[-10:].rjust(10, "0")
    account = (SANDBOX_CLOSED_PREFIX + digits[4:]) if closed else ("1" + digits[1:])
    return str(IBAN.generate("DE", bank_code=_SANDBOX_BANK_CODE, account_code=account).compact)


def is_sandbox_closed(iban: str) -> bool:
    """The local bank's rule: a German sandbox account number starting 9999 is closed."""
    compact = iban.replace(" ", "").upper()
    return compact.startswith("DE") and compact[12:].startswith(SANDBOX_CLOSED_PREFIX)


def valid_iban(text: str) -> bool:
    try:
        IBAN(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class AccountBook:
    """What the gateway may resolve: debtor accounts by funding account, creditors by token."""

    debtors: dict[str, Account]
    vault: dict[str, Account]
    sandbox: bool = False

    def debtor(self, funding_account_id: str) -> Account | None:
        found = self.debtors.get(funding_account_id)
        if found is None and self.sandbox:
            return Account(
                sandbox_iban("debtor:" + funding_account_id), "Concord " + funding_account_id, _SANDBOX_BIC
            )
        return found

    def creditor(self, token: str | None, payee_id: str) -> Account | None:
        if not token:
            return None
        found = self.vault.get(token)
        if found is None and self.sandbox and token.startswith("acct-tok-"):
            closed = "-fail-" in token
            return Account(
                sandbox_iban("creditor:" + token, closed=closed), "Payee " + payee_id, _SANDBOX_BIC
            )
        return found

    def resolvable(self, token: str | None, payee_id: str) -> bool:
        return self.creditor(token, payee_id) is not None
