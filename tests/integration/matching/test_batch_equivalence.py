"""A batch equals its records handled one by one, and a batch costs a constant number of statements.

Records that depend on each other in one batch — an invoice and then its PO, two invoices of one
PO, an invoice and the override of the hold it opens, a refused override and its corrected
resend, a receipt and its reversal, a corrected invoice of another PO — are delivered once as
one batch and once as one batch each, on two databases: the stored state and the published
events (ids, causes, payloads) are the same, timestamps apart."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import pytest

from services.matching.config import MatchingConfig
from services.matching.handlers import router
from shared.consumer import RawRecord
from shared.outbox import OutboxMessage
from shared.settings import Settings
from testkit.samples import intake as b
from tests.batches import BatchHarness
from tests.support import scratch_pool

pytestmark = pytest.mark.integration
CONFIG = MatchingConfig.load(Settings(service="matching"))

# Set by the clock, not by the records: left out of the comparison.
CLOCK = {"decided_at", "opened_at", "due_by", "released_at", "escalated_at"}
# An Invoice Response is dated by the clock, and so is its document (IssueDate, IssueTime).
CLOCK |= {"issued_at", "document"}

V2_LINES = [
    {"line_id": "L1", "item_ref": "LAPTOP", "category": "goods", "quantity": "15", "unit_price": "100.00"}
]

SCENARIOS: dict[str, Callable[[], list[RawRecord]]] = {
    "an invoice, then its PO and receipt": lambda: [b.invoice(), b.po_in_force(), b.receipt()],
    "a PO, two invoices of it, then a receipt": lambda: [
        b.po_in_force(),
        b.invoice("INV-1", quantity="6"),
        b.invoice("INV-2", quantity="6"),
        b.receipt(quantity="12"),
    ],
    "an invoice, the override of its hold, a rematch": lambda: [
        b.requisition(),
        b.po_in_force(match_mode="two_way"),
        b.invoice(unit_price="101.00"),
        b.override(hold_reasons=["price_mismatch"]),
        b.rematch(),
    ],
    "a refused override, then resent with the right approver": lambda: [
        b.po_in_force(match_mode="two_way"),
        b.invoice(unit_price="101.00"),
        b.override(approved_by="ops.lead@example.com"),
        b.override(approved_by="controller@example.com"),
        b.override(approved_by="controller@example.com"),  # already accepted
    ],
    "a receipt, its reversal, an amendment in force": lambda: [
        b.po_in_force(),
        b.receipt("GR-1", "10"),
        b.invoice("INV-1"),
        b.receipt_reversed("GR-1"),
        b.receipt("GR-2", "5"),
        b.po_in_force(version=2, lines=V2_LINES),
        b.receipt("GR-1", "10"),  # after its reversal: stays reversed
        b.invoice("INV-2", quantity="5"),
    ],
    "a correction from another PO, a closure, a duplicate invoice": lambda: [
        b.po_in_force(),
        b.po_in_force("PO-2"),
        b.invoice("INV-1", unit_price="120.00"),
        b.invoice("INV-2", po_number="PO-2", replaces_invoice_id="INV-1"),
        b.invoice("INV-1", unit_price="120.00"),  # re-published: already known
        b.po_closed(),
        b.invoice("INV-3", quantity="1"),
        b.receipt(po_number="PO-2", receipt_id="GR-9"),
    ],
    "a no-PO invoice and its override": lambda: [
        b.invoice("INV-7", po_number=None, route_to_no_po_review=True, business_unit="marketing"),
        b.override(invoice_id="INV-7", approved_by="controller@example.com"),
        b.override("OVR-2", invoice_id="INV-404"),
        b.rematch("INV-404"),
    ],
}

TABLES = {
    "po_versions": "po_number, version",
    "po_closures": "po_number",
    "requisitions": "requisition_id",
    "receipts": "receipt_id",
    "invoices": "invoice_id",
    "holds": "hold_id",
    "overrides": "override_id",
    "decisions": "invoice_id, seq, event_type",
    "inbox": "event_id",
    "outbox": "event_id",
}


def _without_clock(value: Any) -> Any:
    if isinstance(value, dict):
        # An override approval is dated when the override was decided: by the clock too.
        clock = CLOCK | ({"at"} if value.get("role") == "override_approver" else set())
        return {k: _without_clock(v) for k, v in value.items() if k not in clock}
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


async def stored(pool: asyncpg.Pool) -> dict[str, list[dict[str, Any]]]:
    state: dict[str, list[dict[str, Any]]] = {}
    for table, order in TABLES.items():
        rows = await pool.fetch(f"SELECT * FROM {table} ORDER BY {order}")
        state[table] = [
            _without_clock(
                {
                    k: v
                    for k, v in dict(r).items()
                    # The outbox's own serial and send state; its payload is compared as published.
                    if k not in {"id", "created_at", "published_at", "processed_at", "headers"}
                }
            )
            for r in rows
        ]
    for row in state["outbox"]:
        envelope = json.loads(row["value"])
        envelope.pop("occurred_at", None)
        row["value"] = _without_clock(envelope)
    return state


def published(messages: Sequence[OutboxMessage]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        envelope = json.loads(m.value())
        envelope.pop("occurred_at", None)
        out.append({"topic": m.topic, "key": m.key, **_without_clock(envelope)})
    return out


HARNESS = BatchHarness(router, stored, published, config=CONFIG)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_a_batch_equals_its_records_one_by_one(scenario: str) -> None:
    compared = await HARNESS.compare(SCENARIOS[scenario]())
    compared.assert_same()
    assert compared.batch.published, "the scenario publishes something"


@pytest.mark.parametrize(
    ("before", "batch"),
    [
        # A hold open from an earlier batch, released and reopened (a new hold) in this one.
        (lambda: [b.po_in_force(), b.invoice()], lambda: [b.receipt(), b.receipt_reversed()]),
        # An approval from an earlier batch, revoked and given again in this one.
        (
            lambda: [b.po_in_force(), b.receipt(), b.invoice()],
            lambda: [b.receipt_reversed(), b.receipt("GR-2"), b.rematch()],
        ),
    ],
    ids=["hold reopened", "approval revoked and given again"],
)
async def test_a_batch_over_earlier_state_equals_its_records_one_by_one(
    before: Callable[[], list[RawRecord]], batch: Callable[[], list[RawRecord]]
) -> None:
    compared = await HARNESS.compare(batch(), before=before())
    compared.assert_same()


async def test_statements_per_batch_do_not_grow_with_the_batch() -> None:
    """10 or 200 invoices of distinct POs (each with its PO and receipt already known): the same
    number of statements, so the cost per record falls with the batch."""

    def pos(start: int, n: int) -> list[RawRecord]:
        return [
            r
            for i in range(start, start + n)
            for r in (b.po_in_force(f"PO-{i}"), b.receipt(f"GR-{i}", po_number=f"PO-{i}"))
        ]

    def invoices(start: int, n: int) -> list[RawRecord]:
        return [b.invoice(f"INV-{i}", po_number=f"PO-{i}") for i in range(start, start + n)]

    async with scratch_pool("matching") as pool, pool.acquire() as conn:
        await HARNESS.statements(conn, pos(0, 1) + invoices(0, 1))  # asyncpg introspects array types once
        await HARNESS.statements(conn, pos(1, 210))
        small = await HARNESS.statements(conn, invoices(1, 10))
        large = await HARNESS.statements(conn, invoices(11, 200))
        mixed_small = await HARNESS.statements(conn, pos(300, 5) + invoices(300, 5))
        mixed_large = await HARNESS.statements(conn, pos(400, 100) + invoices(400, 100))
        approved = await conn.fetchval("SELECT count(*) FROM invoices WHERE status = 'approved'")
    assert approved == 1 + 10 + 200 + 5 + 100
    assert large - small <= 2, (small, large)
    assert mixed_large - mixed_small <= 2, (mixed_small, mixed_large)
    # BEGIN, the inbox, the lock, one read of everything, invoices, decisions, outbox, COMMIT:
    # each round trip cost ~145 µs of CPU where it was measured (docs/performance.md, stop 27).
    assert small <= 8 and mixed_small <= 10, (small, mixed_small)
