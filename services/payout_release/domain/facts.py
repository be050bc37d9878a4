"""What payout release hears before a run, pure: matching's decisions, the compliance gate's
verdicts, PO versions and funding (SPEC §8 gates 1–4), folded over a batch in order.

A batch may hold several records about one subject (two decisions on one invoice, two
verdicts on one payee, two fundings of one account): each is judged against the state the one
before it left, exactly as if they had been handled one by one; the store then writes each
subject's end state once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from services.payout_release.domain.run import PayeeStanding


class Outcome(StrEnum):
    """What a record did (the inbox row's result; a metric label: a closed set)."""

    APPROVED = "approved"
    HELD = "held"
    STALE_DECISION = "stale_decision"
    REVOKED = "revoked"
    REVOKED_AFTER_RELEASE = "revoked_after_release"
    NOT_APPLIED = "not_applied"
    SUPERSEDED = "superseded"
    UNKNOWN_INVOICE = "unknown_invoice"
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    STALE_EVALUATION = "stale_evaluation"
    VERSION_IN_FORCE = "version_in_force"
    OLDER_VERSION = "older_version"
    PO_CLOSED = "po_closed"
    APPLIED = "applied"
    DUPLICATE_FUNDING = "duplicate_funding"
    ACCOUNT_MISMATCH = "account_mismatch"
    RUN_EXECUTED = "run_executed"
    RUN_ALREADY_EXECUTED = "run_already_executed"
    EXPEDITE_RELEASED = "expedite_released"
    EXPEDITE_REFUSED = "expedite_refused"
    EXPEDITE_ALREADY_EXECUTED = "expedite_already_executed"


# --- matching's decisions (gate 1) ---------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    invoice_id: str
    payee_id: str
    legal_entity: str
    business_unit: str
    currency: str
    document_type: str
    issue_date: date
    payable_amount: Decimal
    po_number: str | None
    po_version: int | None
    decision_id: str
    decided_at: datetime
    traceparent: str | None = None  # of the span that handled the approval: payout runs link to it


@dataclass(frozen=True)
class NotApproved:
    """A hold (with its payee and PO: the invoice stays a candidate that is blocked) or a
    revocation (no payee: only an invoice already known changes)."""

    invoice_id: str
    decided_at: datetime
    payee_id: str | None = None
    po_number: str | None = None
    reasons: tuple[str, ...] = ()  # the open holds' reasons (a revocation's reopened reason)


@dataclass(frozen=True)
class InvoiceState:
    """What the decision guards look at: a superseded invoice is never approved again, and a
    decision older than the latest one applied changes nothing (a stale replay)."""

    superseded: bool = False
    decided_at: datetime | None = None


def _is_current(state: InvoiceState | None, decided_at: datetime) -> bool:
    return state is None or state.decided_at is None or state.decided_at <= decided_at


def decide_approvals(
    known: Mapping[str, InvoiceState], approvals: Sequence[Approval]
) -> tuple[list[bool], list[Approval]]:
    """Which approvals apply (in order), and each invoice's last applied approval."""
    state = dict(known)
    applied: list[bool] = []
    last: dict[str, Approval] = {}
    for a in approvals:
        before = state.get(a.invoice_id)
        ok = (before is None or not before.superseded) and _is_current(before, a.decided_at)
        applied.append(ok)
        if ok:
            state[a.invoice_id] = InvoiceState(False, a.decided_at)
            last[a.invoice_id] = a
    return applied, list(last.values())


def decide_not_approved(
    known: Mapping[str, InvoiceState], decisions: Sequence[NotApproved]
) -> tuple[list[bool], list[NotApproved]]:
    """Which holds/revocations apply (in order), and each invoice's end row: the first applied
    decision's payee and PO (what an insert keeps), the last one's decided_at."""
    state = dict(known)
    applied: list[bool] = []
    rows: dict[str, NotApproved] = {}
    for d in decisions:
        before = state.get(d.invoice_id)
        ok = (before is not None or d.payee_id is not None) and _is_current(before, d.decided_at)
        applied.append(ok)
        if ok:
            state[d.invoice_id] = InvoiceState(before.superseded if before else False, d.decided_at)
            first = rows.get(d.invoice_id, d)
            rows[d.invoice_id] = replace(first, decided_at=d.decided_at, reasons=d.reasons)
    return applied, list(rows.values())


# --- payee eligibility (gate 2) --------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    payee_id: str
    standing: PayeeStanding
    profile_version: int | None
    evaluated_at: datetime


def decide_verdicts(
    evaluated_at: Mapping[str, datetime], verdicts: Sequence[Verdict]
) -> tuple[list[bool], list[Verdict]]:
    """The latest evaluation wins; an older one arriving late changes nothing."""
    latest = dict(evaluated_at)
    applied: list[bool] = []
    last: dict[str, Verdict] = {}
    for v in verdicts:
        before = latest.get(v.payee_id)
        ok = before is None or before <= v.evaluated_at
        applied.append(ok)
        if ok:
            latest[v.payee_id] = v.evaluated_at
            last[v.payee_id] = v
    return applied, list(last.values())


# --- PO state (gate 3) -----------------------------------------------------------------------


@dataclass(frozen=True)
class PoVersion:
    po_number: str
    version: int
    effective_from: date
    effective_to: date
    payment_terms: str | None = None


def decide_po_versions(
    in_force: Mapping[str, int | None], versions: Sequence[PoVersion]
) -> tuple[list[bool], list[PoVersion]]:
    """A newer version in force replaces an older one, never the reverse (`in_force`: the
    stored version of each known PO, None when only its closure was heard)."""
    current = dict(in_force)
    applied: list[bool] = []
    last: dict[str, PoVersion] = {}
    for v in versions:
        before = current.get(v.po_number)
        ok = before is None or before <= v.version
        applied.append(ok)
        if ok:
            current[v.po_number] = v.version
            last[v.po_number] = v
    return applied, list(last.values())


# --- funding (gate 4) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Funding:
    funding_id: str
    account_id: str
    legal_entity: str
    currency: str
    amount: Decimal
    received_at: datetime


def decide_fundings(
    owners: Mapping[str, tuple[str, str]], known_funding_ids: set[str], fundings: Sequence[Funding]
) -> list[Outcome]:
    """Credit each account once per funding_id. An account funds the one legal entity and
    currency it was first funded for (`owners`, the accounts as created): anything else is a
    mismatch, never credited (SPEC §10)."""
    seen = set(known_funding_ids)
    outcomes = []
    for f in fundings:
        if owners[f.account_id] != (f.legal_entity, f.currency):
            outcomes.append(Outcome.ACCOUNT_MISMATCH)
        elif f.funding_id in seen:
            outcomes.append(Outcome.DUPLICATE_FUNDING)
        else:
            seen.add(f.funding_id)
            outcomes.append(Outcome.APPLIED)
    return outcomes


def first_per_account(fundings: Sequence[Funding]) -> list[Funding]:
    """The funding that creates each account not yet known: the first one of the batch."""
    first: dict[str, Funding] = {}
    for f in fundings:
        first.setdefault(f.account_id, f)
    return list(first.values())
