"""PostgreSQL pool and the ordered migration runner.

A migration is a `NNNN_name.sql` file, or a `NNNN_name.py` module with `async def apply(conn)`
for a data migration SQL cannot express (re-computing a key with a Python function). Both kinds
run in file-name order, each in its own transaction, once; an edited one is refused."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Collection, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import structlog
from pydantic_core import from_json

log = structlog.get_logger(__name__)

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
# One advisory lock id for "migrating": two instances starting at once apply each file once.
_MIGRATION_LOCK = 0x636F6E636F7264  # "concord"


class DatabaseUnreachable(RuntimeError):
    """A service cannot connect as the role a setting names (wrong password, no CONNECT right on
    that database, nothing listening): the message names the setting and the role, never the
    password."""

    def __init__(self, setting: str, dsn: str, exc: BaseException) -> None:
        parts = urlsplit(dsn)
        where = f"{parts.username or '?'}@{parts.hostname or '?'}:{parts.port or 5432}{parts.path}"
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        super().__init__(f"{setting}: cannot connect as {where}: {reason}")


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb as Python objects; Decimals serialise as strings so money never becomes a float.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: json.dumps(v, default=_json_default),
        decoder=loads_jsonb,
        schema="pg_catalog",
    )


def text_columns(columns: Sequence[str], jsonb: Collection[str]) -> str:
    """`columns` as a select list with the jsonb ones cast to text: the form a record (`ROW(...)`)
    must take for asyncpg to decode it (it decodes no composite holding a text-format type)."""
    return ", ".join(f"{c}::text" if c in jsonb else c for c in columns)


def record_values(columns: Sequence[str], jsonb: Collection[str], record: Sequence[Any]) -> dict[str, Any]:
    """A record read with `text_columns(columns, jsonb)`, by column name, its jsonb decoded."""
    return {c: loads_jsonb(v) if c in jsonb else v for c, v in zip(columns, record, strict=True)}


def loads_jsonb(text: str | bytes | None) -> Any:
    """A jsonb value as PostgreSQL writes it, decoded: the pools' codec, and a jsonb column read as
    text inside a record (`ROW(...)`, the way a statement returns several tables' rows at once:
    asyncpg decodes no text-format type there, so such a column is cast to text). Also what
    testkit's topic watchers read a record's value with (bytes; not UTF-8 or not JSON: ValueError).

    pydantic-core's parser (jiter), which reads what `json.loads` reads into the same values —
    integers of any size exactly (orjson would make a float of one past 64 bits, silently),
    floats alike, `1e400` as inf — in about two thirds of its time (4.5 → 3.1 µs for one of the
    ledger's documents; json.loads was 3.4% of the ledger's samples at 100 flows/s). What it
    refuses and PostgreSQL can hold — nesting past its depth limit, kept by an envelope the
    strict parser accepted — goes to `json.loads`, as before."""
    if text is None:
        return None
    try:
        return from_json(text)
    except ValueError:
        return json.loads(text)


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


async def connect(dsn: str, *, connect_timeout_s: float = 10) -> asyncpg.Connection:
    """One connection with the same codecs as the services' pools (jsonb as objects)."""
    conn = await asyncpg.connect(dsn, timeout=connect_timeout_s)
    await _init_connection(conn)
    return conn


# Server pids of pooled sessions that took session-level state (a session advisory lock, LISTEN,
# SET): the pool resets these in full when they are released. By pid, not by object: the pool
# hands out proxies of its connections and resets the connection itself.
_SESSION_STATE: set[int] = set()


def holds_session_state(conn: asyncpg.Connection) -> None:
    """Call before a pooled connection takes session-level state (a session advisory lock,
    LISTEN, SET): on release the pool then runs asyncpg's full reset on it, which frees what is
    left of that state (an unlock skipped by a cancellation, a listener left behind)."""
    _SESSION_STATE.add(conn.get_server_pid())


async def _reset_on_release(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection it takes back, after asyncpg's own step (which rolls
    back an open transaction and drops listener callbacks). asyncpg's default then runs
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release: a round trip
    and four statements per batch of every service. Only a session marked by
    holds_session_state can hold any of that state (the services take transaction-scoped
    advisory locks, no session settings, no cursors beyond their transaction), so only those
    get the full reset."""
    pid = conn.get_server_pid()
    if pid in _SESSION_STATE:
        _SESSION_STATE.discard(pid)
        await conn.execute(conn.get_reset_query())


async def create_pool(dsn: str, *, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=max_size, init=_init_connection, reset=_reset_on_release
    )
    assert pool is not None
    return pool


def migration_files(service_dir: Path | None) -> list[tuple[str, Path]]:
    """Shared migrations first, then the service's own, each in file-name order."""
    files = [(f"shared/{p.name}", p) for p in _migrations_in(SHARED_MIGRATIONS)]
    if service_dir is not None and service_dir.is_dir():
        files += [(p.name, p) for p in _migrations_in(service_dir)]
    return files


def _migrations_in(directory: Path) -> list[Path]:
    found = [*directory.glob("*.sql"), *directory.glob("[0-9]*.py")]
    return sorted(found, key=lambda p: p.name)


async def _apply_python(conn: asyncpg.Connection, path: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"concord_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    await module.apply(conn)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def migrate(
    conn: asyncpg.Connection,
    service_dir: Path | None,
    *,
    runtime_role: str | None = None,
    append_only: Sequence[str] = (),
) -> list[str]:
    """Apply every migration not yet applied, each in its own transaction; refuse edited ones.
    Then, if the service runs as another role than this connection's (the owner's), grant that
    runtime role what it needs (grant_runtime). Both under one lock, so two instances starting
    at once apply each file once and grant once."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {
            r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")
        }
        done: list[str] = []
        for name, path in migration_files(service_dir):
            sql = path.read_text()
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if name in applied:
                if applied[name] != checksum:
                    raise RuntimeError(f"migration {name} was edited after it was applied; add a new one")
                continue
            async with conn.transaction():
                if path.suffix == ".py":
                    await _apply_python(conn, path)
                else:
                    await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", name, checksum
                )
            log.info("migration_applied", migration=name)
            done.append(name)
        if runtime_role is not None and runtime_role != await conn.fetchval("SELECT current_user"):
            await grant_runtime(conn, runtime_role, append_only)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


async def grant_runtime(conn: asyncpg.Connection, role: str, append_only: Sequence[str] = ()) -> None:
    """SPEC §11: the runtime role reads and writes the service's tables and nothing more: no DDL
    (it owns nothing), not the migration record, and on append-only tables (the ledger's journal)
    only SELECT and INSERT, so the journal is append-only by privilege as well as by trigger.
    Re-applied on every start, so a table a new migration adds is covered; one transaction, so a
    running instance sees the old grants or the new, never none."""
    r = quote_ident(role)
    async with conn.transaction():
        await conn.execute(
            f"""GRANT USAGE ON SCHEMA public TO {r};
                REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r};
                REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {r};
                GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {r};
                GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r};
                REVOKE ALL ON TABLE schema_migrations FROM {r};"""
        )
        for table in append_only:
            await conn.execute(f"REVOKE UPDATE, DELETE ON TABLE {quote_ident(table)} FROM {r}")
    log.info("runtime_role_granted", role=role, append_only=list(append_only))
