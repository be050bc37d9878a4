"""`python -m bench.pg_processes`: where PostgreSQL's own CPU goes, per process type, under a fixed load.

Runs `bench.inprocess`'s load (the real handlers on real PostgreSQL, no Kafka) `--flows` flows
per batch, `--repeat` times, and meanwhile samples /proc/<pid>/stat (utime + stime) of every
process of this stack's server every 0.1 s, keyed by its process title (`postgres: walwriter`,
`postgres: checkpointer`, `postgres: autovacuum worker`, `postgres: <role> <db> ...` for a client
backend), over the counted part of the load only (the scratch databases are made, migrated and
primed before it and dropped after it; their backends live through it). Also prints, for the
same window, the server's commits, WAL records, full-page images and WAL bytes
(pg_stat_database, pg_stat_wal) per flow. µs of CPU per flow.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

import asyncpg
import structlog

from bench import inprocess
from bench.cpu import _STATE, _processes, process_cpu_s
from shared.outbox import OutboxMessage

_ADMIN = os.environ.get("CONCORD_TEST_ADMIN_DSN", "")


def _postmasters() -> set[int]:
    return {
        pid
        for pid, (_, cmd) in _processes().items()
        if cmd.startswith((b"postgres", b"/usr/lib/postgresql")) and _STATE in cmd
    }


def _kind(title: str) -> str:
    """A process title → its type: a client backend's title names its role and database."""
    title = title.replace("\0", " ").strip()
    m = re.match(r"postgres: (.*)", title)
    if not m:
        return "postmaster"
    rest = m.group(1)
    for known in (
        "checkpointer",
        "background writer",
        "walwriter",
        "autovacuum launcher",
        "autovacuum worker",
        "logical replication launcher",
        "stats collector",
        "logger",
        "archiver",
    ):
        if rest.startswith(known):
            return known
    return "client backends"


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kinds: dict[int, str] = {}
        self.stop = threading.Event()
        self.masters = _postmasters()
        self.started = False

    def sample(self) -> None:
        for pid, (ppid, cmd) in _processes().items():
            if ppid not in self.masters:
                continue
            used = process_cpu_s(pid)
            # A process there before the load starts from its CPU then; one born during it from 0.
            self.first.setdefault(pid, used if not self.started else 0.0)
            self.kinds.setdefault(pid, _kind(cmd.decode(errors="replace")))
            self.last[pid] = used
        self.started = True

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            time.sleep(0.1)

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for pid, used in self.last.items():
            out[self.kinds[pid]] += used - self.first[pid]
        return dict(out)


async def _server_counters() -> dict[str, float]:
    conn = await asyncpg.connect(_ADMIN)
    try:
        db = await conn.fetchrow(
            "SELECT sum(xact_commit) AS commits, sum(xact_rollback) AS rollbacks FROM pg_stat_database"
        )
        wal = await conn.fetchrow("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal")
        return {**{k: float(v) for k, v in db.items()}, **{k: float(v) for k, v in wal.items()}}
    finally:
        await conn.close()


async def _measure(flows: int) -> tuple[dict[str, float], dict[str, float], float]:
    """bench.inprocess's load; the window is its counted part only (scratch databases made, migrated
    and primed before it, dropped after it)."""
    async with inprocess.service_pools() as pools:
        p = inprocess.Pipeline(pools)
        tag = uuid.uuid4().hex[:6]
        await inprocess._prime(p, tag)
        p.counting = True
        counters_before = await _server_counters()
        sampler = Sampler()
        sampler.sample()
        sampler.start()
        documents: list[OutboxMessage] = []
        for batch in inprocess._inbound(tag, flows, p.settings):
            documents += await p.deliver("intake", batch)
        decisions = await p.fan_out(documents)
        await p.fan_out(decisions)
        sampler.stop.set()
        await asyncio.to_thread(sampler.join)
        sampler.sample()
        counters_after = await _server_counters()
        client = sum(p.cpu_s.values())
    return (
        sampler.by_kind(),
        {k: counters_after[k] - counters_before[k] for k in counters_after},
        client,
    )


def _watch(seconds: float) -> dict[str, Any]:
    """CPU seconds per process type over `seconds`, whatever load runs meanwhile."""
    sampler = Sampler()
    sampler.sample()
    sampler.start()
    time.sleep(seconds)
    sampler.stop.set()
    sampler.join()
    sampler.sample()
    kinds = sampler.by_kind()
    print(f"PostgreSQL CPU seconds by process type over {seconds:.0f} s")
    for kind, used in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:28s} {used:8.2f}")
    print(f"  {'total':28s} {sum(kinds.values()):8.2f}")
    return {"by_kind_s": kinds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.pg_processes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--watch", type=float, default=0.0, help="only sample for this many seconds, beside another load"
    )
    args = ap.parse_args(argv)
    if args.watch:
        return _watch(args.watch)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    runs = [asyncio.run(_measure(args.flows)) for _ in range(args.repeat)]
    print(f"PostgreSQL CPU per flow by process type, µs ({args.flows} flows per batch; each run)")
    kinds = sorted({k for kinds, _, _ in runs for k in kinds}, key=lambda k: -runs[0][0].get(k, 0.0))
    for kind in kinds:
        cells = " ".join(f"{1e6 * r[0].get(kind, 0.0) / args.flows:8.1f}" for r in runs)
        print(f"  {kind:28s} {cells}")
    totals = " ".join(f"{1e6 * sum(r[0].values()) / args.flows:8.1f}" for r in runs)
    print(f"  {'total':28s} {totals}")
    clients = " ".join(f"{1e6 * r[2] / args.flows:8.1f}" for r in runs)
    print(f"  {'(client: the handlers)':28s} {clients}")
    print("server counters per flow (the whole cluster)")
    for k in runs[0][1]:
        cells = " ".join(f"{r[1][k] / args.flows:8.2f}" for r in runs)
        print(f"  {k:28s} {cells}")
    return {"runs": runs}


if __name__ == "__main__":
    main()
