"""Matching, pure (SPEC §6): policy, line checks, holds, rematch and overrides. No I/O, no async.

The whole service is one function applied again and again: `evaluate(po_state, policy)` looks at
everything known about one PO (version in force, receipts still standing, every invoice, accepted
overrides) and says, per invoice, whether it is approved to pay, held (and why) or superseded.
`reconcile` compares that with what was decided before and lists only the changes. Every trigger
(a receipt, a reversal, a PO version, a corrected invoice, a rematch command, an override) is the
same rematch, so a redelivery or a second rematch changes nothing, and the final state depends
only on the set of documents, never on the order they arrived in.

Invariants kept here (checked by the property test):
- received quantity is never consumed twice: invoices consume in acceptance order (`seq`) and
  every earlier approved *or held* invoice counts, credit notes and negative lines give back;
- the outcome of a PO is a function of its documents, not of their arrival order;
- a hard fail is never released by an override; only a rematch or a correction clears it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final, Literal

from shared.money import quantize_money
from shared.text import same_person

ZERO = Decimal(0)
HUNDRED = Decimal(100)

# --- hold reasons (SPEC §6 table, plus the header-level identity and intake flags) ----------
AWAITING_PO = "awaiting_po"
PO_NOT_IN_FORCE = "po_not_in_force"
INVALID_PO_LINE_REF = "invalid_po_line_ref"
DUPLICATE_LINE_MAPPING = "duplicate_line_mapping"
PRICE_MISMATCH = "price_mismatch"
QTY_OVER_ORDERED = "qty_over_ordered"
MISSING_RECEIPT = "missing_receipt"
QTY_OVER_RECEIVED = "qty_over_received"
UNEXPECTED_CHARGE = "unexpected_charge"
HEADER_TOTAL_MISMATCH = "header_total_mismatch"
PAYEE_MISMATCH = "payee_mismatch"
ENTITY_MISMATCH = "entity_mismatch"
CURRENCY_MISMATCH = "currency_mismatch"
SUSPECTED_DUPLICATE = "suspected_duplicate"
NO_PO_REVIEW = "no_po_review"
TAX_REVIEW = "tax_review"
REPLACES_SETTLED_INVOICE = "replaces_settled_invoice"

HARD_FAIL: Final = "hard_fail"
SOFT_REVIEW: Final = "soft_review"
HOLD: Final = "hold"
Action = Literal["hard_fail", "soft_review", "hold"]

AP, OPS, PROCUREMENT, NO_PO_QUEUE = "ap", "ops", "procurement", "no_po_review"
QUEUES = (AP, OPS, PROCUREMENT, NO_PO_QUEUE)

# Mismatch types whose tolerance and action the policy file sets (SPEC §6 "per mismatch type").
TOLERATED = (PRICE_MISMATCH, QTY_OVER_ORDERED, QTY_OVER_RECEIVED, UNEXPECTED_CHARGE, HEADER_TOTAL_MISMATCH)

# Reasons whose action is fixed by the SPEC, not by policy: (queue, action).
FIXED_REASONS: dict[str, tuple[str, Action]] = {
    AWAITING_PO: (AP, HOLD),
    PO_NOT_IN_FORCE: (PROCUREMENT, HOLD),
    INVALID_PO_LINE_REF: (AP, HARD_FAIL),
    DUPLICATE_LINE_MAPPING: (AP, HARD_FAIL),
    MISSING_RECEIPT: (OPS, HOLD),
    PAYEE_MISMATCH: (AP, HARD_FAIL),
    ENTITY_MISMATCH: (AP, HARD_FAIL),
    CURRENCY_MISMATCH: (AP, HARD_FAIL),
    SUSPECTED_DUPLICATE: (AP, SOFT_REVIEW),
    NO_PO_REVIEW: (NO_PO_QUEUE, SOFT_REVIEW),
    # SPEC §15: tax above the policy's max_tax_rate of the net lines is looked at before payment.
    TAX_REVIEW: (AP, SOFT_REVIEW),
    # SPEC §15: a correction of an invoice that was approved to pay (and so may be paid or in a
    # payout) is refused: a credit note is the way to correct it. No override can release it.
    REPLACES_SETTLED_INVOICE: (AP, HARD_FAIL),
}
TOLERATED_QUEUES: dict[str, str] = {
    PRICE_MISMATCH: AP,
    QTY_OVER_ORDERED: AP,
    QTY_OVER_RECEIVED: OPS,
    UNEXPECTED_CHARGE: AP,
    HEADER_TOTAL_MISMATCH: AP,
}
ALL_REASONS = tuple(FIXED_REASONS) + TOLERATED
# Fulfilment holds belong to the person who asked for the goods, not to AP (SPEC §6 issue text).
REQUESTER_OWNED = frozenset({MISSING_RECEIPT, QTY_OVER_RECEIVED})

TWO_WAY, THREE_WAY, NO_PO = "two_way", "three_way", "no_po"
ANY_RECEIPT = "any"
RECEIPT_KINDS = ("goods_receipt", "service_completion")

# --- policy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """How far a value may stray: within `percent` of the reference OR within `amount` (money in
    the invoice currency) passes; with neither set the values must agree exactly."""

    percent: Decimal | None = None
    amount: Decimal | None = None

    def allows(self, excess: Decimal, reference: Decimal, excess_money: Decimal) -> bool:
        if excess <= 0:
            return True
        if self.percent is not None and excess * HUNDRED <= abs(reference) * self.percent:
            return True
        return self.amount is not None and excess_money <= self.amount


EXACT = Band()


@dataclass(frozen=True)
class Tolerance:
    """`over` bounds a value above its reference; `under` (price only) below it."""

    over: Band = EXACT
    under: Band | None = None  # None: an invoice price below the PO's uses the `over` band too

    @property
    def lower(self) -> Band:
        return self.under if self.under is not None else self.over


@dataclass(frozen=True)
class LinePolicy:
    mode: str  # two_way | three_way
    receipt_kind: str  # any | goods_receipt | service_completion: which receipts count
    tolerances: Mapping[str, Tolerance]
    actions: Mapping[str, Action]

    def tolerance(self, reason: str) -> Tolerance:
        return self.tolerances.get(reason, Tolerance())

    def action(self, reason: str) -> Action:
        return self.actions.get(reason, SOFT_REVIEW)


@dataclass(frozen=True)
class Rule:
    """A policy override for one (business_unit, category); "*" matches any."""

    business_unit: str
    category: str
    mode: str | None = None
    receipt_kind: str | None = None
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    actions: Mapping[str, Action] = field(default_factory=dict)

    def matches(self, business_unit: str, category: str | None) -> bool:
        return self.business_unit in ("*", business_unit) and (
            self.category == "*" or (category is not None and self.category == category)
        )

    @property
    def specificity(self) -> int:
        # Most specific wins (SPEC §6): a business unit outranks a category, both outrank neither.
        return (2 if self.business_unit != "*" else 0) + (1 if self.category != "*" else 0)


@dataclass(frozen=True)
class HoldText:
    evidence_required: tuple[str, ...]
    next_action: str


@dataclass(frozen=True)
class Policy:
    default: LinePolicy
    rules: tuple[Rule, ...] = ()
    queue_owners: Mapping[str, str] = field(default_factory=dict)
    hold_texts: Mapping[str, HoldText] = field(default_factory=dict)
    # SPEC §15: tax above this percentage of the net lines opens a `tax_review` (soft review).
    max_tax_rate: Decimal = Decimal(30)

    def for_line(self, business_unit: str, category: str | None) -> LinePolicy:
        """The default, then every matching rule from least to most specific, knob by knob."""
        result = self.default
        for rule in sorted(
            (r for r in self.rules if r.matches(business_unit, category)), key=lambda r: r.specificity
        ):
            result = LinePolicy(
                mode=rule.mode or result.mode,
                receipt_kind=rule.receipt_kind or result.receipt_kind,
                tolerances={**result.tolerances, **rule.tolerances},
                actions={**result.actions, **rule.actions},
            )
        return result

    def owner(self, reason: str, queue: str, requester: str | None) -> str:
        if reason in REQUESTER_OWNED and requester:
            return requester
        return self.queue_owners.get(queue, f"{queue}-queue")

    def text(self, reason: str) -> HoldText:
        return self.hold_texts.get(reason, DEFAULT_HOLD_TEXTS[reason])


# What it takes to clear each hold (the article's operator table, seeds/002).
DEFAULT_HOLD_TEXTS: dict[str, HoldText] = {
    AWAITING_PO: HoldText(
        ("purchase order issued and approved",), "wait for the PO; rematch runs on arrival"
    ),
    PO_NOT_IN_FORCE: HoldText(
        ("approved PO amendment extending the dates or reopening the PO",),
        "procurement amends the PO or the supplier corrects the invoice date",
    ),
    INVALID_PO_LINE_REF: HoldText(
        ("corrected invoice with a valid PO line id",), "request a corrected invoice"
    ),
    DUPLICATE_LINE_MAPPING: HoldText(
        ("supplier confirmation plus corrected invoice", "or documented duplicate rejection"),
        "request a corrected invoice",
    ),
    PRICE_MISMATCH: HoldText(
        ("approved PO change", "or documented price exception"),
        "review the price; amend the PO or override with evidence",
    ),
    QTY_OVER_ORDERED: HoldText(
        ("approved PO amendment raising the quantity", "or supplier credit note"),
        "amend the PO or request a credit note",
    ),
    MISSING_RECEIPT: HoldText(
        ("receiving document tied to the same PO line",), "record the receipt or service completion"
    ),
    QTY_OVER_RECEIVED: HoldText(
        ("corrected GRN or other receiving record",),
        "record the missing receipt quantity or request a credit",
    ),
    UNEXPECTED_CHARGE: HoldText(
        ("PO amendment allowing the charge", "or supplier credit note"), "review the charge"
    ),
    HEADER_TOTAL_MISMATCH: HoldText(
        ("recalculated invoice", "or supplier credit note"), "request a recalculated invoice"
    ),
    PAYEE_MISMATCH: HoldText(
        ("corrected invoice from the PO's payee",), "reject and request a corrected invoice"
    ),
    ENTITY_MISMATCH: HoldText(("corrected invoice to the PO's legal entity",), "request a corrected invoice"),
    CURRENCY_MISMATCH: HoldText(("corrected invoice in the PO currency",), "request a corrected invoice"),
    SUSPECTED_DUPLICATE: HoldText(
        ("supplier confirmation", "or rejection note", "or corrected invoice record"),
        "compare with the suspected original and confirm or reject",
    ),
    NO_PO_REVIEW: HoldText(("approval of the no-PO spend",), "review the no-PO invoice"),
    TAX_REVIEW: HoldText(
        ("tax calculation or tax authority ruling supporting the rate",),
        "check the tax against the net lines; override with evidence or request a corrected invoice",
    ),
    REPLACES_SETTLED_INVOICE: HoldText(
        ("supplier credit note for the settled invoice",),
        "the replaced invoice was already approved to pay: ask the supplier for a credit note",
    ),
}


def overridable(reason: str, action: str) -> bool:
    """A hard fail needs a correction (or a PO change and rematch), and an invoice waiting for its
    PO has nothing to be approved against: neither is released by an override."""
    return action != HARD_FAIL and reason != AWAITING_PO


# --- documents ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoLine:
    line_id: str
    category: str
    quantity: Decimal
    unit_price: Decimal


@dataclass(frozen=True)
class Charge:
    type: str
    amount: Decimal


@dataclass(frozen=True)
class PurchaseOrder:
    """The PO version in force."""

    po_number: str
    version: int
    legal_entity: str
    business_unit: str
    payee_id: str
    currency: str
    effective_from: date
    effective_to: date
    lines: tuple[PoLine, ...]
    charges: tuple[Charge, ...] = ()
    match_mode: str | None = None
    approved_by: str = ""
    approved_at: datetime | None = None
    created_by: str = ""
    requisition_id: str | None = None

    def line(self, line_id: str | None) -> PoLine | None:
        return next((pl for pl in self.lines if pl.line_id == line_id), None)


@dataclass(frozen=True)
class ReceiptLine:
    po_line_id: str
    quantity: Decimal


@dataclass(frozen=True)
class Receipt:
    receipt_id: str
    kind: str
    received_at: datetime
    lines: tuple[ReceiptLine, ...]


@dataclass(frozen=True)
class InvoiceLine:
    line_id: str
    po_line_id: str | None
    quantity: Decimal
    unit_price: Decimal
    line_amount: Decimal
    # Line-level charges minus allowances (SPEC §3); a positive one is a charge (SPEC §15).
    allowance_charge_amount: Decimal = ZERO


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    seq: int  # acceptance order among this PO's invoices: who consumes received quantity first
    payee_id: str
    legal_entity: str
    currency: str
    document_type: str  # invoice | credit_note
    issue_date: date
    lines: tuple[InvoiceLine, ...]
    tax_total: Decimal
    total_amount: Decimal
    payable_amount: Decimal
    po_number: str | None = None
    charges: tuple[Charge, ...] = ()
    replaces_invoice_id: str | None = None
    business_unit: str | None = None
    suspected_duplicate_of: tuple[str, ...] = ()
    route_to_no_po_review: bool = False

    @property
    def sign(self) -> Decimal:
        # A credit note carries positive quantities that give quantity back (SPEC §6).
        return Decimal(-1) if self.document_type == "credit_note" else Decimal(1)


HoldKey = tuple[str, str | None]  # (reason, line_id)


@dataclass(frozen=True)
class Override:
    """An accepted override: it releases exactly the holds in `scope`, for good."""

    override_id: str
    invoice_id: str
    approved_by: str
    scope: frozenset[HoldKey]
    at: datetime | None = None
    reason_code: str = ""
    requested_by: str = ""
    justification: str = ""
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoState:
    """Everything matching knows about one PO (or, for a no-PO invoice, about that invoice)."""

    po_number: str | None
    po: PurchaseOrder | None = None
    # PO closed: invoices accepted after the one with this seq do not match (SPEC §3 "no further
    # invoices match"); the ones already in hand keep matching. None: open.
    closed_after_seq: int | None = None
    receipts: tuple[Receipt, ...] = ()  # still standing (reversed ones are left out)
    invoices: tuple[Invoice, ...] = ()
    overrides: tuple[Override, ...] = ()
    # Corrections that live outside this PO (e.g. the corrected invoice names another PO):
    # original invoice_id → the invoice that replaces it.
    replacements: Mapping[str, str] = field(default_factory=dict)
    # Invoices (of this PO, or replaced by one of its invoices) that were ever approved to pay:
    # they may be paid or in a payout, so no correction supersedes them (SPEC §15).
    settled: frozenset[str] = frozenset()


# --- outcomes -------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Finding:
    reason: str
    line_id: str | None
    queue: str
    action: Action

    @property
    def key(self) -> HoldKey:
        return (self.reason, self.line_id)


@dataclass(frozen=True)
class ValuedLine:
    """What the ledger posts for one approved line (SPEC §9)."""

    line_id: str
    po_line_id: str | None
    category: str | None
    match_mode: str
    quantity: Decimal
    invoice_unit_price: Decimal
    po_unit_price: Decimal | None
    matched_amount: Decimal
    variance_amount: Decimal
    line_amount: Decimal


@dataclass(frozen=True)
class Approved:
    po_version: int | None
    business_unit: str
    lines: tuple[ValuedLine, ...]
    charges_total: Decimal
    receipt_ids: tuple[str, ...]
    override_ids: tuple[str, ...]


@dataclass(frozen=True)
class Held:
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Superseded:
    by: str


Outcome = Approved | Held | Superseded


# --- the checks ---------------------------------------------------------------------------------


def price_ok(invoice_price: Decimal, po_price: Decimal, quantity: Decimal, tol: Tolerance) -> bool:
    """Percent compares unit prices; amount bounds the line's money variance |qty| × Δprice."""
    above = invoice_price - po_price
    below = po_price - invoice_price
    return tol.over.allows(above, po_price, abs(quantity) * above) and tol.lower.allows(
        below, po_price, abs(quantity) * below
    )


def quantity_ok(cumulative: Decimal, limit: Decimal, unit_price: Decimal, band: Band) -> bool:
    """Percent of the limit (ordered or received), or the money value of the excess at PO price."""
    excess = cumulative - limit
    return band.allows(excess, limit, excess * unit_price)


def header_ok(invoice: Invoice, band: Band) -> bool:
    """Backstop: the header total equals lines + charges + tax."""
    expected = (
        sum((ln.line_amount for ln in invoice.lines), ZERO)
        + sum((c.amount for c in invoice.charges), ZERO)
        + invoice.tax_total
    )
    deviation = abs(invoice.total_amount - expected)
    return band.allows(deviation, expected, deviation)


def _finding(reason: str, line_id: str | None, lp: LinePolicy | None = None) -> Finding:
    if reason in FIXED_REASONS:
        queue, action = FIXED_REASONS[reason]
        return Finding(reason, line_id, queue, action)
    assert lp is not None
    return Finding(reason, line_id, TOLERATED_QUEUES[reason], lp.action(reason))


@dataclass
class _Ledger:
    """Running totals over the PO's invoices in acceptance order (mutable, local to evaluate)."""

    invoiced: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    charged: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


def _received(receipts: Iterable[Receipt], po_line_id: str, kind: str) -> list[tuple[str, Decimal]]:
    """(receipt_id, quantity) for one PO line, oldest first: the order received quantity is consumed."""
    out = []
    for r in sorted(receipts, key=lambda r: (r.received_at, r.receipt_id)):
        if kind != ANY_RECEIPT and r.kind != kind:
            continue
        qty = sum((rl.quantity for rl in r.lines if rl.po_line_id == po_line_id), ZERO)
        if qty:
            out.append((r.receipt_id, qty))
    return out


def _consumed_receipts(received: list[tuple[str, Decimal]], start: Decimal, end: Decimal) -> list[str]:
    """The receipts whose quantity range overlaps (start, end] of cumulative invoiced quantity."""
    ids, low = [], ZERO
    for receipt_id, qty in received:
        high = low + qty
        if end > low and start < high:
            ids.append(receipt_id)
        low = high
    return ids


def _check_invoice(
    inv: Invoice, state: PoState, po: PurchaseOrder, policy: Policy, running: _Ledger
) -> tuple[list[Finding], list[ValuedLine], list[str]]:
    findings: list[Finding] = []
    valued: list[ValuedLine] = []
    receipt_ids: list[str] = []
    # Identity must be the same record end to end; intake could not check it without the PO.
    if inv.payee_id != po.payee_id:
        findings.append(_finding(PAYEE_MISMATCH, None))
    if inv.legal_entity != po.legal_entity:
        findings.append(_finding(ENTITY_MISMATCH, None))
    if inv.currency != po.currency:
        findings.append(_finding(CURRENCY_MISMATCH, None))
    closed = state.closed_after_seq is not None and inv.seq > state.closed_after_seq
    if closed or not (po.effective_from <= inv.issue_date <= po.effective_to):
        findings.append(_finding(PO_NOT_IN_FORCE, None))

    mapped: set[str] = set()
    for ln in inv.lines:
        pl = po.line(ln.po_line_id)
        if pl is None:
            findings.append(_finding(INVALID_PO_LINE_REF, ln.line_id))
            continue
        lp = policy.for_line(po.business_unit, pl.category)
        mode = po.match_mode or lp.mode
        if pl.line_id in mapped:
            findings.append(_finding(DUPLICATE_LINE_MAPPING, ln.line_id))
        mapped.add(pl.line_id)
        if not price_ok(ln.unit_price, pl.unit_price, ln.quantity, lp.tolerance(PRICE_MISMATCH)):
            findings.append(_finding(PRICE_MISMATCH, ln.line_id, lp))
        qty = inv.sign * ln.quantity
        before = running.invoiced[pl.line_id]
        after = before + qty
        running.invoiced[pl.line_id] = after
        if qty > 0:
            if not quantity_ok(after, pl.quantity, pl.unit_price, lp.tolerance(QTY_OVER_ORDERED).over):
                findings.append(_finding(QTY_OVER_ORDERED, ln.line_id, lp))
            if mode == THREE_WAY:
                received = _received(state.receipts, pl.line_id, lp.receipt_kind)
                total_received = sum((q for _, q in received), ZERO)
                if total_received <= 0:
                    findings.append(_finding(MISSING_RECEIPT, ln.line_id))
                elif not quantity_ok(
                    after, total_received, pl.unit_price, lp.tolerance(QTY_OVER_RECEIVED).over
                ):
                    findings.append(_finding(QTY_OVER_RECEIVED, ln.line_id, lp))
                receipt_ids += [
                    r for r in _consumed_receipts(received, before, after) if r not in receipt_ids
                ]
        matched = quantize_money(ln.quantity * pl.unit_price, inv.currency)
        valued.append(
            ValuedLine(
                line_id=ln.line_id,
                po_line_id=pl.line_id,
                category=pl.category,
                match_mode=mode,
                quantity=ln.quantity,
                invoice_unit_price=ln.unit_price,
                po_unit_price=pl.unit_price,
                matched_amount=matched,
                variance_amount=ln.line_amount - matched,
                line_amount=ln.line_amount,
            )
        )

    header_policy = policy.for_line(po.business_unit, None)
    allowed: dict[str, Decimal] = defaultdict(Decimal)
    for c in po.charges:
        allowed[c.type.casefold()] += c.amount  # two freight entries on a PO allow their sum
    charge_failed = False
    for kind, charge in _charges(inv):
        amount = inv.sign * charge
        running.charged[kind] += amount
        if amount <= 0:
            continue  # an allowance (or a credited charge) never needs PO cover
        limit = allowed.get(kind, ZERO)
        excess = running.charged[kind] - limit
        if not header_policy.tolerance(UNEXPECTED_CHARGE).over.allows(excess, limit, excess):
            charge_failed = True
    if charge_failed:
        findings.append(_finding(UNEXPECTED_CHARGE, None, header_policy))
    if not header_ok(inv, header_policy.tolerance(HEADER_TOTAL_MISMATCH).over):
        findings.append(_finding(HEADER_TOTAL_MISMATCH, None, header_policy))
    return findings, valued, receipt_ids


# A line-level charge names no type in the contract (SPEC §3): it draws on the PO's `other`
# allowance, cumulatively with the document-level `other` charges.
LINE_CHARGE_TYPE = "other"


def _charges(inv: Invoice) -> list[tuple[str, Decimal]]:
    """(type, amount) of every document-level charge (types are free text, e.g. UBL reason codes;
    the PO's are lower-case words) and of every positive line-level `allowance_charge_amount`
    (SPEC §15: a charge needs the PO's allowance wherever it sits; a line allowance needs none)."""
    out = [(ch.type.casefold(), ch.amount) for ch in inv.charges]
    out += [
        (LINE_CHARGE_TYPE, ln.allowance_charge_amount) for ln in inv.lines if ln.allowance_charge_amount > 0
    ]
    return out


def tax_needs_review(inv: Invoice, max_tax_rate: Decimal) -> bool:
    """SPEC §15: tax above `max_tax_rate` percent of the net lines (Σ line amounts) is reviewed."""
    net = sum((ln.line_amount for ln in inv.lines), ZERO)
    if inv.tax_total <= 0:
        return False
    return net <= 0 or inv.tax_total * HUNDRED > net * max_tax_rate


def _no_po_lines(inv: Invoice) -> list[ValuedLine]:
    return [
        ValuedLine(
            line_id=ln.line_id,
            po_line_id=ln.po_line_id,
            category=None,
            match_mode=NO_PO,
            quantity=ln.quantity,
            invoice_unit_price=ln.unit_price,
            po_unit_price=None,
            matched_amount=ln.line_amount,
            variance_amount=ZERO,
            line_amount=ln.line_amount,
        )
        for ln in inv.lines
    ]


def superseded_by(invoices: Iterable[Invoice]) -> dict[str, str]:
    """original invoice_id → the corrected invoice that replaces it (first by acceptance order)."""
    out: dict[str, str] = {}
    for inv in sorted(invoices, key=lambda i: (i.seq, i.invoice_id)):
        if inv.replaces_invoice_id and inv.replaces_invoice_id != inv.invoice_id:
            out.setdefault(inv.replaces_invoice_id, inv.invoice_id)
    return out


def evaluate(state: PoState, policy: Policy) -> dict[str, Outcome]:
    """Every invoice of the PO, in acceptance order: approved, held (with every finding) or superseded."""
    outcomes: dict[str, Outcome] = {}
    replaced = {
        original: by
        for original, by in {**state.replacements, **superseded_by(state.invoices)}.items()
        if original not in state.settled
    }
    overrides: dict[str, list[Override]] = defaultdict(list)
    for o in state.overrides:
        overrides[o.invoice_id].append(o)
    running = _Ledger()
    for inv in sorted(state.invoices, key=lambda i: (i.seq, i.invoice_id)):
        if inv.invoice_id in replaced:
            # A superseded invoice is closed: it consumes nothing, its corrected successor does.
            outcomes[inv.invoice_id] = Superseded(replaced[inv.invoice_id])
            continue
        valued: list[ValuedLine] = []
        receipt_ids: list[str] = []
        findings: list[Finding] = []
        if inv.po_number is None:
            findings.append(_finding(NO_PO_REVIEW, None))
            valued = _no_po_lines(inv)
            header_policy = policy.for_line(inv.business_unit or "*", None)
            if not header_ok(inv, header_policy.tolerance(HEADER_TOTAL_MISMATCH).over):
                findings.append(_finding(HEADER_TOTAL_MISMATCH, None, header_policy))
        elif state.po is None:
            findings.append(_finding(AWAITING_PO, None))
        else:
            findings, valued, receipt_ids = _check_invoice(inv, state, state.po, policy, running)
        if inv.suspected_duplicate_of:
            findings.append(_finding(SUSPECTED_DUPLICATE, None))
        if tax_needs_review(inv, policy.max_tax_rate):
            findings.append(_finding(TAX_REVIEW, None))
        if inv.replaces_invoice_id is not None and inv.replaces_invoice_id in state.settled:
            findings.append(_finding(REPLACES_SETTLED_INVOICE, None))
        covered = {k for o in overrides[inv.invoice_id] for k in o.scope}
        open_findings = tuple(sorted({f for f in findings if f.key not in covered}, key=_finding_order))
        if open_findings:
            outcomes[inv.invoice_id] = Held(open_findings)
            continue
        po = state.po
        outcomes[inv.invoice_id] = Approved(
            po_version=po.version if po is not None and inv.po_number is not None else None,
            business_unit=(
                po.business_unit
                if po is not None and inv.po_number is not None
                else inv.business_unit or "unassigned"
            ),
            lines=tuple(valued),
            charges_total=quantize_money(sum((c.amount for c in inv.charges), ZERO), inv.currency),
            receipt_ids=tuple(receipt_ids),
            override_ids=tuple(sorted(o.override_id for o in overrides[inv.invoice_id])),
        )
    return outcomes


def _finding_order(f: Finding) -> tuple[str, str, str]:
    return (f.line_id or "", f.reason, f.queue)


# --- holds: who, until when, what it takes -------------------------------------------------------


def next_run_cutoff(opened_at: datetime, interval_s: float) -> datetime:
    """due_by: payout runs start at every multiple of the run interval since the Unix epoch, so the
    next run the invoice would miss is the first multiple strictly after the hold opened."""
    interval = Decimal(str(interval_s))
    if interval <= 0:
        raise ValueError("payout run interval must be positive")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    elapsed = Decimal((opened_at - epoch) // timedelta(microseconds=1)) / Decimal(1_000_000)
    runs = int(elapsed // interval) + 1
    return epoch + timedelta(microseconds=int(runs * interval * 1_000_000))


@dataclass(frozen=True)
class HoldDetails:
    owner: str
    due_by: datetime
    evidence_required: tuple[str, ...]
    next_action: str


def describe_hold(
    finding: Finding, policy: Policy, requester: str | None, opened_at: datetime, run_interval_s: float
) -> HoldDetails:
    text = policy.text(finding.reason)
    return HoldDetails(
        owner=policy.owner(finding.reason, finding.queue, requester),
        due_by=next_run_cutoff(opened_at, run_interval_s),
        evidence_required=text.evidence_required,
        next_action=text.next_action,
    )


# --- reconcile: what changed since the last decision ---------------------------------------------


@dataclass(frozen=True)
class StoredHold:
    hold_id: str
    reason: str
    line_id: str | None
    queue: str
    action: str

    @property
    def key(self) -> HoldKey:
        return (self.reason, self.line_id)


@dataclass(frozen=True)
class StoredDecision:
    """The last decision published for an invoice (`kind` none|approved|held|superseded)."""

    kind: str = "none"
    fingerprint: str = ""
    seq: int = 0


@dataclass(frozen=True)
class HoldOpening:
    invoice_id: str
    finding: Finding


@dataclass(frozen=True)
class HoldRelease:
    invoice_id: str
    hold: StoredHold
    released_by: Literal["rematch", "override", "correction"]
    override: Override | None = None


@dataclass(frozen=True)
class DecisionChange:
    invoice_id: str
    seq: int
    outcome: Outcome
    fingerprint: str
    revokes_approval: bool  # the invoice was approved to pay and no longer is


@dataclass(frozen=True)
class Changes:
    openings: tuple[HoldOpening, ...] = ()
    releases: tuple[HoldRelease, ...] = ()
    decisions: tuple[DecisionChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.openings or self.releases or self.decisions)


def fingerprint(outcome: Outcome) -> str:
    """Equal fingerprints ⇔ the same decision: a rematch that finds the same result publishes nothing."""
    if isinstance(outcome, Superseded):
        return f"superseded:{outcome.by}"
    if isinstance(outcome, Held):
        return "held:" + ";".join(f"{f.reason}@{f.line_id or ''}" for f in outcome.findings)
    lines = ";".join(
        f"{ln.line_id}|{ln.po_line_id}|{ln.match_mode}|{ln.quantity.normalize()}|{ln.po_unit_price}|"
        f"{ln.matched_amount}|{ln.variance_amount}"
        for ln in outcome.lines
    )
    return (
        f"approved:v{outcome.po_version}:{outcome.business_unit}:{lines}:{outcome.charges_total}:"
        f"{','.join(outcome.receipt_ids)}:{','.join(outcome.override_ids)}"
    )


def _kind(outcome: Outcome) -> str:
    return (
        "approved" if isinstance(outcome, Approved) else "held" if isinstance(outcome, Held) else "superseded"
    )


def reconcile(
    outcomes: Mapping[str, Outcome],
    open_holds: Mapping[str, list[StoredHold]],
    decisions: Mapping[str, StoredDecision],
    overrides: Iterable[Override] = (),
) -> Changes:
    """Diff the fresh outcomes against the stored holds and decisions; only changes come out."""
    by_invoice: dict[str, list[Override]] = defaultdict(list)
    for o in overrides:
        by_invoice[o.invoice_id].append(o)
    openings: list[HoldOpening] = []
    releases: list[HoldRelease] = []
    changes: list[DecisionChange] = []
    for invoice_id in sorted(outcomes):
        outcome = outcomes[invoice_id]
        stored = {h.key: h for h in open_holds.get(invoice_id, [])}
        wanted = {f.key: f for f in outcome.findings} if isinstance(outcome, Held) else {}
        for key in sorted(stored, key=lambda k: (k[1] or "", k[0])):
            if key in wanted:
                continue
            hold = stored[key]
            by = next((o for o in by_invoice[invoice_id] if key in o.scope), None)
            if isinstance(outcome, Superseded):
                releases.append(HoldRelease(invoice_id, hold, "correction"))
            elif by is not None:
                releases.append(HoldRelease(invoice_id, hold, "override", by))
            else:
                releases.append(HoldRelease(invoice_id, hold, "rematch"))
        for key, finding in wanted.items():
            if key not in stored:
                openings.append(HoldOpening(invoice_id, finding))
        previous = decisions.get(invoice_id, StoredDecision())
        fp = fingerprint(outcome)
        if fp != previous.fingerprint:
            changes.append(
                DecisionChange(
                    invoice_id,
                    previous.seq + 1,
                    outcome,
                    fp,
                    revokes_approval=previous.kind == "approved" and not isinstance(outcome, Approved),
                )
            )
    return Changes(tuple(openings), tuple(releases), tuple(changes))


def apply_changes(
    changes: Changes,
    open_holds: Mapping[str, list[StoredHold]],
    decisions: Mapping[str, StoredDecision],
    new_hold_id: Callable[[str, Finding], str] | None = None,
) -> tuple[dict[str, list[StoredHold]], dict[str, StoredDecision]]:
    """The stored state after `changes` (the pure mirror of what the store persists)."""
    holds = {k: list(v) for k, v in open_holds.items()}
    for r in changes.releases:
        holds[r.invoice_id] = [h for h in holds.get(r.invoice_id, []) if h.hold_id != r.hold.hold_id]
    for o in changes.openings:
        f = o.finding
        hold_id = new_hold_id(o.invoice_id, f) if new_hold_id else f"{o.invoice_id}:{f.reason}:{f.line_id}"
        holds.setdefault(o.invoice_id, []).append(StoredHold(hold_id, f.reason, f.line_id, f.queue, f.action))
    decided = dict(decisions)
    for d in changes.decisions:
        decided[d.invoice_id] = StoredDecision(_kind(d.outcome), d.fingerprint, d.seq)
    return holds, decided


# --- overrides (SPEC §6) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Roles:
    """person → queues they may release; "*" grants every matching queue."""

    grants: Mapping[str, frozenset[str]]

    def may_release(self, person: str, queue: str) -> bool:
        # The roles file and the override may spell one person differently (SPEC §15).
        queues = next((q for p, q in self.grants.items() if same_person(p, person)), frozenset())
        return "*" in queues or queue in queues


@dataclass(frozen=True)
class OverrideRequest:
    override_id: str
    invoice_id: str
    hold_reasons: tuple[str, ...] | None  # None: "all"
    reason_code: str
    requested_by: str
    approved_by: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class OverrideDecision:
    accepted: bool
    reasons: tuple[str, ...] = ()  # why it was refused
    scope: frozenset[HoldKey] = frozenset()


def decide_override(
    req: OverrideRequest, open_holds: list[StoredHold] | None, superseded: bool, roles: Roles
) -> OverrideDecision:
    """Accepted only when approver ≠ requester, the approver holds a role for every named hold's
    queue, evidence is given and every named hold is open and overridable; otherwise refused with
    every reason, releasing nothing. `open_holds` is None when the invoice is unknown."""
    reasons: list[str] = []
    if open_holds is None:
        return OverrideDecision(False, ("invoice_unknown",))
    if superseded:
        reasons.append("invoice_superseded")
    if same_person(req.approved_by, req.requested_by):
        reasons.append("approver_is_requester")
    if not any(e.strip() for e in req.evidence):
        reasons.append("evidence_missing")
    if req.hold_reasons == ():
        # SPEC §15: an override that names no hold releases nothing; say so rather than accept it.
        return OverrideDecision(False, ("no_hold_reasons",))
    if req.hold_reasons is None:
        named = list(open_holds)
        if not named:
            reasons.append("no_open_holds")
    else:
        named = [h for h in open_holds if h.reason in req.hold_reasons]
        open_reasons = {h.reason for h in open_holds}
        reasons += [f"hold_not_open:{r}" for r in sorted(set(req.hold_reasons) - open_reasons)]
    for h in sorted(named, key=lambda h: (h.reason, h.line_id or "")):
        if not overridable(h.reason, h.action):
            reasons.append(f"not_overridable:{h.reason}")
    for queue in sorted({h.queue for h in named}):
        if not roles.may_release(req.approved_by, queue):
            reasons.append(f"approver_lacks_role:{queue}")
    if reasons:
        return OverrideDecision(False, tuple(dict.fromkeys(reasons)))
    return OverrideDecision(True, (), frozenset(h.key for h in named))
