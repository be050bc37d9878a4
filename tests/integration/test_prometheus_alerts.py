"""SPEC §14.1: Prometheus scrapes a real service and the shipped rule fires on a deadletter.

intake runs as its own process on its own topic set and scratch database; a Prometheus of the
test's own (Debian's package, the shipped rules, 1 s scrapes) watches it. An unreadable invoice
record is deadlettered by intake, and ConcordDeadletter appears as firing in Prometheus's alerts
API, labelled with the service and carrying its runbook line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.envelope import new_envelope
from shared.publish import Publisher
from shared.settings import Settings
from shared.topics import IN_INVOICES
from tests.kafka_support import ServiceProcess, create_topics, delete_topics, isolated_settings
from tests.observability_support import alerts, prometheus, target_health, wait_until
from tests.support import scratch_service_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def intake() -> AsyncIterator[tuple[Settings, ServiceProcess]]:
    settings = isolated_settings()
    await create_topics(settings)
    try:
        async with scratch_service_database("intake") as db:
            process = ServiceProcess("services.intake", settings.model_copy(update=db.settings()), "intake")
            process.start()
            try:
                await process.wait_ready()
                yield settings, process
            finally:
                process.stop()
    finally:
        await delete_topics(settings)


def _firing(url: str, name: str) -> list[dict[str, object]]:
    return [a for a in alerts(url) if a["labels"]["alertname"] == name and a["state"] == "firing"]


async def test_a_deadlettered_record_fires_the_deadletter_alert(
    intake: tuple[Settings, ServiceProcess], tmp_path: Path
) -> None:
    settings, process = intake
    with prometheus({"intake": process.metrics_address}, tmp_path / "prometheus") as url:
        # The counter must have been seen at 0 first: the rule looks for an increase.
        await wait_until(lambda: target_health(url) == {"intake": "up"}, 20, "intake scraped")
        assert _firing(url, "ConcordDeadletter") == []

        async with Publisher(settings, source="erp") as pub:
            await pub.publish(
                IN_INVOICES, "payee-1", new_envelope("x", {}, source="erp"), raw_value=b"{not json"
            )

        [alert] = await wait_until(lambda: _firing(url, "ConcordDeadletter"), 30, "ConcordDeadletter firing")
    assert alert["labels"]["service"] == "intake"
    assert alert["labels"]["severity"] == "page"
    assert alert["annotations"]["summary"] == "intake sent a record to concord.deadletter"
    assert "concord dlq replay" in alert["annotations"]["description"]
