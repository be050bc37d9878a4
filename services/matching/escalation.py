"""The periodic task: holds still open after due_by are escalated once; the hold gauges."""

from __future__ import annotations

import structlog

from services.matching import contract, domain, store
from shared.metrics import HOLDS_OPEN, HOLDS_OVERDUE
from shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


async def escalate_overdue_holds(uow: UnitOfWork) -> None:
    """Holds still open after due_by are escalated once (hold.escalated); then refresh the gauges."""
    now = uow.now
    due = await store.holds_due(uow.conn, now)
    for hold in due:
        event, event_id = contract.hold_escalated(hold, now)
        uow.emit_event(event, key=hold.invoice_id, event_id=event_id)
    if due:
        await store.mark_escalated(uow.conn, [h.hold_id for h in due], now)
        log.info("holds_escalated", count=len(due))
    counts = await store.open_holds_by_reason(uow.conn)
    # Labels are the closed sets of reasons and queues (whatever else the table holds is counted too).
    for reason in sorted(set(domain.ALL_REASONS) | set(counts)):
        HOLDS_OPEN.labels(reason).set(counts.get(reason, 0))
    overdue = await store.overdue_holds_by_queue(uow.conn, now)
    for queue in sorted(set(domain.QUEUES) | set(overdue)):
        HOLDS_OVERDUE.labels(queue).set(overdue.get(queue, 0))
