"""testkit.sql.count_statements on the real PostgreSQL: what it counts, and that it tells a
set-based batch (the same statements for 10 rows as for 200) from a row-by-row one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from testkit.sql import count_statements
from tests.support import scratch_pool

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool(None) as pool:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL)")
        yield pool


async def _set_based(conn: asyncpg.Connection, ids: list[int]) -> None:
    """One batch the set-based way: one read for all, one multi-row write."""
    async with conn.transaction():
        known = await conn.fetch("SELECT id FROM item WHERE id = ANY($1::int[])", ids)
        seen = {r["id"] for r in known}
        fresh = [i for i in ids if i not in seen]
        await conn.execute(
            "INSERT INTO item (id, name) SELECT i, 'n' || i FROM unnest($1::int[]) AS i", fresh
        )


async def _row_by_row(conn: asyncpg.Connection, ids: list[int]) -> None:
    async with conn.transaction():
        for i in ids:
            if await conn.fetchval("SELECT 1 FROM item WHERE id = $1", i) is None:
                await conn.execute("INSERT INTO item (id, name) VALUES ($1, $2)", i, f"n{i}")


async def test_a_set_based_batch_costs_the_same_statements_for_10_rows_as_for_200(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        async with count_statements(conn) as small:
            await _set_based(conn, list(range(10)))
        async with count_statements(conn) as large:
            await _set_based(conn, list(range(1000, 1200)))
    assert small.count == large.count == 4  # BEGIN, SELECT, INSERT, COMMIT
    assert small.data_statements == large.data_statements
    assert large.by_kind() == {"BEGIN": 1, "SELECT": 1, "INSERT": 1, "COMMIT": 1}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM item") == 210


async def test_a_row_by_row_batch_is_told_apart(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        async with count_statements(conn) as small:
            await _row_by_row(conn, list(range(10)))
        async with count_statements(conn) as large:
            await _row_by_row(conn, list(range(1000, 1200)))
    assert (small.count, large.count) == (2 + 2 * 10, 2 + 2 * 200)
    assert large.count - small.count > 100


async def test_executemany_is_one_call_and_one_execution_per_row(pool: asyncpg.Pool) -> None:
    rows = [(i, f"n{i}") for i in range(50)]
    async with pool.acquire() as conn, count_statements(conn) as counted:
        await conn.executemany("INSERT INTO item (id, name) VALUES ($1, $2)", rows)
        await conn.fetchrow("SELECT * FROM item WHERE id = $1", 1)
    assert counted.count == 2
    assert counted.executions == 50 + 1


async def test_only_its_own_connection_and_only_inside_the_block(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, pool.acquire() as other:
        async with count_statements(conn) as counted:
            await conn.execute("SELECT 1")
            await other.execute("SELECT 2")  # another connection: not counted
        await conn.execute("SELECT 3")  # after the block: not counted
        assert counted.statements == ["SELECT 1"]


async def test_a_failed_statement_is_counted_and_marked(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        async with count_statements(conn) as counted:
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute("INSERT INTO item (id, name) VALUES (1, 'a'), (1, 'b')")
        assert (counted.count, counted.failed) == (1, 1)


async def test_the_drivers_type_introspection_is_kept_apart(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        # A type this connection has not met yet: asyncpg looks it up first, on the connection.
        await conn.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
        async with count_statements(conn) as counted:
            await conn.fetchval("SELECT $1::mood", "ok")
    assert counted.statements == ["SELECT $1::mood"]
    assert counted.driver  # the lookup, not counted


async def test_deliver_counted_counts_a_handler_batch_through_the_batch_processor() -> None:
    """Through the services' own batch processing (inbox, handler, outbox): the echo service's
    handler inserts row by row, and the counter sees every one of them."""
    from shared.settings import Settings
    from shared.topics import IN_FUNDING
    from testkit import documents as doc
    from testkit.records import record
    from tests.integration import echo_service
    from tests.support import deliver_counted

    def funding(n: int, batch: str) -> list[Any]:
        return [
            record(
                IN_FUNDING,
                "funding.received",
                doc.funding(
                    f"f-{batch}-{i}",
                    account_id=f"acct-{batch}-{i}",
                    legal_entity="LE-1",
                    currency="EUR",
                    amount="1.00",
                    received_at="2026-11-30T07:00:00Z",
                ),
            )
            for i in range(n)
        ]

    settings = Settings(service="ledger")
    migrations = Path(echo_service.__file__).parent / "migrations"
    async with scratch_pool("echo", migrations) as pool:
        router = echo_service.router
        small_result, small = await deliver_counted(pool, router, *funding(10, "s"), settings=settings)
        large_result, large = await deliver_counted(pool, router, *funding(200, "l"), settings=settings)
    assert (small_result.handled, large_result.handled) == (10, 200)
    assert small.by_kind()["BEGIN"] == large.by_kind()["BEGIN"] == 1
    inserts = [s for s in large.statements if s.startswith("INSERT INTO credits")]
    assert len(inserts) == 200  # one per record: not set-based, and the counter says so
    assert large.count - small.count >= 190
