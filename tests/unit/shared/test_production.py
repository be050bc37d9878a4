"""The production guard's rules (SPEC §11), without a process or a database; started for real:
tests/integration/test_production_guard.py."""

from __future__ import annotations

from typing import Any

import pytest

from shared.production import (
    RefusedInProduction,
    check_settings,
    dsn_password,
    refuse_unsafe,
    signing_secrets,
)
from shared.settings import Settings

SAFE: dict[str, Any] = {
    "env": "production",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_password": "from-the-vault",
    "ops_secret": "ops-from-the-vault",
    "rail_secret": "rail-from-the-vault",
}
SAFE_DSNS = {"CONCORD_DB_DSN": "postgresql://intake:from-the-vault@db.internal/intake"}


def refusal(settings: Settings, dsns: dict[str, str] = SAFE_DSNS, signers: tuple[str, ...] = ("ops",)) -> str:
    with pytest.raises(RefusedInProduction) as exc:
        check_settings(settings, secrets=signing_secrets(settings, signers), dsns=dsns)
    return str(exc.value).removeprefix("refusing to start with CONCORD_ENV=production: ")


def test_safe_production_settings_pass() -> None:
    settings = Settings(**SAFE)
    check_settings(settings, secrets=signing_secrets(settings, ("ops", "rail")), dsns=SAFE_DSNS)


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", ""])
def test_a_kafka_protocol_without_sasl_is_refused(protocol: str) -> None:
    assert refusal(Settings(**{**SAFE, "kafka_security_protocol": protocol})).startswith(
        "CONCORD_KAFKA_SECURITY_PROTOCOL is"
    )


def test_a_local_kafka_password_is_refused() -> None:
    settings = Settings(**{**SAFE, "kafka_password": "local-dev-intake"})
    assert refusal(settings) == "CONCORD_KAFKA_PASSWORD is a local-dev- password"


@pytest.mark.parametrize(
    ("field", "setting", "signer"),
    [("ops_secret", "CONCORD_OPS_SECRET", "ops"), ("rail_secret", "CONCORD_RAIL_SECRET", "rail")],
)
def test_a_local_signing_secret_is_refused_where_the_process_uses_it(
    field: str, setting: str, signer: str
) -> None:
    settings = Settings(**{**SAFE, field: f"local-dev-{signer}-secret"})
    assert refusal(settings, signers=(signer,)) == f"{setting} is a local-dev- secret"
    # A secret the process never verifies nor signs with is not asked for.
    check_settings(settings, secrets=signing_secrets(settings, ()), dsns=SAFE_DSNS)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://intake:local-dev-intake@db.internal/intake",
        "postgresql://db.internal/intake?user=intake&password=local-dev-intake",
    ],
)
def test_a_local_database_password_is_refused_naming_its_setting(dsn: str) -> None:
    dsns = {**SAFE_DSNS, "CONCORD_DB_OWNER_DSN": dsn}
    assert refusal(Settings(**SAFE), dsns) == "CONCORD_DB_OWNER_DSN has a local-dev- password"


def test_a_percent_encoded_local_password_is_refused_too() -> None:
    assert dsn_password("postgresql://u:p%40ss@h/d") == "p@ss"
    dsns = {"CONCORD_DB_DSN": "postgresql://intake:local%2Ddev%2Dintake@db.internal/intake"}
    assert refusal(Settings(**SAFE), dsns) == "CONCORD_DB_DSN has a local-dev- password"


def test_the_message_never_carries_a_secret() -> None:
    assert "vault" not in refusal(Settings(**{**SAFE, "kafka_security_protocol": "PLAINTEXT"}))


async def test_outside_production_nothing_is_refused() -> None:
    settings = Settings(kafka_security_protocol="PLAINTEXT")  # and every default a local one
    await refuse_unsafe(
        settings,
        secrets={"CONCORD_OPS_SECRET": settings.ops_secret},
        dsns={"CONCORD_DB_DSN": settings.runtime_dsn},
    )
