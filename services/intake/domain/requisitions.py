"""Requisitions decided in memory (SPEC §3, §5): approval once, closure unless converted."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.intake.domain.common import (
    DEFAULT_MAX_AMOUNT,
    Reason,
    amount_range_reasons,
    amount_scale_reasons,
    currency_reasons,
)
from services.intake.domain.outcome import Outcome
from shared.authority import Authority
from shared.text import same_person

# --- rules ----------------------------------------------------------------------------------


def requisition_reasons(
    requested_by: str,
    approved_by: str,
    amount: Decimal,
    currency: str,
    max_amount: Decimal = DEFAULT_MAX_AMOUNT,
) -> list[Reason]:
    out = currency_reasons(currency)
    out += amount_range_reasons([("amount", amount)], max_amount, currency)
    out += amount_scale_reasons(currency, [("amount", amount)])
    if amount <= 0:
        out.append(Reason("non_positive_amount", "amount", "a requisition must be for a positive amount"))
    if same_person(approved_by, requested_by):
        out.append(
            Reason("sod_violation", "approved_by", "a requisition cannot be approved by its requester")
        )
    return out


@dataclass(frozen=True)
class Requisition:
    """A requisitions row: approved, converted by a PO naming it, or closed."""

    requisition_id: str
    legal_entity: str | None = None
    business_unit: str | None = None
    requested_by: str | None = None
    approved_by: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    approved_at: datetime | None = None
    content_hash: str | None = None
    converted_po_number: str | None = None
    closed_by: str | None = None
    closed_reason: str | None = None
    closed_at: datetime | None = None
    # SPEC §13.1: the roles-file entry that allowed the approval (ApprovalLimit.as_dict)
    approval_limit: dict[str, Any] | None = None


@dataclass
class RequisitionDecision:
    outcome: Outcome
    reasons: list[Reason] = field(default_factory=list)


@dataclass
class RequisitionBook:
    rows: dict[str, Requisition]
    now: datetime
    changed: dict[str, Requisition] = field(default_factory=dict)

    def _put(self, r: Requisition) -> None:
        self.rows[r.requisition_id] = self.changed[r.requisition_id] = r

    def approve(
        self, approval: Requisition, authority: Authority, max_amount: Decimal = DEFAULT_MAX_AMOUNT
    ) -> RequisitionDecision:
        """`approval` carries the approval fields and the content hash of what was sent."""
        amount = approval.amount if approval.amount is not None else Decimal(0)
        reasons = requisition_reasons(
            approval.requested_by or "",
            approval.approved_by or "",
            amount,
            approval.currency or "",
            max_amount,
        )
        limit = authority.covering_limit(
            approval.approved_by, "requisition", approval.currency or "", approval.business_unit or "", amount
        )
        if limit is None and not reasons:
            reasons.append(
                Reason(
                    "approval_authority_exceeded",
                    "approved_by",
                    f"{approval.approved_by} has no approval limit covering a requisition of {amount} "
                    f"{approval.currency} for business unit {approval.business_unit}",
                )
            )
        existing = self.rows.get(approval.requisition_id)
        if existing is not None and existing.content_hash is not None:
            if existing.content_hash == approval.content_hash:
                return RequisitionDecision(Outcome.DUPLICATE)
            reasons.append(
                Reason("duplicate_requisition", "requisition_id", "already approved with other content")
            )
        if reasons:
            return RequisitionDecision(Outcome.REJECTED, reasons)
        base = existing or Requisition(approval.requisition_id)
        self._put(
            replace(
                base,
                legal_entity=approval.legal_entity,
                business_unit=approval.business_unit,
                requested_by=approval.requested_by,
                approved_by=approval.approved_by,
                amount=approval.amount,
                currency=approval.currency,
                approved_at=approval.approved_at,
                content_hash=approval.content_hash,
                approval_limit=limit.as_dict() if limit is not None else None,
            )
        )
        return RequisitionDecision(Outcome.ACCEPTED)

    def close(self, requisition_id: str, closed_by: str, reason: str) -> RequisitionDecision:
        existing = self.rows.get(requisition_id)
        if existing is None or existing.approved_at is None:
            return RequisitionDecision(
                Outcome.REJECTED, [Reason("unknown_requisition", "requisition_id", "no approved requisition")]
            )
        if existing.closed_at is not None:
            return RequisitionDecision(Outcome.DUPLICATE)
        if existing.converted_po_number is not None:
            message = f"already converted to PO {existing.converted_po_number}"
            return RequisitionDecision(
                Outcome.REJECTED, [Reason("requisition_converted", "requisition_id", message)]
            )
        self._put(replace(existing, closed_by=closed_by, closed_reason=reason, closed_at=self.now))
        return RequisitionDecision(Outcome.ACCEPTED)
