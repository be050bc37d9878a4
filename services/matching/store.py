"""The SQL matching needs, in one place. Functions take the handler's connection (its transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg


def group_of(po_number: str | None, invoice_id: str) -> str:
    """The unit of rematch: a PO, or a lone no-PO invoice."""
    return po_number if po_number else f"invoice:{invoice_id}"


async def lock_group(conn: asyncpg.Connection, group: str) -> None:
    # Commands (keyed by invoice) and documents (keyed by PO) for one PO may be consumed by two
    # instances at once: one rematch of a PO at a time, until the transaction ends.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('matching:' || $1))", group)


# --- documents --------------------------------------------------------------------------------


async def save_po_version(
    conn: asyncpg.Connection,
    po_number: str,
    version: int,
    state: dict[str, Any],
    since: datetime,
    event_id: str,
) -> None:
    await conn.execute(
        """INSERT INTO po_versions (po_number, version, state, in_force_since, event_id)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (po_number, version) DO NOTHING""",
        po_number,
        version,
        state,
        since,
        event_id,
    )


async def save_closure(
    conn: asyncpg.Connection, po_number: str, closed_by: str, reason: str, at: datetime, event_id: str
) -> None:
    await conn.execute(
        """INSERT INTO po_closures (po_number, closed_by, reason, closed_after_seq, closed_at, event_id)
           SELECT $1, $2, $3, coalesce(max(seq), 0), $4, $5 FROM invoices WHERE match_group = $1
           ON CONFLICT (po_number) DO NOTHING""",
        po_number,
        closed_by,
        reason,
        at,
        event_id,
    )


async def save_requisition(conn: asyncpg.Connection, requisition_id: str, requested_by: str) -> None:
    await conn.execute(
        """INSERT INTO requisitions (requisition_id, requested_by) VALUES ($1, $2)
           ON CONFLICT (requisition_id) DO NOTHING""",
        requisition_id,
        requested_by,
    )


async def save_receipt(
    conn: asyncpg.Connection,
    receipt_id: str,
    po_number: str,
    kind: str,
    received_at: datetime,
    lines: list[dict[str, Any]],
    event_id: str,
) -> None:
    await conn.execute(
        """INSERT INTO receipts (receipt_id, po_number, kind, received_at, lines, event_id)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (receipt_id) DO UPDATE
               SET kind = EXCLUDED.kind, received_at = EXCLUDED.received_at,
                   lines = EXCLUDED.lines, event_id = EXCLUDED.event_id
               WHERE receipts.lines IS NULL""",
        receipt_id,
        po_number,
        kind,
        received_at,
        lines,
        event_id,
    )


async def reverse_receipt(
    conn: asyncpg.Connection,
    receipt_id: str,
    po_number: str,
    reversed_by: str,
    reason: str,
    at: datetime,
    event_id: str,
) -> None:
    await conn.execute(
        """INSERT INTO receipts (receipt_id, po_number, reversed_at, reversed_by, reversal_reason,
                                 reversal_event_id)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (receipt_id) DO UPDATE
               SET reversed_at = EXCLUDED.reversed_at, reversed_by = EXCLUDED.reversed_by,
                   reversal_reason = EXCLUDED.reversal_reason, reversal_event_id = EXCLUDED.reversal_event_id
               WHERE receipts.reversed_at IS NULL""",
        receipt_id,
        po_number,
        at,
        reversed_by,
        reason,
        event_id,
    )


async def save_invoice(
    conn: asyncpg.Connection,
    invoice_id: str,
    group: str,
    po_number: str | None,
    replaces: str | None,
    document: dict[str, Any],
    at: datetime,
    event_id: str,
) -> bool:
    """False when the invoice is already known (intake re-published it): the first copy stands."""
    inserted = await conn.fetchval(
        """INSERT INTO invoices (invoice_id, match_group, po_number, replaces_invoice_id, document,
                                 accepted_at, event_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (invoice_id) DO NOTHING RETURNING true""",
        invoice_id,
        group,
        po_number,
        replaces,
        document,
        at,
        event_id,
    )
    return bool(inserted)


async def find_invoice(conn: asyncpg.Connection, invoice_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT invoice_id, match_group, po_number, status, document FROM invoices WHERE invoice_id = $1",
        invoice_id,
    )


# --- one PO's state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRows:
    po_state: dict[str, Any] | None
    closed_after_seq: int | None
    requester: str | None
    receipts: list[asyncpg.Record]
    invoices: list[asyncpg.Record]
    replacements: dict[str, str]  # original invoice_id → replacing invoice_id, from any group
    overrides: list[asyncpg.Record]
    # Of the group's invoices and the invoices they replace: those ever approved to pay.
    settled: frozenset[str] = frozenset()


async def lock_groups(conn: asyncpg.Connection, groups: Sequence[str]) -> None:
    """lock_group for many groups, sorted: every instance takes them in one order (no deadlock)."""
    await conn.execute(
        """SELECT pg_advisory_xact_lock(hashtext('matching:' || g))
             FROM (SELECT DISTINCT g FROM unnest($1::text[]) AS g ORDER BY g) AS sorted""",
        list(groups),
    )


async def load_groups(conn: asyncpg.Connection, groups: Sequence[str]) -> dict[str, GroupRows]:
    """Everything a rematch reads, for many groups in a fixed number of round trips."""
    wanted = list(groups)
    pos = {
        r["po_number"]: r["state"]
        for r in await conn.fetch(
            """SELECT DISTINCT ON (po_number) po_number, state
                 FROM po_versions JOIN unnest($1::text[]) AS wanted(po_number) USING (po_number)
                ORDER BY po_number, version DESC""",
            wanted,
        )
    }
    closed = {
        r["po_number"]: r["closed_after_seq"]
        for r in await conn.fetch(
            """SELECT po_number, closed_after_seq
                 FROM po_closures JOIN unnest($1::text[]) AS wanted(po_number) USING (po_number)""",
            wanted,
        )
    }
    requisition_ids = [rid for state in pos.values() if (rid := state.get("requisition_id"))]
    requesters: dict[str, str] = {}
    if requisition_ids:
        requesters = {
            r["requisition_id"]: r["requested_by"]
            for r in await conn.fetch(
                """SELECT requisition_id, requested_by FROM requisitions
                     JOIN unnest($1::text[]) AS wanted(requisition_id) USING (requisition_id)""",
                requisition_ids,
            )
        }
    receipts = _by(
        "po_number",
        await conn.fetch(
            """SELECT receipt_id, po_number, kind, received_at, lines
                 FROM receipts JOIN unnest($1::text[]) AS wanted(po_number) USING (po_number)
                WHERE lines IS NOT NULL AND reversed_at IS NULL ORDER BY receipt_id""",
            wanted,
        ),
    )
    invoices = _by(
        "match_group",
        await conn.fetch(
            """SELECT invoice_id, match_group, seq, document, status
                 FROM invoices JOIN unnest($1::text[]) AS wanted(match_group) USING (match_group)
                ORDER BY seq""",
            wanted,
        ),
    )
    ids = [r["invoice_id"] for rows in invoices.values() for r in rows]
    replacements = {
        r["replaces_invoice_id"]: r["invoice_id"]
        for r in await conn.fetch(
            """SELECT DISTINCT ON (replaces_invoice_id) replaces_invoice_id, invoice_id FROM invoices
               WHERE replaces_invoice_id = ANY($1::text[]) AND invoice_id <> replaces_invoice_id
               ORDER BY replaces_invoice_id, seq""",
            ids,
        )
    }
    originals = [i for rows in invoices.values() for i in _replaced_by(rows)]
    settled = frozenset(
        r["invoice_id"]
        for r in await conn.fetch(
            """SELECT DISTINCT invoice_id
                 FROM decisions JOIN unnest($1::text[]) AS wanted(invoice_id) USING (invoice_id)
                WHERE event_type = 'invoice.approved_to_pay'""",
            ids + originals,
        )
    )
    overrides = await conn.fetch(
        """SELECT override_id, invoice_id, requested_by, approved_by, reason_code, justification, evidence,
                  scope, decided_at FROM overrides
           WHERE status = 'accepted' AND invoice_id = ANY($1::text[]) ORDER BY override_id""",
        ids,
    )
    loaded: dict[str, GroupRows] = {}
    for group in groups:
        po = pos.get(group)
        requester = None
        if po is not None:
            requester = requesters.get(po.get("requisition_id") or "") or po.get("created_by")
        group_ids = {r["invoice_id"] for r in invoices.get(group, ())}
        loaded[group] = GroupRows(
            po_state=po,
            closed_after_seq=closed.get(group),
            requester=requester,
            receipts=receipts.get(group, []),
            invoices=invoices.get(group, []),
            replacements={k: v for k, v in replacements.items() if k in group_ids},
            overrides=[r for r in overrides if r["invoice_id"] in group_ids],
            settled=frozenset(
                i for i in settled if i in group_ids or i in _replaced_by(invoices.get(group, ()))
            ),
        )
    return loaded


def _replaced_by(invoices: Sequence[asyncpg.Record]) -> set[str]:
    return {
        r["document"]["replaces_invoice_id"] for r in invoices if r["document"].get("replaces_invoice_id")
    }


def _by(column: str, rows: Sequence[asyncpg.Record]) -> dict[str, list[asyncpg.Record]]:
    grouped: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        grouped.setdefault(r[column], []).append(r)
    return grouped


# --- holds ------------------------------------------------------------------------------------


async def open_holds(conn: asyncpg.Connection, groups: Sequence[str]) -> dict[str, list[asyncpg.Record]]:
    """Open holds by group, for many groups at once."""
    return _by(
        "match_group",
        await conn.fetch(
            """SELECT * FROM holds JOIN unnest($1::text[]) AS wanted(match_group) USING (match_group)
                WHERE status = 'open' ORDER BY opened_at, hold_id""",
            list(groups),
        ),
    )


async def open_holds_of(conn: asyncpg.Connection, invoice_id: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM holds WHERE invoice_id = $1 AND status = 'open' ORDER BY reason, line_id",
            invoice_id,
        )
    )


async def holds_ever_opened(
    conn: asyncpg.Connection, invoice_id: str, reason: str, line_id: str | None
) -> int:
    count: int = await conn.fetchval(
        """SELECT count(*) FROM holds WHERE invoice_id = $1 AND reason = $2
           AND coalesce(line_id, '') = coalesce($3, '')""",
        invoice_id,
        reason,
        line_id,
    )
    return count


async def insert_hold(conn: asyncpg.Connection, hold: dict[str, Any]) -> asyncpg.Record:
    columns = list(hold)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    row = await conn.fetchrow(
        f"INSERT INTO holds ({', '.join(columns)}) VALUES ({placeholders}) RETURNING *",
        *hold.values(),
    )
    assert row is not None
    return row


async def release_hold(
    conn: asyncpg.Connection,
    hold_id: str,
    released_by: str,
    at: datetime,
    event_id: str,
    override_id: str | None,
    approved_by: str | None,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        """UPDATE holds SET status = 'released', released_by = $2, released_at = $3, releasing_event_id = $4,
                            override_id = $5, approved_by = $6
           WHERE hold_id = $1 AND status = 'open' RETURNING *""",
        hold_id,
        released_by,
        at,
        event_id,
        override_id,
        approved_by,
    )
    assert row is not None, f"hold {hold_id} is not open"
    return row


async def holds_due(conn: asyncpg.Connection, now: datetime, limit: int = 500) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """SELECT * FROM holds WHERE status = 'open' AND escalated_at IS NULL AND due_by < $1
               ORDER BY due_by, hold_id LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now,
            limit,
        )
    )


async def mark_escalated(conn: asyncpg.Connection, hold_ids: Sequence[str], at: datetime) -> None:
    await conn.execute(
        "UPDATE holds SET escalated_at = $2 WHERE hold_id = ANY($1::text[])", list(hold_ids), at
    )


async def open_holds_by_reason(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT reason, count(*) AS n FROM holds WHERE status = 'open' GROUP BY reason")
    return {r["reason"]: r["n"] for r in rows}


async def overdue_holds_by_queue(conn: asyncpg.Connection, now: datetime) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT queue, count(*) AS n FROM holds WHERE status = 'open' AND due_by < $1 GROUP BY queue", now
    )
    return {r["queue"]: r["n"] for r in rows}


# --- decisions and overrides ------------------------------------------------------------------


@dataclass
class DecisionWrites:
    """The decisions of a batch's rematches, written together at its end (nothing in a rematch
    reads them back): two statements a batch instead of two a decision."""

    # (invoice_id, seq, event_type, decision_id, event_id, payload, cause_event_id, decided_at)
    decisions: list[tuple[str, int, str, str, str, dict[str, Any], str, datetime]] = field(
        default_factory=list
    )
    # (invoice_id, status, decision_seq, decision_fingerprint, decided_at)
    invoice_states: list[tuple[str, str, int, str, datetime]] = field(default_factory=list)


async def save_decisions(conn: asyncpg.Connection, writes: DecisionWrites) -> None:
    if writes.decisions:
        await conn.executemany(
            """INSERT INTO decisions (invoice_id, seq, event_type, decision_id, event_id, payload,
                                      cause_event_id, decided_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            writes.decisions,
        )
    if writes.invoice_states:
        await conn.executemany(
            """UPDATE invoices SET status = $2, decision_seq = $3, decision_fingerprint = $4, decided_at = $5
               WHERE invoice_id = $1""",
            writes.invoice_states,
        )


async def last_decisions(conn: asyncpg.Connection, groups: Sequence[str]) -> dict[str, list[asyncpg.Record]]:
    """Each invoice's last decision by group, for many groups at once."""
    return _by(
        "match_group",
        await conn.fetch(
            """SELECT invoice_id, match_group, status, decision_seq, decision_fingerprint
                 FROM invoices JOIN unnest($1::text[]) AS wanted(match_group) USING (match_group)""",
            list(groups),
        ),
    )


async def find_override(conn: asyncpg.Connection, override_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM overrides WHERE override_id = $1", override_id)


async def save_override(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    """A refused override may be re-sent under the same id (e.g. with the right approver); an
    accepted one is final."""
    columns = list(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "override_id")
    await conn.execute(
        f"""INSERT INTO overrides ({", ".join(columns)}) VALUES ({placeholders})
            ON CONFLICT (override_id) DO UPDATE SET {updates} WHERE overrides.status = 'refused'""",
        *row.values(),
    )
