"""`python -m bench.group_commit`: PostgreSQL's CPU per synchronous commit, several writers at once.

`--writers` connections (default 5, one per service) each commit `--rounds` transactions of
one batch's inbox and outbox rows (`write_inbox_and_outbox`, `--rows` each, ~1 KB values), all
at once, as the five consumers do under load. Every commit is synchronous (the server's
`synchronous_commit = on`): what is measured is the CPU of every process of this stack's
server (/proc) per commit, and the WAL flushes (pg_stat_wal.wal_sync) per commit, under the
server's current settings: run it, change `commit_delay`/`commit_siblings` (a reload is
enough), run it again, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid

import asyncpg

from bench.cpu import infrastructure_cpu_s
from bench.outbox_cost import _PAD
from shared.db import connect
from shared.envelope import new_envelope
from shared.inbox import write_inbox_and_outbox
from shared.outbox import OutboxMessage
from tests.support import scratch_database


async def _commit(conn: asyncpg.Connection, rows: int) -> None:
    messages = [
        OutboxMessage(
            "bench.outbox", f"k-{n}", new_envelope("x.happened", {"n": n, "pad": _PAD}, source="bench")
        )
        for n in range(rows)
    ]
    inbox = [
        (uuid.uuid4().hex, "x.received", "bench.in", 0, n, None, "applied", "h" * 64) for n in range(rows)
    ]
    async with conn.transaction():
        await write_inbox_and_outbox(conn, inbox, messages)


async def _wal_syncs() -> tuple[int, int]:
    conn = await asyncpg.connect(os.environ["CONCORD_TEST_ADMIN_DSN"])
    try:
        row = await conn.fetchrow("SELECT wal_sync, wal_write FROM pg_stat_wal")
        return int(row["wal_sync"]), int(row["wal_write"])
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    async with scratch_database(None) as dsn:
        conns = [await connect(dsn) for _ in range(args.writers)]
        try:
            for conn in conns:
                for _ in range(10):
                    await _commit(conn, args.rows)
            cpu0, (sync0, _) = infrastructure_cpu_s()["postgresql"], await _wal_syncs()

            async def writer(conn: asyncpg.Connection) -> None:
                for _ in range(args.rounds):
                    await _commit(conn, args.rows)

            await asyncio.gather(*(writer(c) for c in conns))
            cpu1, (sync1, _) = infrastructure_cpu_s()["postgresql"], await _wal_syncs()
            names = ("commit_delay", "commit_siblings", "synchronous_commit")
            settings = {k: await conns[0].fetchval(f"SHOW {k}") for k in names}
        finally:
            for conn in conns:
                await conn.close()
    commits = args.writers * args.rounds
    print(
        f"{settings}: {commits} commits, PostgreSQL {1e6 * (cpu1 - cpu0) / commits:.0f} µs CPU per commit, "
        f"{(sync1 - sync0) / commits:.2f} WAL flushes per commit"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--rows", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
