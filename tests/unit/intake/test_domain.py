"""Intake's pure rules, table-driven: each row is a case an AP clerk or a supplier would recognise."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from services.intake import domain
from services.intake.domain import (
    Charge,
    FlipPo,
    FlipPoLine,
    Invoice,
    InvoiceLine,
    KnownInvoice,
    KnownPo,
    NoPoPolicy,
    PoLineTerms,
    PoTerms,
    ReceiptLineQty,
    VersionSlot,
)

D = Decimal


def line(
    line_id: str = "1", qty: str = "2", price: str = "800.00", amount: str = "1600.00", **kw: Any
) -> InvoiceLine:
    return InvoiceLine(
        line_id=line_id,
        quantity=D(qty),
        unit_price=D(price),
        line_amount=D(amount),
        po_line_id=kw.pop("po_line_id", "L1"),
        **kw,
    )


def inv(**kw: Any) -> Invoice:
    base: dict[str, Any] = dict(
        invoice_id="INV-A",
        supplier_invoice_number="INV-0042",
        payee_id="P1",
        legal_entity="E1",
        document_type="invoice",
        issue_date=date(2026, 3, 1),
        currency="EUR",
        po_number="PO-1",
        lines=(line(),),
        tax_total=D("400.00"),
        total_amount=D("2000.00"),
    )
    base.update(kw)
    return Invoice(**base)


PO = KnownPo("PO-1", payee_id="P1", legal_entity="E1", currency="EUR", business_unit="eng")
POLICY = NoPoPolicy()


def codes(reasons: Any) -> list[str]:
    return sorted(r.code for r in reasons)


# --- invoice numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "normalised"),
    [
        ("INV-0042", "INV42"),
        ("inv 42", "INV42"),
        ("Inv.0042/", "INV42"),
        ("inv_00_42", "INV42"),  # separators go first, then the zeros leading the digit run
        ("INV/000", "INV0"),  # a run of zeros keeps one zero
        ("2026/001", "2026001"),  # zeros inside a run stay: only leading ones go
        ("A0B007", "A0B7"),
        ("0000", "0"),
        ("  x-1  ", "X1"),
        ("---", ""),
    ],
)
def test_section5_steps_of_invoice_number_normalisation(number: str, normalised: str) -> None:
    assert domain.section5_steps(number) == normalised
    # The duplicate key adds the look-alike folding: it agrees wherever §5 agrees.
    assert domain.normalise_invoice_number(number) == domain.normalise_invoice_number(normalised)


@pytest.mark.parametrize(
    "lookalike",
    [
        "INV\u20101\u2010A",  # U+2010 HYPHEN
        "INV\u22121-A",  # U+2212 MINUS SIGN
        "INV-1\u200b-A",  # a zero-width space
        "INV-1-A\u2060",  # a word joiner
        "INV-\uff11-A",  # a full-width digit one
        "\uff29\uff2e\uff36-1-A",  # full-width letters
        "\u0406NV-1-A",  # CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I
        "INV-1-\u0410",  # CYRILLIC CAPITAL LETTER A
        "inv 01 a",
    ],
)
def test_lookalike_invoice_numbers_have_one_duplicate_key(lookalike: str) -> None:
    """SPEC §15: NFKC, format characters removed, dashes to `-`, UTS #39 skeleton."""
    assert domain.normalise_invoice_number(lookalike) == domain.normalise_invoice_number("INV-1-A")


def test_different_numbers_keep_different_keys() -> None:
    keys = {domain.normalise_invoice_number(n) for n in ("INV-1-A", "INV-2-A", "INV-1-B", "INV-11-A")}
    assert len(keys) == 4


def test_number_alone_never_decides_exact_duplicate_key_includes_payee_and_type() -> None:
    a = inv()
    assert a.normalised_number == inv(supplier_invoice_number="inv 42").normalised_number
    assert domain.exact_duplicate_reason(a, "INV-0").code == "duplicate_invoice"


# --- invoice arithmetic and form -------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "changes", "expected"),
    [
        ("valid", {}, []),
        (
            "line amount wrong",
            {"lines": (line(amount="1500.00"),), "total_amount": D("1900.00")},
            ["line_amount_mismatch"],
        ),
        ("total wrong", {"total_amount": D("2000.01")}, ["total_mismatch"]),
        (
            "unit price with 4 decimals rounds per currency",
            {
                "lines": (line(qty="3", price="0.1212", amount="0.36"),),
                "tax_total": D("0"),
                "total_amount": D("0.36"),
            },
            [],
        ),
        (
            "half-even rounding by the sender is accepted",
            {
                "lines": (line(qty="1", price="0.125", amount="0.12"),),
                "tax_total": D("0"),
                "total_amount": D("0.12"),
            },
            [],
        ),
        (
            "a minor unit off is not rounding",
            {
                "lines": (line(qty="1", price="0.125", amount="0.14"),),
                "tax_total": D("0"),
                "total_amount": D("0.14"),
            },
            ["line_amount_mismatch"],
        ),
        (
            "line allowance and charge included",
            {
                "lines": (line(amount="1590.00", allowance_charge_amount=D("-10.00")),),
                "total_amount": D("1990.00"),
            },
            [],
        ),
        (
            "document charges and allowances",
            {
                "charges": (Charge("freight", D("50.00")), Charge("discount", D("-20"))),
                "total_amount": D("2030.00"),
            },
            [],
        ),
        (
            "zero quantity",
            {"lines": (line(qty="0", amount="0.00"),), "tax_total": D("0"), "total_amount": D("0")},
            ["non_positive_total", "zero_quantity"],
        ),
        ("unknown currency", {"currency": "XYZ"}, ["unknown_currency"]),
        (
            "EUR with 3 decimals",
            {"tax_total": D("400.001"), "total_amount": D("2000.001")},
            ["invalid_amount_scale", "invalid_amount_scale"],
        ),
        (
            "JPY takes no decimals",
            {"currency": "JPY", "tax_total": D("400.5"), "total_amount": D("2000.5")},
            ["invalid_amount_scale", "invalid_amount_scale"],
        ),
        ("JPY whole amounts", {"currency": "JPY", "lines": (line(price="800", amount="1600"),)}, []),
        (
            "BHD takes 3 decimals",
            {
                "currency": "BHD",
                "lines": (line(qty="1", price="1.2345", amount="1.235"),),
                "tax_total": D("0.125"),
                "total_amount": D("1.360"),
            },
            [],
        ),
        (
            "duplicate line ids",
            {"lines": (line(), line()), "total_amount": D("3600.00")},
            ["duplicate_line_id"],
        ),
        (
            "negative unit price",
            {
                "lines": (line(price="-800.00", amount="-1600.00"),),
                "tax_total": D("0"),
                "total_amount": D("-1600.00"),
            },
            ["negative_line_amount", "negative_unit_price", "non_positive_total"],
        ),
        ("payable after prepaid is zero", {"prepaid_amount": D("2000.00")}, ["non_positive_total"]),
        ("rounding amount counts", {"prepaid_amount": D("1999.99"), "rounding_amount": D("0.01")}, []),
        ("empty number after normalisation", {"supplier_invoice_number": "--"}, ["invalid_invoice_number"]),
        (
            "stated PayableAmount must match",
            {"stated_payable_amount": D("1999.00")},
            ["payable_amount_mismatch"],
        ),
    ],
)
def test_invoice_form(case: str, changes: dict[str, Any], expected: list[str]) -> None:
    assert codes(domain.invoice_form_reasons(inv(**changes))) == sorted(expected), case


@pytest.mark.parametrize(
    ("case", "lines", "document_type", "expected"),
    [
        ("a return inside an invoice", (line(), line("2", "-1", "800.00", "-800.00")), "invoice", []),
        (
            "a return needs its PO line",
            (line(), line("2", "-1", "800.00", "-800.00", po_line_id=None)),
            "invoice",
            ["return_without_po_line"],
        ),
        (
            "negative amount on a positive quantity",
            (line(), line("2", "1", "0", "-100.00", allowance_charge_amount=D("-100.00"))),
            "invoice",
            ["negative_line_amount"],
        ),
        ("credit note with positive lines", (line(),), "credit_note", []),
        (
            "credit note with a negative line",
            (line(), line("2", "-1", "800.00", "-800.00")),
            "credit_note",
            ["negative_credit_note_line"],
        ),
    ],
)
def test_negative_lines_only_as_spec_allows(
    case: str, lines: tuple[InvoiceLine, ...], document_type: str, expected: list[str]
) -> None:
    total = sum((ln.line_amount for ln in lines), D(0)) + D("400.00")
    invoice = inv(lines=lines, document_type=document_type, total_amount=total)
    assert codes(domain.invoice_form_reasons(invoice)) == sorted(expected), case


def test_invoice_payable_is_total_minus_prepaid_plus_rounding() -> None:
    assert inv(prepaid_amount=D("100.00"), rounding_amount=D("-0.40")).payable_amount == D("1899.60")


# --- PO identity and no-PO policy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"payee_id": "P2"}, ["payee_mismatch"]),
        ({"legal_entity": "E2"}, ["entity_mismatch"]),
        ({"currency": "USD"}, ["currency_mismatch"]),
        (
            {"payee_id": "P2", "legal_entity": "E2", "currency": "USD"},
            ["currency_mismatch", "entity_mismatch", "payee_mismatch"],
        ),
    ],
)
def test_contractor_identity_must_equal_the_pos(changes: dict[str, Any], expected: list[str]) -> None:
    verdict = domain.check_invoice(inv(**changes), PO, POLICY)
    assert codes(verdict.reasons) == expected
    assert verdict.business_unit == "eng"


def test_unknown_po_is_accepted_for_matching_to_hold() -> None:
    verdict = domain.check_invoice(inv(payee_id="anyone"), None, POLICY)
    assert verdict.accepted and verdict.business_unit is None and not verdict.route_to_no_po_review


@pytest.mark.parametrize(
    ("policy", "legal_entity", "accepted", "business_unit"),
    [
        (NoPoPolicy(), "E1", False, None),
        (
            NoPoPolicy(by_business_unit={"mkt": "no_po_review"}, business_unit_by_legal_entity={"E1": "mkt"}),
            "E1",
            True,
            "mkt",
        ),
        (
            NoPoPolicy(by_business_unit={"mkt": "no_po_review"}, business_unit_by_legal_entity={"E1": "mkt"}),
            "E2",
            False,
            None,
        ),
        (
            NoPoPolicy(
                default="no_po_review",
                by_business_unit={"fin": "reject"},
                business_unit_by_legal_entity={"E1": "fin"},
            ),
            "E1",
            False,
            "fin",
        ),
        (NoPoPolicy(default="no_po_review"), "E9", True, None),
    ],
)
def test_no_po_policy_per_business_unit(
    policy: NoPoPolicy, legal_entity: str, accepted: bool, business_unit: str | None
) -> None:
    no_po = inv(po_number=None, legal_entity=legal_entity, lines=(line(po_line_id=None),))
    verdict = domain.check_invoice(no_po, None, policy)
    assert verdict.accepted is accepted
    assert verdict.route_to_no_po_review is accepted
    assert verdict.business_unit == business_unit
    if not accepted:
        assert codes(verdict.reasons) == ["po_required"]


# --- duplicates and corrections ---------------------------------------------------------------


def known(invoice_id: str, number: str = "INV42", **kw: Any) -> KnownInvoice:
    base: dict[str, Any] = dict(
        invoice_id=invoice_id,
        payee_id="P1",
        normalised_number=domain.normalise_invoice_number(number),
        document_type="invoice",
        currency="EUR",
        total_amount=D("2000.00"),
        issue_date=date(2026, 3, 1),
    )
    base.update(kw)
    return KnownInvoice(**base)


def test_suspected_duplicates_same_payee_currency_total_date_other_number() -> None:
    candidates = [
        known("SAME-NUMBER"),  # an exact duplicate, reported as such, not as suspected
        known("OTHER-NUMBER", "INV43"),
        known("OTHER-PAYEE", "INV43", payee_id="P2"),
        known("OTHER-TOTAL", "INV43", total_amount=D("2000.01")),
        known("OTHER-DATE", "INV43", issue_date=date(2026, 3, 2)),
        known("OTHER-CURRENCY", "INV43", currency="USD"),
        known("SUPERSEDED", "INV44", superseded_by="X"),
        known("THE-REPLACED", "INV45"),
        known("ALSO-SUSPECT", "INV46", total_amount=D("2000.0")),
    ]
    found = domain.suspected_duplicates(inv(replaces_invoice_id="THE-REPLACED"), candidates)
    assert found == ["ALSO-SUSPECT", "OTHER-NUMBER"]


@pytest.mark.parametrize(
    ("replaces", "original", "expected"),
    [
        (None, None, []),
        ("INV-0", known("INV-0"), []),
        ("INV-0", None, ["unknown_replaced_invoice"]),
        ("INV-A", known("INV-A"), ["invalid_replacement"]),
        ("INV-0", known("INV-0", payee_id="P2"), ["invalid_replacement"]),
        ("INV-0", known("INV-0", superseded_by="INV-Z"), ["already_superseded"]),
        ("INV-0", known("INV-0", superseded_by="INV-A"), []),  # a redelivery of the same correction
    ],
)
def test_corrections(replaces: str | None, original: KnownInvoice | None, expected: list[str]) -> None:
    assert codes(domain.correction_reasons(inv(replaces_invoice_id=replaces), original)) == expected


# --- purchase orders --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created_by", "approved_by", "expected"),
    [
        ("a", "b", []),
        ("a", "a", ["sod_violation"]),
        ("a", "", ["sod_violation"]),
        ("a", "  ", ["sod_violation"]),
        ("a", None, ["sod_violation"]),
    ],
)
def test_po_segregation_of_duties(created_by: str, approved_by: str | None, expected: list[str]) -> None:
    assert codes(domain.sod_reasons_for_issue(created_by, approved_by)) == expected


@pytest.mark.parametrize(
    ("amended_by", "approved_by", "independent"),
    [("a", "b", True), ("a", "a", False), ("a", None, False), ("a", "", False)],
)
def test_amendment_needs_someone_else(amended_by: str, approved_by: str | None, independent: bool) -> None:
    assert domain.is_independent_approval(amended_by, approved_by) is independent
    assert VersionSlot(2, amended_by, approved_by).approved is independent


TERMS = PoTerms(
    "PO-1",
    1,
    "EUR",
    date(2026, 1, 1),
    date(2026, 12, 31),
    "a",
    (PoLineTerms("L1", D("10"), D("800")),),
    (Charge("freight", D("50.00")),),
)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"currency": "ABC"}, ["unknown_currency"]),
        ({"effective_to": date(2025, 1, 1)}, ["invalid_effective_dates"]),
        (
            {"lines": (PoLineTerms("L1", D("0"), D("1")), PoLineTerms("L1", D("-1"), D("-1")))},
            ["duplicate_line_id", "negative_quantity", "negative_unit_price", "zero_quantity"],
        ),
        ({"charges": (Charge("freight", D("-1.005")),)}, ["invalid_amount_scale", "negative_amount"]),
    ],
)
def test_po_terms(changes: dict[str, Any], expected: list[str]) -> None:
    assert codes(domain.po_terms_reasons(replace(TERMS, **changes))) == expected


@pytest.mark.parametrize(
    ("in_force", "received", "expected"),
    [
        (None, {}, []),
        (None, {1: VersionSlot(1)}, [1]),
        (None, {2: VersionSlot(2, "a", "b")}, []),  # waits for version 1
        (None, {1: VersionSlot(1), 2: VersionSlot(2, "a", "b"), 3: VersionSlot(3, "a", "c")}, [1, 2, 3]),
        (1, {2: VersionSlot(2, "a", None), 3: VersionSlot(3, "a", "b")}, []),  # 3 waits for pending 2
        (1, {2: VersionSlot(2, "a", "b"), 4: VersionSlot(4, "a", "b")}, [2]),  # 4 waits for 3
        (2, {3: VersionSlot(3, "a", "a")}, []),  # self-approved: still pending
    ],
)
def test_versions_come_into_force_strictly_in_order(
    in_force: int | None, received: dict[int, VersionSlot], expected: list[int]
) -> None:
    assert domain.versions_coming_into_force(in_force, received) == expected


def test_po_changes_name_what_changed_by_line_id() -> None:
    old = {
        "po_number": "PO-1",
        "effective_to": "2026-12-31",
        "sow_ref": {"id": "S", "version": "1"},
        "lines": [
            {"line_id": "L1", "quantity": "10", "unit_price": "800.00"},
            {"line_id": "L2", "quantity": "1", "unit_price": "5"},
        ],
        "charges": [{"type": "freight", "amount": "50"}],
        "created_by": "a",
    }
    new = {
        "po_number": "PO-1",
        "effective_to": "2027-06-30",
        "sow_ref": {"id": "S", "version": "2"},
        "lines": [
            {"line_id": "L1", "quantity": "10.0", "unit_price": "850.00"},
            {"line_id": "L3", "quantity": "1", "unit_price": "5"},
        ],
        "charges": [{"type": "freight", "amount": "50.00"}],
        "created_by": "b",
    }
    assert domain.po_changes(old, new) == [
        "effective_to",
        "sow_ref",
        "lines[L1].unit_price",
        "lines[L2]",
        "lines[L3]",
    ]
    assert domain.po_changes(old, old) == []


# --- receipts and requisitions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "known_lines", "expected"),
    [
        ([ReceiptLineQty("R1", "L1", D("1"))], {"L1"}, []),
        ([ReceiptLineQty("R1", "L1", D("1"))], None, []),  # PO not seen yet: matching waits for it
        ([ReceiptLineQty("R1", "L9", D("1"))], {"L1"}, ["invalid_po_line_ref"]),
        (
            [ReceiptLineQty("R1", "L1", D("0")), ReceiptLineQty("R1", "L1", D("-2"))],
            {"L1"},
            ["duplicate_line_id", "negative_quantity", "zero_quantity"],
        ),
    ],
)
def test_receipts(lines: list[ReceiptLineQty], known_lines: set[str] | None, expected: list[str]) -> None:
    assert codes(domain.receipt_reasons(lines, known_lines)) == expected


@pytest.mark.parametrize(
    ("requested_by", "approved_by", "amount", "currency", "expected"),
    [
        ("a", "b", "100.00", "EUR", []),
        ("a", "a", "100.00", "EUR", ["sod_violation"]),
        ("a", "b", "0", "EUR", ["non_positive_amount"]),
        ("a", "b", "100.5", "JPY", ["invalid_amount_scale"]),
        ("a", "b", "100", "QQQ", ["unknown_currency"]),
    ],
)
def test_requisitions(
    requested_by: str, approved_by: str, amount: str, currency: str, expected: list[str]
) -> None:
    assert codes(domain.requisition_reasons(requested_by, approved_by, D(amount), currency)) == expected


# --- PO flip ----------------------------------------------------------------------------------

FLIP_PO = FlipPo(
    "PO-1",
    "P1",
    "E1",
    "EUR",
    (
        FlipPoLine("L1", "DEV", None, D("10"), D("800.00")),
        FlipPoLine("L2", "PEN", "pens", D("3"), D("0.1212")),
    ),
)


def test_flip_invoices_remaining_quantities_at_po_prices() -> None:
    invoice, reasons = domain.build_flip_invoice(
        "F1", FLIP_PO, None, {"L1": D("4"), "L2": D("3")}, date(2026, 5, 1)
    )
    assert reasons == [] and invoice is not None
    assert [(ln.po_line_id, ln.quantity, ln.line_amount) for ln in invoice.lines] == [
        ("L1", D("6"), D("4800.00"))
    ]
    assert invoice.total_amount == invoice.payable_amount == D("4800.00")
    assert invoice.invoice_id == domain.flip_invoice_id("F1") == "flip:F1"
    assert (invoice.payee_id, invoice.legal_entity, invoice.currency) == ("P1", "E1", "EUR")
    assert domain.invoice_form_reasons(invoice) == []


def test_flip_given_quantities_round_per_currency() -> None:
    invoice, _ = domain.build_flip_invoice("F2", FLIP_PO, {"L2": D("3")}, {}, date(2026, 5, 1))
    assert invoice is not None and invoice.lines[0].line_amount == D("0.36")
    assert domain.invoice_form_reasons(invoice) == []


@pytest.mark.parametrize(
    ("po", "quantities", "invoiced", "expected"),
    [
        (FLIP_PO, None, {"L1": D("10"), "L2": D("3")}, ["nothing_to_invoice"]),
        (FLIP_PO, {}, {}, ["nothing_to_invoice"]),
        (FLIP_PO, {"L9": D("1"), "L1": D("0")}, {}, ["invalid_po_line_ref", "zero_quantity"]),
        (replace(FLIP_PO, closed=True), None, {}, ["po_closed"]),
    ],
)
def test_flip_refusals(
    po: FlipPo, quantities: dict[str, Decimal] | None, invoiced: dict[str, Decimal], expected: list[str]
) -> None:
    invoice, reasons = domain.build_flip_invoice("F3", po, quantities, invoiced, date(2026, 5, 1))
    assert invoice is None and codes(reasons) == expected


def test_reason_as_dict_omits_missing_field() -> None:
    assert domain.Reason("x", None, "m").as_dict() == {"code": "x", "message": "m"}
    assert domain.Reason("x", "f", "m").as_dict() == {"code": "x", "field": "f", "message": "m"}


# --- SPEC §15 amounts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"prepaid_amount": D("0.00")}, []),
        ({"prepaid_amount": D("1999.99")}, []),
        ({"prepaid_amount": D("2000.00")}, ["non_positive_total"]),  # nothing left to pay
        ({"prepaid_amount": D("2000.01")}, ["invalid_prepaid_amount", "non_positive_total"]),
        ({"prepaid_amount": D("-990.00")}, ["invalid_prepaid_amount"]),
        ({"rounding_amount": D("0.99")}, []),
        ({"rounding_amount": D("-0.99")}, []),
        ({"rounding_amount": D("1.00")}, ["invalid_rounding_amount"]),
        ({"rounding_amount": D("-990.00")}, ["invalid_rounding_amount"]),
    ],
)
def test_what_adjusts_the_payable_amount_keeps_its_meaning(
    changes: dict[str, Any], expected: list[str]
) -> None:
    assert codes(domain.invoice_form_reasons(inv(**changes))) == sorted(expected)


def test_negative_tax_is_refused() -> None:
    refused = inv(tax_total=D("-400.00"), total_amount=D("1200.00"))
    assert codes(domain.invoice_form_reasons(refused)) == ["negative_tax_total"]


def test_every_amount_and_quantity_times_price_is_bounded_by_max_amount() -> None:
    limit = D("1000.00")
    big = inv(
        lines=(line(qty="2", price="600.00", amount="1200.00"),), tax_total=D("0"), total_amount=D("1200.00")
    )
    fields = {r.field for r in domain.invoice_form_reasons(big, limit) if r.code == "amount_out_of_range"}
    assert fields == {"total_amount", "lines[0].line_amount", "lines[0].unit_price"}
    assert all(r.code != "amount_out_of_range" for r in domain.invoice_form_reasons(big))


def test_pos_and_requisitions_are_bounded_by_max_amount_too() -> None:
    terms = domain.PoTerms(
        "PO-1", 1, "EUR", date(2026, 1, 1), date(2026, 12, 31), "buyer",
        (domain.PoLineTerms("L1", D("20"), D("999999999999999999")),),
    )  # fmt: skip
    assert codes(domain.po_terms_reasons(terms)) == ["amount_out_of_range"]
    assert codes(domain.requisition_reasons("a", "b", D("1000000000.01"), "EUR")) == ["amount_out_of_range"]


def test_sod_people_compare_case_insensitively() -> None:
    assert codes(domain.sod_reasons_for_issue("Buyer.Case@x.com", "buyer.case@X.COM")) == ["sod_violation"]
    assert not domain.is_independent_approval("Buyer.Case@x.com", "BUYER.case@x.com")
    assert domain.is_independent_approval("buyer@x.com", "manager@x.com")
    assert codes(domain.requisition_reasons("Eng@x.com", "eng@x.com", D("10"), "EUR")) == ["sod_violation"]
