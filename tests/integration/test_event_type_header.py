"""The `concord-event-type` header on real Kafka and PostgreSQL: intake's relay sets it on what it
publishes to `concord.intake.documents`; payout_release, which reads that topic for PO versions
and closures, acknowledges every `receipt.accepted` with the header without decoding it and
without an inbox row; a record without the header (written before the header existed) is ignored
with an inbox row as before; and a record whose header names a type payout_release handles while
its envelope says another is deadlettered `event_type_header_mismatch`, never applied."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from shared.envelope import EVENT_TYPE_HEADER
from shared.publish import Publisher
from shared.topics import DEADLETTER, IN_PURCHASE_ORDERS, IN_RECEIPTS, INTAKE_DOCUMENTS
from testkit import documents as doc
from testkit.samples import intake as samples
from tests.kafka_support import (
    ServiceProcess,
    create_topics,
    delete_topics,
    isolated_settings,
    read_topic,
    running,
)
from tests.support import scratch_service_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack() -> AsyncIterator[tuple[Publisher, ServiceProcess, str, Any]]:
    """intake and payout_release as their own processes, each on a database of its own."""
    settings = isolated_settings(relay_poll_interval_s=0.05)
    await create_topics(settings)
    try:
        async with (
            scratch_service_database("intake") as intake_db,
            scratch_service_database("payout_release") as payout_db,
        ):
            procs = [
                ServiceProcess("services.intake", settings.model_copy(update=intake_db.settings()), "intake"),
                ServiceProcess(
                    "services.payout_release",
                    settings.model_copy(update=payout_db.settings()),
                    "payout_release",
                ),
            ]
            async with running(procs), Publisher(settings, source="test") as pub:
                yield pub, procs[1], payout_db.admin, settings
    finally:
        await delete_topics(settings)


async def _inbox(dsn: str) -> dict[str, tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_id, event_type, result FROM inbox")
    finally:
        await conn.close()
    return {r["event_id"]: (r["event_type"], r["result"]) for r in rows}


async def _until(what: str, check: Any, timeout_s: float = 45) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"not seen in {timeout_s}s: {what}")


def _ignored_count(proc: ServiceProcess, event_type: str) -> float:
    with urllib.request.urlopen(f"http://{proc.metrics_address}/metrics", timeout=5) as r:
        text = r.read().decode()
    prefix = "concord_events_processed_total{"
    for line in text.splitlines():
        if line.startswith(prefix) and f'event_type="{event_type}"' in line and 'result="ignored"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_payout_release_skips_what_it_does_not_handle_and_deadletters_a_mislabelled_record(
    stack: tuple[Publisher, ServiceProcess, str, Any],
) -> None:
    pub, payout_release, dsn, settings = stack
    now = datetime.now(UTC)
    po = doc.purchase_order(
        "PO-H",
        payee_id="payee-1",
        legal_entity="LE-1",
        currency="EUR",
        lines=[doc.po_line("1", "SKU", "hardware", "2", "10.00")],
        effective_from=(now - timedelta(days=1)).date().isoformat(),
        effective_to=(now + timedelta(days=30)).date().isoformat(),
        approved_by="manager@example.com",
        approved_at=now.isoformat(),
    )
    await pub.publish_event(IN_PURCHASE_ORDERS, "PO-H", "purchase_order.issued", po)
    receipt = doc.receipt("GR-H", "PO-H", [doc.receipt_line("1", "1", "2")], received_at=now.isoformat())
    await pub.publish_event(IN_RECEIPTS, "PO-H", "receipt.recorded", receipt)
    await read_topic(settings, INTAKE_DOCUMENTS, until=lambda r: len(r) >= 2)  # then the closure
    closure = doc.po_closure("PO-H", closed_by="buyer@example.com", reason="done")
    await pub.publish_event(IN_PURCHASE_ORDERS, "PO-H", "purchase_order.closed", closure)

    # What intake published for PO-H, in order on one partition: version, receipt, closure.
    published = await read_topic(settings, INTAKE_DOCUMENTS, until=lambda r: len(r) >= 3)
    by_type = {r["value"]["event_type"]: r for r in published}
    assert list(by_type) == [
        "purchase_order.version_in_force",
        "receipt.accepted",
        "purchase_order.closure_accepted",
    ]
    assert all(r["headers"][EVENT_TYPE_HEADER] == t for t, r in by_type.items())
    skipped_id = by_type["receipt.accepted"]["value"]["event_id"]
    closure_id = by_type["purchase_order.closure_accepted"]["value"]["event_id"]
    # The closure is handled after the receipt (same partition): once its inbox row is there, the
    # receipt has been consumed too.
    inbox = await _until("the closure in payout_release's inbox", lambda: _closure_in(dsn, closure_id))
    assert skipped_id not in inbox
    assert inbox[by_type["purchase_order.version_in_force"]["value"]["event_id"]][1] != "ignored"

    # A receipt.accepted without the header (as written before it existed): the full path, an
    # inbox row `ignored`. Then one whose header names a type payout_release handles.
    older = samples.receipt("GR-OLD", po_number="PO-OLD")
    await pub.publish_raw(INTAKE_DOCUMENTS, "PO-OLD", older.value, {"content-type": "application/json"})
    bad = samples.receipt("GR-BAD", po_number="PO-BAD")
    mislabelled = {"content-type": "application/json", EVENT_TYPE_HEADER: "invoice.accepted"}
    await pub.publish_raw(INTAKE_DOCUMENTS, "PO-BAD", bad.value, mislabelled)
    dead = await read_topic(settings, DEADLETTER, until=lambda r: len(r) >= 1, settle_s=0.5)
    assert [d["value"]["data"]["reason"] for d in dead] == ["event_type_header_mismatch"]
    assert dead[0]["value"]["source"] == "payout_release"
    error = dead[0]["value"]["data"]["error"]
    assert "'invoice.accepted' is not the envelope's event_type 'receipt.accepted'" in error

    async def older_ignored() -> dict[str, tuple[str, str]] | None:
        rows = await _inbox(dsn)
        return rows if any(v == ("receipt.accepted", "ignored") for v in rows.values()) else None

    inbox = await _until("the header-less receipt ignored with an inbox row", older_ignored)
    assert skipped_id not in inbox
    # The skipped and the header-less receipt both count as ignored, as before.
    assert _ignored_count(payout_release, "receipt.accepted") == 2


async def _closure_in(dsn: str, event_id: str) -> dict[str, tuple[str, str]] | None:
    inbox = await _inbox(dsn)
    return inbox if event_id in inbox else None
