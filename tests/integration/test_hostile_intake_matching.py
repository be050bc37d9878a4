"""SPEC §15 through intake and matching together (their handlers on real PostgreSQL, no Kafka):
a 10.00 invoice is never approved to pay 1,000.00, a look-alike or a correction of a settled
invoice is never approved a second time, and spelling never passes segregation of duties.

Each hostile document goes through intake; whatever intake accepts is delivered to matching
exactly as intake published it. The outcome is checked where a user would see it: a
`document.rejected` on concord.out.rejections, or a hold on concord.out.exceptions and no
`invoice.approved_to_pay` on concord.matching.decisions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from services.intake import domain as intake_domain
from services.intake.handlers import router as intake_router
from services.matching.config import MatchingConfig
from services.matching.handlers import router as matching_router
from shared.consumer import BatchResult, RawRecord
from shared.db import migrate
from shared.settings import Settings
from shared.topics import IN_COMMANDS, IN_INVOICES, IN_PURCHASE_ORDERS, IN_REQUISITIONS, INTAKE_DOCUMENTS
from tests.support import ROOT, deliver, emitted, record, scratch_pool

pytestmark = pytest.mark.integration

PAYEE = "0088:5790000000001"
ENTITY = "9930:DE123456789"
MATCHING_CONFIG = MatchingConfig.load(Settings(service="matching"))


@dataclass
class Stack:
    intake: asyncpg.Pool
    matching: asyncpg.Pool

    async def send(self, *records: RawRecord) -> tuple[BatchResult, BatchResult | None]:
        """Intake handles the records; what it publishes on concord.intake.documents goes on to
        matching in one batch."""
        first = await deliver(self.intake, intake_router, *records, settings=Settings(service="intake"))
        documents = [m for m in first.outbox if m.topic.endswith(INTAKE_DOCUMENTS.name)]
        if not documents:
            return first, None
        forwarded = [
            record(
                INTAKE_DOCUMENTS,
                m.envelope.event_type,
                m.envelope.data,
                key=m.key,
                event_id=m.envelope.event_id,
            )
            for m in documents
        ]
        second = await deliver(self.matching, matching_router, *forwarded, config=MATCHING_CONFIG)
        return first, second

    async def command(self, rec: RawRecord) -> BatchResult:
        return await deliver(self.matching, matching_router, rec, config=MATCHING_CONFIG)


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with scratch_pool("intake") as intake, scratch_pool("matching") as matching:
        yield Stack(intake, matching)


def po(po_number: str = "PO-10", **changes: Any) -> RawRecord:
    """One line of 1 × 10.00, two-way (no receipt needed), no allowed charges."""
    data: dict[str, Any] = {
        "po_number": po_number,
        "version": 1,
        "legal_entity": ENTITY,
        "business_unit": "engineering",
        "payee_id": PAYEE,
        "currency": "EUR",
        "effective_from": "2026-01-01",
        "effective_to": "2026-12-31",
        "created_by": "buyer@example.com",
        "approved_by": "manager@example.com",
        "approved_at": "2026-01-02T09:00:00Z",
        "match_mode": "two_way",
        "lines": [
            {
                "line_id": "L1",
                "item_ref": "WIDGET",
                "category": "goods",
                "quantity": "5",
                "unit_price": "10.00",
            }
        ],
    }
    data.update(changes)
    return record(IN_PURCHASE_ORDERS, "purchase_order.issued", data, key=data["po_number"])


def invoice(invoice_id: str, number: str | None = None, **changes: Any) -> RawRecord:
    """A 10.00 invoice against PO-10 (no tax), changed as a hostile sender would."""
    data: dict[str, Any] = {
        "invoice_id": invoice_id,
        "supplier_invoice_number": number or f"N-{invoice_id}",
        "payee_id": PAYEE,
        "legal_entity": ENTITY,
        "document_type": "invoice",
        "issue_date": "2026-03-01",
        "currency": "EUR",
        "po_number": "PO-10",
        "lines": [
            {
                "line_id": "1",
                "po_line_id": "L1",
                "quantity": "1",
                "unit_price": "10.00",
                "line_amount": "10.00",
            }
        ],
        "tax_total": "0.00",
        "total_amount": "10.00",
    }
    line_changes = changes.pop("line", {})
    data.update(changes)
    data["lines"][0].update(line_changes)
    return record(IN_INVOICES, "invoice.submitted", data, key=PAYEE)


def codes(result: BatchResult) -> set[tuple[str, str | None]]:
    return {
        (r["code"], r.get("field"))
        for e in emitted(result, "document.rejected")
        for r in e["data"]["reasons"]
    }


def approvals(result: BatchResult | None) -> list[dict[str, Any]]:
    return [e["data"] for e in emitted(result, "invoice.approved_to_pay")] if result else []


def holds(result: BatchResult | None) -> set[tuple[str, str, str]]:
    if result is None:
        return set()
    return {
        (e["data"]["invoice_id"], e["data"]["reason"], e["data"]["queue"])
        for e in emitted(result, "hold.opened")
    }


async def test_a_clean_10_00_invoice_is_approved_for_10_00(stack: Stack) -> None:
    await stack.send(po())
    _, matched = await stack.send(invoice("INV-OK"))
    [approved] = approvals(matched)
    assert approved["payable_amount"] == "10.00"


# --- finding 2: overpaid in full, each on a 10.00 invoice paid 1,000.00 ----------------------


@pytest.mark.parametrize(
    ("name", "changes", "code", "field"),
    [
        (
            "negative prepaid_amount",
            {"prepaid_amount": "-990.00"},
            "invalid_prepaid_amount",
            "prepaid_amount",
        ),
        (
            "rounding_amount of 990.00",
            {"rounding_amount": "990.00"},
            "invalid_rounding_amount",
            "rounding_amount",
        ),
        (
            "18-digit unit price",
            {
                "line": {"unit_price": "999999999999999999", "line_amount": "999999999999999999.00"},
                "total_amount": "999999999999999999.00",
            },
            "amount_out_of_range",
            "lines[0].unit_price",
        ),
    ],
)
async def test_intake_rejects_an_invoice_that_would_pay_more_than_its_lines(
    stack: Stack, name: str, changes: dict[str, Any], code: str, field: str
) -> None:
    await stack.send(po())
    refused, matched = await stack.send(invoice("INV-BAD", **changes))
    assert (code, field) in codes(refused), name
    assert matched is None and emitted(refused, "invoice.accepted") == []


async def test_an_unallowed_line_level_charge_is_held_not_paid(stack: Stack) -> None:
    """A line-level allowance_charge_amount of 990.00 on a PO that allows no charge."""
    await stack.send(po())
    changes = {
        "line": {"allowance_charge_amount": "990.00", "line_amount": "1000.00"},
        "total_amount": "1000.00",
    }
    accepted, matched = await stack.send(invoice("INV-LC", **changes))
    assert len(emitted(accepted, "invoice.accepted")) == 1
    assert approvals(matched) == []
    assert ("INV-LC", "unexpected_charge", "ap") in holds(matched)


async def test_a_line_level_charge_within_the_pos_allowance_is_paid(stack: Stack) -> None:
    await stack.send(po(charges=[{"type": "other", "amount": "5.00"}]))
    changes = {"line": {"allowance_charge_amount": "5.00", "line_amount": "15.00"}, "total_amount": "15.00"}
    _, matched = await stack.send(invoice("INV-LC-OK", **changes))
    [approved] = approvals(matched)
    assert approved["payable_amount"] == "15.00"


async def test_tax_above_the_max_tax_rate_opens_a_tax_review(stack: Stack) -> None:
    """tax_total 990.00 on 10.00 net: the arithmetic holds, but no one pays it unreviewed."""
    await stack.send(po())
    _, matched = await stack.send(invoice("INV-TAX", tax_total="990.00", total_amount="1000.00"))
    assert approvals(matched) == []
    assert ("INV-TAX", "tax_review", "ap") in holds(matched)
    [held] = [e["data"] for e in emitted(matched, "invoice.held")]
    assert [(h["reason"], h["action"]) for h in held["holds"]] == [("tax_review", "soft_review")]


async def test_tax_at_the_max_tax_rate_is_paid(stack: Stack) -> None:
    await stack.send(po())
    _, matched = await stack.send(invoice("INV-TAX-OK", tax_total="3.00", total_amount="13.00"))
    [approved] = approvals(matched)
    assert approved["payable_amount"] == "13.00"


# --- finding 3: paid twice ------------------------------------------------------------------


LOOKALIKES = [
    ("U+2010 hyphen", "INV\u20101\u2010A"),
    ("zero-width space", "INV-1\u200b-A"),
    ("full-width digit", "INV-\uff11-A"),
    ("Cyrillic I", "\u0406NV-1-A"),
]


@pytest.mark.parametrize(("name", "number"), LOOKALIKES, ids=[n for n, _ in LOOKALIKES])
async def test_a_lookalike_invoice_number_is_a_duplicate(stack: Stack, name: str, number: str) -> None:
    await stack.send(po())
    _, first = await stack.send(invoice("INV-ORIG", "INV-1-A"))
    assert len(approvals(first)) == 1
    refused, matched = await stack.send(invoice("INV-AGAIN", number))
    assert ("duplicate_invoice", "supplier_invoice_number") in codes(refused), name
    assert matched is None


async def test_an_invoice_stored_before_the_lookalike_rules_is_still_found(stack: Stack) -> None:
    """The stored duplicate keys are recomputed by migration 0002."""
    await stack.send(po())
    await stack.send(invoice("INV-OLD", "INV-1-A"))
    async with stack.intake.acquire() as conn:
        # As v1 stored it: §5 steps only.
        await conn.execute("UPDATE invoices SET normalised_number = 'INV1A'")
        await conn.execute("UPDATE invoice_numbers SET normalised_number = 'INV1A'")
        await conn.execute("DELETE FROM schema_migrations WHERE name = '0002_lookalike_invoice_numbers.py'")
        assert await migrate(conn, ROOT / "services" / "intake" / "migrations") == [
            "0002_lookalike_invoice_numbers.py"
        ]
        key = intake_domain.normalise_invoice_number("INV-1-A")
        assert await conn.fetchval("SELECT normalised_number FROM invoice_numbers") == key
    refused, _ = await stack.send(invoice("INV-NEW", "INV\u20101\u2010A"))
    assert ("duplicate_invoice", "supplier_invoice_number") in codes(refused)


async def test_a_correction_of_an_approved_invoice_is_refused_and_the_original_stands(stack: Stack) -> None:
    await stack.send(po())
    _, first = await stack.send(invoice("INV-PAID", "INV-7"))
    assert len(approvals(first)) == 1
    _, matched = await stack.send(invoice("INV-FIX", "INV-7", replaces_invoice_id="INV-PAID"))
    assert matched is not None
    assert approvals(matched) == []
    assert ("INV-FIX", "replaces_settled_invoice", "ap") in holds(matched)
    # The original is neither superseded nor revoked: it was (or may be being) paid.
    assert emitted(matched, "invoice.superseded") == []
    assert emitted(matched, "invoice.approval_revoked") == []
    [held] = [e["data"] for e in emitted(matched, "invoice.held")]
    assert [(h["reason"], h["action"]) for h in held["holds"]] == [("replaces_settled_invoice", "hard_fail")]
    # No override releases it: a credit note is the way.
    refused = await stack.command(override("OVR-FIX", "INV-FIX", ["replaces_settled_invoice"]))
    [answer] = [e["data"] for e in emitted(refused, "override.refused")]
    assert "not_overridable:replaces_settled_invoice" in answer["reasons"]


async def test_a_correction_under_another_po_of_an_approved_invoice_is_refused_too(stack: Stack) -> None:
    await stack.send(po(), po("PO-11"))
    _, first = await stack.send(invoice("INV-PAID", "INV-9"))
    assert len(approvals(first)) == 1
    _, matched = await stack.send(
        invoice("INV-FIX", "INV-9", replaces_invoice_id="INV-PAID", po_number="PO-11")
    )
    assert approvals(matched) == [] and emitted(matched, "invoice.superseded") == []
    assert ("INV-FIX", "replaces_settled_invoice", "ap") in holds(matched)


async def test_a_correction_of_a_held_invoice_still_supersedes_it(stack: Stack) -> None:
    await stack.send(po())
    _, first = await stack.send(
        invoice(
            "INV-HELD", "INV-8", line={"unit_price": "11.00", "line_amount": "11.00"}, total_amount="11.00"
        )
    )
    assert approvals(first) == []
    _, matched = await stack.send(invoice("INV-CORR", "INV-8", replaces_invoice_id="INV-HELD"))
    assert [e["data"]["invoice_id"] for e in emitted(matched, "invoice.superseded")] == ["INV-HELD"]
    assert [a["invoice_id"] for a in approvals(matched)] == ["INV-CORR"]


# --- finding 4 (first half): controls bypassed by spelling -------------------------------------


async def test_a_po_approved_by_its_creator_in_other_case_is_a_sod_violation(stack: Stack) -> None:
    refused, matched = await stack.send(
        po("PO-SOD", created_by="Buyer.Case@example.com", approved_by="buyer.case@example.com")
    )
    assert ("sod_violation", "approved_by") in codes(refused)
    assert matched is None


async def test_an_amendment_approved_by_its_author_in_other_case_stays_pending(stack: Stack) -> None:
    await stack.send(po("PO-AM"))
    amended = {
        **{k: v for k, v in po_data("PO-AM").items() if k not in ("approved_by", "approved_at")},
        "version": 2,
        "modification_id": "MOD-2",
        "amended_by": "Buyer.Case@example.com",
        "reason": "price change",
        "approved_by": "BUYER.CASE@example.com",
        "approved_at": "2026-02-01T10:00:00Z",
    }
    result, _ = await stack.send(record(IN_PURCHASE_ORDERS, "purchase_order.amended", amended, key="PO-AM"))
    assert emitted(result, "purchase_order.version_in_force") == []
    assert len(emitted(result, "purchase_order.amendment_pending")) == 1
    approval = {
        "po_number": "PO-AM",
        "version": 2,
        "approved_by": "buyer.case@EXAMPLE.com",
        "approved_at": "2026-02-02T10:00:00Z",
    }
    again, _ = await stack.send(
        record(IN_PURCHASE_ORDERS, "purchase_order.amendment_approved", approval, key="PO-AM")
    )
    assert ("sod_violation", "approved_by") in codes(again)


async def test_a_requisition_approved_by_its_requester_in_other_case_is_refused(stack: Stack) -> None:
    data = {
        "requisition_id": "REQ-SOD",
        "legal_entity": ENTITY,
        "business_unit": "engineering",
        "requested_by": "Engineer@Example.com",
        "approved_by": "engineer@example.com",
        "amount": "100.00",
        "currency": "EUR",
    }
    refused, _ = await stack.send(record(IN_REQUISITIONS, "requisition.approved", data, key="REQ-SOD"))
    assert ("sod_violation", "approved_by") in codes(refused)


def po_data(po_number: str) -> dict[str, Any]:
    import json

    return dict(json.loads(po(po_number).value)["data"])


def override(override_id: str, invoice_id: str, hold_reasons: Any, **changes: str) -> RawRecord:
    data = {
        "override_id": override_id,
        "invoice_id": invoice_id,
        "hold_reasons": hold_reasons,
        "reason_code": "price_exception",
        "justification": "agreed by phone",
        "requested_by": "clerk@example.com",
        "approved_by": "ap.lead@example.com",
        "evidence": ["https://dms.example.com/doc/42"],
        **changes,
    }
    return record(IN_COMMANDS, "hold.override_requested", data, key=invoice_id)


async def test_an_override_approved_by_its_requester_in_other_case_is_refused(stack: Stack) -> None:
    await stack.send(po())
    await stack.send(invoice("INV-TX", tax_total="990.00", total_amount="1000.00"))
    result = await stack.command(
        override(
            "OVR-SELF", "INV-TX", "all", requested_by="AP.Lead@Example.com", approved_by="ap.lead@example.com"
        )
    )
    [refused] = [e["data"] for e in emitted(result, "override.refused")]
    assert "approver_is_requester" in refused["reasons"]


# --- overrides: an empty hold_reasons list -----------------------------------------------------


async def test_an_override_naming_no_hold_is_refused_not_deadlettered(stack: Stack) -> None:
    await stack.send(po())
    await stack.send(invoice("INV-TX", tax_total="990.00", total_amount="1000.00"))
    result = await stack.command(override("OVR-EMPTY", "INV-TX", []))
    assert result.deadlettered == 0
    [refused] = [e["data"] for e in emitted(result, "override.refused")]
    assert refused["reasons"] == ["no_hold_reasons"]
    assert approvals(result) == []
