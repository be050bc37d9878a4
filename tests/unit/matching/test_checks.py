"""Every check of the SPEC §6 table, one row per case: what the invoice, PO and receipts look like → holds."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.matching import domain as d
from tests.unit.matching.factory import D, invoice, line, po, policy, reasons, receipt, state

GR = (receipt(),)
TWO_WAY_PO = po(match_mode="two_way")
BIG_PO = po(d.PoLine("L1", "goods", D("20"), D("100.00")))  # ordered 20: only receipts limit

CASES = [
    # (name, state, expected {(reason, line_id)})
    ("clean three-way match", state(invoice(), receipts=GR), set()),
    ("po unknown → awaiting_po", state(invoice(), no_po=True), {("awaiting_po", None)}),
    (
        "line without po_line_id",
        state(invoice("INV-1", line(po_line_id=None)), receipts=GR),
        {("invalid_po_line_ref", "1")},
    ),
    (
        "line naming an unknown PO line",
        state(invoice("INV-1", line(po_line_id="L9")), receipts=GR),
        {("invalid_po_line_ref", "1")},
    ),
    (
        "issue date before effective_from",
        state(invoice(issue_date=date(2025, 12, 31)), receipts=GR),
        {("po_not_in_force", None)},
    ),
    (
        "issue date after effective_to",
        state(invoice(issue_date=date(2027, 1, 1)), receipts=GR),
        {("po_not_in_force", None)},
    ),
    (
        "issue date on the last effective day",
        state(invoice(issue_date=date(2026, 12, 31)), receipts=GR),
        set(),
    ),
    (
        "invoice accepted after the PO closed",
        state(invoice(seq=5), receipts=GR, closed_after_seq=4),
        {("po_not_in_force", None)},
    ),
    (
        "invoice in hand when the PO closed still matches",
        state(invoice(seq=4), receipts=GR, closed_after_seq=4),
        set(),
    ),
    (
        "two lines on one PO line",
        state(invoice("INV-1", line("1", quantity="4"), line("2", quantity="4")), receipts=GR),
        {("duplicate_line_mapping", "2")},
    ),
    ("price above PO", state(invoice("INV-1", line(price="100.01")), receipts=GR), {("price_mismatch", "1")}),
    (
        "price below PO (tolerance 0 both ways)",
        state(invoice("INV-1", line(price="99.99")), receipts=GR),
        {("price_mismatch", "1")},
    ),
    (
        "more than ordered",
        state(invoice("INV-1", line(quantity="11")), receipts=(receipt(quantity="11"),)),
        {("qty_over_ordered", "1")},
    ),
    ("three-way without any receipt", state(invoice()), {("missing_receipt", "1")}),
    (
        "two-way needs no receipt (PO match_mode overrides policy)",
        state(invoice(), purchase_order=TWO_WAY_PO),
        set(),
    ),
    (
        "more than received (QTY REC)",
        state(invoice(), receipts=(receipt(quantity="6"),)),
        {("qty_over_received", "1")},
    ),
    ("reversed receipt is simply absent", state(invoice(), receipts=()), {("missing_receipt", "1")}),
    (
        "services need a service_completion receipt",
        state(invoice(), purchase_order=po(d.PoLine("L1", "services", D("10"), D("100.00"))), receipts=GR),
        {("missing_receipt", "1")},
    ),
    (
        "services with a service_completion receipt",
        state(
            invoice(),
            purchase_order=po(d.PoLine("L1", "services", D("10"), D("100.00"))),
            receipts=(receipt(kind="service_completion"),),
        ),
        set(),
    ),
    (
        "charge type the PO does not allow",
        state(invoice(charges=(d.Charge("freight", D("10.00")),)), receipts=GR),
        {("unexpected_charge", None)},
    ),
    (
        "charge within the PO's allowance",
        state(
            invoice(charges=(d.Charge("freight", D("50.00")),)),
            receipts=GR,
            purchase_order=po(charges=(d.Charge("freight", D("50.00")),)),
        ),
        set(),
    ),
    (
        "charge above the PO's allowance",
        state(
            invoice(charges=(d.Charge("freight", D("50.01")),)),
            receipts=GR,
            purchase_order=po(charges=(d.Charge("freight", D("50.00")),)),
        ),
        {("unexpected_charge", None)},
    ),
    (
        "an allowance (negative charge) needs no PO cover",
        state(invoice(charges=(d.Charge("discount", D("-5.00")),)), receipts=GR),
        set(),
    ),
    (
        "header total off by more than 0.01",
        state(invoice(total="1000.02"), receipts=GR),
        {("header_total_mismatch", None)},
    ),
    ("header total off by exactly 0.01", state(invoice(total="1000.01"), receipts=GR), set()),
    (
        "payee differs from the PO's",
        state(invoice(payee_id="someone-else"), receipts=GR),
        {("payee_mismatch", None)},
    ),
    (
        "legal entity differs",
        state(invoice(legal_entity="other-entity"), receipts=GR),
        {("entity_mismatch", None)},
    ),
    ("currency differs", state(invoice(currency="USD"), receipts=GR), {("currency_mismatch", None)}),
    (
        "intake suspects a duplicate",
        state(invoice(suspected_duplicate_of=("INV-0",)), receipts=GR),
        {("suspected_duplicate", None)},
    ),
    (
        "no-PO invoice goes to no-PO review",
        state(invoice(po_number=None), no_po=True),
        {("no_po_review", None)},
    ),
]


@pytest.mark.parametrize(("name", "po_state", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_check(name: str, po_state: d.PoState, expected: set[tuple[str, str | None]]) -> None:
    outcome = d.evaluate(po_state, policy())["INV-1"]
    assert reasons(outcome) == expected
    assert isinstance(outcome, d.Approved) == (not expected)


QUEUES = [
    ("awaiting_po", "ap", "hold"),
    ("po_not_in_force", "procurement", "hold"),
    ("invalid_po_line_ref", "ap", "hard_fail"),
    ("duplicate_line_mapping", "ap", "hard_fail"),
    ("price_mismatch", "ap", "soft_review"),
    ("qty_over_ordered", "ap", "hard_fail"),
    ("missing_receipt", "ops", "hold"),
    ("qty_over_received", "ops", "soft_review"),
    ("unexpected_charge", "ap", "soft_review"),
    ("header_total_mismatch", "ap", "soft_review"),
    ("payee_mismatch", "ap", "hard_fail"),
    ("entity_mismatch", "ap", "hard_fail"),
    ("currency_mismatch", "ap", "hard_fail"),
]


@pytest.mark.parametrize(("reason", "queue", "action"), QUEUES)
def test_queue_and_action_per_reason(reason: str, queue: str, action: str) -> None:
    case = next(c for c in CASES if any(k[0] == reason for k in c[2]))
    outcome = d.evaluate(case[1], policy())["INV-1"]
    assert isinstance(outcome, d.Held)
    finding = next(f for f in outcome.findings if f.reason == reason)
    assert (finding.queue, finding.action) == (queue, action)


def test_policy_action_turns_a_soft_review_into_a_hard_fail() -> None:
    strict = policy(actions={**policy().default.actions, "price_mismatch": "hard_fail"})
    outcome = d.evaluate(state(invoice("INV-1", line(price="101.00")), receipts=GR), strict)["INV-1"]
    assert isinstance(outcome, d.Held) and outcome.findings[0].action == "hard_fail"


# --- cumulative quantities ------------------------------------------------------------------------


def test_received_quantity_is_never_consumed_twice() -> None:
    first = invoice("INV-1", line(quantity="6"), seq=1)
    second = invoice("INV-2", line(quantity="6"), seq=2)
    out = d.evaluate(
        state(first, second, purchase_order=BIG_PO, receipts=(receipt(quantity="10"),)), policy()
    )
    assert isinstance(out["INV-1"], d.Approved)
    assert reasons(out["INV-2"]) == {("qty_over_received", "1")}


def test_a_held_invoice_still_consumes_quantity() -> None:
    held = invoice("INV-1", line(quantity="6", price="150.00"), seq=1)  # price hold, still counts
    later = invoice("INV-2", line(quantity="6"), seq=2)
    out = d.evaluate(state(held, later, purchase_order=BIG_PO, receipts=(receipt(quantity="10"),)), policy())
    assert reasons(out["INV-1"]) == {("price_mismatch", "1")}
    assert reasons(out["INV-2"]) == {("qty_over_received", "1")}


def test_a_credit_note_gives_quantity_back() -> None:
    first = invoice("INV-1", line(quantity="10"), seq=1)
    credit = invoice("CN-1", line(quantity="4"), seq=2, document_type="credit_note")
    again = invoice("INV-2", line(quantity="4"), seq=3)
    out = d.evaluate(state(first, credit, again, receipts=(receipt(quantity="10"),)), policy())
    assert all(isinstance(o, d.Approved) for o in out.values()), out


def test_a_negative_invoice_line_gives_quantity_back() -> None:
    first = invoice("INV-1", line(quantity="10"), seq=1)
    mixed = invoice("INV-2", line("1", quantity="-3"), line("2", po_line_id="L2", quantity="1"), seq=2)
    again = invoice("INV-3", line(quantity="3"), seq=3)
    two_lines = po(
        d.PoLine("L1", "goods", D("10"), D("100.00")), d.PoLine("L2", "goods", D("1"), D("100.00"))
    )
    receipts = (receipt(quantity="10"), receipt("GR-2", quantity="1", po_line_id="L2"))
    out = d.evaluate(state(first, mixed, again, purchase_order=two_lines, receipts=receipts), policy())
    assert all(isinstance(o, d.Approved) for o in out.values()), out


def test_a_superseded_invoice_consumes_nothing_and_its_correction_matches() -> None:
    original = invoice("INV-1", line(price="120.00"), seq=1)
    corrected = invoice("INV-2", line(), seq=2, replaces_invoice_id="INV-1")
    out = d.evaluate(state(original, corrected, receipts=GR), policy())
    assert out["INV-1"] == d.Superseded("INV-2")
    assert isinstance(out["INV-2"], d.Approved)


def test_an_override_removes_exactly_the_holds_it_covers() -> None:
    inv = invoice("INV-1", line(price="101.00"), suspected_duplicate_of=("INV-0",))
    ovr = d.Override("OVR-1", "INV-1", "ap.lead", frozenset({("price_mismatch", "1")}))
    out = d.evaluate(state(inv, receipts=GR, overrides=(ovr,)), policy())["INV-1"]
    assert reasons(out) == {("suspected_duplicate", None)}


# --- what an approval carries ---------------------------------------------------------------------


def test_approval_carries_the_valuation_the_ledger_posts() -> None:
    inv = invoice(
        "INV-1",
        line(quantity="3", price="33.335", amount="100.01"),
        tax="19.00",
        charges=(d.Charge("freight", D("5.00")),),
    )
    purchase_order = po(
        d.PoLine("L1", "goods", D("10"), D("33.335")), version=3, charges=(d.Charge("freight", D("5.00")),)
    )
    out = d.evaluate(state(inv, purchase_order=purchase_order, receipts=GR), policy())["INV-1"]
    assert isinstance(out, d.Approved)
    assert out.po_version == 3 and out.business_unit == "engineering"
    (valued,) = out.lines
    # 3 × 33.335 = 100.005 → 100.01 (half-up, EUR minor unit); variance = line − matched.
    assert (valued.match_mode, valued.matched_amount, valued.variance_amount) == (
        "three_way",
        D("100.01"),
        D("0"),
    )
    assert out.charges_total == D("5.00")
    assert out.receipt_ids == ("GR-1",)


def test_variance_is_line_amount_minus_matched_amount() -> None:
    inv = invoice("INV-1", line(quantity="2", price="100.00", amount="205.00"), total="205.00")
    out = d.evaluate(state(inv, purchase_order=TWO_WAY_PO), policy())["INV-1"]
    assert isinstance(out, d.Approved)
    assert (out.lines[0].matched_amount, out.lines[0].variance_amount) == (D("200.00"), D("5.00"))


def test_receipt_ids_name_only_the_receipts_this_invoice_consumed() -> None:
    receipts = (
        receipt("GR-1", "4", minute=1),
        receipt("GR-2", "4", minute=2),
        receipt("GR-3", "2", minute=3),
    )
    first = invoice("INV-1", line(quantity="3"), seq=1)
    second = invoice("INV-2", line(quantity="5"), seq=2)
    out = d.evaluate(state(first, second, receipts=receipts), policy())
    assert isinstance(out["INV-1"], d.Approved) and out["INV-1"].receipt_ids == ("GR-1",)
    assert isinstance(out["INV-2"], d.Approved) and out["INV-2"].receipt_ids == ("GR-1", "GR-2")


def test_no_po_invoice_approved_by_override_is_valued_at_its_own_amounts() -> None:
    inv = invoice(po_number=None, business_unit="marketing")
    ovr = d.Override("OVR-1", "INV-1", "controller", frozenset({("no_po_review", None)}))
    out = d.evaluate(replace(state(inv, no_po=True), po_number=None, overrides=(ovr,)), policy())["INV-1"]
    assert isinstance(out, d.Approved)
    assert out.po_version is None and out.business_unit == "marketing" and out.override_ids == ("OVR-1",)
    assert (out.lines[0].match_mode, out.lines[0].variance_amount) == ("no_po", D("0"))


def test_charges_are_cumulative_over_the_pos_invoices() -> None:
    freight_po = po(charges=(d.Charge("freight", D("30.00")), d.Charge("freight", D("20.00"))))
    first = invoice("INV-1", line(quantity="5"), seq=1, charges=(d.Charge("Freight", D("30.00")),))
    second = invoice("INV-2", line(quantity="5"), seq=2, charges=(d.Charge("freight", D("20.01")),))
    out = d.evaluate(state(first, second, purchase_order=freight_po, receipts=GR), policy())
    assert isinstance(out["INV-1"], d.Approved)
    assert reasons(out["INV-2"]) == {("unexpected_charge", None)}
