"""Every field mapping of intake: inbound documents → domain objects, domain results → the
internal events on concord.intake.documents (SPEC §3, §4). UBL is translated in ubl.py."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from services.intake import domain
from services.intake.domain import Invoice
from services.intake.domain.common import content_hash
from services.intake.domain.invoices import AcceptedInvoice, Submission
from services.intake.domain.purchase_orders import ReceivedVersion, VersionInForce
from services.intake.domain.receipts import Receipt
from services.intake.domain.requisitions import Requisition
from shared.contracts import inbound as i
from shared.contracts import internal as n
from shared.contracts.registry import spec_of
from shared.envelope import derived_event_id
from shared.text import TextProblem


def event_id(event: Any, *parts: str) -> str:
    """Outgoing ids derive from business ids: a redelivery can never publish a second event."""
    return derived_event_id(spec_of(event).type, *parts)


def text_reasons(problems: list[TextProblem]) -> list[domain.Reason]:
    return [domain.Reason(p.code, p.field, p.message) for p in problems]


# --- requisitions ----------------------------------------------------------------------------


def requisition_approval(data: i.RequisitionApproved, approved_at: datetime) -> Requisition:
    return Requisition(
        requisition_id=data.requisition_id,
        legal_entity=data.legal_entity,
        business_unit=data.business_unit,
        requested_by=data.requested_by,
        approved_by=data.approved_by,
        amount=data.amount,
        currency=data.currency,
        approved_at=approved_at,
        content_hash=content_hash(data.model_dump(mode="json")),
    )


def requisition_accepted(
    data: i.RequisitionApproved, approved_at: datetime, approval_limit: dict[str, Any] | None
) -> n.RequisitionAccepted:
    return n.RequisitionAccepted(**data.model_dump(), approved_at=approved_at, approval_limit=approval_limit)


def requisition_closure_accepted(data: i.RequisitionClosed) -> n.RequisitionClosureAccepted:
    return n.RequisitionClosureAccepted(**data.model_dump())


# --- purchase orders -------------------------------------------------------------------------

_STATE_FIELDS = frozenset(n.PurchaseOrderState.model_fields) - {
    "version",
    "approved_by",
    "approved_at",
    "approval_limit",
}


def _po_terms(data: i.PurchaseOrderIssued | i.PurchaseOrderAmended) -> domain.PoTerms:
    return domain.PoTerms(
        po_number=data.po_number,
        version=data.version,
        currency=data.currency,
        effective_from=data.effective_from,
        effective_to=data.effective_to,
        created_by=data.created_by,
        lines=tuple(domain.PoLineTerms(ln.line_id, ln.quantity, ln.unit_price) for ln in data.lines),
        charges=tuple(domain.Charge(c.type, c.amount) for c in data.charges),
        business_unit=data.business_unit,
    )


def _state(data: i.PurchaseOrderIssued | i.PurchaseOrderAmended) -> dict[str, Any]:
    """The PO state as stored and compared: the full new state, without approval fields."""
    return data.model_dump(mode="json", include=set(_STATE_FIELDS), exclude_none=True)


def issued_version(data: i.PurchaseOrderIssued) -> ReceivedVersion:
    state = _state(data)
    return ReceivedVersion(
        terms=_po_terms(data),
        state=state,
        content_hash=content_hash({**state, "approved_by": data.approved_by}),
        created_by=data.created_by,
        amended_by=None,
        modification_id=None,
        reason=None,
        approved_by=data.approved_by,
        approved_at=data.approved_at,
    )


def amended_version(data: i.PurchaseOrderAmended) -> ReceivedVersion:
    state = _state(data)
    what = {
        **state,
        "amended_by": data.amended_by,
        "modification_id": data.modification_id,
        "reason": data.reason,
    }
    return ReceivedVersion(
        terms=_po_terms(data),
        state=state,
        content_hash=content_hash(what),
        created_by=data.created_by,
        amended_by=data.amended_by,
        modification_id=data.modification_id,
        reason=data.reason,
        approved_by=data.approved_by,
        approved_at=data.approved_at,
    )


def version_in_force(v: VersionInForce) -> n.PurchaseOrderVersionInForce:
    row = v.version
    assert row.in_force_since is not None
    return n.PurchaseOrderVersionInForce(
        po=n.PurchaseOrderState(
            **row.state,
            version=row.version,
            approved_by=row.approved_by,
            approved_at=row.approved_at,
            approval_limit=row.approval_limit,
        ),
        previous_version=row.version - 1 if v.previous is not None else None,
        changes=list(row.changes or []),
        modification_id=row.modification_id,
        amended_by=row.amended_by,
        reason=row.reason,
        in_force_since=row.in_force_since,
    )


def amendment_pending(data: i.PurchaseOrderAmended) -> n.PurchaseOrderAmendmentPending:
    return n.PurchaseOrderAmendmentPending(
        po_number=data.po_number,
        version=data.version,
        modification_id=data.modification_id,
        amended_by=data.amended_by,
        reason=data.reason,
    )


def po_closure_accepted(data: i.PurchaseOrderClosed) -> n.PurchaseOrderClosureAccepted:
    return n.PurchaseOrderClosureAccepted(**data.model_dump())


# --- receipts --------------------------------------------------------------------------------


def receipt(data: i.ReceiptRecorded) -> tuple[Receipt, list[domain.ReceiptLineQty]]:
    stored = Receipt(
        receipt_id=data.receipt_id,
        po_number=data.po_number,
        kind=data.kind,
        received_at=data.received_at,
        lines=[ln.model_dump(mode="json") for ln in data.lines],
        content_hash=content_hash(data.model_dump(mode="json")),
    )
    lines = [domain.ReceiptLineQty(ln.receipt_line_id, ln.po_line_id, ln.quantity) for ln in data.lines]
    return stored, lines


def receipt_accepted(data: i.ReceiptRecorded) -> n.ReceiptAccepted:
    return n.ReceiptAccepted(**data.model_dump())


def receipt_reversal_accepted(data: i.ReceiptReversed) -> n.ReceiptReversalAccepted:
    return n.ReceiptReversalAccepted(**data.model_dump())


# --- invoices --------------------------------------------------------------------------------


def invoice(data: i.InvoiceSubmitted) -> Invoice:
    return Invoice(
        invoice_id=data.invoice_id,
        supplier_invoice_number=data.supplier_invoice_number,
        payee_id=data.payee_id,
        legal_entity=data.legal_entity,
        document_type=data.document_type,
        issue_date=data.issue_date,
        currency=data.currency,
        po_number=data.po_number,
        replaces_invoice_id=data.replaces_invoice_id,
        lines=tuple(
            domain.InvoiceLine(
                line_id=ln.line_id,
                po_line_id=ln.po_line_id,
                item_ref=ln.item_ref,
                description=ln.description,
                quantity=ln.quantity,
                unit_price=ln.unit_price,
                allowance_charge_amount=ln.allowance_charge_amount,
                line_amount=ln.line_amount,
            )
            for ln in data.lines
        ),
        charges=tuple(domain.Charge(c.type, c.amount) for c in data.charges),
        tax_total=data.tax_total,
        total_amount=data.total_amount,
        prepaid_amount=data.prepaid_amount or Decimal(0),
        rounding_amount=data.rounding_amount or Decimal(0),
    )


def json_submission(data: i.InvoiceSubmitted) -> Submission:
    return Submission(invoice(data), "json", content_hash(data.model_dump(mode="json")))


def ubl_submission(inv: Invoice, data: i.InvoiceSubmittedUbl) -> Submission:
    """The UBL document is what was sent: its hash tells a redelivery from a conflict."""
    return Submission(inv, "ubl", content_hash(data.document))


def invoice_lines(inv: Invoice) -> list[i.InvoiceLine]:
    return [
        i.InvoiceLine(
            line_id=ln.line_id,
            po_line_id=ln.po_line_id,
            item_ref=ln.item_ref,
            description=ln.description,
            quantity=ln.quantity,
            unit_price=ln.unit_price,
            allowance_charge_amount=ln.allowance_charge_amount,
            line_amount=ln.line_amount,
        )
        for ln in inv.lines
    ]


def stored_lines(inv: Invoice) -> list[dict[str, Any]]:
    """The lines as the invoices table keeps them (what a PO flip counts as invoiced)."""
    return [ln.model_dump(mode="json", exclude_none=True) for ln in invoice_lines(inv)]


def invoice_accepted(a: AcceptedInvoice) -> n.InvoiceAccepted:
    inv, verdict = a.submission.invoice, a.verdict
    return n.InvoiceAccepted(
        invoice_id=inv.invoice_id,
        supplier_invoice_number=inv.supplier_invoice_number,
        normalised_invoice_number=inv.normalised_number,
        payee_id=inv.payee_id,
        legal_entity=inv.legal_entity,
        document_type=inv.document_type,
        issue_date=inv.issue_date,
        currency=inv.currency,
        po_number=inv.po_number,
        replaces_invoice_id=inv.replaces_invoice_id,
        lines=invoice_lines(inv),
        charges=[i.InvoiceCharge(type=c.type, amount=c.amount) for c in inv.charges],
        tax_total=inv.tax_total,
        total_amount=inv.total_amount,
        prepaid_amount=inv.prepaid_amount,
        rounding_amount=inv.rounding_amount,
        payable_amount=inv.payable_amount,
        business_unit=verdict.business_unit,
        suspected_duplicate_of=a.suspected_duplicate_of,
        route_to_no_po_review=verdict.route_to_no_po_review,
        origin=a.submission.origin,
        flip_id=a.submission.flip_id,
    )


# --- PO flip ---------------------------------------------------------------------------------


def known_po(po_number: str, state: dict[str, Any], closed: bool) -> domain.KnownPo:
    return domain.KnownPo(
        po_number=po_number,
        payee_id=state["payee_id"],
        legal_entity=state["legal_entity"],
        currency=state["currency"],
        business_unit=state["business_unit"],
        closed=closed,
    )


def flip_po(state: dict[str, Any], closed: bool) -> domain.FlipPo:
    return domain.FlipPo(
        po_number=state["po_number"],
        payee_id=state["payee_id"],
        legal_entity=state["legal_entity"],
        currency=state["currency"],
        closed=closed,
        lines=tuple(
            domain.FlipPoLine(
                line_id=ln["line_id"],
                item_ref=ln["item_ref"],
                description=ln.get("description"),
                quantity=Decimal(ln["quantity"]),
                unit_price=Decimal(ln["unit_price"]),
            )
            for ln in state["lines"]
        ),
    )
