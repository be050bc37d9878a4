"""Test helpers: scratch databases on the real PostgreSQL, records as Kafka would deliver them."""

from __future__ import annotations

import importlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import asyncpg

from shared.consumer import BatchProcessor, BatchResult, RawRecord, Router
from shared.db import create_pool, migrate
from shared.settings import Settings
from shared.unit_of_work import UnitOfWork
from testkit.records import record
from testkit.sql import CountedStatements, count_statements

if TYPE_CHECKING:  # bench and chaos import this module without pytest around
    import pytest

# `record` lives in testkit (the one set of builders); tests import it from here as before.
__all__ = ["record"]

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get(
    "CONCORD_TEST_ADMIN_DSN", "postgresql://concord_admin:local-dev-concord_admin@127.0.0.1:54329/postgres"
)


def dsn_for(database: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


def role_dsn(role: str, database: str, password: str | None = None) -> str:
    """The DSN of another role on the tests' PostgreSQL (same host and port as ADMIN_DSN)."""
    parts = urlsplit(ADMIN_DSN)
    secret = quote(password if password is not None else f"local-dev-{role}", safe="")
    return f"postgresql://{quote(role, safe='')}:{secret}@{parts.hostname}:{parts.port or 5432}/{database}"


@dataclass(frozen=True)
class ServiceDatabase:
    """A scratch database provisioned like production (SPEC §11): owned by an owner role of its
    own, which migrates it; the service runs as a runtime role of its own. `admin` is for tests'
    own assertions."""

    name: str
    admin: str
    owner: str
    runtime: str

    @property
    def runtime_role(self) -> str:
        return self.name

    def settings(self) -> dict[str, str]:
        """The Settings fields a service started on this database needs."""
        return {"db_dsn": self.runtime, "db_owner_dsn": self.owner}


# As deploy/postgres/init.sql creates the services' databases: text compared byte by byte.
DATABASE_COLLATION = "TEMPLATE template0 LC_COLLATE 'C'"


@asynccontextmanager
async def scratch_service_database(service: str) -> AsyncIterator[ServiceDatabase]:
    """An empty database, its owner role and its runtime role (neither a superuser; only they may
    connect); a service started on it migrates it as the owner and is granted its rights, exactly
    as on the local stack. Dropped, roles too, afterwards."""
    name = f"t_{service}_{uuid.uuid4().hex[:10]}"
    owner = f"{name}_owner"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        for role in (owner, name):
            await admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'local-dev-{role}'")
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}" {DATABASE_COLLATION}')
        await admin.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
        await admin.execute(f'GRANT CONNECT ON DATABASE "{name}" TO "{name}"')
    finally:
        await admin.close()
    try:
        yield ServiceDatabase(name, dsn_for(name), role_dsn(owner, name), role_dsn(name, name))
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'DROP ROLE IF EXISTS "{name}", "{owner}"')
        finally:
            await admin.close()


@asynccontextmanager
async def scratch_database(service: str | None, migrations: Path | None = None) -> AsyncIterator[str]:
    """A fresh database with the shared and (if named) the service's migrations; dropped afterwards."""
    name = f"t_{service or 'shared'}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" {DATABASE_COLLATION}')
    finally:
        await admin.close()
    dsn = dsn_for(name)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, migrations or (ROOT / "services" / service / "migrations" if service else None))
    finally:
        await conn.close()
    try:
        yield dsn
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def scratch_pool(service: str | None, migrations: Path | None = None) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_database(service, migrations) as dsn:
        pool = await create_pool(dsn, max_size=4)
        try:
            yield pool
        finally:
            await pool.close()


async def deliver(
    pool: asyncpg.Pool,
    router: Router,
    *records: RawRecord,
    settings: Settings | None = None,
    config: Any = None,
) -> BatchResult:
    """Run the service's handlers on records in one transaction, exactly as the consumer does (no Kafka).
    `config` is the service's configuration object, as Service(config=…) loads it at start;
    None: the one the service's own loader builds from `settings` (for a service with a config.py)."""
    processor = BatchProcessor(router, settings or Settings(service=router.service))
    processor.config = config if config is not None else service_config(router.service, processor.settings)
    async with pool.acquire() as conn, conn.transaction():
        return await processor.process(conn, list(records))


async def deliver_counted(
    pool: asyncpg.Pool, router: Router, *records: RawRecord, settings: Settings | None = None
) -> tuple[BatchResult, CountedStatements]:
    """`deliver`, and the SQL statements the batch issued (testkit.sql): a set-based handler
    issues as many for 200 records as for 10, give or take a small constant."""
    processor = BatchProcessor(router, settings or Settings(service=router.service))
    processor.config = service_config(router.service, processor.settings)
    async with pool.acquire() as conn, count_statements(conn) as counted, conn.transaction():
        result = await processor.process(conn, list(records))
    return result, counted


def service_config(service: str, settings: Settings) -> Any:
    """What Service(config=…) of `service` loads at start, or None where it has no config.py."""
    if not (ROOT / "services" / service / "config.py").is_file():
        return None
    app = importlib.import_module(f"services.{service}.app")
    loader = app.service.config_loader
    return loader(settings) if loader is not None else None


def emitted(result: BatchResult, event_type: str | None = None) -> list[dict[str, Any]]:
    """The envelopes (as dicts) a batch wrote to its outbox, optionally of one type."""
    out = [json.loads(m.value()) for m in result.outbox]
    return [e for e in out if event_type is None or e["event_type"] == event_type]


@dataclass
class FrozenClock:
    """The time every handler reads (`ctx.now`, `UnitOfWork.now`); a test moves it by setting `now`."""

    now: datetime


def freeze_clock(monkeypatch: pytest.MonkeyPatch, at: datetime) -> FrozenClock:
    """Stop the handlers' clock at `at` for one test (undone by `monkeypatch` afterwards)."""
    clock = FrozenClock(at)
    monkeypatch.setattr(UnitOfWork, "now", property(lambda self: clock.now))
    return clock
