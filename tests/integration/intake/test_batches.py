"""intake over whole batches: a batch of records that depend on each other ends exactly as the
same records one batch each, and the statements a batch issues do not grow with its size."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.intake import contract, store
from services.intake.config import IntakeConfig
from services.intake.domain.outcome import Outcome
from services.intake.handlers import router
from shared.consumer import RawRecord
from shared.contracts import inbound as i
from shared.outbox import OutboxMessage
from shared.settings import Settings
from testkit.samples.upstream import (
    amendment_approved,
    flip_rec,
    inv_rec,
    invoice,
    po_amended,
    po_issued,
    po_rec,
    receipt_rec,
    req_rec,
    requisition,
)
from tests.batches import BatchHarness
from tests.support import deliver, emitted, scratch_pool

pytestmark = pytest.mark.integration

SETTINGS = Settings(service="intake")
CONFIG = IntakeConfig.load(SETTINGS)
# Stamped by the clock as each record is handled: equal in meaning, not in value.
_CLOCK_FIELDS = frozenset(
    {"received_at_db", "in_force_since", "superseded_at", "accepted_at", "closed_at", "converted_at",
     "reversed_at", "occurred_at", "issue_date"}
)  # fmt: skip
_TABLES = {
    "requisitions": "requisition_id",
    "purchase_orders": "po_number",
    "po_versions": "po_number, version",
    "po_early_approvals": "po_number, version, approved_by",
    "receipts": "receipt_id",
    "invoices": "invoice_id",
    "invoice_numbers": "payee_id, normalised_number, document_type",
}


def _receipt(receipt_id: str, po_number: str = "PO-1") -> dict[str, Any]:
    return {
        "receipt_id": receipt_id,
        "po_number": po_number,
        "kind": "service_completion",
        "received_at": "2026-03-01T10:00:00Z",
        "recorded_by": "pm@example.com",
        "lines": [{"receipt_line_id": "RL1", "po_line_id": "L1", "quantity": "2"}],
    }


def dependent_records() -> list[RawRecord]:
    """Records that depend on each other, in the order a partition could hold them."""
    reversal = {"receipt_id": "R-1", "po_number": "PO-1", "reversed_by": "pm@example.com", "reason": "error"}
    return [
        # a requisition and the PO against it; its closure is then refused (converted)
        req_rec("requisition.approved", requisition("REQ-1")),
        req_rec("requisition.approved", requisition("REQ-1")),  # the same again: a duplicate
        po_rec("purchase_order.issued", po_issued("PO-1", requisition_id="REQ-1")),
        po_rec("purchase_order.issued", po_issued("PO-1")),  # version 1 again with other content
        # an approval that overtakes its amendment, then amendments and approvals in a row
        po_rec("purchase_order.amendment_approved", amendment_approved(3)),
        po_rec("purchase_order.amended", po_amended(2)),
        po_rec("purchase_order.amended", po_amended(3)),
        po_rec("purchase_order.amendment_approved", amendment_approved(2)),
        po_rec("purchase_order.amendment_approved", amendment_approved(2)),
        req_rec(
            "requisition.closed", {"requisition_id": "REQ-1", "closed_by": "m@example.com", "reason": "x"}
        ),
        # a receipt and its reversal, twice each
        receipt_rec("receipt.recorded", _receipt("R-1")),
        receipt_rec("receipt.recorded", _receipt("R-1")),
        receipt_rec("receipt.reversed", reversal),
        receipt_rec("receipt.reversed", reversal),
        # two invoices with one number (also a look-alike); a correction of the first; a redelivery
        inv_rec(invoice("INV-A", "INV-0042")),
        inv_rec(invoice("INV-B", "INV-0042")),
        inv_rec(invoice("INV-C", "INV‐42")),
        inv_rec(invoice("INV-A2", "INV-0042", replaces_invoice_id="INV-A")),
        inv_rec(invoice("INV-A3", "INV-0042", replaces_invoice_id="INV-A")),
        inv_rec(invoice("INV-A", "INV-0042")),
        inv_rec(invoice("INV-D", "INV-0043")),  # a suspected duplicate of INV-A2
        # flips of one PO: the second finds nothing left to invoice
        flip_rec("F-1"),
        flip_rec("F-2"),
        flip_rec("F-1"),
        # a closed PO refuses a late issue and a flip
        po_rec(
            "purchase_order.closed", {"po_number": "PO-9", "closed_by": "m@example.com", "reason": "done"}
        ),
        po_rec("purchase_order.issued", po_issued("PO-9")),
        flip_rec("F-9", "PO-9"),
    ]


def _stable(value: Any, key: str = "") -> Any:
    if key in _CLOCK_FIELDS:
        return "<clock>"
    if isinstance(value, dict):
        return {k: _stable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


async def _state(pool: asyncpg.Pool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for table, order in _TABLES.items():
        rows = await pool.fetch(f"SELECT * FROM {table} ORDER BY {order}")
        # po_versions.received_at is the clock; receipts.received_at is the document's
        out[table] = [
            _stable({("received_at_db" if (k == "received_at" and table == "po_versions") else k): v
                     for k, v in dict(r).items()})
            for r in rows
        ]  # fmt: skip
    out["inbox"] = [
        tuple(r)
        for r in await pool.fetch('SELECT event_id, result, business_ref FROM inbox ORDER BY "offset"')
    ]
    return out


def _events(outbox: Sequence[OutboxMessage]) -> list[Any]:
    out = []
    for m in outbox:
        env = json.loads(m.value())
        out.append(
            (m.topic, m.key, env["event_type"], env["event_id"], env["causation_id"], _stable(env["data"]))
        )
    return out


HARNESS = BatchHarness(router, _state, _events, settings=SETTINGS, config=CONFIG)


async def test_one_batch_equals_one_record_at_a_time() -> None:
    compared = await HARNESS.compare(dependent_records())
    compared.assert_same()
    outcomes = [r for _, r, _ in compared.batch.stored["inbox"]]
    # the scenario does exercise what it claims to
    assert outcomes.count("duplicate") >= 5 and outcomes.count("rejected") >= 5
    assert "in_force" in outcomes and "approval_waiting_for_amendment" in outcomes


def _distinct_invoice(n: int) -> RawRecord:
    issued = (date(2026, 1, 1) + timedelta(days=n)).isoformat()
    return inv_rec(invoice(f"INV-{n}", f"N-{n}", po_number=f"PO-{n % 7}", issue_date=issued))


@pytest.mark.parametrize(
    "make",
    [
        _distinct_invoice,
        lambda n: po_rec("purchase_order.issued", po_issued(f"PO-{n}")),
        lambda n: receipt_rec("receipt.recorded", _receipt(f"R-{n}", f"PO-{n % 7}")),
    ],
    ids=["invoice.submitted", "purchase_order.issued", "receipt.recorded"],
)
async def test_statements_per_batch_do_not_grow_with_the_batch(make: Any) -> None:
    async def statements_for(conn: asyncpg.Connection, numbers: range) -> int:
        return await HARNESS.statements(conn, [make(n) for n in numbers])

    async with scratch_pool("intake") as pool, pool.acquire() as conn:
        for n in range(7):  # the POs the invoices and receipts name
            await HARNESS.process(conn, [po_rec("purchase_order.issued", po_issued(f"PO-{n}"))])
        await statements_for(conn, range(5000, 5001))  # asyncpg introspects array types once per connection
        small, large = await statements_for(conn, range(10)), await statements_for(conn, range(1000, 1200))
    assert large - small <= 2, (small, large)
    # BEGIN, the inbox, one read (a PO batch: the lock, then the read), the writes, outbox, COMMIT
    assert small <= 8, small


async def test_a_number_another_instance_claimed_meanwhile_rolls_the_batch_back() -> None:
    """Two instances briefly holding one partition: the registry's key still decides. The batch
    that loses fails as a whole (ConcurrentWrite) and, run again, refuses the duplicate."""
    rival = i.InvoiceSubmitted.model_validate(invoice("INV-B", "INV-0042"))
    async with scratch_pool("intake") as pool:
        with pytest.raises(store.ConcurrentWrite):
            async with pool.acquire() as conn, conn.transaction():
                submission = contract.json_submission(rival)
                book = await store.invoice_book(conn, [submission.invoice], CONFIG)
                assert book.submit(submission).outcome is Outcome.ACCEPTED
                # meanwhile another instance accepts INV-A with the same number and commits
                await deliver(pool, router, inv_rec(invoice("INV-A", "INV-0042")), config=CONFIG)
                await store.save_invoices(conn, book, datetime.now(UTC))
        again = await deliver(pool, router, inv_rec(rival.model_dump(mode="json")), config=CONFIG)
        assert [r["code"] for e in emitted(again, "document.rejected") for r in e["data"]["reasons"]] == [
            "duplicate_invoice"
        ]
        assert await pool.fetchval("SELECT count(*) FROM invoices") == 1
