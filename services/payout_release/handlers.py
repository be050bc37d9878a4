"""Payout release's entry points, a batch at a time: one short function per event class.

Each translates (contract) → loads what the batch needs (store) → decides every record in
order (domain) → writes each table once (store) → emits. Consumes matching decisions, payee
eligibility, PO state, funding, rail responses and `payout_run.requested`; publishes
`payout.released`, `payout.blocked`, `payout.exception_opened`, `rail_anomaly.opened`,
`funding.refused` and the internal `payout.*_recorded` events for the ledger (SPEC §8).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from services.payout_release import contract, domain, rails, responses, runs, store
from services.payout_release.domain import Outcome
from shared.consumer import BatchContext, Item, Router, by_documents
from shared.contracts.inbound import (
    FundingReceived,
    PayoutExpediteRequested,
    PayoutFailed,
    PayoutReturned,
    PayoutRunRequested,
    PayoutSettled,
)
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
    PurchaseOrderClosureAccepted,
    PurchaseOrderVersionInForce,
)
from shared.contracts.outbound import (
    ExpediteRefused,
    FundingRefused,
    InvoiceResponseIssued,
    PayoutBlocked,
    PayoutExceptionOpened,
    PayoutReleased,
    RailAnomalyOpened,
)
from shared.contracts.registry import spec_of
from shared.envelope import derived_event_id
from shared.topics import (
    COMPLIANCE_ELIGIBILITY,
    IN_COMMANDS,
    IN_FUNDING,
    IN_RAIL_EVENTS,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
)

log = structlog.get_logger(__name__)

router = Router(
    "payout_release",
    topics=[
        MATCHING_DECISIONS,
        COMPLIANCE_ELIGIBILITY,
        INTAKE_DOCUMENTS,
        IN_FUNDING,
        IN_RAIL_EVENTS,
        IN_COMMANDS,
    ],
)
for _event in (
    PayoutReleased,
    PayoutBlocked,
    PayoutExceptionOpened,
    RailAnomalyOpened,
    FundingRefused,
    PayoutSettlementRecorded,
    PayoutFailureRecorded,
    PayoutReturnRecorded,
    ExpediteRefused,
    InvoiceResponseIssued,
):
    router.emits(spec_of(_event).topic, spec_of(_event).type)


def _outcomes(items: Sequence[Item[Any]], applied: list[bool], yes: Outcome, no: Outcome) -> None:
    for item, ok in zip(items, applied, strict=True):
        item.outcome = yes if ok else no


# --- matching decisions (gate 1) -----------------------------------------------------------
# Approvals, holds, PO versions and invoice references of different flows do not depend on each
# other here: a batch's runs group them by type across flows (`by_documents`). Revocations,
# supersessions, eligibility, funding, runs and rail events keep their place in the batch.


@router.handles_batch(InvoiceApprovedToPay, order_keys=by_documents)
async def on_invoice_approved_to_pay(ctx: BatchContext, items: list[Item[InvoiceApprovedToPay]]) -> None:
    # The span that handled the approval: payout runs link to it.
    approvals = [contract.approval_from(i.data, i.trace_headers.get("traceparent")) for i in items]
    known = await store.invoice_states(ctx.conn, sorted({a.invoice_id for a in approvals}))
    applied, latest = domain.decide_approvals(known, approvals)
    await store.save_approvals(ctx.conn, latest)
    _outcomes(items, applied, Outcome.APPROVED, Outcome.STALE_DECISION)


@router.handles_batch(InvoiceHeld, order_keys=by_documents)
async def on_invoice_held(ctx: BatchContext, items: list[Item[InvoiceHeld]]) -> None:
    holds = [contract.not_approved_from(i.data) for i in items]
    known = await store.invoice_states(ctx.conn, sorted({h.invoice_id for h in holds}))
    applied, rows = domain.decide_not_approved(known, holds)
    await store.save_holds(ctx.conn, rows)
    _outcomes(items, applied, Outcome.HELD, Outcome.STALE_DECISION)


@router.handles_batch(InvoiceApprovalRevoked)
async def on_invoice_approval_revoked(ctx: BatchContext, items: list[Item[InvoiceApprovalRevoked]]) -> None:
    revocations = [contract.not_approved_from(i.data) for i in items]
    known = await store.invoice_states(ctx.conn, sorted({r.invoice_id for r in revocations}))
    applied, rows = domain.decide_not_approved(known, revocations)
    await store.save_revocations(ctx.conn, rows)
    live = await store.live_payouts_of(ctx.conn, [r.invoice_id for r in rows])
    for item, ok in zip(items, applied, strict=True):
        payout_id = live.get(item.data.invoice_id) if ok else None
        item.outcome = Outcome.NOT_APPLIED if not ok else Outcome.REVOKED
        if payout_id is not None:
            # Money already left or is leaving; matching's revocation cannot recall it. It does stop
            # a re-release should that payout fail, and the ledger shows the conflict.
            log.warning(
                "approval_revoked_after_release", invoice_id=item.data.invoice_id, payout_id=payout_id
            )
            item.outcome = Outcome.REVOKED_AFTER_RELEASE


@router.handles_batch(InvoiceSuperseded)
async def on_invoice_superseded(ctx: BatchContext, items: list[Item[InvoiceSuperseded]]) -> None:
    known = await store.mark_superseded(ctx.conn, sorted({i.data.invoice_id for i in items}))
    for item in items:
        item.outcome = Outcome.SUPERSEDED if item.data.invoice_id in known else Outcome.UNKNOWN_INVOICE


# --- payee eligibility (gate 2) ------------------------------------------------------------


@router.handles_batch(PayeeEligibilityChanged)
async def on_payee_eligibility_changed(ctx: BatchContext, items: list[Item[PayeeEligibilityChanged]]) -> None:
    verdicts = [contract.verdict_from(i.data) for i in items]
    evaluated = await store.payee_evaluations(ctx.conn, sorted({v.payee_id for v in verdicts}))
    applied, latest = domain.decide_verdicts(evaluated, verdicts)
    await store.save_verdicts(ctx.conn, latest)
    for item, ok in zip(items, applied, strict=True):
        fresh = Outcome.ELIGIBLE if item.data.eligible else Outcome.INELIGIBLE
        item.outcome = fresh if ok else Outcome.STALE_EVALUATION


# --- PO state (gate 3) ---------------------------------------------------------------------


@router.handles_batch(PurchaseOrderVersionInForce, order_keys=by_documents)
async def on_po_version_in_force(ctx: BatchContext, items: list[Item[PurchaseOrderVersionInForce]]) -> None:
    versions = [contract.po_version_from(i.data) for i in items]
    in_force = await store.po_versions(ctx.conn, sorted({v.po_number for v in versions}))
    applied, latest = domain.decide_po_versions(in_force, versions)
    await store.save_po_versions(ctx.conn, latest)
    _outcomes(items, applied, Outcome.VERSION_IN_FORCE, Outcome.OLDER_VERSION)


@router.handles_batch(PurchaseOrderClosureAccepted)
async def on_po_closure_accepted(ctx: BatchContext, items: list[Item[PurchaseOrderClosureAccepted]]) -> None:
    await store.close_pos(ctx.conn, sorted({i.data.po_number for i in items}))
    for item in items:
        item.outcome = Outcome.PO_CLOSED


# --- funding (gate 4) ----------------------------------------------------------------------


@router.handles_batch(FundingReceived)
async def on_funding_received(ctx: BatchContext, items: list[Item[FundingReceived]]) -> None:
    fundings = [contract.funding_from(i.data) for i in items]
    owners = await store.account_owners_for_update(ctx.conn, domain.first_per_account(fundings))
    known = await store.known_funding_ids(ctx.conn, [f.funding_id for f in fundings])
    outcomes = domain.decide_fundings(owners, known, fundings)
    credited = [
        store.Receipt(f, i.envelope.event_id)
        for i, f, o in zip(items, fundings, outcomes, strict=True)
        if o is Outcome.APPLIED
    ]
    await store.credit_funding(ctx.conn, credited)
    for item, f, outcome in zip(items, fundings, outcomes, strict=True):
        item.outcome = outcome
        if outcome is Outcome.ACCOUNT_MISMATCH:
            # An account funds one legal entity in one currency (SPEC §10); crediting it for another
            # would let a run pay one entity's invoices with another's money. Treasury is told; the
            # ledger applies the same rule and posts nothing.
            event_id = derived_event_id("funding.refused", item.envelope.event_id)
            refused = contract.funding_refused(f, owners[f.account_id], ctx.now)
            ctx.emit_for(item, refused, key=f.account_id, event_id=event_id)
            log.error("funding_account_mismatch", account_id=f.account_id, funding_id=f.funding_id)


# --- payout runs and rail responses --------------------------------------------------------


@router.handles_batch(PayoutRunRequested)
async def on_payout_run_requested(ctx: BatchContext, items: list[Item[PayoutRunRequested]]) -> None:
    for item in items:  # each run sees what the one before it released
        d = item.data
        run = domain.RunRequest(d.run_id, "command", d.requested_by, d.legal_entity, d.currency)
        with runs.run_span(item.trace_headers):
            executed = await runs.execute_run(ctx.on_behalf_of(item), run)
        item.outcome = Outcome.RUN_EXECUTED if executed else Outcome.RUN_ALREADY_EXECUTED


@router.handles_batch(PayoutExpediteRequested)
async def on_payout_expedite_requested(ctx: BatchContext, items: list[Item[PayoutExpediteRequested]]) -> None:
    for item in items:  # each expedite sees what the one before it released
        with runs.run_span(item.trace_headers):
            item.outcome = await runs.execute_expedite(
                ctx.on_behalf_of(item), contract.expedite_from(item.data)
            )


router.handles_batch(PayoutSettled)(rails.apply_rail_events)
router.handles_batch(PayoutFailed)(rails.apply_rail_events)
router.handles_batch(PayoutReturned)(rails.apply_rail_events)


# --- Invoice Responses (SPEC §12.3) --------------------------------------------------------

router.handles_batch(InvoiceAccepted, order_keys=by_documents)(responses.on_invoice_accepted)
