"""Posting rules (SPEC §9), one table row per fact; every entry must balance per currency."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from services.ledger import domain as d
from services.ledger.domain import Line


def debits(entry: d.Entry) -> dict[str, D]:
    return {ln.account: ln.debit for ln in entry.lines if ln.debit}


def credits(entry: d.Entry) -> dict[str, D]:
    return {ln.account: ln.credit for ln in entry.lines if ln.credit}


PO = d.PurchaseOrder("PO-1", 1, "marketing", "EUR", {"L1": D("10.00"), "L2": D("0.333333")})


def receipt(*lines: tuple[str, str]) -> d.Receipt:
    return d.Receipt(
        "R1", "PO-1", tuple(d.ReceiptLine(p, D(q)) for p, q in lines), recorded_by="ops@example.com"
    )


@pytest.mark.parametrize(
    ("lines", "value"),
    [
        ([("L1", "3")], D("30.00")),
        ([("L1", "1"), ("L2", "1")], D("10.33")),  # 0.333333 rounds half-up to 0.33 per line
        ([("L2", "3")], D("1.00")),  # 0.999999 → 1.00
        ([("L1", "0.5")], D("5.00")),
        ([("L1", "2"), ("UNKNOWN", "5")], D("20.00")),  # a line the PO does not have is worth nothing
    ],
)
def test_receipt_is_accrued_to_grni_at_po_price(lines: list[tuple[str, str]], value: D) -> None:
    entry = d.post_receipt(receipt(*lines), PO)
    assert entry is not None
    assert debits(entry) == {"expense:marketing": value}
    assert credits(entry) == {"liability:grni": value}
    assert (
        entry.links.po_number == "PO-1" and entry.links.po_version == 1 and entry.links.receipt_ids == ("R1",)
    )
    assert entry.fact_key == "receipt:R1"


def test_receipt_on_a_po_that_says_two_way_is_evidence_only() -> None:
    two_way = d.PurchaseOrder("PO-2", 1, "marketing", "EUR", {"L1": D("10.00")}, match_mode="two_way")
    three_way = d.PurchaseOrder("PO-3", 1, "marketing", "EUR", {"L1": D("10.00")}, match_mode="three_way")
    assert d.post_receipt(receipt(("L1", "1")), two_way) is None
    assert d.post_receipt(receipt(("L1", "1")), three_way) is not None


def test_receipt_of_zero_value_posts_nothing() -> None:
    assert d.post_receipt(receipt(("L1", "0")), PO) is None
    assert d.post_receipt(receipt(("NOPE", "4")), PO) is None


def test_receipt_in_a_zero_decimal_currency_rounds_to_whole_units() -> None:
    po = d.PurchaseOrder("PO-J", 1, "ops", "JPY", {"L1": D("100.5")})
    entry = d.post_receipt(d.Receipt("R", "PO-J", (d.ReceiptLine("L1", D("1")),)), po)
    assert entry is not None and credits(entry) == {"liability:grni": D("101")}


def approved_line(mode: str, matched: str, variance: str, amount: str, line_id: str = "1") -> d.ApprovedLine:
    return d.ApprovedLine(line_id, mode, D(matched), D(variance), D(amount))


def approval(
    *lines: d.ApprovedLine,
    payable: str,
    tax: str = "0",
    charges: str = "0",
    document_type: str = "invoice",
) -> d.InvoiceApproval:
    return d.InvoiceApproval(
        invoice_id="INV-1",
        decision_id="dec-1",
        payee_id="payee-7",
        business_unit="marketing",
        currency="EUR",
        document_type=document_type,
        payable_amount=D(payable),
        tax_total=D(tax),
        charges_total=D(charges),
        lines=lines,
        po_number="PO-1",
        po_version=2,
        receipt_ids=("R1",),
        override_ids=("ovr-1",),
        approvals=(d.Approval(by="ap.lead@example.com", what="override ovr-1", role="ap"),),
    )


AP = "liability:ap:payee-7"

APPROVAL_CASES = [
    pytest.param(
        approval(approved_line("three_way", "100.00", "0", "100.00"), payable="100.00"),
        {"liability:grni": D("100.00")},
        {AP: D("100.00")},
        id="three-way at PO price",
    ),
    pytest.param(
        approval(approved_line("three_way", "100.00", "5.00", "105.00"), payable="105.00"),
        {"liability:grni": D("100.00"), "expense:price_variance": D("5.00")},
        {AP: D("105.00")},
        id="three-way above PO price: variance is a debit",
    ),
    pytest.param(
        approval(approved_line("three_way", "100.00", "-4.00", "96.00"), payable="96.00"),
        {"liability:grni": D("100.00")},
        {AP: D("96.00"), "expense:price_variance": D("4.00")},
        id="three-way below PO price: negative variance is a credit",
    ),
    pytest.param(
        approval(
            approved_line("three_way", "100.00", "3.00", "103.00", "1"),
            approved_line("three_way", "50.00", "-3.00", "47.00", "2"),
            payable="150.00",
        ),
        {"liability:grni": D("150.00")},
        {AP: D("150.00")},
        id="opposite variances on two lines net to nothing",
    ),
    pytest.param(
        approval(approved_line("two_way", "80.00", "0", "80.00"), payable="80.00"),
        {"expense:marketing": D("80.00")},
        {AP: D("80.00")},
        id="two-way line goes straight to expense",
    ),
    pytest.param(
        approval(approved_line("no_po", "12.00", "0", "12.00"), payable="12.00"),
        {"expense:marketing": D("12.00")},
        {AP: D("12.00")},
        id="no-PO line goes straight to expense",
    ),
    pytest.param(
        approval(
            approved_line("two_way", "80.00", "0", "80.00"), payable="110.00", tax="20.00", charges="10.00"
        ),
        {"expense:marketing": D("80.00"), "expense:charges": D("10.00"), "asset:input_tax": D("20.00")},
        {AP: D("110.00")},
        id="charges and tax credited to AP",
    ),
    pytest.param(
        approval(approved_line("two_way", "100.00", "0", "100.00"), payable="70.00"),
        {"expense:marketing": D("100.00")},
        {AP: D("70.00"), "asset:prepayments": D("30.00")},
        id="prepaid amount relieves AP against prepayments",
    ),
    pytest.param(
        approval(approved_line("two_way", "99.99", "0", "99.99"), payable="100.00"),
        {"expense:marketing": D("99.99"), "asset:prepayments": D("0.01")},
        {AP: D("100.00")},
        id="positive rounding raises AP to payable",
    ),
    pytest.param(
        approval(
            approved_line("three_way", "100.00", "0", "100.00", "1"),
            approved_line("three_way", "-20.00", "0", "-20.00", "2"),
            payable="80.00",
        ),
        {"liability:grni": D("80.00")},
        {AP: D("80.00")},
        id="return line inside an invoice reduces GRNI relief",
    ),
    pytest.param(
        approval(
            approved_line("two_way", "40.00", "0", "40.00"),
            payable="48.00",
            tax="8.00",
            document_type="credit_note",
        ),
        {AP: D("48.00")},
        {"expense:marketing": D("40.00"), "asset:input_tax": D("8.00")},
        id="credit note is the mirror: Dr AP, Cr what it reverses",
    ),
    pytest.param(
        approval(
            approved_line("three_way", "30.00", "-1.00", "29.00"),
            payable="29.00",
            document_type="credit_note",
        ),
        {AP: D("29.00"), "expense:price_variance": D("1.00")},
        {"liability:grni": D("30.00")},
        id="three-way credit note mirrors GRNI and variance",
    ),
]


@pytest.mark.parametrize(("fact", "dr", "cr"), APPROVAL_CASES)
def test_invoice_approval_posting(fact: d.InvoiceApproval, dr: dict[str, D], cr: dict[str, D]) -> None:
    entry = d.post_invoice_approval(fact)
    assert entry is not None
    assert debits(entry) == dr
    assert credits(entry) == cr
    assert not d.imbalances(entry.lines)


@pytest.mark.parametrize(("fact", "dr", "cr"), APPROVAL_CASES)
def test_ap_for_the_payee_equals_the_payable_amount(
    fact: d.InvoiceApproval, dr: dict[str, D], cr: dict[str, D]
) -> None:
    entry = d.post_invoice_approval(fact)
    assert entry is not None
    ap_credit = sum((ln.credit - ln.debit for ln in entry.lines if ln.account == AP), D(0))
    sign = -1 if fact.document_type == "credit_note" else 1
    assert ap_credit == sign * fact.payable_amount


def test_approval_links_carry_the_decision_for_tracing() -> None:
    entry = d.post_invoice_approval(approval(approved_line("two_way", "1.00", "0", "1.00"), payable="1.00"))
    assert entry is not None
    assert entry.links == d.Links(
        po_number="PO-1",
        po_version=2,
        invoice_ids=("INV-1",),
        receipt_ids=("R1",),
        override_ids=("ovr-1",),
        approvals=(d.Approval(by="ap.lead@example.com", what="override ovr-1", role="ap"),),
    )
    assert entry.fact_key == "approval:dec-1"


def test_an_inconsistent_decision_is_refused_rather_than_posted_unbalanced() -> None:
    # matched + variance must equal line_amount; otherwise the entry could not balance
    with pytest.raises(d.UnbalancedEntry):
        d.post_invoice_approval(
            approval(approved_line("three_way", "100.00", "1.00", "100.00"), payable="100.00")
        )


def rail(amount: str = "250.00") -> d.RailOutcome:
    return d.RailOutcome("po_1", "rail-9", "payee-7", "acct-1", "EUR", D(amount), ("INV-1", "INV-2"))


MONEY_MOVEMENT_CASES = [
    pytest.param(
        d.post_payout_released(d.PayoutRelease("po_1", "payee-7", "acct-1", "EUR", D("250.00"), ("INV-1",))),
        ("liability:ap:payee-7", "liability:payouts_in_transit"),
        id="payout released",
    ),
    pytest.param(
        d.post_payout_settled(rail()), ("liability:payouts_in_transit", "asset:funding:acct-1"), id="settled"
    ),
    pytest.param(
        d.post_payout_failed(rail()), ("liability:payouts_in_transit", "liability:ap:payee-7"), id="failed"
    ),
    pytest.param(
        d.post_payout_returned(rail()), ("asset:funding:acct-1", "liability:ap:payee-7"), id="returned"
    ),
    pytest.param(
        d.post_funding_received(d.FundingReceipt("f-1", "acct-1", "LE-1", "EUR", D("250.00"))),
        ("asset:funding:acct-1", "equity:funding:LE-1"),
        id="funding received",
    ),
]


@pytest.mark.parametrize(("entry", "sides"), MONEY_MOVEMENT_CASES)
def test_money_movement_postings(entry: d.Entry | None, sides: tuple[str, str]) -> None:
    assert entry is not None
    debit_account, credit_account = sides
    assert entry.lines == (
        Line(debit_account, "EUR", debit=D("250.00")),
        Line(credit_account, "EUR", credit=D("250.00")),
    )


def test_rail_outcomes_are_keyed_by_the_rail_event_so_a_replayed_rail_event_posts_once() -> None:
    assert d.post_payout_settled(rail()).fact_key == d.post_payout_returned(rail()).fact_key == "rail:rail-9"  # type: ignore[union-attr]
    assert d.post_payout_settled(rail()).links.payout_id == "po_1"  # type: ignore[union-attr]


def test_reversal_mirrors_every_line_and_keeps_links() -> None:
    original = d.post_receipt(receipt(("L1", "2")), PO)
    assert original is not None
    rev = d.reverse_entry(
        original, "je_x", kind="receipt_reversal", fact_key="receipt_reversal:R1", description="r"
    )
    assert debits(rev) == credits(original) and credits(rev) == debits(original)
    assert rev.links == original.links and rev.reverses_entry_id == "je_x"


def test_reapproval_replaces_the_active_approval_in_one_balanced_entry() -> None:
    first = d.post_invoice_approval(
        approval(approved_line("two_way", "80.00", "0", "80.00"), payable="80.00")
    )
    assert first is not None
    second = d.post_reapproval(
        approval(approved_line("two_way", "90.00", "0", "90.00"), payable="90.00"), first.lines, "je_1"
    )
    assert second is not None and second.reverses_entry_id == "je_1"
    net_ap = sum((ln.credit - ln.debit for ln in second.lines if ln.account == AP), D(0))
    assert net_ap == D("10.00")  # 80 reversed, 90 posted


@pytest.mark.parametrize(
    "lines",
    [
        (Line("a", "EUR", debit=D(1)),),
        (Line("a", "EUR", debit=D(1)), Line("b", "EUR", credit=D(2))),
        (Line("a", "EUR", debit=D(1)), Line("b", "USD", credit=D(1))),
        (Line("a", "EUR", debit=D(-1)), Line("b", "EUR", credit=D(-1))),
        (Line("a", "EUR", debit=D(1), credit=D(1)), Line("b", "EUR", debit=D(0), credit=D(0))),
    ],
)
def test_an_entry_that_does_not_balance_per_currency_cannot_be_built(lines: tuple[Line, ...]) -> None:
    with pytest.raises(d.UnbalancedEntry):
        d.Entry("x", "x:1", "x", lines)


def test_entries_may_span_currencies_if_each_balances() -> None:
    d.Entry(
        "x",
        "x:1",
        "x",
        (
            Line("a", "EUR", debit=D(1)),
            Line("b", "EUR", credit=D(1)),
            Line("a", "USD", debit=D(2)),
            Line("b", "USD", credit=D(2)),
        ),
    )


def test_entry_id_is_deterministic_from_the_source_event() -> None:
    assert d.entry_id_for("evt_1") == d.entry_id_for("evt_1")
    assert d.entry_id_for("evt_1") != d.entry_id_for("evt_2")
    assert d.entry_id_for("evt_1").startswith("je_")


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (None, "remember"),
        (d.ReceiptState("R1", "pending"), "drop"),
        (d.ReceiptState("R1", "posted", "je_1"), "reverse_entry"),
        (d.ReceiptState("R1", "no_value"), "nothing"),
        (d.ReceiptState("R1", "reversed", "je_1"), "nothing"),
        (d.ReceiptState("R1", "dropped"), "nothing"),
    ],
)
def test_what_a_receipt_reversal_does(state: d.ReceiptState | None, action: str) -> None:
    assert d.on_receipt_reversed(state) == action


def test_balance_differences_reports_only_disagreements_and_counts_missing_as_zero() -> None:
    assert d.balance_differences({("p", "EUR"): D(5), ("q", "EUR"): D(0)}, {("p", "EUR"): D(5)}) == []
    assert d.balance_differences({("p", "EUR"): D(5)}, {("p", "EUR"): D(4), ("r", "USD"): D(1)}) == [
        (("p", "EUR"), D(5), D(4)),
        (("r", "USD"), D(0), D(1)),
    ]


@pytest.mark.parametrize(
    ("days", "bucket"), [(0, "0-30"), (30, "0-30"), (31, "31-60"), (60, "31-60"), (61, "61-90"), (91, "90+")]
)
def test_ageing_buckets(days: int, bucket: str) -> None:
    assert d.ageing_bucket(days) == bucket
