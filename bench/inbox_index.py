"""`python -m bench.inbox_index`: PostgreSQL's CPU per inbox row, the pruning index as a b-tree or a BRIN.

Every record a service consumes leaves an inbox row (about 16 per flow), written in the one
statement the consumer uses (`shared.inbox.write_inbox_and_outbox`, inbox part only), one batch
per transaction, committed. Two scratch databases with the shared migrations: one as migrated
(`inbox_processed_at` a b-tree, for the hourly pruning), the other with that index rebuilt as a
BRIN; the same batches go to each in alternating chunks, so both see the same machine. Reports µs of the
writing backend's CPU (/proc) per inbox row, per chunk and the median, and each index's size.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import uuid

from bench.cpu import process_cpu_s
from shared.inbox import write_inbox_and_outbox
from tests.support import scratch_pool

_BRIN = "DROP INDEX inbox_processed_at; CREATE INDEX inbox_processed_at ON inbox USING brin (processed_at)"


async def _batch(pool: object, rows: int) -> None:
    inbox = [
        (uuid.uuid4().hex, "invoice.accepted", "intake.docs", 0, n, f"inv-{n}", "applied", "h" * 64)
        for n in range(rows)
    ]
    async with pool.acquire() as conn, conn.transaction():  # type: ignore[attr-defined]
        await write_inbox_and_outbox(conn, inbox, [])


async def main(args: argparse.Namespace) -> None:
    async with scratch_pool(None) as btree, scratch_pool(None) as brin:
        async with brin.acquire() as conn:
            await conn.execute(_BRIN)
        pools = {"btree": btree, "brin": brin}
        pids = {}
        for name, pool in pools.items():
            for _ in range(50):
                await _batch(pool, args.rows)
            async with pool.acquire() as conn:
                pids[name] = conn.get_server_pid()
        used: dict[str, list[float]] = {name: [] for name in pools}
        for _ in range(args.chunks):
            for name, pool in pools.items():
                before = process_cpu_s(pids[name])
                for _ in range(args.batches):
                    await _batch(pool, args.rows)
                used[name].append(1e6 * (process_cpu_s(pids[name]) - before) / (args.batches * args.rows))
        print(f"writer backend µs per inbox row, {args.rows} rows a batch, {args.batches} batches a chunk")
        for name, pool in pools.items():
            size = await pool.fetchval("SELECT pg_size_pretty(pg_relation_size('inbox_processed_at'))")  # type: ignore[attr-defined]
            cells = " ".join(f"{u:6.1f}" for u in used[name])
            print(f"  {name:6s} median {statistics.median(used[name]):6.1f}   chunks {cells}   index {size}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--chunks", type=int, default=6)
    asyncio.run(main(parser.parse_args()))
