"""The production guard (SPEC §11): with CONCORD_ENV=production a process refuses to start on a
local default.

Refused: a secret or password the process uses that is a `local-dev-` default (every local
password is `local-dev-<name>`, so one slip of a local value into production is caught here), a
database role that is or can become a superuser (or a database that cannot be reached to tell),
and a Kafka security protocol that does not authenticate. One place for every entry point — the
services (shared/service.py), the CLI, and later the bank gateway: each names the secrets and
databases it uses; the first problem is one plain line naming the setting, exit status 2.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from shared.kafka_auth import SASL_PROTOCOLS
from shared.settings import Settings

LOCAL_PREFIX = "local-dev-"
EXIT_STATUS = 2
_SIGNING_SECRETS = {"rail": "CONCORD_RAIL_SECRET", "ops": "CONCORD_OPS_SECRET"}


class RefusedInProduction(Exception):
    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        super().__init__(f"refusing to start with CONCORD_ENV=production: {setting} {problem}")


def is_production(settings: Settings) -> bool:
    return settings.env.strip().lower() == "production"


def signing_secrets(settings: Settings, signers: Iterable[str]) -> dict[str, str]:
    """The HMAC secrets for records signed by these signers ("rail", "ops"), by setting name."""
    values = {"rail": settings.rail_secret, "ops": settings.ops_secret}
    return {_SIGNING_SECRETS[s]: values[s] for s in sorted(set(signers))}


def dsn_password(dsn: str) -> str | None:
    parts = urlsplit(dsn)
    if parts.password is not None:
        return unquote(parts.password)
    return next(iter(parse_qs(parts.query).get("password", [])), None)


def check_settings(settings: Settings, *, secrets: Mapping[str, str], dsns: Mapping[str, str]) -> None:
    """What can be told without connecting anywhere."""
    protocol = settings.kafka_security_protocol
    if protocol.strip().upper() not in SASL_PROTOCOLS:
        raise RefusedInProduction(
            "CONCORD_KAFKA_SECURITY_PROTOCOL", f"is {protocol!r}: production needs SASL_PLAINTEXT or SASL_SSL"
        )
    if settings.kafka_password is None:
        raise RefusedInProduction(
            "CONCORD_KAFKA_PASSWORD", "is not set (the default is a local-dev- password)"
        )
    if settings.kafka_secret.startswith(LOCAL_PREFIX):
        raise RefusedInProduction("CONCORD_KAFKA_PASSWORD", "is a local-dev- password")
    for setting, value in secrets.items():
        if value.startswith(LOCAL_PREFIX):
            raise RefusedInProduction(setting, "is a local-dev- secret")
    for setting, dsn in dsns.items():
        password = dsn_password(dsn)
        if password is not None and password.startswith(LOCAL_PREFIX):
            raise RefusedInProduction(setting, "has a local-dev- password")


async def check_databases(dsns: Mapping[str, str], *, timeout_s: float = 5) -> None:
    """Each database role is no superuser and cannot become one (SET ROLE to a superuser role)."""
    for setting, dsn in dsns.items():
        try:
            conn = await asyncpg.connect(dsn, timeout=timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = " ".join(str(exc).split()) or exc.__class__.__name__
            raise RefusedInProduction(
                setting, f"cannot be reached to check that its role is no superuser ({reason})"
            ) from None
        try:
            role, superuser = await conn.fetchrow(
                """SELECT current_user,
                          EXISTS (SELECT 1 FROM pg_roles r
                                   WHERE r.rolsuper AND pg_has_role(current_user, r.oid, 'MEMBER'))"""
            )
        finally:
            await conn.close()
        if superuser:
            raise RefusedInProduction(setting, f"connects as {role}, which is or can become a superuser")


async def refuse_unsafe(settings: Settings, *, secrets: Mapping[str, str], dsns: Mapping[str, str]) -> None:
    """Raise RefusedInProduction for the first problem; nothing outside production."""
    if not is_production(settings):
        return
    check_settings(settings, secrets=secrets, dsns=dsns)
    await check_databases(dsns)


def guard_process(settings: Settings, *, secrets: Mapping[str, str], dsns: Mapping[str, str]) -> None:
    """For a process's entry point, before its event loop: one line on stderr and exit 2."""
    if not is_production(settings):
        return
    try:
        asyncio.run(refuse_unsafe(settings, secrets=secrets, dsns=dsns))
    except RefusedInProduction as exc:
        print(exc, file=sys.stderr, flush=True)
        raise SystemExit(EXIT_STATUS) from None
