"""Reconciliation (SPEC §9): per PO ordered vs received vs approved vs paid; open holds by
reason and age; GRNI and in-transit ageing; stale requisitions; service states vs journal."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from services.ledger import domain as d
from services.ledger.queries.decisions import holds_from_decisions
from services.ledger.queries.invariants import current_approvals
from shared.envelope import utcnow
from shared.money import quantize_money
from shared.payment_terms import discount_window_end, due_date, parse_terms

ZERO = Decimal(0)


# --- reconciliation -----------------------------------------------------------------------


@dataclass(frozen=True)
class PoReconciliation:
    po_number: str
    version: int
    currency: str
    ordered: Decimal
    received: Decimal  # accrued to GRNI at the PO price in force, net of reversals (journal)
    approved: Decimal  # AP from approvals of its invoices, net of revocations (journal)
    paid: Decimal  # its invoices' shares of settled payouts not returned
    grni_outstanding: Decimal
    closed: bool


@dataclass(frozen=True)
class AgeingRow:
    ref: str  # po_number (GRNI) or payout_id (in transit)
    currency: str
    amount: Decimal
    age_days: int
    bucket: str


@dataclass(frozen=True)
class OpenHold:
    invoice_id: str
    hold_id: str
    reason: str
    queue: str
    age_days: int


@dataclass(frozen=True)
class StaleRequisition:
    requisition_id: str
    business_unit: str | None
    currency: str | None
    amount: Decimal | None
    approved_at: datetime
    age_days: int


@dataclass(frozen=True)
class Reconciliation:
    as_of: datetime
    purchase_orders: tuple[PoReconciliation, ...]
    grni_balance: dict[str, Decimal]  # currency → balance
    in_transit_balance: dict[str, Decimal]
    grni_ageing: tuple[AgeingRow, ...]
    in_transit_ageing: tuple[AgeingRow, ...]
    open_holds_by_reason: dict[str, tuple[OpenHold, ...]]
    stale_requisitions: tuple[StaleRequisition, ...]
    mismatches: tuple[str, ...] = field(default=())
    invoices_by_due_date: tuple[DueInvoice, ...] = field(default=())
    discounts_taken: tuple[DiscountTaken, ...] = field(default=())


@dataclass(frozen=True)
class DueInvoice:
    """An invoice by its due date under its PO's payment terms (SPEC §13.5)."""

    due_date: date
    invoice_id: str
    payee_id: str
    currency: str
    payable_amount: Decimal
    payment_terms: str | None
    discount_until: date | None
    status: str  # paid | released | approved | not approved
    note: str | None  # why the terms count as due on receipt


@dataclass(frozen=True)
class DiscountTaken:
    """An early-payment discount a live or settled payout took (SPEC §13.5)."""

    invoice_id: str
    payout_id: str
    currency: str
    discount: Decimal
    released_at: datetime


def ordered_value(state: Mapping[str, Any]) -> Decimal:
    """A PO version's ordered value: Σ quantity × unit price, each line rounded to the currency."""
    currency = state["currency"]
    return sum(
        (
            quantize_money(Decimal(ln["quantity"]) * Decimal(ln["unit_price"]), currency)
            for ln in state["lines"]
        ),
        ZERO,
    )


def age_days(since: datetime | None, now: datetime) -> int:
    return max(0, (now - since).days) if since is not None else 0


def paid_per_invoice(
    payouts: Iterable[Mapping[str, Any]], outcomes: Mapping[str, set[str]]
) -> dict[str, Decimal]:
    """invoice_id → its amount in payouts that settled and were not returned."""
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for p in payouts:
        seen = outcomes.get(p["payout_id"], set())
        if "settled" in seen and "returned" not in seen:
            for inv in p["invoices"]:
                paid[inv["invoice_id"]] += Decimal(inv["amount"])
    return dict(paid)


async def reconcile(
    conn: asyncpg.Connection,
    *,
    now: datetime | None = None,
    requisition_max_age: timedelta = timedelta(days=30),
) -> Reconciliation:
    """Per PO ordered/received/approved/paid, GRNI and in-transit balances and ageing, open
    holds by reason and age, approved requisitions neither converted nor closed after
    `requisition_max_age`, and mismatches between the documents and the journal."""
    now = now or utcnow()
    latest_po = {
        r["po_number"]: r
        for r in await conn.fetch(
            "SELECT DISTINCT ON (po_number) * FROM po_versions ORDER BY po_number, version DESC"
        )
    }
    closed = {r["po_number"] for r in await conn.fetch("SELECT po_number FROM po_closures")}
    per_po_journal: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in await conn.fetch(
        """SELECT e.po_number, e.kind, l.account, sum(l.credit) - sum(l.debit) AS net
             FROM journal_entries e JOIN journal_lines l USING (entry_id)
            WHERE e.po_number IS NOT NULL GROUP BY e.po_number, e.kind, l.account"""
    ):
        bucket = per_po_journal[r["po_number"]]
        if r["account"] == d.GRNI:
            bucket["grni"] += r["net"]
            if r["kind"] in ("receipt", "receipt_reversal", "receipt_revaluation", "grni_true_up"):
                bucket["received"] += r["net"]
        if r["account"].startswith(d.AP_PREFIX) and r["kind"] in ("invoice_approval", "approval_reversal"):
            bucket["approved"] += r["net"]
    outcomes: dict[str, set[str]] = defaultdict(set)
    for r in await conn.fetch("SELECT payout_id, outcome FROM payout_outcomes"):
        outcomes[r["payout_id"]].add(r["outcome"])
    payouts = await conn.fetch("SELECT * FROM payouts")
    paid = paid_per_invoice(payouts, outcomes)
    invoice_po = {
        r["invoice_id"]: r["po_number"]
        for r in await conn.fetch(
            "SELECT invoice_id, po_number FROM invoices WHERE po_number IS NOT NULL "
            "UNION SELECT invoice_id, po_number FROM decisions WHERE po_number IS NOT NULL"
        )
    }
    paid_po: dict[str, Decimal] = defaultdict(Decimal)
    for invoice_id, amount in paid.items():
        if invoice_id in invoice_po:
            paid_po[invoice_po[invoice_id]] += amount

    pos = tuple(
        PoReconciliation(
            po_number=po,
            version=row["version"],
            currency=row["currency"],
            ordered=ordered_value(row["state"]),
            received=per_po_journal[po]["received"],
            approved=per_po_journal[po]["approved"],
            paid=paid_po[po],
            grni_outstanding=per_po_journal[po]["grni"],
            closed=po in closed,
        )
        for po, row in sorted(latest_po.items())
    )

    balances = {
        (r["account"], r["currency"].strip()): r["balance"]
        for r in await conn.fetch(
            """SELECT account, currency, sum(credit) - sum(debit) AS balance FROM journal_lines
                WHERE account = ANY($1) GROUP BY account, currency""",
            [d.GRNI, d.IN_TRANSIT],
        )
    }
    oldest_receipt = {
        r["po_number"]: r["at"]
        for r in await conn.fetch(
            "SELECT po_number, min(received_at) AS at FROM receipts "
            "WHERE status = 'posted' GROUP BY po_number"
        )
    }
    grni_ageing = tuple(
        AgeingRow(
            p.po_number,
            p.currency,
            p.grni_outstanding,
            age_days(oldest_receipt.get(p.po_number), now),
            d.ageing_bucket(age_days(oldest_receipt.get(p.po_number), now)),
        )
        for p in pos
        if p.grni_outstanding != 0
    )
    in_transit_ageing = tuple(
        AgeingRow(
            p["payout_id"],
            p["currency"],
            p["amount"],
            age_days(p["released_at"], now),
            d.ageing_bucket(age_days(p["released_at"], now)),
        )
        for p in sorted(payouts, key=lambda p: p["released_at"])
        if not outcomes[p["payout_id"]] & {"settled", "failed"}
    )

    decision_rows = await conn.fetch("SELECT * FROM decisions ORDER BY seq")
    by_reason: dict[str, list[OpenHold]] = defaultdict(list)
    for h in holds_from_decisions(decision_rows):
        if h.open:
            by_reason[h.reason].append(
                OpenHold(h.invoice_id, h.hold_id, h.reason, h.queue, age_days(h.first_held_at, now))
            )

    stale = tuple(
        StaleRequisition(
            r["requisition_id"],
            r["business_unit"],
            r["currency"],
            r["amount"],
            r["approved_at"],
            age_days(r["approved_at"], now),
        )
        for r in await conn.fetch(
            """SELECT * FROM requisitions q
                WHERE q.approved_at IS NOT NULL AND q.approved_at < $1 AND q.closed_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM po_versions v WHERE v.requisition_id = q.requisition_id)
                ORDER BY q.approved_at""",
            now - requisition_max_age,
        )
    )
    return Reconciliation(
        as_of=now,
        purchase_orders=pos,
        grni_balance={c: b for (a, c), b in balances.items() if a == d.GRNI},
        in_transit_balance={c: b for (a, c), b in balances.items() if a == d.IN_TRANSIT},
        grni_ageing=grni_ageing,
        in_transit_ageing=in_transit_ageing,
        open_holds_by_reason={k: tuple(v) for k, v in sorted(by_reason.items())},
        stale_requisitions=stale,
        mismatches=tuple(await _mismatches(conn, decision_rows)),
        invoices_by_due_date=tuple(
            due_invoices(
                await conn.fetch("SELECT * FROM invoices WHERE document_type = 'invoice'"),
                latest_po,
                current_approvals(decision_rows),
                paid,
                released_invoices(payouts, outcomes),
            )
        ),
        discounts_taken=tuple(discounts_taken(payouts, outcomes)),
    )


def released_invoices(payouts: Iterable[Mapping[str, Any]], outcomes: Mapping[str, set[str]]) -> set[str]:
    """Invoices in a payout that has not failed or been returned."""
    return {
        inv["invoice_id"]
        for p in payouts
        if not outcomes.get(p["payout_id"], set()) & {"failed", "returned"}
        for inv in p["invoices"]
    }


def due_invoices(
    invoices: Iterable[Mapping[str, Any]],
    latest_po: Mapping[str, Mapping[str, Any]],
    approved: Mapping[str, Any],
    paid: Mapping[str, Decimal],
    released: set[str],
) -> list[DueInvoice]:
    """Every invoice with its due date and terms, soonest due first."""
    out = []
    for inv in invoices:
        po = latest_po.get(inv["po_number"] or "")
        text = po["state"].get("payment_terms") if po is not None else None
        terms = parse_terms(text)
        status = (
            "paid"
            if inv["invoice_id"] in paid
            else "released"
            if inv["invoice_id"] in released
            else "approved"
            if inv["invoice_id"] in approved
            else "not approved"
        )
        out.append(
            DueInvoice(
                due_date(inv["issue_date"], terms),
                inv["invoice_id"],
                inv["payee_id"],
                inv["currency"],
                inv["payable_amount"],
                text,
                discount_window_end(inv["issue_date"], terms),
                status,
                terms.note,
            )
        )
    return sorted(out, key=lambda i: (i.due_date, i.invoice_id))


def discounts_taken(
    payouts: Iterable[Mapping[str, Any]], outcomes: Mapping[str, set[str]]
) -> list[DiscountTaken]:
    return sorted(
        (
            DiscountTaken(
                inv["invoice_id"], p["payout_id"], p["currency"], Decimal(inv["discount"]), p["released_at"]
            )
            for p in payouts
            if not outcomes.get(p["payout_id"], set()) & {"failed", "returned"}
            for inv in p["invoices"]
            if inv.get("discount")
        ),
        key=lambda t: (t.released_at, t.invoice_id),
    )


async def _mismatches(conn: asyncpg.Connection, decision_rows: Sequence[asyncpg.Record]) -> list[str]:
    """Where a service's state (as the documents show it) and the journal disagree."""
    out: list[str] = []
    approved = current_approvals(decision_rows)
    active = {
        r["i"]
        for r in await conn.fetch(
            """SELECT unnest(e.invoice_ids) AS i FROM journal_entries e
                WHERE e.kind = 'invoice_approval'
                  AND NOT EXISTS (SELECT 1 FROM journal_entries r WHERE r.reverses_entry_id = e.entry_id)"""
        )
    }
    out += [
        f"invoice {i} is approved to pay but has no approval entry" for i in sorted(set(approved) - active)
    ]
    out += [f"invoice {i} has an approval entry but is not approved" for i in sorted(active - set(approved))]
    for r in await conn.fetch(
        """SELECT p.payout_id FROM payouts p
            WHERE NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.fact_key = 'release:' || p.payout_id)"""
    ):
        out.append(f"payout {r['payout_id']} was released but has no release entry")
    for r in await conn.fetch(
        """SELECT o.rail_event_id, o.payout_id FROM payout_outcomes o
            WHERE NOT EXISTS (SELECT 1 FROM journal_entries e
                               WHERE e.fact_key = 'rail:' || o.rail_event_id)"""
    ):
        out.append(f"payout {r['payout_id']} rail event {r['rail_event_id']} has no entry")
    for r in await conn.fetch(
        """SELECT r.receipt_id, r.po_number FROM receipts r
            WHERE r.status = 'pending'
              AND EXISTS (SELECT 1 FROM po_versions v WHERE v.po_number = r.po_number)"""
    ):
        out.append(f"receipt {r['receipt_id']} still pending although PO {r['po_number']} is known")
    return out
