"""bank_gateway's configuration (SPEC §12.4): one frozen object, built once at start.

- `CONCORD_BANK_CUTOFF_S` (10): seconds between two cut-offs, one pain.001 each;
- `CONCORD_BANK_OUTBOX` (`.cache/bank/outbox`): where pain.001 files are written, atomically;
- `CONCORD_BANK_INBOX` (`.cache/bank/inbox`): where pain.002 / camt.054 files are dropped;
- `CONCORD_BANK_SANDBOX` (false; the local stack sets 1): unknown funding accounts and
  `acct-tok-…` tokens resolve to deterministic test IBANs;
- `CONCORD_BANK_ACCOUNTS_FILE` (`deploy/bank.yaml`): funding account → debtor IBAN, BIC, name;
- `CONCORD_BANK_VAULT_FILE` (`deploy/bank-vault.yaml`): payout_account_ref token → creditor IBAN,
  BIC, name (a secret store in production);
- `CONCORD_BANK_POLL_S` (1): seconds between two looks at the inbox (and unwritten files);
- `CONCORD_BANK_SETTLE_S` (1): an inbox file modified more recently waits (it may be half-written);
- `CONCORD_BANK_MAX_FILE_BYTES` (10 MiB): a bigger inbox file is rejected unread.

The inbox's processed/ and rejected/ folders sit inside it. Bank details are read into memory
only; a bad entry stops the start naming the file and the key, never the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.bank_gateway.domain.accounts import Account, AccountBook, valid_iban
from shared.config import REPO_ROOT, ConfigError
from shared.settings import Settings


@dataclass(frozen=True)
class BankConfig:
    book: AccountBook
    outbox: Path
    inbox: Path
    max_file_bytes: int
    settle_s: float

    @property
    def processed(self) -> Path:
        return self.inbox / "processed"

    @property
    def rejected(self) -> Path:
        return self.inbox / "rejected"

    @classmethod
    def load(cls, settings: Settings) -> BankConfig:
        debtors = _accounts(resolve_path(settings.bank_accounts_file), "accounts")
        vault = _accounts(resolve_path(settings.bank_vault_file), "tokens")
        return cls(
            book=AccountBook(debtors, vault, sandbox=settings.bank_sandbox),
            outbox=resolve_path(settings.bank_outbox),
            inbox=resolve_path(settings.bank_inbox),
            max_file_bytes=settings.bank_max_file_bytes,
            settle_s=settings.bank_settle_s,
        )


def resolve_path(value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else REPO_ROOT / p


def _accounts(path: Path, section: str) -> dict[str, Account]:
    if not path.exists():
        return {}
    try:
        loaded: Any = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"unreadable: {type(exc).__name__}") from None
    entries = loaded.get(section) or {} if isinstance(loaded, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}:{section}", "must be a mapping of id → {iban, bic?, name}")
    out: dict[str, Account] = {}
    for key, entry in entries.items():
        where = f"{path.name}:{section}.{key}"
        if not isinstance(entry, dict) or not isinstance(entry.get("iban"), str) or not entry.get("name"):
            raise ConfigError(where, "needs iban and name")
        if not valid_iban(entry["iban"]):
            raise ConfigError(where + ".iban", "is not a valid IBAN")  # the value is never printed
        bic = entry.get("bic")
        out[str(key)] = Account(entry["iban"].replace(" ", ""), str(entry["name"]), str(bic) if bic else None)
    return out
