"""Real Peppol documents through the real services (their handlers on real PostgreSQL, no Kafka):
SPEC §12.1 and §12.2.

What intake publishes goes on to matching and payout_release exactly as published, and what
matching decides goes on to payout_release; the outcome is checked where a user sees it — a
`payout.released` and its amount, a hold, or a `document.rejected` and its reasons.

The Norwegian example invoice (tests/fixtures/peppol/Norwegian-example-1.xml, a copy of the
Peppol BIS Billing 3 national example: freight charge `FC` 100, promotion discount `95` 100,
prepaid 1,000, rounding 0.22) used to be held `unexpected_charge` against a PO allowing freight,
handling and other charges, because intake copied the raw UNCL7161 code into the charge type.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.intake.handlers import router as intake_router
from services.matching.config import MatchingConfig
from services.matching.handlers import router as matching_router
from services.payout_release.handlers import router as payout_router
from shared.consumer import BatchResult, RawRecord
from shared.settings import Settings
from shared.topics import (
    IN_COMMANDS,
    IN_INVOICES,
    IN_PURCHASE_ORDERS,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
)
from testkit import documents as doc
from testkit.records import forwarded
from testkit.samples import payouts
from testkit.samples.upstream import ENTITY, PAYEE, po_ubl_rec, receipt_ubl_rec
from tests.support import FrozenClock, deliver, emitted, freeze_clock, record, scratch_pool

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "peppol"
NORWEGIAN = (FIXTURES / "Norwegian-example-1.xml").read_text(encoding="utf-8")
# The parties of the Norwegian example, as intake names them (`<schemeID>:<EndpointID>`).
SUPPLIER = "0192:123456785"
CUSTOMER = "0192:987654325"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

# payout_release with every business unit automated, whatever deploy/policy.yaml says.
_POLICY = Path(tempfile.gettempdir()) / "concord-peppol-test-policy.yaml"
_POLICY.write_text("matching: {}\n")
PAYOUT_SETTINGS = Settings(service="payout_release", policy_file=str(_POLICY), payout_run_interval_s=30)
MATCHING_CONFIG = MatchingConfig.load(Settings(service="matching"))


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    return freeze_clock(monkeypatch, NOW)


@dataclass
class Stack:
    intake: asyncpg.Pool
    matching: asyncpg.Pool
    payout: asyncpg.Pool

    async def send(self, *records: RawRecord) -> tuple[BatchResult, BatchResult | None]:
        """Intake handles the records; its documents go on to matching and payout_release, and
        matching's decisions on to payout_release."""
        first = await deliver(self.intake, intake_router, *records, settings=Settings(service="intake"))
        documents = forwarded(first.outbox, INTAKE_DOCUMENTS)
        if not documents:
            return first, None
        second = await deliver(self.matching, matching_router, *documents, config=MATCHING_CONFIG)
        await self.to_payout(*documents, *forwarded(second.outbox, MATCHING_DECISIONS))
        return first, second

    async def to_payout(self, *records: RawRecord) -> BatchResult:
        return await deliver(self.payout, payout_router, *records, settings=PAYOUT_SETTINGS)


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with (
        scratch_pool("intake") as intake,
        scratch_pool("matching") as matching,
        scratch_pool("payout_release") as payout,
    ):
        yield Stack(intake, matching, payout)


@pytest.fixture
async def intake() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("intake") as pool:
        yield pool


async def to_intake(pool: asyncpg.Pool, *records: RawRecord) -> BatchResult:
    return await deliver(pool, intake_router, *records, settings=Settings(service="intake"))


def rejection(result: BatchResult) -> list[dict[str, str]]:
    [rejected] = emitted(result, "document.rejected")
    reasons: list[dict[str, str]] = rejected["data"]["reasons"]
    return reasons


def norwegian_po(**changes: Any) -> RawRecord:
    """PO 123 for the Norwegian invoice's five order lines, allowing freight, handling and other
    charges; two-way, so the invoice alone decides."""
    data = doc.purchase_order(
        "123",
        legal_entity=CUSTOMER,
        business_unit="it",
        payee_id=SUPPLIER,
        currency="NOK",
        effective_from="2013-01-01",
        effective_to="2027-12-31",
        created_by="buyer@example.com",
        approved_by="manager@example.com",
        approved_at="2013-01-02T09:00:00Z",
        match_mode="two_way",
        lines=[
            doc.po_line("1", "JB007", "goods", "1", "1273"),
            doc.po_line("2", "JB010", "goods", "1", "25"),
            doc.po_line("3", "JB009", "goods", "2", "2.48"),
            doc.po_line("4", "JB011", "goods", "250", "0.75"),
            doc.po_line("5", "JB008", "goods", "1", "3.96"),
        ],
        charges=[
            {"type": "freight", "amount": "100"},
            {"type": "handling", "amount": "50"},
            {"type": "other", "amount": "50"},
        ],
    )
    data.update(changes)
    return record(IN_PURCHASE_ORDERS, "purchase_order.issued", data, key="123")


def payable_world() -> list[RawRecord]:
    """The supplier eligible, and NOK funding for the customer's payouts."""
    return [
        payouts.eligibility(SUPPLIER, at=NOW, payout_account_ref="tok-no-1"),
        payouts.funding("5000.00", "acct-nok-1", "FND-NO-1", CUSTOMER, currency="NOK", at=NOW),
    ]


async def test_the_norwegian_example_is_approved_and_paid_exactly_its_payable_amount(stack: Stack) -> None:
    await stack.send(norwegian_po())
    await stack.to_payout(*payable_world())

    intake, matching = await stack.send(
        record(IN_INVOICES, "invoice.submitted_ubl", doc.ubl_submission("INV-NO-1", NORWEGIAN), key=SUPPLIER)
    )

    [accepted] = emitted(intake, "invoice.accepted")
    assert accepted["data"]["charges"] == [
        {"type": "freight", "amount": "100"},  # FC
        {"type": "allowance", "amount": "-100"},  # promotion discount: lowers what is paid
    ]
    assert accepted["data"]["payable_amount"] == "802.00"
    assert matching is not None
    assert emitted(matching, "invoice.held") == []
    [approved] = emitted(matching, "invoice.approved_to_pay")
    assert approved["data"]["payable_amount"] == "802.00"

    run = record(
        IN_COMMANDS, "payout_run.requested", doc.payout_run("run-no-1", requested_by="treasury@example.com")
    )
    [payout] = [e["data"] for e in emitted(await stack.to_payout(run), "payout.released")]
    assert (payout["payee_id"], payout["currency"], payout["amount"]) == (SUPPLIER, "NOK", "802.00")
    assert payout["invoices"] == [{"invoice_id": "INV-NO-1", "amount": "802.00"}]


async def test_a_charge_the_po_does_not_allow_is_still_held(stack: Stack) -> None:
    """The mapping makes FC freight; a PO without a freight allowance holds it, as before."""
    await stack.send(norwegian_po(charges=[{"type": "handling", "amount": "100"}]))
    _, matching = await stack.send(
        record(IN_INVOICES, "invoice.submitted_ubl", doc.ubl_submission("INV-NO-2", NORWEGIAN), key=SUPPLIER)
    )
    assert matching is not None
    [held] = emitted(matching, "invoice.held")
    assert {h["reason"] for h in held["data"]["holds"]} == {"unexpected_charge"}


# --- §12.2: a Peppol Order and a UBL ReceiptAdvice -------------------------------------------------

ORDER = doc.ubl_order(
    "PO-UBL-1",
    [
        doc.ubl_order_line("L1", "10", "80.00", item_id="SKU-1", name="Sauce"),
        doc.ubl_order_line("L2", "2", "1500.00", item_id="SKU-2", name="Laptop", base_quantity="3"),
    ],
    contract_id="SOW-9",
    payment_terms="30 days net",
    charges=[doc.ubl_charge("FC", "25.00"), doc.ubl_charge("95", "10.00", charge=False)],
)


async def test_a_peppol_order_comes_into_force_as_the_json_po_it_stands_for(stack: Stack) -> None:
    intake, _ = await stack.send(po_ubl_rec(ORDER, "PO-UBL-1"))

    [in_force] = emitted(intake, "purchase_order.version_in_force")
    po = in_force["data"]["po"]
    assert {k: po[k] for k in ("po_number", "version", "payee_id", "legal_entity", "currency")} == {
        "po_number": "PO-UBL-1",
        "version": 1,
        "payee_id": PAYEE,
        "legal_entity": ENTITY,
        "currency": "EUR",
    }
    assert (po["effective_from"], po["effective_to"]) == ("2026-01-02", "2026-12-31")
    assert po["sow_ref"] == {"id": "SOW-9", "version": 1}
    assert po["payment_terms"] == "30 days net"
    assert [
        (ln["line_id"], ln["item_ref"], ln["quantity"], ln["unit_price"], ln["unit_of_measure"])
        for ln in po["lines"]
    ] == [
        ("L1", "SKU-1", "10", "80.00", "EA"),
        ("L2", "SKU-2", "2", "500", "EA"),  # 1500.00 per 3
    ]
    assert {ln["category"] for ln in po["lines"]} == {"goods"}
    assert po["charges"] == [{"type": "freight", "amount": "25.00"}]  # the allowance allows nothing

    again, _ = await stack.send(po_ubl_rec(ORDER, "PO-UBL-1"))
    assert emitted(again) == []  # a redelivered document is a duplicate, nothing published twice


async def test_an_order_and_its_receipt_advice_get_an_invoice_approved(stack: Stack) -> None:
    await stack.send(po_ubl_rec(ORDER, "PO-UBL-1", match_mode="three_way"))
    advice = doc.ubl_receipt_advice(
        "GR-UBL-1",
        "PO-UBL-1",
        [doc.ubl_receipt_line("1", "L1", "12", rejected="2")],
        issue_time="10:30:00+01:00",
    )
    intake, _ = await stack.send(receipt_ubl_rec(advice, "PO-UBL-1"))
    [accepted] = emitted(intake, "receipt.accepted")
    assert accepted["data"]["lines"] == [{"receipt_line_id": "1", "po_line_id": "L1", "quantity": "10"}]
    assert accepted["data"]["received_at"] == "2026-03-01T10:30:00+01:00"  # IssueDate + IssueTime
    assert (accepted["data"]["kind"], accepted["data"]["recorded_by"]) == (
        "goods_receipt",
        "dock@example.com",
    )

    invoice = doc.invoice(
        "INV-UBL-1",
        number="S-1",
        payee_id=PAYEE,
        legal_entity=ENTITY,
        currency="EUR",
        issue_date="2026-03-02",
        po_number="PO-UBL-1",
        lines=[doc.invoice_line("1", "L1", "10", "80.00", "800.00")],
        tax_total="0.00",
        total_amount="800.00",
    )
    _, matching = await stack.send(record(IN_INVOICES, "invoice.submitted", invoice, key=PAYEE))
    assert matching is not None
    assert [e["data"]["invoice_id"] for e in emitted(matching, "invoice.approved_to_pay")] == ["INV-UBL-1"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            doc.ubl_order("PO-BAD", []),
            {("missing_lines", "document:cac:OrderLine")},
        ),
        (
            doc.ubl_order(
                "PO-BAD",
                [
                    doc.ubl_order_line("L1", "1", None, item_id="X"),
                    doc.ubl_order_line("L2", "0", "5", item_id="Y"),
                ],
            ),
            {
                ("missing_price", "document:cac:OrderLine[0]/cac:LineItem/cac:Price/cbc:PriceAmount"),
                ("zero_quantity", "document:cac:OrderLine[1]/cac:LineItem/cbc:Quantity"),
            },
        ),
        (
            doc.ubl_order("PO-BAD", [doc.ubl_order_line("L1", "1", "5", item_id="X", currency="USD")]),
            {
                (
                    "currency_mismatch",
                    "document:cac:OrderLine[0]/cac:LineItem/cac:Price/cbc:PriceAmount/@currencyID",
                )
            },
        ),
        (
            doc.ubl_order("PO-BAD", [doc.ubl_order_line("L1", "1", "5", item_id="X")], currency=None).replace(
                ' currencyID="EUR"', ""
            ),
            {("missing_currency", "document:cbc:DocumentCurrencyCode")},
        ),
        (
            doc.ubl_order("PO-BAD", [doc.ubl_order_line("L1", "1", "5", item_id="X")], end_date="2025-01-01"),
            {("invalid_effective_dates", "document:cac:ValidityPeriod/cbc:EndDate")},
        ),
    ],
    ids=["no-lines", "no-price-and-zero-quantity", "other-currency", "no-currency", "ends-before-it-starts"],
)
async def test_a_bad_order_is_rejected_with_every_reason_at_its_xml_path(
    intake: asyncpg.Pool, document: str, expected: set[tuple[str, str]]
) -> None:
    result = await to_intake(intake, po_ubl_rec(document, "PO-BAD"))
    assert {(r["code"], r["field"]) for r in rejection(result)} == expected
    assert emitted(result, "purchase_order.version_in_force") == []


async def test_an_order_approved_by_its_creator_is_a_sod_violation(intake: asyncpg.Pool) -> None:
    result = await to_intake(intake, po_ubl_rec(ORDER, "PO-UBL-1", approved_by="Buyer@Example.com"))
    assert {r["code"] for r in rejection(result)} == {"sod_violation"}


async def test_an_order_under_another_key_is_refused(intake: asyncpg.Pool) -> None:
    result = await to_intake(intake, po_ubl_rec(ORDER, "PO-OTHER"))
    assert {(r["code"], r["field"]) for r in rejection(result)} == {("key_mismatch", "document:cbc:ID")}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            doc.ubl_receipt_advice("GR-2", "PO-UBL-1", [doc.ubl_receipt_line("1", None, "5")]),
            {("missing_po_line_ref", "document:cac:ReceiptLine[0]/cac:OrderLineReference/cbc:LineID")},
        ),
        (
            doc.ubl_receipt_advice(
                "GR-2",
                None,
                [
                    doc.ubl_receipt_line("1", "L1", "5", po_number="PO-UBL-1"),
                    doc.ubl_receipt_line("2", "L2", "1", po_number="PO-X"),
                ],
            ),
            {("missing_po_reference", "document:cac:OrderReference/cbc:ID")},
        ),
        (
            doc.ubl_receipt_advice("GR-2", "PO-UBL-1", [doc.ubl_receipt_line("1", "L9", "5")]),
            {("invalid_po_line_ref", "document:cac:ReceiptLine[0]/cac:OrderLineReference/cbc:LineID")},
        ),
        (
            doc.ubl_receipt_advice("GR-2", "PO-UBL-1", [doc.ubl_receipt_line("1", "L1", "5", rejected="6")]),
            {("invalid_field", "document:cac:ReceiptLine[0]/cbc:RejectedQuantity")},
        ),
        (
            doc.ubl_receipt_advice("GR-2", "PO-UBL-1", []),
            {("missing_lines", "document:cac:ReceiptLine")},
        ),
    ],
    ids=[
        "no-order-line-ref",
        "lines-name-two-orders",
        "unknown-po-line",
        "more-rejected-than-received",
        "no-lines",
    ],
)
async def test_a_bad_receipt_advice_is_rejected_with_every_reason_at_its_xml_path(
    intake: asyncpg.Pool, document: str, expected: set[tuple[str, str]]
) -> None:
    await to_intake(intake, po_ubl_rec(ORDER, "PO-UBL-1"))
    result = await to_intake(intake, receipt_ubl_rec(document, "PO-UBL-1"))
    assert {(r["code"], r["field"]) for r in rejection(result)} == expected
    assert emitted(result, "receipt.accepted") == []


async def test_receipt_lines_naming_one_order_stand_in_for_the_header_reference(intake: asyncpg.Pool) -> None:
    await to_intake(intake, po_ubl_rec(ORDER, "PO-UBL-1"))
    advice = doc.ubl_receipt_advice(
        "GR-3",
        None,
        [
            doc.ubl_receipt_line("1", "L1", "4", po_number="PO-UBL-1"),
            doc.ubl_receipt_line("2", "L2", "1", rejected="1", po_number="PO-UBL-1"),  # nothing accepted
        ],
    )
    result = await to_intake(intake, receipt_ubl_rec(advice, "PO-UBL-1", kind="service_completion"))
    [accepted] = emitted(result, "receipt.accepted")
    assert (accepted["data"]["po_number"], accepted["data"]["kind"]) == ("PO-UBL-1", "service_completion")
    assert accepted["data"]["lines"] == [{"receipt_line_id": "1", "po_line_id": "L1", "quantity": "4"}]


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("<Order", "invalid_document"),
        (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            '<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2">&lol2;</Order>',
            "unsafe_document",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE Order [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            '<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"><x>&xxe;</x></Order>',
            "unsafe_document",
        ),
        (ORDER.replace("</Order>", "<!--" + "x" * 1_100_000 + "--></Order>"), "payload_too_large"),
        (
            doc.ubl_receipt_advice("GR-1", "PO-UBL-1", [doc.ubl_receipt_line("1", "L1", "1")]),
            "invalid_document",
        ),
    ],
    ids=["malformed", "billion-laughs", "external-entity", "over-the-size-cap", "not-an-order"],
)
async def test_an_unsafe_or_broken_order_is_refused_and_intake_goes_on(
    intake: asyncpg.Pool, document: str, code: str
) -> None:
    result = await to_intake(intake, po_ubl_rec(document, "PO-UBL-1"), po_ubl_rec(ORDER, "PO-UBL-1"))
    assert [r["code"] for r in rejection(result)] == [code]
    assert len(emitted(result, "purchase_order.version_in_force")) == 1  # the good one next to it
