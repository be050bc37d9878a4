"""Payout runs, pure: the six release gates, grouping and netting, and the run's invariants
(SPEC §8). No I/O, no async. The store loads what a run needs into these dataclasses;
`plan_run` decides which invoices are paid in which payout and why every other candidate is
not; `plan_violations` checks the plan before anything is saved.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

from services.payout_release.domain.terms import (
    NOT_DUE,
    TermsPolicies,
    discount_amount,
    parse_terms,
    schedule,
)
from shared.envelope import uuid5_hex

DocumentType = Literal["invoice", "credit_note"]

# Blocked reason codes (SPEC §8), in the order a payout.blocked lists them.
NOT_APPROVED = "not_approved"
PAYEE_INELIGIBLE = "payee_ineligible"
PAYEE_UNKNOWN = "payee_unknown"
STALE_PO = "stale_po"
PO_NOT_IN_FORCE = "po_not_in_force"
INSUFFICIENT_FUNDS = "insufficient_funds"
NOT_AUTOMATED = "not_automated"
PAYOUT_ACCOUNT_INVALID = "payout_account_invalid"  # SPEC §12.4
# Not a failed gate: the invoice passed every gate but its group's credit notes outweigh its
# invoices, so nothing is paid and the amounts wait for the next run (SPEC §8 "a group ≤ 0
# carries forward"). Named so that "why wasn't this paid" still has an answer.
CARRIED_FORWARD = "carried_forward"

_PAYOUT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "concord:payout_release:payout")


# --- what a run looks at -----------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """An invoice (or credit note) matching has decided on, not in a live payout.

    `approved` is matching's latest word. The approval's facts (entity, currency, amount…) are
    None for an invoice that has only ever been held.
    """

    invoice_id: str
    payee_id: str
    approved: bool
    legal_entity: str | None = None
    business_unit: str | None = None
    currency: str | None = None
    document_type: DocumentType = "invoice"
    payable_amount: Decimal | None = None
    issue_date: date | None = None
    po_number: str | None = None
    po_version: int | None = None
    # Gate 6: one live payout per invoice. The store does not offer such invoices; a caller that
    # does gets them silently skipped, never paid twice.
    in_live_payout: bool = False

    @property
    def signed_amount(self) -> Decimal:
        """What the invoice adds to its payout: credit notes carry positive amounts and subtract."""
        amount = self.payable_amount if self.payable_amount is not None else Decimal(0)
        return -amount if self.document_type == "credit_note" else amount


@dataclass(frozen=True)
class PayeeStanding:
    """The compliance gate's latest verdict on a payee."""

    eligible: bool
    reasons: tuple[str, ...] = ()
    payout_account_ref: str | None = None
    # The rail failure code (SPEC §12.4) that made the payee's current account invalid, if any.
    account_invalid: str | None = None


@dataclass(frozen=True)
class PoInForce:
    """What payout release knows of a PO: the version in force (None if only its closure was
    heard), whether it is closed, and its effective dates."""

    version: int | None
    closed: bool = False
    effective_from: date | None = None
    effective_to: date | None = None
    payment_terms: str | None = None  # SPEC §13.5: of the version in force


@dataclass(frozen=True)
class FundingAccount:
    account_id: str
    legal_entity: str
    currency: str
    available: Decimal  # received − reserved by live payouts − consumed by settled ones


@dataclass(frozen=True)
class Cohorts:
    """Rollout cohorts: business units whose payouts are automated (None = every unit)."""

    automated_business_units: frozenset[str] | None = None

    def is_automated(self, business_unit: str | None) -> bool:
        if self.automated_business_units is None:
            return True
        return business_unit is not None and business_unit in self.automated_business_units


ALL_AUTOMATED = Cohorts()


@dataclass(frozen=True)
class RunRequest:
    """One payout run: its id (the schedule slot's, or the operator's), what started it, and
    the scope an operator may narrow it to."""

    run_id: str
    trigger: Literal["schedule", "command"]
    requested_by: str | None = None
    legal_entity: str | None = None
    currency: str | None = None
    expedite: Expedite | None = None

    @property
    def requested(self) -> bool:
        return self.trigger == "command"


@dataclass(frozen=True)
class Expedite:
    """An accepted urgent payout (SPEC §13.2): a single-invoice run that passes every gate but
    automation and due date."""

    expedite_id: str
    invoice_id: str
    requested_by: str
    approved_by: str
    justification: str


# --- what a run decides ------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutLine:
    invoice_id: str
    amount: Decimal  # what is paid for it; negative for a credit note netted into the payout
    discount: Decimal = Decimal(0)  # early-payment discount taken (SPEC §13.5): amount + discount = payable


@dataclass(frozen=True)
class PlannedPayout:
    payout_id: str
    run_id: str
    payee_id: str
    currency: str
    legal_entity: str
    funding_account_id: str
    payout_account_ref: str | None
    amount: Decimal
    lines: tuple[PayoutLine, ...]
    expedite: Expedite | None = None

    @property
    def invoice_ids(self) -> tuple[str, ...]:
        return tuple(line.invoice_id for line in self.lines)

    @property
    def discount(self) -> Decimal:
        return sum((line.discount for line in self.lines), Decimal(0))


@dataclass(frozen=True)
class Block:
    invoice_id: str
    payee_id: str
    reasons: tuple[str, ...]
    not_before: date | None = None  # with not_due: the first day a run releases it


@dataclass(frozen=True)
class RunPlan:
    releases: tuple[PlannedPayout, ...] = ()
    blocks: tuple[Block, ...] = ()
    # Funding each payout reserves, per account: what the store must reserve atomically.
    reservations: Mapping[str, Decimal] = field(default_factory=dict)


# --- ids ---------------------------------------------------------------------------------


def payout_id_for(
    run_id: str, payee_id: str, currency: str, legal_entity: str, funding_account_id: str
) -> str:
    """Deterministic, so a crashed and restarted run releases exactly the same payouts (SPEC §8)."""
    name = "|".join((run_id, payee_id, currency, legal_entity, funding_account_id))
    return "payout_" + uuid5_hex(_PAYOUT_NAMESPACE, name)


def scheduled_run_id(now: datetime, interval_s: float) -> str:
    """The run id of the schedule slot `now` falls in: a restarted scheduled run re-derives it."""
    step = max(int(interval_s), 1)
    epoch = int(now.timestamp())
    slot = datetime.fromtimestamp(epoch - epoch % step, tz=UTC)
    return "run-" + slot.strftime("%Y%m%dT%H%M%SZ")


# --- the gates -----------------------------------------------------------------------------


def payee_reasons(standing: PayeeStanding | None) -> list[str]:
    """Gate 2: the payee's latest compliance status; never heard of is ineligible too (SPEC §7)."""
    if standing is None:
        return [PAYEE_INELIGIBLE, PAYEE_UNKNOWN]
    invalid = [PAYOUT_ACCOUNT_INVALID] if standing.account_invalid else []
    if standing.eligible:
        return invalid
    return [PAYEE_INELIGIBLE, *(r for r in standing.reasons if r != PAYEE_INELIGIBLE), *invalid]


def po_reasons(candidate: Candidate, po: PoInForce | None, release_date: date) -> list[str]:
    """Gate 3 (stale-PO check). No-PO invoices skip it; so does an invoice never approved,
    which has no version it was matched against."""
    if candidate.po_number is None or not candidate.approved:
        return []
    if po is None:
        # Payout release has not yet heard the PO from intake: it cannot confirm it is in force.
        return [PO_NOT_IN_FORCE]
    reasons = []
    if po.version is not None and po.version != candidate.po_version:
        # A newer approved version: matching rematches on approved amendments and re-decides.
        reasons.append(STALE_PO)
    in_dates = (
        po.version is not None
        and (po.effective_from is None or po.effective_from <= release_date)
        and (po.effective_to is None or release_date <= po.effective_to)
    )
    if po.closed or not in_dates:
        reasons.append(PO_NOT_IN_FORCE)
    return reasons


def gate_reasons(
    candidate: Candidate,
    payees: Mapping[str, PayeeStanding],
    pos: Mapping[str, PoInForce],
    automated: Cohorts,
    release_date: date,
    *,
    requested: bool,
    not_before: date | None = None,
) -> list[str]:
    """Every failing gate except funding (gate 4), which depends on what else the run pays;
    `not_before` is the invoice's first payable day under its terms (SPEC §13.5), None when
    payable today or when an expedite bypasses it."""
    reasons: list[str] = []
    if not candidate.approved or candidate.currency is None or candidate.payable_amount is None:
        reasons.append(NOT_APPROVED)
    reasons += payee_reasons(payees.get(candidate.payee_id))
    reasons += po_reasons(candidate, pos.get(candidate.po_number or ""), release_date)
    # Gate 5: a non-automated business unit waits for an operator's payout_run.requested.
    if not requested and not automated.is_automated(candidate.business_unit):
        reasons.append(NOT_AUTOMATED)
    if not_before is not None:
        reasons.append(NOT_DUE)
    return reasons


def in_scope(candidate: Candidate, legal_entity: str | None, currency: str | None) -> bool:
    """A payout_run.requested may narrow a run to one legal entity and/or currency."""
    if legal_entity is not None and candidate.legal_entity != legal_entity:
        return False
    return currency is None or candidate.currency == currency


# --- the run -------------------------------------------------------------------------------

_GroupKey = tuple[str, str, str]  # payee, currency, legal entity


def _sort_key(c: Candidate) -> tuple[int, date, str]:
    # Credit notes first (they only make room), then the oldest invoices: with limited
    # funding the supplier waiting longest is paid first, and the order is reproducible.
    return (0 if c.document_type == "credit_note" else 1, c.issue_date or date.min, c.invoice_id)


def _best_account(
    accounts: Iterable[FundingAccount], available: Mapping[str, Decimal]
) -> FundingAccount | None:
    """SPEC §10: the account funded for the entity and currency; if several, most available."""
    best: FundingAccount | None = None
    for acc in accounts:
        if best is None or (available[acc.account_id], best.account_id) > (
            available[best.account_id],
            acc.account_id,
        ):
            best = acc
    return best


def plan_run(
    candidates: Sequence[Candidate],
    payees: Mapping[str, PayeeStanding],
    pos: Mapping[str, PoInForce],
    funding: Sequence[FundingAccount],
    automated: Cohorts,
    now: datetime,
    run_id: str,
    *,
    requested: bool = False,
    legal_entity: str | None = None,
    currency: str | None = None,
    terms: TermsPolicies | None = None,
    expedite: Expedite | None = None,
) -> RunPlan:
    """Decide one payout run. Deterministic: the same inputs give the same payouts and ids.

    Every candidate in scope ends up either in exactly one payout or in a Block naming every
    reason it was not paid. An expedite's run has one candidate in scope, its invoice, and
    bypasses only `not_automated` and `not_due` (SPEC §13.2).
    """
    policies = terms or TermsPolicies()
    release_date = now.astimezone(UTC).date()
    available = {acc.account_id: acc.available for acc in funding}
    accounts_for: dict[tuple[str, str], list[FundingAccount]] = {}
    for acc in funding:
        accounts_for.setdefault((acc.legal_entity, acc.currency), []).append(acc)

    blocked: dict[str, list[str]] = {}
    payable: dict[_GroupKey, list[Candidate]] = {}
    in_run = [
        c
        for c in sorted(candidates, key=lambda c: c.invoice_id)
        if not c.in_live_payout
        and in_scope(c, legal_entity, currency)
        and (expedite is None or c.invoice_id == expedite.invoice_id)
    ]
    discounts: dict[str, Decimal] = {}
    not_before: dict[str, date] = {}
    for c in in_run:
        day, discount = _terms_of(c, pos, policies, release_date)
        if day is not None and expedite is None:
            not_before[c.invoice_id] = day
        if discount:
            discounts[c.invoice_id] = discount
    opening_best = {key: _best_account(accs, available) for key, accs in accounts_for.items()}
    for c in in_run:
        reasons = gate_reasons(
            c,
            payees,
            pos,
            automated,
            release_date,
            requested=requested or expedite is not None,
            not_before=not_before.get(c.invoice_id),
        )
        if not reasons:
            assert c.currency is not None and c.legal_entity is not None
            payable.setdefault((c.payee_id, c.currency, c.legal_entity), []).append(c)
            continue
        # "Every reason": also say when even the best-funded account could not pay it alone.
        if c.currency is not None and c.legal_entity is not None and c.signed_amount > 0:
            best = opening_best.get((c.legal_entity, c.currency))
            if best is None or available[best.account_id] < c.signed_amount:
                # Gate order (SPEC §8): funding (4) comes before automation (5).
                at = reasons.index(NOT_AUTOMATED) if NOT_AUTOMATED in reasons else len(reasons)
                reasons.insert(at, INSUFFICIENT_FUNDS)
        blocked[c.invoice_id] = reasons

    releases: list[PlannedPayout] = []
    reservations: dict[str, Decimal] = {}
    for (payee_id, cur, entity), members in sorted(payable.items()):
        account = _best_account(accounts_for.get((entity, cur), []), available)
        if account is None:
            for c in members:
                if c.signed_amount > 0:
                    blocked[c.invoice_id] = [INSUFFICIENT_FUNDS]
                else:
                    blocked[c.invoice_id] = [CARRIED_FORWARD]
            continue
        room = available[account.account_id]
        net = Decimal(0)
        taken: list[Candidate] = []
        for c in sorted(members, key=_sort_key):
            pays = c.signed_amount - discounts.get(c.invoice_id, Decimal(0))
            if net + pays <= room:
                net += pays
                taken.append(c)
            else:
                blocked[c.invoice_id] = [INSUFFICIENT_FUNDS]
        if net <= 0:
            for c in taken:
                blocked[c.invoice_id] = [CARRIED_FORWARD]
            continue
        available[account.account_id] = room - net
        reservations[account.account_id] = reservations.get(account.account_id, Decimal(0)) + net
        standing = payees[payee_id]
        releases.append(
            PlannedPayout(
                payout_id=payout_id_for(run_id, payee_id, cur, entity, account.account_id),
                run_id=run_id,
                payee_id=payee_id,
                currency=cur,
                legal_entity=entity,
                funding_account_id=account.account_id,
                payout_account_ref=standing.payout_account_ref,
                amount=net,
                lines=tuple(
                    _line(c, discounts.get(c.invoice_id, Decimal(0)))
                    for c in sorted(taken, key=lambda c: c.invoice_id)
                ),
                expedite=expedite,
            )
        )

    payee_of = {c.invoice_id: c.payee_id for c in in_run}
    blocks = tuple(
        Block(i, payee_of[i], tuple(blocked[i]), not_before.get(i) if NOT_DUE in blocked[i] else None)
        for i in sorted(blocked)
    )
    return RunPlan(releases=tuple(releases), blocks=blocks, reservations=reservations)


def _line(c: Candidate, discount: Decimal) -> PayoutLine:
    return PayoutLine(c.invoice_id, c.signed_amount - discount, discount)


def _terms_of(
    c: Candidate, pos: Mapping[str, PoInForce], policies: TermsPolicies, today: date
) -> tuple[date | None, Decimal]:
    """SPEC §13.5 for one approved invoice: the first day it may be paid (None: today) and the
    discount a release today takes. Credit notes only make room: no terms, no discount."""
    if not c.approved or c.document_type != "invoice" or c.issue_date is None:
        return None, Decimal(0)
    if c.payable_amount is None or c.currency is None:
        return None, Decimal(0)
    po = pos.get(c.po_number or "")
    terms = parse_terms(po.payment_terms if po is not None else None)
    when = schedule(c.issue_date, terms, policies.of(c.business_unit), today)
    discount = discount_amount(c.payable_amount, terms, c.currency) if when.discount_until else Decimal(0)
    return when.not_before, discount


# --- invariants ------------------------------------------------------------------------------


def plan_violations(
    plan: RunPlan, candidates: Sequence[Candidate], funding: Sequence[FundingAccount]
) -> list[str]:
    """The promises of a run, checked in one place (by tests and by every run before it saves):
    each candidate is paid at most once, paid or blocked never both; every payout is positive
    and adds up; no account gives more than it has."""
    problems: list[str] = []
    by_id = {c.invoice_id: c for c in candidates}
    paid = [line.invoice_id for p in plan.releases for line in p.lines]
    blocked = [b.invoice_id for b in plan.blocks]
    if len(paid) != len(set(paid)):
        problems.append("an invoice is in two payouts")
    if set(paid) & set(blocked):
        problems.append("an invoice is both paid and blocked")
    if any(not b.reasons for b in plan.blocks):
        problems.append("a block without a reason")
    for p in plan.releases:
        if p.amount <= 0 or p.amount != sum((line.amount for line in p.lines), Decimal(0)):
            problems.append(f"payout {p.payout_id} amount does not add up or is not positive")
        for line in p.lines:
            c = by_id.get(line.invoice_id)
            if (
                c is None
                or c.in_live_payout
                or line.amount + line.discount != c.signed_amount
                or line.discount < 0
                or (line.discount and (c.document_type != "invoice" or line.amount <= 0))
            ):
                problems.append(f"payout {p.payout_id} pays {line.invoice_id} wrongly")
            elif (c.payee_id, c.currency, c.legal_entity) != (p.payee_id, p.currency, p.legal_entity):
                problems.append(f"payout {p.payout_id} mixes groups")
    limits = {acc.account_id: acc.available for acc in funding}
    for account_id, reserved in plan.reservations.items():
        if reserved > limits.get(account_id, Decimal(0)):
            problems.append(f"account {account_id} overdrawn")
    per_account: dict[str, Decimal] = {}
    for p in plan.releases:
        per_account[p.funding_account_id] = per_account.get(p.funding_account_id, Decimal(0)) + p.amount
    if per_account != dict(plan.reservations):
        problems.append("reservations do not match the payouts")
    return problems
