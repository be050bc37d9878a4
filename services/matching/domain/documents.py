"""The documents matching matches: the PO version in force, receipts, invoices, accepted
overrides, and everything known about one PO (`PoState`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from services.matching.domain.policy import ZERO

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
    # SPEC §13.4: per released hold, the facts its check compared when the override was accepted
    facts: tuple[tuple[HoldKey, str], ...] = ()

    def facts_for(self, key: HoldKey) -> str | None:
        return next((text for k, text in self.facts if k == key), None)


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
