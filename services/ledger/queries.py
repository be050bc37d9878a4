"""What the ledger answers (SPEC §9): trace, reconciliation, invariants, 1099-NEC totals.

Each query takes an asyncpg connection to the ledger database and returns dataclasses; the
SQL only fetches rows, the arithmetic is in pure functions below each query (unit-tested).
The CLI (`concord trace|reconcile`, `ledger check`), the tests and the chaos run call these.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from services.ledger import domain as d
from services.ledger.store import links_from_json
from shared.envelope import utcnow
from shared.money import quantize_money

ZERO = Decimal(0)

# --- views ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryView:
    entry_id: str
    kind: str
    source_event_id: str
    source_event_type: str
    description: str
    posted_at: datetime
    lines: tuple[d.Line, ...]
    links: d.Links
    reverses_entry_id: str | None


@dataclass(frozen=True)
class PoVersionView:
    po_number: str
    version: int
    business_unit: str
    payee_id: str
    currency: str
    created_by: str
    approved_by: str
    approved_at: datetime
    amended_by: str | None
    modification_id: str | None
    reason: str | None
    changes: tuple[str, ...]
    in_force_since: datetime
    sow_ref: dict[str, Any] | None


@dataclass(frozen=True)
class ReceiptView:
    receipt_id: str
    po_number: str
    kind: str | None
    received_at: datetime | None
    recorded_by: str | None
    status: str
    entry_id: str | None
    reversed_by: str | None
    reversal_reason: str | None


@dataclass(frozen=True)
class InvoiceView:
    invoice_id: str
    supplier_invoice_number: str
    payee_id: str
    legal_entity: str
    document_type: str
    issue_date: date
    currency: str
    po_number: str | None
    total_amount: Decimal
    payable_amount: Decimal
    origin: str


@dataclass(frozen=True)
class HoldView:
    invoice_id: str
    hold_id: str
    reason: str
    queue: str
    line_id: str | None
    action: str
    first_held_at: datetime | None
    open: bool


@dataclass(frozen=True)
class DecisionView:
    invoice_id: str
    kind: str  # approved_to_pay | approval_revoked | held | superseded
    decision_id: str | None
    po_version: int | None
    decided_at: datetime | None
    detail: str | None  # revocation reason, superseded_by, hold reasons


@dataclass(frozen=True)
class OverrideView:
    override_id: str
    invoice_id: str
    approved_by: str | None
    requested_by: str | None
    reason_code: str | None
    justification: str | None
    evidence: tuple[str, ...]
    hold_reasons: tuple[str, ...]


@dataclass(frozen=True)
class ApprovalView:
    by: str
    what: str
    role: str | None
    at: datetime | None
    source: str  # "po" (a PO version's approver) or the invoice id whose decision carried it


@dataclass(frozen=True)
class PayoutOutcomeView:
    rail_event_id: str
    outcome: str  # settled | failed | returned
    amount: Decimal
    at: datetime
    failure_code: str | None
    reason: str | None


@dataclass(frozen=True)
class PayoutView:
    payout_id: str
    run_id: str
    payee_id: str
    funding_account_id: str
    currency: str
    amount: Decimal
    invoices: tuple[tuple[str, Decimal], ...]
    released_at: datetime
    outcomes: tuple[PayoutOutcomeView, ...]


@dataclass(frozen=True)
class Trace:
    """Everything behind one reference: the launch check "why was this paid?"."""

    ref: str
    ref_kind: str | None  # entry | invoice | payout | po | None (unknown reference)
    po_versions: tuple[PoVersionView, ...] = ()
    receipts: tuple[ReceiptView, ...] = ()
    invoices: tuple[InvoiceView, ...] = ()
    decisions: tuple[DecisionView, ...] = ()
    holds: tuple[HoldView, ...] = ()
    overrides: tuple[OverrideView, ...] = ()
    approvals: tuple[ApprovalView, ...] = ()
    payouts: tuple[PayoutView, ...] = ()
    entries: tuple[EntryView, ...] = ()

    @property
    def found(self) -> bool:
        return self.ref_kind is not None


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
    return Trace(
        ref=ref,
        ref_kind=kind,
        po_versions=tuple(po_versions),
        receipts=tuple(receipts),
        invoices=tuple(await _invoices(conn, invoice_ids)),
        decisions=tuple(decision_view(r) for r in decision_rows),
        holds=tuple(holds_from_decisions(decision_rows)),
        overrides=tuple(overrides_from_decisions(decision_rows)),
        approvals=tuple(approvals_from(po_versions, decision_rows)),
        payouts=tuple(await _payouts(conn, payout_ids)),
        entries=tuple(entries),
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
        )
        for r in rows
    ]


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


def _ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def decision_view(row: Mapping[str, Any]) -> DecisionView:
    payload = row["payload"]
    detail: str | None = None
    if row["kind"] == "approval_revoked":
        detail = payload.get("reason")
    elif row["kind"] == "superseded":
        detail = f"superseded by {payload.get('superseded_by')}"
    elif row["kind"] == "held":
        detail = ", ".join(h["reason"] for h in payload.get("holds", ()))
    return DecisionView(
        row["invoice_id"], row["kind"], row["decision_id"], row["po_version"], row["decided_at"], detail
    )


def holds_from_decisions(rows: Iterable[Mapping[str, Any]]) -> list[HoldView]:
    """Every hold ever reported, with when it was first seen; open = still listed by the
    invoice's latest decision (an approval or supersession closes them all)."""
    first_seen: dict[tuple[str, str], tuple[Mapping[str, Any], datetime | None]] = {}
    latest_open: dict[str, set[str]] = {}
    for row in rows:  # in arrival order
        invoice_id = row["invoice_id"]
        if row["kind"] == "held":
            holds = row["payload"].get("holds", ())
            for h in holds:
                first_seen.setdefault((invoice_id, h["hold_id"]), (h, row["decided_at"]))
            latest_open[invoice_id] = {h["hold_id"] for h in holds}
        else:
            latest_open[invoice_id] = set()
    return [
        HoldView(
            invoice_id,
            hold_id,
            h["reason"],
            h["queue"],
            h.get("line_id"),
            h["action"],
            at,
            hold_id in latest_open.get(invoice_id, set()),
        )
        for (invoice_id, hold_id), (h, at) in first_seen.items()
    ]


def overrides_from_decisions(rows: Iterable[Mapping[str, Any]]) -> list[OverrideView]:
    """Overrides named by approvals: details from `overrides` when matching sent them, else the
    approver whose approval mentions the override id."""
    seen: dict[str, OverrideView] = {}
    for row in rows:
        if row["kind"] != "approved_to_pay":
            continue
        payload = row["payload"]
        for o in payload.get("overrides") or ():
            seen[o["override_id"]] = OverrideView(
                o["override_id"],
                row["invoice_id"],
                o.get("approved_by"),
                o.get("requested_by"),
                o.get("reason_code"),
                o.get("justification"),
                tuple(o.get("evidence") or ()),
                tuple(o.get("hold_reasons") or ()),
            )
        for override_id in payload.get("override_ids") or ():
            if override_id in seen:
                continue
            approver = next(
                (a for a in payload.get("approvals") or () if override_id in a.get("what", "")), None
            )
            seen[override_id] = OverrideView(
                override_id,
                row["invoice_id"],
                approver["by"] if approver else None,
                None,
                None,
                approver["what"] if approver else None,
                (),
                (),
            )
    return list(seen.values())


def approvals_from(
    po_versions: Iterable[PoVersionView], rows: Iterable[Mapping[str, Any]]
) -> list[ApprovalView]:
    """PO version approvers (with who created the version: segregation of duties at a glance),
    then the approvals each approval decision carried; a decision's repeat of a PO approver
    already listed is left out."""
    out = [
        ApprovalView(
            v.approved_by,
            f"PO {v.po_number} v{v.version} approved (created by {v.created_by})",
            "po_approver",
            v.approved_at,
            "po",
        )
        for v in po_versions
    ]
    po_approvers = {a.by for a in out}
    for row in rows:
        if row["kind"] != "approved_to_pay":
            continue
        for a in row["payload"].get("approvals") or ():
            if a.get("role") == "po_approver" and a["by"] in po_approvers:
                continue
            view = ApprovalView(a["by"], a["what"], a.get("role"), _ts(a.get("at")), row["invoice_id"])
            if view not in out:
                out.append(view)
    return out


# --- invariants (SPEC §9; TigerBeetle style: named once, checked in one function) -------------

INVARIANTS: dict[str, str] = {
    "entry_balances_per_currency": "every journal entry has ≥ 2 lines and debits = credits in each currency",
    "ap_is_approved_minus_released_plus_failed_returned": (
        "per payee and currency, the liability:ap balance = approved payables (net of revocations and credit"
        " notes) − payouts released + payouts failed + payouts returned"
    ),
    "in_transit_is_released_minus_settled_failed": (
        "per currency, liability:payouts_in_transit = payouts released − settled − failed"
    ),
    "no_source_event_posted_twice": (
        "a source event, a business fact, and a reversed entry each appear in at most one entry"
    ),
}


@dataclass(frozen=True)
class Violation:
    invariant: str  # a key of INVARIANTS
    detail: str


def current_approvals(rows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str, Decimal]]:
    """invoice_id → (payee, currency, signed payable) for invoices whose latest approval is not
    revoked; a credit note's payable counts negative. Rows in arrival order."""
    current: dict[str, tuple[str, str, Decimal]] = {}
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        # A decision re-published under a new event id posts nothing (its fact key is taken):
        # count each decision once, as the journal does.
        key = (row["invoice_id"], row["kind"], row["decision_id"] or "")
        if row["decision_id"] is not None and key in seen:
            continue
        seen.add(key)
        if row["kind"] == "approved_to_pay":
            sign = -1 if row["document_type"] == "credit_note" else 1
            current[row["invoice_id"]] = (row["payee_id"], row["currency"], sign * row["payable_amount"])
        elif row["kind"] == "approval_revoked":
            current.pop(row["invoice_id"], None)
    return current


def expected_ap(
    approvals: Mapping[str, tuple[str, str, Decimal]],
    released: Iterable[tuple[str, str, Decimal]],
    reinstated: Iterable[tuple[str, str, Decimal]],
) -> dict[tuple[str, ...], Decimal]:
    """(payee, currency) → approved − released + failed/returned."""
    out: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    for payee, currency, amount in approvals.values():
        out[(payee, currency)] += amount
    for payee, currency, amount in released:
        out[(payee, currency)] -= amount
    for payee, currency, amount in reinstated:
        out[(payee, currency)] += amount
    return dict(out)


async def check_invariants(conn: asyncpg.Connection) -> list[Violation]:
    """Every SPEC §9 invariant, checked against the journal and the documents it was posted
    from. An empty list means the ledger proves them all right now."""
    violations: list[Violation] = []

    # entry_balances_per_currency
    for r in await conn.fetch(
        """SELECT entry_id, currency, sum(debit) - sum(credit) AS net FROM journal_lines
            GROUP BY entry_id, currency HAVING sum(debit) <> sum(credit)"""
    ):
        violations.append(
            Violation(
                "entry_balances_per_currency", f"{r['entry_id']} is off by {r['net']} {r['currency'].strip()}"
            )
        )
    for r in await conn.fetch(
        """SELECT e.entry_id, count(l.line_no) AS n FROM journal_entries e
             LEFT JOIN journal_lines l USING (entry_id) GROUP BY e.entry_id HAVING count(l.line_no) < 2"""
    ):
        violations.append(Violation("entry_balances_per_currency", f"{r['entry_id']} has {r['n']} line(s)"))

    # ap_is_approved_minus_released_plus_failed_returned
    approvals = current_approvals(await conn.fetch("SELECT * FROM decisions ORDER BY seq"))
    released = [
        (r["payee_id"], r["currency"], r["amount"]) for r in await conn.fetch("SELECT * FROM payouts")
    ]
    reinstated = [
        (r["payee_id"], r["currency"], r["amount"])
        for r in await conn.fetch("SELECT * FROM payout_outcomes WHERE outcome IN ('failed', 'returned')")
    ]
    actual_ap: dict[tuple[str, ...], Decimal] = {
        (r["account"].removeprefix(d.AP_PREFIX), r["currency"].strip()): r["balance"]
        for r in await conn.fetch(
            """SELECT account, currency, sum(credit) - sum(debit) AS balance FROM journal_lines
                WHERE account LIKE 'liability:ap:%' GROUP BY account, currency"""
        )
    }
    for (payee, currency), exp, act in d.balance_differences(
        expected_ap(approvals, released, reinstated), actual_ap
    ):
        violations.append(
            Violation(
                "ap_is_approved_minus_released_plus_failed_returned",
                f"payee {payee} {currency}: documents say {exp}, journal says {act}",
            )
        )

    # in_transit_is_released_minus_settled_failed
    expected_transit: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    for r in await conn.fetch("SELECT currency, sum(amount) AS s FROM payouts GROUP BY currency"):
        expected_transit[(r["currency"],)] += r["s"]
    for r in await conn.fetch(
        """SELECT currency, sum(amount) AS s FROM payout_outcomes
            WHERE outcome IN ('settled', 'failed') GROUP BY currency"""
    ):
        expected_transit[(r["currency"],)] -= r["s"]
    actual_transit: dict[tuple[str, ...], Decimal] = {
        (r["currency"].strip(),): r["balance"]
        for r in await conn.fetch(
            """SELECT currency, sum(credit) - sum(debit) AS balance FROM journal_lines
                WHERE account = $1 GROUP BY currency""",
            d.IN_TRANSIT,
        )
    }
    for (currency,), exp, act in d.balance_differences(expected_transit, actual_transit):
        violations.append(
            Violation(
                "in_transit_is_released_minus_settled_failed",
                f"{currency}: documents say {exp}, journal says {act}",
            )
        )

    # no_source_event_posted_twice
    for column in ("source_event_id", "fact_key", "reverses_entry_id"):
        for r in await conn.fetch(
            f"""SELECT {column} AS k, count(*) AS n FROM journal_entries
                 WHERE {column} IS NOT NULL GROUP BY {column} HAVING count(*) > 1"""
        ):
            violations.append(
                Violation("no_source_event_posted_twice", f"{column} {r['k']} posted {r['n']} times")
            )
    return violations


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


# --- 1099-NEC -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nec1099Total:
    payee_id: str
    country: str | None
    currency: str
    paid: Decimal  # settled minus returned within the calendar year
    payouts: int


def nec_totals(rows: Iterable[Mapping[str, Any]], threshold: Decimal) -> list[Nec1099Total]:
    """rows: (payee_id, country, currency, outcome, amount, payout_id); settled adds, returned
    subtracts. Payees at or above the threshold, largest first."""
    paid: dict[tuple[str, str | None, str], Decimal] = defaultdict(Decimal)
    payouts: dict[tuple[str, str | None, str], set[str]] = defaultdict(set)
    for r in rows:
        key = (r["payee_id"], r["country"], r["currency"])
        if r["outcome"] == "settled":
            paid[key] += r["amount"]
            payouts[key].add(r["payout_id"])
        elif r["outcome"] == "returned":
            paid[key] -= r["amount"]
    totals = [
        Nec1099Total(p, c, cur, amount, len(payouts[(p, c, cur)])) for (p, c, cur), amount in paid.items()
    ]
    return sorted((t for t in totals if t.paid >= threshold), key=lambda t: (-t.paid, t.payee_id))


async def totals_1099_nec(
    conn: asyncpg.Connection, year: int, threshold: Decimal, *, currency: str = "USD"
) -> list[Nec1099Total]:
    """Per payee tagged for 1099-NEC (latest eligibility): payouts settled in `year` minus
    those returned in `year`, in `currency`; only totals ≥ `threshold` (configurable: the IRS
    threshold changes)."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    rows = await conn.fetch(
        """SELECT o.payee_id, e.country, o.currency, o.outcome, o.amount, o.payout_id
             FROM payout_outcomes o JOIN payee_eligibility e USING (payee_id)
            WHERE e.reportable_1099_nec AND o.outcome IN ('settled', 'returned')
              AND o.currency = $3 AND o.at >= $1 AND o.at < $2""",
        start,
        end,
        currency,
    )
    return nec_totals(rows, threshold)
