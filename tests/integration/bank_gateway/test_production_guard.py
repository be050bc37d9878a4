"""SPEC §11 for the bank gateway: in production it refuses the local rail secret it signs with,
sandbox accounts and the shipped local vault — one line naming the setting, exit status 2."""

from __future__ import annotations

import pytest

from tests.integration.test_production_guard import production_env, refused_line, start

pytestmark = pytest.mark.integration

SAFE = {
    "CONCORD_BANK_SANDBOX": "0",
    "CONCORD_BANK_VAULT_FILE": "/run/secrets/bank-vault.yaml",
    "CONCORD_DB_DSN": "postgresql://bank_gateway:from-the-vault@127.0.0.1:1/bank_gateway",
    "CONCORD_DB_OWNER_DSN": "postgresql://bank_gateway_owner:from-the-vault@127.0.0.1:1/bank_gateway",
}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"CONCORD_BANK_SANDBOX": "1"}, "CONCORD_BANK_SANDBOX is on: sandbox test accounts would be paid"),
        (
            {"CONCORD_BANK_VAULT_FILE": "deploy/bank-vault.yaml"},
            "CONCORD_BANK_VAULT_FILE is the local vault (deploy/bank-vault.yaml)",
        ),
        ({"CONCORD_RAIL_SECRET": "local-dev-rail-secret"}, "CONCORD_RAIL_SECRET is a local-dev- secret"),
        ({}, "CONCORD_DB_DSN cannot be reached to check that its role is no superuser"),
    ],
    ids=["sandbox", "local-vault", "rail-secret", "otherwise-the-shared-checks"],
)
def test_the_gateway_refuses_local_bank_settings_in_production(
    overrides: dict[str, str], expected: str
) -> None:
    line = refused_line(start("services.bank_gateway", production_env(**{**SAFE, **overrides})))
    assert line.startswith(expected), line
