"""SPEC §11 production guard: started for real (`python -m services.intake`, the CLI) with
CONCORD_ENV=production, a process with a local default exits non-zero with one line naming the
setting, before it touches Kafka or migrates anything. Each rule, without a process:
tests/unit/shared/test_production.py."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.production import check_databases
from tests.support import ADMIN_DSN, ROOT, ServiceDatabase, role_dsn, scratch_service_database

pytestmark = pytest.mark.integration

PREFIX = "refusing to start with CONCORD_ENV=production: "


@pytest.fixture
async def intake_db() -> AsyncIterator[ServiceDatabase]:
    async with scratch_service_database("intake") as db:
        yield db


@pytest.fixture
async def superuser_dsn() -> AsyncIterator[str]:
    """A superuser whose password is no local default: only the role check can refuse it."""
    role, password = f"t_super_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
        yield role_dsn(role, "postgres", password)
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


def production_env(**overrides: str) -> dict[str, str]:
    """Production settings with nothing local in them, but for the overrides; nothing they name
    is ever reached unless a test points a DSN somewhere real."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCORD_")}
    env.update(
        PYTHONPATH=str(ROOT),
        CONCORD_ENV="production",
        CONCORD_KAFKA_BOOTSTRAP="127.0.0.1:1",  # never reached: the guard comes first
        CONCORD_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        CONCORD_KAFKA_PASSWORD="s3cret-from-the-vault",
        CONCORD_OPS_SECRET="ops-secret-from-the-vault",
        CONCORD_RAIL_SECRET="rail-secret-from-the-vault",
        CONCORD_DB_DSN="postgresql://intake:from-the-vault@127.0.0.1:1/intake",
        CONCORD_DB_OWNER_DSN="postgresql://intake_owner:from-the-vault@127.0.0.1:1/intake",
    )
    env.update(overrides)
    return env


def start(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def refused_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(PREFIX), lines
    return lines[0][len(PREFIX) :]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"CONCORD_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
            "CONCORD_KAFKA_SECURITY_PROTOCOL is 'PLAINTEXT': production needs SASL_PLAINTEXT or SASL_SSL",
        ),
        ({}, "CONCORD_DB_DSN cannot be reached to check that its role is no superuser"),
    ],
    ids=["protocol", "unreachable"],
)
def test_a_service_refuses_to_start_in_production_on_an_unsafe_setting(
    overrides: dict[str, str], expected: str
) -> None:
    line = refused_line(start("services.intake", production_env(**overrides)))
    assert line.startswith(expected), line


def test_a_service_without_a_kafka_password_refuses_to_start() -> None:
    env = production_env()
    del env["CONCORD_KAFKA_PASSWORD"]
    assert refused_line(start("services.intake", env)) == (
        "CONCORD_KAFKA_PASSWORD is not set (the default is a local-dev- password)"
    )


def test_a_service_connecting_as_a_superuser_refuses_to_start(superuser_dsn: str) -> None:
    env = production_env(CONCORD_DB_DSN=superuser_dsn, CONCORD_DB_OWNER_DSN=superuser_dsn)
    line = refused_line(start("services.intake", env))
    assert line.startswith("CONCORD_DB_DSN connects as t_super_"), line
    assert line.endswith("which is or can become a superuser"), line


def test_the_cli_refuses_to_start_in_production_with_local_defaults() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCORD_")}
    env.update(PYTHONPATH=str(ROOT), CONCORD_ENV="production")
    assert refused_line(start("tools.cli", env, "holds", "list")) == (
        "CONCORD_KAFKA_PASSWORD is not set (the default is a local-dev- password)"
    )
    env.update(CONCORD_KAFKA_PASSWORD="s3cret", CONCORD_OPS_SECRET="ops-s3cret")
    assert (
        refused_line(start("tools.cli", env, "holds", "list"))
        == "CONCORD_LEDGER_DB_DSN has a local-dev- password"
    )


async def test_a_service_runtime_and_owner_role_pass_the_superuser_check(intake_db: ServiceDatabase) -> None:
    # (Their scratch passwords are local-dev- ones, so only the role check is asked here.)
    await check_databases({"CONCORD_DB_DSN": intake_db.runtime, "CONCORD_DB_OWNER_DSN": intake_db.owner})
