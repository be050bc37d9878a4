"""Payout release handlers: one per message type, load → domain → save (+ outbox), one transaction.

Consumes matching decisions, payee eligibility, PO state, funding, rail responses and
`payout_run.requested`; publishes `payout.released`, `payout.blocked`, `payout.exception_opened`,
`rail_anomaly.opened` and the internal `payout.*_recorded` events for the ledger (SPEC §8).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import structlog
from opentelemetry import trace

from services.payout_release import domain, store
from services.payout_release.policy import load_cohorts
from shared.consumer import HandlerContext, Router
from shared.contracts.inbound import (
    FundingReceived,
    PayoutFailed,
    PayoutReturned,
    PayoutRunRequested,
    PayoutSettled,
)
from shared.contracts.internal import (
    InvoiceApprovalRevoked,
    InvoiceApprovedToPay,
    InvoiceHeld,
    InvoiceSuperseded,
    PayeeEligibilityChanged,
    PayoutFailureRecorded,
    PayoutRailRecorded,
    PayoutReturnRecorded,
    PayoutSettlementRecorded,
    PurchaseOrderClosureAccepted,
    PurchaseOrderVersionInForce,
)
from shared.contracts.outbound import (
    FundingRefused,
    PayoutBlocked,
    PayoutExceptionOpened,
    PayoutInvoice,
    PayoutReleased,
    RailAnomalyOpened,
)
from shared.envelope import derived_event_id
from shared.metrics import PAYOUTS_UNSUCCESSFUL
from shared.telemetry import context_from_headers, current_trace_headers, tracer
from shared.topics import (
    COMPLIANCE_ELIGIBILITY,
    IN_COMMANDS,
    IN_FUNDING,
    IN_RAIL_EVENTS,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_EXCEPTIONS,
    OUT_PAYOUTS,
    PAYOUTS_EVENTS,
)
from shared.unit_of_work import UnitOfWork

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
router.emits(OUT_PAYOUTS, "payout.released")
router.emits(
    OUT_EXCEPTIONS, "payout.blocked", "payout.exception_opened", "rail_anomaly.opened", "funding.refused"
)
router.emits(
    PAYOUTS_EVENTS, "payout.settlement_recorded", "payout.failure_recorded", "payout.return_recorded"
)


# --- matching decisions (gate 1) -----------------------------------------------------------


@router.handles("invoice.approved_to_pay")
async def on_invoice_approved_to_pay(ctx: HandlerContext, data: InvoiceApprovedToPay) -> str:
    approval = store.Approval(
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
        traceparent=current_trace_headers().get("traceparent"),
    )
    if not await store.save_approval(ctx.conn, approval):
        return "stale_decision"
    return "approved"


@router.handles("invoice.approval_revoked")
async def on_invoice_approval_revoked(ctx: HandlerContext, data: InvoiceApprovalRevoked) -> str:
    if not await store.save_not_approved(ctx.conn, data.invoice_id, None, data.po_number, data.decided_at):
        return "not_applied"
    payout_id = await store.live_payout_of(ctx.conn, data.invoice_id)
    if payout_id is not None:
        # Money already left or is leaving; matching's revocation cannot recall it. It does stop
        # a re-release should that payout fail, and the ledger shows the conflict.
        log.warning("approval_revoked_after_release", invoice_id=data.invoice_id, payout_id=payout_id)
        return "revoked_after_release"
    return "revoked"


@router.handles("invoice.held")
async def on_invoice_held(ctx: HandlerContext, data: InvoiceHeld) -> str:
    if not await store.save_not_approved(
        ctx.conn, data.invoice_id, data.payee_id, data.po_number, data.decided_at
    ):
        return "stale_decision"
    return "held"


@router.handles("invoice.superseded")
async def on_invoice_superseded(ctx: HandlerContext, data: InvoiceSuperseded) -> str:
    if not await store.mark_superseded(ctx.conn, data.invoice_id):
        return "unknown_invoice"
    return "superseded"


# --- payee eligibility (gate 2) ------------------------------------------------------------


@router.handles("payee.eligibility_changed")
async def on_payee_eligibility_changed(ctx: HandlerContext, data: PayeeEligibilityChanged) -> str:
    standing = domain.PayeeStanding(data.eligible, tuple(data.reasons), data.payout_account_ref)
    if not await store.save_payee_standing(
        ctx.conn, data.payee_id, standing, data.profile_version, data.evaluated_at
    ):
        return "stale_evaluation"
    return "eligible" if data.eligible else "ineligible"


# --- PO state (gate 3) ---------------------------------------------------------------------


@router.handles("purchase_order.version_in_force")
async def on_po_version_in_force(ctx: HandlerContext, data: PurchaseOrderVersionInForce) -> str:
    po = data.po
    if not await store.save_po_version(
        ctx.conn, po.po_number, po.version, po.effective_from, po.effective_to
    ):
        return "older_version"
    return "version_in_force"


@router.handles("purchase_order.closure_accepted")
async def on_po_closure_accepted(ctx: HandlerContext, data: PurchaseOrderClosureAccepted) -> str:
    await store.close_po(ctx.conn, data.po_number)
    return "po_closed"


# --- funding (gate 4) ----------------------------------------------------------------------


@router.handles("funding.received")
async def on_funding_received(ctx: HandlerContext, data: FundingReceived) -> str:
    result = await store.record_funding(
        ctx.conn,
        funding_id=data.funding_id,
        account_id=data.account_id,
        legal_entity=data.legal_entity,
        currency=data.currency,
        amount=data.amount,
        received_at=data.received_at,
        event_id=ctx.envelope.event_id,
    )
    if result == "account_mismatch":
        # An account funds one legal entity in one currency (SPEC §10); crediting it for another
        # would let a run pay one entity's invoices with another's money. Treasury is told; the
        # ledger applies the same rule and posts nothing.
        owner = await store.funding_account_owner(ctx.conn, data.account_id)
        assert owner is not None  # record_funding created it
        ctx.emit(
            OUT_EXCEPTIONS,
            data.account_id,
            "funding.refused",
            FundingRefused(
                funding_id=data.funding_id,
                account_id=data.account_id,
                legal_entity=data.legal_entity,
                currency=data.currency,
                amount=data.amount,
                reasons=["funding_account_mismatch"],
                expected=" ".join(owner),
                got=f"{data.legal_entity} {data.currency}",
                refused_at=ctx.now,
            ),
            event_id=derived_event_id("funding.refused", ctx.envelope.event_id),
        )
        log.error("funding_account_mismatch", account_id=data.account_id, funding_id=data.funding_id)
    return result


# --- payout runs ---------------------------------------------------------------------------


@router.handles("payout_run.requested")
async def on_payout_run_requested(ctx: HandlerContext, data: PayoutRunRequested) -> str:
    return await execute_run(
        ctx,
        data.run_id,
        trigger="command",
        requested_by=data.requested_by,
        legal_entity=data.legal_entity,
        currency=data.currency,
    )


async def scheduled_payout_run(uow: UnitOfWork) -> None:
    """The PeriodicTask: the run id is the schedule slot, so a run that crashed and restarts
    within its slot re-derives the same id and releases exactly the same payouts."""
    run_id = domain.scheduled_run_id(uow.now, uow.settings.payout_run_interval_s)
    await execute_run(uow, run_id, trigger="schedule")


async def execute_run(
    uow: UnitOfWork,
    run_id: str,
    *,
    trigger: str,
    requested_by: str | None = None,
    legal_entity: str | None = None,
    currency: str | None = None,
) -> str:
    """One payout run, in the caller's transaction: gates, grouping, funding reservation,
    payout.released for each payout and payout.blocked for every candidate not paid."""
    conn, now = uow.conn, uow.now
    await store.lock_runs(conn)
    started = await store.start_run(
        conn,
        run_id,
        trigger=trigger,
        requested_by=requested_by,
        legal_entity=legal_entity,
        currency=currency,
        executed_at=now,
    )
    if not started:
        log.info("payout_run_already_executed", run_id=run_id)
        return "run_already_executed"
    candidates = await store.candidates(conn)
    payees = await store.payee_standings(conn, sorted({c.payee_id for c in candidates}))
    pos = await store.pos_in_force(conn, sorted({c.po_number for c in candidates if c.po_number}))
    funding = await store.funding_accounts(conn)
    plan = domain.plan_run(
        candidates,
        payees,
        pos,
        funding,
        load_cohorts(uow.settings),
        now,
        run_id,
        requested=trigger == "command",
        legal_entity=legal_entity,
        currency=currency,
    )
    problems = domain.plan_violations(plan, candidates, funding)
    if problems:
        # Never release from a plan that breaks a promise; the run rolls back and is retried.
        raise RuntimeError(f"payout run {run_id} plan violates its invariants: {problems}")
    traces = await store.invoice_traceparents(conn, [i for p in plan.releases for i in p.invoice_ids])
    for payout in plan.releases:
        await store.save_payout(conn, payout, now)
        _emit_released(uow, payout, now)
        trace_releases(payout, traces)
    # An operator's run answers for every candidate; a scheduled run only for what changed.
    notices = plan.blocks if trigger == "command" else await store.changed_blocks(conn, plan.blocks)
    await store.save_blocks(conn, run_id, notices)
    for block in notices:
        uow.emit(
            OUT_EXCEPTIONS,
            block.invoice_id,
            "payout.blocked",
            PayoutBlocked(
                invoice_id=block.invoice_id,
                payee_id=block.payee_id,
                run_id=run_id,
                reasons=list(block.reasons),
            ),
            event_id=derived_event_id("payout.blocked", run_id, block.invoice_id),
        )
    await store.finish_run(conn, run_id, len(plan.releases), len(plan.blocks))
    await store.clear_published_blocks(conn, [i for p in plan.releases for i in p.invoice_ids])
    log.info(
        "payout_run_executed",
        run_id=run_id,
        trigger=trigger,
        payouts=len(plan.releases),
        blocked=len(plan.blocks),
        payout_ids=[p.payout_id for p in plan.releases],
    )
    return f"released={len(plan.releases)} blocked={len(plan.blocks)}"


def trace_releases(payout: domain.PlannedPayout, traceparents: dict[str, str]) -> None:
    """SPEC §1 rule 8: a run is batch work in a trace of its own, linked to each invoice's trace.
    One short span per invoice paid carries the link (for OTLP viewers) and the business tags,
    since Zipkin keeps no links: `invoice_id=<id>` there finds the invoice's trace and the run's."""
    for invoice_id in payout.invoice_ids:
        carrier = {"traceparent": traceparents.get(invoice_id, "")}
        context = trace.get_current_span(context_from_headers(carrier)).get_span_context()
        links = [trace.Link(context)] if context.is_valid else []
        attributes = {
            "invoice_id": invoice_id,
            "payout_id": payout.payout_id,
            "payee_id": payout.payee_id,
            "concord.run_id": payout.run_id,
        }
        tracer().start_span("payout_release release invoice", links=links, attributes=attributes).end()


def _emit_released(uow: UnitOfWork, payout: domain.PlannedPayout, now: datetime) -> None:
    uow.emit(
        OUT_PAYOUTS,
        payout.payee_id,
        "payout.released",
        PayoutReleased(
            payout_id=payout.payout_id,
            idempotency_key=payout.payout_id,
            run_id=payout.run_id,
            payee_id=payout.payee_id,
            payout_account_ref=payout.payout_account_ref,
            legal_entity=payout.legal_entity,
            funding_account_id=payout.funding_account_id,
            currency=payout.currency,
            amount=payout.amount,
            invoices=[PayoutInvoice(invoice_id=line.invoice_id, amount=line.amount) for line in payout.lines],
            released_at=now,
        ),
        event_id=derived_event_id("payout.released", payout.payout_id),
    )


# --- rail responses ------------------------------------------------------------------------


@router.handles("payout.settled")
async def on_payout_settled(ctx: HandlerContext, data: PayoutSettled) -> str:
    return await _apply_rail_response(ctx, data.rail_event_id, rail_event_from(data), data)


@router.handles("payout.failed")
async def on_payout_failed(ctx: HandlerContext, data: PayoutFailed) -> str:
    return await _apply_rail_response(ctx, data.rail_event_id, rail_event_from(data), data)


@router.handles("payout.returned")
async def on_payout_returned(ctx: HandlerContext, data: PayoutReturned) -> str:
    return await _apply_rail_response(ctx, data.rail_event_id, rail_event_from(data), data)


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
_RECORDED: dict[str, tuple[str, type[PayoutRailRecorded]]] = {
    "settled": ("payout.settlement_recorded", PayoutSettlementRecorded),
    "failed": ("payout.failure_recorded", PayoutFailureRecorded),
    "returned": ("payout.return_recorded", PayoutReturnRecorded),
}


def rail_event_from(data: RailData) -> domain.RailEvent:
    if isinstance(data, PayoutSettled):
        return domain.RailEvent("settled", data.payout_id, data.amount, data.currency, data.settled_at)
    if isinstance(data, PayoutReturned):
        return domain.RailEvent(
            "returned", data.payout_id, data.amount, data.currency, data.returned_at, detail=data.reason
        )
    return domain.RailEvent("failed", data.payout_id, failure_code=data.failure_code, detail=data.message)


def _stored_rail_event(kind: domain.RailKind, raw: dict[str, Any]) -> domain.RailEvent:
    return rail_event_from(_RAIL_MODELS[kind].model_validate(raw))


async def _apply_rail_response(
    ctx: HandlerContext, rail_event_id: str, event: domain.RailEvent, data: RailData
) -> str:
    """Apply what the rail says to its payout — only when it is consistent with the payout as
    released; otherwise nothing changes and treasury gets a `rail_anomaly.opened` (SPEC §15)."""
    conn, payout_id = ctx.conn, event.payout_id
    ctx.business_ref = f"payout_id={payout_id}"
    # Rails replay with fresh envelopes: the inbox cannot see that, the rail's own id can.
    first = await store.record_rail_event(
        conn, rail_event_id, payout_id, event.kind, ctx.envelope.event_id, data.model_dump(mode="json")
    )
    payout = await store.payout_for_update(conn, payout_id)
    if first is not None:
        reused = domain.reused_rail_event_id(_stored_rail_event(first.kind, first.data), event)
        if reused is None:
            return "duplicate_rail_event"
        # The first body stands; this one is reported under its own envelope, never applied.
        _open_rail_anomaly(ctx, rail_event_id, event, reused, payout, ctx.envelope.event_id)
        return reused.what
    facts = domain.PayoutFacts(payout.status, payout.amount, payout.currency) if payout else None
    anomaly = domain.rail_anomaly(facts, event)
    if anomaly is not None:
        await store.set_rail_event_result(conn, rail_event_id, anomaly.what)
        _open_rail_anomaly(ctx, rail_event_id, event, anomaly, payout, rail_event_id)
        return anomaly.what
    assert payout is not None
    return await _apply_to_payout(ctx, rail_event_id, event, payout)


async def _apply_to_payout(
    ctx: HandlerContext, rail_event_id: str, event: domain.RailEvent, payout: store.PayoutRow
) -> str:
    """SPEC §8: the payout's new status, its funding and invoices, and the events that say so."""
    conn, payout_id = ctx.conn, payout.payout_id
    outcome = domain.apply_rail_event(payout.status, event.kind)
    result = outcome.result
    await store.set_rail_event_result(conn, rail_event_id, result)
    if outcome.new_status is None:
        return result  # the payout already has this outcome: a replay under another rail id
    at = event.at or ctx.envelope.occurred_at  # the rail's failure carries no timestamp of its own
    detail = (
        event.failure_code + (f": {event.detail}" if event.detail else "")
        if event.failure_code
        else event.detail
    )
    await store.set_payout_status(conn, payout_id, outcome.new_status, at)
    if event.kind in ("failed", "returned"):
        PAYOUTS_UNSUCCESSFUL.labels(event.kind).inc()
    if outcome.funding is not None:
        await store.apply_funding_effect(conn, payout.funding_account_id, outcome.funding, payout.amount)
    if outcome.invoices_payable_again:
        await store.make_invoices_payable_again(conn, payout_id)

    event_type, model = _RECORDED[event.kind]
    ctx.emit(
        PAYOUTS_EVENTS,
        payout_id,
        event_type,
        model(
            payout_id=payout_id,
            rail_event_id=rail_event_id,
            payee_id=payout.payee_id,
            legal_entity=payout.legal_entity,
            funding_account_id=payout.funding_account_id,
            currency=payout.currency,
            amount=payout.amount,
            invoice_ids=list(payout.invoice_ids),
            at=at,
            failure_code=event.failure_code,
            reason=detail if event.kind != "settled" else None,
        ),
        event_id=derived_event_id(event_type, rail_event_id),
    )
    if outcome.exception_reason is not None:
        ctx.emit(
            OUT_EXCEPTIONS,
            payout.invoice_ids[0],
            "payout.exception_opened",
            PayoutExceptionOpened(
                payout_id=payout_id,
                invoice_ids=list(payout.invoice_ids),
                payee_id=payout.payee_id,
                reason=outcome.exception_reason,
                opened_at=ctx.now,
                detail=detail,
            ),
            event_id=derived_event_id("payout.exception_opened", rail_event_id),
        )
    log.info("rail_event_applied", payout_id=payout_id, rail_event_id=rail_event_id, result=result)
    return result


def _open_rail_anomaly(
    ctx: HandlerContext,
    rail_event_id: str,
    event: domain.RailEvent,
    anomaly: domain.RailAnomaly,
    payout: store.PayoutRow | None,
    cause_id: str,
) -> None:
    invoice_ids = list(payout.invoice_ids) if payout is not None else []
    ctx.emit(
        OUT_EXCEPTIONS,
        invoice_ids[0] if invoice_ids else event.payout_id,
        "rail_anomaly.opened",
        RailAnomalyOpened(
            payout_id=event.payout_id,
            rail_event_id=rail_event_id,
            what=anomaly.what,
            expected=anomaly.expected,
            got=anomaly.got,
            event_type=_RAIL_EVENT_TYPES[event.kind],
            invoice_ids=invoice_ids,
            opened_at=ctx.now,
        ),
        event_id=derived_event_id("rail_anomaly.opened", cause_id),
    )
    log.warning(
        "rail_anomaly_opened",
        payout_id=event.payout_id,
        rail_event_id=rail_event_id,
        what=anomaly.what,
        expected=anomaly.expected,
        got=anomaly.got,
    )
