"""Small builders for the pure matching domain: a PO, receipts, invoices, the SPEC default policy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from services.matching import domain as d
from services.matching.config import SPEC_DEFAULT, SPEC_RULES

D = Decimal
PAYEE, ENTITY = "payee-1", "entity-1"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def policy(**default_changes: Any) -> d.Policy:
    default = replace(SPEC_DEFAULT, **default_changes) if default_changes else SPEC_DEFAULT
    return d.Policy(default=default, rules=SPEC_RULES)


def tolerant(
    reason: str, percent: str | None = None, amount: str | None = None, under: d.Band | None = None
) -> d.Policy:
    band = d.Band(D(percent) if percent else None, D(amount) if amount else None)
    return policy(tolerances={**SPEC_DEFAULT.tolerances, reason: d.Tolerance(band, under)})


def po(
    *lines: d.PoLine,
    version: int = 1,
    match_mode: str | None = None,
    charges: tuple[d.Charge, ...] = (),
    **changes: Any,
) -> d.PurchaseOrder:
    base = d.PurchaseOrder(
        po_number="PO-1",
        version=version,
        legal_entity=ENTITY,
        business_unit="engineering",
        payee_id=PAYEE,
        currency="EUR",
        effective_from=date(2026, 1, 1),
        effective_to=date(2026, 12, 31),
        lines=lines or (d.PoLine("L1", "goods", D("10"), D("100.00")),),
        charges=charges,
        match_mode=match_mode,
        approved_by="manager",
        approved_at=T0,
        created_by="buyer",
    )
    return replace(base, **changes)


def line(
    line_id: str = "1",
    po_line_id: str | None = "L1",
    quantity: str = "10",
    price: str = "100.00",
    amount: str | None = None,
) -> d.InvoiceLine:
    q, p = D(quantity), D(price)
    return d.InvoiceLine(line_id, po_line_id, q, p, D(amount) if amount else (q * p).quantize(D("0.01")))


def invoice(
    invoice_id: str = "INV-1",
    *lines: d.InvoiceLine,
    seq: int = 1,
    tax: str = "0.00",
    charges: tuple[d.Charge, ...] = (),
    total: str | None = None,
    **changes: Any,
) -> d.Invoice:
    lines = lines or (line(),)
    computed = sum((ln.line_amount for ln in lines), D(0)) + sum((c.amount for c in charges), D(0)) + D(tax)
    base = d.Invoice(
        invoice_id=invoice_id,
        seq=seq,
        payee_id=PAYEE,
        legal_entity=ENTITY,
        currency="EUR",
        document_type="invoice",
        issue_date=date(2026, 3, 2),
        lines=tuple(lines),
        tax_total=D(tax),
        total_amount=D(total) if total else computed,
        payable_amount=D(total) if total else computed,
        po_number="PO-1",
        charges=charges,
    )
    return replace(base, **changes)


def receipt(
    receipt_id: str = "GR-1",
    quantity: str = "10",
    po_line_id: str = "L1",
    kind: str = "goods_receipt",
    minute: int = 0,
) -> d.Receipt:
    return d.Receipt(receipt_id, kind, T0.replace(minute=minute), (d.ReceiptLine(po_line_id, D(quantity)),))


def state(
    *invoices: d.Invoice,
    purchase_order: d.PurchaseOrder | None = None,
    receipts: tuple[d.Receipt, ...] = (),
    no_po: bool = False,
    **changes: Any,
) -> d.PoState:
    return d.PoState(
        po_number="PO-1",
        po=None if no_po else (purchase_order or po()),
        receipts=receipts,
        invoices=invoices,
        **changes,
    )


def reasons(outcome: d.Outcome) -> set[tuple[str, str | None]]:
    return {f.key for f in outcome.findings} if isinstance(outcome, d.Held) else set()
