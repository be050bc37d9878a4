"""GRNI (goods received, not invoiced) per PO: what it should hold, and the true-up entry that
brings the journal there after any change (a receipt, an approval, a new price)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from services.ledger.domain.facts import PurchaseOrder, Receipt
from services.ledger.domain.journal import (
    GRNI,
    ZERO,
    Entry,
    Links,
    Posting,
    _entry_or_none,
    expense,
    net_lines,
)
from shared.money import quantize_money


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


GRNI_TRUE_UP = "grni.true_up"


def plan_true_up(
    po: PurchaseOrder | None,
    receipts: Iterable[Receipt],
    approvals: Iterable[Mapping[str, Any]],
    actual: Decimal,
    cause_event_id: str,
) -> Posting | None:
    """The true-up one PO needs after a batch, under a source event id of its own (derived from
    the record that last asked for it); None when there is nothing to correct yet."""
    if po is None:
        return None
    receipts, approvals = list(receipts), list(approvals)
    if any(qty < 0 for qty in received_minus_approved(receipts, approvals).values()):
        return None  # an approval came before the receipts it consumed: wait for them
    target = grni_target(po, open_received_quantities(receipts, approvals))
    entry = post_grni_true_up(po, target, actual, cause_event_id)
    if entry is None:
        return None
    return Posting(entry, f"{cause_event_id}:grni:{po.po_number}", GRNI_TRUE_UP)
