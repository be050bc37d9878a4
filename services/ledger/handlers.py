"""Ledger handlers: one short function per event class, each over a whole run of records —
translate (contract) → load (store, a few set-based queries) → decide (domain, pure) → write
(store, one statement per table) → emit (`journal.entry_posted`, on behalf of each record).

Every posted entry is announced on concord.out.journal (key entry_id) under an event id derived
from the entry id, so a redelivery or re-run announces the same entry under the same id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from services.ledger import contract, store
from services.ledger import domain as d
from services.ledger.domain import Outcome
from shared.consumer import BatchContext, Item, Router, by_documents
from shared.contracts.inbound import FundingReceived
from shared.contracts.internal import (
    InvoiceAccepted,
    InvoiceApprovalRevoked,
    InvoiceApprovedToPay,
    InvoiceHeld,
    InvoiceSuperseded,
    PayeeEligibilityChanged,
    PayoutFailureRecorded,
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
from shared.contracts.outbound import PayoutReleased
from shared.envelope import Envelope
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

GRNI = "grni"


# --- posting and announcing ----------------------------------------------------------------


async def post(
    uow: UnitOfWork,
    postings: Sequence[tuple[UnitOfWork, d.Posting | None]],
    also: store.Write | None = None,
) -> set[str]:
    """Append the entries (once per source event, business fact and reversed entry) in one
    statement, and announce each one inserted now, on behalf of its own unit of work (the
    record, or the record behind a true-up). `also`: the batch's own write of a projection
    table, sent in the same statement. Returns the entry ids inserted."""
    wanted = [(on_behalf, p) for on_behalf, p in postings if p is not None]
    posted_at = uow.now
    inserted = await store.insert_entries(uow.conn, [p for _, p in wanted], posted_at, also)
    for on_behalf, p in wanted:
        if p.entry_id in inserted:
            on_behalf.emit_event(
                contract.entry_posted(p, posted_at),
                key=p.entry_id,
                event_id=contract.entry_posted_event_id(p.entry_id),
            )
    return inserted


def true_up_grni_after_batch(ctx: BatchContext, po_number: str | None, item: Item[Any]) -> None:
    """Once per batch and PO, after every record: GRNI = open received quantities × price in force."""
    if po_number is not None:
        ctx.after_batch(GRNI, po_number, true_up_grni, cause=item)


async def true_up_grni(uow: UnitOfWork, asks: Sequence[tuple[str, Envelope]]) -> None:
    po_numbers = [po for po, _ in asks]
    # Read after the lock, so it includes a concurrent transaction's true-up.
    read = await store.lock_and_read_grni(uow.conn, po_numbers)
    postings = []
    for po_number, cause in asks:
        po = read.pos.get(po_number)
        actual = read.balances.get((po_number, po.currency), d.ZERO) if po else d.ZERO
        posting = d.plan_true_up(
            po, read.receipts[po_number], read.approvals[po_number], actual, cause.event_id
        )
        postings.append((uow.caused_by(cause), posting))
    await post(uow, postings)


def occurred(item: Item[Any]) -> datetime:
    return item.envelope.occurred_at


def source(item: Item[Any]) -> tuple[str, str]:
    """The source event of what is posted for `item`: its own envelope."""
    return item.envelope.event_id, item.envelope.event_type


# --- concord.intake.documents: the documents projection -------------------------------------


@router.handles_batch(RequisitionAccepted)
async def on_requisition_accepted(ctx: BatchContext, items: list[Item[RequisitionAccepted]]) -> None:
    await store.save_requisitions(ctx.conn, [i.data for i in items])
    for item in items:
        item.outcome = Outcome.RECORDED


@router.handles_batch(RequisitionClosureAccepted)
async def on_requisition_closed(ctx: BatchContext, items: list[Item[RequisitionClosureAccepted]]) -> None:
    await store.close_requisitions(ctx.conn, [(i.data, occurred(i)) for i in items])
    for item in items:
        item.outcome = Outcome.RECORDED


@router.handles_batch(PurchaseOrderAmendmentPending)
async def on_po_amendment_pending(
    ctx: BatchContext, items: list[Item[PurchaseOrderAmendmentPending]]
) -> None:
    await store.save_pending_amendments(ctx.conn, [(i.data, occurred(i)) for i in items])
    for item in items:
        item.outcome = Outcome.RECORDED


@router.handles_batch(PurchaseOrderClosureAccepted)
async def on_po_closed(ctx: BatchContext, items: list[Item[PurchaseOrderClosureAccepted]]) -> None:
    await store.save_po_closures(ctx.conn, [(i.data, occurred(i)) for i in items])
    for item in items:
        item.outcome = Outcome.RECORDED


# The documents and approvals of different POs and invoices post independently of each other: a
# batch's runs group them by type across flows (`by_documents`; shared.consumer `_runs`). Every
# other type keeps its place in the batch (a receipt's reversal among them).


@router.handles_batch(InvoiceAccepted, order_keys=by_documents)
async def on_invoice_accepted(ctx: BatchContext, items: list[Item[InvoiceAccepted]]) -> None:
    await store.save_invoices(ctx.conn, [(i.data, occurred(i)) for i in items])
    for item in items:
        item.outcome = Outcome.RECORDED


# --- concord.intake.documents: POs and receipts ---------------------------------------------


@router.handles_batch(PurchaseOrderVersionInForce, order_keys=by_documents)
async def on_po_version_in_force(ctx: BatchContext, items: list[Item[PurchaseOrderVersionInForce]]) -> None:
    po_numbers = [i.data.po.po_number for i in items]
    # The versions are saved by the read's statement (what is read is the state before them).
    known = await store.version_inputs(
        ctx.conn, po_numbers, also=store.po_versions_write([i.data for i in items])
    )
    steps = d.plan_versions_in_force(
        [contract.purchase_order(i.data) for i in items], known.in_force, known.pending
    )
    inserted = await post(
        ctx, [(ctx.on_behalf_of(i), p) for i, s in zip(items, steps, strict=True) for _, p in s.postings]
    )
    await store.set_receipt_statuses(ctx.conn, d.pending_statuses(steps, inserted))
    for item, step in zip(items, steps, strict=True):
        item.outcome = step.outcome
        # A price change moves the GRNI of received, not yet invoiced quantities: the true-up does it.
        true_up_grni_after_batch(ctx, item.data.po.po_number, item)


@router.handles_batch(ReceiptAccepted, order_keys=by_documents)
async def on_receipt_accepted(ctx: BatchContext, items: list[Item[ReceiptAccepted]]) -> None:
    known = await store.arrival_inputs(
        ctx.conn, [i.data.receipt_id for i in items], [i.data.po_number for i in items]
    )
    arrivals = [(contract.receipt(i.data), i.envelope.event_id) for i in items]
    planned = d.plan_arrivals(arrivals, known.states, known.pos)
    inserted = await post(
        ctx, [(ctx.on_behalf_of(i), s.posting) for i, s in zip(items, planned, strict=True)]
    )
    steps = [s.settled(inserted) for s in planned]
    rows = [
        store.ReceiptRow(i.data, i.envelope.event_id, s.status, s.entry_id)
        for i, s in zip(items, steps, strict=True)
        if s.status is not None
    ]
    await store.save_receipts(ctx.conn, rows)
    for item, step in zip(items, steps, strict=True):
        item.outcome = step.outcome
        if step.true_up:
            true_up_grni_after_batch(ctx, item.data.po_number, item)


@router.handles_batch(ReceiptReversalAccepted)
async def on_receipt_reversed(ctx: BatchContext, items: list[Item[ReceiptReversalAccepted]]) -> None:
    states = await store.receipt_states_and_entries(ctx.conn, [i.data.receipt_id for i in items])
    reversals = [(contract.reversal(i.data), i.envelope.event_id, i.envelope.event_type) for i in items]
    steps = d.plan_reversals(reversals, states)
    await post(ctx, [(ctx.on_behalf_of(i), s.posting) for i, s in zip(items, steps, strict=True)])
    await store.record_receipt_reversals(
        ctx.conn, [(i.data, occurred(i), s.status or "dropped") for i, s in zip(items, steps, strict=True)]
    )
    for item, step in zip(items, steps, strict=True):
        item.outcome = step.outcome
        if step.true_up:
            true_up_grni_after_batch(ctx, item.data.po_number, item)


# --- concord.matching.decisions -------------------------------------------------------------


def decision_rows(items: Sequence[Item[Any]], kind: str) -> list[store.DecisionRow]:
    return [store.DecisionRow(i.envelope.event_id, kind, i.data.model_dump(mode="json")) for i in items]


@router.handles_batch(InvoiceApprovedToPay, order_keys=by_documents)
async def on_invoice_approved(ctx: BatchContext, items: list[Item[InvoiceApprovedToPay]]) -> None:
    approvals = [
        (contract.invoice_approval(i.data), i.envelope.event_id, i.envelope.event_type) for i in items
    ]
    known = await store.approval_inputs(
        ctx.conn,
        [i.data.invoice_id for i in items],
        [d.approval_fact_key(i.data.decision_id) for i in items],
    )
    steps = d.plan_approvals(approvals, known.active, known.posted_facts)
    await post(
        ctx,
        [(ctx.on_behalf_of(i), s.posting) for i, s in zip(items, steps, strict=True)],
        also=store.decisions_write(decision_rows(items, "approved_to_pay")),
    )
    for item, step in zip(items, steps, strict=True):
        item.outcome = step.outcome
        if step.outcome is not Outcome.ALREADY_POSTED:
            true_up_grni_after_batch(ctx, step.true_up_po, item)


@router.handles_batch(InvoiceApprovalRevoked)
async def on_approval_revoked(ctx: BatchContext, items: list[Item[InvoiceApprovalRevoked]]) -> None:
    revocations = [(contract.revocation(i.data), i.envelope.event_id, i.envelope.event_type) for i in items]
    known = await store.approval_inputs(
        ctx.conn,
        [i.data.invoice_id for i in items],
        [d.revocation_fact_key(i.data.decision_id) for i in items],
    )
    steps = d.plan_revocations(revocations, known.active, known.posted_facts)
    await post(
        ctx,
        [(ctx.on_behalf_of(i), s.posting) for i, s in zip(items, steps, strict=True)],
        also=store.decisions_write(decision_rows(items, "approval_revoked")),
    )
    for item, step in zip(items, steps, strict=True):
        item.outcome = step.outcome
        true_up_grni_after_batch(ctx, step.true_up_po, item)


@router.handles_batch(InvoiceHeld)
async def on_invoice_held(ctx: BatchContext, items: list[Item[InvoiceHeld]]) -> None:
    await store.save_decisions(ctx.conn, decision_rows(items, "held"))
    for item in items:
        item.outcome = Outcome.RECORDED


@router.handles_batch(InvoiceSuperseded)
async def on_invoice_superseded(ctx: BatchContext, items: list[Item[InvoiceSuperseded]]) -> None:
    await store.save_decisions(ctx.conn, decision_rows(items, "superseded"))
    for item in items:
        item.outcome = Outcome.RECORDED


# --- money movements ------------------------------------------------------------------------


def mark_posted(items: Sequence[Item[Any]], postings: Sequence[d.Posting | None], inserted: set[str]) -> None:
    for item, p in zip(items, postings, strict=True):
        item.outcome = Outcome.POSTED if p is not None and p.entry_id in inserted else Outcome.ALREADY_POSTED


@router.handles_batch(PayoutReleased)
async def on_payout_released(ctx: BatchContext, items: list[Item[PayoutReleased]]) -> None:
    postings = [
        d.posting_of(d.post_payout_released(contract.payout_release(i.data)), *source(i)) for i in items
    ]
    inserted = await post(
        ctx,
        [(ctx.on_behalf_of(i), p) for i, p in zip(items, postings, strict=True)],
        also=store.payouts_write([i.data for i in items]),
    )
    mark_posted(items, postings, inserted)


async def on_rail_outcome(
    ctx: BatchContext,
    items: Sequence[Item[Any]],
    outcome: str,
    rule: Callable[[d.RailOutcome], d.Entry | None],
) -> None:
    postings = [d.posting_of(rule(contract.rail_outcome(i.data)), *source(i)) for i in items]
    inserted = await post(
        ctx,
        [(ctx.on_behalf_of(i), p) for i, p in zip(items, postings, strict=True)],
        also=store.payout_outcomes_write([(outcome, i.data) for i in items]),
    )
    mark_posted(items, postings, inserted)


@router.handles_batch(PayoutSettlementRecorded)
async def on_payout_settled(ctx: BatchContext, items: list[Item[PayoutSettlementRecorded]]) -> None:
    await on_rail_outcome(ctx, items, "settled", d.post_payout_settled)


@router.handles_batch(PayoutFailureRecorded)
async def on_payout_failed(ctx: BatchContext, items: list[Item[PayoutFailureRecorded]]) -> None:
    await on_rail_outcome(ctx, items, "failed", d.post_payout_failed)


@router.handles_batch(PayoutReturnRecorded)
async def on_payout_returned(ctx: BatchContext, items: list[Item[PayoutReturnRecorded]]) -> None:
    await on_rail_outcome(ctx, items, "returned", d.post_payout_returned)


@router.handles_batch(FundingReceived)
async def on_funding_received(ctx: BatchContext, items: list[Item[FundingReceived]]) -> None:
    # An account funds one legal entity in one currency (SPEC §10): payout_release refuses a
    # credit for another pair (and tells treasury, `funding.refused`), so the journal must not
    # show money payout_release will never pay from. Both see an account's records in order.
    known = await store.funding_owners(
        ctx.conn, [i.data.account_id for i in items], [i.data.funding_id for i in items]
    )
    accepted = d.fundings_for_their_owners(
        [contract.funding_receipt(i.data) for i in items], known.owners, known.known_ids
    )
    kept = [i for i, ok in zip(items, accepted, strict=True) if ok]
    postings = [
        d.posting_of(d.post_funding_received(contract.funding_receipt(i.data)), *source(i)) for i in kept
    ]
    inserted = await post(
        ctx,
        [(ctx.on_behalf_of(i), p) for i, p in zip(kept, postings, strict=True)],
        also=store.fundings_write([i.data for i in kept]),
    )
    mark_posted(kept, postings, inserted)
    for item, ok in zip(items, accepted, strict=True):
        if not ok:
            item.outcome = Outcome.ACCOUNT_MISMATCH


# --- concord.compliance.eligibility ---------------------------------------------------------


@router.handles_batch(PayeeEligibilityChanged)
async def on_eligibility_changed(ctx: BatchContext, items: list[Item[PayeeEligibilityChanged]]) -> None:
    await store.save_eligibilities(ctx.conn, [i.data for i in items])
    for item in items:
        item.outcome = Outcome.RECORDED
