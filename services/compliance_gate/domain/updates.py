"""What a batch of profile updates and a sweep decide, over plain data (SPEC §3, §7) — pure.

A batch may hold several versions of one payee: each is judged against the state the one
before it left, exactly as if the records had been handled one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.compliance_gate.domain.accounts import (
    NO_ACCOUNT,
    AccountControl,
    ConfirmationOutcome,
    ConfirmationRefusal,
    confirm,
    on_profile_account,
)
from services.compliance_gate.domain.eligibility import (
    CompliancePolicy,
    Eligibility,
    PayeeProfile,
    PayeeStatus,
    evaluate,
    is_newer_profile,
    needs_publication,
    status_of,
)


class ProfileOutcome(StrEnum):
    """What a `payee.profile_updated` did (the inbox row's result)."""

    STALE_VERSION = "stale_version"  # not newer than the stored version: nothing changes
    UNCHANGED = "unchanged"  # applied, nothing downstream needs to hear
    PUBLISHED = "published"  # applied, and payee.eligibility_changed published


@dataclass(frozen=True)
class PayeeRecord:
    """A payee as compliance_gate keeps it: its current profile and the eligibility last
    published for it (invariant: the row always describes what downstream already knows)."""

    profile: PayeeProfile
    eligibility: Eligibility
    account: AccountControl = NO_ACCOUNT  # SPEC §13.3


@dataclass(frozen=True)
class ProfileDecision:
    outcome: ProfileOutcome
    profile: PayeeProfile
    stored_version: int | None
    eligibility: Eligibility | None = None  # None when the version is stale
    status: PayeeStatus | None = None  # what is published (PUBLISHED only)
    was_eligible: bool | None = None
    account: AccountControl = NO_ACCOUNT


def decide_profile_updates(
    stored: Mapping[str, PayeeRecord],
    profiles: Sequence[PayeeProfile],
    now: datetime,
    policy: CompliancePolicy,
) -> list[ProfileDecision]:
    """One decision per profile, in order; each sees what the ones before it applied."""
    current = dict(stored)
    decisions = []
    for profile in profiles:
        before = current.get(profile.payee_id)
        stored_version = before.profile.profile_version if before is not None else None
        if not is_newer_profile(stored_version, profile.profile_version):
            decisions.append(ProfileDecision(ProfileOutcome.STALE_VERSION, profile, stored_version))
            continue
        account = on_profile_account(
            before.account if before is not None else NO_ACCOUNT,
            profile.payout_account_ref,
            changed_at=profile.occurred_at or now,
            updated_by=profile.updated_by,
            now=now,
            cooling_off=policy.account_cooling_off,
        )
        eligibility = evaluate(profile, now, policy, account)
        previous = status_of(before.profile, before.eligibility) if before is not None else None
        status = status_of(profile, eligibility)
        current[profile.payee_id] = PayeeRecord(profile, eligibility, account)
        published = needs_publication(previous, status)
        decisions.append(
            ProfileDecision(
                ProfileOutcome.PUBLISHED if published else ProfileOutcome.UNCHANGED,
                profile,
                stored_version,
                eligibility,
                status if published else None,
                previous.eligibility.eligible if previous is not None else None,
                account,
            )
        )
    return decisions


@dataclass(frozen=True)
class SweepChange:
    """A payee whose eligibility at the sweep's instant differs from what was published."""

    profile: PayeeProfile
    eligibility: Eligibility
    status: PayeeStatus


def plan_sweep(payees: Sequence[PayeeRecord], now: datetime, policy: CompliancePolicy) -> list[SweepChange]:
    """Re-evaluate every payee at `now` (expiries, stale screenings, a policy changed at restart)."""
    changes = []
    for payee in payees:
        eligibility = evaluate(payee.profile, now, policy, payee.account)
        current = status_of(payee.profile, eligibility)
        if needs_publication(status_of(payee.profile, payee.eligibility), current):
            changes.append(SweepChange(payee.profile, eligibility, current))
    return changes


# --- SPEC §13.3: payout account confirmations -------------------------------------------------


@dataclass(frozen=True)
class Confirmation:
    """A signed `payee.payout_account_confirmed`."""

    payee_id: str
    payout_account_ref: str
    confirmed_by: str


@dataclass(frozen=True)
class ConfirmationResult:
    outcome: ConfirmationOutcome
    refusals: tuple[ConfirmationRefusal, ...] = ()
    record: PayeeRecord | None = None  # the payee after it (CONFIRMED only): to save
    status: PayeeStatus | None = None  # what is published, when what downstream knows changed


def decide_confirmations(
    stored: Mapping[str, PayeeRecord],
    confirmations: Sequence[Confirmation],
    now: datetime,
    policy: CompliancePolicy,
) -> list[ConfirmationResult]:
    """One result per confirmation, in order; each sees what the ones before it changed."""
    current = dict(stored)
    out = []
    for c in confirmations:
        before = current.get(c.payee_id)
        decision = confirm(
            before.account if before is not None else None,
            c.payout_account_ref,
            c.confirmed_by,
            now,
            policy.account_cooling_off,
        )
        if before is None or decision.outcome is not ConfirmationOutcome.CONFIRMED:
            out.append(ConfirmationResult(decision.outcome, decision.refusals))
            continue
        eligibility = evaluate(before.profile, now, policy, decision.account)
        record = PayeeRecord(before.profile, eligibility, decision.account)
        current[c.payee_id] = record
        previous, status = (
            status_of(before.profile, before.eligibility),
            status_of(before.profile, eligibility),
        )
        out.append(
            ConfirmationResult(
                decision.outcome, (), record, status if needs_publication(previous, status) else None
            )
        )
    return out
