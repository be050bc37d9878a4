"""`python -m bench.floor`: the least a service of this shape can spend on a record, in baseline hops.

A service of Concord's shape (SPEC, "The shape": its own process and database, at-least-once,
an inbox row per record, an outbox row per event, a relay) pays some CPU per record however little
its handler does. This measures that floor with the project's own runtime (`shared.service`,
`shared.consumer`, `shared.outbox`) on the real broker and database, and a handler that decides
nothing:

- **handed**: a service consumes `invoice.accepted` records (as intake's relay publishes them,
  with their headers) and handles each with an empty batch handler: parse, validate, inbox row,
  offsets. What every record costs each service it is handed to.
- **handed + written**: the same, and the handler emits one `invoice.held` per record: outbox row,
  relay, produce, mark. What a record costs its writer on top.

CPU time from /proc (this process: the service; PostgreSQL; Kafka), over the window from the first
input record to the last row handled (and published), at saturation (the input is produced in
full by a separate process while the service runs: the broker's share of taking it in is measured
on its own and taken off). The baseline hop is measured in the same run. With the pipeline's
records per flow (`--written`, `--handed`: `make bench` reports them), the floor per flow is
handed × floor(handed) + written × (floor(handed + written) − floor(handed)) — what the plumbing
alone costs a flow before any service decides anything, to set beside issue 13's 40 hops.

    python -m bench.floor [--records 10000] [--written 11.3] [--handed 14.1] [--batch-max N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.baseline import measure_hop
from bench.cpu import delta, driver_cpu_s, infrastructure_cpu_s
from bench.hot_path import UNSAMPLED
from shared.admin import admin_settings
from shared.consumer import BatchContext, Item, Router
from shared.contracts.internal import HeldHold, InvoiceAccepted, InvoiceHeld
from shared.envelope import EVENT_TYPE_HEADER
from shared.kafka_auth import client_options
from shared.metrics import EVENTS_PROCESSED
from shared.service import Service, tune_gc_after_start
from shared.settings import Settings
from shared.topics import DEADLETTER, INTAKE_DOCUMENTS, MATCHING_DECISIONS
from testkit.samples import intake as samples
from tests.kafka_support import create_topics, delete_topics, isolated_settings
from tests.support import ADMIN_DSN, scratch_service_database


class Outcome(StrEnum):
    HANDLED = "handled"


def floor_router(emit: bool) -> Router:
    """Intake's documents topic, read by the `matching` principal (whose rights these are), with a
    handler that decides nothing; with `emit`, one `invoice.held` per record."""
    router = Router("matching", [INTAKE_DOCUMENTS])
    router.emits(MATCHING_DECISIONS, "invoice.held")

    @router.handles_batch(InvoiceAccepted)
    async def on_accepted(ctx: BatchContext, items: list[Item[Any]]) -> None:
        for item in items:
            item.outcome = Outcome.HANDLED
            if emit:
                inv = item.data
                ctx.emit_for(
                    item,
                    InvoiceHeld(
                        invoice_id=inv.invoice_id,
                        po_number=inv.po_number,
                        payee_id=inv.payee_id,
                        holds=[
                            HeldHold(hold_id=f"h-{inv.invoice_id}", reason="floor", queue="ap", action="hold")
                        ],
                        decided_at="2026-03-02T10:00:00Z",
                    ),
                    key=inv.po_number or inv.invoice_id,
                )

    return router


def _records(count: int, tag: str) -> list[tuple[bytes, bytes, list[tuple[str, bytes | None]]]]:
    out = []
    for i in range(count):
        rec = samples.invoice(f"FL-{tag}-{i}", po_number=f"PO-{tag}-{i % 500}")
        # As a relay sends it: its type for the consumers that skip it, a trace sampled out upstream.
        headers = [*rec.headers, (EVENT_TYPE_HEADER, b"invoice.accepted"), *UNSAMPLED]
        out.append((rec.key or b"", rec.value, headers))
    return out


async def produce(prefix: str, count: int, tag: str, topic: str) -> None:
    """The input, from a process of its own (its CPU is not the service's): built first, then sent
    at once when the parent says so (a line on stdin), so that the window holds the sending only."""
    records = _records(count, tag)
    settings = Settings(topic_prefix=prefix)
    options = client_options(admin_settings(settings))
    producer = AIOKafkaProducer(**options, enable_idempotence=True, linger_ms=2)
    await producer.start()
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        futures = [await producer.send(topic, v, key=k, headers=h) for k, v, h in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _counted() -> float:
    """Records the floor service has handled, by its own metric (in this process)."""
    return sum(
        sample.value
        for metric in EVENTS_PROCESSED.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("service") == "matching"
    )


def _cpu() -> dict[str, float]:
    return infrastructure_cpu_s() | {"service": driver_cpu_s()}


_ROOT = str(Path(__file__).resolve().parents[1])


class _Input:
    """The input producer's process: started (and its records built) before a window opens."""

    def __init__(self, settings: Settings, count: int, tag: str, topic: str) -> None:
        self.args = (settings.topic_prefix, str(count), tag, topic)

    async def __aenter__(self) -> _Input:
        self.child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.floor", "produce", *self.args,
            env={**os.environ, "PYTHONPATH": _ROOT},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.child.stdout is not None
        if (await self.child.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the input producer did not start")
        return self

    async def send(self) -> None:
        """Sends every record; returns once the broker has them all."""
        assert self.child.stdin is not None
        self.child.stdin.write(b"go\n")
        await self.child.stdin.drain()
        if await self.child.wait() != 0:
            raise RuntimeError("the input producer failed")

    async def __aexit__(self, *exc: object) -> None:
        if self.child.returncode is None:
            self.child.kill()
            await self.child.wait()


async def measure(settings: Settings, count: int, *, emit: bool) -> dict[str, Any]:
    """CPU seconds per record of a service with an empty handler (with `emit`: one event each)."""
    # No tables of its own: the shared migrations (inbox, outbox) only.
    with tempfile.TemporaryDirectory(prefix="floor-migrations-") as no_migrations:
        return await _measure(settings, count, emit, Path(no_migrations))


async def _measure(settings: Settings, count: int, emit: bool, migrations: Path) -> dict[str, Any]:
    tag = f"{'w' if emit else 'h'}{time.monotonic_ns() % 10**9}"
    async with scratch_service_database("matching") as db:
        service = Service(
            floor_router(emit),
            migrations,
            settings=settings.model_copy(update=db.settings() | {"health_port": 0}),
        )
        await service.start()
        tune_gc_after_start()  # as a service's own process does
        try:
            await asyncio.sleep(3.0)  # the group joined, the relay leads
            # The broker's part of taking the input in, measured alone (onto the decisions topic,
            # which nothing here reads), then taken off.
            async with _Input(settings, count, tag + "x", settings.topic(MATCHING_DECISIONS)) as aside:
                before = _cpu()
                await aside.send()
                ingest = delta(_cpu(), before)
            async with _Input(settings, count, tag, settings.topic(INTAKE_DOCUMENTS)) as real:
                counted, batches = _counted(), service.consumer.batches
                before, started = _cpu(), time.perf_counter()
                await real.send()
            # The service's own counters say when to look; the database says when it is done
            # (every record in the inbox, every event marked published): polled rarely, as the
            # polling's own statements are in the window.
            pool = service._pool()
            while True:
                if _counted() - counted >= count:
                    handled, unpublished, rows = await pool.fetchrow(
                        """SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM outbox
                                   WHERE published_at IS NULL), (SELECT count(*) FROM outbox)"""
                    )
                    if handled >= count and (not emit or (rows >= count and not unpublished)):
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.02)
            seconds = time.perf_counter() - started
            used = delta(_cpu(), before)
            batches = service.consumer.batches - batches
        finally:
            await service.stop()
    used["kafka"] -= ingest["kafka"]
    return {
        "records": count,
        "seconds": round(seconds, 2),
        "records_per_s": round(count / seconds, 1),
        "records_per_batch": round(count / max(1, batches), 1),
        "cpu_ms_per_record": {k: round(1000 * v / count, 4) for k, v in used.items()},
        "cpu_ms_per_record_total": round(1000 * sum(used.values()) / count, 4),
        "kafka_ingest_ms_per_record_taken_off": round(1000 * ingest["kafka"] / count, 4),
    }


async def measure_floor(
    records: int,
    written: float,
    handed: float,
    *,
    hop_ms: float,
    hop_ms_measured: float | None = None,
    batch_max: int | None = None,
) -> dict[str, Any]:
    """The floor, per record and per flow of `written` / `handed` records; in baseline hops of
    `hop_ms` (as issue 13 counts them: cores ÷ hop rate) and, if given, of the hop's measured CPU.
    `batch_max`: the consumer's batch limit (CONCORD_CONSUMER_BATCH_MAX; the services' default if
    not given): the floor at the smaller batches of a lighter load."""
    settings = isolated_settings()
    if batch_max is not None:
        settings = settings.model_copy(update={"consumer_batch_max": batch_max})
    topics = (INTAKE_DOCUMENTS, MATCHING_DECISIONS, DEADLETTER)
    await create_topics(settings, topics)
    try:
        handed_only = await measure(settings, records, emit=False)
        with_write = await measure(settings, records, emit=True)
    finally:
        await delete_topics(settings, topics)
    floor_handed = handed_only["cpu_ms_per_record_total"]
    floor_written = with_write["cpu_ms_per_record_total"] - floor_handed
    per_flow = handed * floor_handed + written * floor_written
    out = {
        "handed": handed_only,
        "handed_and_written": with_write,
        "ms_per_record_handed": round(floor_handed, 4),
        "ms_per_record_written": round(floor_written, 4),
        "records_per_flow": {"written": written, "handed": handed},
        "consumer_batch_max": settings.consumer_batch_max,
        "ms_per_flow": round(per_flow, 3),
        "baseline_hops_per_flow": round(per_flow / hop_ms, 1),
    }
    if hop_ms_measured:
        out["baseline_hops_per_flow_measured_hop_cpu"] = round(per_flow / hop_ms_measured, 1)
    return out


async def run(records: int, written: float, handed: float, batch_max: int | None) -> dict[str, Any]:
    hop = await measure_hop(Settings(), ADMIN_DSN, records=20000)
    hop_ms = hop.cpu_ms_if_all_cores
    return {
        "baseline_hop_records_per_s": round(hop.per_second, 1),
        "baseline_hop_cpu_ms_if_all_cores": round(hop_ms, 4),
        "baseline_hop_cpu_ms": round(hop.cpu_ms_per_record, 4),
        "floor": await measure_floor(
            records,
            written,
            handed,
            hop_ms=hop_ms,
            hop_ms_measured=hop.cpu_ms_per_record,
            batch_max=batch_max,
        ),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "produce":
        prefix, count, tag, topic = sys.argv[2:6]
        asyncio.run(produce(prefix, int(count), tag, topic))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10000, help="records per measurement")
    parser.add_argument("--written", type=float, default=11.3, help="Kafka records written per flow")
    parser.add_argument("--handed", type=float, default=14.1, help="records handed to services per flow")
    parser.add_argument("--batch-max", type=int, help="the consumer's batch limit (default: the services')")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import uvloop  # as the services run

    result = uvloop.run(run(args.records, args.written, args.handed, args.batch_max))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
