"""SQL statements per flow per service, from PostgreSQL's own count (`pg_stat_statements`).

Every statement a service's process issues — its handlers', the inbox's and outbox's, the
relay's, the periodic tasks', transaction control included — is counted by the server, per
database; each service has a database of its own in the benchmark, so the count is the
service's. Read before and after the throughput window, the difference divided by the flows
that completed is what one flow costs each service in round trips.

Needs the extension loaded by the server (`shared_preload_libraries = 'pg_stat_statements'`,
which the local stack does not set by default: it costs the server a little on every statement)
and created in the admin database; without it the benchmark reports nothing here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from tests.support import ADMIN_DSN

# Statement texts as pg_stat_statements normalises them ($1… for constants), by database.
Snapshot = dict[str, Counter[str]]


def database_of(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


async def snapshot(databases: dict[str, str]) -> Snapshot | None:
    """service → {statement text: calls so far}; None when pg_stat_statements is not there."""
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            rows = await conn.fetch(
                """SELECT d.datname, s.query, sum(s.calls)::bigint AS calls
                     FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                    WHERE d.datname = ANY($1::text[])
                    GROUP BY 1, 2""",
                list(databases.values()),
            )
        except asyncpg.PostgresError:
            return None
    finally:
        await conn.close()
    service_of = {db: service for service, db in databases.items()}
    out: Snapshot = {service: Counter() for service in databases}
    for r in rows:
        out[service_of[r["datname"]]][r["query"]] += r["calls"]
    return out


def per_flow(before: Snapshot, after: Snapshot, flows: int, top: int = 12) -> dict[str, Any]:
    """Statements per completed flow per service, and each service's most frequent statements."""
    flows = max(1, flows)
    out: dict[str, Any] = {}
    total = 0.0
    for service, counts in after.items():
        diff = counts - before.get(service, Counter())
        calls = sum(diff.values())
        total += calls / flows
        commits = sum(n for q, n in diff.items() if q.split(None, 1)[:1] == ["COMMIT"])
        out[service] = {
            "per_flow": round(calls / flows, 2),
            # Transactions (batches, periodic runs): a slower pipeline fetches bigger batches, so
            # statements per flow fall with load; per transaction is the comparable figure.
            "commits_per_flow": round(commits / flows, 3),
            "per_commit": round(calls / commits, 1) if commits else None,
            "top": [
                {"per_flow": round(n / flows, 2), "statement": " ".join(q.split())[:160]}
                for q, n in diff.most_common(top)
            ],
        }
    out["total_per_flow"] = round(total, 2)
    return out


async def transactions(databases: dict[str, str]) -> dict[str, int]:
    """service → transactions committed so far in its database (`pg_stat_database.xact_commit`,
    always collected): batches, relay rounds and periodic runs. Set against the records a
    service read, it says how large its batches were. The server publishes these counters within
    about a second of the commit, so a figure read right after a phase may miss its last commits."""
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        rows = await conn.fetch(
            "SELECT datname, xact_commit FROM pg_stat_database WHERE datname = ANY($1::text[])",
            list(databases.values()),
        )
    finally:
        await conn.close()
    service_of = {db: service for service, db in databases.items()}
    return {service_of[r["datname"]]: int(r["xact_commit"]) for r in rows}
