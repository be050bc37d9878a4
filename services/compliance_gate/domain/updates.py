"""What a batch of profile updates and a sweep decide, over plain data (SPEC §3, §7) — pure.

A batch may hold several versions of one payee: each is judged against the state the one
before it left, exactly as if the records had been handled one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

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


@dataclass(frozen=True)
class ProfileDecision:
    outcome: ProfileOutcome
    profile: PayeeProfile
    stored_version: int | None
    eligibility: Eligibility | None = None  # None when the version is stale
    status: PayeeStatus | None = None  # what is published (PUBLISHED only)
    was_eligible: bool | None = None


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
        eligibility = evaluate(profile, now, policy)
        previous = status_of(before.profile, before.eligibility) if before is not None else None
        status = status_of(profile, eligibility)
        current[profile.payee_id] = PayeeRecord(profile, eligibility)
        published = needs_publication(previous, status)
        decisions.append(
            ProfileDecision(
                ProfileOutcome.PUBLISHED if published else ProfileOutcome.UNCHANGED,
                profile,
                stored_version,
                eligibility,
                status if published else None,
                previous.eligibility.eligible if previous is not None else None,
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
        eligibility = evaluate(payee.profile, now, policy)
        current = status_of(payee.profile, eligibility)
        if needs_publication(status_of(payee.profile, payee.eligibility), current):
            changes.append(SweepChange(payee.profile, eligibility, current))
    return changes
