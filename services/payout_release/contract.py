"""payout_release's field mapping, all of it: inbound and internal events → domain objects, and
what a run or a rail response decided → the events that say so (SPEC §4, §8)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from services.payout_release import domain
from shared.contracts.inbound import (
    FundingReceived,
    PayoutExpediteRequested,
    PayoutFailed,
    PayoutReturned,
    PayoutSettled,
)
from shared.contracts.internal import (
    InvoiceApprovalRevoked,
    InvoiceApprovedToPay,
    InvoiceHeld,
    PayeeEligibilityChanged,
    PayoutFailureRecorded,
    PayoutRailRecorded,
    PayoutReturnRecorded,
    PayoutSettlementRecorded,
    PurchaseOrderVersionInForce,
)
from shared.contracts.outbound import (
    ExpediteRefused,
    FundingRefused,
    PayoutBlocked,
    PayoutExceptionOpened,
    PayoutExpedite,
    PayoutInvoice,
    PayoutReleased,
    RailAnomalyOpened,
)

# --- in ---------------------------------------------------------------------------------------


def approval_from(data: InvoiceApprovedToPay, traceparent: str | None) -> domain.Approval:
    return domain.Approval(
        invoice_id=data.invoice_id,
        payee_id=data.payee_id,
        legal_entity=data.legal_entity,
        business_unit=data.business_unit,
        currency=data.currency,
        document_type=data.document_type,
        issue_date=data.issue_date,
        payable_amount=data.payable_amount,
        po_number=data.po_number,
        po_version=data.po_version,
        decision_id=data.decision_id,
        decided_at=data.decided_at,
        traceparent=traceparent,
    )


def not_approved_from(data: InvoiceHeld | InvoiceApprovalRevoked) -> domain.NotApproved:
    if isinstance(data, InvoiceHeld):
        reasons = tuple(dict.fromkeys(h.reason for h in data.holds))
        return domain.NotApproved(data.invoice_id, data.decided_at, data.payee_id, data.po_number, reasons)
    return domain.NotApproved(data.invoice_id, data.decided_at, None, data.po_number, (data.reason,))


def verdict_from(data: PayeeEligibilityChanged) -> domain.Verdict:
    standing = domain.PayeeStanding(data.eligible, tuple(data.reasons), data.payout_account_ref)
    return domain.Verdict(data.payee_id, standing, data.profile_version, data.evaluated_at)


def po_version_from(data: PurchaseOrderVersionInForce) -> domain.PoVersion:
    po = data.po
    return domain.PoVersion(po.po_number, po.version, po.effective_from, po.effective_to, po.payment_terms)


def funding_from(data: FundingReceived) -> domain.Funding:
    return domain.Funding(
        data.funding_id, data.account_id, data.legal_entity, data.currency, data.amount, data.received_at
    )


RailData = PayoutSettled | PayoutFailed | PayoutReturned
_RAIL_MODELS: dict[domain.RailKind, type[RailData]] = {
    "settled": PayoutSettled,
    "failed": PayoutFailed,
    "returned": PayoutReturned,
}

_RAIL_EVENT_TYPES: dict[domain.RailKind, Literal["payout.settled", "payout.failed", "payout.returned"]] = {
    "settled": "payout.settled",
    "failed": "payout.failed",
    "returned": "payout.returned",
}


def rail_event_from(data: RailData) -> domain.RailEvent:
    if isinstance(data, PayoutSettled):
        return domain.RailEvent("settled", data.payout_id, data.amount, data.currency, data.settled_at)
    if isinstance(data, PayoutReturned):
        return domain.RailEvent(
            "returned", data.payout_id, data.amount, data.currency, data.returned_at, detail=data.reason
        )
    return domain.RailEvent("failed", data.payout_id, failure_code=data.failure_code, detail=data.message)


def stored_rail_event(kind: domain.RailKind, raw: dict[str, Any]) -> domain.RailEvent:
    """A rail event as first received (its data kept as JSON)."""
    return rail_event_from(_RAIL_MODELS[kind].model_validate(raw))


# --- out --------------------------------------------------------------------------------------


def funding_refused(f: domain.Funding, owner: tuple[str, str], at: datetime) -> FundingRefused:
    return FundingRefused(
        funding_id=f.funding_id,
        account_id=f.account_id,
        legal_entity=f.legal_entity,
        currency=f.currency,
        amount=f.amount,
        reasons=["funding_account_mismatch"],
        expected=" ".join(owner),
        got=f"{f.legal_entity} {f.currency}",
        refused_at=at,
    )


def payout_released(payout: domain.PlannedPayout, at: datetime) -> PayoutReleased:
    return PayoutReleased(
        payout_id=payout.payout_id,
        idempotency_key=payout.payout_id,
        run_id=payout.run_id,
        payee_id=payout.payee_id,
        payout_account_ref=payout.payout_account_ref,
        legal_entity=payout.legal_entity,
        funding_account_id=payout.funding_account_id,
        currency=payout.currency,
        amount=payout.amount,
        invoices=[
            PayoutInvoice(invoice_id=line.invoice_id, amount=line.amount, discount=line.discount or None)
            for line in payout.lines
        ],
        released_at=at,
        expedite=_expedite(payout.expedite),
    )


def _expedite(e: domain.Expedite | None) -> PayoutExpedite | None:
    if e is None:
        return None
    return PayoutExpedite(expedite_id=e.expedite_id, approved_by=e.approved_by, justification=e.justification)


def expedite_from(data: PayoutExpediteRequested) -> domain.Expedite:
    return domain.Expedite(
        data.expedite_id, data.invoice_id, data.requested_by, data.approved_by, data.justification
    )


def expedite_refused(e: domain.Expedite, reasons: list[str]) -> ExpediteRefused:
    return ExpediteRefused(expedite_id=e.expedite_id, invoice_id=e.invoice_id, reasons=reasons)


def payout_blocked(block: domain.Block, run_id: str) -> PayoutBlocked:
    return PayoutBlocked(
        invoice_id=block.invoice_id,
        payee_id=block.payee_id,
        run_id=run_id,
        reasons=list(block.reasons),
        not_before=block.not_before,
    )


_RECORDED: dict[domain.RailKind, type[PayoutRailRecorded]] = {
    "settled": PayoutSettlementRecorded,
    "failed": PayoutFailureRecorded,
    "returned": PayoutReturnRecorded,
}


def rail_detail(event: domain.RailEvent) -> str | None:
    """The failure code with its message, or the return's reason."""
    if event.failure_code:
        return event.failure_code + (f": {event.detail}" if event.detail else "")
    return event.detail


def rail_recorded(
    payout: domain.Payout, rail_event_id: str, event: domain.RailEvent, at: datetime
) -> PayoutRailRecorded:
    return _RECORDED[event.kind](
        payout_id=payout.payout_id,
        rail_event_id=rail_event_id,
        payee_id=payout.payee_id,
        legal_entity=payout.legal_entity,
        funding_account_id=payout.funding_account_id,
        currency=payout.currency,
        amount=payout.amount,
        invoice_ids=list(payout.invoice_ids),
        at=at,
        failure_code=event.failure_code,
        reason=rail_detail(event) if event.kind != "settled" else None,
        discount=payout.discount or None,
    )


def exception_opened(
    payout: domain.Payout,
    reason: Literal["payout_failed", "payout_returned"],
    event: domain.RailEvent,
    at: datetime,
) -> PayoutExceptionOpened:
    return PayoutExceptionOpened(
        payout_id=payout.payout_id,
        invoice_ids=list(payout.invoice_ids),
        payee_id=payout.payee_id,
        reason=reason,
        opened_at=at,
        detail=rail_detail(event),
    )


def rail_anomaly_opened(
    step: domain.RailStep, anomaly: domain.RailAnomaly, at: datetime
) -> RailAnomalyOpened:
    invoice_ids = list(step.payout.invoice_ids) if step.payout is not None else []
    return RailAnomalyOpened(
        payout_id=step.event.payout_id,
        rail_event_id=step.rail_event_id,
        what=anomaly.what,
        expected=anomaly.expected,
        got=anomaly.got,
        event_type=_RAIL_EVENT_TYPES[step.event.kind],
        invoice_ids=invoice_ids,
        opened_at=at,
    )
