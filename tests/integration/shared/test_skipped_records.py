"""Records skipped by their `concord-event-type` header on real PostgreSQL (no Kafka): no inbox
row, no statement when the whole batch is skipped, and the rest of a mixed batch as before."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.payout_release.handlers import router
from shared.consumer import RawRecord
from shared.envelope import EVENT_TYPE_HEADER, decode_envelope
from testkit.samples import intake as samples
from tests.support import deliver_counted, scratch_pool

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("payout_release") as p:
        yield p


def _labelled(rec: RawRecord) -> RawRecord:
    event_type = decode_envelope(rec.value).event_type
    return dataclasses.replace(rec, headers=(*rec.headers, (EVENT_TYPE_HEADER, event_type.encode())))


async def _inbox(pool: asyncpg.Pool) -> dict[str, str]:
    return {r["event_type"]: r["result"] for r in await pool.fetch("SELECT event_type, result FROM inbox")}


async def test_a_batch_of_skipped_records_writes_nothing(pool: asyncpg.Pool) -> None:
    receipts = [_labelled(samples.receipt(f"GR-{n}", po_number=f"PO-{n}")) for n in range(3)]
    result, counted = await deliver_counted(pool, router, *receipts)
    assert (result.ignored, result.handled, result.deadlettered, result.outbox) == (3, 0, 0, [])
    assert counted.data_statements == []  # no inbox lookup, no inbox row
    assert await _inbox(pool) == {}


async def test_a_mixed_batch_keeps_inbox_rows_for_all_but_the_skipped(pool: asyncpg.Pool) -> None:
    skipped = _labelled(samples.receipt("GR-1", po_number="PO-1"))
    unlabelled = samples.receipt_reversed("GR-1", "PO-1")  # ignored the old way: decoded, an inbox row
    handled = _labelled(samples.po_in_force("PO-1"))
    result, _ = await deliver_counted(pool, router, skipped, unlabelled, handled)
    assert (result.ignored, result.handled, result.deadlettered) == (2, 1, 0)
    assert await _inbox(pool) == {
        "receipt.reversal_accepted": "ignored",
        "purchase_order.version_in_force": "version_in_force",
    }
