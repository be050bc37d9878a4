"""A PO flip (SPEC §5): an invoice made from the PO in force."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.intake.domain.common import Reason, content_hash
from services.intake.domain.invoices import Invoice, InvoiceBook, InvoiceDecision, InvoiceLine, Submission
from services.intake.domain.outcome import Outcome
from shared.money import is_known_currency, quantize_money


@dataclass(frozen=True)
class FlipPoLine:
    line_id: str
    item_ref: str
    description: str | None
    quantity: Decimal
    unit_price: Decimal


@dataclass(frozen=True)
class FlipPo:
    po_number: str
    payee_id: str
    legal_entity: str
    currency: str
    lines: tuple[FlipPoLine, ...]
    closed: bool = False


def flip_invoice_id(flip_id: str) -> str:
    """One flip_id names one invoice, ever: a retried flip finds the invoice already there."""
    return f"flip:{flip_id}"


def remaining_quantities(po: FlipPo, invoiced: Mapping[str, Decimal]) -> dict[str, Decimal]:
    return {line.line_id: line.quantity - invoiced.get(line.line_id, Decimal(0)) for line in po.lines}


def build_flip_invoice(
    flip_id: str,
    po: FlipPo,
    line_quantities: Mapping[str, Decimal] | None,
    invoiced: Mapping[str, Decimal],
    issue_date: date,
) -> tuple[Invoice | None, list[Reason]]:
    """SPEC §5 PO flip: an invoice from the in-force version — the quantities asked for, or the
    remaining uninvoiced quantity of every line. Tax is not on a PO, so a flip carries none."""
    reasons: list[Reason] = []
    if po.closed:
        reasons.append(Reason("po_closed", "po_number", f"PO {po.po_number} is closed"))
    by_id = {line.line_id: line for line in po.lines}
    wanted: list[tuple[FlipPoLine, Decimal]] = []
    if line_quantities is None:
        remaining = remaining_quantities(po, invoiced)
        wanted = [(line, remaining[line.line_id]) for line in po.lines if remaining[line.line_id] > 0]
        if not wanted:
            reasons.append(Reason("nothing_to_invoice", "po_number", "every PO line is fully invoiced"))
    else:
        for po_line_id, qty in line_quantities.items():
            where = f"line_quantities.{po_line_id}"
            line = by_id.get(po_line_id)
            if line is None:
                reasons.append(
                    Reason("invalid_po_line_ref", where, f"PO {po.po_number} has no line {po_line_id}")
                )
            elif qty <= 0:
                code = "zero_quantity" if qty == 0 else "negative_quantity"
                reasons.append(Reason(code, where, "a flipped quantity must be > 0"))
            else:
                wanted.append((line, qty))
        if not line_quantities:
            reasons.append(Reason("nothing_to_invoice", "line_quantities", "no quantities given"))
    if reasons or not is_known_currency(po.currency):
        return None, reasons
    lines = tuple(
        InvoiceLine(
            line_id=line.line_id,
            po_line_id=line.line_id,
            item_ref=line.item_ref,
            description=line.description,
            quantity=qty,
            unit_price=line.unit_price,
            line_amount=quantize_money(qty * line.unit_price, po.currency),
        )
        for line, qty in wanted
    )
    total = sum((line.line_amount for line in lines), Decimal(0))
    invoice = Invoice(
        invoice_id=flip_invoice_id(flip_id),
        supplier_invoice_number=f"FLIP-{flip_id}",
        payee_id=po.payee_id,
        legal_entity=po.legal_entity,
        document_type="invoice",
        issue_date=issue_date,
        currency=po.currency,
        lines=lines,
        tax_total=Decimal(0),
        total_amount=total,
        po_number=po.po_number,
    )
    return invoice, []


# --- decided in memory, a batch at a time ---------------------------------------------------


@dataclass
class FlipDesk:
    """A batch's flips: the POs in force they name, what is already invoiced on them, the flip
    ids already used, and the InvoiceBook every invoice passes. Two flips of one PO in a batch:
    the second counts what the first invoiced, as if it came alone after it."""

    book: InvoiceBook
    pos: Mapping[str, FlipPo]  # by po_number, the version in force; absent: never accepted
    invoiced: dict[str, dict[str, Decimal]]  # po_number → po_line_id → quantity invoiced
    done: set[str]  # flip ids that made an invoice before this batch
    today: date

    def flip(
        self, flip_id: str, po_number: str, line_quantities: Mapping[str, Decimal] | None
    ) -> tuple[Invoice | None, InvoiceDecision]:
        """The invoice the flip made (None: refused before it was one) and what became of it."""
        if flip_id in self.done or flip_invoice_id(flip_id) in self.book.invoices:
            return None, InvoiceDecision(Outcome.DUPLICATE)  # one flip_id, one invoice, ever
        po = self.pos.get(po_number)
        if po is None:
            return None, InvoiceDecision(
                Outcome.REJECTED, [Reason("unknown_po", "po_number", f"no PO {po_number} in force")]
            )
        quantities = self.invoiced.setdefault(po_number, {})
        invoice, reasons = build_flip_invoice(flip_id, po, line_quantities, quantities, self.today)
        if invoice is None:
            return None, InvoiceDecision(Outcome.REJECTED, reasons)
        decision = self.book.submit(Submission(invoice, "po_flip", flip_hash(flip_id), flip_id))
        if decision.accepted is not None:
            for line in invoice.lines:
                if line.po_line_id:
                    quantities[line.po_line_id] = quantities.get(line.po_line_id, Decimal(0)) + line.quantity
        return invoice, decision


def flip_hash(flip_id: str) -> str:
    """What tells a retried flip from another: its id (the invoice is made here, not sent)."""
    return content_hash({"flip_id": flip_id})
