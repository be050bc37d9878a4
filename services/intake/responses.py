"""Intake's Invoice Responses (SPEC §12.3): `AB` when an invoice is accepted, `RE` with every
reason when an invoice is rejected. Emitted on behalf of the submission, in the transaction that
decides it; `AB` goes out before `invoice.accepted`, so no later status of the invoice can reach
the topic before it.

Not answered with `RE`: a PO flip (the supplier sent nothing; Concord built the invoice) and a
resubmission under the id of an invoice already accepted (`duplicate_invoice_id`): that invoice
stands, and telling its supplier "rejected" under its id would be false.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.intake.domain import Invoice, Reason
from shared import invoice_response as ir
from shared.consumer import BatchContext, Item
from shared.contracts import inbound as i
from shared.contracts.outbound import InvoiceResponseIssued
from shared.envelope import Envelope, derived_event_id
from shared.unit_of_work import UnitOfWork


def acknowledge(ctx: BatchContext, item: Item[Any], inv: Invoice) -> None:
    _emit(ctx, item, ir.issue(_ref(inv), ir.Status.ACKNOWLEDGED, item.envelope.event_id, _at(item)))


def reject(ctx: BatchContext, item: Item[Any], reasons: Sequence[Reason], inv: Invoice | None) -> None:
    ref = _rejected_ref(item.data, inv)
    if ref is None or not reasons or any(r.code == "duplicate_invoice_id" for r in reasons):
        return
    findings = [ir.Finding(r.code, r.message, r.field) for r in reasons]
    _emit(ctx, item, ir.issue(ref, ir.Status.REJECTED, item.envelope.event_id, _at(item), findings))


def reject_invalid(uow: UnitOfWork, envelope: Envelope, reasons: list[dict[str, str]]) -> None:
    """`RE` for an invoice whose record broke the contract itself (a missing or mistyped field),
    rejected by the consumer before any handler: whatever identity it carries is used as given."""
    if envelope.event_type not in _INVOICE_TYPES or not reasons:
        return
    data = envelope.data if isinstance(envelope.data, dict) else {}
    invoice_id = _printable(data.get("invoice_id"))
    if invoice_id is None:
        return  # nothing to key the answer by; document.rejected still says why
    ubl = envelope.event_type == "invoice.submitted_ubl"
    ref = ir.InvoiceRef(
        invoice_id,
        None if ubl else _printable(data.get("supplier_invoice_number")),
        None if ubl else _printable(data.get("payee_id")),
        None if ubl else _printable(data.get("legal_entity")),
        "credit_note" if data.get("document_type") == "credit_note" else "invoice",
    )
    findings = [ir.Finding(r["code"], r["message"], r.get("field")) for r in reasons]
    response = ir.issue(ref, ir.Status.REJECTED, envelope.event_id, envelope.occurred_at, findings)
    uow.emit_event(
        response, key=invoice_id, event_id=derived_event_id("invoice_response.issued", response.response_id)
    )


_INVOICE_TYPES = frozenset({"invoice.submitted", "invoice.submitted_ubl"})


def _printable(value: Any) -> str | None:
    """A field of an invalid record, if it is text that can be published as it is."""
    if isinstance(value, str) and value and value.isprintable() and len(value) <= 200:
        return value
    return None


def _rejected_ref(data: Any, inv: Invoice | None) -> ir.InvoiceRef | None:
    if inv is not None and isinstance(data, i.InvoiceSubmitted | i.InvoiceSubmittedUbl):
        return _ref(inv)
    if isinstance(data, i.InvoiceSubmitted):
        return ir.InvoiceRef(
            data.invoice_id,
            data.supplier_invoice_number,
            data.payee_id,
            data.legal_entity,
            data.document_type,
        )
    if isinstance(data, i.InvoiceSubmittedUbl):
        # Unreadable: nobody to address the document to, but the invoice id still gets its answer.
        return ir.InvoiceRef(data.invoice_id, None, None, None)
    return None


def _at(item: Item[Any]) -> datetime:
    # As intake's other events: the submission's time, so a re-run issues the identical response.
    return item.envelope.occurred_at


def _ref(inv: Invoice) -> ir.InvoiceRef:
    return ir.InvoiceRef(
        inv.invoice_id, inv.supplier_invoice_number, inv.payee_id, inv.legal_entity, inv.document_type
    )


def _emit(ctx: BatchContext, item: Item[Any], response: InvoiceResponseIssued) -> None:
    event_id = derived_event_id("invoice_response.issued", response.response_id)
    ctx.emit_for(item, response, key=response.invoice_id, event_id=event_id)
