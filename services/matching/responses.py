"""Matching's Invoice Responses (SPEC §12.3): `UQ` when an invoice is held for the first time or
the set of reasons it is held for changes, `AP` when it is approved to pay.

What the supplier was last told is read from the state loaded before the batch (a held decision's
open holds, or an approval), then followed through the batch's decisions in order: a rematch
that changes nothing, one that only moves a hold to another line, or a re-approval against a new
PO version tells the supplier nothing new and issues nothing. Each response is derived from the
decision event that caused it, so a redelivered input can never issue a second one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.matching import store
from services.matching.domain.batch import AddInvoice, Decided, Loaded, StepPlan
from services.matching.domain.checks import Held
from shared import invoice_response as ir
from shared.contracts.outbound import InvoiceResponseIssued
from shared.envelope import derived_event_id


@dataclass(frozen=True)
class Told:
    """The last status the supplier saw from matching, and for UQ the reasons."""

    status: ir.Status | None
    reasons: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Planned:
    decided: Decided
    status: ir.Status
    holds: tuple[tuple[str, str | None], ...] = ()  # (reason, line_id) for UQ


def told_before(loaded: Loaded) -> dict[str, Told]:
    """Call before planning: the planner changes `loaded` as it goes."""
    told: dict[str, Told] = {}
    for invoice_id, stored in loaded.invoices.items():
        if stored.decision.kind == "approved":
            told[invoice_id] = Told(ir.Status.ACCEPTED)
        elif stored.decision.kind == "held":
            reasons = frozenset(h.reason for h in loaded.open_holds.get(invoice_id, ()))
            told[invoice_id] = Told(ir.Status.UNDER_QUERY, reasons)
    return told


def plan(told: dict[str, Told], steps: Sequence[StepPlan]) -> list[list[Planned]]:
    """The responses each step issues (pure)."""
    last = dict(told)
    out: list[list[Planned]] = []
    for step in steps:
        planned: list[Planned] = []
        for n in step.notices:
            if not isinstance(n, Decided):
                continue
            invoice_id = n.invoice.invoice_id
            if n.kind == "held" and isinstance(n.outcome, Held) and n.outcome.findings:
                holds = tuple(sorted({(f.reason, f.line_id) for f in n.outcome.findings}, key=_order))
                now = Told(ir.Status.UNDER_QUERY, frozenset(r for r, _ in holds))
                if last.get(invoice_id) != now:
                    planned.append(Planned(n, ir.Status.UNDER_QUERY, holds))
                last[invoice_id] = now
            elif n.kind == "approved_to_pay":
                if last.get(invoice_id, Told(None)).status is not ir.Status.ACCEPTED:
                    planned.append(Planned(n, ir.Status.ACCEPTED))
                last[invoice_id] = Told(ir.Status.ACCEPTED)
            else:  # revoked or superseded: the next status (if any) is news again
                last[invoice_id] = Told(None)
        out.append(planned)
    return out


Emission = tuple[InvoiceResponseIssued, str, str]  # (event, key, event_id), as the step's others


async def render(
    conn: asyncpg.Connection,
    planned: Sequence[Sequence[Planned]],
    now: datetime,
    written: Mapping[str, AddInvoice] | None = None,
) -> list[list[Emission]]:
    """Each step's responses, ready to emit after the step's own events. The supplier's invoice
    numbers, which matching keeps only in the stored document: those of the invoices this batch
    wrote (`written`, the plan's new invoices) from their documents, the others in one query."""
    ids = sorted({p.decided.invoice.invoice_id for step in planned for p in step})
    numbers = {i: n for i in ids if (n := _number(written, i))}
    rest = [i for i in ids if written is None or i not in written]
    if rest:
        numbers.update(await store.supplier_invoice_numbers(conn, rest))
    out: list[list[Emission]] = []
    for step in planned:
        emissions: list[Emission] = []
        for p in step:
            inv = p.decided.invoice
            ref = ir.InvoiceRef(
                inv.invoice_id, numbers.get(inv.invoice_id), inv.payee_id, inv.legal_entity, inv.document_type
            )
            response = ir.issue(ref, p.status, p.decided.event_id, now, ir.hold_findings(p.holds))
            event_id = derived_event_id("invoice_response.issued", response.response_id)
            emissions.append((response, inv.invoice_id, event_id))
        out.append(emissions)
    return out


def _number(written: Mapping[str, AddInvoice] | None, invoice_id: str) -> str | None:
    """The number in a document this batch stored, as `document->>'supplier_invoice_number'`
    reads it back (a string; a document without one has none)."""
    step = written.get(invoice_id) if written is not None else None
    number = step.document.get("supplier_invoice_number") if step is not None else None
    return number if isinstance(number, str) else None


def _order(hold: tuple[str, str | None]) -> tuple[str, str]:
    return (hold[0], hold[1] or "")
