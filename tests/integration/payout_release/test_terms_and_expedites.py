"""SPEC §13.5 (payment terms and due dates) and §13.2 (urgent payouts) through payout_release's
real handlers on a real PostgreSQL (no Kafka): what a run blocks and releases, what an expedite
releases or refuses, and with every reason."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.payout_release.handlers import router
from shared.consumer import BatchResult, RawRecord
from shared.settings import Settings
from testkit.samples.payouts import (
    TREASURER,
    approved,
    eligibility,
    expedite,
    funding,
    held,
    po_closed,
    po_in_force,
    run_requested,
)
from tests.integration.payout_release.test_handlers import available, blocked, inbox_result, released
from tests.support import FrozenClock, deliver, emitted

pytestmark = pytest.mark.integration

_POLICY = Path(tempfile.gettempdir()) / "concord-payout-release-terms-test-policy.yaml"
_POLICY.write_text(
    """payout_release:
  automated_business_units: [BU-A, corporate]
  terms:
    business_units:
      corporate: {pay_on: due_date, take_early_discounts: true}
"""
)
# The shipped roles file: treasurer@example.com has the role treasury.
SETTINGS = Settings(service="payout_release", policy_file=str(_POLICY), payout_run_interval_s=30)


async def send(pool: asyncpg.Pool, *records: RawRecord) -> BatchResult:
    return await deliver(pool, router, *records, settings=SETTINGS)


def po(po_number: str, terms: str | None, business_unit: str = "corporate") -> RawRecord:
    return po_in_force(po_number, business_unit=business_unit, payment_terms=terms)


def on_terms(
    invoice_id: str, po_number: str, issue_date: str, amount: str = "1000.00", **kw: Any
) -> RawRecord:
    kw.setdefault("business_unit", "corporate")
    return approved(invoice_id, amount, po_number=po_number, issue_date=issue_date, **kw)


def refused(result: BatchResult) -> dict[str, list[str]]:
    return {e["data"]["expedite_id"]: e["data"]["reasons"] for e in emitted(result, "expedite.refused")}


def not_before(result: BatchResult) -> dict[str, str | None]:
    return {e["data"]["invoice_id"]: e["data"].get("not_before") for e in emitted(result, "payout.blocked")}


# --- §13.5 payment terms ----------------------------------------------------------------------


async def test_a_corporate_invoice_on_2_10_net30_waits_then_is_paid_with_the_discount(
    pool: asyncpg.Pool, frozen_clock: FrozenClock
) -> None:
    # issued 11-15: the window ends 11-25; lead 2 days → released by the last run before 11-23
    await send(pool, eligibility(), po("PO-T", "2/10 NET30"), funding("5000.00"))
    await send(pool, on_terms("inv-t", "PO-T", "2026-11-15"))

    early = await send(pool, run_requested("run-1"))  # an operator's run does not bypass not_due
    assert released(early) == []
    assert blocked(early) == {"inv-t": ["not_due"]}
    assert not_before(early) == {"inv-t": "2026-11-22"}

    frozen_clock.now = datetime(2026, 11, 22, 0, 0, 5, tzinfo=UTC)
    result = await send(pool, run_requested("run-2"))
    [payout] = released(result)
    assert payout["amount"] == "980.00"
    assert payout["invoices"] == [{"invoice_id": "inv-t", "amount": "980.00", "discount": "20.00"}]
    assert payout.get("expedite") is None
    assert await available(pool) == Decimal("4020.00")  # only the cash leaves


async def test_after_the_window_the_invoice_waits_for_its_due_date_in_full(
    pool: asyncpg.Pool, frozen_clock: FrozenClock
) -> None:
    await send(pool, eligibility(), po("PO-T", "2/10 NET30"), funding("5000.00"))
    await send(pool, on_terms("inv-late", "PO-T", "2026-11-01"))  # window ended 11-11; due 12-01
    result = await send(pool, run_requested("run-1"))
    assert blocked(result) == {"inv-late": ["not_due"]} and not_before(result) == {"inv-late": "2026-11-28"}
    frozen_clock.now = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    [payout] = released(await send(pool, run_requested("run-2")))
    assert payout["invoices"] == [{"invoice_id": "inv-late", "amount": "1000.00"}]  # no discount


@pytest.mark.parametrize(
    ("terms", "business_unit", "paid"),
    [
        ("free text, pay whenever", "corporate", "1000.00"),  # due on receipt: paid at once
        ("DUE_ON_RECEIPT", "corporate", "1000.00"),
        ("2/10 NET30", "BU-A", "1000.00"),  # asap and no discounts: v1 behaviour
    ],
)
async def test_terms_that_do_not_defer_pay_at_once(
    pool: asyncpg.Pool, terms: str, business_unit: str, paid: str
) -> None:
    await send(pool, eligibility(), po("PO-X", terms, business_unit), funding("5000.00"))
    await send(pool, on_terms("inv-x", "PO-X", "2026-11-20", business_unit=business_unit))
    [payout] = released(await send(pool, run_requested("run-1")))
    assert payout["amount"] == paid


# --- §13.2 urgent payouts ----------------------------------------------------------------------


async def test_an_expedite_releases_a_not_due_invoice_at_once_with_the_discount(pool: asyncpg.Pool) -> None:
    await send(pool, eligibility(), po("PO-T", "2/10 NET30"), funding("5000.00"))
    await send(pool, on_terms("inv-t", "PO-T", "2026-11-15"))
    rec = expedite("exp-1", "inv-t")
    result = await send(pool, rec)
    [payout] = released(result)
    assert payout["run_id"] == "expedite-exp-1"
    assert payout["amount"] == "980.00" and payout["invoices"][0]["discount"] == "20.00"
    assert payout["expedite"] == {
        "expedite_id": "exp-1",
        "approved_by": TREASURER,
        "justification": "supplier stops deliveries tomorrow",
    }
    assert await inbox_result(pool, rec) == "expedite_released"
    # idempotent: the same record again, and the same expedite_id under a new event id
    again = await send(pool, rec, expedite("exp-1", "inv-t"))
    assert released(again) == [] and refused(again) == {}
    assert await available(pool) == Decimal("4020.00")
    # a later run does not pay it twice
    assert released(await send(pool, run_requested("run-after"))) == []


async def test_an_expedite_bypasses_not_automated(pool: asyncpg.Pool) -> None:
    await send(pool, eligibility(), po("PO-M", "NET30", "BU-MANUAL"), funding("5000.00"))
    await send(pool, on_terms("inv-m", "PO-M", "2026-11-20", business_unit="BU-MANUAL"))
    assert released(await send(pool, expedite("exp-m", "inv-m")))[0]["amount"] == "1000.00"


@pytest.mark.parametrize(
    ("case", "reasons"),
    [
        ("self_approved_by_a_non_treasurer", ["self_approval", "approver_not_treasury"]),
        ("self_approved_by_the_treasurer", ["self_approval"]),
        ("approver_without_the_role", ["approver_not_treasury"]),
        ("unknown_invoice", ["invoice_unknown"]),
        ("held_invoice", ["not_approved", "missing_receipt"]),
        ("ineligible_payee", ["payee_ineligible", "tax_form_missing"]),
        ("not_enough_funding", ["insufficient_funds"]),
        ("already_released", ["already_released"]),
        ("closed_po", ["po_not_in_force"]),
    ],
)
async def test_a_refused_expedite_names_every_reason_and_pays_nothing(
    pool: asyncpg.Pool, case: str, reasons: list[str]
) -> None:
    await send(pool, po("PO-T", "NET30"), funding("500.00" if case == "not_enough_funding" else "5000.00"))
    if case == "ineligible_payee":
        await send(pool, eligibility("payee-1", False, "tax_form_missing"))
    else:
        await send(pool, eligibility())
    if case == "held_invoice":
        await send(pool, held("inv-1"))
    elif case == "already_released":  # a unit that pays asap: the run releases it
        await send(pool, on_terms("inv-1", "PO-T", "2026-11-20", business_unit="BU-A"))
    elif case != "unknown_invoice":
        await send(pool, on_terms("inv-1", "PO-T", "2026-11-20"))
    if case == "already_released":
        await send(pool, run_requested("run-1"))
    if case == "closed_po":
        await send(pool, po_closed("PO-T"))
    requester, approver = {
        "self_approved_by_a_non_treasurer": ("ap.lead@example.com", "ap.lead@example.com"),
        "self_approved_by_the_treasurer": (TREASURER, TREASURER),
        "approver_without_the_role": ("ap.clerk@example.com", "controller@example.com"),
    }.get(case, ("ap.clerk@example.com", TREASURER))
    before = await available(pool)
    rec = expedite("exp-x", "inv-1", requester, approver)
    result = await send(pool, rec)
    assert refused(result) == {"exp-x": reasons}
    [msg] = [m for m in result.outbox if m.envelope.event_type == "expedite.refused"]
    assert msg.topic == "concord.out.exceptions" and msg.key == "inv-1"
    assert released(result) == []
    assert await available(pool) == before
    assert await inbox_result(pool, rec) == "expedite_refused"
