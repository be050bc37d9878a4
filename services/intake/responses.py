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
from shared.envelope import derived_event_id


def acknowledge(ctx: BatchContext, item: Item[Any], inv: Invoice) -> None:
    _emit(ctx, item, ir.issue(_ref(inv), ir.Status.ACKNOWLEDGED, item.envelope.event_id, _at(item)))


def reject(ctx: BatchContext, item: Item[Any], reasons: Sequence[Reason], inv: Invoice | None) -> None:
    ref = _rejected_ref(item.data, inv)
    if ref is None or not reasons or any(r.code == "duplicate_invoice_id" for r in reasons):
        return
    findings = [ir.Finding(r.code, r.message, r.field) for r in reasons]
    _emit(ctx, item, ir.issue(ref, ir.Status.REJECTED, item.envelope.event_id, _at(item), findings))


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
