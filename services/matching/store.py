"""The SQL matching needs, in one place: domain objects in and out, a constant number of
statements per batch (arrays and unnest, never a query per record). Functions take the batch's
connection (its transaction)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.matching import contract
from services.matching.domain import StoredDecision
from services.matching.domain.batch import (
    AddInvoice,
    AddPoVersion,
    AddReceipt,
    ClosePo,
    Hold,
    Loaded,
    NoteRequisition,
    RequestOverride,
    RequestRematch,
    ReverseReceipt,
    Step,
    StoredInvoice,
    StoredOverride,
    StoredReceipt,
    Writes,
)
from shared.contracts.internal import InvoiceAccepted, PurchaseOrderState
from shared.db import loads_jsonb, text_columns

# --- load: everything a batch's steps need -------------------------------------------------------

_HOLD_FIELDS = (
    "hold_id", "invoice_id", "match_group", "po_number", "line_id", "reason", "queue", "action", "owner",
    "opened_at", "due_by", "evidence_required", "next_action", "opened_by_event_id", "status", "released_at",
    "released_by", "releasing_event_id", "override_id", "approved_by", "lapsed_override_id",
)  # fmt: skip
_HOLD_COLUMNS = ", ".join(_HOLD_FIELDS)
# Read as _override takes them (jsonb as text).
_OVERRIDE_FIELDS = (
    "override_id", "invoice_id", "status", "requested_by", "approved_by", "reason_code", "justification",
    "evidence", "hold_reasons", "scope", "refusal_reasons", "ledger_ref", "decided_at", "event_id", "facts",
)  # fmt: skip
_OVERRIDE_JSONB = {"evidence", "hold_reasons", "scope", "refusal_reasons", "facts"}
# Read as hold_from takes them: evidence_required as text.
_HOLD_READ = text_columns(_HOLD_FIELDS, {"evidence_required"})


async def load(conn: asyncpg.Connection, steps: Sequence[Step]) -> Loaded:
    """Lock every PO the steps touch (sorted: no deadlock between instances), then read what they
    need: two statements whatever the batch's size or kinds (the lock must come first, so that
    the read's snapshot sees what another instance committed before it let go of a PO)."""
    invoice_ids = {s.invoice.invoice_id for s in steps if isinstance(s, AddInvoice)}
    targets = {s.invoice_id for s in steps if isinstance(s, RequestRematch)}
    targets |= {s.request.invoice_id for s in steps if isinstance(s, RequestOverride)}
    originals = {
        s.invoice.replaces_invoice_id
        for s in steps
        if isinstance(s, AddInvoice) and s.invoice.replaces_invoice_id
    }
    groups: set[str] = set()
    for s in steps:
        if isinstance(s, AddPoVersion):
            groups.add(s.po.po_number)
        elif isinstance(s, ClosePo | AddReceipt | ReverseReceipt):
            groups.add(s.po_number)
        elif isinstance(s, AddInvoice):
            groups.add(s.group)
    wanted = await lock_groups(conn, groups, invoice_ids | targets | originals)
    requisitions = {s.po.requisition_id for s in steps if isinstance(s, AddPoVersion) and s.po.requisition_id}
    requisitions |= {s.requisition_id for s in steps if isinstance(s, NoteRequisition)}
    row = await conn.fetchrow(
        _LOAD,
        wanted,
        sorted({s.receipt.receipt_id for s in steps if isinstance(s, AddReceipt)}),
        sorted(invoice_ids),
        sorted(originals),
        sorted({s.request.override_id for s in steps if isinstance(s, RequestOverride)}),
        sorted(requisitions),
    )
    return _loaded(row)


async def lock_groups(
    conn: asyncpg.Connection, groups: Iterable[str], invoice_ids: Iterable[str]
) -> list[str]:
    """Lock the groups named and those of the invoices named, sorted; returns them all, sorted.
    Commands (keyed by invoice) and documents (keyed by PO) for one PO may be consumed by two
    instances at once: one rematch of a PO at a time, until the transaction ends."""
    rows = await conn.fetch(
        """SELECT g, pg_advisory_xact_lock(hashtext('matching:' || g))
             FROM (SELECT g FROM unnest($1::text[]) AS g
                   UNION
                   SELECT match_group FROM invoices WHERE invoice_id = ANY($2::text[])
                   ORDER BY 1) AS sorted""",
        sorted(set(groups)),
        sorted(set(invoice_ids)),
    )
    return [r[0] for r in rows]


# One row: every table's rows the batch needs, each an array of anonymous records (jsonb as text:
# asyncpg decodes no composite that holds a text-format type). $1 the locked groups, $2 the
# batch's receipts, $3 its invoices, $4 the invoices they replace, $5 its overrides, $6 the
# requisitions its POs and notes name.
_LOAD = f"""
WITH inv AS (
    SELECT invoice_id, match_group, seq, document, status, decision_seq, decision_fingerprint,
           replaces_invoice_id
      FROM invoices JOIN unnest($1::text[]) AS wanted(match_group) USING (match_group)),
ids AS (
    SELECT invoice_id FROM inv UNION SELECT unnest($3::text[]) UNION SELECT unnest($4::text[])),
po AS (
    SELECT wanted.po_number, latest.state, c.closed_after_seq
      FROM unnest($1::text[]) AS wanted(po_number)
      LEFT JOIN LATERAL (SELECT state FROM po_versions p WHERE p.po_number = wanted.po_number
                          ORDER BY version DESC LIMIT 1) AS latest ON true
      LEFT JOIN po_closures c ON c.po_number = wanted.po_number)
SELECT
  ARRAY(SELECT ROW(po_number, state::text, closed_after_seq) FROM po) AS pos,
  ARRAY(SELECT ROW(receipt_id, po_number, kind, received_at, lines::text, event_id, reversed_at,
                   reversed_by, reversal_reason, reversal_event_id)
          FROM receipts WHERE po_number = ANY($1::text[]) OR receipt_id = ANY($2::text[])) AS receipts,
  ARRAY(SELECT ROW(invoice_id, match_group, seq, document::text, status, decision_seq,
                   decision_fingerprint)
          FROM inv ORDER BY seq) AS invoices,
  ARRAY(SELECT ROW(replaces_invoice_id, invoice_id) FROM (
          SELECT DISTINCT ON (replaces_invoice_id) replaces_invoice_id, invoice_id FROM invoices
           WHERE replaces_invoice_id IN (SELECT invoice_id FROM ids) AND invoice_id <> replaces_invoice_id
           ORDER BY replaces_invoice_id, seq) AS first_replacement) AS replacements,
  ARRAY(SELECT DISTINCT invoice_id FROM decisions
         WHERE invoice_id IN (SELECT invoice_id FROM ids
                              UNION SELECT replaces_invoice_id FROM inv WHERE replaces_invoice_id IS NOT NULL)
           AND event_type = 'invoice.approved_to_pay') AS settled,
  ARRAY(SELECT ROW({text_columns(_OVERRIDE_FIELDS, _OVERRIDE_JSONB)}) FROM overrides
         WHERE (status = 'accepted' AND invoice_id IN (SELECT invoice_id FROM ids))
            OR override_id = ANY($5::text[])) AS overrides,
  ARRAY(SELECT ROW({_HOLD_READ})
          FROM holds WHERE match_group = ANY($1::text[]) AND status = 'open'
         ORDER BY opened_at, hold_id) AS open_holds,
  ARRAY(SELECT ROW(invoice_id, reason, line_id, count(*))
          FROM holds WHERE invoice_id IN (SELECT invoice_id FROM ids)
         GROUP BY invoice_id, reason, line_id) AS holds_opened,
  ARRAY(SELECT ROW(requisition_id, requested_by) FROM requisitions
         WHERE requisition_id IN (SELECT state->>'requisition_id' FROM po UNION SELECT unnest($6::text[])))
      AS requesters,
  -- acceptance numbers for the batch's new invoices, taken in order under the PO locks
  ARRAY(SELECT nextval(pg_get_serial_sequence('invoices', 'seq'))
          FROM generate_series(1, (SELECT count(*) FROM unnest($3::text[]) AS new(invoice_id)
                                    WHERE invoice_id NOT IN (SELECT invoice_id FROM inv)))) AS free_seqs
"""


def _loaded(row: Any) -> Loaded:
    loaded = Loaded(free_seqs=list(row["free_seqs"]), settled=set(row["settled"]))
    for po_number, state, closed_after_seq in row["pos"]:
        if state is not None:
            loaded.pos[po_number] = contract.purchase_order_from(
                PurchaseOrderState.model_validate(loads_jsonb(state))
            )
        if closed_after_seq is not None:
            loaded.closures[po_number] = closed_after_seq
    for r in row["receipts"]:
        loaded.receipts[r[0]] = StoredReceipt(
            receipt_id=r[0],
            po_number=r[1],
            kind=r[2],
            received_at=r[3],
            lines=contract.receipt_lines_from(loads_jsonb(r[4])) if r[4] is not None else None,
            event_id=r[5],
            reversed_at=r[6],
            reversed_by=r[7],
            reversal_reason=r[8],
            reversal_event_id=r[9],
        )
    for invoice_id, group, seq, document, status, decision_seq, fingerprint in row["invoices"]:
        invoice = contract.invoice_from(InvoiceAccepted.model_validate(loads_jsonb(document)), seq)
        kind = "none" if status == "new" else status
        loaded.invoices[invoice_id] = StoredInvoice(
            invoice, group, StoredDecision(kind, fingerprint, decision_seq)
        )
    loaded.replacements.update(row["replacements"])
    for r in row["overrides"]:
        loaded.overrides[r[0]] = _override(r)
    for r in row["open_holds"]:
        loaded.open_holds.setdefault(r[1], []).append(hold_from(r))
    for invoice_id, reason, line_id, n in row["holds_opened"]:
        loaded.holds_opened[(invoice_id, reason, line_id)] = n
    loaded.requesters.update(row["requesters"])
    return loaded


def _override(r: Sequence[Any]) -> StoredOverride:
    """An overrides row, its columns in _OVERRIDE_FIELDS' order (jsonb as text)."""
    hold_reasons = loads_jsonb(r[8])
    return StoredOverride(
        override_id=r[0],
        invoice_id=r[1],
        status=r[2],
        requested_by=r[3],
        approved_by=r[4],
        reason_code=r[5],
        justification=r[6],
        evidence=tuple(loads_jsonb(r[7])),
        hold_reasons=None if hold_reasons == "all" else tuple(hold_reasons),
        scope=frozenset((reason, line_id) for reason, line_id in loads_jsonb(r[9])),
        refusal_reasons=tuple(loads_jsonb(r[10])),
        ledger_ref=r[11],
        decided_at=r[12],
        event_id=r[13],
        facts=tuple(((reason, line_id), text) for reason, line_id, text in (loads_jsonb(r[14]) or ())),
    )


def hold_from(r: Sequence[Any]) -> Hold:
    """A holds row read with _HOLD_READ (its columns in _HOLD_FIELDS' order)."""
    return Hold(
        hold_id=r[0],
        invoice_id=r[1],
        group=r[2],
        po_number=r[3],
        line_id=r[4],
        reason=r[5],
        queue=r[6],
        action=r[7],
        owner=r[8],
        opened_at=r[9],
        due_by=r[10],
        evidence_required=tuple(loads_jsonb(r[11])),
        next_action=r[12],
        opened_by_event_id=r[13],
        status=r[14],
        released_at=r[15],
        released_by=r[16],
        releasing_event_id=r[17],
        override_id=r[18],
        approved_by=r[19],
        lapsed_override_id=r[20],
    )


# --- apply: the batch's writes, one statement per table ---------------------------------------


def _json(value: Any) -> str | None:
    return None if value is None else _jsonb(value)


def _jsonb(value: Any) -> str:
    """A jsonb parameter as text: orjson (~1 against ~9 µs for an invoice's document). The values
    are JSON-mode dumps, lists and strings; jsonb keeps values, not spelling (escapes, float
    digits). What orjson refuses (integers past 64 bits, lone surrogates) json.dumps decides."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)]


async def apply(
    conn: asyncpg.Connection, w: Writes, payloads: Mapping[str, Mapping[str, Any]], seqs: Mapping[str, int]
) -> None:
    """Write the plan's final rows. `payloads`: each decision event's data as published, by event id."""
    if w.po_versions:
        await conn.execute(
            """INSERT INTO po_versions (po_number, version, state, in_force_since, event_id)
               SELECT p, v, s::jsonb, t, e FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[],
                                                       $5::text[]) AS x(p, v, s, t, e)
               ON CONFLICT (po_number, version) DO NOTHING""",
            *_columns(
                [
                    (s.po.po_number, s.po.version, _jsonb(s.document), s.in_force_since, s.event_id)
                    for s in w.po_versions.values()
                ]
            ),
        )
    if w.requisitions:
        await conn.execute(
            """INSERT INTO requisitions (requisition_id, requested_by)
               SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (requisition_id) DO NOTHING""",
            *_columns(list(w.requisitions.items())),
        )
    if w.receipts:
        # Only what the batch set: a receipt's lines once, its reversal once (the plan knows which).
        await conn.execute(
            """INSERT INTO receipts (receipt_id, po_number, kind, received_at, lines, event_id, reversed_at,
                                     reversed_by, reversal_reason, reversal_event_id)
               SELECT r, p, k, t, l::jsonb, e, ra, rb, rr, re
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                             $7::timestamptz[], $8::text[], $9::text[], $10::text[])
                      AS x(r, p, k, t, l, e, ra, rb, rr, re)
               ON CONFLICT (receipt_id) DO UPDATE SET
                   kind = coalesce(receipts.kind, EXCLUDED.kind),
                   received_at = coalesce(receipts.received_at, EXCLUDED.received_at),
                   event_id = CASE WHEN receipts.lines IS NULL THEN EXCLUDED.event_id
                                   ELSE receipts.event_id END,
                   lines = coalesce(receipts.lines, EXCLUDED.lines),
                   reversed_at = coalesce(receipts.reversed_at, EXCLUDED.reversed_at),
                   reversed_by = coalesce(receipts.reversed_by, EXCLUDED.reversed_by),
                   reversal_reason = coalesce(receipts.reversal_reason, EXCLUDED.reversal_reason),
                   reversal_event_id = coalesce(receipts.reversal_event_id, EXCLUDED.reversal_event_id)""",
            *_columns(
                [
                    (
                        r.receipt_id,
                        r.po_number,
                        r.kind,
                        r.received_at,
                        _json(list(r.lines_document)) if r.lines_document is not None else None,
                        r.event_id,
                        r.reversed_at,
                        r.reversed_by,
                        r.reversal_reason,
                        r.reversal_event_id,
                    )
                    for r in w.receipts.values()
                ]
            ),
        )
    if w.new_invoices:
        rows = []
        for invoice_id, s in w.new_invoices.items():
            d = w.invoice_decisions.get(invoice_id, StoredDecision())
            status = "new" if d.kind == "none" else d.kind
            decided_at = w.decided_at if d.kind != "none" else None
            rows.append(
                (
                    invoice_id,
                    seqs[invoice_id],
                    s.group,
                    s.invoice.po_number,
                    s.invoice.replaces_invoice_id,
                    _jsonb(s.document),
                    s.at,
                    s.event_id,
                    status,
                    d.seq,
                    d.fingerprint,
                    decided_at,
                )
            )
        await conn.execute(
            """INSERT INTO invoices (invoice_id, seq, match_group, po_number, replaces_invoice_id, document,
                                     accepted_at, event_id, status, decision_seq, decision_fingerprint,
                                     decided_at)
               SELECT i, n, g, p, r, d::jsonb, a, e, s, ds, f, da
                 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::timestamptz[], $8::text[], $9::text[], $10::int[], $11::text[],
                             $12::timestamptz[]) AS x(i, n, g, p, r, d, a, e, s, ds, f, da)""",
            *_columns(rows),
        )
    decided = [(i, d) for i, d in w.invoice_decisions.items() if i not in w.new_invoices]
    if decided:
        await conn.execute(
            """UPDATE invoices
                  SET status = x.s, decision_seq = x.n, decision_fingerprint = x.f, decided_at = $5
                 FROM unnest($1::text[], $2::text[], $3::int[], $4::text[]) AS x(i, s, n, f)
                WHERE invoices.invoice_id = x.i""",
            [i for i, _ in decided],
            [d.kind for _, d in decided],
            [d.seq for _, d in decided],
            [d.fingerprint for _, d in decided],
            w.decided_at,
        )
    if w.closures:
        await conn.execute(
            """INSERT INTO po_closures (po_number, closed_by, reason, closed_after_seq, closed_at, event_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[],
                                    $6::text[])
               ON CONFLICT (po_number) DO NOTHING""",
            *_columns(
                [
                    (s.po_number, s.closed_by, s.reason, after, s.at, s.event_id)
                    for s, after in w.closures.values()
                ]
            ),
        )
    await _write_holds(conn, w)
    if w.overrides:
        await _write_overrides(conn, list(w.overrides.values()))
    if w.decisions:
        await conn.execute(
            """INSERT INTO decisions (invoice_id, seq, event_type, decision_id, event_id, payload,
                                      cause_event_id, decided_at)
               SELECT i, n, t, d, e, p::jsonb, c, a
                 FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::text[], $8::timestamptz[]) AS x(i, n, t, d, e, p, c, a)""",
            *_columns(
                [
                    (
                        r.decided.invoice.invoice_id,
                        r.decided.seq,
                        r.decided.event_type,
                        r.decided.decision_id,
                        r.decided.event_id,
                        _jsonb(payloads[r.decided.event_id]),
                        r.cause_event_id,
                        r.decided_at,
                    )
                    for r in w.decisions
                ]
            ),
        )


async def _write_holds(conn: asyncpg.Connection, w: Writes) -> None:
    # Released first: a hold reopened in the same batch is a new open hold of the same
    # (invoice, reason, line), and only one may be open at a time (holds_one_open).
    if w.released_holds:
        holds = list(w.released_holds.values())
        released = await conn.fetchval(
            """WITH done AS (
                   UPDATE holds SET status = 'released', released_by = x.rb, released_at = x.ra,
                                    releasing_event_id = x.re, override_id = x.ov, approved_by = x.ap
                     FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                                 $6::text[])
                          AS x(h, rb, ra, re, ov, ap)
                    WHERE holds.hold_id = x.h AND holds.status = 'open' RETURNING 1)
               SELECT count(*) FROM done""",
            *_columns(
                [
                    (
                        h.hold_id,
                        h.released_by,
                        h.released_at,
                        h.releasing_event_id,
                        h.override_id,
                        h.approved_by,
                    )
                    for h in holds
                ]
            ),
        )
        assert released == len(holds), "a hold to release is not open"
    if w.new_holds:
        await conn.execute(
            f"""INSERT INTO holds ({_HOLD_COLUMNS})
                SELECT h, i, g, p, l, r, q, a, o, oa, d, e::jsonb, na, ob, s, ra, rb, re, ov, ap, lo
                  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[],
                              $12::text[], $13::text[], $14::text[], $15::text[], $16::timestamptz[],
                              $17::text[], $18::text[], $19::text[], $20::text[], $21::text[])
                       AS x(h, i, g, p, l, r, q, a, o, oa, d, e, na, ob, s, ra, rb, re, ov, ap, lo)""",
            *_columns(
                [
                    (
                        h.hold_id,
                        h.invoice_id,
                        h.group,
                        h.po_number,
                        h.line_id,
                        h.reason,
                        h.queue,
                        h.action,
                        h.owner,
                        h.opened_at,
                        h.due_by,
                        _jsonb(list(h.evidence_required)),
                        h.next_action,
                        h.opened_by_event_id,
                        h.status,
                        h.released_at,
                        h.released_by,
                        h.releasing_event_id,
                        h.override_id,
                        h.approved_by,
                        h.lapsed_override_id,
                    )
                    for h in w.new_holds.values()
                ]
            ),
        )


async def _write_overrides(conn: asyncpg.Connection, overrides: list[StoredOverride]) -> None:
    """A refused override may be re-sent under the same id (e.g. with the right approver); an
    accepted one is final."""
    await conn.execute(
        """INSERT INTO overrides (override_id, invoice_id, status, requested_by, approved_by, reason_code,
                                  justification, evidence, hold_reasons, scope, refusal_reasons, ledger_ref,
                                  decided_at, event_id, facts)
           SELECT o, i, s, rq, ap, rc, j, ev::jsonb, hr::jsonb, sc::jsonb, rr::jsonb, lr, da, e, f::jsonb
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[],
                         $14::text[], $15::text[]) AS x(o, i, s, rq, ap, rc, j, ev, hr, sc, rr, lr, da, e, f)
           ON CONFLICT (override_id) DO UPDATE SET
               invoice_id = EXCLUDED.invoice_id, status = EXCLUDED.status,
               requested_by = EXCLUDED.requested_by,
               approved_by = EXCLUDED.approved_by, reason_code = EXCLUDED.reason_code,
               justification = EXCLUDED.justification, evidence = EXCLUDED.evidence,
               hold_reasons = EXCLUDED.hold_reasons, scope = EXCLUDED.scope,
               refusal_reasons = EXCLUDED.refusal_reasons, ledger_ref = EXCLUDED.ledger_ref,
               decided_at = EXCLUDED.decided_at, event_id = EXCLUDED.event_id, facts = EXCLUDED.facts
           WHERE overrides.status = 'refused'""",
        *_columns(
            [
                (
                    o.override_id,
                    o.invoice_id,
                    o.status,
                    o.requested_by,
                    o.approved_by,
                    o.reason_code,
                    o.justification,
                    _jsonb(list(o.evidence)),
                    _jsonb("all" if o.hold_reasons is None else list(o.hold_reasons)),
                    _jsonb(sorted([list(k) for k in o.scope], key=lambda k: (k[0], k[1] or ""))),
                    _jsonb(list(o.refusal_reasons)),
                    o.ledger_ref,
                    o.decided_at,
                    o.event_id,
                    _jsonb([[k[0], k[1], text] for k, text in o.facts]),
                )
                for o in overrides
            ]
        ),
    )


# --- escalation and the gauges (the periodic task) ------------------------------------------------


async def holds_due(conn: asyncpg.Connection, now: datetime, limit: int = 500) -> list[Hold]:
    rows = await conn.fetch(
        f"""SELECT {_HOLD_READ} FROM holds WHERE status = 'open' AND escalated_at IS NULL AND due_by < $1
           ORDER BY due_by, hold_id LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )
    return [hold_from(r) for r in rows]


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


async def supplier_invoice_numbers(conn: asyncpg.Connection, invoice_ids: Sequence[str]) -> dict[str, str]:
    """The supplier's own number of each invoice, as accepted (Invoice Responses, SPEC §12.3)."""
    rows = await conn.fetch(
        """SELECT invoice_id, document->>'supplier_invoice_number' AS number
             FROM invoices WHERE invoice_id = ANY($1::text[])""",
        list(invoice_ids),
    )
    return {r["invoice_id"]: r["number"] for r in rows if r["number"]}
