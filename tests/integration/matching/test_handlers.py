"""Matching's handlers on real PostgreSQL (no Kafka): what AP, ops and payout_release would see."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.matching.config import MatchingConfig
from services.matching.escalation import escalate_overdue_holds
from services.matching.handlers import router
from shared.consumer import BatchResult, RawRecord, Router
from shared.envelope import utcnow
from shared.metrics import HOLDS_OPEN
from shared.settings import Settings
from shared.unit_of_work import UnitOfWork
from testkit.samples import intake as b
from tests import support
from tests.support import emitted, scratch_pool

pytestmark = pytest.mark.integration
CONFIG = MatchingConfig.load(Settings(service="matching"))


async def deliver(pool: asyncpg.Pool, router: Router, *records: RawRecord) -> BatchResult:
    return await support.deliver(pool, router, *records, config=CONFIG)


def data(result: BatchResult, event_type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in emitted(result, event_type)]


def event_id(rec: RawRecord) -> str:
    return str(json.loads(rec.value)["event_id"])


async def open_holds(pool: asyncpg.Pool, invoice_id: str = "INV-1") -> list[str]:
    rows = await pool.fetch("SELECT reason FROM holds WHERE invoice_id = $1 AND status = 'open'", invoice_id)
    return sorted(r["reason"] for r in rows)


async def test_a_late_receipt_releases_the_missing_receipt_hold() -> None:
    async with scratch_pool("matching") as pool:
        inv = b.invoice()
        first = await deliver(pool, router, b.requisition(), b.po_in_force(), inv)
        (opened,) = data(first, "hold.opened")
        assert (opened["reason"], opened["queue"], opened["line_id"]) == ("missing_receipt", "ops", "1")
        assert opened["owner"] == "requester@example.com"  # the PO's requester, not AP
        assert (
            opened["due_by"] > opened["opened_at"] and opened["evidence_required"] and opened["next_action"]
        )
        (held,) = data(first, "invoice.held")
        assert [h["reason"] for h in held["holds"]] == ["missing_receipt"]
        assert data(first, "invoice.approved_to_pay") == []

        gr = b.receipt(quantity="10")
        second = await deliver(pool, router, gr)
        (released,) = data(second, "hold.released")
        assert (released["hold_id"], released["released_by"]) == (opened["hold_id"], "rematch")
        assert released["releasing_event_id"] == event_id(gr)
        (approved,) = data(second, "invoice.approved_to_pay")
        assert (approved["po_number"], approved["po_version"], approved["receipt_ids"]) == (
            "PO-1",
            1,
            ["GR-1"],
        )
        assert approved["payable_amount"] == "1190.00" and approved["tax_total"] == "190.00"
        (ln,) = approved["lines"]
        assert (ln["match_mode"], ln["matched_amount"], ln["variance_amount"]) == (
            "three_way",
            "1000.00",
            "0.00",
        )
        assert approved["approvals"][0]["by"] == "manager@example.com"
        row = await pool.fetchrow("SELECT * FROM holds WHERE hold_id = $1", opened["hold_id"])
        assert (row["opened_by_event_id"], row["releasing_event_id"]) == (event_id(inv), event_id(gr))


async def test_redelivery_and_repeated_rematch_publish_nothing() -> None:
    async with scratch_pool("matching") as pool:
        gr = b.receipt()
        await deliver(pool, router, b.po_in_force(), b.invoice())
        await deliver(pool, router, gr)
        decided = await pool.fetchval("SELECT count(*) FROM decisions WHERE invoice_id = 'INV-1'")
        again = await deliver(pool, router, gr)
        assert (again.duplicates, again.outbox) == (1, [])
        rematched = await deliver(pool, router, b.rematch(), b.rematch())
        assert rematched.handled == 2 and rematched.outbox == []
        decisions = await pool.fetchval("SELECT count(*) FROM decisions WHERE invoice_id = 'INV-1'")
        assert decisions == decided == 2  # held (no receipt yet), then approved


async def test_documents_arriving_in_one_batch_are_matched_as_if_one_by_one() -> None:
    async with scratch_pool("matching") as pool:
        inv, gr = b.invoice(), b.receipt()
        together = await deliver(pool, router, b.po_in_force(), inv, gr)
        # As one by one: the invoice finds no receipt yet, the receipt then releases it.
        (opened,) = data(together, "hold.opened")
        (released,) = data(together, "hold.released")
        assert (opened["reason"], released["hold_id"]) == ("missing_receipt", opened["hold_id"])
        assert released["releasing_event_id"] == event_id(gr)
        assert [e["event_type"] for e in emitted(together)] == [
            "hold.opened",
            "invoice.held",
            "invoice_response.issued",  # UQ to the supplier (SPEC §12.3)
            "hold.released",
            "invoice.approved_to_pay",
            "invoice_response.issued",  # AP
        ]
        assert [e["causation_id"] for e in emitted(together)] == [event_id(inv)] * 3 + [event_id(gr)] * 3
        assert await pool.fetchval("SELECT count(*) FROM decisions WHERE invoice_id = 'INV-1'") == 2


async def test_an_invoice_before_its_po_waits_then_is_checked_against_it() -> None:
    async with scratch_pool("matching") as pool:
        early = await deliver(pool, router, b.receipt(), b.invoice(payee_id="0088:someone-else"))
        assert [h["reason"] for h in data(early, "hold.opened")] == ["awaiting_po"]
        arrived = await deliver(pool, router, b.po_in_force())
        assert [h["reason"] for h in data(arrived, "hold.released")] == ["awaiting_po"]
        (opened,) = data(arrived, "hold.opened")
        assert (opened["reason"], opened["queue"]) == ("payee_mismatch", "ap")
        (held,) = data(arrived, "invoice.held")
        assert held["holds"][0]["action"] == "hard_fail"


async def test_an_accepted_override_releases_the_hold_and_the_approval_links_it() -> None:
    async with scratch_pool("matching") as pool:
        first = await deliver(
            pool, router, b.po_in_force(match_mode="two_way"), b.invoice(unit_price="101.00")
        )
        (opened,) = data(first, "hold.opened")
        assert (opened["reason"], opened["queue"]) == ("price_mismatch", "ap")

        result = await deliver(pool, router, b.override(hold_reasons=["price_mismatch"]))
        (released,) = data(result, "hold.released")
        assert (released["released_by"], released["override_id"], released["approved_by"]) == (
            "override",
            "OVR-1",
            "ap.lead@example.com",
        )
        (approved,) = data(result, "invoice.approved_to_pay")
        assert approved["override_ids"] == ["OVR-1"]
        assert approved["overrides"][0]["evidence"] == ["https://dms.example.com/doc/42"]
        assert approved["overrides"][0]["requested_by"] == "clerk@example.com"
        assert {a["by"] for a in approved["approvals"]} == {"manager@example.com", "ap.lead@example.com"}
        assert approved["lines"][0]["variance_amount"] == "10.00"  # 10 × 101.00 − 10 × 100.00

        # A later rematch keeps the override: nothing reopens.
        assert (await deliver(pool, router, b.rematch())).outbox == []


@pytest.mark.parametrize(
    ("override", "reasons"),
    [
        (b.override(requested_by="ap.lead@example.com"), ["approver_is_requester"]),
        (b.override(approved_by="ops.lead@example.com"), ["approver_lacks_role:ap"]),
        (b.override(evidence=[" "]), ["evidence_missing"]),
        (b.override(invoice_id="INV-404"), ["invoice_unknown"]),
    ],
)
async def test_a_refused_override_says_why_and_releases_nothing(
    override: RawRecord, reasons: list[str]
) -> None:
    async with scratch_pool("matching") as pool:
        await deliver(pool, router, b.po_in_force(match_mode="two_way"), b.invoice(unit_price="101.00"))
        result = await deliver(pool, router, override)
        (refused,) = data(result, "override.refused")
        assert refused["reasons"] == reasons
        assert [e["event_type"] for e in emitted(result)] == ["override.refused"]
        assert await open_holds(pool) == ["price_mismatch"]
        status = await pool.fetchval("SELECT status FROM overrides WHERE override_id = 'OVR-1'")
        assert status == "refused"


async def test_a_refused_override_may_be_resent_under_the_same_id() -> None:
    async with scratch_pool("matching") as pool:
        await deliver(pool, router, b.po_in_force(match_mode="two_way"), b.invoice(unit_price="101.00"))
        await deliver(pool, router, b.override(approved_by="ops.lead@example.com"))
        fixed = await deliver(pool, router, b.override(approved_by="controller@example.com"))
        assert [h["released_by"] for h in data(fixed, "hold.released")] == ["override"]
        assert await open_holds(pool) == []


async def test_a_hard_fail_cannot_be_overridden() -> None:
    async with scratch_pool("matching") as pool:
        await deliver(pool, router, b.po_in_force(), b.receipt(), b.invoice(currency="USD"))
        result = await deliver(pool, router, b.override(approved_by="controller@example.com"))
        assert data(result, "override.refused")[0]["reasons"] == ["not_overridable:currency_mismatch"]


async def test_a_receipt_reversal_reopens_the_hold_and_revokes_the_approval() -> None:
    async with scratch_pool("matching") as pool:
        approved = await deliver(pool, router, b.po_in_force(), b.receipt(), b.invoice())
        assert len(data(approved, "invoice.approved_to_pay")) == 1
        reversed_ = await deliver(pool, router, b.receipt_reversed())
        assert [h["reason"] for h in data(reversed_, "hold.opened")] == ["missing_receipt"]
        (revoked,) = data(reversed_, "invoice.approval_revoked")
        assert revoked["reason"] == "hold_reopened:missing_receipt"
        assert len(data(reversed_, "invoice.held")) == 1


async def test_an_approved_amendment_rematches_open_invoices_against_the_new_version() -> None:
    async with scratch_pool("matching") as pool:
        first = await deliver(
            pool,
            router,
            b.po_in_force(),
            b.receipt("GR-1", "10"),
            b.invoice("INV-1"),
            b.receipt("GR-2", "5"),
            b.invoice("INV-2", quantity="5"),
        )
        (v1,) = data(first, "invoice.approved_to_pay")
        assert [h["reason"] for h in data(first, "hold.opened")] == ["qty_over_ordered"]  # INV-2: 15 > 10
        more = [
            {
                "line_id": "L1",
                "item_ref": "LAPTOP",
                "category": "goods",
                "quantity": "15",
                "unit_price": "100.00",
            }
        ]
        amended = await deliver(pool, router, b.po_in_force(version=2, lines=more))
        assert [(h["invoice_id"], h["reason"]) for h in data(amended, "hold.released")] == [
            ("INV-2", "qty_over_ordered")
        ]
        approvals = {a["invoice_id"]: a for a in data(amended, "invoice.approved_to_pay")}
        assert {i: a["po_version"] for i, a in approvals.items()} == {"INV-1": 2, "INV-2": 2}
        assert approvals["INV-1"]["decision_id"] != v1["decision_id"]


async def test_a_corrected_invoice_closes_the_one_it_supersedes() -> None:
    async with scratch_pool("matching") as pool:
        await deliver(pool, router, b.po_in_force(), b.receipt(), b.invoice("INV-1", unit_price="120.00"))
        result = await deliver(pool, router, b.invoice("INV-2", replaces_invoice_id="INV-1"))
        (released,) = data(result, "hold.released")
        assert (released["invoice_id"], released["reason"], released["released_by"]) == (
            "INV-1",
            "price_mismatch",
            "correction",
        )
        (superseded,) = data(result, "invoice.superseded")
        assert superseded == {"invoice_id": "INV-1", "superseded_by": "INV-2", "po_number": "PO-1"}
        assert [a["invoice_id"] for a in data(result, "invoice.approved_to_pay")] == ["INV-2"]


async def test_a_credit_note_gives_quantity_back_and_is_approved_too() -> None:
    async with scratch_pool("matching") as pool:
        await deliver(pool, router, b.po_in_force(), b.receipt(quantity="10"), b.invoice("INV-1"))
        credit = await deliver(pool, router, b.invoice("CN-1", quantity="4", document_type="credit_note"))
        (approved,) = data(credit, "invoice.approved_to_pay")
        assert (approved["invoice_id"], approved["document_type"]) == ("CN-1", "credit_note")
        rebill = await deliver(pool, router, b.invoice("INV-2", quantity="4"))
        assert [a["invoice_id"] for a in data(rebill, "invoice.approved_to_pay")] == ["INV-2"]


async def test_a_no_po_invoice_waits_in_no_po_review_until_overridden() -> None:
    async with scratch_pool("matching") as pool:
        first = await deliver(
            pool, router, b.invoice(po_number=None, route_to_no_po_review=True, business_unit="marketing")
        )
        (opened,) = data(first, "hold.opened")
        assert (opened["reason"], opened["queue"], opened.get("po_number")) == (
            "no_po_review",
            "no_po_review",
            None,
        )
        result = await deliver(pool, router, b.override(approved_by="controller@example.com"))
        (approved,) = data(result, "invoice.approved_to_pay")
        assert (approved.get("po_version"), approved["business_unit"]) == (None, "marketing")
        assert approved["lines"][0]["match_mode"] == "no_po"


async def test_a_closed_po_matches_no_further_invoices() -> None:
    async with scratch_pool("matching") as pool:
        await deliver(pool, router, b.po_in_force(), b.receipt(), b.invoice("INV-1", quantity="5"))
        result = await deliver(pool, router, b.po_closed(), b.invoice("INV-2", quantity="5"))
        assert [(h["invoice_id"], h["reason"], h["queue"]) for h in data(result, "hold.opened")] == [
            ("INV-2", "po_not_in_force", "procurement")
        ]


async def test_overdue_holds_are_escalated_once_and_counted_by_reason() -> None:
    async with scratch_pool("matching") as pool:
        await deliver(pool, router, b.po_in_force(), b.invoice())
        await pool.execute("UPDATE holds SET due_by = $1", utcnow() - timedelta(seconds=1))

        async def run() -> list[dict[str, Any]]:
            async with pool.acquire() as conn, conn.transaction():
                uow = UnitOfWork(conn, Settings(service="matching"), "matching")
                await escalate_overdue_holds(uow)
                return [json.loads(m.value()) for m in uow.outbox]

        (escalated,) = await run()
        assert (escalated["event_type"], escalated["data"]["reason"]) == ("hold.escalated", "missing_receipt")
        assert await run() == []
        assert HOLDS_OPEN.labels("missing_receipt")._value.get() == 1
        assert HOLDS_OPEN.labels("price_mismatch")._value.get() == 0


async def test_a_reversal_seen_before_its_receipt_still_wins() -> None:
    async with scratch_pool("matching") as pool:
        await deliver(pool, router, b.po_in_force(), b.receipt_reversed("GR-1"), b.invoice())
        late = await deliver(pool, router, b.receipt("GR-1"))
        assert late.outbox == []
        assert await open_holds(pool) == ["missing_receipt"]


async def test_a_reopened_hold_is_a_new_hold() -> None:
    async with scratch_pool("matching") as pool:
        first = await deliver(pool, router, b.po_in_force(), b.invoice())
        await deliver(pool, router, b.receipt())
        reopened = await deliver(pool, router, b.receipt_reversed())
        (before,) = data(first, "hold.opened")
        (after,) = data(reopened, "hold.opened")
        assert before["reason"] == after["reason"] == "missing_receipt"
        assert before["hold_id"] != after["hold_id"]


async def final_state(pool: asyncpg.Pool) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    invoices = await pool.fetch(
        "SELECT invoice_id, status, decision_fingerprint FROM invoices ORDER BY invoice_id"
    )
    holds = await pool.fetch("SELECT invoice_id, reason FROM holds WHERE status = 'open' ORDER BY 1, 2")
    return (
        [(r["invoice_id"], r["status"], r["decision_fingerprint"]) for r in invoices],
        [(r["invoice_id"], r["reason"]) for r in holds],
    )


@pytest.mark.parametrize(
    "order",
    [
        ["po", "gr1", "inv1", "gr2", "inv2", "rev1", "v2"],
        ["inv1", "inv2", "rev1", "gr2", "v2", "gr1", "po"],
        ["rev1", "inv1", "v2", "gr1", "inv2", "po", "gr2"],
    ],
)
async def test_any_arrival_order_ends_in_the_same_decisions_and_holds(order: list[str]) -> None:
    more = [
        {"line_id": "L1", "item_ref": "LAPTOP", "category": "goods", "quantity": "12", "unit_price": "100.00"}
    ]
    docs = {
        "po": b.po_in_force(),
        "v2": b.po_in_force(version=2, lines=more),
        "gr1": b.receipt("GR-1", "5"),
        "gr2": b.receipt("GR-2", "6"),
        "rev1": b.receipt_reversed("GR-1"),
        "inv1": b.invoice("INV-1", quantity="5"),
        "inv2": b.invoice("INV-2", quantity="6"),
    }
    canonical = ["po", "v2", "gr1", "gr2", "rev1", "inv1", "inv2"]
    async with scratch_pool("matching") as reference, scratch_pool("matching") as other:
        for name in canonical:
            await deliver(reference, router, docs[name])
        for name in order:
            await deliver(other, router, docs[name])
        expected = await final_state(reference)
        assert await final_state(other) == expected
        # INV-1 takes GR-2's 6 first (GR-1 was reversed); INV-2 finds nothing left.
        assert expected[1] == [("INV-2", "qty_over_received")]


async def test_each_po_of_a_batch_is_rematched_as_caused_by_its_own_last_document() -> None:
    # One batch carries two POs' documents; both are rematched in one go after the batch, and
    # each decision names the record that completed its own PO, not the batch's last record.
    async with scratch_pool("matching") as pool:
        gr_1 = b.receipt()
        gr_2 = b.receipt(receipt_id="GR-2", po_number="PO-2")
        result = await deliver(
            pool,
            router,
            b.po_in_force(),
            b.po_in_force("PO-2"),
            b.invoice(),
            b.invoice("INV-2", po_number="PO-2"),
            gr_1,
            gr_2,
        )
        approvals = {e["data"]["invoice_id"]: e for e in emitted(result, "invoice.approved_to_pay")}
        assert set(approvals) == {"INV-1", "INV-2"}
        assert approvals["INV-1"]["causation_id"] == event_id(gr_1)
        assert approvals["INV-2"]["causation_id"] == event_id(gr_2)
        assert approvals["INV-2"]["data"]["receipt_ids"] == ["GR-2"]
        stored = await pool.fetch("SELECT invoice_id, status, decision_seq FROM invoices ORDER BY invoice_id")
        assert [(r["invoice_id"], r["status"]) for r in stored] == [
            ("INV-1", "approved"),
            ("INV-2", "approved"),
        ]
