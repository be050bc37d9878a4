"""SPEC §13.5 and §13.2 in the ledger: an early-payment discount is posted at release to
income:early_payment_discounts and reinstated with the payable when the payout fails; AP ends at
zero and every invariant stays exact; an expedite is linked from the release entry and the trace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import asyncpg
import pytest

from services.ledger import queries
from services.ledger.handlers import router
from shared.consumer import RawRecord
from shared.contracts.outbound import JournalEntryPosted
from shared.topics import OUT_PAYOUTS, PAYOUTS_EVENTS
from tests.integration.ledger import flow
from tests.support import deliver, emitted, record, scratch_pool

pytestmark = pytest.mark.integration

AP = f"liability:ap:{flow.PAYEE}"
INCOME = "income:early_payment_discounts"
IN_TRANSIT = "liability:payouts_in_transit"
EXPEDITE = {"expedite_id": "EXP-1", "approved_by": "treasurer@example.com", "justification": "line stop"}


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("ledger") as p:
        yield p


def released(payout_id: str, amount: str, discount: str | None, expedite: dict[str, str] | None) -> RawRecord:
    invoice: dict[str, Any] = {"invoice_id": "INV-1", "amount": amount}
    if discount:
        invoice["discount"] = discount
    data: dict[str, Any] = {
        "payout_id": payout_id,
        "idempotency_key": payout_id,
        "run_id": "expedite-EXP-1" if expedite else "RUN-2",
        "payee_id": flow.PAYEE,
        "legal_entity": flow.ENTITY,
        "funding_account_id": flow.ACCOUNT,
        "currency": "USD",
        "amount": amount,
        "invoices": [invoice],
        "released_at": "2026-11-05T08:00:00Z",
    }
    if expedite:
        data["expedite"] = expedite
    return record(OUT_PAYOUTS, "payout.released", data, key=flow.PAYEE)


def failed(payout_id: str, amount: str, discount: str) -> RawRecord:
    data = {
        "payout_id": payout_id,
        "rail_event_id": f"RAIL-F-{payout_id}",
        "payee_id": flow.PAYEE,
        "legal_entity": flow.ENTITY,
        "funding_account_id": flow.ACCOUNT,
        "currency": "USD",
        "amount": amount,
        "invoice_ids": ["INV-1"],
        "at": "2026-11-06T08:00:00Z",
        "failure_code": "account_closed",
        "discount": discount,
    }
    return record(PAYOUTS_EVENTS, "payout.failure_recorded", data, key=payout_id)


async def balances(pool: asyncpg.Pool) -> dict[str, D]:
    rows = await pool.fetch(
        "SELECT account, sum(debit) - sum(credit) AS b FROM journal_lines "
        "GROUP BY account HAVING sum(debit) <> sum(credit)"
    )
    return {r["account"]: r["b"] for r in rows}


async def invariants(pool: asyncpg.Pool) -> list[Any]:
    async with pool.acquire() as conn:
        return await queries.check_invariants(conn)


async def approved_invoice(pool: asyncpg.Pool) -> None:
    for r in (flow.funding(), flow.eligibility(), flow.po_in_force(), flow.receipt()):
        await deliver(pool, router, r)
    for r in (flow.invoice_accepted(), flow.approved()):
        await deliver(pool, router, r)


async def test_a_discounted_expedited_payout_posts_the_discount_and_links_the_expedite(
    pool: asyncpg.Pool,
) -> None:
    await approved_invoice(pool)  # payable 244.80; 2 % = 4.896 → 4.90
    result = await deliver(pool, router, released("PAY-D", "239.90", "4.90", EXPEDITE))
    [posted] = [JournalEntryPosted.model_validate(e["data"]) for e in emitted(result, "journal.entry_posted")]
    lines = {(ln.account, ln.debit, ln.credit) for ln in posted.lines}
    assert lines == {(AP, D("244.80"), None), (IN_TRANSIT, None, D("239.90")), (INCOME, None, D("4.90"))}
    assert posted.links.expedite_id == "EXP-1" and posted.links.payout_id == "PAY-D"
    b = await balances(pool)
    assert AP not in b and b[INCOME] == D("-4.90") and b[IN_TRANSIT] == D("-239.90")
    assert await invariants(pool) == []

    async with pool.acquire() as conn:
        trace = await queries.trace(conn, "INV-1")
        recon = await queries.reconcile(conn, now=datetime(2026, 11, 7, tzinfo=UTC))
    [payout] = trace.payouts
    assert payout.expedite is not None
    assert (payout.expedite.expedite_id, payout.expedite.approved_by, payout.expedite.justification) == (
        "EXP-1",
        "treasurer@example.com",
        "line stop",
    )
    assert payout.discounts == (("INV-1", D("4.90")),)
    [entry] = [e for e in trace.entries if e.links.expedite_id]
    assert entry.links.expedite_id == "EXP-1"
    [terms] = trace.terms  # the flow's PO has no payment terms: due on receipt, and it says so
    assert terms.due_date.isoformat() == "2026-11-03" and terms.note and "no payment terms" in terms.note
    assert [(t.invoice_id, t.discount) for t in recon.discounts_taken] == [("INV-1", D("4.90"))]
    assert [(i.invoice_id, i.status) for i in recon.invoices_by_due_date] == [("INV-1", "released")]


async def test_a_failed_discounted_payout_owes_the_whole_payable_again(pool: asyncpg.Pool) -> None:
    await approved_invoice(pool)
    await deliver(pool, router, released("PAY-D", "239.90", "4.90", None))
    await deliver(pool, router, failed("PAY-D", "239.90", "4.90"))
    b = await balances(pool)
    assert b[AP] == D("-244.80") and INCOME not in b and IN_TRANSIT not in b
    assert await invariants(pool) == []
    # paid later in full (window passed), and settled: AP ends at zero
    await deliver(pool, router, released("PAY-F", "244.80", None, None))
    await deliver(pool, router, flow.rail("payout.settlement_recorded", "PAY-F", "RAIL-S", "244.80"))
    b = await balances(pool)
    assert AP not in b and INCOME not in b and IN_TRANSIT not in b
    assert await invariants(pool) == []
