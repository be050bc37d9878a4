"""One trace per flow (SPEC §1 rule 8): a W3C traceparent carried through Kafka headers and every outbox.

The five services run in this process (each with its own database and consumer group) so an
in-memory span exporter sees every span.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.envelope import new_envelope, utcnow
from shared.publish import Publisher
from shared.service import Service
from shared.services import SERVICES
from shared.telemetry import configure_tracing, current_trace_headers, tracer
from shared.topics import IN_COMMANDS, INTAKE_DOCUMENTS
from testkit.scenario import build
from testkit.watch import TopicWatcher
from tests.kafka_support import create_topics, delete_topics, isolated_settings
from tests.support import scratch_service_database

pytestmark = pytest.mark.e2e
EXPORTER = InMemorySpanExporter()


@pytest.fixture
async def in_process_stack() -> AsyncIterator[Any]:
    configure_tracing("concord-tests", extra=SimpleSpanProcessor(EXPORTER))
    settings = isolated_settings(payout_run_interval_s=3600, relay_poll_interval_s=0.05)
    await create_topics(settings)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(delete_topics, settings)  # last, once everything has stopped
        services: list[Service] = []
        for name in SERVICES:
            db = await stack.enter_async_context(scratch_service_database(name))
            module = importlib.import_module(f"services.{name}.app")
            service: Service = module.service.with_settings(settings.model_copy(update=db.settings()))
            await service.start()
            services.append(service)
        try:
            yield settings
        finally:
            for s in services:
                await s.stop()


async def test_one_trace_spans_intake_matching_payout_release_and_ledger_and_the_payout_run_links_to_it(
    in_process_stack: Any,
) -> None:
    settings = in_process_stack
    scenario = build("trace", utcnow().date())
    invoice_id = sorted(scenario.expected_approved)[0]
    EXPORTER.clear()
    ours = next(
        p
        for p in scenario.setup
        if p.event_type == "invoice.submitted" and p.data["invoice_id"] == invoice_id
    )
    watcher = TopicWatcher(settings, (INTAKE_DOCUMENTS,))
    await watcher.start()
    async with Publisher(settings, source="erp") as pub:
        for p in scenario.setup:
            if p.event_type != "invoice.submitted":
                await pub.publish_event(p.topic, p.key, p.event_type, p.data)
        # Matching reads a PO's documents in order: once its receipt is through intake, the invoice
        # will be matched on arrival (not released later by another document's trace).
        po_number = ours.data["po_number"]
        await watcher.wait_until(
            lambda: bool(watcher.of("receipt.accepted", lambda d: d["po_number"] == po_number)),
            60,
            f"the receipt of {po_number} accepted",
        )
        await watcher.stop()
        with tracer().start_as_current_span("erp submit invoice") as root:
            env = new_envelope(ours.event_type, ours.data, source="erp")
            await pub.publish(ours.topic, ours.key, env, headers=current_trace_headers())
        trace_id = root.get_span_context().trace_id

    wanted = {
        "intake handle invoice.submitted",
        "matching handle invoice.accepted",
        "payout_release handle invoice.approved_to_pay",
        "ledger handle invoice.approved_to_pay",
    }

    def names_in_trace() -> set[str]:
        return {s.name for s in EXPORTER.get_finished_spans() if s.context.trace_id == trace_id}

    for _ in range(300):
        if wanted <= names_in_trace():
            break
        await asyncio.sleep(0.1)
    assert wanted <= names_in_trace(), sorted(names_in_trace())

    # A payout run is its own trace; the span that pays the invoice links to the invoice's trace
    # and carries its tags (Zipkin keeps no links: the tag is how it finds the run there).
    async with Publisher(settings, source="ops") as pub:
        await pub.publish_event(
            IN_COMMANDS, "run-trace", "payout_run.requested", {"run_id": "run-trace", "requested_by": "t@x"}
        )

    def releases() -> list[Any]:
        spans = EXPORTER.get_finished_spans()
        return [s for s in spans if s.name == "payout_release release invoice" and _tag(s) == invoice_id]

    for _ in range(300):
        if releases():
            break
        await asyncio.sleep(0.1)
    [release] = releases()
    assert release.context.trace_id != trace_id
    assert [link.context.trace_id for link in release.links] == [trace_id]
    assert (release.attributes or {})["payout_id"]


def _tag(span: Any, key: str = "invoice_id") -> Any:
    return (span.attributes or {}).get(key)
