"""The line checks and `evaluate`: every invoice of one PO, in acceptance order, approved, held
(with every finding) or superseded. See `services/matching/domain/__init__.py` for the invariants."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

from services.matching.domain.documents import HoldKey, Invoice, Override, PoState, PurchaseOrder, Receipt
from services.matching.domain.policy import (
    ANY_RECEIPT,
    AWAITING_PO,
    CURRENCY_MISMATCH,
    DUPLICATE_LINE_MAPPING,
    ENTITY_MISMATCH,
    FIXED_REASONS,
    HEADER_TOTAL_MISMATCH,
    HUNDRED,
    INVALID_PO_LINE_REF,
    MISSING_RECEIPT,
    NO_PO,
    NO_PO_REVIEW,
    PAYEE_MISMATCH,
    PO_NOT_IN_FORCE,
    PRICE_MISMATCH,
    QTY_OVER_ORDERED,
    QTY_OVER_RECEIVED,
    REPLACES_SETTLED_INVOICE,
    SUSPECTED_DUPLICATE,
    TAX_REVIEW,
    THREE_WAY,
    TOLERATED_QUEUES,
    UNEXPECTED_CHARGE,
    ZERO,
    Action,
    Band,
    LinePolicy,
    Policy,
    Tolerance,
)
from shared.money import quantize_money

# --- outcomes -------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Finding:
    reason: str
    line_id: str | None
    queue: str
    action: Action
    # SPEC §13.4: what the check compared, as canonical text (e.g. for price_mismatch
    # "invoice_unit_price=12.5;po_unit_price=10"). An override records it per hold it releases and
    # stands only while it is the same; not part of equality (a finding is its reason and line).
    facts: str = field(default="", compare=False)
    # set when the finding reopens a hold an override released on other facts (the override lapsed)
    lapsed_override_id: str | None = field(default=None, compare=False)

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


def _finding(reason: str, line_id: str | None, lp: LinePolicy | None = None, **facts: object) -> Finding:
    text = facts_text(**facts)
    if reason in FIXED_REASONS:
        queue, action = FIXED_REASONS[reason]
        return Finding(reason, line_id, queue, action, text)
    assert lp is not None
    return Finding(reason, line_id, TOLERATED_QUEUES[reason], lp.action(reason), text)


def facts_text(**facts: object) -> str:
    """SPEC §13.4: the facts a check compared as one canonical text, names sorted, decimals
    normalised (10.0 = 10), so equal facts always read the same."""

    return ";".join(f"{k}={_canon(v)}" for k, v in sorted(facts.items()))


def _canon(v: object) -> str:
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    if isinstance(v, list | tuple):
        return ",".join(_canon(x) for x in v)
    return str(v)


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
        findings.append(
            _finding(
                PO_NOT_IN_FORCE,
                None,
                po_version=po.version,
                effective=f"{po.effective_from}..{po.effective_to}",
                closed=closed,
                issue_date=inv.issue_date,
            )
        )

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
            findings.append(
                _finding(
                    PRICE_MISMATCH,
                    ln.line_id,
                    lp,
                    invoice_unit_price=ln.unit_price,
                    po_unit_price=pl.unit_price,
                )
            )
        qty = inv.sign * ln.quantity
        before = running.invoiced[pl.line_id]
        after = before + qty
        running.invoiced[pl.line_id] = after
        if qty > 0:
            if not quantity_ok(after, pl.quantity, pl.unit_price, lp.tolerance(QTY_OVER_ORDERED).over):
                findings.append(
                    _finding(QTY_OVER_ORDERED, ln.line_id, lp, invoiced=after, ordered=pl.quantity)
                )
            if mode == THREE_WAY:
                received = _received(state.receipts, pl.line_id, lp.receipt_kind)
                total_received = sum((q for _, q in received), ZERO)
                if total_received <= 0:
                    findings.append(
                        _finding(MISSING_RECEIPT, ln.line_id, invoiced=after, received=total_received)
                    )
                elif not quantity_ok(
                    after, total_received, pl.unit_price, lp.tolerance(QTY_OVER_RECEIVED).over
                ):
                    findings.append(
                        _finding(QTY_OVER_RECEIVED, ln.line_id, lp, invoiced=after, received=total_received)
                    )
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
    failed_charges: dict[str, str] = {}
    for kind, charge in _charges(inv):
        amount = inv.sign * charge
        running.charged[kind] += amount
        if amount <= 0:
            continue  # an allowance (or a credited charge) never needs PO cover
        limit = allowed.get(kind, ZERO)
        excess = running.charged[kind] - limit
        if not header_policy.tolerance(UNEXPECTED_CHARGE).over.allows(excess, limit, excess):
            # type: cumulative amount charged / the PO's allowance
            failed_charges[kind] = f"{_canon(running.charged[kind])}/{_canon(limit)}"
    if failed_charges:
        charges = [f"{k}:{v}" for k, v in sorted(failed_charges.items())]
        findings.append(_finding(UNEXPECTED_CHARGE, None, header_policy, charges=charges))
    if not header_ok(inv, header_policy.tolerance(HEADER_TOTAL_MISMATCH).over):
        findings.append(_finding(HEADER_TOTAL_MISMATCH, None, header_policy, **_header_facts(inv)))
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
                findings.append(_finding(HEADER_TOTAL_MISMATCH, None, header_policy, **_header_facts(inv)))
        elif state.po is None:
            findings.append(_finding(AWAITING_PO, None))
        else:
            findings, valued, receipt_ids = _check_invoice(inv, state, state.po, policy, running)
        if inv.suspected_duplicate_of:
            findings.append(_finding(SUSPECTED_DUPLICATE, None, of=sorted(inv.suspected_duplicate_of)))
        if tax_needs_review(inv, policy.max_tax_rate):
            net = sum((ln.line_amount for ln in inv.lines), ZERO)
            findings.append(
                _finding(TAX_REVIEW, None, tax=inv.tax_total, net=net, max_rate=policy.max_tax_rate)
            )
        if inv.replaces_invoice_id is not None and inv.replaces_invoice_id in state.settled:
            findings.append(_finding(REPLACES_SETTLED_INVOICE, None, replaces=inv.replaces_invoice_id))
        open_findings = tuple(sorted(_uncovered(findings, overrides[inv.invoice_id]), key=_finding_order))
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


def _header_facts(inv: Invoice) -> dict[str, object]:
    lines = sum((ln.line_amount for ln in inv.lines), ZERO)
    charges = sum((c.amount for c in inv.charges), ZERO)
    return {"lines": lines, "charges": charges, "tax": inv.tax_total, "total": inv.total_amount}


def _uncovered(findings: Iterable[Finding], overrides: Sequence[Override]) -> set[Finding]:
    """SPEC §13.4: a finding an accepted override released stays released while the facts the
    override approved are the facts the check sees now (an override without recorded facts,
    accepted before facts were kept, stands as v1 said). On other facts it lapses: the finding
    is open again, naming the override that lapsed (the latest that covered its hold)."""
    out: set[Finding] = set()
    for f in findings:
        covering = [o for o in overrides if f.key in o.scope]
        if not covering:
            out.add(f)
            continue
        if any(o.facts_for(f.key) in (None, f.facts) for o in covering):
            continue
        latest = max(covering, key=lambda o: (o.at or datetime.min.replace(tzinfo=UTC), o.override_id))
        out.add(replace(f, lapsed_override_id=latest.override_id))
    return out


def _finding_order(f: Finding) -> tuple[str, str, str]:
    return (f.line_id or "", f.reason, f.queue)
