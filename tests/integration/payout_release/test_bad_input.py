"""Bad and hostile funding and rail events at payout_release: each ends as a deadletter record
with its reason or a `rail_anomaly.opened` for treasury — never applied silently, never moving
money it should not (SPEC §15 "Amounts: funding", "Rails")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from shared.consumer import DEADLETTER_EVENT_TYPE, RawRecord
from shared.topics import IN_FUNDING, IN_RAIL_EVENTS
from testkit.samples import payouts
from testkit.samples.payouts import T0, approved, run_requested
from tests.integration.payout_release.test_handlers import (
    available,
    inbox_result,
    live_payouts,
    ready,
    released,
    send,
)
from tests.support import emitted, record

pytestmark = pytest.mark.integration


def funding(amount: str, currency: str = "EUR", funding_id: str = "F-bad") -> RawRecord:
    data = {
        "funding_id": funding_id,
        "account_id": "fund-1",
        "legal_entity": "LE-1",
        "currency": currency,
        "amount": amount,
        "received_at": T0.isoformat(),
    }
    return record(IN_FUNDING, "funding.received", data, key="fund-1")


def settled(payout_id: str, rail_event_id: str, amount: str = "100.00", currency: str = "EUR") -> RawRecord:
    data = {
        "payout_id": payout_id,
        "rail_event_id": rail_event_id,
        "amount": amount,
        "currency": currency,
        "settled_at": T0.isoformat(),
    }
    return record(IN_RAIL_EVENTS, "payout.settled", data, key=payout_id)


def failed(payout_id: str, rail_event_id: str, code: str = "AC04") -> RawRecord:
    data = {"payout_id": payout_id, "rail_event_id": rail_event_id, "failure_code": code}
    return record(IN_RAIL_EVENTS, "payout.failed", data, key=payout_id)


async def one_payout(pool: asyncpg.Pool, amount: str = "100.00") -> str:
    await ready(pool, funds="2000.00")
    await send(pool, approved("inv-1", amount))
    [payout] = released(await send(pool, run_requested("run-1")))
    return str(payout["payout_id"])


def anomalies(result: Any) -> list[tuple[str, str | None, str | None]]:
    return [
        (e["data"]["what"], e["data"].get("expected"), e["data"].get("got"))
        for e in emitted(result, "rail_anomaly.opened")
    ]


async def payout_status(pool: asyncpg.Pool, payout_id: str) -> str:
    async with pool.acquire() as conn:
        return str(await conn.fetchval("SELECT status FROM payouts WHERE payout_id = $1", payout_id))


# --- funding -----------------------------------------------------------------------------------

BAD_FUNDING = [
    ("negative", funding("-990.00"), "amount: invalid_funding: amount must be positive, got -990.00"),
    ("zero", funding("0.00"), "amount: invalid_funding: amount must be positive, got 0.00"),
    (
        "unknown currency",
        funding("500.00", "ZZZ"),
        "currency: invalid_funding: 'ZZZ' is not an ISO 4217 currency",
    ),
    (
        "below the minor unit",
        funding("5.001"),
        "amount: invalid_funding: amount 5.001 has more decimals than EUR allows (2)",
    ),
]


@pytest.mark.parametrize(("name", "rec", "error"), BAD_FUNDING, ids=[b[0] for b in BAD_FUNDING])
async def test_invalid_funding_is_deadlettered_with_its_reason_and_credits_nothing(
    pool: asyncpg.Pool, name: str, rec: RawRecord, error: str
) -> None:
    await send(pool, payouts.funding("100.00"))
    result = await send(pool, rec)
    [dead] = emitted(result, DEADLETTER_EVENT_TYPE)
    assert dead["data"]["error"] == f"invalid funding.received data: {error}", name
    assert dead["data"]["origin"]["offset"] == rec.offset
    assert await available(pool) == Decimal("100.00")


async def test_negative_funding_never_blocks_a_legitimate_payout(pool: asyncpg.Pool) -> None:
    # The attack: 1,000.00 funded, then −990.00 "funded"; a 100.00 invoice was blocked insufficient_funds.
    await ready(pool, funds="1000.00")
    await send(pool, funding("-990.00"), approved("inv-1", "100.00"))
    [payout] = released(await send(pool, run_requested("run-1")))
    assert payout["amount"] == "100.00"
    assert await available(pool) == Decimal("900.00")


# --- rail events -------------------------------------------------------------------------------


async def test_a_short_settlement_is_not_a_settlement(pool: asyncpg.Pool) -> None:
    payout_id = await one_payout(pool, "1050.00")
    short = settled(payout_id, "rail-short", "1040.00")
    result = await send(pool, short)
    assert anomalies(result) == [("amount_mismatch", "1050.00 EUR", "1040.00 EUR")]
    assert emitted(result, "payout.settlement_recorded") == []  # so the ledger posts nothing
    [anomaly] = emitted(result, "rail_anomaly.opened")
    assert anomaly["data"] | {"opened_at": None} == {
        "payout_id": payout_id,
        "rail_event_id": "rail-short",
        "what": "amount_mismatch",
        "expected": "1050.00 EUR",
        "got": "1040.00 EUR",
        "event_type": "payout.settled",
        "invoice_ids": ["inv-1"],
        "queue": "treasury",
        "opened_at": None,
    }
    assert result.outbox[0].key == "inv-1" and result.outbox[0].topic.endswith("concord.out.exceptions")
    assert await inbox_result(pool, short) == "amount_mismatch"
    assert await payout_status(pool, payout_id) == "released"  # still in transit, still reserved
    assert await available(pool) == Decimal("950.00")
    # The rail's corrected settlement applies as usual.
    full = await send(pool, settled(payout_id, "rail-full", "1050.00"))
    assert [e["data"]["amount"] for e in emitted(full, "payout.settlement_recorded")] == ["1050.00"]
    assert await payout_status(pool, payout_id) == "settled"


async def test_a_settlement_in_another_currency_is_not_applied(pool: asyncpg.Pool) -> None:
    payout_id = await one_payout(pool)
    result = await send(pool, settled(payout_id, "rail-usd", "100.00", "USD"))
    assert anomalies(result) == [("currency_mismatch", "100.00 EUR", "100.00 USD")]
    assert emitted(result, "payout.settlement_recorded") == []
    assert await payout_status(pool, payout_id) == "released"


async def test_a_rail_event_for_an_unknown_payout_opens_an_anomaly(pool: asyncpg.Pool) -> None:
    result = await send(pool, settled("payout_nobody", "rail-ghost", "250.00"))
    assert anomalies(result) == [
        ("unknown_payout", None, "settled payout_nobody 250.00 EUR at 2026-11-21T12:00:10+00:00")
    ]
    assert [m.key for m in result.outbox] == ["payout_nobody"]


async def test_a_failure_after_settlement_changes_nothing_and_is_reported(pool: asyncpg.Pool) -> None:
    payout_id = await one_payout(pool)
    await send(pool, settled(payout_id, "rail-s"))
    late = await send(pool, failed(payout_id, "rail-f"))
    assert anomalies(late) == [("status_conflict", "released", "settled")]
    assert emitted(late, "payout.failure_recorded") == [] and emitted(late, "payout.exception_opened") == []
    assert await payout_status(pool, payout_id) == "settled"
    assert await live_payouts(pool) == {"inv-1": payout_id}  # never payable again: not paid twice
    assert released(await send(pool, run_requested("run-2"))) == []


async def test_a_reused_rail_event_id_with_another_body_is_reported_not_applied(pool: asyncpg.Pool) -> None:
    payout_id = await one_payout(pool)
    await send(pool, settled(payout_id, "rail-1", "100.00"))
    same = settled(payout_id, "rail-1", "100.0")  # the same amount written differently: a replay
    assert (await send(pool, same)).outbox == []
    assert await inbox_result(pool, same) == "duplicate_rail_event"
    changed = await send(pool, settled(payout_id, "rail-1", "900.00"))
    assert anomalies(changed) == [
        (
            "rail_event_id_reused",
            f"settled {payout_id} 100.00 EUR at 2026-11-21T12:00:10+00:00",
            f"settled {payout_id} 900.00 EUR at 2026-11-21T12:00:10+00:00",
        )
    ]
    other_kind = await send(pool, failed(payout_id, "rail-1"))
    assert [a[0] for a in anomalies(other_kind)] == ["rail_event_id_reused"]
    assert await payout_status(pool, payout_id) == "settled"
    assert await available(pool) == Decimal("1900.00")


async def test_every_bad_rail_event_in_one_batch_is_reported_and_the_good_one_applies(
    pool: asyncpg.Pool,
) -> None:
    payout_id = await one_payout(pool)
    result = await send(
        pool,
        settled(payout_id, "rail-a", "99.99"),
        settled(payout_id, "rail-b", "100.00", "GBP"),
        settled("payout_ghost", "rail-c"),
        record(IN_RAIL_EVENTS, "payout.settled", {"payout_id": payout_id}, key=payout_id),  # malformed
        settled(payout_id, "rail-good"),
        failed(payout_id, "rail-late"),
    )
    assert sorted(a[0] for a in anomalies(result)) == [
        "amount_mismatch",
        "currency_mismatch",
        "status_conflict",
        "unknown_payout",
    ]
    assert result.deadlettered == 1
    assert [e["data"]["rail_event_id"] for e in emitted(result, "payout.settlement_recorded")] == [
        "rail-good"
    ]
