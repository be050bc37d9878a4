"""SPEC §12.1 charge codes and §12.2 Peppol Order / UBL ReceiptAdvice → JSON, table-driven, pure.

Fixtures: tests/fixtures/peppol/ (copies of public Peppol examples, see its SOURCES.md) and the
documents testkit.documents writes."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from services.intake.config import parse_intake_section
from services.intake.domain.charges import DEFAULT_CHARGE_CODES, charge_type, document_charge
from services.intake.ubl import parse_ubl
from services.intake.ubl_order import parse_order
from services.intake.ubl_receipt import parse_receipt_advice
from shared.config import ConfigError
from shared.contracts import inbound as i
from testkit import documents as doc
from testkit.samples import upstream

FIXTURES = Path(__file__).parents[2] / "fixtures" / "peppol"


def order(document: str, **changes: Any) -> i.PurchaseOrderSubmittedUbl:
    data = upstream.po_ubl(document, business_unit="procurement")
    return i.PurchaseOrderSubmittedUbl.model_validate(data | changes)


def advice(document: str, **changes: Any) -> i.ReceiptRecordedUbl:
    return i.ReceiptRecordedUbl.model_validate(
        doc.receipt_recorded_ubl(document, recorded_by="dock@x") | changes
    )


# --- §12.1 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("FC", "freight"),
        ("ADK", "freight"),
        ("DL", "freight"),
        ("SH", "handling"),
        ("PC", "handling"),
        ("ABL", "handling"),
        ("LA", "handling"),
        (" fc ", "freight"),  # codes compare trimmed and upper-cased
        ("AAA", "other"),  # any other code
        (None, "other"),  # no code
    ],
)
def test_uncl7161_codes_map_to_the_pos_charge_types(code: str | None, expected: str) -> None:
    assert charge_type(code, DEFAULT_CHARGE_CODES) == expected


@pytest.mark.parametrize(
    ("is_charge", "code", "expected"),
    [
        (True, "FC", ("freight", D("100"))),
        (False, "95", ("allowance", D("-100"))),  # UNCL5189 discount: lowers what is paid
        (False, "FC", ("allowance", D("-100"))),  # an allowance is never a charge type
    ],
)
def test_charges_are_positive_and_allowances_negative(
    is_charge: bool, code: str, expected: tuple[str, D]
) -> None:
    charge = document_charge(is_charge, D("100"), code, DEFAULT_CHARGE_CODES)
    assert (charge.type, charge.amount) == expected


def test_the_policy_file_replaces_the_mapping() -> None:
    config = parse_intake_section({"charge_codes": {"fc": "handling"}, "order_validity_days": 30})
    assert dict(config.charge_codes) == {"FC": "handling"}
    assert config.order_validity_days == 30
    assert parse_intake_section({}).charge_codes == DEFAULT_CHARGE_CODES


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"charge_codes": {"FC": "shipping"}}, "intake.charge_codes.FC"),
        ({"charge_codes": ["FC"]}, "intake.charge_codes"),
        ({"order_validity_days": 0}, "intake.order_validity_days"),
        ({"order_validity_days": "365"}, "intake.order_validity_days"),
    ],
)
def test_a_bad_mapping_stops_the_start_naming_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_intake_section(section)
    assert key in str(raised.value)


def test_the_norwegian_invoice_charges_are_freight_and_an_allowance() -> None:
    parsed = parse_ubl("INV-NO", (FIXTURES / "Norwegian-example-1.xml").read_text(encoding="utf-8"))
    assert parsed.invoice is not None, parsed.reasons
    assert [(c.type, c.amount) for c in parsed.invoice.charges] == [
        ("freight", D("100")),
        ("allowance", D("-100")),
    ]
    assert parsed.invoice.payable_amount == D("802.00")


# --- §12.2 orders -------------------------------------------------------------------------------


def test_the_peppol_use_case_1_order_maps_every_field() -> None:
    translation = parse_order(order((FIXTURES / "UC1_Order.xml").read_text(encoding="utf-8")))
    po = translation.model
    assert isinstance(po, i.PurchaseOrderIssued), translation.reasons
    assert (po.po_number, po.version, po.currency) == ("1", 1, "EUR")
    assert (po.legal_entity, po.payee_id) == ("0088:7300010000001", "0192:987654325")
    assert (str(po.effective_from), str(po.effective_to)) == ("2013-07-01", "2013-07-30")
    assert po.sow_ref is not None and (po.sow_ref.id, po.sow_ref.version) == ("C1", 1)
    assert [(ln.line_id, ln.item_ref, ln.quantity, ln.unit_of_measure, ln.unit_price) for ln in po.lines] == [
        ("1", "SN-33", D("10"), "NAR", D("4")),
        ("2", "SN-34", D("5"), "NAR", D("6")),
        ("3", "SN-35", D("15"), "NAR", D("3")),
    ]
    assert [ln.description for ln in po.lines] == ["Brown sauce", "White sauce", "Pepper sauce"]
    assert {ln.category for ln in po.lines} == {"goods"}
    assert (po.business_unit, po.created_by, po.approved_by) == (
        "procurement",
        "buyer@example.com",
        "manager@example.com",
    )


@pytest.mark.parametrize(
    ("line", "field", "expected"),
    [
        (doc.ubl_order_line("L1", "3", "10.00", item_id="SKU"), "item_ref", "SKU"),
        (doc.ubl_order_line("L1", "3", "10.00", name="Brown  sauce"), "item_ref", "Brown-sauce"),
        (doc.ubl_order_line("L1", "3", "10.00", name="Pen"), "description", "Pen"),
        (doc.ubl_order_line("L1", "3", "1000", base_quantity="12"), "unit_price", D("83.333333")),
        (doc.ubl_order_line("L1", "3", "1500", base_quantity="3"), "unit_price", D("500")),
        (doc.ubl_order_line("L1", "3", "10.00", unit="KGM"), "unit_of_measure", "KGM"),
    ],
    ids=["seller-id", "name-as-id", "name-as-description", "per-base-quantity", "whole-per-base", "unit"],
)
def test_order_line_mapping(line: str, field: str, expected: Any) -> None:
    po = parse_order(order(doc.ubl_order("PO-1", [line]))).model
    assert isinstance(po, i.PurchaseOrderIssued)
    assert getattr(po.lines[0], field) == expected


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"end_date": None}, "effective_to", "2027-01-02"),  # issue date + 365 days
        ({"contract_id": None}, "sow_ref", None),
        ({"payment_terms": "Net 30"}, "payment_terms", "Net 30"),
        (
            {"charges": [doc.ubl_charge("PC", "5.00"), doc.ubl_charge(None, "2.00")]},
            "charges",
            [("handling", D("5.00")), ("other", D("2.00"))],
        ),
        (
            {"charges": [doc.ubl_charge("95", "5.00", charge=False)]},
            "charges",
            [],
        ),  # an allowance allows nothing
        ({"seller": "payee-1"}, "payee_id", "payee-1"),  # no schemeID: the bare id
    ],
    ids=["validity-default", "no-contract", "payment-terms", "charges", "allowance", "bare-endpoint"],
)
def test_order_header_mapping(changes: dict[str, Any], field: str, expected: Any) -> None:
    po = parse_order(
        order(doc.ubl_order("PO-1", [doc.ubl_order_line("L1", "1", "1", item_id="X")], **changes))
    ).model
    assert isinstance(po, i.PurchaseOrderIssued)
    value = getattr(po, field)
    if field == "effective_to":
        value = str(value)
    if field == "charges":
        value = [(c.type, c.amount) for c in value]
    assert value == expected


def test_order_validity_days_come_from_the_policy() -> None:
    document = doc.ubl_order("PO-1", [doc.ubl_order_line("L1", "1", "1", item_id="X")], end_date=None)
    po = parse_order(order(document), validity_days=30).model
    assert isinstance(po, i.PurchaseOrderIssued) and str(po.effective_to) == "2026-02-01"


def test_the_amounts_common_currency_stands_in_for_a_missing_document_currency() -> None:
    document = doc.ubl_order(
        "PO-1", [doc.ubl_order_line("L1", "1", "1", item_id="X", currency="SEK")], currency=None
    )
    po = parse_order(order(document)).model
    assert isinstance(po, i.PurchaseOrderIssued) and po.currency == "SEK"


def test_a_bad_order_lists_every_reason_at_its_xml_path() -> None:
    document = doc.ubl_order(
        "PO-1",
        [
            doc.ubl_order_line("L1", "1", None, item_id="X"),
            doc.ubl_order_line("L2", "abc", "5", item_id="Y"),
            doc.ubl_order_line("L3", "-2", "5", item_id="Z"),
        ],
        currency=None,
        seller="",
    ).replace(' currencyID="EUR"', "")
    translation = parse_order(order(document, approved_by="buyer@example.com"))
    assert translation.model is None
    assert {(r.code, r.field) for r in translation.reasons} == {
        ("missing_currency", "document:cbc:DocumentCurrencyCode"),
        ("missing_field", "document:cac:SellerSupplierParty/cac:Party/cbc:EndpointID"),
        ("missing_price", "document:cac:OrderLine[0]/cac:LineItem/cac:Price/cbc:PriceAmount"),
        ("invalid_field", "document:cac:OrderLine[1]/cac:LineItem/cbc:Quantity"),
        ("sod_violation", "approved_by"),
    }


# --- §12.2 receipt advice -------------------------------------------------------------------------


def test_the_peppol_use_case_7_receipt_counts_only_accepted_goods() -> None:
    translation = parse_receipt_advice(
        advice((FIXTURES / "ReceiptAdvice_Example_UseCase_7.xml").read_text(encoding="utf-8"))
    )
    receipt = translation.model
    assert isinstance(receipt, i.ReceiptRecorded), translation.reasons
    assert (receipt.receipt_id, receipt.po_number, receipt.kind) == ("5658999", "AEG012345", "goods_receipt")
    assert receipt.received_at.isoformat() == "2021-09-11T12:00:00+00:00"  # no offset: UTC
    assert [(ln.receipt_line_id, ln.po_line_id, ln.quantity) for ln in receipt.lines] == [("1", "1", D("80"))]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            doc.ubl_receipt_advice(
                "R", "PO-1", [doc.ubl_receipt_line("1", None, "1"), doc.ubl_receipt_line("2", None, "1")]
            ),
            {
                ("missing_po_line_ref", "document:cac:ReceiptLine[0]/cac:OrderLineReference/cbc:LineID"),
                ("missing_po_line_ref", "document:cac:ReceiptLine[1]/cac:OrderLineReference/cbc:LineID"),
            },
        ),
        (
            doc.ubl_receipt_advice("R", None, [doc.ubl_receipt_line("1", "L1", "1")]),
            {("missing_po_reference", "document:cac:OrderReference/cbc:ID")},
        ),
        (
            doc.ubl_receipt_advice("R", "PO-1", [doc.ubl_receipt_line("1", "L1", "2", rejected="2")]),
            {("nothing_accepted", "document:cac:ReceiptLine")},
        ),
        (
            doc.ubl_receipt_advice("R", "PO-1", [doc.ubl_receipt_line("1", "L1", "1")], issue_time="noon"),
            {("invalid_field", "document:cbc:IssueTime")},
        ),
        (
            doc.ubl_receipt_advice("", "PO-1", [doc.ubl_receipt_line("1", "L1", "x")]),
            {
                ("missing_field", "document:cbc:ID"),
                ("invalid_field", "document:cac:ReceiptLine[0]/cbc:ReceivedQuantity"),
            },
        ),
    ],
    ids=["no-line-refs", "no-po-reference", "all-rejected", "bad-time", "no-id-bad-quantity"],
)
def test_a_bad_receipt_advice_lists_every_reason_at_its_xml_path(
    document: str, expected: set[tuple[str, str]]
) -> None:
    translation = parse_receipt_advice(advice(document))
    assert translation.model is None
    assert {(r.code, r.field) for r in translation.reasons} == expected


def test_receipt_lines_agreeing_on_their_order_give_the_po() -> None:
    document = doc.ubl_receipt_advice(
        "R",
        None,
        [
            doc.ubl_receipt_line("1", "L1", "1", po_number="PO-7"),
            doc.ubl_receipt_line("2", "L2", "3", po_number="PO-7"),
        ],
    )
    receipt = parse_receipt_advice(advice(document, kind="service_completion")).model
    assert isinstance(receipt, i.ReceiptRecorded)
    assert (receipt.po_number, receipt.kind, len(receipt.lines)) == ("PO-7", "service_completion", 2)


@pytest.mark.parametrize(
    "document",
    [
        '<!DOCTYPE x [<!ENTITY a "b">]>'
        '<ReceiptAdvice xmlns="urn:oasis:names:specification:ubl:schema:xsd:ReceiptAdvice-2"/>',
        '<!DOCTYPE x SYSTEM "http://example.com/x.dtd"><ReceiptAdvice/>',
    ],
)
def test_a_dtd_in_a_receipt_advice_is_refused_unread(document: str) -> None:
    assert [r.code for r in parse_receipt_advice(advice(document)).reasons] == ["unsafe_document"]
