"""UBL 2.1 / Peppol BIS 3.0 mapping (SPEC §3) and safe parsing, on fixtures written for these tests."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from services.intake.domain import MAX_PAYLOAD_BYTES, invoice_form_reasons
from services.intake.ubl import parse_ubl
from testkit.samples.upstream import UBL_INVOICE

FIXTURES = Path(__file__).parent / "fixtures"
D = Decimal


def test_invoice_maps_every_field_spec_names() -> None:
    result = parse_ubl("UBL-1", UBL_INVOICE.format(number="UBL-0007"))
    assert result.reasons == ()
    inv = result.invoice
    assert inv is not None
    assert (inv.invoice_id, inv.supplier_invoice_number, inv.document_type) == (
        "UBL-1",
        "UBL-0007",
        "invoice",
    )
    assert (inv.payee_id, inv.legal_entity) == ("0088:5790000000001", "9930:DE123456789")
    assert inv.po_number == "PO-1"
    assert inv.currency == "EUR" and str(inv.issue_date) == "2026-03-02"
    [line] = inv.lines
    assert (line.line_id, line.po_line_id, line.quantity, line.unit_price, line.line_amount) == (
        "1",
        "L1",
        D("1"),
        D("800.00"),
        D("800.00"),
    )
    assert line.description == "Developer day"
    assert [(c.type, c.amount) for c in inv.charges] == [("freight", D("20.00"))]  # FC, SPEC §12.1
    assert (inv.tax_total, inv.total_amount, inv.prepaid_amount) == (D("205.00"), D("1025.00"), D("25.00"))
    assert inv.payable_amount == inv.stated_payable_amount == D("1000.00")
    assert invoice_form_reasons(inv) == []


def test_credit_note_with_base_quantity_allowances_rounding_and_two_tax_totals() -> None:
    result = parse_ubl("CN-1", (FIXTURES / "creditnote-jpy.xml").read_text())
    inv = result.invoice
    assert inv is not None, result.reasons
    assert inv.document_type == "credit_note" and inv.currency == "JPY"
    assert inv.legal_entity == "0188:9876543210987"  # no EndpointID: the party identification
    assert len(inv.lines) == 2
    first, second = inv.lines
    assert first.unit_price == D("83.333333")  # 1000 JPY per 12 pieces, at most 6 decimals
    assert first.item_ref == "PEN-12"
    assert second.allowance_charge_amount == D("0")  # +1000 charge, −1000 allowance
    assert inv.tax_total == D("1150")  # the TaxTotal in the document currency, not the EUR one
    assert [(c.type, c.amount) for c in inv.charges] == [("allowance", D("-500"))]  # SPEC §12.1
    assert inv.rounding_amount == D("-50")
    assert inv.payable_amount == D("12600")
    # SPEC §15: a rounding is below one major unit of the currency — 50 yen is not a rounding.
    assert [r.code for r in invoice_form_reasons(inv)] == ["invalid_rounding_amount"]


def test_payable_amount_must_equal_the_computed_one() -> None:
    doc = UBL_INVOICE.format(number="X").replace(
        ">1000.00</cbc:PayableAmount>", ">1025.00</cbc:PayableAmount>"
    )
    inv = parse_ubl("X", doc).invoice
    assert inv is not None
    assert [r.code for r in invoice_form_reasons(inv)] == ["payable_amount_mismatch"]


def test_missing_elements_are_all_reported() -> None:
    doc = (
        UBL_INVOICE.format(number="X")
        .replace("<cbc:IssueDate>2026-03-02</cbc:IssueDate>", "")
        .replace('<cbc:InvoicedQuantity unitCode="DAY">1</cbc:InvoicedQuantity>', "")
        .replace(
            '<cbc:PriceAmount currencyID="EUR">800.00</cbc:PriceAmount>',
            "<cbc:PriceAmount>8e2</cbc:PriceAmount>",
        )
    )
    result = parse_ubl("X", doc)
    assert result.invoice is None
    assert sorted((r.code, r.field) for r in result.reasons) == [
        ("invalid_field", "document:cac:InvoiceLine[0]/cac:Price/cbc:PriceAmount"),
        ("missing_field", "document:cac:InvoiceLine[0]/cbc:InvoicedQuantity"),
        ("missing_field", "document:cbc:IssueDate"),
    ]


def test_older_ubl_without_currency_code_or_tax_inclusive_amount() -> None:
    doc = (
        UBL_INVOICE.format(number="X")
        .replace("<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>", "")
        .replace('<cbc:TaxInclusiveAmount currencyID="EUR">1025.00</cbc:TaxInclusiveAmount>', "")
    )
    inv = parse_ubl("X", doc).invoice
    assert inv is not None
    assert inv.currency == "EUR" and inv.total_amount == D("1025.00")
    assert invoice_form_reasons(inv) == []


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (
            "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
            "unsafe_document",
        ),
        (
            "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;&a;'>]><x>&b;</x>",
            "unsafe_document",
        ),
        ("<?xml version='1.0'?><!DOCTYPE x SYSTEM 'http://attacker.example/x.dtd'><x/>", "unsafe_document"),
        ("<x><y></x>", "invalid_document"),
        ("not xml at all", "invalid_document"),
        ("<Invoice xmlns='urn:other'/>", "invalid_document"),
        ("<Invoice/>", "invalid_document"),
    ],
)
def test_unsafe_or_unreadable_documents_are_refused(document: str, code: str) -> None:
    result = parse_ubl("X", document)
    assert result.invoice is None
    assert [r.code for r in result.reasons] == [code]


def test_document_over_the_size_cap_is_not_parsed() -> None:
    result = parse_ubl("X", "<x>" + "a" * MAX_PAYLOAD_BYTES + "</x>")
    assert [r.code for r in result.reasons] == ["payload_too_large"]
