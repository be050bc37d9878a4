"""The financial facts the ledger posts from, as plain data (built from events in contract.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from services.ledger.domain.journal import ZERO, Approval


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
    discount: Decimal = Decimal(0)  # early-payment discounts taken (SPEC §13.5)
    expedite_id: str | None = None  # SPEC §13.2


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
    discount: Decimal = Decimal(0)  # the payout's discounts, reinstated with its payable


@dataclass(frozen=True)
class FundingReceipt:
    funding_id: str
    account_id: str
    legal_entity: str
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class ReceiptState:
    """Where a receipt stands in the ledger. `pending`: waiting for its PO; `posted`; `no_value`
    (posted nothing: zero value); `reversed` (its entry was reversed); `dropped` (reversed while
    still pending, or reversed before we saw it: nothing was ever posted)."""

    receipt_id: str
    status: str
    entry_id: str | None = None
