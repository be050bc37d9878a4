"""`python -m bench.egress`: what the last stretch of a flow costs, without Kafka — payout_release
and the ledger, the benchmark's flows through to `payout.released` and its journal entry.

`bench.inprocess` stops at matching's decisions; a flow of the end-to-end benchmark ends with
the payout run (payout_release's periodic task) and the ledger posting what it released. This
runs the same flows through intake and matching (not measured), then measures payout_release
and the ledger: each event type they read as one batch of `--flows` records, a payout run over
the round's approved invoices (one payout per payee: the benchmark's 50 payees), and the
ledger's batch of what the run released. Rounds run on the same pools, so connections,
prepared statements and plans are warm as in a running service; the first `--warmup` rounds
are not counted. Per stage and flow: this process's CPU (`time.process_time`), the CPU of the
PostgreSQL backend that ran the batch (/proc's schedstat: the statements, the journal's
deferred checks at commit, index upkeep), and the client statements (testkit.sql).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from bench.inprocess import Pipeline, _prime, service_pools
from bench.pipeline import flow
from services.payout_release import domain, runs
from shared.consumer import RawRecord
from shared.envelope import new_envelope
from shared.inbox import write_outbox
from shared.outbox import OutboxMessage
from shared.unit_of_work import UnitOfWork
from testkit.sql import count_statements


def server_cpu_s(pid: int) -> float:
    """CPU time of a PostgreSQL backend (same machine): /proc's schedstat, in nanoseconds."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


class EgressPipeline(Pipeline):
    """bench.inprocess's pipeline, also counting the server's CPU for each batch: the backend's
    own, the statements' execution and the journal's deferred checks at commit included."""

    def __init__(self, pools: dict[str, Any]) -> None:
        super().__init__(pools)
        self.server_s: dict[str, float] = defaultdict(float)

    async def deliver(self, service: str, records: list[Any]) -> list[OutboxMessage]:
        processor = self.processors[service]
        async with self.pools[service].acquire() as conn, count_statements(conn) as counted:
            pid = conn.get_server_pid()
            server, started = server_cpu_s(pid), time.process_time()
            async with conn.transaction():
                result = await processor.process(conn, records)
            used, server = time.process_time() - started, server_cpu_s(pid) - server
        if self.counting:
            self.cpu_s[service] += used
            self.server_s[service] += server
            self.statements[service] += counted.count
        return result.outbox

    async def fan_out_to(self, service: str, messages: list[OutboxMessage]) -> list[OutboxMessage]:
        """What `service` reads of `messages`, one batch per event type, not counted."""
        by_type: dict[str, list[RawRecord]] = defaultdict(list)
        for m in messages:
            if service in self.readers[m.topic]:
                by_type[m.envelope.event_type].append(self._raw(m))
        out: list[OutboxMessage] = []
        for records in by_type.values():
            out += await self.deliver(service, records)
        return out


async def _payout_run(p: EgressPipeline, run_id: str) -> tuple[list[OutboxMessage], float, float, int]:
    """A scheduled payout run, as the periodic task runs it (a run id of its own per round)."""
    processor = p.processors["payout_release"]
    async with p.pools["payout_release"].acquire() as conn, count_statements(conn) as counted:
        pid = conn.get_server_pid()
        server, started = server_cpu_s(pid), time.process_time()
        async with conn.transaction():
            uow = UnitOfWork(conn, processor.settings, "payout_release", config=processor.config)
            await runs.execute_run(uow, domain.RunRequest(run_id, "schedule"))
            await write_outbox(conn, uow.outbox)
        used, server = time.process_time() - started, server_cpu_s(pid) - server
    return uow.outbox, used, server, counted.count


def _inbound_round(tag: str, flows: int, round_no: int, settings: Any) -> list[list[RawRecord]]:
    """Round `round_no`'s POs, receipts and invoices: flows of their own, the primed payees."""
    today = datetime.now(UTC).date().isoformat()
    batches: list[list[RawRecord]] = [[], [], []]
    for i in range(round_no * flows, (round_no + 1) * flows):
        for n, (topic, key, event_type, data) in enumerate(flow(tag, i, today)):
            env = new_envelope(event_type, data, source="bench")
            batches[n].append(
                RawRecord(settings.topic(topic), 0, i, key.encode(), env.model_dump_json().encode())
            )
    return batches


@dataclass
class Measured:
    """Per stage ("<service>: <event type>", or the payout run), one value per measured round."""

    cpu_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statements: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, name: str, cpu_s: float, server_s: float, statements: int) -> None:
        self.cpu_s[name].append(cpu_s)
        self.server_s[name].append(server_s)
        self.statements[name].append(statements)


async def measure(flows: int, rounds: int, warmup: int) -> Measured:
    """`warmup + rounds` rounds of `flows` flows on the same pools (warm connections, prepared
    statements and plans, as a running service has them); only the last `rounds` are counted."""
    async with service_pools() as pools:
        p = EgressPipeline(pools)
        tag = uuid.uuid4().hex[:6]
        await _prime(p, tag)
        measured = Measured()
        counting = False

        async def stage(service: str, messages: list[OutboxMessage]) -> list[OutboxMessage]:
            """Each event type `service` reads of `messages` as one batch."""
            only = [m for m in messages if service in p.readers[m.topic]]
            by_type: dict[str, list[Any]] = defaultdict(list)
            for m in only:
                by_type[m.envelope.event_type].append(p._raw(m))
            out: list[OutboxMessage] = []
            for event_type, records in by_type.items():
                p.counting = True
                out += await p.deliver(service, records)
                p.counting = False
                used = p.cpu_s.pop(service), p.server_s.pop(service), p.statements.pop(service)
                if counting:
                    measured.add(f"{service}: {event_type}", *used)
            return out

        for round_no in range(warmup + rounds):
            counting = round_no >= warmup
            documents: list[OutboxMessage] = []
            for batch in _inbound_round(tag, flows, round_no, p.settings):
                documents += await p.deliver("intake", batch)
            decisions = await p.fan_out_to("matching", documents)
            await stage("ledger", documents)
            await stage("payout_release", documents)
            await stage("payout_release", decisions)
            await stage("ledger", decisions)
            released, *used = await _payout_run(p, f"run-{tag}-{round_no}")
            if counting:
                measured.add("payout_release: payout run", *used)
            await stage("ledger", released)
            paid = sum(
                len(m.envelope.data["invoices"])
                for m in released
                if m.envelope.event_type == "payout.released"
            )
            assert paid == flows, f"the run paid {paid} of {flows} invoices"
        return measured


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.egress", description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=200, help="flows per batch")
    ap.add_argument("--rounds", type=int, default=10, help="rounds measured")
    ap.add_argument("--warmup", type=int, default=3, help="rounds run first, not measured")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    m = asyncio.run(measure(args.flows, args.rounds, args.warmup))
    print(
        f"{args.flows} flows per batch, {args.rounds} rounds after {args.warmup} of warm-up;"
        " per flow, the median round (the machine is shared: a round disturbed by a neighbour"
        " does not move it):"
    )
    out: dict[str, Any] = {
        name: {
            "cpu_ms": round(1000 * statistics.median(m.cpu_s[name]) / args.flows, 3),
            "server_cpu_ms": round(1000 * statistics.median(m.server_s[name]) / args.flows, 3),
            "statements": round(statistics.median(m.statements[name]) / args.flows, 3),
        }
        for name in sorted(m.cpu_s)
    }
    for service in ("payout_release", "ledger"):
        mine = {k: v for k, v in out.items() if k.startswith(service)}
        total = {
            key: round(sum(v[key] for v in mine.values()), 3)
            for key in ("cpu_ms", "server_cpu_ms", "statements")
        }
        out[f"{service} (all stages)"] = total
        for name, v in [*mine.items(), (f"{service} (all stages)", total)]:
            print(
                f"  {name:48s} {v['cpu_ms']:7.3f} ms client  {v['server_cpu_ms']:7.3f} ms server"
                f"  {v['statements']:6.3f} statements"
            )
    return out


if __name__ == "__main__":
    main()
