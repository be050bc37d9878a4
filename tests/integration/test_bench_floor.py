"""`bench/floor.py` measures what it says: a service on the project's runtime, on the real broker and
database, that handles every input record once and (emitting) publishes one event for each —
so its CPU per record is the cost of that work, not of a run that stopped early or did more."""

from __future__ import annotations

import pytest

from bench.floor import measure
from shared.topics import DEADLETTER, INTAKE_DOCUMENTS, MATCHING_DECISIONS
from tests.kafka_support import create_topics, delete_topics, isolated_settings, read_topic

pytestmark = pytest.mark.integration

RECORDS = 300


async def test_the_floor_service_handles_each_record_once_and_publishes_one_event_each() -> None:
    settings = isolated_settings()
    topics = (INTAKE_DOCUMENTS, MATCHING_DECISIONS, DEADLETTER)
    await create_topics(settings, topics)
    try:
        handed = await measure(settings, RECORDS, emit=False)
        written = await measure(settings, RECORDS, emit=True)

        def held(records: list[dict[str, object]]) -> list[dict[str, object]]:
            return [r for r in records if r["value"]["event_type"] == "invoice.held"]  # type: ignore[index]

        def all_held(records: list[dict[str, object]]) -> bool:
            return len(held(records)) >= RECORDS

        published = held(
            await read_topic(settings, MATCHING_DECISIONS, until=all_held, timeout_s=30, settle_s=1.0)
        )
        deadletters = await read_topic(settings, DEADLETTER, timeout_s=2)
    finally:
        await delete_topics(settings, topics)

    # The emitting run published exactly one invoice.held per input record, each for its own
    # invoice, and nothing went to the deadletter topic (every record was valid and handled).
    invoices = [r["value"]["data"]["invoice_id"] for r in published]  # type: ignore[index]
    assert len(invoices) == RECORDS
    assert len(set(invoices)) == RECORDS
    assert deadletters == []
    for run in (handed, written):
        assert run["records"] == RECORDS
        assert run["cpu_ms_per_record"]["service"] > 0
        assert run["cpu_ms_per_record_total"] > 0
    # Writing an event per record costs more than only taking the record in.
    assert written["cpu_ms_per_record"]["service"] > handed["cpu_ms_per_record"]["service"]
