"""What the console reads from the services' databases, as `concord_reader` (SPEC §11).

The queue list reuses the CLI's reader (tools.cli.readers.open_holds); the reconciliation and
the invoice's money trail reuse the ledger's own queries (services.ledger.queries). What only the
console shows — one hold with the lines its check compared, an override's answer, the payout
blocks — is read here, each in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

from tools.cli.readers import OpenHoldRow, open_holds


@dataclass(frozen=True)
class QueueFilter:
    queue: str | None = None
    owner: str | None = None
    reason: str | None = None
    older_than: timedelta | None = None
    escalated: bool | None = None


async def hold_queue(conn: asyncpg.Connection, f: QueueFilter, now: datetime) -> list[OpenHoldRow]:
    """The open holds that pass the filter, soonest due first."""
    rows = await open_holds(conn, queue=f.queue, opened_before=now - f.older_than if f.older_than else None)
    kept = [
        r
        for r in rows
        if (f.owner is None or f.owner.lower() in r.owner.lower())
        and (f.reason is None or r.reason == f.reason)
        and (f.escalated is None or r.escalated == f.escalated)
    ]
    return sorted(kept, key=lambda r: (r.due_by, r.hold_id))


async def counts_per_queue(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT queue, count(*) AS n FROM holds WHERE status = 'open' GROUP BY queue")
    return {r["queue"]: r["n"] for r in rows}


async def open_reasons(conn: asyncpg.Connection) -> list[str]:
    return [r["reason"] for r in await conn.fetch("SELECT DISTINCT reason FROM holds ORDER BY reason")]


@dataclass(frozen=True)
class ComparedLine:
    """One invoice line beside the PO line and the quantity received that its check compared."""

    line_id: str
    po_line_id: str | None
    invoice_quantity: str
    invoice_unit_price: str
    line_amount: str
    po_quantity: str | None
    po_unit_price: str | None
    received_quantity: str | None
    differs: bool


@dataclass(frozen=True)
class HoldDetail:
    hold: dict[str, Any]
    invoice: dict[str, Any]  # the InvoiceAccepted document matching holds
    invoice_status: str
    po_version: int | None
    po: dict[str, Any] | None
    receipts: list[dict[str, Any]]
    lines: list[ComparedLine]
    other_holds: list[dict[str, Any]] = field(default_factory=list)


async def hold_detail(conn: asyncpg.Connection, hold_id: str) -> HoldDetail | None:
    hold = await conn.fetchrow("SELECT * FROM holds WHERE hold_id = $1", hold_id)
    if hold is None:
        return None
    inv = await conn.fetchrow(
        "SELECT document, status FROM invoices WHERE invoice_id = $1", hold["invoice_id"]
    )
    po = None
    receipts: list[dict[str, Any]] = []
    if hold["po_number"]:
        # The PO version in force when the hold was opened: what the check compared against.
        po = await conn.fetchrow(
            """SELECT version, state FROM po_versions WHERE po_number = $1
                ORDER BY (in_force_since <= $2) DESC, version DESC LIMIT 1""",
            hold["po_number"],
            hold["opened_at"],
        )
        receipts = [
            dict(r)
            for r in await conn.fetch(
                """SELECT receipt_id, kind, received_at, lines, reversed_at, reversal_reason
                     FROM receipts WHERE po_number = $1 ORDER BY received_at NULLS LAST, receipt_id""",
                hold["po_number"],
            )
        ]
    others = await conn.fetch(
        "SELECT hold_id, reason, queue, line_id, status FROM holds WHERE invoice_id = $1 AND hold_id <> $2"
        " ORDER BY opened_at",
        hold["invoice_id"],
        hold_id,
    )
    document = inv["document"] if inv else {}
    po_state = po["state"] if po else None
    return HoldDetail(
        hold=dict(hold),
        invoice=document,
        invoice_status=inv["status"] if inv else "unknown",
        po_version=po["version"] if po else None,
        po=po_state,
        receipts=receipts,
        lines=compared_lines(document, po_state, receipts),
        other_holds=[dict(r) for r in others],
    )


def _dec(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def compared_lines(
    invoice: dict[str, Any], po: dict[str, Any] | None, receipts: list[dict[str, Any]]
) -> list[ComparedLine]:
    """Each invoice line with its PO line and the quantity received against that PO line (net of
    reversed receipts); `differs` flags a price or quantity the invoice does not share with them."""
    po_lines = {ln["line_id"]: ln for ln in (po or {}).get("lines", [])}
    received: dict[str, Decimal] = {}
    for r in receipts:
        if r.get("reversed_at") is not None:
            continue
        for ln in r.get("lines") or []:
            q = _dec(ln.get("quantity")) or Decimal(0)
            received[ln["po_line_id"]] = received.get(ln["po_line_id"], Decimal(0)) + q
    out = []
    for ln in invoice.get("lines", []):
        pl = po_lines.get(ln.get("po_line_id") or "")
        rec = received.get(ln.get("po_line_id") or "")
        qty, price = _dec(ln.get("quantity")), _dec(ln.get("unit_price"))
        differs = pl is not None and (
            price != _dec(pl.get("unit_price")) or (qty is not None and qty > (_dec(pl.get("quantity")) or 0))
        )
        if rec is not None and qty is not None and qty > rec:
            differs = True
        out.append(
            ComparedLine(
                line_id=str(ln.get("line_id")),
                po_line_id=ln.get("po_line_id"),
                invoice_quantity=str(ln.get("quantity")),
                invoice_unit_price=str(ln.get("unit_price")),
                line_amount=str(ln.get("line_amount")),
                po_quantity=str(pl["quantity"]) if pl else None,
                po_unit_price=str(pl["unit_price"]) if pl else None,
                received_quantity=str(rec) if rec is not None else None,
                differs=differs,
            )
        )
    return out


async def invoice_holds(conn: asyncpg.Connection, invoice_id: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in await conn.fetch(
            """SELECT hold_id, reason, queue, line_id, owner, status, opened_at, due_by, released_at,
                      released_by, override_id, approved_by, next_action, action
                 FROM holds WHERE invoice_id = $1 ORDER BY opened_at, hold_id""",
            invoice_id,
        )
    ]


async def invoice_status(conn: asyncpg.Connection, invoice_id: str) -> str | None:
    value = await conn.fetchval("SELECT status FROM invoices WHERE invoice_id = $1", invoice_id)
    return str(value) if value is not None else None


@dataclass(frozen=True)
class OverrideAnswer:
    status: str  # accepted | refused
    refusal_reasons: list[str]
    decided_at: datetime
    released: list[dict[str, Any]]


async def override_answer(conn: asyncpg.Connection, override_id: str) -> OverrideAnswer | None:
    """Matching's answer to a sent override: accepted (and the holds it released) or refused with
    every reason; None while matching has not decided yet."""
    row = await conn.fetchrow(
        "SELECT status, refusal_reasons, decided_at FROM overrides WHERE override_id = $1", override_id
    )
    if row is None:
        return None
    released = await conn.fetch(
        "SELECT hold_id, reason, line_id, released_at FROM holds WHERE override_id = $1 ORDER BY hold_id",
        override_id,
    )
    return OverrideAnswer(
        row["status"], list(row["refusal_reasons"] or []), row["decided_at"], [dict(r) for r in released]
    )


async def payout_blocks(conn: asyncpg.Connection, invoice_id: str) -> list[dict[str, Any]]:
    """Every payout run that blocked the invoice, newest first, with all its reasons."""
    return [
        dict(r)
        for r in await conn.fetch(
            """SELECT b.run_id, b.reasons, r.executed_at
                 FROM payout_blocks b LEFT JOIN payout_runs r USING (run_id)
                WHERE b.invoice_id = $1 ORDER BY r.executed_at DESC NULLS LAST, b.run_id DESC LIMIT 20""",
            invoice_id,
        )
    ]
