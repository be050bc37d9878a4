"""`python -m bench.outbox_cost`: what the inbox/outbox round of one batch costs PostgreSQL.

Per round, as a service does it: a pooled connection is acquired, a transaction writes `--rows`
inbox rows and as many outbox rows (~1 KB values, like an `invoice.accepted`) in the one
statement the consumer uses, commits, and the connection goes back to the pool (asyncpg's reset
on release); then the relay's `publish_pending` selects the rows, hands them to a producer and
marks them published. The producer here acknowledges at once (no Kafka): what is measured is
PostgreSQL's CPU (every process of this stack's server — backends, WAL writer, checkpointer,
autovacuum — from /proc, as `make bench` counts it) and this process's CPU, per row, on a
scratch database with the shared migrations. `--rounds` rounds per repetition, best of
`--repeat`; compare versions by running this on each, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.cpu import infrastructure_cpu_s, process_cpu_s
from shared.envelope import new_envelope
from shared.inbox import write_inbox_and_outbox
from shared.outbox import OutboxMessage, OutboxRelay
from tests.support import scratch_pool

_PAD = "x" * 700  # an invoice.accepted's envelope is ~1 KB


class AckingProducer:
    """Acknowledges every send at once: the benchmark measures the database's side of the relay."""

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def _round(pool: Any, relay: OutboxRelay, relay_conn: Any, rows: int) -> None:
    messages = [
        OutboxMessage(
            "bench.outbox",
            f"k-{uuid.uuid4().hex[:8]}",
            new_envelope("x.happened", {"n": n, "pad": _PAD}, source="bench"),
            {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-00"},
        )
        for n in range(rows)
    ]
    inbox = [
        (uuid.uuid4().hex, "x.received", "bench.in", 0, n, f"ref-{n}", "accepted", "h" * 64)
        for n in range(rows)
    ]
    async with pool.acquire() as conn, conn.transaction():
        await write_inbox_and_outbox(conn, inbox, messages)
    await relay.publish_pending(relay_conn)


@dataclass(frozen=True)
class Cost:
    """µs of CPU per outbox row."""

    postgresql: float  # every process of the server
    writer: float  # the backend of the batches' transactions
    relay: float  # the relay's backend
    client: float  # this process


async def measure(rounds: int, rows: int) -> Cost:
    """CPU per row over `rounds` rounds on a fresh database."""
    async with scratch_pool(None) as pool:
        relay = OutboxRelay("bench", pool, AckingProducer())  # type: ignore[arg-type]
        async with pool.acquire() as relay_conn:
            for _ in range(20):  # warm the plans and caches; the pool's writer connection exists now
                await _round(pool, relay, relay_conn, rows)
            async with pool.acquire() as conn:
                writer_pid = conn.get_server_pid()
            relay_pid = relay_conn.get_server_pid()

            def now() -> tuple[float, ...]:
                pg = infrastructure_cpu_s()["postgresql"]
                return (pg, process_cpu_s(writer_pid), process_cpu_s(relay_pid), time.process_time())

            before = now()
            for _ in range(rounds):
                await _round(pool, relay, relay_conn, rows)
            used = [b - a for a, b in zip(before, now(), strict=True)]
    per_row = [1e6 * u / (rounds * rows) for u in used]
    return Cost(*per_row)


async def main(args: argparse.Namespace) -> None:
    results = [await measure(args.rounds, args.rows) for _ in range(args.repeat)]
    print(f"µs of CPU per outbox row, {args.rows} rows per batch, {args.rounds} batches")
    for r in results:
        print(
            f"  postgresql {r.postgresql:6.1f} (writer backend {r.writer:6.1f}, relay backend {r.relay:6.1f})"
            f"   client {r.client:6.1f}"
        )
    best = min(results, key=lambda r: r.postgresql)
    print(f"best: postgresql {best.postgresql:.1f}, writer {best.writer:.1f}, relay {best.relay:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
