"""The console's own database: override requests and their decisions (migrations/0001_init.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.console.overrides import Draft


@dataclass(frozen=True)
class OverrideRequest:
    request_id: str
    invoice_id: str
    hold_reasons: tuple[str, ...]
    queues: tuple[str, ...]
    reason_code: str
    justification: str
    evidence: tuple[str, ...]
    requested_by: str
    requested_at: datetime
    status: str
    decided_by: str | None
    decided_at: datetime | None
    decline_note: str | None
    sent_at: datetime | None


def _request(row: asyncpg.Record) -> OverrideRequest:
    d = dict(row)
    for k in ("hold_reasons", "queues", "evidence"):
        d[k] = tuple(d[k])
    return OverrideRequest(**d)


async def add_request(
    conn: asyncpg.Connection, draft: Draft, queues: tuple[str, ...], requested_by: str
) -> bool:
    """Store a new request; False if this request id was stored before (a form sent twice)."""
    added = await conn.fetchval(
        """INSERT INTO override_requests (request_id, invoice_id, hold_reasons, queues, reason_code,
                                          justification, evidence, requested_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (request_id) DO NOTHING RETURNING true""",
        draft.request_id,
        draft.invoice_id,
        list(draft.hold_reasons),
        list(queues),
        draft.reason_code,
        draft.justification,
        list(draft.evidence),
        requested_by,
    )
    return bool(added)


async def get_request(conn: asyncpg.Connection, request_id: str) -> OverrideRequest | None:
    row = await conn.fetchrow("SELECT * FROM override_requests WHERE request_id = $1", request_id)
    return _request(row) if row else None


async def list_requests(conn: asyncpg.Connection, *, limit: int = 100) -> list[OverrideRequest]:
    rows = await conn.fetch(
        """SELECT * FROM override_requests
            ORDER BY (status = 'pending') DESC, requested_at DESC LIMIT $1""",
        limit,
    )
    return [_request(r) for r in rows]


async def requests_for_invoice(conn: asyncpg.Connection, invoice_id: str) -> list[OverrideRequest]:
    rows = await conn.fetch(
        "SELECT * FROM override_requests WHERE invoice_id = $1 ORDER BY requested_at", invoice_id
    )
    return [_request(r) for r in rows]


async def decide(
    conn: asyncpg.Connection, request_id: str, status: str, by: str, note: str | None = None
) -> OverrideRequest | None:
    """pending → approved/declined, once: the second of two concurrent decisions gets None, so
    only one approval ever sends the command."""
    row = await conn.fetchrow(
        """UPDATE override_requests SET status = $2, decided_by = $3, decided_at = now(), decline_note = $4
            WHERE request_id = $1 AND status = 'pending' RETURNING *""",
        request_id,
        status,
        by,
        note,
    )
    return _request(row) if row else None


async def mark_sent(conn: asyncpg.Connection, request_id: str) -> None:
    await conn.execute(
        "UPDATE override_requests SET sent_at = now() WHERE request_id = $1 AND sent_at IS NULL", request_id
    )
