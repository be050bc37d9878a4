"""Payout runs (SPEC §8), on a schedule and on `payout_run.requested`: load → plan (pure) →
check the plan → apply → emit, in the caller's transaction.

Two replicas never run one slot twice and never release one invoice twice: every run takes a
transaction-scoped advisory lock, a run id is executed once (`payout_runs`), the one-live-payout
index refuses a second live payout for an invoice, and funding is reserved by a conditional
UPDATE under a CHECK (never overdrawn). Nothing is saved from a plan that breaks a promise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from opentelemetry import trace

from services.payout_release import contract, domain, store
from services.payout_release.config import PayoutConfig
from shared.envelope import derived_event_id
from shared.telemetry import context_from_headers, tracer
from shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


async def scheduled_payout_run(uow: UnitOfWork) -> None:
    """The PeriodicTask: the run id is the schedule slot, so a run that crashed and restarts
    within its slot re-derives the same id and releases exactly the same payouts."""
    config: PayoutConfig = uow.config
    run_id = domain.scheduled_run_id(uow.now, config.run_interval_s)
    await execute_run(uow, domain.RunRequest(run_id, "schedule"))


async def execute_run(uow: UnitOfWork, run: domain.RunRequest) -> bool:
    """One payout run; False when its run id was executed before (nothing is done again)."""
    conn, now = uow.conn, uow.now
    await store.lock_runs(conn)
    if not await store.start_run(conn, run, now):
        log.info("payout_run_already_executed", run_id=run.run_id)
        return False
    plan, problems = await _load_and_plan(uow, run)
    if problems:
        # Never release from a plan that breaks a promise; the run rolls back and is retried.
        raise RuntimeError(f"payout run {run.run_id} plan violates its invariants: {problems}")
    await apply_plan(uow, run, plan)
    return True


async def _load_and_plan(uow: UnitOfWork, run: domain.RunRequest) -> tuple[domain.RunPlan, list[str]]:
    """Load what the run decides on (an expedite's run: its one invoice), plan it (pure) and
    check the plan: the plan, and the promises it breaks (none, for a plan that may be saved)."""
    config: PayoutConfig = uow.config
    conn = uow.conn
    only = run.expedite.invoice_id if run.expedite else None
    candidates = await store.candidates(conn, only=only)
    payees = await store.payee_standings(conn, sorted({c.payee_id for c in candidates}))
    pos = await store.pos_in_force(conn, sorted({c.po_number for c in candidates if c.po_number}))
    funding = await store.funding_accounts(conn)
    plan = domain.plan_run(
        candidates,
        payees,
        pos,
        funding,
        config.cohorts,
        uow.now,
        run.run_id,
        requested=run.requested,
        legal_entity=run.legal_entity,
        currency=run.currency,
        terms=config.terms,
        expedite=run.expedite,
    )
    return plan, domain.plan_violations(plan, candidates, funding)


async def apply_plan(uow: UnitOfWork, run: domain.RunRequest, plan: domain.RunPlan) -> None:
    """Save a checked plan and emit what it decided."""
    conn, now = uow.conn, uow.now
    paid = [i for p in plan.releases for i in p.invoice_ids]
    traces = await store.invoice_traceparents(conn, paid)
    await store.save_payouts(conn, plan.releases, plan.reservations, now)
    # An operator's run answers for every candidate; a scheduled run only for what changed.
    notices = list(plan.blocks) if run.requested else await store.changed_blocks(conn, plan.blocks)
    await store.save_blocks(conn, run.run_id, notices)
    await store.finish_run(conn, run.run_id, len(plan.releases), len(plan.blocks))
    await store.clear_published_blocks(conn, paid)
    # emit
    for payout in plan.releases:
        uow.emit_event(
            contract.payout_released(payout, now),
            key=payout.payee_id,
            event_id=derived_event_id("payout.released", payout.payout_id),
        )
        trace_releases(payout, traces)
    for block in notices:
        uow.emit_event(
            contract.payout_blocked(block, run.run_id),
            key=block.invoice_id,
            event_id=derived_event_id("payout.blocked", run.run_id, block.invoice_id),
        )
    log.info(
        "payout_run_executed",
        run_id=run.run_id,
        trigger=run.trigger,
        payouts=len(plan.releases),
        blocked=len(plan.blocks),
        payout_ids=[p.payout_id for p in plan.releases],
    )


async def execute_expedite(uow: UnitOfWork, expedite: domain.Expedite) -> domain.Outcome:
    """An urgent payout (SPEC §13.2): a single-invoice run bypassing only `not_automated` and
    `not_due`, or an `expedite.refused` with every reason. Deterministic ids: a redelivered
    or repeated expedite_id releases nothing twice."""
    config: PayoutConfig = uow.config
    conn, now = uow.conn, uow.now
    run = domain.RunRequest(
        domain.run_id_for(expedite.expedite_id), "command", expedite.approved_by, expedite=expedite
    )
    await store.lock_runs(conn)
    if await store.run_executed(conn, run.run_id):
        return domain.Outcome.EXPEDITE_ALREADY_EXECUTED
    # load, decide
    subject = await store.expedite_subject(conn, expedite.invoice_id)
    plan, problems = await _load_and_plan(uow, run) if domain.needs_run(subject) else (None, [])
    reasons = domain.refusal_reasons(expedite, subject, config.treasury, plan)
    if reasons or plan is None:
        uow.emit_event(
            contract.expedite_refused(expedite, reasons or [domain.NOT_APPROVED]),
            key=expedite.invoice_id,
            event_id=derived_event_id("expedite.refused", expedite.expedite_id, *reasons),
        )
        log.info("expedite_refused", expedite_id=expedite.expedite_id, reasons=reasons)
        return domain.Outcome.EXPEDITE_REFUSED
    if problems:
        raise RuntimeError(f"expedite {expedite.expedite_id} plan violates its invariants: {problems}")
    # write, emit
    if not await store.start_run(conn, run, now):
        return domain.Outcome.EXPEDITE_ALREADY_EXECUTED
    await apply_plan(uow, run, plan)
    return domain.Outcome.EXPEDITE_RELEASED


@contextmanager
def run_span(trace_headers: dict[str, str]) -> Iterator[None]:
    """A requested run's span, in the trace of the command that asked for it."""
    with tracer().start_as_current_span(
        "payout_release payout run", context=context_from_headers(trace_headers)
    ):
        yield


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
