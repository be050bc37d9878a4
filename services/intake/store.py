"""The SQL intake needs, in one place, set-based: a batch loads what it needs in a constant
number of queries (`= ANY`, `unnest`) and writes each table once (multi-row statements). It takes
and returns domain objects. Every function runs on the batch's connection, inside its
transaction (inbox + state + outbox commit together)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from services.intake import contract
from services.intake.domain import Invoice, KnownInvoice
from services.intake.domain.invoices import InvoiceBook, NumberKey, number_key
from services.intake.domain.purchase_orders import EarlyApproval, Po, PoBook, PoVersion
from services.intake.domain.receipts import Receipt, ReceiptBook
from services.intake.domain.requisitions import Requisition, RequisitionBook
from shared.db import record_values, text_columns


class ConcurrentWrite(RuntimeError):
    """Another instance wrote what this batch decided on since it was loaded (a rebalance gave a
    partition to two instances for a moment). The batch rolls back and is run again record by
    record, which then sees the other instance's write and decides as it would have."""


def _json(value: Any) -> str | None:
    """A jsonb parameter as text. orjson (~1 against ~9 µs for a PO's state): jsonb keeps values,
    not spelling (escapes, float digits), and whatever json.dumps' `default=str` wrote — Decimals,
    dates, datetimes, dataclasses — still goes through `str`; what orjson refuses (integers past
    64 bits, non-string keys, lone surrogates) is written by json.dumps as before."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, default=str, option=_AS_JSON_DUMPS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, default=str)


_AS_JSON_DUMPS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _count(status: str) -> int:
    return int(status.split()[-1])


# --- requisitions ----------------------------------------------------------------------------

_REQUISITION_FIELDS = tuple(Requisition.__dataclass_fields__)


async def requisitions(conn: asyncpg.Connection, ids: Iterable[str], now: datetime) -> RequisitionBook:
    rows = await conn.fetch(
        f"""SELECT {", ".join(_REQUISITION_FIELDS)} FROM requisitions
            WHERE requisition_id = ANY($1::text[]) ORDER BY requisition_id FOR UPDATE""",
        sorted(set(ids)),
    )
    return RequisitionBook({r["requisition_id"]: Requisition(**dict(r)) for r in rows}, now)


async def save_requisitions(conn: asyncpg.Connection, book: RequisitionBook) -> None:
    """Approvals and closures, one upsert (conversions are the POs' to write: conversions())."""
    rows = [
        (r.requisition_id, r.legal_entity, r.business_unit, r.requested_by, r.approved_by, r.amount,
         r.currency, r.approved_at, r.content_hash, r.closed_by, r.closed_reason, r.closed_at,
         _json(r.approval_limit))
        for r in book.changed.values()
    ]  # fmt: skip
    if not rows:
        return
    await conn.execute(
        """INSERT INTO requisitions (requisition_id, legal_entity, business_unit, requested_by, approved_by,
                                     amount, currency, approved_at, content_hash, closed_by, closed_reason,
                                     closed_at, approval_limit)
           SELECT a, b, c, d, e, f, g, h, i, j, k, m, l::jsonb
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[],
                       $7::text[], $8::timestamptz[], $9::text[], $10::text[], $11::text[],
                       $12::timestamptz[], $13::text[]) AS r(a, b, c, d, e, f, g, h, i, j, k, m, l)
           ON CONFLICT (requisition_id) DO UPDATE SET
               legal_entity = EXCLUDED.legal_entity, business_unit = EXCLUDED.business_unit,
               requested_by = EXCLUDED.requested_by, approved_by = EXCLUDED.approved_by,
               amount = EXCLUDED.amount, currency = EXCLUDED.currency,
               approved_at = EXCLUDED.approved_at, content_hash = EXCLUDED.content_hash,
               closed_by = EXCLUDED.closed_by, closed_reason = EXCLUDED.closed_reason,
               closed_at = EXCLUDED.closed_at, approval_limit = EXCLUDED.approval_limit""",
        *_columns(rows, 13),
    )


async def convert_requisitions(conn: asyncpg.Connection, conversions: dict[str, str], at: datetime) -> None:
    """A PO naming a requisition converts it, even if the approval has not arrived yet; the
    first PO to do so stays."""
    if not conversions:
        return
    await conn.execute(
        """INSERT INTO requisitions (requisition_id, converted_po_number, converted_at)
           SELECT r, p, $3 FROM unnest($1::text[], $2::text[]) AS c(r, p)
           ON CONFLICT (requisition_id) DO UPDATE SET
               converted_po_number = COALESCE(requisitions.converted_po_number, EXCLUDED.converted_po_number),
               converted_at = COALESCE(requisitions.converted_at, EXCLUDED.converted_at)""",
        list(conversions), list(conversions.values()), at,
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

_VERSION_FIELDS = tuple(PoVersion.__dataclass_fields__)


_JSON_VERSION_FIELDS = {"state", "changes", "previous_sow_ref", "approval_limit"}


async def lock_pos(conn: asyncpg.Connection, po_numbers: Iterable[str], now: datetime) -> PoBook:
    """Create-if-missing and lock the batch's PO rows (in po_number order, so two instances
    never deadlock), then read every version and parked approval: one PO's versions are decided
    one at a time even if a rebalance briefly gives its partition to two instances. The no-op
    DO UPDATE row-locks an existing row just as FOR UPDATE does; the read is a second statement
    so that its snapshot is taken after the locks are held."""
    wanted = sorted(set(po_numbers))
    headers = await conn.fetch(
        """INSERT INTO purchase_orders (po_number) SELECT unnest($1::text[]) ORDER BY 1
           ON CONFLICT (po_number) DO UPDATE SET po_number = EXCLUDED.po_number
           RETURNING *""",
        wanted,
    )
    pos = {h["po_number"]: Po(**dict(h)) for h in headers}
    row = await conn.fetchrow(
        f"""SELECT ARRAY(SELECT ROW({text_columns(_VERSION_FIELDS, _JSON_VERSION_FIELDS)}) FROM po_versions
                          WHERE po_number = ANY($1::text[])) AS versions,
                   ARRAY(SELECT ROW(po_number, version, approved_by, approved_at, source_event_id)
                           FROM po_early_approvals WHERE po_number = ANY($1::text[])) AS early""",
        wanted,
    )
    for r in row["versions"]:
        pos[r[0]].versions[r[1]] = PoVersion(**record_values(_VERSION_FIELDS, _JSON_VERSION_FIELDS, r))
    for e in row["early"]:
        pos[e[0]].early_approvals.append(EarlyApproval(*e))
    return PoBook(pos, now)


async def save_pos(conn: asyncpg.Connection, book: PoBook) -> None:
    """Everything the batch decided about its POs: at most one statement per table."""
    await _insert_versions(conn, list(book.new_versions.values()))
    await _update_versions(conn, list(book.changed_versions.values()))
    headers = [book.pos[p] for p in sorted(book.changed_headers)]
    if headers:
        await conn.execute(
            """UPDATE purchase_orders p SET in_force_version = h.v, closed_by = h.by, closed_reason = h.why,
                                            closed_at = h.at
               FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[])
                    AS h(po_number, v, by, why, at)
               WHERE p.po_number = h.po_number""",
            [h.po_number for h in headers], [h.in_force_version for h in headers],
            [h.closed_by for h in headers], [h.closed_reason for h in headers],
            [h.closed_at for h in headers],
        )  # fmt: skip
    if book.new_early_approvals:
        rows = [
            (e.po_number, e.version, e.approved_by, e.approved_at, e.source_event_id)
            for e in book.new_early_approvals
        ]
        await conn.execute(
            """INSERT INTO po_early_approvals (po_number, version, approved_by, approved_at, source_event_id)
               SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[], $5::text[])
               ON CONFLICT DO NOTHING""",
            *_columns(rows, 5),
        )
    await convert_requisitions(conn, book.conversions, book.now)


async def _insert_versions(conn: asyncpg.Connection, versions: list[PoVersion]) -> None:
    if not versions:
        return
    rows = [
        (v.po_number, v.version, v.kind, v.status, _json(v.state), v.content_hash, v.created_by, v.amended_by,
         v.modification_id, v.reason, v.approved_by, v.approved_at, v.received_at, v.source_event_id,
         v.previous_version, _json(v.changes), _json(v.previous_sow_ref), v.in_force_since, v.superseded_at,
         _json(v.approval_limit))
        for v in versions
    ]  # fmt: skip
    await conn.execute(
        """INSERT INTO po_versions (po_number, version, kind, status, state, content_hash, created_by,
               amended_by, modification_id, reason, approved_by, approved_at, received_at, source_event_id,
               previous_version, changes, previous_sow_ref, in_force_since, superseded_at, approval_limit)
           SELECT po_number, version, kind, status, state::jsonb, content_hash, created_by, amended_by,
                  modification_id, reason, approved_by, approved_at, received_at, source_event_id,
                  previous_version, changes::jsonb, previous_sow_ref::jsonb, in_force_since, superseded_at,
                  approval_limit::jsonb
           FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[],
                       $13::timestamptz[], $14::text[], $15::int[], $16::text[], $17::text[],
                       $18::timestamptz[], $19::timestamptz[], $20::text[])
                AS v(po_number, version, kind, status, state, content_hash, created_by, amended_by,
                     modification_id, reason, approved_by, approved_at, received_at, source_event_id,
                     previous_version, changes, previous_sow_ref, in_force_since, superseded_at,
                     approval_limit)""",
        *_columns(rows, 20),
    )


async def _update_versions(conn: asyncpg.Connection, versions: list[PoVersion]) -> None:
    """Approvals, versions coming into force and the ones they supersede."""
    if not versions:
        return
    rows = [
        (v.po_number, v.version, v.status, v.approved_by, v.approved_at, v.previous_version, _json(v.changes),
         _json(v.previous_sow_ref), v.in_force_since, v.superseded_at, _json(v.approval_limit))
        for v in versions
    ]  # fmt: skip
    await conn.execute(
        """UPDATE po_versions p SET status = v.status, approved_by = v.approved_by,
               approved_at = v.approved_at, approval_limit = v.approval_limit::jsonb,
               previous_version = v.previous_version, changes = v.changes::jsonb,
               previous_sow_ref = v.previous_sow_ref::jsonb, in_force_since = v.in_force_since,
               superseded_at = v.superseded_at
           FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::int[],
                       $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::text[])
                AS v(po_number, version, status, approved_by, approved_at, previous_version, changes,
                     previous_sow_ref, in_force_since, superseded_at, approval_limit)
           WHERE p.po_number = v.po_number AND p.version = v.version""",
        *_columns(rows, 11),
    )


async def pos_in_force(
    conn: asyncpg.Connection, po_numbers: Iterable[str]
) -> dict[str, tuple[dict[str, Any], bool]]:
    """Each PO's in-force state and whether it is closed; absent: intake never accepted it."""
    rows = await conn.fetch(
        """SELECT p.po_number, v.state, p.closed_at IS NOT NULL AS closed
           FROM purchase_orders p JOIN po_versions v
             ON v.po_number = p.po_number AND v.version = p.in_force_version
           WHERE p.po_number = ANY($1::text[])""",
        sorted(set(po_numbers)),
    )
    return {r["po_number"]: (dict(r["state"]), bool(r["closed"])) for r in rows}


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

_RECEIPT_FIELDS = tuple(Receipt.__dataclass_fields__)


async def receipts(
    conn: asyncpg.Connection, receipt_ids: Iterable[str], po_numbers: Iterable[str], now: datetime
) -> ReceiptBook:
    """The receipts named (rows locked) and the line ids of every version of the POs named, in
    one statement: the line ids only, taken out of the states by the server, not every
    version's whole state sent as text and decoded here to read one field of each line."""
    row = await conn.fetchrow(
        f"""WITH locked AS (
                SELECT {", ".join(_RECEIPT_FIELDS)} FROM receipts WHERE receipt_id = ANY($1::text[])
                 ORDER BY receipt_id FOR UPDATE)
            SELECT ARRAY(SELECT ROW({text_columns(_RECEIPT_FIELDS, {"lines"})}) FROM locked) AS receipts,
                   ARRAY(SELECT ROW(v.po_number, array_remove(array_agg(DISTINCT l.line ->> 'line_id'), NULL))
                           FROM po_versions v
                           LEFT JOIN LATERAL jsonb_array_elements(v.state -> 'lines') AS l(line) ON true
                          WHERE v.po_number = ANY($2::text[]) GROUP BY v.po_number) AS po_lines""",
        sorted(set(receipt_ids)),
        sorted(set(po_numbers)),
    )
    found = {r[0]: Receipt(**record_values(_RECEIPT_FIELDS, {"lines"}, r)) for r in row["receipts"]}
    po_lines = {po_number: set(line_ids) for po_number, line_ids in row["po_lines"]}
    return ReceiptBook(found, po_lines, now)


async def save_receipts(conn: asyncpg.Connection, book: ReceiptBook) -> None:
    if book.recorded:
        rows = [
            (r.receipt_id, r.po_number, r.kind, r.received_at, _json(r.lines), r.content_hash)
            for r in book.recorded
        ]
        await conn.execute(
            """INSERT INTO receipts (receipt_id, po_number, kind, received_at, lines, content_hash)
               SELECT r, p, k, at, l::jsonb, h
               FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
                    AS x(r, p, k, at, l, h)""",
            *_columns(rows, 6),
        )
    if book.reversed:
        rows2 = [(r.receipt_id, r.reversed_by, r.reversal_reason, r.reversed_at) for r in book.reversed]
        await conn.execute(
            """UPDATE receipts SET reversed_by = x.by, reversal_reason = x.why, reversed_at = x.at
               FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS x(r, by, why, at)
               WHERE receipts.receipt_id = x.r""",
            *_columns(rows2, 4),
        )


# --- invoices --------------------------------------------------------------------------------

_KNOWN_FIELDS = tuple(KnownInvoice.__dataclass_fields__)


async def invoice_book(
    conn: asyncpg.Connection, invoices: Sequence[Invoice], config: Any, *, any_total: bool = False
) -> InvoiceBook:
    """What the batch's invoices are checked against, in one statement: the invoices they name
    (by id, the ones they replace) and their suspected-duplicate candidates (same payee +
    currency + total + issue date; with `any_total`, any total: a PO flip's total is known only
    as it is decided), the POs in force they name, and the registry rows of their numbers."""
    ids = sorted(
        {i.invoice_id for i in invoices} | {i.replaces_invoice_id for i in invoices if i.replaces_invoice_id}
    )
    keys = sorted({(i.payee_id, i.currency, i.total_amount, i.issue_date) for i in invoices})
    number_keys = sorted({number_key(i) for i in invoices})
    fields = ", ".join(f"i.{f}" for f in _KNOWN_FIELDS)
    match_total = "" if any_total else "AND i.total_amount = k.t"
    row = await conn.fetchrow(
        f"""SELECT
              ARRAY(SELECT ROW({fields}) FROM invoices i WHERE i.invoice_id = ANY($1::text[])
                    UNION
                    SELECT ROW({fields})
                      FROM unnest($2::text[], $3::text[], $4::numeric[], $5::date[]) AS k(p, c, t, d)
                      JOIN invoices i
                        ON i.payee_id = k.p AND i.currency = k.c AND i.issue_date = k.d {match_total})
                AS known,
              ARRAY(SELECT ROW(p.po_number, v.state ->> 'payee_id', v.state ->> 'legal_entity',
                               v.state ->> 'currency', v.state ->> 'business_unit', p.closed_at IS NOT NULL)
                      FROM purchase_orders p JOIN po_versions v
                        ON v.po_number = p.po_number AND v.version = p.in_force_version
                     WHERE p.po_number = ANY($6::text[])) AS pos,
              ARRAY(SELECT ROW(n.payee_id, n.normalised_number, n.document_type, n.invoice_id)
                      FROM unnest($7::text[], $8::text[], $9::text[]) AS k(p, n, d)
                      JOIN invoice_numbers n
                        ON n.payee_id = k.p AND n.normalised_number = k.n AND n.document_type = k.d)
                AS numbers""",
        ids, *_columns(keys, 4), sorted({i.po_number for i in invoices if i.po_number}),
        *_columns(number_keys, 3),
    )  # fmt: skip
    known = {r[0]: KnownInvoice(*r) for r in row["known"]}
    pos = {
        p: contract.known_po(
            p,
            {"payee_id": payee, "legal_entity": entity, "currency": currency, "business_unit": unit},
            closed,
        )
        for p, payee, entity, currency, unit, closed in row["pos"]
    }
    numbers: dict[NumberKey, str] = {(p, n, d): invoice_id for p, n, d, invoice_id in row["numbers"]}
    return InvoiceBook(known, pos, numbers, config.no_po, config.max_amount)


async def save_invoices(conn: asyncpg.Connection, book: InvoiceBook, accepted_at: datetime) -> None:
    """The accepted invoices, their numbers and what they supersede. The registry's primary key
    still decides between two instances racing on one number: a claim another instance made
    since the book was loaded is a ConcurrentWrite."""
    if not book.accepted:
        return
    claimed = book.claimed_numbers()
    if claimed:
        inserted = await conn.fetch(
            """INSERT INTO invoice_numbers (payee_id, normalised_number, document_type, invoice_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
               ON CONFLICT (payee_id, normalised_number, document_type) DO NOTHING
               RETURNING invoice_id""",
            *_columns([(*k, holder) for k, holder in claimed], 4),
        )
        if len(inserted) != len(claimed):
            raise ConcurrentWrite("an invoice number was claimed by another instance meanwhile")
    moved = book.moved_numbers()
    if moved:
        status = await conn.execute(
            """UPDATE invoice_numbers n SET invoice_id = m.holder
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                    AS m(p, num, d, was, holder)
               WHERE n.payee_id = m.p AND n.normalised_number = m.num AND n.document_type = m.d
                 AND n.invoice_id = m.was""",
            *_columns([(*k, was, holder) for k, was, holder in moved], 5),
        )
        if _count(status) != len(moved):
            raise ConcurrentWrite("an invoice number changed hands in another instance meanwhile")
    rows = []
    for a in book.accepted:
        inv, s = a.submission.invoice, a.submission
        rows.append(
            (inv.invoice_id, inv.payee_id, inv.legal_entity, inv.document_type, inv.supplier_invoice_number,
             inv.normalised_number, inv.currency, inv.issue_date, inv.total_amount, inv.payable_amount,
             inv.po_number, _json(contract.stored_lines(inv)), s.origin, s.flip_id, inv.replaces_invoice_id,
             book.superseded_by(inv.invoice_id), s.content_hash, accepted_at)
        )  # fmt: skip
    await conn.execute(
        """INSERT INTO invoices (invoice_id, payee_id, legal_entity, document_type, supplier_invoice_number,
               normalised_number, currency, issue_date, total_amount, payable_amount, po_number, lines,
               origin, flip_id, replaces_invoice_id, superseded_by, content_hash, accepted_at)
           SELECT i, p, le, dt, sn, nn, c, d, t, pa, po, l::jsonb, o, f, r, sb, h, at
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::date[], $9::numeric[], $10::numeric[], $11::text[], $12::text[], $13::text[],
                       $14::text[], $15::text[], $16::text[], $17::text[], $18::timestamptz[])
                AS x(i, p, le, dt, sn, nn, c, d, t, pa, po, l, o, f, r, sb, h, at)""",
        *_columns(rows, 18),
    )
    if book.superseded_earlier:
        await conn.execute(
            """UPDATE invoices SET superseded_by = s.by
               FROM unnest($1::text[], $2::text[]) AS s(id, by)
               WHERE invoices.invoice_id = s.id AND invoices.superseded_by IS NULL""",
            *_columns(book.superseded_earlier, 2),
        )


async def flipped(conn: asyncpg.Connection, flip_ids: Iterable[str]) -> set[str]:
    """The flip ids that already made an invoice (one flip_id, one invoice, ever)."""
    rows = await conn.fetch(
        "SELECT flip_id FROM invoices WHERE flip_id = ANY($1::text[])", sorted(set(flip_ids))
    )
    return {r["flip_id"] for r in rows}


async def invoiced_quantities(
    conn: asyncpg.Connection, po_numbers: Iterable[str]
) -> dict[str, dict[str, Decimal]]:
    """Per PO, the quantity already invoiced per line by accepted, not superseded documents
    (credit notes count negative) — what a PO flip without quantities leaves out."""
    rows = await conn.fetch(
        """SELECT po_number, document_type, lines FROM invoices
           WHERE po_number = ANY($1::text[]) AND superseded_by IS NULL""",
        sorted(set(po_numbers)),
    )
    out: dict[str, dict[str, Decimal]] = {}
    for r in rows:
        quantities = out.setdefault(r["po_number"], {})
        sign = Decimal(-1) if r["document_type"] == "credit_note" else Decimal(1)
        for line in r["lines"]:
            if po_line := line.get("po_line_id"):
                quantities[po_line] = quantities.get(po_line, Decimal(0)) + sign * Decimal(
                    str(line["quantity"])
                )
    return out
