"""intake handlers on a real PostgreSQL (no Kafka): what matching, the ledger and upstream see."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.intake import domain, store
from services.intake.handlers import router
from shared.consumer import BatchResult
from shared.settings import Settings
from testkit.samples.upstream import (
    PAYEE,
    UBL_INVOICE,
    amendment_approved,
    flip_rec,
    inv_rec,
    invoice,
    po_amended,
    po_issued,
    po_rec,
    receipt_rec,
    req_rec,
    requisition,
    ubl_rec,
)
from tests.support import deliver, emitted, scratch_pool

pytestmark = pytest.mark.integration

SETTINGS = Settings(service="intake", policy_file=None)


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("intake") as p:
        yield p


async def run(pool: asyncpg.Pool, *records: Any, settings: Settings = SETTINGS) -> BatchResult:
    return await deliver(pool, router, *records, settings=settings)


def rejection_codes(result: BatchResult) -> list[str]:
    return [r["code"] for e in emitted(result, "document.rejected") for r in e["data"]["reasons"]]


def in_force_versions(result: BatchResult) -> list[int]:
    return [e["data"]["po"]["version"] for e in emitted(result, "purchase_order.version_in_force")]


# --- purchase orders -----------------------------------------------------------------------


async def test_issued_po_comes_into_force_keyed_by_po_number(pool: asyncpg.Pool) -> None:
    result = await run(pool, po_rec("purchase_order.issued", po_issued()))
    [event] = emitted(result, "purchase_order.version_in_force")
    assert event["data"]["po"]["version"] == 1
    assert event["data"]["po"]["business_unit"] == "engineering"
    assert event["data"]["po"]["lines"][1]["unit_price"] == "0.1212"
    assert event["data"]["changes"] == []
    assert [m.key for m in result.outbox] == ["PO-1"]


@pytest.mark.parametrize("approved_by", ["", "buyer@example.com"])
async def test_po_approved_by_nobody_or_its_creator_is_a_sod_violation(
    pool: asyncpg.Pool, approved_by: str
) -> None:
    result = await run(pool, po_rec("purchase_order.issued", po_issued(approved_by=approved_by)))
    assert result.rejected == 1
    assert rejection_codes(result) == ["sod_violation"]
    assert emitted(result, "purchase_order.version_in_force") == []


async def test_po_rejection_lists_every_reason(pool: asyncpg.Pool) -> None:
    bad = po_issued(approved_by="buyer@example.com", currency="XYZ", effective_to="2025-01-01")
    bad["lines"][0]["quantity"] = "0"
    result = await run(pool, po_rec("purchase_order.issued", bad))
    assert sorted(rejection_codes(result)) == [
        "invalid_effective_dates",
        "sod_violation",
        "unknown_currency",
        "zero_quantity",
    ]


async def test_amendment_stays_pending_until_someone_else_approves_it(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    pending = await run(
        pool, po_rec("purchase_order.amended", po_amended(2, approved_by="buyer@example.com"))
    )
    assert [e["data"]["version"] for e in emitted(pending, "purchase_order.amendment_pending")] == [2]
    assert in_force_versions(pending) == []

    self_approval = await run(
        pool, po_rec("purchase_order.amendment_approved", amendment_approved(2, by="buyer@example.com"))
    )
    assert rejection_codes(self_approval) == ["sod_violation"]

    approved = await run(pool, po_rec("purchase_order.amendment_approved", amendment_approved(2)))
    [event] = emitted(approved, "purchase_order.version_in_force")
    assert event["data"]["po"]["version"] == 2
    assert event["data"]["previous_version"] == 1
    assert event["data"]["po"]["approved_by"] == "controller@example.com"
    assert event["data"]["amended_by"] == "buyer@example.com"
    assert event["data"]["reason"] == "scope change 2"
    assert set(event["data"]["changes"]) == {"lines[L1].quantity", "sow_ref"}


async def test_amendment_resent_with_an_approval_or_an_early_self_approval(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    await run(pool, po_rec("purchase_order.amended", po_amended(2)))
    self_resent = await run(
        pool, po_rec("purchase_order.amended", po_amended(2, approved_by="buyer@example.com"))
    )
    assert self_resent.outbox == []  # the same document again, still not independently approved
    approved = await run(
        pool, po_rec("purchase_order.amended", po_amended(2, approved_by="controller@example.com"))
    )
    assert in_force_versions(approved) == [2]
    # An approval by the author that overtakes its amendment does not count when it arrives.
    await run(
        pool, po_rec("purchase_order.amendment_approved", amendment_approved(3, by="buyer@example.com"))
    )
    pending = await run(pool, po_rec("purchase_order.amended", po_amended(3)))
    assert in_force_versions(pending) == []
    assert len(emitted(pending, "purchase_order.amendment_pending")) == 1


async def test_invoices_match_the_previous_version_while_an_amendment_is_pending(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    await run(pool, po_rec("purchase_order.amended", po_amended(2, currency="USD")))
    # Version 1 (EUR) is still in force: a EUR invoice passes the identity checks.
    result = await run(pool, inv_rec(invoice()))
    assert result.handled == 1 and result.rejected == 0


async def test_amendments_arriving_out_of_order_are_applied_in_order_exactly_once(pool: asyncpg.Pool) -> None:
    v3 = po_rec("purchase_order.amended", po_amended(3, approved_by="controller@example.com"))
    v2 = po_rec("purchase_order.amended", po_amended(2))
    approval_v2 = po_rec("purchase_order.amendment_approved", amendment_approved(2))
    v1 = po_rec("purchase_order.issued", po_issued())

    assert in_force_versions(await run(pool, v3)) == []
    assert in_force_versions(await run(pool, approval_v2)) == []  # overtook its own amendment
    assert in_force_versions(await run(pool, v2)) == []  # waits for version 1
    result = await run(pool, v1)
    assert in_force_versions(result) == [1, 2, 3]
    # Replays of any of them change nothing.
    again = await run(pool, v3, v2, approval_v2, v1)
    assert again.duplicates == 4 and again.outbox == []
    async with pool.acquire() as conn:
        history = await store.po_history(conn, "PO-1")
    assert [(h["version"], h["status"]) for h in history] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "in_force"),
    ]
    assert history[2]["previous_sow_ref"] == {"id": "SOW-7", "version": "2"}
    assert history[2]["sow_ref"] == {"id": "SOW-7", "version": "3"}


async def test_a_later_version_waits_for_its_pending_predecessor(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    await run(pool, po_rec("purchase_order.amended", po_amended(2)))
    waiting = await run(
        pool, po_rec("purchase_order.amended", po_amended(3, approved_by="controller@example.com"))
    )
    assert in_force_versions(waiting) == []
    released = await run(pool, po_rec("purchase_order.amendment_approved", amendment_approved(2)))
    assert in_force_versions(released) == [2, 3]


async def test_same_version_with_other_content_is_a_version_conflict(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    same = await run(pool, po_rec("purchase_order.issued", po_issued()))  # new event id, same content
    assert same.handled == 1 and same.outbox == []
    other = await run(pool, po_rec("purchase_order.issued", po_issued(payee_id="someone-else")))
    assert rejection_codes(other) == ["version_conflict"]


async def test_closed_po_refuses_amendments_and_flips(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    closed = await run(
        pool,
        po_rec(
            "purchase_order.closed", {"po_number": "PO-1", "closed_by": "buyer@example.com", "reason": "done"}
        ),
    )
    assert len(emitted(closed, "purchase_order.closure_accepted")) == 1
    amended = await run(pool, po_rec("purchase_order.amended", po_amended(2)))
    assert rejection_codes(amended) == ["po_closed"]
    flip = await run(pool, flip_rec("F-closed"))
    assert rejection_codes(flip) == ["po_closed"]


# --- requisitions and receipts ------------------------------------------------------------


async def test_requisition_converted_by_a_po_or_closed_is_no_longer_open(pool: asyncpg.Pool) -> None:
    accepted = await run(
        pool,
        req_rec("requisition.approved", requisition("REQ-1")),
        req_rec("requisition.approved", requisition("REQ-2")),
        req_rec("requisition.approved", requisition("REQ-3")),
    )
    assert len(emitted(accepted, "requisition.accepted")) == 3
    await run(pool, po_rec("purchase_order.issued", po_issued(requisition_id="REQ-1")))
    closed = await run(
        pool,
        req_rec(
            "requisition.closed",
            {"requisition_id": "REQ-2", "closed_by": "m@example.com", "reason": "cancelled"},
        ),
    )
    assert len(emitted(closed, "requisition.closure_accepted")) == 1
    refused = await run(
        pool,
        req_rec(
            "requisition.closed", {"requisition_id": "REQ-1", "closed_by": "m@example.com", "reason": "x"}
        ),
    )
    assert rejection_codes(refused) == ["requisition_converted"]
    async with pool.acquire() as conn:
        still_open = await store.open_requisitions(conn, datetime.now(UTC) + timedelta(days=1))
    assert [r["requisition_id"] for r in still_open] == ["REQ-3"]


async def test_requisition_self_approval_is_refused(pool: asyncpg.Pool) -> None:
    result = await run(pool, req_rec("requisition.approved", requisition(approved_by="engineer@example.com")))
    assert rejection_codes(result) == ["sod_violation"]


async def test_receipt_accepted_then_reversed_once(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    receipt = {
        "receipt_id": "R-1",
        "po_number": "PO-1",
        "kind": "service_completion",
        "received_at": "2026-03-01T10:00:00Z",
        "recorded_by": "pm@example.com",
        "lines": [{"receipt_line_id": "RL1", "po_line_id": "L1", "quantity": "2"}],
    }
    accepted = await run(pool, receipt_rec("receipt.recorded", receipt))
    assert [m.key for m in accepted.outbox] == ["PO-1"] and len(emitted(accepted, "receipt.accepted")) == 1
    reversal = {"receipt_id": "R-1", "po_number": "PO-1", "reversed_by": "pm@example.com", "reason": "error"}
    reversed_ = await run(pool, receipt_rec("receipt.reversed", reversal))
    assert len(emitted(reversed_, "receipt.reversal_accepted")) == 1
    again = await run(pool, receipt_rec("receipt.reversed", reversal))
    assert again.outbox == []


async def test_receipt_with_zero_quantity_or_unknown_po_line_is_refused(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    receipt = {
        "receipt_id": "R-2",
        "po_number": "PO-1",
        "kind": "goods_receipt",
        "received_at": "2026-03-01T10:00:00Z",
        "recorded_by": "pm@example.com",
        "lines": [{"receipt_line_id": "RL1", "po_line_id": "L9", "quantity": "0"}],
    }
    result = await run(pool, receipt_rec("receipt.recorded", receipt))
    assert sorted(rejection_codes(result)) == ["invalid_po_line_ref", "zero_quantity"]


# --- invoices ------------------------------------------------------------------------------


async def test_invoice_against_known_po_carries_business_unit_and_payable(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    result = await run(pool, inv_rec(invoice(prepaid_amount="100.00", rounding_amount="-0.12")))
    [event] = emitted(result, "invoice.accepted")
    data = event["data"]
    assert data["business_unit"] == "engineering"
    assert data["payable_amount"] == "1900.00"
    assert data["normalised_invoice_number"] == domain.normalise_invoice_number("inv 42")
    assert data["origin"] == "json"
    assert [m.key for m in result.outbox if json.loads(m.value())["event_type"] == "invoice.accepted"] == [
        "PO-1"
    ]


async def test_invoice_before_its_po_is_accepted_without_business_unit(pool: asyncpg.Pool) -> None:
    result = await run(pool, inv_rec(invoice(payee_id="other-payee")))
    [event] = emitted(result, "invoice.accepted")
    assert "business_unit" not in event["data"]
    assert event["data"]["po_number"] == "PO-1"


async def test_identity_mismatches_with_the_po_are_hard_failures(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    bad = invoice(payee_id="other-payee", legal_entity="OTHER", currency="USD")
    result = await run(pool, inv_rec(bad))
    assert sorted(rejection_codes(result)) == ["currency_mismatch", "entity_mismatch", "payee_mismatch"]


async def test_invoice_rejection_lists_every_reason_with_its_field(pool: asyncpg.Pool) -> None:
    bad = invoice(currency="JPY", tax_total="400.5", total_amount="1")
    bad["lines"][0]["quantity"] = "0"
    result = await run(pool, inv_rec(bad))
    [event] = emitted(result, "document.rejected")
    reasons = {(r["code"], r.get("field")) for r in event["data"]["reasons"]}
    assert ("zero_quantity", "lines[0].quantity") in reasons
    assert ("invalid_amount_scale", "tax_total") in reasons  # JPY has no minor unit
    assert ("invalid_amount_scale", "lines[0].line_amount") not in reasons  # "1600.00" is 1600 JPY
    assert ("total_mismatch", "total_amount") in reasons
    assert event["data"]["rejected_event_id"]
    assert event["data"]["event_type"] == "invoice.submitted"


async def test_exact_duplicate_by_normalised_number_is_a_hard_stop(pool: asyncpg.Pool) -> None:
    first = await run(pool, inv_rec(invoice("INV-A", "INV-0042")))
    assert first.handled == 1
    second = await run(pool, inv_rec(invoice("INV-B", "inv 42")))
    assert rejection_codes(second) == ["duplicate_invoice"]
    # A credit note may carry the same number: the document type is part of the key.
    credit = await run(pool, inv_rec(invoice("CN-A", "INV-0042", document_type="credit_note")))
    assert credit.handled == 1 and rejection_codes(credit) == []


async def test_suspected_duplicate_is_flagged_not_rejected(pool: asyncpg.Pool) -> None:
    await run(pool, inv_rec(invoice("INV-A", "INV-0042")))
    result = await run(pool, inv_rec(invoice("INV-C", "INV-0043")))
    [event] = emitted(result, "invoice.accepted")
    assert event["data"]["suspected_duplicate_of"] == ["INV-A"]


async def test_same_invoice_id_twice(pool: asyncpg.Pool) -> None:
    await run(pool, inv_rec(invoice("INV-A")))
    resent = await run(pool, inv_rec(invoice("INV-A")))  # upstream retry with a new event id
    assert resent.handled == 1 and resent.outbox == []
    changed = await run(pool, inv_rec(invoice("INV-A", "OTHER-1")))
    assert rejection_codes(changed) == ["duplicate_invoice_id"]


async def test_corrected_invoice_supersedes_the_original_and_may_reuse_its_number(pool: asyncpg.Pool) -> None:
    await run(pool, inv_rec(invoice("INV-A", "INV-0042")))
    correction = await run(pool, inv_rec(invoice("INV-A2", "INV-0042", replaces_invoice_id="INV-A")))
    [event] = emitted(correction, "invoice.accepted")
    assert event["data"]["replaces_invoice_id"] == "INV-A"
    assert event["data"]["suspected_duplicate_of"] == []
    second = await run(pool, inv_rec(invoice("INV-A3", "INV-9", replaces_invoice_id="INV-A")))
    assert rejection_codes(second) == ["already_superseded"]
    unknown = await run(pool, inv_rec(invoice("INV-A4", "INV-10", replaces_invoice_id="NOPE")))
    assert rejection_codes(unknown) == ["unknown_replaced_invoice"]


async def test_duplicates_are_race_free_across_instances(pool: asyncpg.Pool) -> None:
    """Two consumer instances, two transactions, the same number at the same time: one wins."""

    async def instance(invoice_id: str, number: str) -> BatchResult:
        for _ in range(5):  # the consumer runs a batch that lost the race again, record by record
            try:
                return await run(pool, inv_rec(invoice(invoice_id, number)))
            except (asyncpg.UniqueViolationError, store.ConcurrentWrite):
                continue
        raise AssertionError("never settled")

    a, b = await asyncio.gather(instance("RACE-A", "R-001"), instance("RACE-B", "r 1"))
    accepted = len(emitted(a, "invoice.accepted")) + len(emitted(b, "invoice.accepted"))
    assert accepted == 1
    assert sorted(rejection_codes(a) + rejection_codes(b)) == ["duplicate_invoice"]


async def test_no_po_invoice_follows_the_business_unit_policy(pool: asyncpg.Pool, tmp_path: Path) -> None:
    no_po = invoice("NOPO-1", "N-1", po_number=None)
    no_po.pop("po_number")
    for line in no_po["lines"]:
        line.pop("po_line_id")
    refused = await run(pool, inv_rec(no_po))
    assert rejection_codes(refused) == ["po_required"]

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "intake:\n  no_po_policy: {default: reject, marketing: no_po_review}\n"
        "  no_po_business_units: {'9930:DE123456789': marketing}\n"
    )
    settings = Settings(service="intake", policy_file=str(policy))
    routed = await run(pool, inv_rec(no_po), settings=settings)
    [event] = emitted(routed, "invoice.accepted")
    assert event["data"]["route_to_no_po_review"] is True
    assert event["data"]["business_unit"] == "marketing"
    assert routed.outbox[0].key == "NOPO-1"


async def test_ubl_invoice_is_mapped_and_accepted(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    result = await run(pool, ubl_rec("UBL-1", UBL_INVOICE.format(number="UBL-0007")))
    [event] = emitted(result, "invoice.accepted")
    data = event["data"]
    assert data["origin"] == "ubl"
    assert data["payee_id"] == PAYEE
    assert data["payable_amount"] == "1000.00"
    assert data["prepaid_amount"] == "25.00"
    assert data["charges"] == [{"type": "freight", "amount": "20.00"}]  # FC, SPEC §12.1
    assert data["lines"][0]["po_line_id"] == "L1"
    assert data["business_unit"] == "engineering"


# --- PO flip -------------------------------------------------------------------------------


async def test_po_flip_invoices_the_remaining_quantities_once(pool: asyncpg.Pool) -> None:
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    await run(pool, inv_rec(invoice()))  # 2 of 10 L1, 1 of 2 L2 already invoiced
    result = await run(pool, flip_rec("F-1"))
    [event] = emitted(result, "invoice.accepted")
    data = event["data"]
    assert data["origin"] == "po_flip" and data["flip_id"] == "F-1"
    assert [(ln["po_line_id"], ln["quantity"]) for ln in data["lines"]] == [("L1", "8"), ("L2", "1")]
    assert data["total_amount"] == "6400.12"
    retried = await run(pool, flip_rec("F-1"), flip_rec("F-1"))  # new event ids: still one invoice
    assert retried.outbox == []


async def test_po_flip_with_given_quantities_and_bad_requests(pool: asyncpg.Pool) -> None:
    unknown = await run(pool, flip_rec("F-0"))
    assert rejection_codes(unknown) == ["unknown_po"]
    await run(pool, po_rec("purchase_order.issued", po_issued()))
    given = await run(pool, flip_rec("F-2", line_quantities={"L1": "3"}))
    [event] = emitted(given, "invoice.accepted")
    assert [(ln["po_line_id"], ln["quantity"], ln["line_amount"]) for ln in event["data"]["lines"]] == [
        ("L1", "3", "2400.00")
    ]
    bad = await run(pool, flip_rec("F-3", line_quantities={"L9": "1", "L2": "0"}))
    assert sorted(rejection_codes(bad)) == ["invalid_po_line_ref", "zero_quantity"]
    unsigned = await run(pool, flip_rec("F-4", signed=False))
    assert unsigned.deadlettered == 1 and emitted(unsigned, "invoice.accepted") == []
