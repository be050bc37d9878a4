"""Rail responses (SPEC §8, §15 "Rails"), a batch at a time: load what was recorded under each
rail event id and every payout named, locked → decide each record in order (pure) → write each
table once → emit what happened to each payout, or a `rail_anomaly.opened` for treasury.

`settled` closes a payout; `failed` returns its invoices to payable and opens a `payout_failed`
exception; `returned` after settlement reinstates the payable and opens an exception. A record
inconsistent with the payout as released changes nothing.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from services.payout_release import contract, domain, responses, store
from services.payout_release.contract import RailData
from services.payout_release.domain.rail import ACCOUNT_FAILURE_CODES
from shared.consumer import BatchContext, Item
from shared.contracts.registry import spec_of
from shared.envelope import derived_event_id
from shared.metrics import PAYOUTS_UNSUCCESSFUL

log = structlog.get_logger(__name__)


async def apply_rail_events(ctx: BatchContext, items: list[Item[RailData]]) -> None:
    conn = ctx.conn
    events = [(item.data.rail_event_id, contract.rail_event_from(item.data)) for item in items]
    recorded = await store.recorded_rail_events(conn, [rail_id for rail_id, _ in events])
    payouts = await store.payouts_for_update(conn, sorted({e.payout_id for _, e in events}))
    first = {rail_id: contract.stored_rail_event(kind, data) for rail_id, (kind, data) in recorded.items()}
    steps = domain.decide_rail_events(first, payouts, events)

    statuses: dict[str, tuple[str, datetime]] = {}
    for item, step in zip(items, steps, strict=True):
        if step.transition is not None and step.payout is not None:
            assert step.transition.new_status is not None
            statuses[step.payout.payout_id] = (step.transition.new_status, _at(item, step))
    await store.save_rail_events(
        conn, [_record(item, step) for item, step in zip(items, steps, strict=True) if step.recorded]
    )
    await store.set_payout_statuses(conn, statuses)
    await store.mark_payout_accounts_invalid(
        conn,
        {
            s.payout.payout_id: s.event.failure_code
            for s in steps
            if s.transition
            and s.payout
            and s.event.kind == "failed"
            and s.event.failure_code in ACCOUNT_FAILURE_CODES
        },
    )
    await store.change_funding(conn, domain.funding_changes(steps))
    await store.make_invoices_payable_again(
        conn,
        [
            s.payout.payout_id
            for s in steps
            if s.transition and s.transition.invoices_payable_again and s.payout
        ],
    )
    for item, step in zip(items, steps, strict=True):
        item.outcome = step.result
        item.business_ref = f"payout_id={step.event.payout_id}"
        _emit(ctx, item, step)
    # SPEC §12.3: PD to the supplier of every invoice the settled payouts paid.
    await responses.on_settled(
        ctx,
        [
            (item, step.payout)
            for item, step in zip(items, steps, strict=True)
            if step.payout is not None
            and step.transition is not None
            and step.transition.new_status == "settled"
        ],
    )


def _at(item: Item[RailData], step: domain.RailStep) -> datetime:
    # The rail's failure carries no timestamp of its own.
    return step.event.at or item.envelope.occurred_at


def _record(item: Item[RailData], step: domain.RailStep) -> store.RailRecord:
    return store.RailRecord(
        step.rail_event_id,
        step.event.payout_id,
        step.event.kind,
        item.envelope.event_id,
        str(step.result),
        item.data.model_dump(mode="json"),
    )


def _emit(ctx: BatchContext, item: Item[RailData], step: domain.RailStep) -> None:
    if step.anomaly is not None:
        # A reused id is reported under the record's own envelope; any other anomaly under the rail's id.
        cause = item.envelope.event_id if step.reused else step.rail_event_id
        invoice_ids = step.payout.invoice_ids if step.payout is not None else ()
        ctx.emit_for(
            item,
            contract.rail_anomaly_opened(step, step.anomaly, ctx.now),
            key=invoice_ids[0] if invoice_ids else step.event.payout_id,
            event_id=derived_event_id("rail_anomaly.opened", cause),
        )
        log.warning(
            "rail_anomaly_opened",
            payout_id=step.event.payout_id,
            rail_event_id=step.rail_event_id,
            what=step.anomaly.what,
            expected=step.anomaly.expected,
            got=step.anomaly.got,
        )
        return
    outcome, payout = step.transition, step.payout
    if outcome is None or payout is None:
        return  # a replay: nothing changes
    if step.event.kind in ("failed", "returned"):
        PAYOUTS_UNSUCCESSFUL.labels(step.event.kind).inc()
    recorded = contract.rail_recorded(payout, step.rail_event_id, step.event, _at(item, step))
    ctx.emit_for(
        item,
        recorded,
        key=payout.payout_id,
        event_id=derived_event_id(spec_of(recorded).type, step.rail_event_id),
    )
    if outcome.exception_reason is not None:
        ctx.emit_for(
            item,
            contract.exception_opened(payout, outcome.exception_reason, step.event, ctx.now),
            key=payout.invoice_ids[0],
            event_id=derived_event_id("payout.exception_opened", step.rail_event_id),
        )
    log.debug(
        "rail_event_applied",
        payout_id=payout.payout_id,
        rail_event_id=step.rail_event_id,
        result=str(step.result),
    )
