"""The batch handler API (Router.handles_batch) on real PostgreSQL: runs, outcomes, causes, traces,
and a constant number of statements however large the batch."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg
import pytest

from shared.consumer import BatchContext, BatchProcessor, Item, Router
from shared.contracts.inbound import FundingReceived, PayoutSettled
from shared.contracts.outbound import FundingRefused
from shared.settings import Settings
from shared.topics import IN_FUNDING, IN_RAIL_EVENTS
from testkit.sql import loggers_caught_up
from tests.support import deliver, record, scratch_pool

pytestmark = pytest.mark.integration
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Result(StrEnum):
    CREDITED = "credited"
    REFUSED = "refused"


calls: list[list[str]] = []
router = Router("ledger", topics=[IN_FUNDING, IN_RAIL_EVENTS])


@router.handles_batch(FundingReceived)
async def on_funding(ctx: BatchContext, items: list[Item[FundingReceived]]) -> None:
    calls.append([i.data.funding_id for i in items])
    if ctx.config.get("forget_outcomes"):
        return
    for item in items:
        if item.data.amount > ctx.config["limit"]:
            ctx.emit_for(
                item,
                FundingRefused(
                    funding_id=item.data.funding_id,
                    account_id=item.data.account_id,
                    legal_entity=item.data.legal_entity,
                    currency=item.data.currency,
                    amount=item.data.amount,
                    reasons=["funding_account_mismatch"],
                    expected="le-0",
                    got=item.data.legal_entity,
                    refused_at=ctx.now,
                ),
                key=item.data.account_id,
            )
            item.outcome = Result.REFUSED
        else:
            item.outcome = Result.CREDITED


@router.handles("payout.settled")
async def on_settled(ctx: Any, data: PayoutSettled) -> str:
    calls.append([f"settled:{data.payout_id}"])
    return "applied"


def funding(n: int, amount: str = "10.00") -> dict[str, Any]:
    return {
        "funding_id": f"f{n}",
        "account_id": "acct-1",
        "legal_entity": "le-1",
        "currency": "EUR",
        "amount": amount,
        "received_at": "2026-11-30T10:00:00Z",
    }


def settled(n: int) -> dict[str, Any]:
    return {
        "payout_id": f"po{n}",
        "rail_event_id": f"re{n}",
        "settled_at": "2026-11-30T10:00:00Z",
        "amount": "1.00",
        "currency": "EUR",
    }


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    calls.clear()
    async with scratch_pool(None) as p:
        yield p


async def test_consecutive_records_of_a_batch_route_arrive_as_one_run_in_order(pool: asyncpg.Pool) -> None:
    traced = record(IN_FUNDING, "funding.received", funding(2, "900.00"))
    traced = replace(traced, headers=(*traced.headers, ("traceparent", TRACEPARENT.encode())))
    records = [
        record(IN_FUNDING, "funding.received", funding(1)),
        traced,
        record(IN_RAIL_EVENTS, "payout.settled", settled(1)),
        record(IN_FUNDING, "funding.received", funding(3)),
    ]
    result = await deliver(pool, router, *records, config={"limit": Decimal("100")})
    assert calls == [["f1", "f2"], ["settled:po1"], ["f3"]]
    rows = await pool.fetch("SELECT event_id, result FROM inbox")
    by_id = {json.loads(r.value)["event_id"]: json.loads(r.value)["data"] for r in records}
    outcomes = {by_id[r["event_id"]].get("funding_id", "po1"): r["result"] for r in rows}
    assert outcomes == {"f1": "credited", "f2": "refused", "f3": "credited", "po1": "applied"}
    (refused,) = [json.loads(m.value()) for m in result.outbox]
    assert refused["event_type"] == "funding.refused"
    envelope_ids = {json.loads(r.value)["event_id"]: r for r in records}
    assert refused["causation_id"] in envelope_ids
    assert json.loads(envelope_ids[refused["causation_id"]].value)["data"]["funding_id"] == "f2"
    assert result.outbox[0].topic.endswith("concord.out.exceptions")
    # The refused item's trace continues in what was emitted for it.
    assert result.outbox[0].headers["traceparent"].split("-")[1] == TRACE_ID


async def test_a_redelivered_batch_is_not_handled_again(pool: asyncpg.Pool) -> None:
    records = [record(IN_FUNDING, "funding.received", funding(n)) for n in range(3)]
    await deliver(pool, router, *records, config={"limit": Decimal("100")})
    again = await deliver(pool, router, *records, config={"limit": Decimal("100")})
    assert again.duplicates == 3
    assert calls == [["f0", "f1", "f2"]]


async def test_a_handler_that_leaves_an_item_without_an_outcome_fails_the_batch(pool: asyncpg.Pool) -> None:
    with pytest.raises(TypeError, match="without an outcome"):
        await deliver(
            pool, router, record(IN_FUNDING, "funding.received", funding(1)), config={"forget_outcomes": True}
        )
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 0


async def test_statements_per_batch_do_not_grow_with_the_batch(pool: asyncpg.Pool) -> None:
    processor = BatchProcessor(router, Settings(service="ledger"))
    processor.config = {"limit": Decimal("100")}

    async def statements_for(conn: asyncpg.Connection, n: int, start: int) -> int:
        count = 0

        def counted(_query: Any) -> None:
            nonlocal count
            count += 1

        records = [record(IN_FUNDING, "funding.received", funding(start + i)) for i in range(n)]
        conn.add_query_logger(counted)
        try:
            async with conn.transaction():
                await processor.process(conn, records)
        finally:
            await loggers_caught_up()
            conn.remove_query_logger(counted)
        return count

    async with pool.acquire() as conn:
        await statements_for(conn, 1, 5000)  # asyncpg introspects the array types once per connection
        small, large = await statements_for(conn, 10, 0), await statements_for(conn, 200, 1000)
    assert small == large, (small, large)
