"""The one flow of matching: a batch of its inputs → load → plan (pure) → write once → emit.

Every input (a PO version, a closure, a receipt or its reversal, an invoice, a requisition, a
rematch or override command) is a step in its PO's history, and every step that can change a
PO's outcome rematches the whole PO. The batch is loaded in a fixed number of statements
(`store.load`), replayed step by step in memory (`domain.batch.plan_batch`: the result equals
the records handled one by one), written with one statement per table (`store.apply`) and
published on behalf of the record that caused each event.
"""

from __future__ import annotations

from typing import Any

import structlog

from services.matching import contract, responses, store
from services.matching.config import MatchingConfig
from services.matching.domain.batch import Decided, plan_batch
from shared.consumer import BatchContext, Item
from shared.contracts.registry import spec_of

log = structlog.get_logger(__name__)


async def run(ctx: BatchContext, items: list[Item[Any]]) -> None:
    config: MatchingConfig = ctx.config
    now = ctx.now
    steps = [contract.step_of(item.data, item.envelope) for item in items]
    loaded = await store.load(ctx.conn, steps)
    told = responses.told_before(loaded)  # SPEC §12.3: before the planner moves `loaded` on
    plan = plan_batch(loaded, steps, config.rules, now)
    events = [[contract.event_of(n, now) for n in step.notices] for step in plan.steps]
    payloads = {
        event_id: event.model_dump(mode="json", exclude_none=True)
        for step, step_events in zip(plan.steps, events, strict=True)
        for notice, (event, _, event_id) in zip(step.notices, step_events, strict=True)
        if isinstance(notice, Decided)
    }
    await store.apply(ctx.conn, plan.writes, payloads, plan.seqs)
    answers = await responses.render(
        ctx.conn, responses.plan(told, plan.steps), now, plan.writes.new_invoices
    )
    for item, step, step_events, step_answers in zip(items, plan.steps, events, answers, strict=True):
        item.outcome = step.result
        for event, key, event_id in (*step_events, *step_answers):
            if (payload := payloads.get(event_id)) is None:
                ctx.emit_for(item, event, key=key, event_id=event_id)
                continue
            # A decision, dumped once already for the decisions table: published as stored.
            spec = spec_of(event)
            ctx.on_behalf_of(item).emit(spec.topic, key, spec.type, payload, event_id=event_id)
    log.debug(
        "matched",
        records=len(items),
        events=sum(len(e) for e in events),
        holds_opened=len(plan.writes.new_holds),
        decisions=len(plan.writes.decisions),
    )
