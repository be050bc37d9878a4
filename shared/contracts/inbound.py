"""Inbound contract v1 (SPEC §3): the `data` of what upstream systems publish.

These models check *form* only (types, required fields, enums, decimal strings, ≤ 6 decimals
for quantities and unit prices). Business rules — currency scale, arithmetic, segregation of
duties, effective-date order, version sequencing — are intake's, which reports every reason.
Unknown extra fields are ignored.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, StrictBool, StrictInt, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from shared.contracts.common import (
    CountryCode,
    CurrencyCode,
    DateStr,
    DecimalStr,
    InboundModel,
    NonEmptyStr,
    OptStr,
    QuantityStr,
    Timestamp,
    UnitPriceStr,
)
from shared.money import INVALID_FUNDING, funding_amount_problems, is_known_currency

MatchMode = Literal["two_way", "three_way"]
PoChargeType = Literal["freight", "handling", "other"]
DocumentType = Literal["invoice", "credit_note"]
ReceiptKind = Literal["goods_receipt", "service_completion"]

# --- concord.in.requisitions -------------------------------------------------------------


class RequisitionApproved(InboundModel):
    """`requisition.approved`"""

    requisition_id: NonEmptyStr
    legal_entity: NonEmptyStr
    business_unit: NonEmptyStr
    requested_by: NonEmptyStr
    approved_by: NonEmptyStr
    amount: DecimalStr
    currency: CurrencyCode
    description: str | None = None


class RequisitionClosed(InboundModel):
    """`requisition.closed` — explicitly closed without a PO."""

    requisition_id: NonEmptyStr
    closed_by: NonEmptyStr
    reason: NonEmptyStr


# --- concord.in.purchase-orders ----------------------------------------------------------


class SowRef(InboundModel):
    """Statement-of-work reference; `version` may be sent as a string or an integer."""

    id: NonEmptyStr
    version: NonEmptyStr | StrictInt


class PoLine(InboundModel):
    line_id: NonEmptyStr
    item_ref: NonEmptyStr
    description: str | None = None
    category: NonEmptyStr
    quantity: QuantityStr
    unit_of_measure: str | None = None
    unit_price: UnitPriceStr


class PoCharge(InboundModel):
    """An allowed charge on the PO (a ceiling for invoice charges of that type)."""

    type: PoChargeType
    amount: DecimalStr


class _PurchaseOrderState(InboundModel):
    po_number: NonEmptyStr
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
    match_mode: MatchMode | None = None
    lines: list[PoLine] = Field(min_length=1)
    charges: list[PoCharge] = Field(default_factory=list)


class PurchaseOrderIssued(_PurchaseOrderState):
    """`purchase_order.issued` — version 1 (the default when omitted).

    `approved_by` may be an empty string here so that intake can reject it as
    `sod_violation` (SPEC §5) instead of a bare validation error.
    """

    version: StrictInt = Field(default=1, ge=1)
    approved_by: OptStr
    approved_at: Timestamp


class PurchaseOrderAmended(_PurchaseOrderState):
    """`purchase_order.amended` — the complete new state. In force only once approved by
    someone other than `amended_by`, here (`approved_by`) or by a later
    `purchase_order.amendment_approved`; `approved_at` is absent while pending."""

    version: StrictInt = Field(ge=2)
    modification_id: NonEmptyStr
    amended_by: NonEmptyStr
    reason: NonEmptyStr
    approved_by: str | None = None
    approved_at: Timestamp | None = None


class PurchaseOrderAmendmentApproved(InboundModel):
    """`purchase_order.amendment_approved`"""

    po_number: NonEmptyStr
    version: StrictInt = Field(ge=2)
    approved_by: NonEmptyStr
    approved_at: Timestamp


class PurchaseOrderClosed(InboundModel):
    """`purchase_order.closed` — no further invoices match."""

    po_number: NonEmptyStr
    closed_by: NonEmptyStr
    reason: NonEmptyStr


class PurchaseOrderSubmittedUbl(InboundModel):
    """`purchase_order.submitted_ubl` (SPEC §12.2) — a UBL 2.1 Order (Peppol BIS Ordering 3) as
    text, issued as version 1 of the PO its `cbc:ID` names; the approval comes with it. Size
    limits, safe XML parsing and the mapping are intake's. `approved_by` may be empty so that
    intake rejects it as `sod_violation`, as for `purchase_order.issued`."""

    document: NonEmptyStr
    business_unit: NonEmptyStr
    created_by: NonEmptyStr
    approved_by: OptStr
    approved_at: Timestamp
    category: NonEmptyStr = "goods"
    match_mode: MatchMode | None = None


# --- concord.in.receipts -----------------------------------------------------------------


class ReceiptLine(InboundModel):
    receipt_line_id: NonEmptyStr
    po_line_id: NonEmptyStr
    item_ref: str | None = None
    quantity: QuantityStr


class ReceiptRecorded(InboundModel):
    """`receipt.recorded`"""

    receipt_id: NonEmptyStr
    po_number: NonEmptyStr
    kind: ReceiptKind
    received_at: Timestamp
    recorded_by: NonEmptyStr
    lines: list[ReceiptLine] = Field(min_length=1)


class ReceiptReversed(InboundModel):
    """`receipt.reversed` — a return or an error."""

    receipt_id: NonEmptyStr
    po_number: NonEmptyStr
    reversed_by: NonEmptyStr
    reason: NonEmptyStr


class ReceiptRecordedUbl(InboundModel):
    """`receipt.recorded_ubl` (SPEC §12.2) — a UBL 2.1 ReceiptAdvice as text; intake maps it to
    the `receipt.recorded` it stands for."""

    document: NonEmptyStr
    recorded_by: NonEmptyStr
    kind: ReceiptKind = "goods_receipt"


# --- concord.in.invoices -----------------------------------------------------------------


class InvoiceLine(InboundModel):
    """A line; quantity and amount may be negative (a return inside an invoice)."""

    line_id: NonEmptyStr
    po_line_id: NonEmptyStr | None = None
    item_ref: str | None = None
    description: str | None = None
    quantity: QuantityStr
    unit_price: UnitPriceStr
    allowance_charge_amount: DecimalStr | None = None
    line_amount: DecimalStr


class InvoiceCharge(InboundModel):
    """A document-level charge; allowances are negative amounts. `type` is free text
    (UBL reason codes); matching compares it with the PO's allowed charge types."""

    type: NonEmptyStr
    amount: DecimalStr


class InvoiceSubmitted(InboundModel):
    """`invoice.submitted` (payable = total_amount − prepaid_amount + rounding_amount)."""

    invoice_id: NonEmptyStr
    supplier_invoice_number: NonEmptyStr
    payee_id: NonEmptyStr
    legal_entity: NonEmptyStr
    document_type: DocumentType
    issue_date: DateStr
    currency: CurrencyCode
    po_number: NonEmptyStr | None = None
    replaces_invoice_id: NonEmptyStr | None = None
    lines: list[InvoiceLine] = Field(min_length=1)
    charges: list[InvoiceCharge] = Field(default_factory=list)
    tax_total: DecimalStr
    total_amount: DecimalStr
    prepaid_amount: DecimalStr | None = None
    rounding_amount: DecimalStr | None = None


class InvoiceSubmittedUbl(InboundModel):
    """`invoice.submitted_ubl` — a UBL 2.1 Invoice/CreditNote (Peppol BIS 3.0) as text.
    Size limits and safe XML parsing are intake's."""

    invoice_id: NonEmptyStr
    document: NonEmptyStr


# --- concord.in.payees -------------------------------------------------------------------


class Kyc(InboundModel):
    status: Literal["verified", "pending", "failed"]
    verified_at: Timestamp | None = None


class Kyb(InboundModel):
    status: Literal["verified", "pending", "failed"]
    beneficial_owners_verified: StrictBool


class Aml(InboundModel):
    status: Literal["clear", "review", "hit"]
    screened_at: Timestamp


class TaxForm(InboundModel):
    type: Literal["W-9", "W-8BEN", "W-8BEN-E"]
    status: Literal["valid", "invalid", "missing"]
    signed_at: DateStr | None = None
    expires_at: DateStr | None = None
    tin_last4: str | None = Field(default=None, max_length=4)


class Vat(InboundModel):
    number: NonEmptyStr
    status: Literal["valid", "invalid", "unchecked"]
    checked_at: Timestamp | None = None


class PayeeProfileUpdated(InboundModel):
    """`payee.profile_updated` — a lower `profile_version` than the stored one is ignored."""

    payee_id: NonEmptyStr
    profile_version: StrictInt = Field(ge=0)
    entity_type: Literal["individual", "business"]
    country: CountryCode
    kyc: Kyc | None = None
    kyb: Kyb | None = None
    aml: Aml
    tax_form: TaxForm | None = None
    vat: Vat | None = None
    payout_account_ref: str | None = None
    updated_by: NonEmptyStr | None = None  # SPEC §13.3: who changed it (may not confirm an account change)


# --- concord.in.funding ------------------------------------------------------------------


class FundingReceived(InboundModel):
    """`funding.received` — a virtual-account credit.

    The amount must be positive, in a known ISO 4217 currency and within its minor units, else
    the record is invalid (`invalid_funding`, SPEC §15): payout_release and the ledger both read
    this topic and both deadletter it with that reason, so neither credits nor posts it. The
    rule lives here, in the one model both consumers parse with, so they cannot disagree.
    """

    funding_id: NonEmptyStr
    account_id: NonEmptyStr
    legal_entity: NonEmptyStr
    currency: CurrencyCode
    amount: DecimalStr
    received_at: Timestamp

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, currency: str) -> str:
        if not is_known_currency(currency):
            raise PydanticCustomError(
                INVALID_FUNDING, f"{INVALID_FUNDING}: {currency!r} is not an ISO 4217 currency"
            )
        return currency

    @field_validator("amount")
    @classmethod
    def _positive_amount(cls, amount: Decimal, info: ValidationInfo) -> Decimal:
        problems = funding_amount_problems(amount, info.data.get("currency"))  # None if it was invalid
        if problems:
            raise PydanticCustomError(INVALID_FUNDING, f"{INVALID_FUNDING}: {'; '.join(problems)}")
        return amount


# --- concord.in.rail-events --------------------------------------------------------------


class PayoutSettled(InboundModel):
    """`payout.settled`"""

    payout_id: NonEmptyStr
    rail_event_id: NonEmptyStr
    amount: DecimalStr
    currency: CurrencyCode
    settled_at: Timestamp


class PayoutFailed(InboundModel):
    """`payout.failed`"""

    payout_id: NonEmptyStr
    rail_event_id: NonEmptyStr
    failure_code: NonEmptyStr
    message: str | None = None


class PayoutReturned(InboundModel):
    """`payout.returned` — after settlement."""

    payout_id: NonEmptyStr
    rail_event_id: NonEmptyStr
    amount: DecimalStr
    currency: CurrencyCode
    returned_at: Timestamp
    reason: str | None = None


# --- concord.in.commands -----------------------------------------------------------------


class HoldOverrideRequested(InboundModel):
    """`hold.override_requested` — `hold_reasons` is a list of hold reasons or "all"."""

    override_id: NonEmptyStr
    invoice_id: NonEmptyStr
    hold_reasons: list[NonEmptyStr] | Literal["all"]
    reason_code: NonEmptyStr
    justification: NonEmptyStr
    requested_by: NonEmptyStr
    approved_by: NonEmptyStr
    evidence: list[NonEmptyStr] = Field(min_length=1)
    ledger_ref: str | None = None


class InvoiceRematchRequested(InboundModel):
    """`invoice.rematch_requested`"""

    invoice_id: NonEmptyStr
    requested_by: NonEmptyStr


class PayoutRunRequested(InboundModel):
    """`payout_run.requested` — optionally narrowed to one legal entity and/or currency."""

    run_id: NonEmptyStr
    requested_by: NonEmptyStr
    legal_entity: NonEmptyStr | None = None
    currency: CurrencyCode | None = None


class PoFlipRequested(InboundModel):
    """`po_flip.requested` — build an invoice from the in-force PO version; quantities per
    PO line, or the remaining uninvoiced quantities when `line_quantities` is absent."""

    flip_id: NonEmptyStr
    po_number: NonEmptyStr
    line_quantities: dict[NonEmptyStr, QuantityStr] | None = None
    requested_by: NonEmptyStr


class DeadletterReplayRequested(InboundModel):
    """`deadletter.replay_requested` (SPEC §11) — run a deadlettered record of an internal topic
    again, original bytes through the same handler, by the service that deadlettered it (no one
    but a topic's owner writes it, so the record is never published again). `deadletter_offset`
    is the entry's offset on `concord.deadletter` (one partition); `replay_id` is the key."""

    replay_id: NonEmptyStr
    deadletter_offset: StrictInt = Field(ge=0)
    requested_by: NonEmptyStr


class PayoutExpediteRequested(InboundModel):
    """`payout.expedite_requested` (SPEC §13.2) — an urgent payout of one invoice, maker-checker:
    accepted only when `approved_by` differs from `requested_by` and holds the role `treasury`."""

    expedite_id: NonEmptyStr
    invoice_id: NonEmptyStr
    requested_by: NonEmptyStr
    approved_by: NonEmptyStr
    justification: NonEmptyStr


class PayeePayoutAccountConfirmed(InboundModel):
    """`payee.payout_account_confirmed` (SPEC §13.3, signed as ops, key payee_id) — confirms a
    changed payout account; only by someone other than the profile update's `updated_by`, and
    only for the payee's current account (any other account: refused, nothing confirmed)."""

    payee_id: NonEmptyStr
    payout_account_ref: NonEmptyStr
    confirmed_by: NonEmptyStr
