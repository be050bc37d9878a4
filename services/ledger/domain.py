"""The ledger's posting rules (SPEC §9): financial facts in, balanced journal entries out.

Pure: dataclasses and functions, Decimal only, no I/O. Every `post_*` function returns an
`Entry` whose lines balance per currency (checked when the Entry is built, so an unbalanced
entry can never reach the database) or None when the fact moves no money.

Account names (SPEC §9 table):
  expense:{business_unit}        liability:grni            expense:price_variance
  expense:charges                asset:input_tax           liability:ap:{payee}
  asset:prepayments              liability:payouts_in_transit
  asset:funding:{account}        equity:funding:{legal_entity}
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.money import quantize_money

ZERO = Decimal(0)

GRNI = "liability:grni"
PRICE_VARIANCE = "expense:price_variance"
CHARGES = "expense:charges"
INPUT_TAX = "asset:input_tax"
PREPAYMENTS = "asset:prepayments"
IN_TRANSIT = "liability:payouts_in_transit"


def expense(business_unit: str) -> str:
    return f"expense:{business_unit}"


def accounts_payable(payee_id: str) -> str:
    return f"liability:ap:{payee_id}"


def funding_account(account_id: str) -> str:
    return f"asset:funding:{account_id}"


def funding_equity(legal_entity: str) -> str:
    return f"equity:funding:{legal_entity}"


AP_PREFIX = "liability:ap:"


class UnbalancedEntry(ValueError):
    """A posting rule produced lines that do not balance per currency: never posted."""


# --- the journal's vocabulary ------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One side of one account in one currency; exactly one of debit/credit is non-zero."""

    account: str
    currency: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO

    def signed(self) -> Decimal:
        """Debit positive, credit negative: the sum over a balanced entry is zero per currency."""
        return self.debit - self.credit

    def reversed(self) -> Line:
        return Line(self.account, self.currency, debit=self.credit, credit=self.debit)


@dataclass(frozen=True)
class Approval:
    """A human decision behind a fact (copied onto the entry's links for tracing)."""

    by: str
    what: str
    role: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Links:
    po_number: str | None = None
    po_version: int | None = None
    invoice_ids: tuple[str, ...] = ()
    receipt_ids: tuple[str, ...] = ()
    payout_id: str | None = None
    override_ids: tuple[str, ...] = ()
    approvals: tuple[Approval, ...] = ()


@dataclass(frozen=True)
class Entry:
    """A journal entry before it gets its ids (they come from the source event).

    `fact_key` names the business fact (receipt R1, decision D7, rail event E3): the same fact
    re-published under another event id still posts once.
    """

    kind: str
    fact_key: str
    description: str
    lines: tuple[Line, ...]
    links: Links = field(default_factory=Links)
    reverses_entry_id: str | None = None

    def __post_init__(self) -> None:
        if len(self.lines) < 2:
            raise UnbalancedEntry(f"{self.fact_key}: an entry needs at least two lines")
        for line in self.lines:
            if line.debit < 0 or line.credit < 0 or (line.debit == 0) == (line.credit == 0):
                raise UnbalancedEntry(f"{self.fact_key}: line {line} must have exactly one positive side")
        off = imbalances(self.lines)
        if off:
            raise UnbalancedEntry(f"{self.fact_key}: does not balance per currency: {off}")


def imbalances(lines: Iterable[Line]) -> dict[str, Decimal]:
    """Currency → debits − credits, only for currencies that do not net to zero."""
    net: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        net[line.currency] += line.signed()
    return {c: v for c, v in net.items() if v != 0}


def entry_id_for(source_event_id: str) -> str:
    """Deterministic: a redelivered source event, or a re-run, names the same entry."""
    return "je_" + uuid.uuid5(uuid.NAMESPACE_URL, "concord:journal|" + source_event_id).hex


def net_lines(currency: str, postings: Iterable[tuple[str, Decimal]]) -> tuple[Line, ...]:
    """Signed postings (debit +, credit −) netted per account, in first-seen account order.

    Netting keeps one line per account: a negative price variance on one line and a positive
    one on another become one line, and AP for the payee ends as one credit.
    """
    net: dict[str, Decimal] = {}
    for account, amount in postings:
        net[account] = net.get(account, ZERO) + amount
    return tuple(
        Line(account, currency, debit=amount) if amount > 0 else Line(account, currency, credit=-amount)
        for account, amount in net.items()
        if amount != 0
    )


def _entry_or_none(
    kind: str,
    fact_key: str,
    description: str,
    lines: Sequence[Line],
    links: Links | None = None,
    reverses: str | None = None,
) -> Entry | None:
    if not lines:
        return None  # the fact moves no money (e.g. a receipt of zero value)
    return Entry(kind, fact_key, description, tuple(lines), links or Links(), reverses)


# --- facts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseOrder:
    """The PO version in force: what a receipt is valued at."""

    po_number: str
    version: int
    business_unit: str
    currency: str
    unit_prices: Mapping[str, Decimal]  # po line_id → unit price
    approved_by: str | None = None
    match_mode: str | None = None  # the PO's own override of the category policy, if any


@dataclass(frozen=True)
class ReceiptLine:
    po_line_id: str
    quantity: Decimal


@dataclass(frozen=True)
class Receipt:
    receipt_id: str
    po_number: str
    lines: tuple[ReceiptLine, ...]
    recorded_by: str | None = None


@dataclass(frozen=True)
class ApprovedLine:
    line_id: str
    match_mode: str  # "two_way" | "three_way" | "no_po"
    matched_amount: Decimal
    variance_amount: Decimal
    line_amount: Decimal


@dataclass(frozen=True)
class InvoiceApproval:
    """What matching approved: `payable_amount` is what AP owes the payee."""

    invoice_id: str
    decision_id: str
    payee_id: str
    business_unit: str
    currency: str
    document_type: str  # "invoice" | "credit_note"
    payable_amount: Decimal
    tax_total: Decimal
    charges_total: Decimal
    lines: tuple[ApprovedLine, ...]
    po_number: str | None = None
    po_version: int | None = None
    receipt_ids: tuple[str, ...] = ()
    override_ids: tuple[str, ...] = ()
    approvals: tuple[Approval, ...] = ()

    @property
    def total(self) -> Decimal:
        return sum((ln.line_amount for ln in self.lines), ZERO) + self.charges_total + self.tax_total


@dataclass(frozen=True)
class PayoutRelease:
    payout_id: str
    payee_id: str
    funding_account_id: str
    currency: str
    amount: Decimal
    invoice_ids: tuple[str, ...]


@dataclass(frozen=True)
class RailOutcome:
    """A rail response applied to a payout (settled, failed or returned)."""

    payout_id: str
    rail_event_id: str
    payee_id: str
    funding_account_id: str
    currency: str
    amount: Decimal
    invoice_ids: tuple[str, ...]


@dataclass(frozen=True)
class FundingReceipt:
    funding_id: str
    account_id: str
    legal_entity: str
    currency: str
    amount: Decimal


# --- posting rules (SPEC §9 table, one function per row) ---------------------------------


def receipt_value(receipt: Receipt, po: PurchaseOrder) -> Decimal:
    """Σ quantity × PO unit price, each line rounded to the currency's minor unit.

    A receipt line naming a PO line this version does not have is worth nothing here: intake
    validates references, and guessing a price would put a made-up number in the journal.
    """
    total = ZERO
    for line in receipt.lines:
        price = po.unit_prices.get(line.po_line_id)
        if price is not None:
            total += quantize_money(line.quantity * price, po.currency)
    return total


def post_receipt(receipt: Receipt, po: PurchaseOrder) -> Entry | None:
    """Three-way receipt at PO price: Dr expense:{business_unit}, Cr liability:grni.

    A line is three-way unless the PO itself says two-way: the ledger cannot read the matching
    policy, so every receipt on a PO without `match_mode: two_way` is accrued. On a two-way PO
    a receipt is evidence only (the approval posts the expense) and nothing is accrued.
    """
    if po.match_mode == "two_way":
        return None
    value = receipt_value(receipt, po)
    lines = net_lines(po.currency, [(expense(po.business_unit), value), (GRNI, -value)])
    approvals = (
        (Approval(by=receipt.recorded_by, what=f"receipt {receipt.receipt_id} recorded"),)
        if (receipt.recorded_by)
        else ()
    )
    return _entry_or_none(
        "receipt",
        f"receipt:{receipt.receipt_id}",
        f"Receipt {receipt.receipt_id} on PO {po.po_number} v{po.version} at PO price",
        lines,
        Links(
            po_number=po.po_number,
            po_version=po.version,
            receipt_ids=(receipt.receipt_id,),
            approvals=approvals,
        ),
    )


def open_received_quantities(
    receipts: Iterable[Receipt], approvals: Iterable[Mapping[str, Any]]
) -> dict[str, Decimal]:
    """PO line → quantity received (posted receipts) and not yet relieved from GRNI by an
    approval in force (three-way lines; a credit note gives quantity back). Never negative."""
    return {line_id: qty for line_id, qty in received_minus_approved(receipts, approvals).items() if qty > 0}


def received_minus_approved(
    receipts: Iterable[Receipt], approvals: Iterable[Mapping[str, Any]]
) -> dict[str, Decimal]:
    """PO line → received (posted receipts) − approved (three-way approvals in force); negative
    while the ledger has seen an approval before the receipts it was matched on."""
    open_qty: dict[str, Decimal] = defaultdict(Decimal)
    for receipt in receipts:
        for line in receipt.lines:
            open_qty[line.po_line_id] += line.quantity
    for approval in approvals:
        sign = -1 if approval.get("document_type") == "credit_note" else 1
        for line in approval.get("lines", ()):
            if line.get("match_mode") == "three_way" and line.get("po_line_id"):
                open_qty[line["po_line_id"]] -= sign * Decimal(line["quantity"])
    return dict(open_qty)


def grni_target(po: PurchaseOrder, open_quantities: Mapping[str, Decimal]) -> Decimal:
    """What GRNI should hold for a PO: its received, not yet approved quantities at the price of
    the version in force. Zero once everything received is invoiced and approved."""
    total = ZERO
    for line_id, quantity in open_quantities.items():
        price = po.unit_prices.get(line_id)
        if price is not None:
            total += quantize_money(quantity * price, po.currency)
    return total


def post_grni_true_up(
    po: PurchaseOrder, target: Decimal, actual: Decimal, cause_event_id: str
) -> Entry | None:
    """Bring a PO's GRNI to its target (Dr/Cr expense:{business_unit} against GRNI).

    Receipts accrue at the price in force when the ledger sees them and approvals relieve at the
    price they were matched against; with POs, receipts and decisions arriving on three topics in
    any order (and prices amended in between), the two can differ. Truing up after every change
    makes the end state the same for every arrival order: GRNI = open quantities × price in force,
    and expense:{business_unit} = what the approvals relieved."""
    delta = target - actual
    if delta == 0 or po.match_mode == "two_way":
        return None
    return _entry_or_none(
        "grni_true_up",
        f"grni_true_up:{po.po_number}:{cause_event_id}",
        f"GRNI of PO {po.po_number} trued up to open received quantities at v{po.version} prices",
        net_lines(po.currency, [(expense(po.business_unit), delta), (GRNI, -delta)]),
        Links(po_number=po.po_number, po_version=po.version),
    )


def reverse_entry(
    original: Entry, original_entry_id: str, *, kind: str, fact_key: str, description: str
) -> Entry:
    """The mirror image of an entry (receipt reversed, approval revoked); links are kept."""
    return Entry(
        kind,
        fact_key,
        description,
        tuple(ln.reversed() for ln in original.lines),
        original.links,
        original_entry_id,
    )


def _approval_postings(approval: InvoiceApproval) -> list[tuple[str, Decimal]]:
    """An approved *invoice*'s signed postings (debit +, credit −)."""
    ap = accounts_payable(approval.payee_id)
    postings: list[tuple[str, Decimal]] = []
    for line in approval.lines:
        if line.match_mode == "three_way":
            # GRNI is relieved at the matched (PO-price) value the receipt was accrued at;
            # the price difference goes to variance (a negative variance is a credit).
            postings.append((GRNI, line.matched_amount))
            postings.append((PRICE_VARIANCE, line.variance_amount))
        else:  # two_way and no_po: straight to expense
            postings.append((expense(approval.business_unit), line.line_amount))
        postings.append((ap, -line.line_amount))
    postings.append((CHARGES, approval.charges_total))
    postings.append((ap, -approval.charges_total))
    postings.append((INPUT_TAX, approval.tax_total))
    postings.append((ap, -approval.tax_total))
    # Prepaid/rounding: AP must end at payable_amount (= total − prepaid + rounding). The
    # difference (prepaid − rounding) was already paid in advance, so it relieves AP and
    # consumes the prepayment asset; a negative difference flips both sides.
    already_settled = approval.total - approval.payable_amount
    postings.append((ap, already_settled))
    postings.append((PREPAYMENTS, -already_settled))
    return postings


def _approval_links(approval: InvoiceApproval) -> Links:
    return Links(
        po_number=approval.po_number,
        po_version=approval.po_version,
        invoice_ids=(approval.invoice_id,),
        receipt_ids=approval.receipt_ids,
        override_ids=approval.override_ids,
        approvals=approval.approvals,
    )


def _approval_description(approval: InvoiceApproval) -> str:
    what = "Credit note" if approval.document_type == "credit_note" else "Invoice"
    return f"{what} {approval.invoice_id} approved to pay ({approval.payable_amount} {approval.currency})"


def _approval_lines(approval: InvoiceApproval) -> tuple[Line, ...]:
    postings = _approval_postings(approval)
    if approval.document_type == "credit_note":
        postings = [(account, -amount) for account, amount in postings]
    return net_lines(approval.currency, postings)


def post_invoice_approval(approval: InvoiceApproval) -> Entry | None:
    """Invoice approved: Dr GRNI/variance (three-way) or expense (two-way, no-PO), charges,
    input tax; Cr liability:ap:{payee}. A credit note is the exact mirror (Dr AP, Cr the rest)."""
    return _entry_or_none(
        "invoice_approval",
        f"approval:{approval.decision_id}",
        _approval_description(approval),
        _approval_lines(approval),
        _approval_links(approval),
    )


def post_reapproval(approval: InvoiceApproval, active: Entry, active_entry_id: str) -> Entry:
    """A new approval while an earlier one is still in force (matching re-approves when a
    rematch changes the result, e.g. another receipt or a new PO version) replaces it in one
    entry: the earlier entry's mirror lines, then the new approval's lines."""
    return Entry(
        "invoice_approval",
        f"approval:{approval.decision_id}",
        f"{_approval_description(approval)}, replacing {active_entry_id}",
        tuple(ln.reversed() for ln in active.lines) + _approval_lines(approval),
        _approval_links(approval),
        active_entry_id,
    )


def post_payout_released(release: PayoutRelease) -> Entry | None:
    """Payout released: Dr liability:ap:{payee}, Cr liability:payouts_in_transit."""
    return _entry_or_none(
        "payout_release",
        f"release:{release.payout_id}",
        f"Payout {release.payout_id} released to {release.payee_id}",
        net_lines(
            release.currency,
            [(accounts_payable(release.payee_id), release.amount), (IN_TRANSIT, -release.amount)],
        ),
        Links(payout_id=release.payout_id, invoice_ids=release.invoice_ids),
    )


def _rail_links(outcome: RailOutcome) -> Links:
    return Links(payout_id=outcome.payout_id, invoice_ids=outcome.invoice_ids)


def post_payout_settled(outcome: RailOutcome) -> Entry | None:
    """Payout settled: Dr liability:payouts_in_transit, Cr asset:funding:{account}.

    SPEC §9 literally: the funding account is drawn down when the rail settles."""
    return _entry_or_none(
        "payout_settlement",
        f"rail:{outcome.rail_event_id}",
        f"Payout {outcome.payout_id} settled",
        net_lines(
            outcome.currency,
            [(IN_TRANSIT, outcome.amount), (funding_account(outcome.funding_account_id), -outcome.amount)],
        ),
        _rail_links(outcome),
    )


def post_payout_failed(outcome: RailOutcome) -> Entry | None:
    """Payout failed: Dr liability:payouts_in_transit, Cr liability:ap:{payee} (payable again)."""
    return _entry_or_none(
        "payout_failure",
        f"rail:{outcome.rail_event_id}",
        f"Payout {outcome.payout_id} failed; invoices payable again",
        net_lines(
            outcome.currency,
            [(IN_TRANSIT, outcome.amount), (accounts_payable(outcome.payee_id), -outcome.amount)],
        ),
        _rail_links(outcome),
    )


def post_payout_returned(outcome: RailOutcome) -> Entry | None:
    """Payout returned after settlement: Dr asset:funding:{account}, Cr liability:ap:{payee}."""
    return _entry_or_none(
        "payout_return",
        f"rail:{outcome.rail_event_id}",
        f"Payout {outcome.payout_id} returned; payable reinstated",
        net_lines(
            outcome.currency,
            [
                (funding_account(outcome.funding_account_id), outcome.amount),
                (accounts_payable(outcome.payee_id), -outcome.amount),
            ],
        ),
        _rail_links(outcome),
    )


def post_funding_received(funding: FundingReceipt) -> Entry | None:
    """Funding received: Dr asset:funding:{account}, Cr equity:funding:{legal_entity}."""
    return _entry_or_none(
        "funding",
        f"funding:{funding.funding_id}",
        f"Funding {funding.funding_id} received on {funding.account_id}",
        net_lines(
            funding.currency,
            [
                (funding_account(funding.account_id), funding.amount),
                (funding_equity(funding.legal_entity), -funding.amount),
            ],
        ),
    )


# --- receipts that arrive before their PO ------------------------------------------------


@dataclass(frozen=True)
class ReceiptState:
    """Where a receipt stands in the ledger. `pending`: waiting for its PO; `posted`; `no_value`
    (posted nothing: zero value); `reversed` (its entry was reversed); `dropped` (reversed while
    still pending, or reversed before we saw it: nothing was ever posted)."""

    receipt_id: str
    status: str
    entry_id: str | None = None


def on_receipt_reversed(state: ReceiptState | None) -> str:
    """What a reversal does: 'reverse_entry' | 'drop' | 'remember' (receipt not seen yet) | 'nothing'."""
    if state is None:
        return "remember"
    if state.status == "posted" and state.entry_id is not None:
        return "reverse_entry"
    if state.status == "pending":
        return "drop"
    return "nothing"


# --- invariants: pure comparisons ---------------------------------------------------------


def balance_differences(
    expected: Mapping[tuple[str, ...], Decimal], actual: Mapping[tuple[str, ...], Decimal]
) -> list[tuple[tuple[str, ...], Decimal, Decimal]]:
    """Keys where the journal's balance differs from the documents' (missing keys count as 0)."""
    out = []
    for key in sorted(set(expected) | set(actual)):
        exp, act = expected.get(key, ZERO), actual.get(key, ZERO)
        if exp != act:
            out.append((key, exp, act))
    return out


def ageing_bucket(days: int) -> str:
    """The usual AP ageing buckets."""
    if days <= 30:
        return "0-30"
    if days <= 60:
        return "31-60"
    if days <= 90:
        return "61-90"
    return "90+"
