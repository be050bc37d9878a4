"""trace (SPEC §9): from an entry, invoice, payout or PO back to the documents, approvals,
holds, overrides and payouts behind it — the launch check."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal

import asyncpg

from services.ledger import domain as d
from services.ledger.queries.decisions import (
    approvals_from,
    decision_view,
    holds_from_decisions,
    overrides_from_decisions,
)
from services.ledger.queries.views import (
    EntryView,
    ExpediteView,
    InvoiceView,
    PayoutOutcomeView,
    PayoutView,
    PoVersionView,
    ReceiptView,
    TermsView,
    Trace,
)
from services.ledger.store import links_from_json
from shared.payment_terms import discount_window_end, due_date, parse_terms

ZERO = Decimal(0)


# --- trace ----------------------------------------------------------------------------------


async def _ref_kind(conn: asyncpg.Connection, ref: str) -> str | None:
    checks = (
        ("entry", "SELECT 1 FROM journal_entries WHERE entry_id = $1"),
        (
            "invoice",
            "SELECT 1 FROM invoices WHERE invoice_id = $1 "
            "UNION ALL SELECT 1 FROM decisions WHERE invoice_id = $1",
        ),
        ("payout", "SELECT 1 FROM payouts WHERE payout_id = $1"),
        (
            "po",
            "SELECT 1 FROM po_versions WHERE po_number = $1 "
            "UNION ALL SELECT 1 FROM receipts WHERE po_number = $1",
        ),
    )
    for kind, sql in checks:
        if await conn.fetchval(f"SELECT EXISTS ({sql})", ref):
            return kind
    return None


async def trace(conn: asyncpg.Connection, ref: str) -> Trace:
    """The chain behind an entry_id, invoice_id, payout_id or po_number: PO versions and their
    approvers, receipts, invoices, matching decisions and holds, overrides, approvals,
    payouts with their rail outcomes, and every journal entry linked to them."""
    kind = await _ref_kind(conn, ref)
    if kind is None:
        return Trace(ref, None)
    invoice_ids: set[str] = set()
    payout_ids: set[str] = set()
    po_numbers: set[str] = set()
    receipt_ids: set[str] = set()
    if kind == "entry":
        row = await conn.fetchrow(
            "SELECT po_number, payout_id, invoice_ids, receipt_ids FROM journal_entries WHERE entry_id = $1",
            ref,
        )
        invoice_ids.update(row["invoice_ids"])
        receipt_ids.update(row["receipt_ids"])
        if row["payout_id"]:
            payout_ids.add(row["payout_id"])
        if row["po_number"]:
            po_numbers.add(row["po_number"])
    elif kind == "invoice":
        invoice_ids.add(ref)
    elif kind == "payout":
        payout_ids.add(ref)
    else:
        po_numbers.add(ref)
        invoice_ids.update(
            r["invoice_id"]
            for r in await conn.fetch(
                "SELECT invoice_id FROM invoices WHERE po_number = $1 "
                "UNION SELECT invoice_id FROM decisions WHERE po_number = $1",
                ref,
            )
        )
    # a payout → the invoices it paid; invoices → their PO and every payout that carried them
    invoice_ids.update(
        r["i"]
        for r in await conn.fetch(
            "SELECT unnest(invoice_ids) AS i FROM payouts WHERE payout_id = ANY($1)", list(payout_ids)
        )
    )
    po_numbers.update(
        r["po_number"]
        for r in await conn.fetch(
            "SELECT po_number FROM invoices WHERE invoice_id = ANY($1) AND po_number IS NOT NULL "
            "UNION SELECT po_number FROM decisions WHERE invoice_id = ANY($1) AND po_number IS NOT NULL",
            list(invoice_ids),
        )
    )
    payout_ids.update(
        r["payout_id"]
        for r in await conn.fetch(
            "SELECT payout_id FROM payouts WHERE invoice_ids && $1::text[]", list(invoice_ids)
        )
    )
    receipts = await _receipts(conn, po_numbers, receipt_ids)
    receipt_ids.update(r.receipt_id for r in receipts)
    po_versions = await _po_versions(conn, po_numbers)
    decision_rows = await conn.fetch(
        "SELECT * FROM decisions WHERE invoice_id = ANY($1) ORDER BY seq", list(invoice_ids)
    )
    entries = await _entries(conn, ref if kind == "entry" else None, invoice_ids, payout_ids, receipt_ids)
    invoices = await _invoices(conn, invoice_ids)
    return Trace(
        ref=ref,
        ref_kind=kind,
        po_versions=tuple(po_versions),
        receipts=tuple(receipts),
        invoices=tuple(invoices),
        decisions=tuple(decision_view(r) for r in decision_rows),
        holds=tuple(holds_from_decisions(decision_rows)),
        overrides=tuple(overrides_from_decisions(decision_rows)),
        approvals=tuple(approvals_from(po_versions, decision_rows)),
        payouts=tuple(await _payouts(conn, payout_ids)),
        entries=tuple(entries),
        terms=tuple(terms_of(invoices, po_versions)),
    )


async def _receipts(
    conn: asyncpg.Connection, po_numbers: set[str], receipt_ids: set[str]
) -> list[ReceiptView]:
    rows = await conn.fetch(
        """SELECT * FROM receipts WHERE po_number = ANY($1) OR receipt_id = ANY($2)
            ORDER BY received_at NULLS LAST, receipt_id""",
        list(po_numbers),
        list(receipt_ids),
    )
    return [
        ReceiptView(
            r["receipt_id"],
            r["po_number"],
            r["kind"],
            r["received_at"],
            r["recorded_by"],
            r["status"],
            r["entry_id"],
            r["reversed_by"],
            r["reversal_reason"],
        )
        for r in rows
    ]


async def _po_versions(conn: asyncpg.Connection, po_numbers: set[str]) -> list[PoVersionView]:
    rows = await conn.fetch(
        "SELECT * FROM po_versions WHERE po_number = ANY($1) ORDER BY po_number, version", list(po_numbers)
    )
    return [
        PoVersionView(
            r["po_number"],
            r["version"],
            r["business_unit"],
            r["payee_id"],
            r["currency"],
            r["created_by"],
            r["approved_by"],
            r["approved_at"],
            r["amended_by"],
            r["modification_id"],
            r["reason"],
            tuple(r["changes"] or ()),
            r["in_force_since"],
            r["state"].get("sow_ref"),
            r["state"].get("payment_terms"),
            r["state"].get("approval_limit"),
        )
        for r in rows
    ]


def terms_of(invoices: Iterable[InvoiceView], po_versions: Iterable[PoVersionView]) -> list[TermsView]:
    """Each invoice's terms, from its PO's latest version (SPEC §13.5; a no-PO invoice has none:
    due on receipt, and the note says so)."""
    latest: dict[str, PoVersionView] = {}
    for v in po_versions:
        if v.po_number not in latest or latest[v.po_number].version < v.version:
            latest[v.po_number] = v
    out = []
    for inv in invoices:
        po = latest.get(inv.po_number or "")
        text = po.payment_terms if po is not None else None
        terms = parse_terms(text)
        out.append(
            TermsView(
                inv.invoice_id,
                text,
                due_date(inv.issue_date, terms),
                discount_window_end(inv.issue_date, terms),
                terms.discount_percent,
                terms.note,
            )
        )
    return out


async def _invoices(conn: asyncpg.Connection, invoice_ids: set[str]) -> list[InvoiceView]:
    rows = await conn.fetch(
        "SELECT * FROM invoices WHERE invoice_id = ANY($1) ORDER BY invoice_id", list(invoice_ids)
    )
    return [
        InvoiceView(
            r["invoice_id"],
            r["supplier_invoice_number"],
            r["payee_id"],
            r["legal_entity"],
            r["document_type"],
            r["issue_date"],
            r["currency"],
            r["po_number"],
            r["total_amount"],
            r["payable_amount"],
            r["origin"],
        )
        for r in rows
    ]


async def _payouts(conn: asyncpg.Connection, payout_ids: set[str]) -> list[PayoutView]:
    rows = await conn.fetch(
        "SELECT * FROM payouts WHERE payout_id = ANY($1) ORDER BY released_at", list(payout_ids)
    )
    outcomes: dict[str, list[PayoutOutcomeView]] = defaultdict(list)
    for o in await conn.fetch(
        "SELECT * FROM payout_outcomes WHERE payout_id = ANY($1) ORDER BY at", list(payout_ids)
    ):
        outcomes[o["payout_id"]].append(
            PayoutOutcomeView(
                o["rail_event_id"], o["outcome"], o["amount"], o["at"], o["failure_code"], o["reason"]
            )
        )
    return [
        PayoutView(
            r["payout_id"],
            r["run_id"],
            r["payee_id"],
            r["funding_account_id"],
            r["currency"],
            r["amount"],
            tuple((i["invoice_id"], Decimal(i["amount"])) for i in r["invoices"]),
            r["released_at"],
            tuple(outcomes[r["payout_id"]]),
            tuple((i["invoice_id"], Decimal(i["discount"])) for i in r["invoices"] if i.get("discount")),
            ExpediteView(**r["expedite"]) if r["expedite"] else None,
        )
        for r in rows
    ]


async def _entries(
    conn: asyncpg.Connection,
    entry_id: str | None,
    invoice_ids: set[str],
    payout_ids: set[str],
    receipt_ids: set[str],
) -> list[EntryView]:
    rows = await conn.fetch(
        """SELECT * FROM journal_entries
            WHERE entry_id = $1 OR invoice_ids && $2::text[] OR payout_id = ANY($3)
               OR receipt_ids && $4::text[]
            ORDER BY posted_at, entry_id""",
        entry_id,
        list(invoice_ids),
        list(payout_ids),
        list(receipt_ids),
    )
    return await _entry_views(conn, rows)


async def _entry_views(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> list[EntryView]:
    lines: dict[str, list[d.Line]] = defaultdict(list)
    for ln in await conn.fetch(
        "SELECT * FROM journal_lines WHERE entry_id = ANY($1) ORDER BY entry_id, line_no",
        [r["entry_id"] for r in rows],
    ):
        lines[ln["entry_id"]].append(d.Line(ln["account"], ln["currency"].strip(), ln["debit"], ln["credit"]))
    return [
        EntryView(
            r["entry_id"],
            r["kind"],
            r["source_event_id"],
            r["source_event_type"],
            r["description"],
            r["posted_at"],
            tuple(lines[r["entry_id"]]),
            links_from_json(r["links"]),
            r["reverses_entry_id"],
        )
        for r in rows
    ]


async def entries(conn: asyncpg.Connection) -> list[EntryView]:
    """The whole journal in posting order (for exports and tests)."""
    return await _entry_views(
        conn, await conn.fetch("SELECT * FROM journal_entries ORDER BY posted_at, entry_id")
    )


# pure: decisions → views ---------------------------------------------------------------------
