"""The ledger's round trips per batch (issue 13, stop 24): a batch's projection row and its journal
entries go in one statement, and the GRNI true-up locks and reads in one. What the tests hold is
what must not change with that: every row is still written (also when nothing is posted), the
entries are the same, and the true-up's lock is really held until the batch commits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from services.ledger import store
from services.ledger.app import service as ledger_service
from services.ledger.handlers import router
from shared.consumer import RawRecord
from shared.db import migrate
from shared.settings import Settings
from shared.topics import BY_NAME
from tests.integration.ledger import flow
from tests.support import (
    deliver,
    deliver_counted,
    emitted,
    record,
    scratch_pool,
    scratch_service_database,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("ledger") as p:
        yield p


def republished(rec: RawRecord, event_id: str) -> RawRecord:
    """The same fact under another event id (a re-publication, not a redelivery)."""
    env = json.loads(rec.value)
    topic = BY_NAME[Settings().unprefixed(rec.topic)]
    return record(topic, env["event_type"], env["data"], key=(rec.key or b"").decode(), event_id=event_id)


def one_statement_writes(statements: list[str], table: str) -> list[str]:
    """The statements of a batch that insert into `table`."""
    return [s for s in statements if f"INSERT INTO {table} " in s]


async def test_a_decision_and_its_entry_are_written_by_one_statement(pool: asyncpg.Pool) -> None:
    for rec in (
        flow.funding(),
        flow.eligibility(),
        flow.po_in_force(),
        flow.receipt(),
        flow.invoice_accepted(),
    ):
        await deliver(pool, router, rec)
    result, counted = await deliver_counted(pool, router, flow.approved())
    writes = one_statement_writes(counted.statements, "decisions")
    assert len(writes) == 1 and "INSERT INTO journal_entries" in writes[0], counted.statements
    assert len(one_statement_writes(counted.statements, "journal_entries")) == 1
    assert [e["data"]["entry_id"] for e in emitted(result, "journal.entry_posted")]
    assert await pool.fetchval("SELECT count(*) FROM decisions WHERE kind = 'approved_to_pay'") == 1
    assert await pool.fetchval("SELECT count(*) FROM journal_entries WHERE kind = 'invoice_approval'") == 1


async def test_the_projection_is_written_when_nothing_is_posted(pool: asyncpg.Pool) -> None:
    """The same approval and the same payout re-published under other event ids: the fact is in
    the journal already, so nothing is posted, yet each decision is recorded as before."""
    records: list[RawRecord] = [flow.funding(), flow.eligibility(), flow.po_in_force(), flow.receipt()]
    for rec in records:
        await deliver(pool, router, rec)
    await deliver(pool, router, flow.approved())
    entries = await pool.fetchval("SELECT count(*) FROM journal_entries")
    again, counted = await deliver_counted(pool, router, republished(flow.approved(), "evt-approved-again"))
    assert emitted(again, "journal.entry_posted") == []
    assert one_statement_writes(counted.statements, "decisions"), counted.statements
    assert await pool.fetchval("SELECT count(*) FROM decisions WHERE kind = 'approved_to_pay'") == 2
    assert await pool.fetchval("SELECT count(*) FROM journal_entries") == entries
    released = flow.released()
    first = await deliver(pool, router, released)
    second = await deliver(pool, router, republished(released, "evt-released-again"))
    assert len(emitted(first, "journal.entry_posted")) == 1 and emitted(second, "journal.entry_posted") == []
    assert await pool.fetchval("SELECT count(*) FROM payouts") == 1
    assert await pool.fetchval("SELECT count(*) FROM journal_entries") == entries + 1


async def test_a_po_version_is_saved_by_the_statement_that_reads_the_versions_in_force(
    pool: asyncpg.Pool,
) -> None:
    """The read sees the state before the batch (a receipt waiting for the PO is posted at its
    price), and the version is saved all the same."""
    await deliver(pool, router, flow.receipt())
    result, counted = await deliver_counted(pool, router, flow.po_in_force())
    writes = one_statement_writes(counted.statements, "po_versions")
    assert len(writes) == 1 and "FOR UPDATE OF receipts" in writes[0], counted.statements
    assert await pool.fetchval("SELECT count(*) FROM po_versions") == 1
    assert await pool.fetchval("SELECT status FROM receipts WHERE receipt_id = 'R-1'") == "posted"
    assert len(emitted(result, "journal.entry_posted")) == 1


async def test_the_grni_lock_is_taken_in_the_read_and_held_until_commit(pool: asyncpg.Pool) -> None:
    await deliver(pool, router, flow.po_in_force())
    _, counted = await deliver_counted(pool, router, flow.receipt())
    assert [s for s in counted.statements if "ledger_grni_inputs" in s], counted.statements
    assert not [s for s in counted.statements if "pg_advisory_xact_lock" in s], counted.statements

    key = "SELECT pg_try_advisory_xact_lock(hashtext('ledger:grni:' || $1::text))"
    async with pool.acquire() as conn, pool.acquire() as other:
        async with conn.transaction():
            read = await store.lock_and_read_grni(conn, [flow.PO])
            assert flow.PO in read.pos and read.receipts[flow.PO]
            async with other.transaction():
                assert await other.fetchval(key, flow.PO) is False  # held by the reader
        async with other.transaction():
            assert await other.fetchval(key, flow.PO) is True  # released at commit


async def test_the_runtime_role_runs_the_true_up_read() -> None:
    """Migrated as the service does it at start (owner migrates, runtime role granted): the
    runtime role, which owns nothing, may call ledger_grni_inputs and read what it reads."""
    async with scratch_service_database("ledger") as db:
        owner = await asyncpg.connect(db.owner)
        try:
            await migrate(
                owner,
                Path(store.__file__).parent / "migrations",
                runtime_role=db.runtime_role,
                append_only=ledger_service.append_only,
            )
        finally:
            await owner.close()
        conn = await asyncpg.connect(db.runtime)
        try:
            async with conn.transaction():
                read = await store.lock_and_read_grni(conn, [flow.PO])
            assert read.pos == {} and read.receipts == {flow.PO: []}
        finally:
            await conn.close()
