"""`python -m bench.inprocess`: CPU time and SQL statements per flow per service, without Kafka.

The benchmark's flows (PO, receipt, invoice) go through the real handlers on real PostgreSQL
(scratch databases), one batch per event type and service as a loaded consumer would fetch
them: intake's batches, then what intake wrote to its outbox to matching, payout_release and
the ledger, then matching's decisions to payout_release and the ledger. Payees and funding are
primed first and not counted. What is measured per service: the CPU time of this process inside
its batches (`time.process_time`: Python, pydantic, asyncpg's protocol; PostgreSQL's own CPU is
not in it) and the statements it issued (testkit.sql: client calls, transaction control
included). No Kafka, no relay, no payout run: the per-record and per-batch cost of the handlers
and of the shared runtime around them, with much less noise than the end-to-end benchmark.

`--flows N` (default 200) per batch; `--repeat R` runs R fresh batches of N flows and reports
the best (least disturbed) repetition's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from bench.pipeline import PAYEES, flow
from shared.consumer import BatchProcessor, RawRecord, Router
from shared.envelope import new_envelope
from shared.outbox import OutboxMessage
from shared.settings import Settings
from shared.topics import COMPLIANCE_ELIGIBILITY, IN_FUNDING, IN_PAYEES
from testkit import documents as doc
from testkit.sql import count_statements
from tests.support import scratch_pool, service_config

SERVICES = ("intake", "matching", "compliance_gate", "payout_release", "ledger")


def _router(service: str) -> Router:
    module = __import__(f"services.{service}.handlers", fromlist=["router"])
    router: Router = module.router
    return router


class Pipeline:
    def __init__(self, pools: dict[str, asyncpg.Pool]) -> None:
        self.settings = Settings()
        self.pools = pools
        self.processors: dict[str, BatchProcessor] = {}
        self.readers: dict[str, set[str]] = defaultdict(set)  # topic name → services reading it
        for service in SERVICES:
            router = _router(service)
            processor = BatchProcessor(router, Settings(service=service))
            processor.config = service_config(service, processor.settings)
            self.processors[service] = processor
            for topic in router.topics:
                self.readers[self.settings.topic(topic)].add(service)
        self.offsets: dict[str, int] = defaultdict(int)
        self.cpu_s: dict[str, float] = defaultdict(float)
        self.statements: dict[str, int] = defaultdict(int)
        self.counting = False

    def _raw(self, m: OutboxMessage) -> RawRecord:
        offset = self.offsets[m.topic]
        self.offsets[m.topic] += 1
        headers = tuple((k, v.encode()) for k, v in m.headers.items())
        return RawRecord(m.topic, 0, offset, m.key.encode(), m.value(), headers)

    async def deliver(self, service: str, records: list[RawRecord]) -> list[OutboxMessage]:
        processor = self.processors[service]
        async with self.pools[service].acquire() as conn, count_statements(conn) as counted:
            started = time.process_time()
            async with conn.transaction():
                result = await processor.process(conn, records)
            used = time.process_time() - started
        if self.counting:
            self.cpu_s[service] += used
            self.statements[service] += counted.count
        return result.outbox

    async def fan_out(self, messages: list[OutboxMessage]) -> list[OutboxMessage]:
        """Each service gets what it reads of `messages`, one batch per event type (in order)."""
        emitted: list[OutboxMessage] = []
        for service in SERVICES:
            mine = [m for m in messages if service in self.readers[m.topic]]
            by_type: dict[str, list[RawRecord]] = defaultdict(list)
            for m in mine:
                by_type[m.envelope.event_type].append(self._raw(m))
            for records in by_type.values():
                emitted += await self.deliver(service, records)
        return emitted


def _inbound(tag: str, flows: int, settings: Settings) -> list[list[RawRecord]]:
    """The flows' POs, receipts and invoices: three batches, as intake would fetch them."""
    today = datetime.now(UTC).date().isoformat()
    batches: list[list[RawRecord]] = [[], [], []]
    for i in range(flows):
        for n, (topic, key, event_type, data) in enumerate(flow(tag, i, today)):
            env = new_envelope(event_type, data, source="bench")
            batches[n].append(
                RawRecord(settings.topic(topic), 0, i, key.encode(), env.model_dump_json().encode())
            )
    return batches


async def _prime(p: Pipeline, tag: str) -> None:
    screened = datetime.now(UTC).isoformat()
    payees = [
        RawRecord(
            p.settings.topic(IN_PAYEES),
            0,
            i,
            f"bp-{tag}-{i}".encode(),
            new_envelope(
                "payee.profile_updated",
                doc.payee_profile(
                    f"bp-{tag}-{i}",
                    country="DE",
                    screened_at=screened,
                    tax=doc.tax_form("W-8BEN-E", "2026-01-10"),
                ),
                source="bench",
            )
            .model_dump_json()
            .encode(),
        )
        for i in range(PAYEES)
    ]
    eligibility = await p.deliver("compliance_gate", payees)
    funding = new_envelope(
        "funding.received",
        doc.funding(
            f"bf-{tag}",
            account_id="bench-acct",
            legal_entity="bench-le",
            currency="EUR",
            amount="1000000000.00",
            received_at=screened,
        ),
        source="bench",
    )
    funded = RawRecord(p.settings.topic(IN_FUNDING), 0, 0, b"bench-acct", funding.model_dump_json().encode())
    await p.fan_out(eligibility)
    for service in ("payout_release", "ledger"):
        await p.deliver(service, [funded])
    assert all(m.topic == p.settings.topic(COMPLIANCE_ELIGIBILITY) for m in eligibility)


@asynccontextmanager
async def service_pools() -> AsyncIterator[dict[str, asyncpg.Pool]]:
    """A scratch database of each service's, migrated, and a pool on its runtime role."""
    async with AsyncExitStack() as stack:
        yield {s: await stack.enter_async_context(scratch_pool(s)) for s in SERVICES}


async def measure(flows: int) -> tuple[dict[str, float], dict[str, int]]:
    async with service_pools() as pools:
        p = Pipeline(pools)
        tag = uuid.uuid4().hex[:6]
        await _prime(p, tag)
        p.counting = True
        documents: list[OutboxMessage] = []
        for batch in _inbound(tag, flows, p.settings):
            documents += await p.deliver("intake", batch)
        decisions = await p.fan_out(documents)
        await p.fan_out(decisions)
        return dict(p.cpu_s), dict(p.statements)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    # INFO, as the services log in production and in the benchmark: no per-record debug lines.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    best: dict[str, float] = {}
    statements: dict[str, int] = {}
    for _ in range(args.repeat):
        cpu, statements = asyncio.run(measure(args.flows))
        for service, used in cpu.items():
            best[service] = min(best.get(service, float("inf")), used)
    out = {
        service: {
            "cpu_ms_per_flow": round(1000 * best.get(service, 0.0) / args.flows, 3),
            "statements_per_flow": round(statements.get(service, 0) / args.flows, 3),
        }
        for service in SERVICES
    }
    total_cpu = sum(v["cpu_ms_per_flow"] for v in out.values())
    total_statements = sum(v["statements_per_flow"] for v in out.values())
    print(f"{args.flows} flows per batch, best of {args.repeat} (CPU of this process only)")
    for service, v in out.items():
        cpu, statements = v["cpu_ms_per_flow"], v["statements_per_flow"]
        print(f"  {service:16s} {cpu:7.3f} ms CPU   {statements:6.3f} statements")
    print(f"  {'total':16s} {total_cpu:7.3f} ms CPU   {total_statements:6.3f} statements")
    return out


if __name__ == "__main__":
    main()
