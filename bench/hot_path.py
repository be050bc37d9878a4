"""`python -m bench.hot_path`: the shared runtime's per-record CPU, without Kafka or PostgreSQL.

What every service pays per record before and after its own handler: `BatchProcessor.parse`
(decode, fingerprint, payload validation) of intake's and matching's inbound records, the batch
path's per-record span work for records whose trace was sampled out upstream (the benchmark's and
production's 99%), and emitting one typed event with its outbox bytes. CPU time (process_time),
best of several repetitions: on a machine shared with other work the best repetition is the one
least disturbed. To compare two versions, run it in each checkout (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.pipeline import flow
from services.intake.handlers import router as intake_router
from services.matching.handlers import router as matching_router
from shared import invoice_response
from shared.consumer import BatchContext, BatchProcessor, BatchResult, Item, RawRecord, Route
from shared.contracts.registry import EVENT_MODELS
from shared.envelope import decode_envelope, new_envelope
from shared.settings import Settings
from shared.telemetry import configure_tracing
from shared.unit_of_work import UnitOfWork
from testkit.samples import intake as samples

# A record whose trace was sampled out upstream (flags 00), as 99% are at a 0.01 ratio.
UNSAMPLED = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),)


def best_us(fn: Callable[[], Any], per: int, repetitions: int = 15) -> float:
    best = float("inf")
    for _ in range(repetitions):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best / per * 1e6


def main() -> None:
    configure_tracing("hot-path", "none", sample_ratio=0.01)
    settings = Settings()
    inbound = [
        RawRecord(settings.topic(topic), 0, i, key.encode(), env.model_dump_json().encode(), UNSAMPLED)
        for i in range(100)
        for topic, key, event_type, data in flow("hot", i, "2026-11-30")
        for env in [new_envelope(event_type, data, source="bench")]
    ]
    internal = [
        RawRecord(r.topic, r.partition, r.offset, r.key, r.value, UNSAMPLED)
        for r in [samples.invoice(), samples.receipt(), samples.po_in_force()] * 100
    ]
    intake, matching = BatchProcessor(intake_router, settings), BatchProcessor(matching_router, settings)
    parsed = [matching.parse(r) for r in internal]
    assert all(p.poison is None and p.data is not None for p in parsed)

    parse_intake = best_us(lambda: [intake.parse(r) for r in inbound], len(inbound))
    parse_matching = best_us(lambda: [matching.parse(r) for r in internal], len(internal))
    print(f"parse, intake's records    {parse_intake:5.1f} µs")
    print(f"parse, matching's records  {parse_matching:5.1f} µs")

    async def handled(ctx: BatchContext, items: list[Item[Any]]) -> None:
        for item in items:
            item.outcome = None  # nothing is decided: only the runner's own work is measured

    first = parsed[0].route
    assert first is not None
    route = Route(first.model, first.handler, batch=handled)
    for p in parsed:
        p.route = route
    loop = asyncio.new_event_loop()

    def spans() -> None:
        # No outcome is set, so the runner raises TypeError once its own work is done.
        with contextlib.suppress(TypeError):
            loop.run_until_complete(matching._handle_batch(None, parsed, {}, BatchResult()))  # type: ignore[arg-type]

    print(f"batch span work, unsampled {best_us(spans, len(parsed)):5.1f} µs")
    env = decode_envelope(internal[0].value)
    event = EVENT_MODELS[env.event_type].model_validate(env.data)
    uow = UnitOfWork(None, settings, "intake", cause=env)  # type: ignore[arg-type]

    def emit() -> None:
        for _ in range(300):
            uow.outbox.clear()
            uow.emit_event(event, key="k")
            uow.outbox[0].value()

    print(f"emit + outbox bytes        {best_us(emit, 300):5.1f} µs")

    # An `AB` Invoice Response for parties with Peppol ids (the benchmark's payees have none, so
    # its flows never render one; a Peppol supplier's invoice gets AB, AP and PD documents).
    peppol = invoice_response.InvoiceRef("inv-1", "SN-1", "0088:5790000435975", "0192:987654321")
    at = datetime.now(UTC)

    def respond() -> None:
        for _ in range(300):
            invoice_response.issue(peppol, invoice_response.Status.ACKNOWLEDGED, "evt_cause", at)

    print(f"invoice response AB issued {best_us(respond, 300):5.1f} µs")


if __name__ == "__main__":
    main()
