"""What the read side returns: plain views of the journal and the documents behind it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.ledger import domain as d

ZERO = Decimal(0)


# --- views ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryView:
    entry_id: str
    kind: str
    source_event_id: str
    source_event_type: str
    description: str
    posted_at: datetime
    lines: tuple[d.Line, ...]
    links: d.Links
    reverses_entry_id: str | None


@dataclass(frozen=True)
class PoVersionView:
    po_number: str
    version: int
    business_unit: str
    payee_id: str
    currency: str
    created_by: str
    approved_by: str
    approved_at: datetime
    amended_by: str | None
    modification_id: str | None
    reason: str | None
    changes: tuple[str, ...]
    in_force_since: datetime
    sow_ref: dict[str, Any] | None
    payment_terms: str | None = None
    # SPEC §13.1: the roles-file entry that allowed the approval (ApprovalLimitUsed), when known
    approval_limit: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReceiptView:
    receipt_id: str
    po_number: str
    kind: str | None
    received_at: datetime | None
    recorded_by: str | None
    status: str
    entry_id: str | None
    reversed_by: str | None
    reversal_reason: str | None


@dataclass(frozen=True)
class InvoiceView:
    invoice_id: str
    supplier_invoice_number: str
    payee_id: str
    legal_entity: str
    document_type: str
    issue_date: date
    currency: str
    po_number: str | None
    total_amount: Decimal
    payable_amount: Decimal
    origin: str


@dataclass(frozen=True)
class HoldView:
    invoice_id: str
    hold_id: str
    reason: str
    queue: str
    line_id: str | None
    action: str
    first_held_at: datetime | None
    open: bool


@dataclass(frozen=True)
class DecisionView:
    invoice_id: str
    kind: str  # approved_to_pay | approval_revoked | held | superseded
    decision_id: str | None
    po_version: int | None
    decided_at: datetime | None
    detail: str | None  # revocation reason, superseded_by, hold reasons


@dataclass(frozen=True)
class OverrideView:
    override_id: str
    invoice_id: str
    approved_by: str | None
    requested_by: str | None
    reason_code: str | None
    justification: str | None
    evidence: tuple[str, ...]
    hold_reasons: tuple[str, ...]


@dataclass(frozen=True)
class ApprovalView:
    by: str
    what: str
    role: str | None
    at: datetime | None
    source: str  # "po" (a PO version's approver) or the invoice id whose decision carried it


@dataclass(frozen=True)
class PayoutOutcomeView:
    rail_event_id: str
    outcome: str  # settled | failed | returned
    amount: Decimal
    at: datetime
    failure_code: str | None
    reason: str | None


@dataclass(frozen=True)
class PayoutView:
    payout_id: str
    run_id: str
    payee_id: str
    funding_account_id: str
    currency: str
    amount: Decimal
    invoices: tuple[tuple[str, Decimal], ...]
    released_at: datetime
    outcomes: tuple[PayoutOutcomeView, ...]
    discounts: tuple[tuple[str, Decimal], ...] = ()  # (invoice_id, early-payment discount taken)
    expedite: ExpediteView | None = None


@dataclass(frozen=True)
class ExpediteView:
    """The urgent payout behind a payout (SPEC §13.2)."""

    expedite_id: str
    approved_by: str
    justification: str


@dataclass(frozen=True)
class TermsView:
    """An invoice's payment terms as payout release reads them (SPEC §13.5)."""

    invoice_id: str
    payment_terms: str | None
    due_date: date
    discount_until: date | None  # last day of the early-payment window, if the terms have one
    discount_percent: Decimal | None
    note: str | None  # why the terms count as due on receipt


@dataclass(frozen=True)
class Trace:
    """Everything behind one reference: the launch check "why was this paid?"."""

    ref: str
    ref_kind: str | None  # entry | invoice | payout | po | None (unknown reference)
    po_versions: tuple[PoVersionView, ...] = ()
    receipts: tuple[ReceiptView, ...] = ()
    invoices: tuple[InvoiceView, ...] = ()
    decisions: tuple[DecisionView, ...] = ()
    holds: tuple[HoldView, ...] = ()
    overrides: tuple[OverrideView, ...] = ()
    approvals: tuple[ApprovalView, ...] = ()
    payouts: tuple[PayoutView, ...] = ()
    entries: tuple[EntryView, ...] = ()
    terms: tuple[TermsView, ...] = ()

    @property
    def found(self) -> bool:
        return self.ref_kind is not None
