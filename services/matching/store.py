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

# --- load: everything a batch's steps need -------------------------------------------------------


async def load(conn: asyncpg.Connection, steps: Sequence[Step]) -> Loaded:
    """Lock every PO the steps touch (sorted: no deadlock between instances), then read what they
    need in a fixed number of statements, whatever the batch's size."""
    invoice_ids = {s.invoice.invoice_id for s in steps if isinstance(s, AddInvoice)}
    targets = {s.invoice_id for s in steps if isinstance(s, RequestRematch)}
    targets |= {s.request.invoice_id for s in steps if isinstance(s, RequestOverride)}
    originals = {
        s.invoice.replaces_invoice_id
        for s in steps
        if isinstance(s, AddInvoice) and s.invoice.replaces_invoice_id
    }
    known_groups = await _groups_of(conn, invoice_ids | targets | originals)
    groups = set(known_groups.values())
    for s in steps:
        if isinstance(s, AddPoVersion):
            groups.add(s.po.po_number)
        elif isinstance(s, ClosePo | AddReceipt | ReverseReceipt):
            groups.add(s.po_number)
        elif isinstance(s, AddInvoice):
            groups.add(s.group)
    await lock_groups(conn, groups)
    loaded = Loaded()
    wanted = sorted(groups)
    await _load_pos(conn, loaded, wanted)
    await _load_receipts(
        conn, loaded, wanted, [s.receipt.receipt_id for s in steps if isinstance(s, AddReceipt)]
    )
    await _load_invoices(conn, loaded, wanted)
    ids = sorted(set(loaded.invoices) | invoice_ids | originals)
    await _load_replacements_and_settled(conn, loaded, ids)
    overrides = sorted({s.request.override_id for s in steps if isinstance(s, RequestOverride)})
    await _load_overrides(conn, loaded, ids, overrides)
    await _load_holds(conn, loaded, wanted, ids)
    requisitions = {po.requisition_id for po in loaded.pos.values() if po.requisition_id}
    requisitions |= {
        s.po.requisition_id for s in steps if isinstance(s, AddPoVersion) and s.po.requisition_id
    }
    requisitions |= {s.requisition_id for s in steps if isinstance(s, NoteRequisition)}
    await _load_requesters(conn, loaded, sorted(requisitions))
    new_invoices = len(invoice_ids - set(loaded.invoices))
    if new_invoices:
        # Acceptance numbers for the batch's new invoices, taken in order under the PO locks.
        loaded.free_seqs = [
            r[0]
            for r in await conn.fetch(
                "SELECT nextval(pg_get_serial_sequence('invoices', 'seq')) FROM generate_series(1, $1)",
                new_invoices,
            )
        ]
    return loaded


async def lock_groups(conn: asyncpg.Connection, groups: Iterable[str]) -> None:
    # Commands (keyed by invoice) and documents (keyed by PO) for one PO may be consumed by two
    # instances at once: one rematch of a PO at a time, until the transaction ends.
    await conn.execute(
        """SELECT pg_advisory_xact_lock(hashtext('matching:' || g))
             FROM (SELECT DISTINCT g FROM unnest($1::text[]) AS g ORDER BY g) AS sorted""",
        sorted(groups),
    )


async def _groups_of(conn: asyncpg.Connection, invoice_ids: set[str]) -> dict[str, str]:
    if not invoice_ids:
        return {}
    rows = await conn.fetch(
        """SELECT invoice_id, match_group
             FROM invoices JOIN unnest($1::text[]) AS wanted(invoice_id) USING (invoice_id)""",
        sorted(invoice_ids),
    )
    return {r["invoice_id"]: r["match_group"] for r in rows}


async def _load_pos(conn: asyncpg.Connection, loaded: Loaded, groups: list[str]) -> None:
    rows = await conn.fetch(
        """SELECT wanted.po_number, latest.state, c.closed_after_seq
             FROM unnest($1::text[]) AS wanted(po_number)
             LEFT JOIN LATERAL (SELECT state FROM po_versions p WHERE p.po_number = wanted.po_number
                                 ORDER BY version DESC LIMIT 1) AS latest ON true
             LEFT JOIN po_closures c ON c.po_number = wanted.po_number""",
        groups,
    )
    for r in rows:
        if r["state"] is not None:
            loaded.pos[r["po_number"]] = contract.purchase_order_from(
                PurchaseOrderState.model_validate(r["state"])
            )
        if r["closed_after_seq"] is not None:
            loaded.closures[r["po_number"]] = r["closed_after_seq"]


async def _load_receipts(
    conn: asyncpg.Connection, loaded: Loaded, groups: list[str], receipt_ids: list[str]
) -> None:
    rows = await conn.fetch(
        """SELECT * FROM receipts WHERE po_number = ANY($1::text[]) OR receipt_id = ANY($2::text[])""",
        groups,
        receipt_ids,
    )
    for r in rows:
        loaded.receipts[r["receipt_id"]] = StoredReceipt(
            receipt_id=r["receipt_id"],
            po_number=r["po_number"],
            kind=r["kind"],
            received_at=r["received_at"],
            lines=contract.receipt_lines_from(r["lines"]) if r["lines"] is not None else None,
            event_id=r["event_id"],
            reversed_at=r["reversed_at"],
            reversed_by=r["reversed_by"],
            reversal_reason=r["reversal_reason"],
            reversal_event_id=r["reversal_event_id"],
        )


async def _load_invoices(conn: asyncpg.Connection, loaded: Loaded, groups: list[str]) -> None:
    rows = await conn.fetch(
        """SELECT invoice_id, match_group, seq, document, status, decision_seq, decision_fingerprint
             FROM invoices JOIN unnest($1::text[]) AS wanted(match_group) USING (match_group)
            ORDER BY seq""",
        groups,
    )
    for r in rows:
        invoice = contract.invoice_from(InvoiceAccepted.model_validate(r["document"]), r["seq"])
        kind = "none" if r["status"] == "new" else r["status"]
        decision = StoredDecision(kind, r["decision_fingerprint"], r["decision_seq"])
        loaded.invoices[r["invoice_id"]] = StoredInvoice(invoice, r["match_group"], decision)


async def _load_replacements_and_settled(conn: asyncpg.Connection, loaded: Loaded, ids: list[str]) -> None:
    originals = [
        si.invoice.replaces_invoice_id for si in loaded.invoices.values() if si.invoice.replaces_invoice_id
    ]
    rows = await conn.fetch(
        """SELECT 'replaced' AS what, replaces_invoice_id AS a, invoice_id AS b FROM (
               SELECT DISTINCT ON (replaces_invoice_id) replaces_invoice_id, invoice_id FROM invoices
                WHERE replaces_invoice_id = ANY($1::text[]) AND invoice_id <> replaces_invoice_id
                ORDER BY replaces_invoice_id, seq) AS first_replacement
           UNION ALL
           SELECT DISTINCT 'settled', invoice_id, NULL
             FROM decisions JOIN unnest($2::text[]) AS wanted(invoice_id) USING (invoice_id)
            WHERE event_type = 'invoice.approved_to_pay'""",
        ids,
        sorted(set(ids) | set(originals)),
    )
    for r in rows:
        if r["what"] == "replaced":
            loaded.replacements[r["a"]] = r["b"]
        else:
            loaded.settled.add(r["a"])


async def _load_overrides(
    conn: asyncpg.Connection, loaded: Loaded, ids: list[str], override_ids: list[str]
) -> None:
    rows = await conn.fetch(
        """SELECT * FROM overrides
            WHERE (status = 'accepted' AND invoice_id = ANY($1::text[])) OR override_id = ANY($2::text[])""",
        ids,
        override_ids,
    )
    for r in rows:
        loaded.overrides[r["override_id"]] = _override(r)


def _override(r: Any) -> StoredOverride:
    hold_reasons = r["hold_reasons"]
    return StoredOverride(
        override_id=r["override_id"],
        invoice_id=r["invoice_id"],
        status=r["status"],
        requested_by=r["requested_by"],
        approved_by=r["approved_by"],
        reason_code=r["reason_code"],
        justification=r["justification"],
        evidence=tuple(r["evidence"]),
        hold_reasons=None if hold_reasons == "all" else tuple(hold_reasons),
        scope=frozenset((reason, line_id) for reason, line_id in r["scope"]),
        refusal_reasons=tuple(r["refusal_reasons"]),
        ledger_ref=r["ledger_ref"],
        decided_at=r["decided_at"],
        event_id=r["event_id"],
        facts=tuple(((reason, line_id), text) for reason, line_id, text in (r["facts"] or ())),
    )


async def _load_holds(conn: asyncpg.Connection, loaded: Loaded, groups: list[str], ids: list[str]) -> None:
    rows = await conn.fetch(
        """SELECT * FROM holds JOIN unnest($1::text[]) AS wanted(match_group) USING (match_group)
            WHERE status = 'open' ORDER BY opened_at, hold_id""",
        groups,
    )
    for r in rows:
        loaded.open_holds.setdefault(r["invoice_id"], []).append(hold_from(r))
    counts = await conn.fetch(
        """SELECT invoice_id, reason, line_id, count(*) AS n
             FROM holds JOIN unnest($1::text[]) AS wanted(invoice_id) USING (invoice_id)
            GROUP BY invoice_id, reason, line_id""",
        ids,
    )
    for r in counts:
        loaded.holds_opened[(r["invoice_id"], r["reason"], r["line_id"])] = r["n"]


def hold_from(r: Any) -> Hold:
    return Hold(
        hold_id=r["hold_id"],
        invoice_id=r["invoice_id"],
        group=r["match_group"],
        po_number=r["po_number"],
        line_id=r["line_id"],
        reason=r["reason"],
        queue=r["queue"],
        action=r["action"],
        owner=r["owner"],
        opened_at=r["opened_at"],
        due_by=r["due_by"],
        evidence_required=tuple(r["evidence_required"]),
        next_action=r["next_action"],
        opened_by_event_id=r["opened_by_event_id"],
        status=r["status"],
        released_at=r["released_at"],
        released_by=r["released_by"],
        releasing_event_id=r["releasing_event_id"],
        override_id=r["override_id"],
        approved_by=r["approved_by"],
        lapsed_override_id=r["lapsed_override_id"],
    )


async def _load_requesters(conn: asyncpg.Connection, loaded: Loaded, requisition_ids: list[str]) -> None:
    if not requisition_ids:
        return
    rows = await conn.fetch(
        """SELECT requisition_id, requested_by
             FROM requisitions JOIN unnest($1::text[]) AS wanted(requisition_id) USING (requisition_id)""",
        requisition_ids,
    )
    loaded.requesters.update((r["requisition_id"], r["requested_by"]) for r in rows)


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


_HOLD_COLUMNS = (
    "hold_id, invoice_id, match_group, po_number, line_id, reason, queue, action, owner, opened_at, due_by, "
    "evidence_required, next_action, opened_by_event_id, status, released_at, released_by, "
    "releasing_event_id, override_id, approved_by, lapsed_override_id"
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
        """SELECT * FROM holds WHERE status = 'open' AND escalated_at IS NULL AND due_by < $1
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
