"""Intake's handlers: one per inbound event type — load → decide (domain) → save + emit.

Everything accepted goes to concord.intake.documents keyed by po_number (an invoice without a
PO: its invoice_id; a requisition: its requisition_id). Everything refused goes out as
document.rejected with every reason found (ctx.reject). Outgoing event ids are derived from
the business ids, so a redelivery or re-run can never publish a second, different event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeAlias

import asyncpg
import structlog
from pydantic import BaseModel

from services.intake import domain, store
from services.intake.domain import Invoice, Reason
from services.intake.policy import load_intake_policy
from services.intake.ubl import parse_ubl
from shared import text
from shared.consumer import HandlerContext, Router
from shared.contracts import inbound as i
from shared.contracts import internal as n
from shared.envelope import derived_event_id
from shared.topics import (
    IN_COMMANDS,
    IN_INVOICES,
    IN_PURCHASE_ORDERS,
    IN_RECEIPTS,
    IN_REQUISITIONS,
    INTAKE_DOCUMENTS,
    OUT_REJECTIONS,
)

log = structlog.get_logger(__name__)

router = Router(
    "intake",
    topics=[IN_REQUISITIONS, IN_PURCHASE_ORDERS, IN_RECEIPTS, IN_INVOICES, IN_COMMANDS],
    reject_invalid_data=True,
)
router.emits(
    INTAKE_DOCUMENTS,
    "requisition.accepted",
    "requisition.closure_accepted",
    "purchase_order.version_in_force",
    "purchase_order.amendment_pending",
    "purchase_order.closure_accepted",
    "receipt.accepted",
    "receipt.reversal_accepted",
    "invoice.accepted",
)
router.emits(OUT_REJECTIONS, "document.rejected")

REJECTED = "rejected"
DUPLICATE = "duplicate"  # the same document again under a new event id: acknowledged, nothing emitted

# A po_versions row: as read (asyncpg.Record) or as about to be written / just updated (dict).
Row: TypeAlias = Mapping[str, Any] | asyncpg.Record


def _reject(ctx: HandlerContext, reasons: list[Reason]) -> str:
    ctx.reject([r.as_dict() for r in reasons])
    log.info("document_rejected", codes=sorted({r.code for r in reasons}))
    return REJECTED


def _too_large(ctx: HandlerContext) -> str | None:
    size = len(ctx.record.value)
    if size > domain.MAX_PAYLOAD_BYTES:
        return _reject(ctx, [domain.payload_too_large(size)])
    return None


IntakeHandler: TypeAlias = Callable[[HandlerContext, Any], Awaitable[str]]


def _handles(event_type: str) -> Callable[[IntakeHandler], IntakeHandler]:
    """router.handles, behind the checks every inbound document passes first: the size limit,
    then the text rules of SPEC §15 (every string NFC-normalised; `invalid_characters` for an
    identifier with control, format or whitespace characters or any text with control
    characters). The handler gets the normalised document, so what is stored, hashed and
    published is the NFC form. A UBL document is checked once parsed (accept_invoice)."""

    def register(handler: IntakeHandler) -> IntakeHandler:
        async def guarded(ctx: HandlerContext, data: Any) -> str:
            if (large := _too_large(ctx)) is not None:
                return large
            clean, problems = text.check_text(data, skip=_UNPARSED_TEXT)
            if problems:
                return _reject(ctx, _text_reasons(problems))
            return await handler(ctx, clean)

        router.handles(event_type)(guarded)
        return handler

    return register


# Fields that are documents in their own right, checked after parsing.
_UNPARSED_TEXT = frozenset({"document"})


def _text_reasons(problems: list[text.TextProblem]) -> list[Reason]:
    return [Reason(p.code, p.field, p.message) for p in problems]


def _emit(ctx: HandlerContext, key: str, event_type: str, payload: BaseModel, *id_parts: str) -> None:
    ctx.emit(INTAKE_DOCUMENTS, key, event_type, payload, event_id=derived_event_id(event_type, *id_parts))


# --- requisitions ----------------------------------------------------------------------------


@_handles("requisition.approved")
async def on_requisition_approved(ctx: HandlerContext, data: i.RequisitionApproved) -> str:
    max_amount = load_intake_policy(ctx.settings.policy_file).max_amount
    reasons = domain.requisition_reasons(
        data.requested_by, data.approved_by, data.amount, data.currency, max_amount
    )
    digest = store.content_hash(data.model_dump(mode="json"))
    existing = await store.requisition(ctx.conn, data.requisition_id)
    if existing is not None and existing["content_hash"] is not None:
        if existing["content_hash"] == digest:
            return DUPLICATE
        reasons.append(
            Reason("duplicate_requisition", "requisition_id", "already approved with other content")
        )
    if reasons:
        return _reject(ctx, reasons)
    approved_at = ctx.envelope.occurred_at
    await store.save_requisition_approval(
        ctx.conn,
        requisition_id=data.requisition_id,
        legal_entity=data.legal_entity,
        business_unit=data.business_unit,
        requested_by=data.requested_by,
        approved_by=data.approved_by,
        amount=data.amount,
        currency=data.currency,
        approved_at=approved_at,
        content_hash=digest,
    )
    payload = n.RequisitionAccepted(**data.model_dump(), approved_at=approved_at)
    _emit(ctx, data.requisition_id, "requisition.accepted", payload, data.requisition_id)
    return "accepted"


@_handles("requisition.closed")
async def on_requisition_closed(ctx: HandlerContext, data: i.RequisitionClosed) -> str:
    existing = await store.requisition(ctx.conn, data.requisition_id)
    if existing is None or existing["approved_at"] is None:
        return _reject(ctx, [Reason("unknown_requisition", "requisition_id", "no approved requisition")])
    if existing["closed_at"] is not None:
        return DUPLICATE
    if existing["converted_po_number"] is not None:
        return _reject(
            ctx,
            [
                Reason(
                    "requisition_converted",
                    "requisition_id",
                    f"already converted to PO {existing['converted_po_number']}",
                )
            ],
        )
    await store.close_requisition(ctx.conn, data.requisition_id, data.closed_by, data.reason, ctx.now)
    payload = n.RequisitionClosureAccepted(**data.model_dump())
    _emit(ctx, data.requisition_id, "requisition.closure_accepted", payload, data.requisition_id)
    return "accepted"


# --- purchase orders -------------------------------------------------------------------------


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
    )


_STATE_FIELDS = frozenset(n.PurchaseOrderState.model_fields) - {"version", "approved_by", "approved_at"}


def _state(data: i.PurchaseOrderIssued | i.PurchaseOrderAmended) -> dict[str, Any]:
    """The PO state as stored and compared: the full new state, without approval fields."""
    return data.model_dump(mode="json", include=set(_STATE_FIELDS), exclude_none=True)


def _same_version_again(
    ctx: HandlerContext, po_number: str, version: int, digest: str, versions: Mapping[int, Row]
) -> str | None:
    """A version already received: the same content is a redelivery; different content a conflict."""
    row = versions.get(version)
    if row is None:
        return None
    if row["content_hash"] == digest:
        return DUPLICATE
    return _reject(
        ctx,
        [
            Reason(
                "version_conflict", "version", f"PO {po_number} version {version} exists with other content"
            )
        ],
    )


def _utc(at: datetime) -> datetime:
    """A timestamp as it reads back from a timestamptz column (the in-memory row must match)."""
    return at.astimezone(UTC)


async def _bring_into_force(
    ctx: HandlerContext,
    po_number: str,
    header: store.PoHeader,
    versions: Mapping[int, Row],
    received: dict[str, Any] | None = None,
) -> list[int]:
    """Put every version that may now be in force into force, strictly in order (SPEC §5).

    `header` and `versions` are what the handler read after locking the PO row, with its own
    changes applied: no one else can change them while the lock is held, so they are not read
    again. `received` is a version the handler has decided to record but not yet written: if it
    comes into force at once it is inserted in force rather than inserted and then updated."""
    if received is not None:
        versions = {**versions, received["version"]: received}
    slots = {
        v: domain.VersionSlot(v, row["amended_by"] if row["kind"] == "amended" else None, row["approved_by"])
        for v, row in versions.items()
        if row["status"] in ("pending", "approved")
    }
    newly = domain.versions_coming_into_force(header.in_force_version, slots)
    if received is not None and received["version"] not in newly:
        await store.insert_po_version(ctx.conn, **received)
    for version in newly:
        row = versions[version]
        previous = versions.get(version - 1)
        state = dict(row["state"])
        changes = domain.po_changes(previous["state"], state) if previous is not None else []
        previous_sow = previous["state"].get("sow_ref") if previous is not None else None
        in_force = store.InForce(changes=changes, previous_sow_ref=previous_sow, at=ctx.now)
        if received is not None and version == received["version"]:
            await store.insert_po_version(ctx.conn, **received, in_force=in_force)
        else:
            await store.put_in_force(ctx.conn, po_number, version, in_force)
        payload = n.PurchaseOrderVersionInForce(
            po=n.PurchaseOrderState(
                **state, version=version, approved_by=row["approved_by"], approved_at=row["approved_at"]
            ),
            previous_version=version - 1 if previous is not None else None,
            changes=changes,
            modification_id=row["modification_id"],
            amended_by=row["amended_by"],
            reason=row["reason"],
            in_force_since=ctx.now,
        )
        _emit(ctx, po_number, "purchase_order.version_in_force", payload, po_number, str(version))
        if version == 1 and state.get("requisition_id"):
            await store.mark_requisition_converted(ctx.conn, state["requisition_id"], po_number, ctx.now)
    if newly:
        # Only the last one counts: one header update however many versions came into force.
        await store.set_in_force_version(ctx.conn, po_number, newly[-1])
    return newly


@_handles("purchase_order.issued")
async def on_po_issued(ctx: HandlerContext, data: i.PurchaseOrderIssued) -> str:
    ctx.business_ref = f"po_number={data.po_number}"
    reasons = domain.sod_reasons_for_issue(data.created_by, data.approved_by)
    reasons += domain.po_terms_reasons(
        _po_terms(data), load_intake_policy(ctx.settings.policy_file).max_amount
    )
    if data.version != 1:
        reasons.append(
            Reason("invalid_version", "version", "an issued PO is version 1; later ones are amendments")
        )
    header = await store.lock_po(ctx.conn, data.po_number)
    if header.closed:
        reasons.append(Reason("po_closed", "po_number", f"PO {data.po_number} is closed"))
    state = _state(data)
    digest = store.content_hash({**state, "approved_by": data.approved_by})
    versions = await store.po_versions(ctx.conn, data.po_number)
    if (again := _same_version_again(ctx, data.po_number, data.version, digest, versions)) is not None:
        return again
    if reasons:
        return _reject(ctx, reasons)
    received = dict(
        po_number=data.po_number,
        version=1,
        kind="issued",
        status="approved",
        state=state,
        content_hash=digest,
        created_by=data.created_by,
        amended_by=None,
        modification_id=None,
        reason=None,
        approved_by=data.approved_by,
        approved_at=_utc(data.approved_at),
        received_at=ctx.now,
        source_event_id=ctx.envelope.event_id,
    )
    newly = await _bring_into_force(ctx, data.po_number, header, versions, received)
    return "in_force" if newly else "waiting"


@_handles("purchase_order.amended")
async def on_po_amended(ctx: HandlerContext, data: i.PurchaseOrderAmended) -> str:
    ctx.business_ref = f"po_number={data.po_number}"
    reasons = domain.po_terms_reasons(
        _po_terms(data), load_intake_policy(ctx.settings.policy_file).max_amount
    )
    header = await store.lock_po(ctx.conn, data.po_number)
    if header.closed:
        reasons.append(Reason("po_closed", "po_number", f"PO {data.po_number} is closed"))
    state = _state(data)
    digest = store.content_hash(
        {
            **state,
            "amended_by": data.amended_by,
            "modification_id": data.modification_id,
            "reason": data.reason,
        }
    )
    versions = await store.po_versions(ctx.conn, data.po_number)
    if (again := _same_version_again(ctx, data.po_number, data.version, digest, versions)) is not None:
        if again == DUPLICATE and domain.is_independent_approval(data.amended_by, data.approved_by):
            assert data.approved_by is not None
            # The same amendment re-sent with its approval: treat it as the approval.
            return await _approve(
                ctx, header, versions, data.version, data.approved_by, data.approved_at or ctx.now
            )
        return again
    if header.in_force_version is not None and data.version <= header.in_force_version:
        reasons.append(
            Reason("version_conflict", "version", f"version {header.in_force_version} is in force")
        )
    if reasons:
        return _reject(ctx, reasons)
    approved_by, approved_at = data.approved_by, data.approved_at
    if not domain.is_independent_approval(data.amended_by, approved_by):
        approved_by, approved_at = None, None
        for early in await store.early_approvals(ctx.conn, data.po_number, data.version):
            if domain.is_independent_approval(data.amended_by, early["approved_by"]):
                approved_by, approved_at = early["approved_by"], early["approved_at"]
                break
    independent = approved_by is not None
    received = dict(
        po_number=data.po_number,
        version=data.version,
        kind="amended",
        status="approved" if independent else "pending",
        state=state,
        content_hash=digest,
        created_by=data.created_by,
        amended_by=data.amended_by,
        modification_id=data.modification_id,
        reason=data.reason,
        approved_by=approved_by,
        approved_at=_utc(approved_at or ctx.now) if independent else None,
        received_at=ctx.now,
        source_event_id=ctx.envelope.event_id,
    )
    if not independent:
        pending = n.PurchaseOrderAmendmentPending(
            po_number=data.po_number,
            version=data.version,
            modification_id=data.modification_id,
            amended_by=data.amended_by,
            reason=data.reason,
        )
        _emit(
            ctx,
            data.po_number,
            "purchase_order.amendment_pending",
            pending,
            data.po_number,
            str(data.version),
        )
    newly = await _bring_into_force(ctx, data.po_number, header, versions, received)
    if data.version in newly:
        return "in_force"
    return "pending" if not independent else "waiting_for_predecessor"


async def _approve(
    ctx: HandlerContext,
    header: store.PoHeader,
    versions: Mapping[int, Row],
    version: int,
    approved_by: str,
    approved_at: Any,
) -> str:
    """`header` and `versions` as read under the PO row lock."""
    po_number = header.po_number
    row = versions.get(version)
    if row is None:
        # The approval overtook its amendment: keep it until the amendment arrives.
        await store.park_approval(
            ctx.conn, po_number, version, approved_by, approved_at, ctx.envelope.event_id
        )
        return "approval_waiting_for_amendment"
    if row["kind"] != "amended":
        return _reject(ctx, [Reason("invalid_version", "version", "version 1 is approved on issue")])
    if row["status"] in ("in_force", "superseded") or row["status"] == "approved":
        return DUPLICATE
    if not domain.is_independent_approval(row["amended_by"], approved_by):
        return _reject(
            ctx, [Reason("sod_violation", "approved_by", "an amendment cannot be approved by its own author")]
        )
    await store.approve_po_version(ctx.conn, po_number, version, approved_by, approved_at)
    # The row was pending (checked above, under the lock), so the UPDATE did exactly this.
    approved = {**row, "approved_by": approved_by, "approved_at": _utc(approved_at), "status": "approved"}
    newly = await _bring_into_force(ctx, po_number, header, {**versions, version: approved})
    return "in_force" if version in newly else "waiting_for_predecessor"


@_handles("purchase_order.amendment_approved")
async def on_po_amendment_approved(ctx: HandlerContext, data: i.PurchaseOrderAmendmentApproved) -> str:
    header = await store.lock_po(ctx.conn, data.po_number)
    if header.closed:
        return _reject(ctx, [Reason("po_closed", "po_number", f"PO {data.po_number} is closed")])
    versions = await store.po_versions(ctx.conn, data.po_number)
    return await _approve(ctx, header, versions, data.version, data.approved_by, data.approved_at)


@_handles("purchase_order.closed")
async def on_po_closed(ctx: HandlerContext, data: i.PurchaseOrderClosed) -> str:
    header = await store.lock_po(ctx.conn, data.po_number)
    if header.closed:
        return DUPLICATE
    # Closing a PO intake has no version of yet is recorded too: a late issue is then refused
    # and matching never matches against it.
    await store.close_po(ctx.conn, data.po_number, data.closed_by, data.reason, ctx.now)
    payload = n.PurchaseOrderClosureAccepted(**data.model_dump())
    _emit(ctx, data.po_number, "purchase_order.closure_accepted", payload, data.po_number)
    return "accepted"


# --- receipts --------------------------------------------------------------------------------


@_handles("receipt.recorded")
async def on_receipt_recorded(ctx: HandlerContext, data: i.ReceiptRecorded) -> str:
    lines = [domain.ReceiptLineQty(ln.receipt_line_id, ln.po_line_id, ln.quantity) for ln in data.lines]
    existing_hash, po_line_ids = await store.receipt_check(ctx.conn, data.receipt_id, data.po_number)
    reasons = domain.receipt_reasons(lines, po_line_ids)
    digest = store.content_hash(data.model_dump(mode="json"))
    if existing_hash is not None:  # content_hash is NOT NULL: None means no such receipt
        if existing_hash == digest:
            return DUPLICATE
        reasons.append(
            Reason("duplicate_receipt", "receipt_id", f"{data.receipt_id} exists with other content")
        )
    if reasons:
        return _reject(ctx, reasons)
    await store.insert_receipt(
        ctx.conn,
        data.receipt_id,
        data.po_number,
        data.kind,
        data.received_at,
        [ln.model_dump(mode="json") for ln in data.lines],
        digest,
    )
    _emit(ctx, data.po_number, "receipt.accepted", n.ReceiptAccepted(**data.model_dump()), data.receipt_id)
    return "accepted"


@_handles("receipt.reversed")
async def on_receipt_reversed(ctx: HandlerContext, data: i.ReceiptReversed) -> str:
    existing = await store.receipt(ctx.conn, data.receipt_id)
    if existing is None:
        return _reject(ctx, [Reason("unknown_receipt", "receipt_id", f"no receipt {data.receipt_id}")])
    if existing["po_number"] != data.po_number:
        return _reject(ctx, [Reason("invalid_po_reference", "po_number", "the receipt is for another PO")])
    if existing["reversed_at"] is not None:
        return DUPLICATE
    await store.reverse_receipt(ctx.conn, data.receipt_id, data.reversed_by, data.reason, ctx.now)
    payload = n.ReceiptReversalAccepted(**data.model_dump())
    _emit(ctx, data.po_number, "receipt.reversal_accepted", payload, data.receipt_id)
    return "accepted"


# --- invoices --------------------------------------------------------------------------------


def _invoice_from_json(data: i.InvoiceSubmitted) -> Invoice:
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


def _accepted_payload(inv: Invoice, verdict: domain.InvoiceVerdict, suspected: list[str], origin: str,
                      flip_id: str | None) -> n.InvoiceAccepted:  # fmt: skip
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
        lines=[
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
        ],
        charges=[i.InvoiceCharge(type=c.type, amount=c.amount) for c in inv.charges],
        tax_total=inv.tax_total,
        total_amount=inv.total_amount,
        prepaid_amount=inv.prepaid_amount,
        rounding_amount=inv.rounding_amount,
        payable_amount=inv.payable_amount,
        business_unit=verdict.business_unit,
        suspected_duplicate_of=suspected,
        route_to_no_po_review=verdict.route_to_no_po_review,
        origin=origin,
        flip_id=flip_id,
    )


async def accept_invoice(
    ctx: HandlerContext, inv: Invoice, *, origin: str, digest: str, flip_id: str | None = None
) -> str:
    """Every invoice — JSON, UBL or PO flip — passes the same checks (SPEC §5)."""
    ctx.business_ref = f"invoice_id={inv.invoice_id}"
    found = await store.invoice_lookup(
        ctx.conn,
        inv.invoice_id,
        inv.replaces_invoice_id or None,
        inv.payee_id,
        inv.currency,
        inv.total_amount,
        inv.issue_date,
    )
    if found.earlier is not None:
        if found.earlier.content_hash == digest:
            return DUPLICATE
        return _reject(
            ctx, [Reason("duplicate_invoice_id", "invoice_id", f"{inv.invoice_id} was already accepted")]
        )
    po = await store.known_po(ctx.conn, inv.po_number) if inv.po_number else None
    policy = load_intake_policy(ctx.settings.policy_file)
    verdict = domain.check_invoice(inv, po, policy.no_po, policy.max_amount)
    reasons = list(verdict.reasons)
    reasons += domain.correction_reasons(inv, found.original)
    if reasons and inv.normalised_number:
        # Refused anyway: say too whether the number is taken, without claiming it.
        holder = await store.registered_number(
            ctx.conn, inv.payee_id, inv.normalised_number, inv.document_type
        )
        if holder is not None and holder != inv.replaces_invoice_id:
            reasons.append(domain.exact_duplicate_reason(inv, holder))
    if reasons:
        return _reject(ctx, reasons)
    # The unique key decides, also between two instances racing on the same number. Nothing
    # else is wrong with the invoice here, so claiming straight away (no SELECT first) gives the
    # same answer: a number held by another invoice is refused and left as it was.
    holder = await store.register_number(
        ctx.conn,
        inv.payee_id,
        inv.normalised_number,
        inv.document_type,
        inv.invoice_id,
        inv.replaces_invoice_id,
    )
    if holder is not None:
        return _reject(ctx, [domain.exact_duplicate_reason(inv, holder)])
    suspected = domain.suspected_duplicates(inv, found.candidates)
    payload = _accepted_payload(inv, verdict, suspected, origin, flip_id)
    await store.insert_invoice(
        ctx.conn,
        invoice_id=inv.invoice_id,
        payee_id=inv.payee_id,
        legal_entity=inv.legal_entity,
        document_type=inv.document_type,
        supplier_invoice_number=inv.supplier_invoice_number,
        normalised_number=inv.normalised_number,
        currency=inv.currency,
        issue_date=inv.issue_date,
        total_amount=inv.total_amount,
        payable_amount=inv.payable_amount,
        po_number=inv.po_number,
        lines=[ln.model_dump(mode="json", exclude_none=True) for ln in payload.lines],
        origin=origin,
        flip_id=flip_id,
        replaces_invoice_id=inv.replaces_invoice_id,
        content_hash=digest,
        accepted_at=ctx.now,
    )
    _emit(ctx, inv.po_number or inv.invoice_id, "invoice.accepted", payload, inv.invoice_id)
    log.debug("invoice_accepted", invoice_id=inv.invoice_id, po_number=inv.po_number, payee_id=inv.payee_id,
             suspected_duplicates=len(suspected), origin=origin)  # fmt: skip
    return "accepted"


@_handles("invoice.submitted")
async def on_invoice_submitted(ctx: HandlerContext, data: i.InvoiceSubmitted) -> str:
    inv = _invoice_from_json(data)
    return await accept_invoice(
        ctx, inv, origin="json", digest=store.content_hash(data.model_dump(mode="json"))
    )


@_handles("invoice.submitted_ubl")
async def on_invoice_submitted_ubl(ctx: HandlerContext, data: i.InvoiceSubmittedUbl) -> str:
    parsed = parse_ubl(data.invoice_id, data.document)
    if parsed.invoice is None:
        return _reject(ctx, list(parsed.reasons))
    inv, problems = text.check_text(parsed.invoice)
    if problems:
        return _reject(ctx, _text_reasons(problems))
    return await accept_invoice(ctx, inv, origin="ubl", digest=store.content_hash(data.document))


# --- PO flip ---------------------------------------------------------------------------------


def _flip_po(state: dict[str, Any], closed: bool) -> domain.FlipPo:
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


@_handles("po_flip.requested")
async def on_po_flip_requested(ctx: HandlerContext, data: i.PoFlipRequested) -> str:
    ctx.business_ref = f"flip_id={data.flip_id}"
    if await store.invoice_by_flip(ctx.conn, data.flip_id) is not None:
        return DUPLICATE  # one flip_id, one invoice, ever
    found = await store.po_in_force(ctx.conn, data.po_number)
    if found is None:
        return _reject(ctx, [Reason("unknown_po", "po_number", f"no PO {data.po_number} in force")])
    state, closed = found
    invoiced = await store.invoiced_quantities(ctx.conn, data.po_number)
    inv, reasons = domain.build_flip_invoice(
        data.flip_id, _flip_po(state, closed), data.line_quantities, invoiced, ctx.now.date()
    )
    if inv is None:
        return _reject(ctx, reasons)
    return await accept_invoice(
        ctx, inv, origin="po_flip", digest=store.content_hash({"flip_id": data.flip_id}), flip_id=data.flip_id
    )
