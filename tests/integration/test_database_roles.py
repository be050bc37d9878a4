"""SPEC §11 on the real PostgreSQL: who may connect where and do what.

A service's runtime role and its owner role on a scratch database provisioned like the local
stack (the service's own start-up code migrates and grants), and the local stack's fixed roles
from deploy/postgres/init.sql.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
import pytest

from services.intake.app import service as intake_service
from services.ledger.app import service as ledger_service
from shared.db import DatabaseUnreachable, migrate, migration_files
from shared.services import SERVICES
from shared.settings import Settings
from tests.support import ADMIN_DSN, ROOT, ServiceDatabase, dsn_for, role_dsn, scratch_service_database

pytestmark = pytest.mark.integration

# The console (SPEC §14.2) has a database and roles of its own, provisioned the same way.
DATABASES = (*SERVICES, "console")
LEDGER_MIGRATIONS = ROOT / "services" / "ledger" / "migrations"


async def migrate_as_owner(
    db: ServiceDatabase | str, migrations: Path, runtime_role: str, **kw: object
) -> None:
    """What Service._migrate does at start: migrate as the owner, which grants the runtime role."""
    conn = await asyncpg.connect(db.owner if isinstance(db, ServiceDatabase) else db)
    try:
        await migrate(conn, migrations, runtime_role=runtime_role, **kw)  # type: ignore[arg-type]
    finally:
        await conn.close()


@pytest.fixture
async def ledger_db() -> AsyncIterator[ServiceDatabase]:
    async with scratch_service_database("ledger") as db:
        # Twice, as on a second start: the grants come out the same.
        for _ in range(2):
            await migrate_as_owner(
                db, LEDGER_MIGRATIONS, db.runtime_role, append_only=ledger_service.append_only
            )
        yield db


async def post_entry(conn: asyncpg.Connection, entry_id: str) -> None:
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO journal_entries (entry_id, source_event_id, source_event_type, fact_key, kind,
                                            description, posted_at)
               VALUES ($1, $1, 'test.event', $1, 'test', 'a balanced test entry', now())""",
            entry_id,
        )
        await conn.execute(
            """INSERT INTO journal_lines (entry_id, line_no, account, currency, debit, credit)
               VALUES ($1, 1, 'expense:ops', 'USD', 10.00, 0), ($1, 2, 'liability:ap', 'USD', 0, 10.00)""",
            entry_id,
        )


async def test_the_ledgers_runtime_role_appends_to_the_journal_but_cannot_change_it(
    ledger_db: ServiceDatabase,
) -> None:
    conn = await asyncpg.connect(ledger_db.runtime)
    try:
        await post_entry(conn, "je_1")
        assert await conn.fetchval("SELECT count(*) FROM journal_lines WHERE entry_id = 'je_1'") == 2
        # Refused by privilege, before the append-only trigger would be asked.
        for statement, table in [
            ("UPDATE journal_entries SET description = 'edited'", "journal_entries"),
            ("UPDATE journal_lines SET debit = 20.00 WHERE line_no = 1", "journal_lines"),
            ("DELETE FROM journal_entries", "journal_entries"),
            ("DELETE FROM journal_lines", "journal_lines"),
            ("TRUNCATE journal_entries CASCADE", "journal_entries"),
            ("TRUNCATE journal_lines", "journal_lines"),
        ]:
            with pytest.raises(
                asyncpg.InsufficientPrivilegeError, match=f"permission denied for table {table}"
            ):
                await conn.execute(statement)
        # The rest of the service's tables it may change; the schema and its record it may not.
        await conn.execute("UPDATE receipts SET status = status WHERE false")
        await conn.execute("DELETE FROM inbox WHERE false")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema public"):
            await conn.execute("CREATE TABLE sneaky (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="schema_migrations"):
            await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
    finally:
        await conn.close()


async def test_a_scratch_service_role_cannot_connect_to_another_scratch_database(
    ledger_db: ServiceDatabase,
) -> None:
    async with scratch_service_database("intake") as intake_db:
        for dsn in (
            role_dsn(intake_db.runtime_role, ledger_db.name),
            role_dsn(f"{intake_db.name}_owner", ledger_db.name),
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="CONNECT privilege"):
                await asyncpg.connect(dsn)


# --- The local stack's fixed roles (deploy/postgres/init.sql) ----------------------------------


async def test_no_role_but_concord_admin_and_postgres_is_a_superuser() -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        superusers = {r["rolname"] for r in await conn.fetch("SELECT rolname FROM pg_roles WHERE rolsuper")}
    finally:
        await conn.close()
    assert superusers <= {"postgres", "concord_admin"}, superusers


async def test_each_service_role_reaches_its_own_database_and_no_other() -> None:
    for service in DATABASES:
        for role in (service, f"{service}_owner"):
            for database in DATABASES:
                if database == service:
                    conn = await asyncpg.connect(role_dsn(role, database))
                    assert (
                        await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                        is False
                    )
                    await conn.close()
                else:
                    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="CONNECT privilege"):
                        await asyncpg.connect(role_dsn(role, database))


async def test_concord_reader_reads_ledger_matching_and_payout_release_and_changes_nothing() -> None:
    # Their tables exist once each service has started (as its owner role) once: do that part.
    # payout_release: the console's "why not paid" shows every payout block's reasons.
    for service in ("ledger", "matching", "payout_release"):
        app = importlib.import_module(f"services.{service}.app")
        await migrate_as_owner(
            role_dsn(f"{service}_owner", service),
            ROOT / "services" / service / "migrations",
            service,
            append_only=app.service.append_only,
        )
    for database, table in (
        ("ledger", "journal_entries"),
        ("matching", "holds"),
        ("payout_release", "payout_blocks"),
    ):
        conn = await asyncpg.connect(role_dsn("concord_reader", database))
        try:
            await conn.fetchval(f"SELECT count(*) FROM {table}")
            with pytest.raises(
                asyncpg.InsufficientPrivilegeError, match=f"permission denied for table {table}"
            ):
                await conn.execute(f"DELETE FROM {table} WHERE false")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for table inbox"):
                await conn.execute(
                    """INSERT INTO inbox (event_id, event_type, topic, partition, "offset", result)
                       VALUES ('ev_reader', 'x', 'x', 0, 0, 'x')"""
                )
            with pytest.raises(
                asyncpg.InsufficientPrivilegeError, match="permission denied for schema public"
            ):
                await conn.execute("CREATE TABLE sneaky (id int)")
        finally:
            await conn.close()
    for database in ("intake", "compliance_gate", "console"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="CONNECT privilege"):
            await asyncpg.connect(role_dsn("concord_reader", database))


def run_init_sql() -> None:
    """What deploy/postgres.sh start does after every start, as concord_admin instead of postgres."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("no psql on this machine")
    admin = urlsplit(ADMIN_DSN)
    env = {
        **os.environ,
        "PGHOST": admin.hostname or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
        "PGUSER": unquote(admin.username or ""),
        "PGPASSWORD": unquote(admin.password or ""),
    }
    init_sql = ROOT / "deploy" / "postgres" / "init.sql"
    result = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", str(init_sql)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


async def test_a_v1_database_is_upgraded_in_place_and_idempotently() -> None:
    # v1, on the local stack's intake database: the service role owns the database and its
    # tables, and its password is its name.
    await migrate_as_owner(
        role_dsn("intake_owner", "intake"), ROOT / "services" / "intake" / "migrations", "intake"
    )
    admin = await asyncpg.connect(dsn_for("intake"))
    try:
        await admin.execute("REASSIGN OWNED BY intake_owner TO intake")
        await admin.execute("ALTER ROLE intake PASSWORD 'intake'")
        assert await admin.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'inbox'") == "intake"
    finally:
        await admin.close()

    for _ in range(2):  # a second start changes nothing
        run_init_sql()
        admin = await asyncpg.connect(dsn_for("intake"))
        try:
            owners = {
                r["tableowner"]
                for r in await admin.fetch("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
            }
            assert owners == {"intake_owner"}
            assert (
                await admin.fetchval("SELECT datdba::regrole::text FROM pg_database WHERE datname = 'intake'")
                == "intake_owner"
            )
        finally:
            await admin.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(role_dsn("intake", "intake", "intake"))
        conn = await asyncpg.connect(role_dsn("intake", "intake"))
        try:
            async with conn.transaction():  # what a still-running v1 process does, until it restarts
                await conn.execute("DELETE FROM inbox WHERE false")
            with pytest.raises(
                asyncpg.InsufficientPrivilegeError, match="permission denied for schema public"
            ):
                await conn.execute("CREATE TABLE sneaky (id int)")
        finally:
            await conn.close()


async def test_a_service_on_another_services_database_stops_at_start_naming_the_setting(
    ledger_db: ServiceDatabase,
) -> None:
    async with scratch_service_database("intake") as intake_db:
        wrong = Settings(
            db_dsn=role_dsn(intake_db.runtime_role, ledger_db.name), db_owner_dsn=intake_db.owner
        )
        service = intake_service.with_settings(wrong)
        with pytest.raises(DatabaseUnreachable) as exc:
            await service.start()
        assert str(exc.value).startswith(f"CONCORD_DB_DSN: cannot connect as {intake_db.runtime_role}@"), (
            exc.value
        )
        assert "CONNECT privilege" in str(exc.value) and "local-dev-" not in str(exc.value)


async def test_two_instances_starting_at_once_migrate_and_grant_once() -> None:
    async with scratch_service_database("ledger") as db:
        await asyncio.gather(
            *(
                migrate_as_owner(
                    db, LEDGER_MIGRATIONS, db.runtime_role, append_only=ledger_service.append_only
                )
                for _ in range(2)
            )
        )
        conn = await asyncpg.connect(db.admin)
        try:
            applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
            assert applied == len(migration_files(LEDGER_MIGRATIONS))  # each file once, not twice
        finally:
            await conn.close()
        conn = await asyncpg.connect(db.runtime)
        try:
            await post_entry(conn, "je_once")
            with pytest.raises(
                asyncpg.InsufficientPrivilegeError, match="permission denied for table journal_lines"
            ):
                await conn.execute("DELETE FROM journal_lines")
        finally:
            await conn.close()
