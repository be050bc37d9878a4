"""compliance_gate, a batch at a time: several versions of one payee in one batch end exactly as
they do one by one, and a batch costs the same statements whatever its size (issue 13)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from services.compliance_gate.handlers import router
from shared.consumer import BatchProcessor, RawRecord
from shared.settings import Settings
from testkit.sql import loggers_caught_up
from tests.integration.compliance_gate.test_handlers import (  # noqa: F401 - frozen_clock: autouse fixture
    CONFIG,
    business_profile,
    frozen_clock,
    profile,
    profile_updated,
)
from tests.support import scratch_pool

pytestmark = pytest.mark.integration

STATE = {
    "payees": "payee_id, profile_version, profile, eligible, reasons, evaluated_at",
    "payee_profile_versions": "payee_id, profile_version, profile, event_id",
    "inbox": "event_id, event_type, business_ref, result",
}


@pytest.fixture
async def pools() -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    async with scratch_pool("compliance_gate") as one, scratch_pool("compliance_gate") as other:
        yield one, other


async def deliver_on(conn: asyncpg.Connection, records: Sequence[RawRecord]) -> list[dict[str, Any]]:
    processor = BatchProcessor(router, Settings(service="compliance_gate"))
    processor.config = CONFIG
    async with conn.transaction():
        result = await processor.process(conn, list(records))
    fields = ("event_id", "event_type", "data", "causation_id", "correlation_id")
    return [
        {"topic": m.topic, "key": m.key, **{f: json.loads(m.value()).get(f) for f in fields}}
        for m in result.outbox
    ]


async def state(pool: asyncpg.Pool) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    async with pool.acquire() as conn:
        for table, columns in STATE.items():
            rows = await conn.fetch(f"SELECT {columns} FROM {table}")
            out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out


PENDING_KYB = {"status": "pending", "beneficial_owners_verified": True}


def versions_of_two_payees() -> list[RawRecord]:
    no_form = {"type": "W-8BEN", "status": "missing"}
    return [
        profile_updated(profile(version=1, tax_form=no_form)),  # first: publishes, ineligible
        profile_updated(business_profile(version=1)),
        profile_updated(profile(version=2)),  # now eligible: publishes
        profile_updated(profile(version=2)),  # the same version re-published: stale
        profile_updated(profile(version=1)),  # older: stale
        profile_updated(profile(version=3)),  # nothing downstream needs: unchanged
        profile_updated(profile(version=4, payout_account_ref="acct_tok_2")),  # new account: publishes
        profile_updated(business_profile(version=2, kyb=PENDING_KYB)),
    ]


async def test_one_batch_ends_exactly_as_one_record_at_a_time(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    batched, one_by_one = pools
    records = versions_of_two_payees()
    async with batched.acquire() as conn:
        in_one_batch = await deliver_on(conn, records)
    singly: list[dict[str, Any]] = []
    async with one_by_one.acquire() as conn:
        for rec in records:
            singly += await deliver_on(conn, [rec])
    assert in_one_batch == singly
    assert len(in_one_batch) == 5
    assert await state(batched) == await state(one_by_one)
    results = [r[3] for r in (await state(batched))["inbox"]]
    assert sorted(results) == sorted(["published"] * 5 + ["stale_version"] * 2 + ["unchanged"])


async def test_statements_per_batch_do_not_grow_with_the_batch(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    pool, _ = pools

    async def statements(conn: asyncpg.Connection, records: Sequence[RawRecord]) -> int:
        count = 0

        def counted(_query: Any) -> None:
            nonlocal count
            count += 1

        conn.add_query_logger(counted)
        try:
            await deliver_on(conn, records)
        finally:
            await loggers_caught_up()
            conn.remove_query_logger(counted)
        return count

    def batch(start: int, n: int, version: int = 1) -> list[RawRecord]:
        return [profile_updated(profile(f"payee-{i}", version)) for i in range(start, start + n)]

    async with pool.acquire() as conn:
        await deliver_on(conn, batch(1000, 1))  # asyncpg introspects array types once per connection
        new = (await statements(conn, batch(0, 10)), await statements(conn, batch(10, 200)))
        # Newer versions of payees already known, with their rows locked and replaced.
        known = (await statements(conn, batch(0, 10, 2)), await statements(conn, batch(10, 200, 2)))
    assert new[1] - new[0] <= 1, new
    assert known[1] - known[0] <= 1, known
