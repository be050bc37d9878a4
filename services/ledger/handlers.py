"""Ledger handlers: contract model → domain fact → journal entry + documents projection + outbox.

Each handler runs in the batch's transaction; every posted entry is announced as
`journal.entry_posted` on concord.out.journal (key entry_id) with an event id derived from the
entry id, so a redelivery or re-run announces the same entry under the same id.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.ledger import domain as d
from services.ledger import store
from shared.consumer import HandlerContext, Router
from shared.contracts.common import Approval
from shared.contracts.inbound import FundingReceived
from shared.contracts.internal import (
    InvoiceAccepted,
    InvoiceApprovalRevoked,
    InvoiceApprovedToPay,
    InvoiceHeld,
    InvoiceSuperseded,
    PayeeEligibilityChanged,
    PayoutFailureRecorded,
    PayoutRailRecorded,
    PayoutReturnRecorded,
    PayoutSettlementRecorded,
    PurchaseOrderAmendmentPending,
    PurchaseOrderClosureAccepted,
    PurchaseOrderVersionInForce,
    ReceiptAccepted,
    ReceiptReversalAccepted,
    RequisitionAccepted,
    RequisitionClosureAccepted,
)
from shared.contracts.outbound import (
    JournalApproval,
    JournalEntryPosted,
    JournalLine,
    JournalLinks,
    PayoutReleased,
)
from shared.envelope import Envelope, derived_event_id
from shared.topics import (
    COMPLIANCE_ELIGIBILITY,
    IN_COMMANDS,
    IN_FUNDING,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_JOURNAL,
    OUT_PAYOUTS,
    PAYOUTS_EVENTS,
)
from shared.unit_of_work import UnitOfWork

router = Router(
    "ledger",
    topics=[
        INTAKE_DOCUMENTS,
        MATCHING_DECISIONS,
        OUT_PAYOUTS,
        PAYOUTS_EVENTS,
        IN_FUNDING,
        COMPLIANCE_ELIGIBILITY,
        IN_COMMANDS,  # only for deadletter.replay_requested (SPEC §11): the ledger has no other command
    ],
)
router.emits(OUT_JOURNAL, "journal.entry_posted")


# --- posting and announcing ----------------------------------------------------------------


def entry_posted(
    entry: d.Entry, *, entry_id: str, source_event_id: str, source_event_type: str, ctx: UnitOfWork
) -> JournalEntryPosted:
    links = entry.links
    return JournalEntryPosted(
        entry_id=entry_id,
        source_event_id=source_event_id,
        source_event_type=source_event_type,
        posted_at=ctx.now,
        description=entry.description,
        lines=[
            JournalLine(
                account=ln.account,
                currency=ln.currency,
                debit=ln.debit if ln.debit else None,
                credit=ln.credit if ln.credit else None,
            )
            for ln in entry.lines
        ],
        links=JournalLinks(
            po_number=links.po_number,
            po_version=links.po_version,
            invoice_ids=list(links.invoice_ids),
            receipt_ids=list(links.receipt_ids),
            payout_id=links.payout_id,
            override_ids=list(links.override_ids),
            approvals=[JournalApproval(by=a.by, role=a.role, at=a.at, what=a.what) for a in links.approvals],
        ),
    )


async def post(
    ctx: UnitOfWork,
    entry: d.Entry | None,
    *,
    source_event_id: str | None = None,
    source_event_type: str | None = None,
) -> str | None:
    """Append the entry (once per source event and per business fact) and announce it.

    Returns the entry id when posted now, None when there was nothing to post or it was
    already posted (then nothing is announced a second time)."""
    if entry is None:
        return None
    assert ctx.cause is not None
    source_id = source_event_id or ctx.cause.event_id
    source_type = source_event_type or ctx.cause.event_type
    entry_id = d.entry_id_for(source_id)
    if not await store.insert_entry(
        ctx.conn,
        entry,
        entry_id=entry_id,
        source_event_id=source_id,
        source_event_type=source_type,
        posted_at=ctx.now,
    ):
        return None
    ctx.emit(
        OUT_JOURNAL,
        entry_id,
        "journal.entry_posted",
        entry_posted(
            entry, entry_id=entry_id, source_event_id=source_id, source_event_type=source_type, ctx=ctx
        ),
        event_id=derived_event_id("journal.entry_posted", entry_id),
    )
    return entry_id


def true_up_grni_after_batch(ctx: HandlerContext, po_number: str | None) -> None:
    """Once per batch and PO, after every record: GRNI = open received quantities × price in force."""
    if po_number is not None:
        ctx.after_records("grni", po_number, true_up_grni)


async def true_up_grni(uow: UnitOfWork, asks: Sequence[tuple[str, Envelope]]) -> None:
    po_numbers = [po for po, _ in asks]
    # Everything below is read after the lock, so it includes a concurrent transaction's true-up.
    await store.lock_grni_of(uow.conn, po_numbers)
    pos = await store.pos_in_force(uow.conn, po_numbers)
    receipts = await store.posted_receipts_of(uow.conn, po_numbers)
    approvals = await store.approvals_in_force_of(uow.conn, po_numbers)
    balances = await store.grni_balances(uow.conn, po_numbers)
    for po_number, cause in asks:
        po = pos.get(po_number)
        if po is None:
            continue
        if any(
            qty < 0 for qty in d.received_minus_approved(receipts[po_number], approvals[po_number]).values()
        ):
            continue  # an approval came before the receipts it consumed: wait for them
        open_qty = d.open_received_quantities(receipts[po_number], approvals[po_number])
        actual = balances.get((po_number, po.currency), d.ZERO)
        entry = d.post_grni_true_up(po, d.grni_target(po, open_qty), actual, cause.event_id)
        await post(
            uow.caused_by(cause),
            entry,
            source_event_id=f"{cause.event_id}:grni:{po_number}",
            source_event_type="grni.true_up",
        )


# --- concord.intake.documents ---------------------------------------------------------------


@router.handles("requisition.accepted")
async def on_requisition_accepted(ctx: HandlerContext, data: RequisitionAccepted) -> str:
    await store.save_requisition(
        ctx.conn,
        requisition_id=data.requisition_id,
        legal_entity=data.legal_entity,
        business_unit=data.business_unit,
        currency=data.currency,
        amount=data.amount,
        requested_by=data.requested_by,
        approved_by=data.approved_by,
        approved_at=data.approved_at,
    )
    return "recorded"


@router.handles("requisition.closure_accepted")
async def on_requisition_closed(ctx: HandlerContext, data: RequisitionClosureAccepted) -> str:
    await store.close_requisition(
        ctx.conn, data.requisition_id, data.closed_by, data.reason, ctx.envelope.occurred_at
    )
    return "recorded"


@router.handles("purchase_order.version_in_force")
async def on_po_version_in_force(ctx: HandlerContext, data: PurchaseOrderVersionInForce) -> str:
    po, receipts_pending = await store.save_po_version(ctx.conn, data.model_dump(mode="json"))
    # Receipts that arrived before their PO post now, under their own source event, so the
    # journal is the same whichever came first.
    pending = await store.pending_receipts(ctx.conn, po.po_number) if receipts_pending else []
    posted = 0
    for receipt, source_event_id, source_event_type in pending:
        entry_id = await post(
            ctx,
            d.post_receipt(receipt, po),
            source_event_id=source_event_id,
            source_event_type=source_event_type,
        )
        await store.set_receipt_status(
            ctx.conn, receipt.receipt_id, "posted" if entry_id else "no_value", entry_id
        )
        posted += 1
    # A price change moves the GRNI of received, not yet invoiced quantities: the true-up does it.
    true_up_grni_after_batch(ctx, po.po_number)
    return f"recorded; {posted} pending receipt(s) posted" if posted else "recorded"


@router.handles("purchase_order.amendment_pending")
async def on_po_amendment_pending(ctx: HandlerContext, data: PurchaseOrderAmendmentPending) -> str:
    await store.save_pending_amendment(
        ctx.conn,
        po_number=data.po_number,
        version=data.version,
        modification_id=data.modification_id,
        amended_by=data.amended_by,
        reason=data.reason,
        recorded_at=ctx.envelope.occurred_at,
    )
    return "recorded"


@router.handles("purchase_order.closure_accepted")
async def on_po_closed(ctx: HandlerContext, data: PurchaseOrderClosureAccepted) -> str:
    await store.save_po_closure(
        ctx.conn, data.po_number, data.closed_by, data.reason, ctx.envelope.occurred_at
    )
    return "recorded"


def to_receipt(data: ReceiptAccepted) -> d.Receipt:
    return d.Receipt(
        receipt_id=data.receipt_id,
        po_number=data.po_number,
        lines=tuple(d.ReceiptLine(ln.po_line_id, ln.quantity) for ln in data.lines),
        recorded_by=data.recorded_by,
    )


@router.handles("receipt.accepted")
async def on_receipt_accepted(ctx: HandlerContext, data: ReceiptAccepted) -> str:
    existing, po = await store.receipt_state_and_po(ctx.conn, data.receipt_id, data.po_number)

    async def remember(status: str, entry_id: str | None) -> None:
        await store.save_receipt(
            ctx.conn,
            receipt=data.model_dump(mode="json"),
            source_event_id=ctx.envelope.event_id,
            source_event_type="receipt.accepted",
            status=status,
            entry_id=entry_id,
        )

    if existing is not None and existing.status in ("dropped", "reversed"):
        await remember(existing.status, existing.entry_id)  # reversed before we saw it: never posts
        return "already_reversed"
    if existing is not None and existing.status in ("posted", "no_value"):
        return "already_posted"
    if po is None:
        await remember("pending", None)
        return "pending_po"
    entry_id = await post(ctx, d.post_receipt(to_receipt(data), po))
    await remember("posted" if entry_id else "no_value", entry_id)
    true_up_grni_after_batch(ctx, data.po_number)
    return "posted" if entry_id else "no_value"


@router.handles("receipt.reversal_accepted")
async def on_receipt_reversed(ctx: HandlerContext, data: ReceiptReversalAccepted) -> str:
    state, original = await store.receipt_state_and_entry(ctx.conn, data.receipt_id)
    action = d.on_receipt_reversed(state)

    async def remember(status: str) -> None:
        await store.record_receipt_reversal(
            ctx.conn,
            receipt_id=data.receipt_id,
            po_number=data.po_number,
            reversed_by=data.reversed_by,
            reason=data.reason,
            reversed_at=ctx.envelope.occurred_at,
            status=status,
        )

    if action == "reverse_entry":
        assert state is not None and state.entry_id is not None and original is not None
        reversal = d.reverse_entry(
            original,
            state.entry_id,
            kind="receipt_reversal",
            fact_key=f"receipt_reversal:{data.receipt_id}",
            description=f"Receipt {data.receipt_id} reversed by {data.reversed_by}: {data.reason}",
        )
        await post(ctx, reversal)
        await remember("reversed")
        true_up_grni_after_batch(ctx, data.po_number)
        return "reversed"
    if action in ("drop", "remember"):
        # Nothing was posted: a pending receipt is dropped; an unseen one will never post.
        await remember("dropped")
        return "dropped"
    await remember(state.status if state else "dropped")
    return "nothing_to_reverse"


@router.handles("invoice.accepted")
async def on_invoice_accepted(ctx: HandlerContext, data: InvoiceAccepted) -> str:
    await store.save_invoice(ctx.conn, data.model_dump(mode="json"), ctx.envelope.occurred_at)
    return "recorded"


# --- concord.matching.decisions -------------------------------------------------------------


def to_approval(a: Approval) -> d.Approval:
    return d.Approval(by=a.by, what=a.what, role=a.role, at=a.at)


def to_invoice_approval(data: InvoiceApprovedToPay) -> d.InvoiceApproval:
    return d.InvoiceApproval(
        invoice_id=data.invoice_id,
        decision_id=data.decision_id,
        payee_id=data.payee_id,
        business_unit=data.business_unit,
        currency=data.currency,
        document_type=data.document_type,
        payable_amount=data.payable_amount,
        tax_total=data.tax_total,
        charges_total=data.charges_total,
        lines=tuple(
            d.ApprovedLine(ln.line_id, ln.match_mode, ln.matched_amount, ln.variance_amount, ln.line_amount)
            for ln in data.lines
        ),
        po_number=data.po_number,
        po_version=data.po_version,
        receipt_ids=tuple(data.receipt_ids),
        override_ids=tuple(data.override_ids),
        approvals=tuple(to_approval(a) for a in data.approvals),
    )


@router.handles("invoice.approved_to_pay")
async def on_invoice_approved(ctx: HandlerContext, data: InvoiceApprovedToPay) -> str:
    active_approval = await store.save_decision_and_active_approval(
        ctx.conn,
        source_event_id=ctx.envelope.event_id,
        kind="approved_to_pay",
        payload=data.model_dump(mode="json"),
    )
    fact = to_invoice_approval(data)
    if active_approval is None:
        entry = d.post_invoice_approval(fact)
    else:
        active_id, active = active_approval
        if active.fact_key == f"approval:{data.decision_id}":
            return "already_posted"
        entry = d.post_reapproval(fact, active, active_id)
    true_up_grni_after_batch(ctx, data.po_number)
    return "posted" if await post(ctx, entry) else "nothing_to_post"


@router.handles("invoice.approval_revoked")
async def on_approval_revoked(ctx: HandlerContext, data: InvoiceApprovalRevoked) -> str:
    active_approval = await store.save_decision_and_active_approval(
        ctx.conn,
        source_event_id=ctx.envelope.event_id,
        kind="approval_revoked",
        payload=data.model_dump(mode="json"),
    )
    if active_approval is None:
        return "nothing_to_reverse"
    active_id, active = active_approval
    reversal = d.reverse_entry(
        active,
        active_id,
        kind="approval_reversal",
        fact_key=f"revocation:{data.decision_id}",
        description=f"Approval of invoice {data.invoice_id} revoked: {data.reason}",
    )
    true_up_grni_after_batch(ctx, active.links.po_number)
    return "reversed" if await post(ctx, reversal) else "already_posted"


@router.handles("invoice.held")
async def on_invoice_held(ctx: HandlerContext, data: InvoiceHeld) -> str:
    await store.save_decision(
        ctx.conn, source_event_id=ctx.envelope.event_id, kind="held", payload=data.model_dump(mode="json")
    )
    return "recorded"


@router.handles("invoice.superseded")
async def on_invoice_superseded(ctx: HandlerContext, data: InvoiceSuperseded) -> str:
    await store.save_decision(
        ctx.conn,
        source_event_id=ctx.envelope.event_id,
        kind="superseded",
        payload=data.model_dump(mode="json"),
    )
    return "recorded"


# --- money movements ------------------------------------------------------------------------


@router.handles("payout.released")
async def on_payout_released(ctx: HandlerContext, data: PayoutReleased) -> str:
    await store.save_payout(ctx.conn, data.model_dump(mode="json"))
    release = d.PayoutRelease(
        payout_id=data.payout_id,
        payee_id=data.payee_id,
        funding_account_id=data.funding_account_id,
        currency=data.currency,
        amount=data.amount,
        invoice_ids=tuple(i.invoice_id for i in data.invoices),
    )
    return "posted" if await post(ctx, d.post_payout_released(release)) else "already_posted"


def to_rail_outcome(data: PayoutRailRecorded) -> d.RailOutcome:
    return d.RailOutcome(
        payout_id=data.payout_id,
        rail_event_id=data.rail_event_id,
        payee_id=data.payee_id,
        funding_account_id=data.funding_account_id,
        currency=data.currency,
        amount=data.amount,
        invoice_ids=tuple(data.invoice_ids),
    )


@router.handles("payout.settlement_recorded")
async def on_payout_settled(ctx: HandlerContext, data: PayoutSettlementRecorded) -> str:
    await store.save_payout_outcome(ctx.conn, "settled", data.model_dump(mode="json"))
    return "posted" if await post(ctx, d.post_payout_settled(to_rail_outcome(data))) else "already_posted"


@router.handles("payout.failure_recorded")
async def on_payout_failed(ctx: HandlerContext, data: PayoutFailureRecorded) -> str:
    await store.save_payout_outcome(ctx.conn, "failed", data.model_dump(mode="json"))
    return "posted" if await post(ctx, d.post_payout_failed(to_rail_outcome(data))) else "already_posted"


@router.handles("payout.return_recorded")
async def on_payout_returned(ctx: HandlerContext, data: PayoutReturnRecorded) -> str:
    await store.save_payout_outcome(ctx.conn, "returned", data.model_dump(mode="json"))
    return "posted" if await post(ctx, d.post_payout_returned(to_rail_outcome(data))) else "already_posted"


@router.handles("funding.received")
async def on_funding_received(ctx: HandlerContext, data: FundingReceived) -> str:
    # An account funds one legal entity in one currency (SPEC §10): payout_release refuses a
    # credit for another pair (and tells treasury, `funding.refused`), so the journal must not
    # show money payout_release will never pay from. Both see an account's records in order.
    owner = await store.funding_account_owner(ctx.conn, data.account_id)
    if owner is not None and owner != (data.legal_entity, data.currency):
        return "account_mismatch"
    await store.save_funding(
        ctx.conn,
        funding_id=data.funding_id,
        account_id=data.account_id,
        legal_entity=data.legal_entity,
        currency=data.currency,
        amount=data.amount,
        received_at=data.received_at,
    )
    funding = d.FundingReceipt(
        data.funding_id, data.account_id, data.legal_entity, data.currency, data.amount
    )
    return "posted" if await post(ctx, d.post_funding_received(funding)) else "already_posted"


# --- concord.compliance.eligibility ---------------------------------------------------------


@router.handles("payee.eligibility_changed")
async def on_eligibility_changed(ctx: HandlerContext, data: PayeeEligibilityChanged) -> str:
    await store.save_eligibility(ctx.conn, data.model_dump(mode="json"))
    return "recorded"
