"""Rich renderings of the ledger's answers: trace, reconciliation, invariants, 1099-NEC, holds.

Every stored value goes through `shown` (tools/cli/console.py): never markup, never raw
control characters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.ledger.queries import INVARIANTS, Nec1099Total, Reconciliation, Trace, Violation
from tools.cli.console import shown
from tools.cli.dlq import DeadLetterEntry
from tools.cli.readers import OpenHoldRow


def _t(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _table(title: str | Text, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(shown(v) for v in r))
    return t


def print_trace(console: Console, tr: Trace) -> None:
    if not tr.found:
        console.print(
            Text.assemble(
                "nothing in the ledger answers to '",
                shown(tr.ref),
                "' (an entry id, invoice id, payout id or PO number)",
            )
        )
        return
    console.print(Text.assemble(f"trace of {tr.ref_kind} ", shown(tr.ref), style="bold"))
    console.print(
        _table(
            "purchase order versions",
            (
                "PO",
                "v",
                "BU",
                "payee",
                "created by",
                "approved by",
                "approved at",
                "amended by",
                "reason",
                "changes",
                "SOW",
            ),
            (
                (
                    p.po_number,
                    p.version,
                    p.business_unit,
                    p.payee_id,
                    p.created_by,
                    p.approved_by,
                    _t(p.approved_at),
                    p.amended_by,
                    p.reason,
                    ", ".join(p.changes),
                    p.sow_ref and f"{p.sow_ref.get('id')} v{p.sow_ref.get('version')}",
                )
                for p in tr.po_versions
            ),
        )
    )
    console.print(
        _table(
            "receipts",
            ("receipt", "PO", "kind", "received at", "recorded by", "status", "entry"),
            (
                (
                    r.receipt_id,
                    r.po_number,
                    r.kind,
                    _t(r.received_at),
                    r.recorded_by,
                    r.status + (f" by {r.reversed_by}: {r.reversal_reason}" if r.reversed_by else ""),
                    r.entry_id,
                )
                for r in tr.receipts
            ),
        )
    )
    console.print(
        _table(
            "invoices",
            ("invoice", "supplier no.", "payee", "type", "issued", "PO", "total", "payable", "origin"),
            (
                (
                    i.invoice_id,
                    i.supplier_invoice_number,
                    i.payee_id,
                    i.document_type,
                    i.issue_date,
                    i.po_number,
                    f"{i.total_amount} {i.currency}",
                    f"{i.payable_amount} {i.currency}",
                    i.origin,
                )
                for i in tr.invoices
            ),
        )
    )
    console.print(
        _table(
            "decisions",
            ("invoice", "decision", "PO version", "at", "detail"),
            ((d.invoice_id, d.kind, d.po_version, _t(d.decided_at), d.detail) for d in tr.decisions),
        )
    )
    console.print(
        _table(
            "holds",
            ("invoice", "hold", "reason", "queue", "line", "action", "held since", "open"),
            (
                (
                    h.invoice_id,
                    h.hold_id,
                    h.reason,
                    h.queue,
                    h.line_id,
                    h.action,
                    _t(h.first_held_at),
                    "open" if h.open else "released",
                )
                for h in tr.holds
            ),
        )
    )
    console.print(
        _table(
            "overrides",
            (
                "override",
                "invoice",
                "approved by",
                "requested by",
                "reason",
                "justification",
                "evidence",
                "holds",
            ),
            (
                (
                    o.override_id,
                    o.invoice_id,
                    o.approved_by,
                    o.requested_by,
                    o.reason_code,
                    o.justification,
                    "; ".join(o.evidence),
                    ", ".join(o.hold_reasons),
                )
                for o in tr.overrides
            ),
        )
    )
    console.print(
        _table(
            "approvals",
            ("by", "what", "role", "at", "source"),
            ((a.by, a.what, a.role, _t(a.at), a.source) for a in tr.approvals),
        )
    )
    console.print(
        _table(
            "payment terms",
            ("invoice", "terms", "due", "discount", "note"),
            (
                (
                    t.invoice_id,
                    t.payment_terms or "-",
                    str(t.due_date),
                    f"{t.discount_percent}% until {t.discount_until}" if t.discount_until else "",
                    t.note or "",
                )
                for t in tr.terms
            ),
        )
    )
    console.print(
        _table(
            "payouts",
            ("payout", "run", "payee", "account", "amount", "invoices", "released", "rail outcomes"),
            (
                (
                    p.payout_id,
                    p.run_id,
                    p.payee_id,
                    p.funding_account_id,
                    f"{p.amount} {p.currency}",
                    ", ".join(f"{i}={a}" for i, a in p.invoices)
                    + "".join(f"; {i} discount {a}" for i, a in p.discounts)
                    + (
                        f"; expedite {p.expedite.expedite_id} approved by {p.expedite.approved_by}:"
                        f" {p.expedite.justification}"
                        if p.expedite
                        else ""
                    ),
                    _t(p.released_at),
                    "; ".join(
                        f"{o.outcome} {o.amount} at {_t(o.at)}"
                        + (f" ({o.failure_code or o.reason})" if o.failure_code or o.reason else "")
                        for o in p.outcomes
                    ),
                )
                for p in tr.payouts
            ),
        )
    )
    entries = _table("journal entries", ("entry", "posted", "fact", "account", "debit", "credit"), ())
    for e in tr.entries:
        for n, line in enumerate(e.lines):
            entries.add_row(
                shown(e.entry_id if n == 0 else ""),
                shown(_t(e.posted_at) if n == 0 else ""),
                shown(e.description if n == 0 else ""),
                shown(line.account),
                shown(f"{line.debit} {line.currency}" if line.debit else ""),
                shown(f"{line.credit} {line.currency}" if line.credit else ""),
            )
    console.print(entries)


def print_reconciliation(console: Console, r: Reconciliation) -> None:
    console.print(f"[bold]reconciliation as of {_t(r.as_of)} UTC[/bold]")
    console.print(
        _table(
            "per purchase order",
            ("PO", "v", "ordered", "received", "approved", "paid", "GRNI outstanding", "closed"),
            (
                (
                    p.po_number,
                    p.version,
                    f"{p.ordered} {p.currency}",
                    p.received,
                    p.approved,
                    p.paid,
                    p.grni_outstanding,
                    "yes" if p.closed else "",
                )
                for p in r.purchase_orders
            ),
        )
    )
    balances = sorted(set(r.grni_balance) | set(r.in_transit_balance))
    console.print(
        _table(
            "balances",
            ("currency", "GRNI", "payouts in transit"),
            ((c, r.grni_balance.get(c, 0), r.in_transit_balance.get(c, 0)) for c in balances),
        )
    )
    console.print(
        _table(
            "GRNI ageing",
            ("PO", "amount", "age (days)", "bucket"),
            ((a.ref, f"{a.amount} {a.currency}", a.age_days, a.bucket) for a in r.grni_ageing),
        )
    )
    console.print(
        _table(
            "in-transit ageing",
            ("payout", "amount", "age (days)", "bucket"),
            ((a.ref, f"{a.amount} {a.currency}", a.age_days, a.bucket) for a in r.in_transit_ageing),
        )
    )
    console.print(
        _table(
            "open holds by reason",
            ("reason", "count", "oldest (days)", "invoices"),
            (
                (
                    reason,
                    len(holds),
                    max(h.age_days for h in holds),
                    ", ".join(sorted({h.invoice_id for h in holds})),
                )
                for reason, holds in sorted(r.open_holds_by_reason.items())
            ),
        )
    )
    console.print(
        _table(
            "approved requisitions neither converted nor closed",
            ("requisition", "BU", "amount", "approved", "age (days)"),
            (
                (q.requisition_id, q.business_unit, f"{q.amount} {q.currency}", _t(q.approved_at), q.age_days)
                for q in r.stale_requisitions
            ),
        )
    )
    console.print(
        _table(
            "invoices by due date (payment terms, SPEC §13.5)",
            ("due", "invoice", "payee", "payable", "terms", "discount until", "status"),
            (
                (
                    str(i.due_date),
                    i.invoice_id,
                    i.payee_id,
                    f"{i.payable_amount} {i.currency}",
                    (i.payment_terms or "-") + (f" ({i.note})" if i.note else ""),
                    str(i.discount_until or ""),
                    i.status,
                )
                for i in r.invoices_by_due_date
            ),
        )
    )
    console.print(
        _table(
            "early-payment discounts taken",
            ("invoice", "payout", "discount", "released"),
            (
                (t.invoice_id, t.payout_id, f"{t.discount} {t.currency}", _t(t.released_at))
                for t in r.discounts_taken
            ),
        )
    )
    if r.mismatches:
        console.print(
            _table("service state vs journal: disagreements", ("what",), ((m,) for m in r.mismatches))
        )
    else:
        console.print("service state and journal agree")


def print_violations(console: Console, violations: Sequence[Violation]) -> None:
    failing = {v.invariant for v in violations}
    t = _table("ledger invariants", ("invariant", "meaning", "result"), ())
    for name, meaning in INVARIANTS.items():
        t.add_row(name, meaning, "[red]VIOLATED[/red]" if name in failing else "[green]holds[/green]")
    console.print(t)
    for v in violations:
        console.print(Text.assemble((v.invariant, "red"), ": ", shown(v.detail)))


def print_1099(console: Console, year: int, threshold: str, totals: Sequence[Nec1099Total]) -> None:
    console.print(
        _table(
            shown(f"1099-NEC {year}: US payees paid at least {threshold}"),
            ("payee", "country", "paid", "payouts"),
            ((t.payee_id, t.country, f"{t.paid} {t.currency}", t.payouts) for t in totals),
        )
    )


def print_holds(console: Console, holds: Sequence[OpenHoldRow], now: datetime) -> None:
    console.print(
        _table(
            f"open holds: {len(holds)}",
            (
                "invoice",
                "PO",
                "line",
                "reason",
                "queue",
                "owner",
                "age",
                "due by",
                "escalated",
                "next action",
            ),
            (
                (
                    h.invoice_id,
                    h.po_number,
                    h.line_id,
                    h.reason,
                    h.queue,
                    h.owner,
                    _age(now - h.opened_at),
                    _t(h.due_by),
                    "yes" if h.escalated else "",
                    h.next_action,
                )
                for h in holds
            ),
        )
    )


def print_deadletters(console: Console, entries: Sequence[DeadLetterEntry], limit: int) -> None:
    """The deadletter topic, newest last: what an operator replays by its id."""
    console.print(
        _table(
            f"concord.deadletter — {len(entries)} record(s)",
            ("deadletter id", "when", "by", "origin", "key", "reason", "error"),
            (
                (
                    e.event_id,
                    e.occurred_at[:19],
                    e.source,
                    f"{e.origin['topic']}[{e.origin['partition']}]@{e.origin['offset']}",
                    e.origin.get("key"),
                    e.reason,
                    e.error,
                )
                for e in entries[-limit:]
            ),
        )
    )


def _age(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60}m"
