"""Bad funding and inconsistent rail events as the ledger sees them (SPEC §15): the ledger posts
only what is consistent, agrees with payout_release about it, and `ledger check` stays clean.

payout_release and the ledger both read concord.in.funding; each record below goes to both, and
what payout_release publishes for the ledger is handed on exactly as the relay would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from services.ledger import queries
from services.ledger.handlers import router as ledger_router
from services.payout_release.handlers import router as payout_router
from shared.consumer import DEADLETTER_EVENT_TYPE, BatchResult, RawRecord
from shared.settings import Settings
from shared.topics import IN_FUNDING, IN_RAIL_EVENTS
from testkit.records import forwarded
from testkit.samples.payouts import T0, approved, eligibility, po_in_force, run_requested
from tests.integration.payout_release.test_handlers import SETTINGS
from tests.support import FrozenClock, deliver, emitted, freeze_clock, record, scratch_pool

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """payout_release's runs read the clock: stopped where the records are dated."""
    return freeze_clock(monkeypatch, T0)


class Pair:
    """payout_release and the ledger, each on its own database, wired as Kafka would wire them."""

    def __init__(self, payouts: asyncpg.Pool, ledger: asyncpg.Pool) -> None:
        self.payouts, self.ledger = payouts, ledger

    async def send(self, *records: RawRecord) -> tuple[BatchResult, BatchResult]:
        """Deliver to both (each ignores what it does not handle), then hand what payout_release
        published on the ledger's topics to the ledger."""
        at_payouts = await deliver(self.payouts, payout_router, *records, settings=SETTINGS)
        at_ledger = await deliver(self.ledger, ledger_router, *records, settings=Settings(service="ledger"))
        handed_on = forwarded(at_payouts.outbox, *ledger_router.topics)
        if handed_on:
            await deliver(self.ledger, ledger_router, *handed_on, settings=Settings(service="ledger"))
        return at_payouts, at_ledger

    async def violations(self) -> list[queries.Violation]:
        async with self.ledger.acquire() as conn:
            return await queries.check_invariants(conn)

    async def balance(self, account: str) -> Decimal:
        value = await self.ledger.fetchval(
            "SELECT coalesce(sum(debit) - sum(credit), 0) FROM journal_lines WHERE account = $1", account
        )
        return Decimal(value)

    async def entries(self, kind: str) -> int:
        return int(await self.ledger.fetchval("SELECT count(*) FROM journal_entries WHERE kind = $1", kind))


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    async with scratch_pool("payout_release") as payouts, scratch_pool("ledger") as ledger:
        yield Pair(payouts, ledger)


def funding(
    amount: str, currency: str = "EUR", funding_id: str = "F-1", legal_entity: str = "LE-1"
) -> RawRecord:
    data = {
        "funding_id": funding_id,
        "account_id": "fund-1",
        "legal_entity": legal_entity,
        "currency": currency,
        "amount": amount,
        "received_at": T0.isoformat(),
    }
    return record(IN_FUNDING, "funding.received", data, key="fund-1")


def settled(payout_id: str, rail_event_id: str, amount: str, currency: str = "EUR") -> RawRecord:
    data = {
        "payout_id": payout_id,
        "rail_event_id": rail_event_id,
        "amount": amount,
        "currency": currency,
        "settled_at": T0.isoformat(),
    }
    return record(IN_RAIL_EVENTS, "payout.settled", data, key=payout_id)


async def released_payout(pair: Pair, amount: str = "1050.00") -> str:
    await pair.send(funding("2000.00"), eligibility(), po_in_force())
    await pair.send(approved("inv-1", amount))
    result, _ = await pair.send(run_requested("run-1"))
    [payout] = emitted(result, "payout.released")
    return str(payout["data"]["payout_id"])


@pytest.mark.parametrize(
    ("amount", "currency"), [("-990.00", "EUR"), ("0", "EUR"), ("500.00", "ZZZ"), ("1.001", "EUR")]
)
async def test_invalid_funding_is_neither_credited_nor_posted_and_both_say_why(
    pair: Pair, amount: str, currency: str
) -> None:
    rec = funding(amount, currency, funding_id="F-bad")
    at_payouts, at_ledger = await pair.send(rec)
    [dead_p] = emitted(at_payouts, DEADLETTER_EVENT_TYPE)
    [dead_l] = emitted(at_ledger, DEADLETTER_EVENT_TYPE)
    assert "invalid_funding" in dead_l["data"]["error"]
    # One bad record, one deadletter entry: both services derive the same id from its origin.
    assert dead_p["event_id"] == dead_l["event_id"] and dead_p["data"] == dead_l["data"]
    assert await pair.entries("funding") == 0
    assert await pair.violations() == []


@pytest.mark.parametrize(("legal_entity", "currency"), [("LE-9", "EUR"), ("LE-1", "GBP")])
async def test_funding_for_another_entity_or_currency_of_an_account_is_refused_by_both(
    pair: Pair, legal_entity: str, currency: str
) -> None:
    await pair.send(funding("100.00"))
    at_payouts, _ = await pair.send(funding("900.00", currency, "F-2", legal_entity))
    [refused] = emitted(at_payouts, "funding.refused")
    assert refused["data"] | {"refused_at": None} == {
        "funding_id": "F-2",
        "account_id": "fund-1",
        "legal_entity": legal_entity,
        "currency": currency,
        "amount": "900.00",
        "reasons": ["funding_account_mismatch"],
        "expected": "LE-1 EUR",
        "got": f"{legal_entity} {currency}",
        "queue": "treasury",
        "refused_at": None,
    }
    assert await pair.entries("funding") == 1  # the journal shows only what payout_release can pay from
    assert await pair.balance("asset:funding:fund-1") == Decimal("100.00")
    async with pair.payouts.acquire() as conn:
        assert await conn.fetchval("SELECT received FROM funding_accounts") == Decimal("100.00")
    assert await pair.violations() == []


async def test_a_short_settlement_posts_nothing_and_the_ledger_check_stays_clean(pair: Pair) -> None:
    payout_id = await released_payout(pair)
    assert await pair.balance("liability:payouts_in_transit") == Decimal("-1050.00")

    at_payouts, _ = await pair.send(settled(payout_id, "rail-short", "1040.00"))
    assert [e["data"]["what"] for e in emitted(at_payouts, "rail_anomaly.opened")] == ["amount_mismatch"]
    assert await pair.entries("payout_settlement") == 0  # a short settlement is not a settlement
    assert await pair.balance("liability:payouts_in_transit") == Decimal("-1050.00")
    assert await pair.balance("asset:funding:fund-1") == Decimal("2000.00")
    assert await pair.violations() == []

    await pair.send(settled(payout_id, "rail-eur-usd", "1050.00", "USD"))
    assert await pair.entries("payout_settlement") == 0

    # The full settlement, when the rail sends it, is posted once and closes the transit.
    await pair.send(settled(payout_id, "rail-full", "1050.00"))
    assert await pair.entries("payout_settlement") == 1
    assert await pair.balance("liability:payouts_in_transit") == Decimal("0")
    assert await pair.balance("asset:funding:fund-1") == Decimal("950.00")
    assert await pair.violations() == []


async def test_a_failure_after_settlement_is_not_posted(pair: Pair) -> None:
    payout_id = await released_payout(pair)
    await pair.send(settled(payout_id, "rail-s", "1050.00"))
    failure = record(
        IN_RAIL_EVENTS,
        "payout.failed",
        {"payout_id": payout_id, "rail_event_id": "rail-f", "failure_code": "AC04"},
        key=payout_id,
    )
    at_payouts, _ = await pair.send(failure)
    assert [e["data"]["what"] for e in emitted(at_payouts, "rail_anomaly.opened")] == ["status_conflict"]
    assert await pair.entries("payout_failure") == 0
    assert await pair.balance(f"liability:ap:{'payee-1'}") == Decimal("0")
    assert await pair.violations() == []
