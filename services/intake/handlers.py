"""Intake's handlers: one per inbound event class, each over a run of records of its type —
admit (size, text) → load (store, a few queries for the run) → decide (domain, record by record
in offset order) → write once (store) → emit (contract).

Everything accepted goes to concord.intake.documents keyed by po_number (an invoice without a
PO: its invoice_id; a requisition: its requisition_id). Everything refused goes out as
document.rejected with every reason found. Outgoing event ids are derived from the business ids,
so a redelivery or re-run can never publish a second, different event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel

from services.intake import contract, domain, responses, store
from services.intake.config import IntakeConfig
from services.intake.domain import FlipPo, Invoice, Reason, build_flip_invoice
from services.intake.domain.flip import FlipDesk
from services.intake.domain.invoices import InvoiceBook, InvoiceDecision, Submission
from services.intake.domain.outcome import Outcome
from services.intake.domain.purchase_orders import PoDecision
from services.intake.ubl import parse_ubl
from services.intake.ubl_order import Translation, parse_order
from services.intake.ubl_receipt import parse_receipt_advice
from shared import text
from shared.consumer import BatchContext, Item, Router
from shared.contracts import inbound as i
from shared.contracts import internal as n
from shared.contracts import outbound as o
from shared.contracts.registry import spec_of
from shared.topics import IN_COMMANDS, IN_INVOICES, IN_PURCHASE_ORDERS, IN_RECEIPTS, IN_REQUISITIONS

log = structlog.get_logger(__name__)

router = Router(
    "intake",
    topics=[IN_REQUISITIONS, IN_PURCHASE_ORDERS, IN_RECEIPTS, IN_INVOICES, IN_COMMANDS],
    reject_invalid_data=True,
)
for _event in (
    n.RequisitionAccepted,
    n.RequisitionClosureAccepted,
    n.PurchaseOrderVersionInForce,
    n.PurchaseOrderAmendmentPending,
    n.PurchaseOrderClosureAccepted,
    n.ReceiptAccepted,
    n.ReceiptReversalAccepted,
    n.InvoiceAccepted,
    o.DocumentRejected,
    o.InvoiceResponseIssued,
):
    router.emits(spec_of(_event).topic, spec_of(_event).type)

# An invoice refused by the consumer itself (a missing or mistyped field) is answered RE too.
router.on_invalid_data = responses.reject_invalid

M = TypeVar("M", bound=BaseModel)
# Fields that are documents in their own right, checked after parsing.
_UNPARSED_TEXT = frozenset({"document"})


def _config(ctx: BatchContext) -> IntakeConfig:
    # Service(config=IntakeConfig.load) sets it at start (tests.support.deliver does the same).
    config: IntakeConfig = ctx.config
    return config


def _reject(
    ctx: BatchContext, item: Item[Any], reasons: Sequence[Reason], inv: Invoice | None = None
) -> None:
    ctx.reject(item, [r.as_dict() for r in reasons])
    responses.reject(ctx, item, reasons, inv)  # RE to the supplier when it was an invoice (SPEC §12.3)
    item.outcome = Outcome.REJECTED
    log.debug("document_rejected", codes=sorted({r.code for r in reasons}))


def _admit(ctx: BatchContext, items: list[Item[M]]) -> list[tuple[Item[M], M]]:
    """The checks every inbound document passes first: the size limit, then the text rules of
    SPEC §15 (every string NFC-normalised; `invalid_characters` for an identifier with control,
    format or whitespace characters or any text with control characters). What is decided,
    stored, hashed and published is the normalised document. A UBL document is checked once
    parsed."""
    admitted = []
    for item in items:
        if (size := len(item.record.value)) > domain.MAX_PAYLOAD_BYTES:
            _reject(ctx, item, [domain.payload_too_large(size)])
            continue
        clean, problems = text.check_text(item.data, skip=_UNPARSED_TEXT)
        if problems:
            _reject(ctx, item, contract.text_reasons(problems))
            continue
        admitted.append((item, clean))
    return admitted


def _emit(ctx: BatchContext, item: Item[Any], event: BaseModel, key: str, *id_parts: str) -> None:
    ctx.emit_for(item, event, key=key, event_id=contract.event_id(event, *id_parts))


# --- requisitions ----------------------------------------------------------------------------


@router.handles_batch(i.RequisitionApproved)
async def on_requisition_approved(ctx: BatchContext, items: list[Item[i.RequisitionApproved]]) -> None:
    admitted = _admit(ctx, items)
    book = await store.requisitions(ctx.conn, (d.requisition_id for _, d in admitted), ctx.now)
    for item, data in admitted:
        decision = book.approve(
            contract.requisition_approval(data, item.envelope.occurred_at),
            _config(ctx).authority,
            _config(ctx).max_amount,
        )
        if decision.outcome is Outcome.ACCEPTED:
            row = book.rows[data.requisition_id]
            accepted = contract.requisition_accepted(data, item.envelope.occurred_at, row.approval_limit)
            _emit(ctx, item, accepted, data.requisition_id, data.requisition_id)
        _settle(ctx, item, decision.outcome, decision.reasons)
    await store.save_requisitions(ctx.conn, book)


@router.handles_batch(i.RequisitionClosed)
async def on_requisition_closed(ctx: BatchContext, items: list[Item[i.RequisitionClosed]]) -> None:
    admitted = _admit(ctx, items)
    book = await store.requisitions(ctx.conn, (d.requisition_id for _, d in admitted), ctx.now)
    for item, data in admitted:
        decision = book.close(data.requisition_id, data.closed_by, data.reason)
        if decision.outcome is Outcome.ACCEPTED:
            _emit(
                ctx,
                item,
                contract.requisition_closure_accepted(data),
                data.requisition_id,
                data.requisition_id,
            )
        _settle(ctx, item, decision.outcome, decision.reasons)
    await store.save_requisitions(ctx.conn, book)


def _settle(ctx: BatchContext, item: Item[Any], outcome: Outcome, reasons: Sequence[Reason]) -> None:
    if outcome is Outcome.REJECTED:
        _reject(ctx, item, reasons)
    else:
        item.outcome = outcome


# --- purchase orders -------------------------------------------------------------------------


def _emit_po(ctx: BatchContext, item: Item[Any], po_number: str, decision: PoDecision) -> None:
    item.business_ref = f"po_number={po_number}"
    for v in decision.in_force:
        _emit(ctx, item, contract.version_in_force(v), po_number, po_number, str(v.version.version))
    _settle(ctx, item, decision.outcome, decision.reasons)


@router.handles_batch(i.PurchaseOrderIssued)
async def on_po_issued(ctx: BatchContext, items: list[Item[i.PurchaseOrderIssued]]) -> None:
    await _issue_pos(ctx, [(item, data, None) for item, data in _admit(ctx, items)])


async def _issue_pos(
    ctx: BatchContext, admitted: Sequence[tuple[Item[Any], i.PurchaseOrderIssued, Translation | None]]
) -> None:
    """Version 1 of each PO, from JSON or translated from a Peppol Order (whose reasons then
    name the document's elements)."""
    book = await store.lock_pos(ctx.conn, (d.po_number for _, d, _ in admitted), ctx.now)
    for item, data, translation in admitted:
        decision = book.issue(
            contract.issued_version(data),
            _config(ctx).max_amount,
            item.envelope.event_id,
            _config(ctx).authority,
        )
        if translation is not None:
            decision.reasons = translation.locate(decision.reasons)
        _emit_po(ctx, item, data.po_number, decision)
    await store.save_pos(ctx.conn, book)


@router.handles_batch(i.PurchaseOrderSubmittedUbl)
async def on_po_submitted_ubl(ctx: BatchContext, items: list[Item[i.PurchaseOrderSubmittedUbl]]) -> None:
    """SPEC §12.2: a Peppol Order is the `purchase_order.issued` it maps to, then every §5 rule."""
    config = _config(ctx)
    admitted = []
    for item, data in _admit(ctx, items):
        translation = parse_order(data, config.charge_codes, config.order_validity_days)
        po = _translated(ctx, item, translation, i.PurchaseOrderIssued, "po_number")
        if po is not None:
            admitted.append((item, po, translation))
    await _issue_pos(ctx, admitted)


@router.handles_batch(i.PurchaseOrderAmended)
async def on_po_amended(ctx: BatchContext, items: list[Item[i.PurchaseOrderAmended]]) -> None:
    admitted = _admit(ctx, items)
    book = await store.lock_pos(ctx.conn, (d.po_number for _, d in admitted), ctx.now)
    for item, data in admitted:
        decision = book.amend(
            contract.amended_version(data),
            _config(ctx).max_amount,
            item.envelope.event_id,
            _config(ctx).authority,
        )
        if decision.pending:
            _emit(
                ctx, item, contract.amendment_pending(data), data.po_number, data.po_number, str(data.version)
            )
        _emit_po(ctx, item, data.po_number, decision)
    await store.save_pos(ctx.conn, book)


@router.handles_batch(i.PurchaseOrderAmendmentApproved)
async def on_po_amendment_approved(
    ctx: BatchContext, items: list[Item[i.PurchaseOrderAmendmentApproved]]
) -> None:
    admitted = _admit(ctx, items)
    book = await store.lock_pos(ctx.conn, (d.po_number for _, d in admitted), ctx.now)
    for item, d in admitted:
        decision = book.approve_amendment(
            d.po_number,
            d.version,
            d.approved_by,
            d.approved_at,
            item.envelope.event_id,
            _config(ctx).authority,
        )
        _settle(ctx, item, decision.outcome, decision.reasons)
        for v in decision.in_force:
            _emit(ctx, item, contract.version_in_force(v), d.po_number, d.po_number, str(v.version.version))
    await store.save_pos(ctx.conn, book)


@router.handles_batch(i.PurchaseOrderClosed)
async def on_po_closed(ctx: BatchContext, items: list[Item[i.PurchaseOrderClosed]]) -> None:
    admitted = _admit(ctx, items)
    book = await store.lock_pos(ctx.conn, (d.po_number for _, d in admitted), ctx.now)
    for item, data in admitted:
        decision = book.close(data.po_number, data.closed_by, data.reason)
        if decision.closed:
            _emit(ctx, item, contract.po_closure_accepted(data), data.po_number, data.po_number)
        _settle(ctx, item, decision.outcome, decision.reasons)
    await store.save_pos(ctx.conn, book)


# --- receipts --------------------------------------------------------------------------------


@router.handles_batch(i.ReceiptRecorded)
async def on_receipt_recorded(ctx: BatchContext, items: list[Item[i.ReceiptRecorded]]) -> None:
    await _record_receipts(ctx, [(item, data, None) for item, data in _admit(ctx, items)])


async def _record_receipts(
    ctx: BatchContext, admitted: Sequence[tuple[Item[Any], i.ReceiptRecorded, Translation | None]]
) -> None:
    ids, pos = [d.receipt_id for _, d, _ in admitted], [d.po_number for _, d, _ in admitted]
    book = await store.receipts(ctx.conn, ids, pos, ctx.now)
    for item, data, translation in admitted:
        decision = book.record(*contract.receipt(data))
        if decision.outcome is Outcome.ACCEPTED:
            _emit(ctx, item, contract.receipt_accepted(data), data.po_number, data.receipt_id)
        reasons = translation.locate(decision.reasons) if translation is not None else decision.reasons
        _settle(ctx, item, decision.outcome, reasons)
    await store.save_receipts(ctx.conn, book)


@router.handles_batch(i.ReceiptRecordedUbl)
async def on_receipt_recorded_ubl(ctx: BatchContext, items: list[Item[i.ReceiptRecordedUbl]]) -> None:
    """SPEC §12.2: a UBL ReceiptAdvice is the `receipt.recorded` it maps to, then every §5 rule."""
    admitted = []
    for item, data in _admit(ctx, items):
        translation = parse_receipt_advice(data)
        receipt = _translated(ctx, item, translation, i.ReceiptRecorded, "po_number")
        if receipt is not None:
            admitted.append((item, receipt, translation))
    await _record_receipts(ctx, admitted)


def _translated(
    ctx: BatchContext, item: Item[Any], translation: Translation, model: type[M], key_field: str
) -> M | None:
    """The JSON document a UBL one stands for, once it passed the text rules and names the PO
    its Kafka key names (the key keeps one PO's documents in order on one partition; SPEC §15
    `key_mismatch`). None: rejected with every reason, at the document's XML paths."""
    if translation.model is None:
        _reject(ctx, item, translation.reasons)
        return None
    assert isinstance(translation.model, model)
    clean, problems = text.check_text(translation.model)
    reasons = translation.locate(contract.text_reasons(problems))
    raw_key, named = item.record.key, getattr(clean, key_field)
    key = raw_key.decode("utf-8", "replace") if raw_key is not None else None
    if key is not None and key != named:
        reasons.append(
            Reason(
                "key_mismatch", translation.origin(key_field), f"the record's key {key!r} is not {named!r}"
            )
        )
    if reasons:
        _reject(ctx, item, reasons)
        return None
    return clean


@router.handles_batch(i.ReceiptReversed)
async def on_receipt_reversed(ctx: BatchContext, items: list[Item[i.ReceiptReversed]]) -> None:
    admitted = _admit(ctx, items)
    book = await store.receipts(ctx.conn, [d.receipt_id for _, d in admitted], [], ctx.now)
    for item, data in admitted:
        decision = book.reverse(data.receipt_id, data.po_number, data.reversed_by, data.reason)
        if decision.outcome is Outcome.ACCEPTED:
            _emit(ctx, item, contract.receipt_reversal_accepted(data), data.po_number, data.receipt_id)
        _settle(ctx, item, decision.outcome, decision.reasons)
    await store.save_receipts(ctx.conn, book)


# --- invoices --------------------------------------------------------------------------------


def _submit(ctx: BatchContext, book: InvoiceBook, item: Item[Any], submission: Submission) -> None:
    """Every invoice — JSON, UBL or PO flip — passes the same checks (SPEC §5)."""
    item.business_ref = f"invoice_id={submission.invoice.invoice_id}"
    _settle_invoice(ctx, item, submission.invoice, book.submit(submission))


def _settle_invoice(
    ctx: BatchContext, item: Item[Any], inv: Invoice | None, decision: InvoiceDecision
) -> None:
    if decision.accepted is not None and inv is not None:
        responses.acknowledge(ctx, item, inv)  # AB first: nothing later about it can overtake it
        accepted = contract.invoice_accepted(decision.accepted)
        _emit(ctx, item, accepted, inv.po_number or inv.invoice_id, inv.invoice_id)
    if decision.outcome is Outcome.REJECTED:
        _reject(ctx, item, decision.reasons, inv)
    else:
        _settle(ctx, item, decision.outcome, decision.reasons)


@router.handles_batch(i.InvoiceSubmitted)
async def on_invoice_submitted(ctx: BatchContext, items: list[Item[i.InvoiceSubmitted]]) -> None:
    admitted = [(item, contract.json_submission(d)) for item, d in _admit(ctx, items)]
    book = await store.invoice_book(ctx.conn, [s.invoice for _, s in admitted], _config(ctx))
    for item, submission in admitted:
        _submit(ctx, book, item, submission)
    await store.save_invoices(ctx.conn, book, ctx.now)


@router.handles_batch(i.InvoiceSubmittedUbl)
async def on_invoice_submitted_ubl(ctx: BatchContext, items: list[Item[i.InvoiceSubmittedUbl]]) -> None:
    admitted = []
    for item, data in _admit(ctx, items):
        parsed = parse_ubl(data.invoice_id, data.document, _config(ctx).charge_codes)
        if parsed.invoice is None:
            _reject(ctx, item, list(parsed.reasons))
            continue
        inv, problems = text.check_text(parsed.invoice)
        if problems:
            _reject(ctx, item, contract.text_reasons(problems), parsed.invoice)
        else:
            admitted.append((item, contract.ubl_submission(inv, data)))
    book = await store.invoice_book(ctx.conn, [s.invoice for _, s in admitted], _config(ctx))
    for item, submission in admitted:
        _submit(ctx, book, item, submission)
    await store.save_invoices(ctx.conn, book, ctx.now)


# --- PO flip ---------------------------------------------------------------------------------


@router.handles_batch(i.PoFlipRequested)
async def on_po_flip_requested(ctx: BatchContext, items: list[Item[i.PoFlipRequested]]) -> None:
    """SPEC §5 PO flip: an invoice from the PO in force, checked as any other invoice."""
    admitted = _admit(ctx, items)
    po_numbers = [d.po_number for _, d in admitted]
    pos = {
        p: contract.flip_po(*found) for p, found in (await store.pos_in_force(ctx.conn, po_numbers)).items()
    }
    desk = FlipDesk(
        book=await store.invoice_book(
            ctx.conn, _flip_shapes(admitted, pos, ctx.now), _config(ctx), any_total=True
        ),
        pos=pos,
        invoiced=await store.invoiced_quantities(ctx.conn, po_numbers),
        done=await store.flipped(ctx.conn, [d.flip_id for _, d in admitted]),
        today=ctx.now.date(),
    )
    for item, data in admitted:
        item.business_ref = f"flip_id={data.flip_id}"
        invoice, decision = desk.flip(data.flip_id, data.po_number, data.line_quantities)
        if invoice is not None:
            item.business_ref = f"invoice_id={invoice.invoice_id}"
        _settle_invoice(ctx, item, invoice, decision)
    await store.save_invoices(ctx.conn, desk.book, ctx.now)


def _flip_shapes(
    admitted: list[tuple[Item[i.PoFlipRequested], i.PoFlipRequested]], pos: dict[str, FlipPo], now: datetime
) -> list[Invoice]:
    """The invoices the flips would make on their own: their ids, numbers, payees and POs are
    what the InvoiceBook loads (their totals may still change: any_total)."""
    shapes = [
        build_flip_invoice(d.flip_id, pos[d.po_number], d.line_quantities, {}, now.date())[0]
        for _, d in admitted
        if d.po_number in pos
    ]
    return [s for s in shapes if s is not None]
