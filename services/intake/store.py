"""The SQL intake needs, in one place. Every function takes the handler's connection, so it runs
inside the batch's transaction (inbox + state + outbox commit together)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.intake.domain import DocumentType, KnownInvoice, KnownPo


def content_hash(payload: Any) -> str:
    """Same document → same hash, whatever the key order (tells a redelivery from a conflict)."""
    text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --- requisitions ----------------------------------------------------------------------------


async def requisition(conn: asyncpg.Connection, requisition_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM requisitions WHERE requisition_id = $1 FOR UPDATE", requisition_id
    )


async def save_requisition_approval(
    conn: asyncpg.Connection,
    *,
    requisition_id: str,
    legal_entity: str,
    business_unit: str,
    requested_by: str,
    approved_by: str,
    amount: Decimal,
    currency: str,
    approved_at: datetime,
    content_hash: str,
) -> None:
    await conn.execute(
        """INSERT INTO requisitions (requisition_id, legal_entity, business_unit, requested_by, approved_by,
                                     amount, currency, approved_at, content_hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (requisition_id) DO UPDATE SET
               legal_entity = EXCLUDED.legal_entity, business_unit = EXCLUDED.business_unit,
               requested_by = EXCLUDED.requested_by, approved_by = EXCLUDED.approved_by,
               amount = EXCLUDED.amount, currency = EXCLUDED.currency,
               approved_at = EXCLUDED.approved_at, content_hash = EXCLUDED.content_hash""",
        requisition_id, legal_entity, business_unit, requested_by, approved_by, amount, currency,
        approved_at, content_hash,
    )  # fmt: skip


async def close_requisition(
    conn: asyncpg.Connection, requisition_id: str, closed_by: str, reason: str, at: datetime
) -> None:
    await conn.execute(
        """UPDATE requisitions SET closed_by = $2, closed_reason = $3, closed_at = $4
           WHERE requisition_id = $1""",
        requisition_id, closed_by, reason, at,
    )  # fmt: skip


async def mark_requisition_converted(
    conn: asyncpg.Connection, requisition_id: str, po_number: str, at: datetime
) -> None:
    """A PO naming the requisition converts it, even if the approval has not arrived yet."""
    await conn.execute(
        """INSERT INTO requisitions (requisition_id, converted_po_number, converted_at) VALUES ($1, $2, $3)
           ON CONFLICT (requisition_id) DO UPDATE SET
               converted_po_number = COALESCE(requisitions.converted_po_number, EXCLUDED.converted_po_number),
               converted_at = COALESCE(requisitions.converted_at, EXCLUDED.converted_at)""",
        requisition_id, po_number, at,
    )  # fmt: skip


async def open_requisitions(conn: asyncpg.Connection, approved_before: datetime) -> list[asyncpg.Record]:
    """Approved requisitions neither converted to a PO nor closed, approved before a cut-off
    (the reconciliation report's list, SPEC §3)."""
    return list(
        await conn.fetch(
            """SELECT requisition_id, legal_entity, business_unit, amount, currency, approved_at
               FROM requisitions
               WHERE converted_po_number IS NULL AND closed_at IS NULL
                 AND approved_at IS NOT NULL AND approved_at < $1
               ORDER BY approved_at""",
            approved_before,
        )
    )


# --- purchase orders -------------------------------------------------------------------------


@dataclass(frozen=True)
class PoHeader:
    po_number: str
    in_force_version: int | None
    closed: bool


async def lock_po(conn: asyncpg.Connection, po_number: str) -> PoHeader:
    """Create-if-missing and lock the PO row: one PO's versions are decided one at a time even
    if a rebalance briefly gives its partition to two instances. One statement instead of
    INSERT .. DO NOTHING + SELECT .. FOR UPDATE: the no-op DO UPDATE row-locks an existing row
    just as FOR UPDATE does (waiting for a concurrent holder, or for a concurrent insert of the
    same PO to commit) and RETURNING gives its latest committed version."""
    row = await conn.fetchrow(
        """INSERT INTO purchase_orders (po_number) VALUES ($1)
           ON CONFLICT (po_number) DO UPDATE SET po_number = EXCLUDED.po_number
           RETURNING *""",
        po_number,
    )
    assert row is not None
    return PoHeader(row["po_number"], row["in_force_version"], row["closed_at"] is not None)


async def po_versions(conn: asyncpg.Connection, po_number: str) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch("SELECT * FROM po_versions WHERE po_number = $1 ORDER BY version", po_number)
    return {r["version"]: r for r in rows}


@dataclass(frozen=True)
class InForce:
    """How a version comes into force: what changed from the version before it, and when."""

    changes: Sequence[str]
    previous_sow_ref: Any
    at: datetime


def _previous(version: int) -> int | None:
    return version - 1 if version > 1 else None


async def _supersede_previous(conn: asyncpg.Connection, po_number: str, version: int, at: datetime) -> None:
    # Version 1 has no predecessor: nothing to supersede, so no statement.
    if (previous := _previous(version)) is not None:
        await conn.execute(
            """UPDATE po_versions SET status = 'superseded', superseded_at = $3
               WHERE po_number = $1 AND version = $2 AND status = 'in_force'""",
            po_number, previous, at,
        )  # fmt: skip


async def insert_po_version(
    conn: asyncpg.Connection,
    *,
    po_number: str,
    version: int,
    kind: str,
    status: str,
    state: Mapping[str, Any],
    content_hash: str,
    created_by: str,
    amended_by: str | None,
    modification_id: str | None,
    reason: str | None,
    approved_by: str | None,
    approved_at: datetime | None,
    received_at: datetime,
    source_event_id: str,
    in_force: InForce | None = None,
) -> None:
    """Record a received version. With `in_force` it comes into force as it is written (what
    put_in_force would do right after; one INSERT instead of INSERT + UPDATE)."""
    if in_force is not None:
        await _supersede_previous(conn, po_number, version, in_force.at)
        status = "in_force"
    await conn.execute(
        """INSERT INTO po_versions (po_number, version, kind, status, state, content_hash, created_by,
               amended_by, modification_id, reason, approved_by, approved_at, received_at, source_event_id,
               in_force_since, previous_version, changes, previous_sow_ref)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)""",
        po_number, version, kind, status, dict(state), content_hash, created_by, amended_by,
        modification_id, reason, approved_by, approved_at, received_at, source_event_id,
        in_force.at if in_force else None,
        _previous(version) if in_force else None,
        list(in_force.changes) if in_force else None,
        in_force.previous_sow_ref if in_force else None,
    )  # fmt: skip


async def approve_po_version(
    conn: asyncpg.Connection, po_number: str, version: int, approved_by: str, approved_at: datetime
) -> None:
    await conn.execute(
        """UPDATE po_versions SET approved_by = $3, approved_at = $4, status = 'approved'
           WHERE po_number = $1 AND version = $2 AND status = 'pending'""",
        po_number, version, approved_by, approved_at,
    )  # fmt: skip


async def put_in_force(conn: asyncpg.Connection, po_number: str, version: int, in_force: InForce) -> None:
    """Bring an already recorded version into force (the header is set by set_in_force_version)."""
    await _supersede_previous(conn, po_number, version, in_force.at)
    await conn.execute(
        """UPDATE po_versions SET status = 'in_force', in_force_since = $3, previous_version = $4,
                                  changes = $5, previous_sow_ref = $6
           WHERE po_number = $1 AND version = $2""",
        po_number, version, in_force.at, _previous(version), list(in_force.changes),
        in_force.previous_sow_ref,
    )  # fmt: skip


async def set_in_force_version(conn: asyncpg.Connection, po_number: str, version: int) -> None:
    await conn.execute(
        "UPDATE purchase_orders SET in_force_version = $2 WHERE po_number = $1", po_number, version
    )


async def early_approvals(conn: asyncpg.Connection, po_number: str, version: int) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM po_early_approvals WHERE po_number = $1 AND version = $2 ORDER BY approved_at",
            po_number,
            version,
        )
    )


async def park_approval(
    conn: asyncpg.Connection,
    po_number: str,
    version: int,
    approved_by: str,
    approved_at: datetime,
    event_id: str,
) -> None:
    await conn.execute(
        """INSERT INTO po_early_approvals (po_number, version, approved_by, approved_at, source_event_id)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        po_number, version, approved_by, approved_at, event_id,
    )  # fmt: skip


async def close_po(
    conn: asyncpg.Connection, po_number: str, closed_by: str, reason: str, at: datetime
) -> None:
    await conn.execute(
        "UPDATE purchase_orders SET closed_by = $2, closed_reason = $3, closed_at = $4 WHERE po_number = $1",
        po_number, closed_by, reason, at,
    )  # fmt: skip


async def po_in_force(conn: asyncpg.Connection, po_number: str) -> tuple[dict[str, Any], bool] | None:
    """The in-force version's state and whether the PO is closed; None if intake never accepted it."""
    row = await conn.fetchrow(
        """SELECT v.state, v.version, v.approved_by, v.approved_at, p.closed_at IS NOT NULL AS closed
           FROM purchase_orders p JOIN po_versions v
             ON v.po_number = p.po_number AND v.version = p.in_force_version
           WHERE p.po_number = $1""",
        po_number,
    )
    if row is None:
        return None
    return dict(row["state"]), bool(row["closed"])


async def known_po(conn: asyncpg.Connection, po_number: str) -> KnownPo | None:
    found = await po_in_force(conn, po_number)
    if found is None:
        return None
    state, closed = found
    return KnownPo(
        po_number=po_number,
        payee_id=state["payee_id"],
        legal_entity=state["legal_entity"],
        currency=state["currency"],
        business_unit=state["business_unit"],
        closed=closed,
    )


def _line_ids(states: Sequence[Mapping[str, Any]] | None) -> set[str] | None:
    """Line ids of every received version (a receipt may name a line of a pending amendment);
    None if no version was received."""
    if not states:
        return None
    return {str(line["line_id"]) for state in states for line in state.get("lines", [])}


async def po_history(conn: asyncpg.Connection, po_number: str) -> list[asyncpg.Record]:
    """Every version with who, when, what changed and why (old and new SOW reference included)."""
    return list(
        await conn.fetch(
            """SELECT version, kind, status, created_by, amended_by, modification_id, reason, approved_by,
                      approved_at, received_at, in_force_since, superseded_at, changes,
                      previous_sow_ref, state->'sow_ref' AS sow_ref
               FROM po_versions WHERE po_number = $1 ORDER BY version""",
            po_number,
        )
    )


# --- receipts --------------------------------------------------------------------------------


async def receipt(conn: asyncpg.Connection, receipt_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM receipts WHERE receipt_id = $1 FOR UPDATE", receipt_id)


async def receipt_check(
    conn: asyncpg.Connection, receipt_id: str, po_number: str
) -> tuple[str | None, set[str] | None]:
    """For a new receipt, in one round trip: the content hash of a receipt already recorded under
    its id (row locked, as receipt() does) and the line ids of its PO."""
    row = await conn.fetchrow(
        """SELECT (SELECT content_hash FROM receipts WHERE receipt_id = $1 FOR UPDATE) AS content_hash,
                  (SELECT jsonb_agg(state) FROM po_versions WHERE po_number = $2) AS po_states""",
        receipt_id, po_number,
    )  # fmt: skip
    assert row is not None
    return row["content_hash"], _line_ids(row["po_states"])


async def insert_receipt(
    conn: asyncpg.Connection,
    receipt_id: str,
    po_number: str,
    kind: str,
    received_at: datetime,
    lines: list[dict[str, Any]],
    content_hash: str,
) -> None:
    await conn.execute(
        """INSERT INTO receipts (receipt_id, po_number, kind, received_at, lines, content_hash)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        receipt_id, po_number, kind, received_at, lines, content_hash,
    )  # fmt: skip


async def reverse_receipt(
    conn: asyncpg.Connection, receipt_id: str, reversed_by: str, reason: str, at: datetime
) -> None:
    await conn.execute(
        "UPDATE receipts SET reversed_by = $2, reversal_reason = $3, reversed_at = $4 WHERE receipt_id = $1",
        receipt_id, reversed_by, reason, at,
    )  # fmt: skip


# --- invoices --------------------------------------------------------------------------------


def _known_invoice(row: asyncpg.Record) -> KnownInvoice:
    return KnownInvoice(
        invoice_id=row["invoice_id"],
        payee_id=row["payee_id"],
        normalised_number=row["normalised_number"],
        document_type=row["document_type"],
        currency=row["currency"],
        total_amount=row["total_amount"],
        issue_date=row["issue_date"],
        superseded_by=row["superseded_by"],
        content_hash=row["content_hash"],
    )


@dataclass(frozen=True)
class InvoiceLookup:
    """What intake knows about an incoming invoice before deciding on it."""

    earlier: KnownInvoice | None  # an accepted invoice with the same invoice_id
    original: KnownInvoice | None  # the invoice it says it replaces
    candidates: list[KnownInvoice]  # same payee + currency + total + issue date (suspected duplicates)


async def invoice_lookup(
    conn: asyncpg.Connection,
    invoice_id: str,
    replaces_invoice_id: str | None,
    payee_id: str,
    currency: str,
    total_amount: Decimal,
    issue_date: date,
) -> InvoiceLookup:
    """The invoice by its id, the one it replaces and the suspected-duplicate candidates: one
    round trip instead of three. A UNION ALL, not one WHERE with OR: each branch keeps its own
    index (primary key, invoices_suspected); the OR form was planned as a scan of the table
    (0.44 ms an invoice under the benchmark, growing with the table)."""
    rows = await conn.fetch(
        """SELECT *, false AS suspect FROM invoices WHERE invoice_id IN ($1, $2)
           UNION ALL
           SELECT *, true AS suspect FROM invoices
            WHERE payee_id = $3 AND currency = $4 AND total_amount = $5 AND issue_date = $6""",
        invoice_id, replaces_invoice_id, payee_id, currency, total_amount, issue_date,
    )  # fmt: skip
    by_id = {r["invoice_id"]: r for r in rows}
    earlier = by_id.get(invoice_id)
    original = by_id.get(replaces_invoice_id) if replaces_invoice_id is not None else None
    return InvoiceLookup(
        earlier=_known_invoice(earlier) if earlier is not None else None,
        original=_known_invoice(original) if original is not None else None,
        candidates=[_known_invoice(r) for r in rows if r["suspect"]],
    )


async def invoice_by_flip(conn: asyncpg.Connection, flip_id: str) -> str | None:
    value = await conn.fetchval("SELECT invoice_id FROM invoices WHERE flip_id = $1", flip_id)
    return str(value) if value is not None else None


async def registered_number(
    conn: asyncpg.Connection, payee_id: str, normalised_number: str, document_type: str
) -> str | None:
    value = await conn.fetchval(
        """SELECT invoice_id FROM invoice_numbers
           WHERE payee_id = $1 AND normalised_number = $2 AND document_type = $3""",
        payee_id, normalised_number, document_type,
    )  # fmt: skip
    return str(value) if value is not None else None


async def register_number(
    conn: asyncpg.Connection,
    payee_id: str,
    normalised_number: str,
    document_type: DocumentType,
    invoice_id: str,
    replaces_invoice_id: str | None,
) -> str | None:
    """Claim the (payee, number, document type) for this invoice. Returns None when claimed, else
    the invoice that holds it. The primary key decides: a concurrent instance inserting the same
    number waits for our commit and then sees the conflict (no check-then-insert race)."""
    if replaces_invoice_id is not None:
        # A correction may reuse the number of the invoice it supersedes.
        await conn.execute(
            """UPDATE invoice_numbers SET invoice_id = $5
               WHERE payee_id = $1 AND normalised_number = $2 AND document_type = $3 AND invoice_id = $4""",
            payee_id, normalised_number, document_type, replaces_invoice_id, invoice_id,
        )  # fmt: skip
    claimed = await conn.fetchval(
        """INSERT INTO invoice_numbers (payee_id, normalised_number, document_type, invoice_id)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (payee_id, normalised_number, document_type) DO NOTHING
           RETURNING invoice_id""",
        payee_id, normalised_number, document_type, invoice_id,
    )  # fmt: skip
    if claimed is not None:
        return None
    holder = await registered_number(conn, payee_id, normalised_number, document_type)
    return None if holder == invoice_id else holder


async def insert_invoice(
    conn: asyncpg.Connection,
    *,
    invoice_id: str,
    payee_id: str,
    legal_entity: str,
    document_type: str,
    supplier_invoice_number: str,
    normalised_number: str,
    currency: str,
    issue_date: date,
    total_amount: Decimal,
    payable_amount: Decimal,
    po_number: str | None,
    lines: list[dict[str, Any]],
    origin: str,
    flip_id: str | None,
    replaces_invoice_id: str | None,
    content_hash: str,
    accepted_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO invoices (invoice_id, payee_id, legal_entity, document_type, supplier_invoice_number,
               normalised_number, currency, issue_date, total_amount, payable_amount, po_number, lines,
               origin, flip_id, replaces_invoice_id, content_hash, accepted_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)""",
        invoice_id, payee_id, legal_entity, document_type, supplier_invoice_number, normalised_number,
        currency, issue_date, total_amount, payable_amount, po_number, lines, origin, flip_id,
        replaces_invoice_id, content_hash, accepted_at,
    )  # fmt: skip
    if replaces_invoice_id is not None:
        await conn.execute(
            "UPDATE invoices SET superseded_by = $2 WHERE invoice_id = $1 AND superseded_by IS NULL",
            replaces_invoice_id, invoice_id,
        )  # fmt: skip


async def invoiced_quantities(conn: asyncpg.Connection, po_number: str) -> dict[str, Decimal]:
    """Quantity already invoiced per PO line by accepted, not superseded documents (credit notes
    count negative) — what a PO flip without quantities leaves out."""
    rows = await conn.fetch(
        """SELECT document_type, lines FROM invoices WHERE po_number = $1 AND superseded_by IS NULL""",
        po_number,
    )
    out: dict[str, Decimal] = {}
    for r in rows:
        sign = Decimal(-1) if r["document_type"] == "credit_note" else Decimal(1)
        for line in r["lines"]:
            po_line = line.get("po_line_id")
            if po_line:
                out[po_line] = out.get(po_line, Decimal(0)) + sign * Decimal(str(line["quantity"]))
    return out
