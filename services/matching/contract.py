"""Every field mapping of matching: inbound and internal events → domain steps and objects;
domain notices → the events matching publishes. Nothing else in the service copies fields."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from services.matching import domain
from services.matching.domain import batch as b
from shared.contracts.common import Approval
from shared.contracts.inbound import HoldOverrideRequested, InvoiceRematchRequested
from shared.contracts.internal import (
    AppliedOverride,
    ApprovedLine,
    HeldHold,
    InvoiceAccepted,
    InvoiceApprovalRevoked,
    InvoiceApprovedToPay,
    InvoiceHeld,
    InvoiceSuperseded,
    PurchaseOrderClosureAccepted,
    PurchaseOrderState,
    PurchaseOrderVersionInForce,
    ReceiptAccepted,
    ReceiptReversalAccepted,
    RequisitionAccepted,
)
from shared.contracts.outbound import HoldEscalated, HoldOpened, HoldReleased, OverrideRefused
from shared.envelope import Envelope, derived_event_id

# --- inbound → domain -------------------------------------------------------------------------


def purchase_order_from(po: PurchaseOrderState) -> domain.PurchaseOrder:
    return domain.PurchaseOrder(
        po_number=po.po_number,
        version=po.version,
        legal_entity=po.legal_entity,
        business_unit=po.business_unit,
        payee_id=po.payee_id,
        currency=po.currency,
        effective_from=po.effective_from,
        effective_to=po.effective_to,
        lines=tuple(domain.PoLine(pl.line_id, pl.category, pl.quantity, pl.unit_price) for pl in po.lines),
        charges=tuple(domain.Charge(c.type, c.amount) for c in po.charges),
        match_mode=po.match_mode,
        approved_by=po.approved_by,
        approved_at=po.approved_at,
        created_by=po.created_by,
        requisition_id=po.requisition_id,
    )


def invoice_from(inv: InvoiceAccepted, seq: int = 0) -> domain.Invoice:
    return domain.Invoice(
        invoice_id=inv.invoice_id,
        seq=seq,
        payee_id=inv.payee_id,
        legal_entity=inv.legal_entity,
        currency=inv.currency,
        document_type=inv.document_type,
        issue_date=inv.issue_date,
        lines=tuple(
            domain.InvoiceLine(
                ln.line_id,
                ln.po_line_id,
                ln.quantity,
                ln.unit_price,
                ln.line_amount,
                ln.allowance_charge_amount or Decimal(0),
            )
            for ln in inv.lines
        ),
        tax_total=inv.tax_total,
        total_amount=inv.total_amount,
        payable_amount=inv.payable_amount,
        po_number=inv.po_number,
        charges=tuple(domain.Charge(c.type, c.amount) for c in inv.charges),
        replaces_invoice_id=inv.replaces_invoice_id,
        business_unit=inv.business_unit,
        suspected_duplicate_of=tuple(inv.suspected_duplicate_of),
        route_to_no_po_review=inv.route_to_no_po_review,
    )


def receipt_lines_from(lines: Any) -> tuple[domain.ReceiptLine, ...]:
    """Receipt lines as stored (jsonb, as received) → domain."""
    return tuple(domain.ReceiptLine(ln["po_line_id"], Decimal(str(ln["quantity"]))) for ln in lines)


def _document(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


def _po_version(e: PurchaseOrderVersionInForce, env: Envelope) -> b.Step:
    return b.AddPoVersion(purchase_order_from(e.po), _document(e.po), e.in_force_since, env.event_id)


def _po_closed(e: PurchaseOrderClosureAccepted, env: Envelope) -> b.Step:
    return b.ClosePo(e.po_number, e.closed_by, e.reason, env.occurred_at, env.event_id)


def _requisition(e: RequisitionAccepted, env: Envelope) -> b.Step:
    return b.NoteRequisition(e.requisition_id, e.requested_by)


def _receipt(e: ReceiptAccepted, env: Envelope) -> b.Step:
    lines = tuple(_document(ln) for ln in e.lines)
    receipt = domain.Receipt(e.receipt_id, e.kind, e.received_at, receipt_lines_from(lines))
    return b.AddReceipt(receipt, e.po_number, lines, env.event_id)


def _reversal(e: ReceiptReversalAccepted, env: Envelope) -> b.Step:
    return b.ReverseReceipt(e.receipt_id, e.po_number, e.reversed_by, e.reason, env.occurred_at, env.event_id)


def _invoice(e: InvoiceAccepted, env: Envelope) -> b.Step:
    return b.AddInvoice(invoice_from(e), _document(e), env.occurred_at, env.event_id)


def _rematch(e: InvoiceRematchRequested, env: Envelope) -> b.Step:
    return b.RequestRematch(e.invoice_id, env.event_id)


def _override(e: HoldOverrideRequested, env: Envelope) -> b.Step:
    request = domain.OverrideRequest(
        override_id=e.override_id,
        invoice_id=e.invoice_id,
        hold_reasons=None if e.hold_reasons == "all" else tuple(e.hold_reasons),
        reason_code=e.reason_code,
        requested_by=e.requested_by,
        approved_by=e.approved_by,
        evidence=tuple(e.evidence),
    )
    return b.RequestOverride(request, e.justification, e.ledger_ref, env.event_id)


# Every event matching consumes and the step it is in its PO's history (SPEC §6 triggers).
STEPS: dict[type[BaseModel], Callable[[Any, Envelope], b.Step]] = {
    PurchaseOrderVersionInForce: _po_version,
    PurchaseOrderClosureAccepted: _po_closed,
    RequisitionAccepted: _requisition,
    ReceiptAccepted: _receipt,
    ReceiptReversalAccepted: _reversal,
    InvoiceAccepted: _invoice,
    InvoiceRematchRequested: _rematch,
    HoldOverrideRequested: _override,
}


def step_of(event: BaseModel, envelope: Envelope) -> b.Step:
    return STEPS[type(event)](event, envelope)


# --- domain → outbound ------------------------------------------------------------------------


def _notice(h: b.Hold) -> dict[str, Any]:
    return {
        "hold_id": h.hold_id,
        "invoice_id": h.invoice_id,
        "po_number": h.po_number,
        "line_id": h.line_id,
        "reason": h.reason,
        "queue": h.queue,
        "owner": h.owner,
        "opened_at": h.opened_at,
        "due_by": h.due_by,
        "evidence_required": list(h.evidence_required),
        "next_action": h.next_action,
    }


def hold_escalated(h: b.Hold, now: datetime) -> tuple[HoldEscalated, str]:
    return HoldEscalated(**_notice(h), escalated_at=now), derived_event_id(
        "matching", "hold.escalated", h.hold_id
    )


def event_of(notice: b.Notice, now: datetime) -> tuple[BaseModel, str, str]:
    """(event, key, event_id) of what a notice publishes; every id is derived, so a redelivered
    record that decides the same publishes nothing new downstream."""
    if isinstance(notice, b.HoldOpened):
        h = notice.hold
        opened = HoldOpened(**_notice(h), lapsed_override_id=h.lapsed_override_id)
        return opened, h.invoice_id, derived_event_id("matching", "hold.opened", h.hold_id)
    if isinstance(notice, b.HoldReleased):
        h = notice.hold
        assert h.released_by is not None and h.released_at is not None and h.releasing_event_id
        released = HoldReleased(
            **_notice(h),
            released_by=h.released_by,
            released_at=h.released_at,
            releasing_event_id=h.releasing_event_id,
            override_id=h.override_id,
            approved_by=h.approved_by,
        )
        return released, h.invoice_id, derived_event_id("matching", "hold.released", h.hold_id)
    if isinstance(notice, b.OverrideRefused):
        refused = OverrideRefused(
            override_id=notice.override_id, invoice_id=notice.invoice_id, reasons=list(notice.reasons)
        )
        return refused, notice.invoice_id, notice.event_id
    return decision_event(notice, now), notice.invoice.invoice_id, notice.event_id


def decision_event(d: b.Decided, now: datetime) -> BaseModel:
    inv = d.invoice
    if d.kind == "approval_revoked":
        return InvoiceApprovalRevoked(
            invoice_id=inv.invoice_id,
            po_number=inv.po_number,
            reason=d.revoked_because,
            decided_at=now,
            decision_id=d.decision_id,
        )
    if d.kind == "superseded":
        assert isinstance(d.outcome, domain.Superseded)
        return InvoiceSuperseded(
            invoice_id=inv.invoice_id, superseded_by=d.outcome.by, po_number=inv.po_number
        )
    if d.kind == "held":
        return InvoiceHeld(
            invoice_id=inv.invoice_id,
            po_number=inv.po_number,
            payee_id=inv.payee_id,
            holds=[
                HeldHold(
                    hold_id=h.hold_id, reason=h.reason, line_id=h.line_id, queue=h.queue, action=h.action
                )
                for h in d.holds
            ],
            decided_at=now,
        )
    return approved_to_pay(d, now)


def approved_to_pay(d: b.Decided, now: datetime) -> InvoiceApprovedToPay:
    inv, outcome, po = d.invoice, d.outcome, d.po
    assert isinstance(outcome, domain.Approved)
    approvals: list[Approval] = []
    if po is not None:
        approvals.append(
            Approval(
                by=po.approved_by,
                role="po_approver",
                at=po.approved_at,
                what=f"purchase_order {po.po_number} v{po.version}",
            )
        )
    for o in d.overrides:
        released = ", ".join(f"{r}{'@' + ln if ln else ''}" for r, ln in sorted(o.scope, key=str))
        approvals.append(
            Approval(
                by=o.approved_by,
                role="override_approver",
                at=o.decided_at,
                what=f"override {o.override_id} ({o.reason_code}) released {released}",
            )
        )
    return InvoiceApprovedToPay(
        invoice_id=inv.invoice_id,
        po_number=inv.po_number,
        po_version=outcome.po_version,
        payee_id=inv.payee_id,
        legal_entity=inv.legal_entity,
        business_unit=outcome.business_unit,
        currency=inv.currency,
        document_type=inv.document_type,
        issue_date=inv.issue_date,
        payable_amount=inv.payable_amount,
        tax_total=inv.tax_total,
        charges_total=outcome.charges_total,
        lines=[
            ApprovedLine(
                line_id=ln.line_id,
                po_line_id=ln.po_line_id,
                category=ln.category,
                match_mode=ln.match_mode,
                quantity=ln.quantity,
                invoice_unit_price=ln.invoice_unit_price,
                po_unit_price=ln.po_unit_price,
                matched_amount=ln.matched_amount,
                variance_amount=ln.variance_amount,
                line_amount=ln.line_amount,
            )
            for ln in outcome.lines
        ],
        receipt_ids=list(outcome.receipt_ids),
        override_ids=list(outcome.override_ids),
        approvals=approvals,
        decided_at=now,
        decision_id=d.decision_id,
        overrides=[
            AppliedOverride(
                override_id=o.override_id,
                approved_by=o.approved_by,
                requested_by=o.requested_by,
                reason_code=o.reason_code,
                justification=o.justification,
                evidence=list(o.evidence),
                hold_reasons=sorted({reason for reason, _ in o.scope}),
            )
            for o in d.overrides
        ],
    )
