"""Internal topics (SPEC §4: owned by their producing service, may evolve).

- `concord.intake.documents` (key: po_number, else the document's own id) — accepted documents.
- `concord.matching.decisions` (key: invoice_id) — approvals, revocations, holds, supersessions.
- `concord.compliance.eligibility` (key: payee_id) — derived payout eligibility.
- `concord.payouts.events` (key: payout_id) — rail responses applied to a payout.

Unknown extra fields are ignored so a newer producer does not break an older consumer.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, StrictBool, StrictInt

from shared.contracts.common import (
    Approval,
    CurrencyCode,
    DateStr,
    DecimalStr,
    InternalModel,
    NonEmptyStr,
    QuantityStr,
    Timestamp,
    UnitPriceStr,
)
from shared.contracts.inbound import (
    DocumentType,
    InvoiceSubmitted,
    MatchMode,
    PoCharge,
    PoLine,
    ReceiptKind,
    ReceiptLine,
    SowRef,
)

# --- concord.intake.documents ------------------------------------------------------------


class ApprovalLimitUsed(InternalModel):
    """SPEC §13.1: the roles-file entry that allowed an approval (`rule` names it, e.g.
    `approval_limits.manager@example.com.purchase_order[0]`); `limit` null = unlimited."""

    person: NonEmptyStr
    kind: Literal["requisition", "purchase_order"]
    currency: NonEmptyStr  # an ISO code or "*"
    limit: DecimalStr | None = None
    business_units: Literal["*"] | list[NonEmptyStr]
    rule: NonEmptyStr


class RequisitionAccepted(InternalModel):
    """`requisition.accepted` — `approved_at` is the approval event's `occurred_at`."""

    requisition_id: NonEmptyStr
    legal_entity: NonEmptyStr
    business_unit: NonEmptyStr
    requested_by: NonEmptyStr
    approved_by: NonEmptyStr
    amount: DecimalStr
    currency: CurrencyCode
    description: str | None = None
    approved_at: Timestamp
    approval_limit: ApprovalLimitUsed | None = None


class RequisitionClosureAccepted(InternalModel):
    """`requisition.closure_accepted`"""

    requisition_id: NonEmptyStr
    closed_by: NonEmptyStr
    reason: NonEmptyStr


class PurchaseOrderState(InternalModel):
    """One approved PO version, as matched against."""

    po_number: NonEmptyStr
    version: StrictInt = Field(ge=1)
    legal_entity: NonEmptyStr
    business_unit: NonEmptyStr
    payee_id: NonEmptyStr
    currency: CurrencyCode
    payment_terms: str | None = None
    effective_from: DateStr
    effective_to: DateStr
    sow_ref: SowRef | None = None
    requisition_id: NonEmptyStr | None = None
    created_by: NonEmptyStr
    approved_by: NonEmptyStr
    approved_at: Timestamp
    match_mode: MatchMode | None = None
    lines: list[PoLine] = Field(min_length=1)
    charges: list[PoCharge] = Field(default_factory=list)
    approval_limit: ApprovalLimitUsed | None = None


class PurchaseOrderVersionInForce(InternalModel):
    """`purchase_order.version_in_force` — a PO version became the one invoices match against.
    `changes` lists human-readable field paths that differ from `previous_version`
    (e.g. "lines[L1].unit_price", "effective_to", "sow_ref"); empty for version 1."""

    po: PurchaseOrderState
    previous_version: StrictInt | None = None
    changes: list[str] = Field(default_factory=list)
    modification_id: NonEmptyStr | None = None
    amended_by: NonEmptyStr | None = None
    reason: str | None = None
    in_force_since: Timestamp


class PurchaseOrderAmendmentPending(InternalModel):
    """`purchase_order.amendment_pending` — waiting for approval by someone other than
    `amended_by`; the previous version stays in force."""

    po_number: NonEmptyStr
    version: StrictInt = Field(ge=2)
    modification_id: NonEmptyStr | None = None
    amended_by: NonEmptyStr
    reason: NonEmptyStr


class PurchaseOrderClosureAccepted(InternalModel):
    """`purchase_order.closure_accepted`"""

    po_number: NonEmptyStr
    closed_by: NonEmptyStr
    reason: NonEmptyStr


class ReceiptAccepted(InternalModel):
    """`receipt.accepted`"""

    receipt_id: NonEmptyStr
    po_number: NonEmptyStr
    kind: ReceiptKind
    received_at: Timestamp
    recorded_by: NonEmptyStr
    lines: list[ReceiptLine] = Field(min_length=1)


class ReceiptReversalAccepted(InternalModel):
    """`receipt.reversal_accepted`"""

    receipt_id: NonEmptyStr
    po_number: NonEmptyStr
    reversed_by: NonEmptyStr
    reason: NonEmptyStr


class InvoiceAccepted(InvoiceSubmitted):
    """`invoice.accepted` — the submitted invoice, validated and normalised (JSON, UBL or PO flip),
    plus what intake derived from it.

    `payable_amount` = total_amount − prepaid_amount + rounding_amount. `business_unit` is
    the PO's when intake knows it. `suspected_duplicate_of` lists invoice_ids (soft review
    `suspected_duplicate`); `route_to_no_po_review` marks a no-PO invoice for the
    `no_po_review` queue.
    """

    normalised_invoice_number: NonEmptyStr
    prepaid_amount: DecimalStr = Decimal(0)
    rounding_amount: DecimalStr = Decimal(0)
    payable_amount: DecimalStr
    business_unit: NonEmptyStr | None = None
    suspected_duplicate_of: list[NonEmptyStr] = Field(default_factory=list)
    route_to_no_po_review: StrictBool = False
    origin: Literal["json", "ubl", "po_flip"]
    flip_id: NonEmptyStr | None = None


# --- concord.matching.decisions ----------------------------------------------------------


class ApprovedLine(InternalModel):
    """One approved invoice line. matched_amount = quantity × po_unit_price rounded to the
    currency's minor unit (two-way/three-way); variance_amount = line_amount − matched_amount.
    For `no_po` lines matched_amount = line_amount and variance_amount = 0."""

    line_id: NonEmptyStr
    po_line_id: NonEmptyStr | None = None
    category: NonEmptyStr | None = None
    match_mode: Literal["two_way", "three_way", "no_po"]
    quantity: QuantityStr
    invoice_unit_price: UnitPriceStr
    po_unit_price: UnitPriceStr | None = None
    matched_amount: DecimalStr
    variance_amount: DecimalStr
    line_amount: DecimalStr


class AppliedOverride(InternalModel):
    """An override that released holds on this invoice (SPEC §6): who, why, on what evidence —
    copied onto the approval so the ledger can trace it (SPEC §9)."""

    override_id: NonEmptyStr
    approved_by: NonEmptyStr
    requested_by: NonEmptyStr | None = None
    reason_code: NonEmptyStr | None = None
    justification: str | None = None
    evidence: list[NonEmptyStr] = Field(default_factory=list)
    hold_reasons: list[NonEmptyStr] = Field(default_factory=list)


class InvoiceApprovedToPay(InternalModel):
    """`invoice.approved_to_pay` — no open holds; matched against `po_version`."""

    invoice_id: NonEmptyStr
    po_number: NonEmptyStr | None = None
    po_version: StrictInt | None = None
    payee_id: NonEmptyStr
    legal_entity: NonEmptyStr
    business_unit: NonEmptyStr
    currency: CurrencyCode
    document_type: DocumentType
    issue_date: DateStr
    payable_amount: DecimalStr
    tax_total: DecimalStr
    charges_total: DecimalStr
    lines: list[ApprovedLine] = Field(min_length=1)
    receipt_ids: list[NonEmptyStr] = Field(default_factory=list)
    override_ids: list[NonEmptyStr] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    decided_at: Timestamp
    decision_id: NonEmptyStr
    overrides: list[AppliedOverride] = Field(default_factory=list)  # details of override_ids


class InvoiceApprovalRevoked(InternalModel):
    """`invoice.approval_revoked` — a rematch re-opened a hold on an approved, unpaid invoice."""

    invoice_id: NonEmptyStr
    po_number: NonEmptyStr | None = None
    reason: NonEmptyStr
    decided_at: Timestamp
    decision_id: NonEmptyStr


class HeldHold(InternalModel):
    hold_id: NonEmptyStr
    reason: NonEmptyStr
    line_id: NonEmptyStr | None = None
    queue: NonEmptyStr
    action: Literal["hard_fail", "soft_review", "hold"]


class InvoiceHeld(InternalModel):
    """`invoice.held` — the invoice's currently open holds (not payable)."""

    invoice_id: NonEmptyStr
    po_number: NonEmptyStr | None = None
    payee_id: NonEmptyStr
    holds: list[HeldHold] = Field(min_length=1)
    decided_at: Timestamp


class InvoiceSuperseded(InternalModel):
    """`invoice.superseded` — closed by a corrected invoice (`replaces_invoice_id`)."""

    invoice_id: NonEmptyStr
    superseded_by: NonEmptyStr
    po_number: NonEmptyStr | None = None


# --- concord.compliance.eligibility ------------------------------------------------------


class PayeeEligibilityChanged(InternalModel):
    """`payee.eligibility_changed` — `reasons` holds every failing SPEC §7 code."""

    payee_id: NonEmptyStr
    eligible: StrictBool
    reasons: list[NonEmptyStr] = Field(default_factory=list)
    profile_version: StrictInt | None = None
    evaluated_at: Timestamp
    country: NonEmptyStr | None = None
    entity_type: Literal["individual", "business"] | None = None
    payout_account_ref: str | None = None
    reportable_1099_nec: StrictBool = False


# --- concord.payouts.events --------------------------------------------------------------


class PayoutRailRecorded(InternalModel):
    """Common shape of a rail response applied to a payout (`at` = settled/failed/returned)."""

    payout_id: NonEmptyStr
    rail_event_id: NonEmptyStr
    payee_id: NonEmptyStr
    legal_entity: NonEmptyStr
    funding_account_id: NonEmptyStr
    currency: CurrencyCode
    amount: DecimalStr
    invoice_ids: list[NonEmptyStr] = Field(default_factory=list)
    at: Timestamp
    failure_code: str | None = None
    reason: str | None = None
    # SPEC §13.5: the early-payment discounts the payout took at release (reinstated with it)
    discount: DecimalStr | None = None


class PayoutSettlementRecorded(PayoutRailRecorded):
    """`payout.settlement_recorded`"""


class PayoutFailureRecorded(PayoutRailRecorded):
    """`payout.failure_recorded` — its invoices are payable again."""


class PayoutReturnRecorded(PayoutRailRecorded):
    """`payout.return_recorded` — after settlement; payables reinstated."""
