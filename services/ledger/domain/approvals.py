"""Approvals and revocations over a batch.

An invoice has at most one approval entry in force (posted, not reversed): a new approval
replaces it in one entry, a revocation reverses it. The plans walk the batch's records in order
from what was in force before the batch and which of the batch's facts the journal already has,
so two decisions on one invoice in one batch end as they would one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from services.ledger.domain.facts import InvoiceApproval
from services.ledger.domain.journal import Entry, Line, Posting, reverse_entry
from services.ledger.domain.outcomes import Outcome
from services.ledger.domain.posting import post_invoice_approval, post_reapproval


@dataclass(frozen=True)
class ActiveApproval:
    """An invoice's approval entry in force, and what it has approved: `lines`, the net of every
    approval, re-approval and revocation of the invoice. A re-approval's entry also holds the
    mirror of what it replaced, so taking back the entry itself would not take back the approval."""

    entry_id: str
    entry: Entry
    lines: tuple[Line, ...] = ()

    def __post_init__(self) -> None:
        if not self.lines:
            object.__setattr__(self, "lines", self.entry.lines)


def in_force_lines(entry: Entry, net: Mapping[tuple[str, str], Decimal]) -> tuple[Line, ...]:
    """The approval in force as lines, from the net per (account, currency) of the invoice's
    approval entries, in the order its accounts last appear in the entry in force."""
    last = {(ln.account, ln.currency): i for i, ln in enumerate(entry.lines)}
    keys = sorted((k for k, amount in net.items() if amount != 0), key=lambda k: (last.get(k, -1), k))
    return tuple(
        Line(a, c, debit=net[(a, c)]) if net[(a, c)] > 0 else Line(a, c, credit=-net[(a, c)]) for a, c in keys
    )


@dataclass(frozen=True)
class DecisionStep:
    outcome: Outcome
    posting: Posting | None = None
    true_up_po: str | None = None  # the PO whose GRNI the decision moves


def approval_fact_key(decision_id: str) -> str:
    return f"approval:{decision_id}"


def revocation_fact_key(decision_id: str) -> str:
    return f"revocation:{decision_id}"


def plan_approvals(
    approvals: Sequence[tuple[InvoiceApproval, str, str]],
    active: Mapping[str, ActiveApproval],
    posted_facts: set[str],
) -> list[DecisionStep]:
    """`invoice.approved_to_pay` records (approval, source event id, event type) in order."""
    current = dict(active)
    facts = set(posted_facts)
    steps = []
    for approval, event_id, event_type in approvals:
        in_force = current.get(approval.invoice_id)
        if in_force is not None and in_force.entry.fact_key == approval_fact_key(approval.decision_id):
            steps.append(DecisionStep(Outcome.ALREADY_POSTED))
            continue
        entry = (
            post_invoice_approval(approval)
            if in_force is None
            else post_reapproval(approval, in_force.lines, in_force.entry_id)
        )
        if entry is None or entry.fact_key in facts:
            steps.append(DecisionStep(Outcome.NOTHING_TO_POST, true_up_po=approval.po_number))
            continue
        posting = Posting(entry, event_id, event_type)
        facts.add(entry.fact_key)
        approved = entry.lines[len(in_force.lines) :] if in_force is not None else entry.lines
        current[approval.invoice_id] = ActiveApproval(posting.entry_id, entry, approved)
        steps.append(DecisionStep(Outcome.POSTED, posting, approval.po_number))
    return steps


@dataclass(frozen=True)
class Revocation:
    invoice_id: str
    decision_id: str
    reason: str


def plan_revocations(
    revocations: Sequence[tuple[Revocation, str, str]],
    active: Mapping[str, ActiveApproval],
    posted_facts: set[str],
) -> list[DecisionStep]:
    """`invoice.approval_revoked` records (revocation, source event id, event type) in order."""
    current = dict(active)
    facts = set(posted_facts)
    steps = []
    for revocation, event_id, event_type in revocations:
        in_force = current.get(revocation.invoice_id)
        if in_force is None:
            steps.append(DecisionStep(Outcome.NOTHING_TO_REVERSE))
            continue
        entry = reverse_entry(
            replace(in_force.entry, lines=in_force.lines),
            in_force.entry_id,
            kind="approval_reversal",
            fact_key=revocation_fact_key(revocation.decision_id),
            description=f"Approval of invoice {revocation.invoice_id} revoked: {revocation.reason}",
        )
        po_number = in_force.entry.links.po_number
        if entry.fact_key in facts:
            steps.append(DecisionStep(Outcome.ALREADY_POSTED, true_up_po=po_number))
            continue
        facts.add(entry.fact_key)
        del current[revocation.invoice_id]
        steps.append(DecisionStep(Outcome.REVERSED, Posting(entry, event_id, event_type), po_number))
    return steps
