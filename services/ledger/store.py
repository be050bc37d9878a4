"""The SQL the ledger needs, in one place. Functions take a connection (the batch's transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.ledger import domain as d

# --- journal -----------------------------------------------------------------------------


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
    )


async def insert_entry(
    conn: asyncpg.Connection,
    entry: d.Entry,
    *,
    entry_id: str,
    source_event_id: str,
    source_event_type: str,
    posted_at: datetime,
) -> bool:
    """Append one entry and its lines; False (and nothing written) if this source event or
    business fact was already posted, or the reversed entry was already reversed."""
    # One round trip: the entry and its lines in one statement (the balance check is deferred
    # to commit); nothing is inserted into journal_lines when the entry already existed.
    inserted: int = await conn.fetchval(
        """WITH entry AS (
               INSERT INTO journal_entries (entry_id, source_event_id, source_event_type, fact_key, kind,
                                            description, posted_at, links, po_number, payout_id,
                                            invoice_ids, receipt_ids, reverses_entry_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
               ON CONFLICT DO NOTHING
               RETURNING entry_id
           ), lines AS (
               INSERT INTO journal_lines (entry_id, line_no, account, currency, debit, credit)
               SELECT entry.entry_id, line.line_no, line.account, line.currency, line.debit, line.credit
                 FROM entry,
                      unnest($14::text[], $15::text[], $16::numeric[], $17::numeric[])
                          WITH ORDINALITY AS line(account, currency, debit, credit, line_no)
           )
           SELECT count(*) FROM entry""",
        entry_id,
        source_event_id,
        source_event_type,
        entry.fact_key,
        entry.kind,
        entry.description,
        posted_at,
        links_json(entry.links),
        entry.links.po_number,
        entry.links.payout_id,
        list(entry.links.invoice_ids),
        list(entry.links.receipt_ids),
        entry.reverses_entry_id,
        [ln.account for ln in entry.lines],
        [ln.currency for ln in entry.lines],
        [ln.debit for ln in entry.lines],
        [ln.credit for ln in entry.lines],
    )
    return inserted == 1


# Lookups that need an entry fetch it with its lines, in line order, in the same row: one round
# trip. Parallel arrays rather than JSON keep debit and credit exact numerics.
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


# --- documents: requisitions and POs -----------------------------------------------------


async def save_requisition(
    conn: asyncpg.Connection,
    *,
    requisition_id: str,
    legal_entity: str,
    business_unit: str,
    currency: str,
    amount: Decimal,
    requested_by: str,
    approved_by: str,
    approved_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO requisitions (requisition_id, legal_entity, business_unit, currency, amount,
                                     requested_by, approved_by, approved_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (requisition_id) DO UPDATE SET
               legal_entity = EXCLUDED.legal_entity, business_unit = EXCLUDED.business_unit,
               currency = EXCLUDED.currency, amount = EXCLUDED.amount,
               requested_by = EXCLUDED.requested_by, approved_by = EXCLUDED.approved_by,
               approved_at = EXCLUDED.approved_at""",
        requisition_id,
        legal_entity,
        business_unit,
        currency,
        amount,
        requested_by,
        approved_by,
        approved_at,
    )


async def close_requisition(
    conn: asyncpg.Connection, requisition_id: str, closed_by: str, reason: str, closed_at: datetime
) -> None:
    await conn.execute(
        """INSERT INTO requisitions (requisition_id, closed_by, closed_reason, closed_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (requisition_id) DO UPDATE SET
               closed_by = EXCLUDED.closed_by, closed_reason = EXCLUDED.closed_reason,
               closed_at = EXCLUDED.closed_at""",
        requisition_id,
        closed_by,
        reason,
        closed_at,
    )


async def save_po_version(conn: asyncpg.Connection, version: dict[str, Any]) -> tuple[d.PurchaseOrder, bool]:
    """`version` is the `purchase_order.version_in_force` payload (JSON mode). Returns the PO in
    force once it is saved (the latest version we know: intake publishes versions in order, once
    in force) and whether receipts are waiting for it, so the handler needs no further reads."""
    po = version["po"]
    row = await conn.fetchrow(
        """WITH saved AS (
               INSERT INTO po_versions (po_number, version, legal_entity, business_unit, payee_id, currency,
                                        requisition_id, created_by, approved_by, approved_at, amended_by,
                                        modification_id, reason, changes, in_force_since, state)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
               ON CONFLICT (po_number, version) DO NOTHING
               RETURNING version, state
           ), known AS (
               -- the statement's snapshot does not show the row `saved` inserts: add it
               SELECT version, state FROM saved
               UNION ALL
               SELECT version, state FROM po_versions WHERE po_number = $1
           )
           SELECT version, state,
                  EXISTS (SELECT 1 FROM receipts WHERE po_number = $1 AND status = 'pending')
                      AS receipts_pending
             FROM known ORDER BY version DESC LIMIT 1""",
        po["po_number"],
        po["version"],
        po["legal_entity"],
        po["business_unit"],
        po["payee_id"],
        po["currency"],
        po.get("requisition_id"),
        po["created_by"],
        po["approved_by"],
        datetime.fromisoformat(po["approved_at"]),
        version.get("amended_by"),
        version.get("modification_id"),
        version.get("reason"),
        version.get("changes") or [],
        datetime.fromisoformat(version["in_force_since"]),
        po,
    )
    assert row is not None  # `known` holds at least the version just saved
    return _po(po["po_number"], row), row["receipts_pending"]


async def pos_in_force(conn: asyncpg.Connection, po_numbers: Sequence[str]) -> dict[str, d.PurchaseOrder]:
    """The PO in force (the latest version we know) of each PO we know, in one round trip."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (po_number) po_number, version, state
             FROM po_versions JOIN unnest($1::text[]) AS wanted(po_number) USING (po_number)
            ORDER BY po_number, version DESC""",
        list(po_numbers),
    )
    return {r["po_number"]: _po(r["po_number"], r) for r in rows}


def _po(po_number: str, row: asyncpg.Record) -> d.PurchaseOrder:
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


async def save_pending_amendment(
    conn: asyncpg.Connection,
    *,
    po_number: str,
    version: int,
    modification_id: str | None,
    amended_by: str,
    reason: str,
    recorded_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO po_amendments_pending
               (po_number, version, modification_id, amended_by, reason, recorded_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
        po_number,
        version,
        modification_id,
        amended_by,
        reason,
        recorded_at,
    )


async def save_po_closure(
    conn: asyncpg.Connection, po_number: str, closed_by: str, reason: str, closed_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO po_closures (po_number, closed_by, reason, closed_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING",
        po_number,
        closed_by,
        reason,
        closed_at,
    )


# --- receipts -----------------------------------------------------------------------------


def _receipt(row: asyncpg.Record) -> d.Receipt:
    return d.Receipt(
        receipt_id=row["receipt_id"],
        po_number=row["po_number"],
        lines=tuple(d.ReceiptLine(ln["po_line_id"], Decimal(ln["quantity"])) for ln in row["lines"] or ()),
        recorded_by=row["recorded_by"],
    )


async def receipt_state_and_po(
    conn: asyncpg.Connection, receipt_id: str, po_number: str
) -> tuple[d.ReceiptState | None, d.PurchaseOrder | None]:
    """Where the receipt stands, and its PO in force (the latest version we know): a receipt
    needs both, so they come in one round trip."""
    row = await conn.fetchrow(
        """SELECT r.status, r.entry_id, po.version, po.state
             FROM (VALUES ($1::text, $2::text)) AS asked(receipt_id, po_number)
             LEFT JOIN receipts r ON r.receipt_id = asked.receipt_id
             LEFT JOIN LATERAL (
                 SELECT version, state FROM po_versions p WHERE p.po_number = asked.po_number
                  ORDER BY version DESC LIMIT 1
             ) AS po ON true""",
        receipt_id,
        po_number,
    )
    assert row is not None  # one row for the one `asked`
    state = d.ReceiptState(receipt_id, row["status"], row["entry_id"]) if row["status"] is not None else None
    po = _po(po_number, row) if row["version"] is not None else None
    return state, po


async def receipt_state_and_entry(
    conn: asyncpg.Connection, receipt_id: str
) -> tuple[d.ReceiptState | None, d.Entry | None]:
    """Where the receipt stands and, if it is posted, its entry: what a reversal reverses."""
    row = await conn.fetchrow(
        f"""SELECT r.status, r.entry_id, {_ENTRY_COLUMNS}
              FROM receipts r
              LEFT JOIN journal_entries e ON e.entry_id = r.entry_id AND r.status = 'posted'
              LEFT JOIN {_LINES_OF_E} ON true
             WHERE r.receipt_id = $1""",
        receipt_id,
    )
    if row is None:
        return None, None
    entry = _entry(row) if row["kind"] is not None else None
    return d.ReceiptState(receipt_id, row["status"], row["entry_id"]), entry


async def save_receipt(
    conn: asyncpg.Connection,
    *,
    receipt: dict[str, Any],
    source_event_id: str,
    source_event_type: str,
    status: str,
    entry_id: str | None,
) -> None:
    """`receipt` is the `receipt.accepted` payload (JSON mode). A reversal seen first keeps its
    status: the receipt's details are filled in, nothing is posted."""
    await conn.execute(
        """INSERT INTO receipts (receipt_id, po_number, kind, received_at, recorded_by, lines,
                                 source_event_id, source_event_type, status, entry_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (receipt_id) DO UPDATE SET
               kind = EXCLUDED.kind, received_at = EXCLUDED.received_at,
               recorded_by = EXCLUDED.recorded_by, lines = EXCLUDED.lines,
               -- the first event that carried the receipt names its entry, whichever arrives later
               source_event_id = coalesce(receipts.source_event_id, EXCLUDED.source_event_id),
               source_event_type = coalesce(receipts.source_event_type, EXCLUDED.source_event_type)""",
        receipt["receipt_id"],
        receipt["po_number"],
        receipt["kind"],
        datetime.fromisoformat(receipt["received_at"]),
        receipt["recorded_by"],
        receipt["lines"],
        source_event_id,
        source_event_type,
        status,
        entry_id,
    )


async def set_receipt_status(
    conn: asyncpg.Connection, receipt_id: str, status: str, entry_id: str | None = None
) -> None:
    await conn.execute(
        "UPDATE receipts SET status = $2, entry_id = coalesce($3, entry_id) WHERE receipt_id = $1",
        receipt_id,
        status,
        entry_id,
    )


async def record_receipt_reversal(
    conn: asyncpg.Connection,
    *,
    receipt_id: str,
    po_number: str,
    reversed_by: str,
    reason: str,
    reversed_at: datetime,
    status: str,
) -> None:
    await conn.execute(
        """INSERT INTO receipts (receipt_id, po_number, status, reversed_by, reversal_reason, reversed_at)
           VALUES ($1, $2, $6, $3, $4, $5)
           ON CONFLICT (receipt_id) DO UPDATE SET
               status = EXCLUDED.status, reversed_by = EXCLUDED.reversed_by,
               reversal_reason = EXCLUDED.reversal_reason, reversed_at = EXCLUDED.reversed_at""",
        receipt_id,
        po_number,
        reversed_by,
        reason,
        reversed_at,
        status,
    )


async def pending_receipts(conn: asyncpg.Connection, po_number: str) -> list[tuple[d.Receipt, str, str]]:
    """Receipts waiting for their PO: (receipt, source_event_id, source_event_type), oldest first."""
    rows = await conn.fetch(
        """SELECT receipt_id, po_number, recorded_by, lines, source_event_id, source_event_type
             FROM receipts WHERE po_number = $1 AND status = 'pending'
            ORDER BY received_at, receipt_id FOR UPDATE""",
        po_number,
    )
    return [(_receipt(r), r["source_event_id"], r["source_event_type"]) for r in rows]


async def posted_receipts_of(
    conn: asyncpg.Connection, po_numbers: Sequence[str]
) -> dict[str, list[d.Receipt]]:
    """Each PO's receipts whose accrual is in the journal (not pending, reversed or dropped), in
    one round trip."""
    rows = await conn.fetch(
        """SELECT receipt_id, po_number, recorded_by, lines
             FROM receipts JOIN unnest($1::text[]) AS wanted(po_number) USING (po_number)
            WHERE status = 'posted' ORDER BY po_number, receipt_id""",
        list(po_numbers),
    )
    receipts: dict[str, list[d.Receipt]] = {po: [] for po in po_numbers}
    for r in rows:
        receipts[r["po_number"]].append(_receipt(r))
    return receipts


async def approvals_in_force_of(
    conn: asyncpg.Connection, po_numbers: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Each PO's `invoice.approved_to_pay` payloads in force (the latest approval of each invoice,
    unless revoked since), as the journal recorded them, in one round trip."""
    current: dict[str, dict[str, dict[str, Any]]] = {po: {} for po in po_numbers}
    for row in await conn.fetch(
        """SELECT po_number, invoice_id, kind, payload
             FROM decisions JOIN unnest($1::text[]) AS wanted(po_number) USING (po_number)
            ORDER BY seq""",
        list(po_numbers),
    ):
        _apply_decision(current[row["po_number"]], row)
    return {po: list(approvals.values()) for po, approvals in current.items()}


def _apply_decision(current: dict[str, dict[str, Any]], row: asyncpg.Record) -> None:
    if row["kind"] == "approved_to_pay":
        current[row["invoice_id"]] = dict(row["payload"])
    elif row["kind"] == "approval_revoked":
        current.pop(row["invoice_id"], None)


# --- invoices and decisions ---------------------------------------------------------------


async def save_invoice(conn: asyncpg.Connection, invoice: dict[str, Any], accepted_at: datetime) -> None:
    """`invoice` is the `invoice.accepted` payload (JSON mode)."""
    await conn.execute(
        """INSERT INTO invoices (invoice_id, supplier_invoice_number, payee_id, legal_entity, document_type,
                                 issue_date, currency, po_number, business_unit, total_amount,
                                 payable_amount, origin, accepted_at, document)
           VALUES ($1, $2, $3, $4, $5, $6::text::date, $7, $8, $9, $10, $11, $12, $13, $14)
           ON CONFLICT (invoice_id) DO NOTHING""",
        invoice["invoice_id"],
        invoice["supplier_invoice_number"],
        invoice["payee_id"],
        invoice["legal_entity"],
        invoice["document_type"],
        invoice["issue_date"],
        invoice["currency"],
        invoice.get("po_number"),
        invoice.get("business_unit"),
        Decimal(invoice["total_amount"]),
        Decimal(invoice["payable_amount"]),
        invoice["origin"],
        accepted_at,
        invoice,
    )


_INSERT_DECISION = """
    INSERT INTO decisions (source_event_id, invoice_id, kind, decision_id, po_number, po_version,
                           payee_id, currency, payable_amount, document_type, decided_at, payload)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (source_event_id) DO NOTHING"""


def _decision_args(source_event_id: str, kind: str, payload: dict[str, Any]) -> tuple[Any, ...]:
    """_INSERT_DECISION's parameters; $2 is the invoice id."""
    decided_at = payload.get("decided_at")
    return (
        source_event_id,
        payload["invoice_id"],
        kind,
        payload.get("decision_id"),
        payload.get("po_number"),
        payload.get("po_version"),
        payload.get("payee_id"),
        payload.get("currency"),
        Decimal(payload["payable_amount"]) if payload.get("payable_amount") is not None else None,
        payload.get("document_type"),
        datetime.fromisoformat(decided_at) if decided_at else None,
        payload,
    )


async def save_decision(
    conn: asyncpg.Connection,
    *,
    source_event_id: str,
    kind: str,
    payload: dict[str, Any],
) -> None:
    """`payload` is the decision event's data (JSON mode); common fields are lifted into columns."""
    await conn.execute(_INSERT_DECISION, *_decision_args(source_event_id, kind, payload))


async def save_decision_and_active_approval(
    conn: asyncpg.Connection,
    *,
    source_event_id: str,
    kind: str,
    payload: dict[str, Any],
) -> tuple[str, d.Entry] | None:
    """save_decision, and the invoice's approval entry still in force (posted and not reversed),
    if any, with its id. Every approval and revocation needs both: one round trip. The insert
    touches only `decisions`, so the journal read sees what it would see after it."""
    row = await conn.fetchrow(
        f"""WITH saved AS ({_INSERT_DECISION})
           SELECT e.entry_id, {_ENTRY_COLUMNS}
             FROM (SELECT * FROM journal_entries a
                    WHERE a.kind = 'invoice_approval' AND a.invoice_ids @> ARRAY[$2::text]
                      AND NOT EXISTS (SELECT 1 FROM journal_entries r WHERE r.reverses_entry_id = a.entry_id)
                    ORDER BY a.posted_at DESC, a.entry_id DESC LIMIT 1) AS e
            CROSS JOIN {_LINES_OF_E}""",
        *_decision_args(source_event_id, kind, payload),
    )
    return (row["entry_id"], _entry(row)) if row is not None else None


# --- payouts, funding, eligibility ---------------------------------------------------------


async def save_payout(conn: asyncpg.Connection, payout: dict[str, Any]) -> None:
    """`payout` is the `payout.released` payload (JSON mode)."""
    await conn.execute(
        """INSERT INTO payouts (payout_id, run_id, payee_id, legal_entity, funding_account_id, currency,
                                amount, invoices, invoice_ids, released_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (payout_id) DO NOTHING""",
        payout["payout_id"],
        payout["run_id"],
        payout["payee_id"],
        payout["legal_entity"],
        payout["funding_account_id"],
        payout["currency"],
        Decimal(payout["amount"]),
        payout["invoices"],
        [i["invoice_id"] for i in payout["invoices"]],
        datetime.fromisoformat(payout["released_at"]),
    )


async def save_payout_outcome(conn: asyncpg.Connection, outcome: str, event: dict[str, Any]) -> None:
    """`event` is a payout.*_recorded payload (JSON mode); outcome settled | failed | returned."""
    await conn.execute(
        """INSERT INTO payout_outcomes (rail_event_id, payout_id, outcome, payee_id, funding_account_id,
                                        currency, amount, invoice_ids, at, failure_code, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (rail_event_id) DO NOTHING""",
        event["rail_event_id"],
        event["payout_id"],
        outcome,
        event["payee_id"],
        event["funding_account_id"],
        event["currency"],
        Decimal(event["amount"]),
        list(event.get("invoice_ids") or ()),
        datetime.fromisoformat(event["at"]),
        event.get("failure_code"),
        event.get("reason"),
    )


async def funding_account_owner(conn: asyncpg.Connection, account_id: str) -> tuple[str, str] | None:
    """The (legal_entity, currency) an account's recorded funding is for; None before any.
    Only funding for the account's own pair is recorded, so every row agrees."""
    row = await conn.fetchrow(
        "SELECT legal_entity, currency FROM funding_receipts WHERE account_id = $1 LIMIT 1", account_id
    )
    return None if row is None else (row["legal_entity"], row["currency"])


async def save_funding(
    conn: asyncpg.Connection,
    *,
    funding_id: str,
    account_id: str,
    legal_entity: str,
    currency: str,
    amount: Decimal,
    received_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO funding_receipts (funding_id, account_id, legal_entity, currency, amount, received_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
        funding_id,
        account_id,
        legal_entity,
        currency,
        amount,
        received_at,
    )


async def save_eligibility(conn: asyncpg.Connection, event: dict[str, Any]) -> None:
    """Keep the latest evaluation per payee; an older one arriving late does not win."""
    await conn.execute(
        """INSERT INTO payee_eligibility (payee_id, eligible, reasons, profile_version, evaluated_at,
                                          country, entity_type, reportable_1099_nec)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (payee_id) DO UPDATE SET
               eligible = EXCLUDED.eligible, reasons = EXCLUDED.reasons,
               profile_version = EXCLUDED.profile_version, evaluated_at = EXCLUDED.evaluated_at,
               country = coalesce(EXCLUDED.country, payee_eligibility.country),
               entity_type = coalesce(EXCLUDED.entity_type, payee_eligibility.entity_type),
               reportable_1099_nec = EXCLUDED.reportable_1099_nec
           WHERE payee_eligibility.evaluated_at <= EXCLUDED.evaluated_at""",
        event["payee_id"],
        event["eligible"],
        list(event.get("reasons") or ()),
        event.get("profile_version"),
        datetime.fromisoformat(event["evaluated_at"]),
        event.get("country"),
        event.get("entity_type"),
        bool(event.get("reportable_1099_nec")),
    )


async def lock_grni_of(conn: asyncpg.Connection, po_numbers: Sequence[str]) -> None:
    """Until this transaction ends, no other truing up of these POs' GRNI: two transactions (two
    consumers of one group, or two topics of one process) that each read the balance before the
    other commits would each post the same correction. In a fixed order, so two never deadlock."""
    for po_number in sorted(set(po_numbers)):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"ledger:grni:{po_number}")


async def grni_balances(
    conn: asyncpg.Connection, po_numbers: Sequence[str]
) -> dict[tuple[str, str], Decimal]:
    """(PO, currency) → the PO's GRNI in the journal as a credit balance, for many POs at once."""
    rows = await conn.fetch(
        """SELECT e.po_number, l.currency, sum(l.credit) - sum(l.debit) AS balance
             FROM journal_entries e
             JOIN unnest($1::text[]) AS wanted(po_number) USING (po_number)
             JOIN journal_lines l USING (entry_id)
            WHERE l.account = 'liability:grni'
            GROUP BY e.po_number, l.currency""",
        list(po_numbers),
    )
    return {(r["po_number"], r["currency"]): Decimal(r["balance"]) for r in rows}
