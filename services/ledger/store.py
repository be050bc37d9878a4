"""The ledger's SQL, in one place, set-based: every function takes a whole batch (arrays,
`unnest`, `= ANY`) and issues a constant number of statements for it; each table is written
once per batch. Journal functions take and return domain objects; the documents projection
(requisitions, POs, receipts, invoices, decisions, payouts, funding, eligibility) is written
from the contract events themselves, kept whole for trace and reconciliation.

Functions take a connection in the batch's transaction.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic_core import to_json

from services.ledger import domain as d
from shared.contracts.inbound import FundingReceived
from shared.contracts.internal import (
    InvoiceAccepted,
    PayeeEligibilityChanged,
    PayoutRailRecorded,
    PurchaseOrderAmendmentPending,
    PurchaseOrderClosureAccepted,
    PurchaseOrderVersionInForce,
    ReceiptAccepted,
    ReceiptReversalAccepted,
    RequisitionAccepted,
    RequisitionClosureAccepted,
)
from shared.contracts.outbound import PayoutReleased


def _json(value: Any) -> str:
    """jsonb parameters travel as text (cast in SQL): asyncpg has no codec for jsonb[] arrays.
    pydantic-core's encoder (Rust) rather than `json.dumps`: the values are JSON-mode dumps and
    plain lists and dicts, jsonb keeps the value not the spelling (non-ASCII is written as
    UTF-8 instead of \\u escapes), and the stdlib encoder was ~7% of the ledger's CPU."""
    return to_json(value).decode()


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows → one list per column, for `unnest($1::t[], $2::u[], …)`."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _first_per_key(rows: Iterable[Any], key: Any) -> list[Any]:
    """Rows in order, the first of each key: what `ON CONFLICT DO NOTHING` keeps one by one."""
    seen: dict[Any, Any] = {}
    for row in rows:
        seen.setdefault(key(row), row)
    return list(seen.values())


def _last_per_key(rows: Iterable[Any], key: Any) -> list[Any]:
    """Rows in order, the last of each key: what a full-row upsert keeps one by one."""
    seen: dict[Any, Any] = {}
    for row in rows:
        seen[key(row)] = row
    return list(seen.values())


@dataclass(frozen=True)
class Write:
    """One INSERT of a batch's rows into a projection table (`$1…$n` its parameters), to send
    alone (`execute`) or as a data-modifying CTE of another statement of the batch, the journal's
    insert (`insert_entries(also=…)`) or the read of versions in force (`version_inputs(also=…)`):
    one round trip fewer. Only for a write whose rows the rest of that statement need not see
    (a CTE's changes are invisible to the rest of its statement) and that reads nothing it writes."""

    sql: str
    args: list[Any]


async def execute(conn: asyncpg.Connection, write: Write) -> None:
    await conn.execute(write.sql, *write.args)


_PARAM = re.compile(r"\$(\d+)")


@functools.cache  # a handful of constant statements
def _shifted(sql: str, by: int) -> str:
    """`sql` with its parameters renumbered from `$1+by` (the store's SQL has no `$` in literals)."""
    return _PARAM.sub(lambda m: f"${int(m.group(1)) + by}", sql)


# --- journal ----------------------------------------------------------------------------


def links_json(links: d.Links) -> dict[str, Any]:
    return {
        "po_number": links.po_number,
        "po_version": links.po_version,
        "invoice_ids": list(links.invoice_ids),
        "receipt_ids": list(links.receipt_ids),
        "payout_id": links.payout_id,
        "override_ids": list(links.override_ids),
        "approvals": [
            {"by": a.by, "role": a.role, "at": a.at.isoformat() if a.at else None, "what": a.what}
            for a in links.approvals
        ],
        **({"expedite_id": links.expedite_id} if links.expedite_id else {}),
    }


def links_from_json(raw: dict[str, Any]) -> d.Links:
    return d.Links(
        po_number=raw.get("po_number"),
        po_version=raw.get("po_version"),
        invoice_ids=tuple(raw.get("invoice_ids") or ()),
        receipt_ids=tuple(raw.get("receipt_ids") or ()),
        payout_id=raw.get("payout_id"),
        override_ids=tuple(raw.get("override_ids") or ()),
        approvals=tuple(
            d.Approval(
                by=a["by"],
                what=a["what"],
                role=a.get("role"),
                at=datetime.fromisoformat(a["at"]) if a.get("at") else None,
            )
            for a in raw.get("approvals") or ()
        ),
        expedite_id=raw.get("expedite_id"),
    )


async def insert_entries(
    conn: asyncpg.Connection, postings: Sequence[d.Posting], posted_at: datetime, also: Write | None = None
) -> set[str]:
    """Append a batch's entries and their lines in one statement; returns the ids inserted.
    `also`, the batch's write of another table (it neither reads nor writes the journal), goes in
    the same statement as a data-modifying CTE of its own, or alone when nothing is to be posted.

    An entry whose source event, business fact or reversed entry is already in the journal is
    not inserted (and none of its lines): a redelivered or re-published fact posts once. Within
    the batch the first posting of each wins, as one by one. Balance is checked at commit
    (deferred constraint trigger) on top of the domain's own check."""
    unique: dict[tuple[str, str], d.Posting] = {}
    taken: set[tuple[str, str]] = set()
    for p in postings:
        keys = {("id", p.entry_id), ("fact", p.entry.fact_key)}
        if p.entry.reverses_entry_id is not None:
            keys.add(("reverses", p.entry.reverses_entry_id))
        if keys & taken:
            continue
        taken |= keys
        unique[("id", p.entry_id)] = p
    if not unique:
        if also is not None:
            await execute(conn, also)
        return set()
    entries = [
        (
            p.entry_id,
            p.source_event_id,
            p.source_event_type,
            p.entry.fact_key,
            p.entry.kind,
            p.entry.description,
            _json(links_json(p.entry.links)),
            p.entry.links.po_number,
            p.entry.links.payout_id,
            _json(list(p.entry.links.invoice_ids)),
            _json(list(p.entry.links.receipt_ids)),
            p.entry.reverses_entry_id,
        )
        for p in unique.values()
    ]
    lines = [
        (p.entry_id, n, ln.account, ln.currency, ln.debit, ln.credit)
        for p in unique.values()
        for n, ln in enumerate(p.entry.lines, start=1)
    ]
    rows = await conn.fetch(
        "WITH "
        + ("" if also is None else f"projection AS ({_shifted(also.sql, _ENTRY_PARAMS)}), ")
        + _INSERT_ENTRIES,
        *_columns(entries, 12),
        posted_at,
        *_columns(lines, 6),
        *(also.args if also is not None else ()),
    )
    return {r["entry_id"] for r in rows}


_ENTRY_PARAMS = 19  # the parameters of _INSERT_ENTRIES; a Write's follow them
_INSERT_ENTRIES = """entry AS (
               INSERT INTO journal_entries (entry_id, source_event_id, source_event_type, fact_key, kind,
                                            description, posted_at, links, po_number, payout_id,
                                            invoice_ids, receipt_ids, reverses_entry_id)
               SELECT e.entry_id, e.source_event_id, e.source_event_type, e.fact_key, e.kind,
                      e.description, $13, e.links::jsonb, e.po_number, e.payout_id,
                      ARRAY(SELECT jsonb_array_elements_text(e.invoice_ids::jsonb)),
                      ARRAY(SELECT jsonb_array_elements_text(e.receipt_ids::jsonb)),
                      e.reverses_entry_id
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
                          WITH ORDINALITY
                          AS e(entry_id, source_event_id, source_event_type, fact_key, kind, description,
                               links, po_number, payout_id, invoice_ids, receipt_ids, reverses_entry_id, n)
                ORDER BY e.n
               ON CONFLICT DO NOTHING
               RETURNING entry_id
           ), lines AS (
               INSERT INTO journal_lines (entry_id, line_no, account, currency, debit, credit)
               SELECT l.entry_id, l.line_no, l.account, l.currency, l.debit, l.credit
                 FROM unnest($14::text[], $15::int[], $16::text[], $17::text[],
                             $18::numeric[], $19::numeric[])
                          AS l(entry_id, line_no, account, currency, debit, credit)
                 JOIN entry USING (entry_id)
           )
           SELECT entry_id FROM entry"""


# Lookups that need an entry fetch it with its lines, in line order, in the same row. Parallel
# arrays rather than JSON keep debit and credit exact numerics.
_ENTRY_COLUMNS = """e.kind, e.fact_key, e.description, e.links, e.reverses_entry_id,
       entry_lines.accounts, entry_lines.currencies, entry_lines.debits, entry_lines.credits"""
_LINES_OF_E = """LATERAL (
           SELECT array_agg(account ORDER BY line_no) AS accounts,
                  array_agg(currency ORDER BY line_no) AS currencies,
                  array_agg(debit ORDER BY line_no) AS debits,
                  array_agg(credit ORDER BY line_no) AS credits
             FROM journal_lines WHERE journal_lines.entry_id = e.entry_id
       ) AS entry_lines"""


def _entry(row: asyncpg.Record) -> d.Entry:
    """The entry of a row that selected _ENTRY_COLUMNS."""
    return d.Entry(
        row["kind"],
        row["fact_key"],
        row["description"],
        tuple(
            d.Line(account, currency.strip(), debit, credit)
            for account, currency, debit, credit in zip(
                row["accounts"], row["currencies"], row["debits"], row["credits"], strict=True
            )
        ),
        links_from_json(row["links"]),
        row["reverses_entry_id"],
    )


@dataclass(frozen=True)
class ApprovalInputs:
    """What a batch of approvals or revocations is decided on: each invoice's approval entry in
    force (posted and not reversed), if any, and which of the batch's business facts the journal
    already holds."""

    active: dict[str, d.ActiveApproval]
    posted_facts: set[str]


async def approval_inputs(
    conn: asyncpg.Connection, invoice_ids: Sequence[str], fact_keys: Sequence[str]
) -> ApprovalInputs:
    """The entries in force and the facts posted in one statement (`what` says which row is
    which; the facts' columns take the entries' types); the lines in force of invoices that
    have an approval in force need a second one."""
    rows = await conn.fetch(
        f"""SELECT 'active' AS what, asked.invoice_id, e.entry_id, {_ENTRY_COLUMNS}
              FROM unnest($1::text[]) AS asked(invoice_id)
              CROSS JOIN LATERAL (
                  SELECT * FROM journal_entries a
                   WHERE a.kind = 'invoice_approval' AND a.invoice_ids @> ARRAY[asked.invoice_id]
                     AND NOT EXISTS (SELECT 1 FROM journal_entries r WHERE r.reverses_entry_id = a.entry_id)
                   ORDER BY a.posted_at DESC, a.entry_id DESC LIMIT 1) AS e
              CROSS JOIN {_LINES_OF_E}
            UNION ALL
            SELECT 'fact', NULL, NULL, NULL, fact_key, NULL, NULL, NULL, NULL, NULL, NULL, NULL
              FROM journal_entries JOIN unnest($2::text[]) AS asked(fact_key) USING (fact_key)""",
        sorted(set(invoice_ids)),
        list(fact_keys),
    )
    facts = {r["fact_key"] for r in rows if r["what"] == "fact"}
    entries = [r for r in rows if r["what"] == "active"]
    return ApprovalInputs(await _in_force(conn, entries), facts)


async def _in_force(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> dict[str, d.ActiveApproval]:
    """Each active approval entry with its lines still in force (net of partial reversals)."""
    active = {r["invoice_id"]: _entry(r) for r in rows}
    if not active:
        return {}  # a first approval (the usual case): no lines in force to net
    nets: dict[str, dict[tuple[str, str], Decimal]] = {}
    for r in await conn.fetch(
        """SELECT asked.invoice_id, l.account, l.currency, sum(l.debit - l.credit) AS net
             FROM unnest($1::text[]) AS asked(invoice_id)
             JOIN journal_entries e ON e.kind IN ('invoice_approval', 'approval_reversal')
                                   AND e.invoice_ids @> ARRAY[asked.invoice_id]
             JOIN journal_lines l ON l.entry_id = e.entry_id
            GROUP BY 1, 2, 3""",
        sorted(active),
    ):
        nets.setdefault(r["invoice_id"], {})[(r["account"], r["currency"].strip())] = r["net"]
    return {
        r["invoice_id"]: d.ActiveApproval(
            r["entry_id"],
            active[r["invoice_id"]],
            d.in_force_lines(active[r["invoice_id"]], nets.get(r["invoice_id"], {})),
        )
        for r in rows
    }


# --- documents: requisitions and POs -------------------------------------------------------


async def save_requisitions(conn: asyncpg.Connection, events: Sequence[RequisitionAccepted]) -> None:
    rows = [
        (
            e.requisition_id,
            e.legal_entity,
            e.business_unit,
            e.currency,
            e.amount,
            e.requested_by,
            e.approved_by,
            e.approved_at,
        )
        for e in _last_per_key(events, lambda e: e.requisition_id)
    ]
    await conn.execute(
        """INSERT INTO requisitions (requisition_id, legal_entity, business_unit, currency, amount,
                                     requested_by, approved_by, approved_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                                $6::text[], $7::text[], $8::timestamptz[])
           ON CONFLICT (requisition_id) DO UPDATE SET
               legal_entity = EXCLUDED.legal_entity, business_unit = EXCLUDED.business_unit,
               currency = EXCLUDED.currency, amount = EXCLUDED.amount,
               requested_by = EXCLUDED.requested_by, approved_by = EXCLUDED.approved_by,
               approved_at = EXCLUDED.approved_at""",
        *_columns(rows, 8),
    )


async def close_requisitions(
    conn: asyncpg.Connection, closures: Sequence[tuple[RequisitionClosureAccepted, datetime]]
) -> None:
    rows = [
        (e.requisition_id, e.closed_by, e.reason, at)
        for e, at in _last_per_key(closures, lambda c: c[0].requisition_id)
    ]
    await conn.execute(
        """INSERT INTO requisitions (requisition_id, closed_by, closed_reason, closed_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
           ON CONFLICT (requisition_id) DO UPDATE SET
               closed_by = EXCLUDED.closed_by, closed_reason = EXCLUDED.closed_reason,
               closed_at = EXCLUDED.closed_at""",
        *_columns(rows, 4),
    )


def po_versions_write(events: Sequence[PurchaseOrderVersionInForce]) -> Write:
    """Each version once (the first one seen wins, as before)."""
    rows = []
    for e in _first_per_key(events, lambda e: (e.po.po_number, e.po.version)):
        po = e.model_dump(mode="json")["po"]
        rows.append(
            (
                e.po.po_number,
                e.po.version,
                e.po.legal_entity,
                e.po.business_unit,
                e.po.payee_id,
                e.po.currency,
                e.po.requisition_id,
                e.po.created_by,
                e.po.approved_by,
                e.po.approved_at,
                e.amended_by,
                e.modification_id,
                e.reason,
                _json(list(e.changes)),
                e.in_force_since,
                _json(po),
            )
        )
    return Write(
        """INSERT INTO po_versions (po_number, version, legal_entity, business_unit, payee_id, currency,
                                    requisition_id, created_by, approved_by, approved_at, amended_by,
                                    modification_id, reason, changes, in_force_since, state)
           SELECT v.po_number, v.version, v.legal_entity, v.business_unit, v.payee_id, v.currency,
                  v.requisition_id, v.created_by, v.approved_by, v.approved_at, v.amended_by,
                  v.modification_id, v.reason, v.changes::jsonb, v.in_force_since, v.state::jsonb
             FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::text[], $13::text[],
                         $14::text[], $15::timestamptz[], $16::text[])
                  AS v(po_number, version, legal_entity, business_unit, payee_id, currency, requisition_id,
                       created_by, approved_by, approved_at, amended_by, modification_id, reason, changes,
                       in_force_since, state)
           ON CONFLICT (po_number, version) DO NOTHING""",
        _columns(rows, 16),
    )


def _po(po_number: str, row: asyncpg.Record | dict[str, Any]) -> d.PurchaseOrder:
    state = row["state"]
    return d.PurchaseOrder(
        po_number=po_number,
        version=row["version"],
        business_unit=state["business_unit"],
        currency=state["currency"],
        unit_prices={ln["line_id"]: Decimal(ln["unit_price"]) for ln in state["lines"]},
        approved_by=state.get("approved_by"),
        match_mode=state.get("match_mode"),
    )


async def save_pending_amendments(
    conn: asyncpg.Connection, amendments: Sequence[tuple[PurchaseOrderAmendmentPending, datetime]]
) -> None:
    rows = [
        (e.po_number, e.version, e.modification_id, e.amended_by, e.reason, at)
        for e, at in _first_per_key(amendments, lambda a: (a[0].po_number, a[0].version))
    ]
    await conn.execute(
        """INSERT INTO po_amendments_pending
               (po_number, version, modification_id, amended_by, reason, recorded_at)
           SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
           ON CONFLICT DO NOTHING""",
        *_columns(rows, 6),
    )


async def save_po_closures(
    conn: asyncpg.Connection, closures: Sequence[tuple[PurchaseOrderClosureAccepted, datetime]]
) -> None:
    rows = [
        (e.po_number, e.closed_by, e.reason, at)
        for e, at in _first_per_key(closures, lambda c: c[0].po_number)
    ]
    await conn.execute(
        """INSERT INTO po_closures (po_number, closed_by, reason, closed_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
           ON CONFLICT DO NOTHING""",
        *_columns(rows, 4),
    )


# --- receipts -----------------------------------------------------------------------------


def _receipt(row: asyncpg.Record | dict[str, Any]) -> d.Receipt:
    return d.Receipt(
        receipt_id=row["receipt_id"],
        po_number=row["po_number"],
        lines=tuple(d.ReceiptLine(ln["po_line_id"], Decimal(ln["quantity"])) for ln in row["lines"] or ()),
        recorded_by=row["recorded_by"],
    )


@dataclass(frozen=True)
class ArrivalInputs:
    """What a batch of `receipt.accepted` is decided on: where each receipt stands already, and
    the PO in force (the latest version we know) of each PO they name."""

    states: dict[str, d.ReceiptState]
    pos: dict[str, d.PurchaseOrder]


async def arrival_inputs(
    conn: asyncpg.Connection, receipt_ids: Sequence[str], po_numbers: Sequence[str]
) -> ArrivalInputs:
    """Both in one statement (a round trip per batch fewer than two lookups), one row per fact."""
    rows = await conn.fetch(
        """SELECT 'receipt' AS what, receipt_id AS id, status, entry_id,
                  NULL::int AS version, NULL::jsonb AS state
             FROM receipts JOIN unnest($1::text[]) AS asked(receipt_id) USING (receipt_id)
           UNION ALL
           SELECT 'po', po_number, NULL, NULL, version, state
             FROM (SELECT DISTINCT ON (po_number) po_number, version, state
                     FROM po_versions JOIN unnest($2::text[]) AS wanted(po_number) USING (po_number)
                    ORDER BY po_number, version DESC) AS in_force""",
        sorted(set(receipt_ids)),
        sorted(set(po_numbers)),
    )
    states: dict[str, d.ReceiptState] = {}
    pos: dict[str, d.PurchaseOrder] = {}
    for r in rows:
        if r["what"] == "receipt":
            states[r["id"]] = d.ReceiptState(r["id"], r["status"], r["entry_id"])
        else:
            pos[r["id"]] = _po(r["id"], r)
    return ArrivalInputs(states, pos)


async def receipt_states_and_entries(
    conn: asyncpg.Connection, receipt_ids: Sequence[str]
) -> dict[str, tuple[d.ReceiptState, d.Entry | None]]:
    """Where each receipt stands and, if it is posted, its entry: what a reversal reverses."""
    rows = await conn.fetch(
        f"""SELECT r.receipt_id, r.status, r.entry_id, {_ENTRY_COLUMNS}
              FROM receipts r
              JOIN unnest($1::text[]) AS asked(receipt_id) USING (receipt_id)
              LEFT JOIN journal_entries e ON e.entry_id = r.entry_id AND r.status = 'posted'
              LEFT JOIN {_LINES_OF_E} ON true""",
        sorted(set(receipt_ids)),
    )
    return {
        r["receipt_id"]: (
            d.ReceiptState(r["receipt_id"], r["status"], r["entry_id"]),
            _entry(r) if r["kind"] is not None else None,
        )
        for r in rows
    }


@dataclass(frozen=True)
class ReceiptRow:
    """A `receipt.accepted` to remember, with the status the plan gave it."""

    event: ReceiptAccepted
    source_event_id: str
    status: str
    entry_id: str | None


async def save_receipts(conn: asyncpg.Connection, rows: Sequence[ReceiptRow]) -> None:
    """A receipt's details, once per receipt for the batch. A receipt seen before (a reversal
    first, or pending) keeps its status and the first event that carried it; its details are
    the latest (one upsert per record would leave the same row)."""
    merged: dict[str, tuple[ReceiptRow, ReceiptRow]] = {}
    for row in rows:
        first, _ = merged.get(row.event.receipt_id, (row, row))
        merged[row.event.receipt_id] = (first, row)
    values = []
    for first, last in merged.values():
        e = last.event
        values.append(
            (
                e.receipt_id,
                e.po_number,
                e.kind,
                e.received_at,
                e.recorded_by,
                _json(e.model_dump(mode="json")["lines"]),
                first.source_event_id,
                "receipt.accepted",
                first.status,
                first.entry_id,
            )
        )
    await conn.execute(
        """INSERT INTO receipts (receipt_id, po_number, kind, received_at, recorded_by, lines,
                                 source_event_id, source_event_type, status, entry_id)
           SELECT r.receipt_id, r.po_number, r.kind, r.received_at, r.recorded_by, r.lines::jsonb,
                  r.source_event_id, r.source_event_type, r.status, r.entry_id
             FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[])
                  AS r(receipt_id, po_number, kind, received_at, recorded_by, lines, source_event_id,
                       source_event_type, status, entry_id)
           ON CONFLICT (receipt_id) DO UPDATE SET
               kind = EXCLUDED.kind, received_at = EXCLUDED.received_at,
               recorded_by = EXCLUDED.recorded_by, lines = EXCLUDED.lines,
               -- the first event that carried the receipt names its entry, whichever arrives later
               source_event_id = coalesce(receipts.source_event_id, EXCLUDED.source_event_id),
               source_event_type = coalesce(receipts.source_event_type, EXCLUDED.source_event_type)""",
        *_columns(values, 10),
    )


async def set_receipt_statuses(
    conn: asyncpg.Connection, statuses: Sequence[tuple[str, str, str | None]]
) -> None:
    """(receipt_id, status, entry_id) for receipts that waited for their PO and posted now."""
    rows = _last_per_key(statuses, lambda s: s[0])
    if not rows:
        return  # nothing waited for these POs (the usual case): no round trip
    await conn.execute(
        """UPDATE receipts SET status = s.status, entry_id = coalesce(s.entry_id, receipts.entry_id)
             FROM unnest($1::text[], $2::text[], $3::text[]) AS s(receipt_id, status, entry_id)
            WHERE receipts.receipt_id = s.receipt_id""",
        *_columns(rows, 3),
    )


async def record_receipt_reversals(
    conn: asyncpg.Connection, reversals: Sequence[tuple[ReceiptReversalAccepted, datetime, str]]
) -> None:
    """(event, reversed_at, status to remember): the last reversal of a receipt wins, as one by one."""
    rows = [
        (e.receipt_id, e.po_number, status, e.reversed_by, e.reason, at)
        for e, at, status in _last_per_key(reversals, lambda r: r[0].receipt_id)
    ]
    await conn.execute(
        """INSERT INTO receipts (receipt_id, po_number, status, reversed_by, reversal_reason, reversed_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
           ON CONFLICT (receipt_id) DO UPDATE SET
               status = EXCLUDED.status, reversed_by = EXCLUDED.reversed_by,
               reversal_reason = EXCLUDED.reversal_reason, reversed_at = EXCLUDED.reversed_at""",
        *_columns(rows, 6),
    )


@dataclass(frozen=True)
class VersionInputs:
    """What a batch of PO versions in force is decided on: the PO in force before it (the
    latest version we know) and the receipts waiting for each PO, oldest first."""

    in_force: dict[str, d.PurchaseOrder]
    pending: dict[str, list[d.PendingReceipt]]


async def version_inputs(
    conn: asyncpg.Connection, po_numbers: Sequence[str], also: Write | None = None
) -> VersionInputs:
    """Both in one statement (two round trips before); the waiting receipts are locked until the
    batch commits, as they were by their own `FOR UPDATE`. `also`: the batch's write of the
    versions themselves (it does not depend on what is read), sent in the same statement as a
    data-modifying CTE: the read sees the versions in force before it, as when it came first."""
    rows = await conn.fetch(
        "WITH "
        + ("" if also is None else f"projection AS ({_shifted(also.sql, 1)}), ")
        + """wanted AS (SELECT DISTINCT unnest($1::text[]) AS po_number),
                pending AS (
                    SELECT receipt_id, po_number, recorded_by, lines, source_event_id, source_event_type,
                           received_at
                      FROM receipts JOIN wanted USING (po_number)
                     WHERE status = 'pending'
                     ORDER BY po_number, received_at, receipt_id  -- locked in this order, as before
                       FOR UPDATE OF receipts)
           SELECT 'po' AS what, po_number, version, state, NULL::text AS receipt_id,
                  NULL::text AS recorded_by, NULL::jsonb AS lines, NULL::text AS source_event_id,
                  NULL::text AS source_event_type, NULL::timestamptz AS received_at
             FROM (SELECT DISTINCT ON (po_number) po_number, version, state
                     FROM po_versions JOIN wanted USING (po_number)
                    ORDER BY po_number, version DESC) AS in_force
           UNION ALL
           SELECT 'pending', po_number, NULL, NULL, receipt_id, recorded_by, lines, source_event_id,
                  source_event_type, received_at
             FROM pending
            ORDER BY what, po_number, received_at, receipt_id""",
        sorted(set(po_numbers)),
        *(also.args if also is not None else ()),
    )
    in_force: dict[str, d.PurchaseOrder] = {}
    pending: dict[str, list[d.PendingReceipt]] = {}
    for r in rows:
        if r["what"] == "po":
            in_force[r["po_number"]] = _po(r["po_number"], r)
        else:
            pending.setdefault(r["po_number"], []).append(
                d.PendingReceipt(_receipt(r), r["source_event_id"], r["source_event_type"])
            )
    return VersionInputs(in_force, pending)


# --- invoices and decisions ---------------------------------------------------------------


async def save_invoices(
    conn: asyncpg.Connection, invoices: Sequence[tuple[InvoiceAccepted, datetime]]
) -> None:
    rows = []
    for e, accepted_at in _first_per_key(invoices, lambda i: i[0].invoice_id):
        document = e.model_dump(mode="json")
        rows.append(
            (
                e.invoice_id,
                e.supplier_invoice_number,
                e.payee_id,
                e.legal_entity,
                e.document_type,
                str(document["issue_date"]),
                e.currency,
                e.po_number,
                e.business_unit,
                e.total_amount,
                e.payable_amount,
                e.origin,
                accepted_at,
                _json(document),
            )
        )
    await conn.execute(
        """INSERT INTO invoices (invoice_id, supplier_invoice_number, payee_id, legal_entity, document_type,
                                 issue_date, currency, po_number, business_unit, total_amount,
                                 payable_amount, origin, accepted_at, document)
           SELECT i.invoice_id, i.supplier_invoice_number, i.payee_id, i.legal_entity, i.document_type,
                  i.issue_date::date, i.currency, i.po_number, i.business_unit, i.total_amount,
                  i.payable_amount, i.origin, i.accepted_at, i.document::jsonb
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::numeric[], $11::numeric[], $12::text[],
                         $13::timestamptz[], $14::text[])
                  AS i(invoice_id, supplier_invoice_number, payee_id, legal_entity, document_type, issue_date,
                       currency, po_number, business_unit, total_amount, payable_amount, origin, accepted_at,
                       document)
           ON CONFLICT (invoice_id) DO NOTHING""",
        *_columns(rows, 14),
    )


@dataclass(frozen=True)
class DecisionRow:
    """A matching decision to record: kind approved_to_pay | approval_revoked | held | superseded;
    `payload` is the event's data (JSON mode), its common fields lifted into columns."""

    source_event_id: str
    kind: str
    payload: dict[str, Any]


async def save_decisions(conn: asyncpg.Connection, decisions: Sequence[DecisionRow]) -> None:
    await execute(conn, decisions_write(decisions))


def decisions_write(decisions: Sequence[DecisionRow]) -> Write:
    """In arrival order (`seq`): the order decides which approval of an invoice is in force."""
    rows = []
    for dec in decisions:
        p = dec.payload
        rows.append(
            (
                dec.source_event_id,
                p["invoice_id"],
                dec.kind,
                p.get("decision_id"),
                p.get("po_number"),
                p.get("po_version"),
                p.get("payee_id"),
                p.get("currency"),
                Decimal(p["payable_amount"]) if p.get("payable_amount") is not None else None,
                p.get("document_type"),
                datetime.fromisoformat(p["decided_at"]) if p.get("decided_at") else None,
                _json(p),
            )
        )
    return Write(
        """INSERT INTO decisions (source_event_id, invoice_id, kind, decision_id, po_number, po_version,
                                 payee_id, currency, payable_amount, document_type, decided_at, payload)
           SELECT x.source_event_id, x.invoice_id, x.kind, x.decision_id, x.po_number, x.po_version,
                  x.payee_id, x.currency, x.payable_amount, x.document_type, x.decided_at, x.payload::jsonb
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[],
                         $8::text[], $9::numeric[], $10::text[], $11::timestamptz[], $12::text[])
                      WITH ORDINALITY
                  AS x(source_event_id, invoice_id, kind, decision_id, po_number, po_version, payee_id,
                       currency, payable_amount, document_type, decided_at, payload, n)
            ORDER BY x.n
           ON CONFLICT (source_event_id) DO NOTHING""",
        _columns(rows, 12),
    )


# --- payouts, funding, eligibility ---------------------------------------------------------


def payouts_write(events: Sequence[PayoutReleased]) -> Write:
    rows = [
        (
            e.payout_id,
            e.run_id,
            e.payee_id,
            e.legal_entity,
            e.funding_account_id,
            e.currency,
            e.amount,
            _json(e.model_dump(mode="json")["invoices"]),
            _json([i.invoice_id for i in e.invoices]),
            e.released_at,
            _json(e.expedite.model_dump(mode="json")) if e.expedite else None,
        )
        for e in _first_per_key(events, lambda e: e.payout_id)
    ]
    return Write(
        """INSERT INTO payouts (payout_id, run_id, payee_id, legal_entity, funding_account_id, currency,
                                amount, invoices, invoice_ids, released_at, expedite)
           SELECT p.payout_id, p.run_id, p.payee_id, p.legal_entity, p.funding_account_id, p.currency,
                  p.amount, p.invoices::jsonb, ARRAY(SELECT jsonb_array_elements_text(p.invoice_ids::jsonb)),
                  p.released_at, p.expedite::jsonb
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::numeric[], $8::text[], $9::text[], $10::timestamptz[], $11::text[])
                  AS p(payout_id, run_id, payee_id, legal_entity, funding_account_id, currency, amount,
                       invoices, invoice_ids, released_at, expedite)
           ON CONFLICT (payout_id) DO NOTHING""",
        _columns(rows, 11),
    )


def payout_outcomes_write(outcomes: Sequence[tuple[str, PayoutRailRecorded]]) -> Write:
    """(outcome settled | failed | returned, the payout.*_recorded event)."""
    rows = [
        (
            e.rail_event_id,
            e.payout_id,
            outcome,
            e.payee_id,
            e.funding_account_id,
            e.currency,
            e.amount,
            _json(list(e.invoice_ids)),
            e.at,
            e.failure_code,
            e.reason,
        )
        for outcome, e in _first_per_key(outcomes, lambda o: o[1].rail_event_id)
    ]
    return Write(
        """INSERT INTO payout_outcomes (rail_event_id, payout_id, outcome, payee_id, funding_account_id,
                                        currency, amount, invoice_ids, at, failure_code, reason)
           SELECT o.rail_event_id, o.payout_id, o.outcome, o.payee_id, o.funding_account_id, o.currency,
                  o.amount, ARRAY(SELECT jsonb_array_elements_text(o.invoice_ids::jsonb)), o.at,
                  o.failure_code, o.reason
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::numeric[], $8::text[], $9::timestamptz[], $10::text[], $11::text[])
                  AS o(rail_event_id, payout_id, outcome, payee_id, funding_account_id, currency, amount,
                       invoice_ids, at, failure_code, reason)
           ON CONFLICT (rail_event_id) DO NOTHING""",
        _columns(rows, 11),
    )


@dataclass(frozen=True)
class FundingOwners:
    """What funding needs to know before the batch: each account's owner (legal entity,
    currency) — only funding for the account's own pair is recorded, so every row agrees — and
    which of the batch's funding ids are recorded already."""

    owners: dict[str, tuple[str, str]]
    known_ids: set[str]


async def funding_owners(
    conn: asyncpg.Connection, account_ids: Sequence[str], funding_ids: Sequence[str]
) -> FundingOwners:
    rows = await conn.fetch(
        """SELECT f.funding_id, f.account_id, f.legal_entity, f.currency,
                  f.funding_id = ANY($2::text[]) AS asked_id
             FROM funding_receipts f
            WHERE f.funding_id = ANY($2::text[])
               OR f.funding_id IN (SELECT DISTINCT ON (account_id) funding_id FROM funding_receipts
                                    WHERE account_id = ANY($1::text[]) ORDER BY account_id, funding_id)""",
        sorted(set(account_ids)),
        sorted(set(funding_ids)),
    )
    owners: dict[str, tuple[str, str]] = {}
    for r in rows:
        if r["account_id"] in account_ids:
            owners.setdefault(r["account_id"], (r["legal_entity"], r["currency"]))
    return FundingOwners(owners, {r["funding_id"] for r in rows if r["asked_id"]})


def fundings_write(events: Sequence[FundingReceived]) -> Write:
    rows = [
        (e.funding_id, e.account_id, e.legal_entity, e.currency, e.amount, e.received_at)
        for e in _first_per_key(events, lambda e: e.funding_id)
    ]
    return Write(
        """INSERT INTO funding_receipts (funding_id, account_id, legal_entity, currency, amount, received_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                                $6::timestamptz[])
           ON CONFLICT DO NOTHING""",
        _columns(rows, 6),
    )


async def save_eligibilities(conn: asyncpg.Connection, events: Sequence[PayeeEligibilityChanged]) -> None:
    """Keep the latest evaluation per payee; an older one arriving late does not win; a missing
    country or entity type keeps the one known. The batch is folded onto what is stored exactly
    as one upsert per record would, so one row per payee is written."""
    stored = {
        r["payee_id"]: r
        for r in await conn.fetch(
            """SELECT payee_id, evaluated_at, country, entity_type FROM payee_eligibility
                WHERE payee_id = ANY($1::text[])""",
            sorted({e.payee_id for e in events}),
        )
    }
    latest: dict[str, tuple[PayeeEligibilityChanged, str | None, str | None]] = {}
    for e in events:
        before = latest.get(e.payee_id)
        if before is not None:
            at, country, entity_type = before[0].evaluated_at, before[1], before[2]
        elif e.payee_id in stored:
            row = stored[e.payee_id]
            at, country, entity_type = row["evaluated_at"], row["country"], row["entity_type"]
        else:
            latest[e.payee_id] = (e, e.country, e.entity_type)
            continue
        if at <= e.evaluated_at:
            latest[e.payee_id] = (e, e.country or country, e.entity_type or entity_type)
    rows = [
        (
            e.payee_id,
            e.eligible,
            _json(list(e.reasons)),
            e.profile_version,
            e.evaluated_at,
            country,
            entity_type,
            bool(e.reportable_1099_nec),
        )
        for e, country, entity_type in latest.values()
    ]
    await conn.execute(
        """INSERT INTO payee_eligibility (payee_id, eligible, reasons, profile_version, evaluated_at,
                                          country, entity_type, reportable_1099_nec)
           SELECT p.payee_id, p.eligible, p.reasons::jsonb, p.profile_version, p.evaluated_at, p.country,
                  p.entity_type, p.reportable_1099_nec
             FROM unnest($1::text[], $2::bool[], $3::text[], $4::int[], $5::timestamptz[], $6::text[],
                         $7::text[], $8::bool[])
                  AS p(payee_id, eligible, reasons, profile_version, evaluated_at, country, entity_type,
                       reportable_1099_nec)
           ON CONFLICT (payee_id) DO UPDATE SET
               eligible = EXCLUDED.eligible, reasons = EXCLUDED.reasons,
               profile_version = EXCLUDED.profile_version, evaluated_at = EXCLUDED.evaluated_at,
               country = coalesce(EXCLUDED.country, payee_eligibility.country),
               entity_type = coalesce(EXCLUDED.entity_type, payee_eligibility.entity_type),
               reportable_1099_nec = EXCLUDED.reportable_1099_nec
           WHERE payee_eligibility.evaluated_at <= EXCLUDED.evaluated_at""",
        *_columns(rows, 8),
    )


# --- GRNI ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrniInputs:
    """What the GRNI true-up of some POs reads: each PO in force, its receipts whose accrual is in
    the journal (not pending, reversed or dropped), its `invoice.approved_to_pay` payloads in
    force (the latest approval of each invoice, unless revoked since, as the journal recorded
    them), and its GRNI in the journal as a credit balance per currency."""

    pos: dict[str, d.PurchaseOrder]
    receipts: dict[str, list[d.Receipt]]
    approvals: dict[str, list[dict[str, Any]]]
    balances: dict[tuple[str, str], Decimal]


async def lock_and_read_grni(conn: asyncpg.Connection, po_numbers: Sequence[str]) -> GrniInputs:
    """Lock these POs' GRNI, then read everything the true-up reads, in one round trip
    (`ledger_grni_inputs`, migration 0006; two before): one row per fact, `what` saying which.

    Until this transaction ends, no other truing up of these POs' GRNI: two transactions (two
    consumers of one group, or two topics of one process) that each read the balance before the
    other commits would each post the same correction. The locks are taken in ascending key
    order (no deadlock between two such transactions), and the read is a statement of its own
    after them, so it includes what a transaction that held them committed meanwhile."""
    rows = await conn.fetch(
        # receipts by PO and receipt id (their seq is NULL), decisions in the order recorded
        "SELECT * FROM ledger_grni_inputs($1::text[]) ORDER BY seq NULLS FIRST, po_number, id",
        sorted(set(po_numbers)),
    )
    pos: dict[str, d.PurchaseOrder] = {}
    receipts: dict[str, list[d.Receipt]] = {po: [] for po in po_numbers}
    current: dict[str, dict[str, dict[str, Any]]] = {po: {} for po in po_numbers}
    balances: dict[tuple[str, str], Decimal] = {}
    for r in rows:
        if r["what"] == "po":
            pos[r["po_number"]] = _po(r["po_number"], {"version": r["version"], "state": r["doc"]})
        elif r["what"] == "grni":
            balances[(r["po_number"], r["id"])] = Decimal(r["balance"])
        elif r["what"] == "receipt":
            receipt = {"receipt_id": r["id"], "po_number": r["po_number"], "lines": r["doc"]}
            receipts[r["po_number"]].append(_receipt(receipt | {"recorded_by": r["kind"]}))
        else:  # a decision: in the order recorded, so a revocation undoes the approval before it
            approvals = current[r["po_number"]]
            if r["kind"] == "approved_to_pay":
                approvals[r["id"]] = dict(r["doc"])
            elif r["kind"] == "approval_revoked":
                approvals.pop(r["id"], None)
    return GrniInputs(pos, receipts, {po: list(a.values()) for po, a in current.items()}, balances)
