"""The gateway's part of the production guard (SPEC §11): besides what every service checks (its
Kafka password, database DSNs, and the rail secret it signs with), production refuses sandbox
accounts and the shipped local vault — one plain line naming the setting, exit status 2."""

from __future__ import annotations

import sys

from services.bank_gateway.config import resolve_path
from shared.config import REPO_ROOT
from shared.production import EXIT_STATUS, RefusedInProduction, is_production
from shared.settings import Settings

LOCAL_VAULT = REPO_ROOT / "deploy" / "bank-vault.yaml"


def check_bank(settings: Settings) -> None:
    if not is_production(settings):
        return
    if settings.bank_sandbox:
        raise RefusedInProduction("CONCORD_BANK_SANDBOX", "is on: sandbox test accounts would be paid")
    if resolve_path(settings.bank_vault_file).resolve() == LOCAL_VAULT.resolve():
        raise RefusedInProduction("CONCORD_BANK_VAULT_FILE", "is the local vault (deploy/bank-vault.yaml)")


def guard_bank(settings: Settings) -> None:
    try:
        check_bank(settings)
    except RefusedInProduction as exc:
        print(exc, file=sys.stderr, flush=True)
        raise SystemExit(EXIT_STATUS) from None
