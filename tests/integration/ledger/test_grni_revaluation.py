"""GRNI clears whichever of a receipt and a PO price amendment the ledger sees first.

Found by the chaos run (seed 3, 400 invoices): the journal's end balances of `expense:{bu}` and
`liability:grni` differed from the fault-free run's by qty × the amended price difference. Intake
reads POs and receipts from two topics, so a receipt and a price amendment reach the ledger in
either order; the receipt was accrued at whatever PO version the ledger had, while the approval
(matched against the new version) relieves GRNI at the new price — a residual that never clears.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal as D

import asyncpg
import pytest

from services.ledger import queries
from services.ledger.handlers import router
from shared.consumer import RawRecord
from shared.topics import MATCHING_DECISIONS
from tests.integration.ledger import flow
from tests.support import deliver, record, scratch_pool

pytestmark = pytest.mark.integration


def approved_at_v2(invoice_id: str = "INV-1", quantity: str = "4") -> RawRecord:
    """Approved against version 2 (unit price 55.00), at the invoice price 55.00."""
    base = json.loads(flow.approved(invoice_id).value)["data"]
    matched = D(quantity) * D("55.00")
    base |= {
        "po_version": 2,
        "payable_amount": str(matched),
        "tax_total": "0",
        "override_ids": [],
        "overrides": [],
        "approvals": [],
        "decision_id": f"DEC-{invoice_id}",
        "lines": [
            dict(
                base["lines"][0],
                quantity=quantity,
                invoice_unit_price="55.00",
                po_unit_price="55.00",
                matched_amount=str(matched),
                variance_amount="0.00",
                line_amount=str(matched),
            )
        ],
    }
    return record(MATCHING_DECISIONS, "invoice.approved_to_pay", base, key=invoice_id)


async def balances(pool: asyncpg.Pool) -> dict[str, D]:
    rows = await pool.fetch(
        "SELECT account, sum(debit) - sum(credit) AS b FROM journal_lines "
        "GROUP BY account HAVING sum(debit) <> sum(credit)"
    )
    return {r["account"]: r["b"] for r in rows}


async def deliver_each(pool: asyncpg.Pool, *records: RawRecord) -> None:
    for r in records:
        await deliver(pool, router, r)


async def test_receipt_before_or_after_a_price_amendment_leaves_the_same_balances_and_no_grni() -> None:
    async with scratch_pool("ledger") as receipt_first, scratch_pool("ledger") as amendment_first:
        await deliver_each(
            receipt_first,
            flow.po_in_force(1, "50.00"),
            flow.receipt(quantity="4"),
            flow.po_in_force(2, "55.00"),
            approved_at_v2(),
        )
        await deliver_each(
            amendment_first,
            flow.po_in_force(1, "50.00"),
            flow.po_in_force(2, "55.00"),
            flow.receipt(quantity="4"),
            approved_at_v2(),
        )
        expected = {"expense:marketing": D("220.00"), "liability:ap:payee-us-1": D("-220.00")}
        assert await balances(amendment_first) == expected
        assert await balances(receipt_first) == expected  # GRNI revalued, then cleared
        for pool in (receipt_first, amendment_first):
            async with pool.acquire() as conn:
                assert await queries.check_invariants(conn) == []


async def test_only_quantities_not_yet_invoiced_are_revalued() -> None:
    """4 received and invoiced at version 1, then 6 more received; the price changes: only the
    6 open units move to the new price, the 4 already relieved at 50.00 stay cleared."""
    async with scratch_pool("ledger") as pool:
        v1_approval = json.loads(flow.approved().value)["data"]
        v1_approval |= {"override_ids": [], "overrides": [], "approvals": []}
        await deliver_each(
            pool,
            flow.po_in_force(1, "50.00"),
            flow.receipt("R-1", quantity="4"),
            record(MATCHING_DECISIONS, "invoice.approved_to_pay", v1_approval, key="INV-1"),
            flow.receipt("R-2", quantity="6"),
            flow.po_in_force(2, "55.00"),
            approved_at_v2("INV-2", quantity="6"),
        )
        b = await balances(pool)
        assert "liability:grni" not in b, b
        # 4 × 50 + 6 × 55 received; the variance of the first invoice (51 vs 50) stays variance.
        assert b["expense:marketing"] == D("530.00")
        async with pool.acquire() as conn:
            assert await queries.check_invariants(conn) == []


async def test_an_approval_rematched_at_an_amended_price_clears_grni_in_every_arrival_order() -> None:
    """Found by the chaos run in CI: an invoice approved at version 1, the price amended, matching
    re-approves at version 2. A revaluation of quantities not yet invoiced (the first fix) missed it: the
    re-approval relieved GRNI at 55.00 what had been accrued at 50.00 — a residual whose size
    depended on whether the ledger saw the new version or the re-approval first. The GRNI true-up
    after every batch makes the end the same in every order."""
    v1_approval = json.loads(flow.approved().value)["data"]
    v1_approval |= {"override_ids": [], "overrides": [], "approvals": []}

    def first() -> list[RawRecord]:
        return [
            flow.po_in_force(1, "50.00"),
            flow.receipt(quantity="4"),
            record(MATCHING_DECISIONS, "invoice.approved_to_pay", v1_approval, key="INV-1"),
        ]

    async with scratch_pool("ledger") as version_first, scratch_pool("ledger") as reapproval_first:
        await deliver_each(version_first, *first(), flow.po_in_force(2, "55.00"), approved_at_v2("INV-1"))
        await deliver_each(reapproval_first, *first(), approved_at_v2("INV-1"), flow.po_in_force(2, "55.00"))
        for pool in (version_first, reapproval_first):
            b = await balances(pool)
            assert "liability:grni" not in b, b
            async with pool.acquire() as conn:
                assert await queries.check_invariants(conn) == []
        assert await balances(version_first) == await balances(reapproval_first)


async def test_a_new_version_and_an_approval_handled_at_once_true_up_grni_once() -> None:
    """Found by `make chaos-cluster`: the PO's new version (intake.documents) and the approval at it
    (matching.decisions) were handled at the same moment in two transactions — two consumers, here
    two ledger replicas. Each read the GRNI balance before the other committed and each posted an
    18.75 true-up: GRNI ended 18.75 off. Both records wait here on one lock, then race."""
    async with scratch_pool("ledger") as pool:
        await deliver_each(pool, flow.po_in_force(1, "50.00"), flow.receipt(quantity="4"))
        async with pool.acquire() as blocker:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("LOCK TABLE inbox IN EXCLUSIVE MODE")
            racing = asyncio.gather(
                deliver(pool, router, flow.po_in_force(2, "55.00")),
                deliver(pool, router, approved_at_v2()),
            )
            await asyncio.sleep(0.5)
            await tx.commit()
            await racing
        b = await balances(pool)
        assert "liability:grni" not in b, b
        async with pool.acquire() as conn:
            assert await queries.check_invariants(conn) == []
