"""Urgent payouts (SPEC §13.2), pure: who may expedite, and every reason one is refused.

An expedite releases one invoice at once in a single-invoice run that bypasses only
`not_automated` and `not_due`; holds, compliance, funding and the stale-PO check still apply,
so the run's own block reasons are refusal reasons too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.payout_release.domain.run import NOT_APPROVED, Expedite, RunPlan

SELF_APPROVAL = "self_approval"
APPROVER_NOT_TREASURY = "approver_not_treasury"
INVOICE_UNKNOWN = "invoice_unknown"
ALREADY_RELEASED = "already_released"


@dataclass(frozen=True)
class ExpediteSubject:
    """What payout release knows of the invoice an expedite names."""

    approved: bool
    superseded: bool = False
    released: bool = False  # in a live payout, or paid and settled
    hold_reasons: tuple[str, ...] = ()


def run_id_for(expedite_id: str) -> str:
    """An expedite's single-invoice run: one expedite_id releases at most one payout, ever."""
    return f"expedite-{expedite_id}"


def needs_run(subject: ExpediteSubject | None) -> bool:
    return subject is not None and subject.approved and not subject.superseded and not subject.released


def refusal_reasons(
    expedite: Expedite, subject: ExpediteSubject | None, treasury: frozenset[str], plan: RunPlan | None
) -> list[str]:
    """Every reason, in this order: authority, the invoice, then the §8 gates the run found."""
    reasons: list[str] = []
    if expedite.approved_by.strip().casefold() == expedite.requested_by.strip().casefold():
        reasons.append(SELF_APPROVAL)
    if expedite.approved_by not in treasury:
        reasons.append(APPROVER_NOT_TREASURY)
    if subject is None:
        reasons.append(INVOICE_UNKNOWN)
    elif subject.released:
        reasons.append(ALREADY_RELEASED)
    elif not subject.approved or subject.superseded:
        reasons += [NOT_APPROVED, *subject.hold_reasons]
    if plan is not None:
        blocks = [b for b in plan.blocks if b.invoice_id == expedite.invoice_id]
        reasons += [r for b in blocks for r in b.reasons]
        if not blocks and not plan.releases:
            reasons.append(NOT_APPROVED)  # not a candidate the run could see
    return _unique(reasons)


def _unique(reasons: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(reasons))
