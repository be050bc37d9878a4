"""Payout eligibility of a payee (SPEC §7) — pure: dataclasses and functions, no I/O, no clock.

A payee is eligible only when every rule below holds; otherwise it is ineligible with *every*
failing reason, sorted and without duplicates, so "why is this payee blocked" has one full answer:

- individual: KYC verified (`kyc_not_verified`);
- business: KYB verified (`kyb_not_verified`) and beneficial owners verified
  (`beneficial_owners_unverified`) — two independent codes, both listed when KYB is absent;
- AML status clear (`aml_not_clear`) and screened no longer ago than the policy's maximum age
  (`aml_screening_stale`); a screening exactly at the maximum age is still fresh;
- tax form: US payee → W-9, non-US individual → W-8BEN, non-US business → W-8BEN-E
  (`tax_form_missing`, `tax_form_invalid`, `tax_form_wrong_type`, `tax_form_expired`);
- EU business that gave a VAT number → VAT status `valid` (`vat_invalid`), while the policy's
  EU VAT switch is on;
- the payee is known at all (`payee_unknown`).

A verification, screening or signature dated more than `FUTURE_TOLERANCE` after the profile was
received counts as absent (SPEC §15): an AML screening dated 2099 never makes a payee eligible.
It is judged against the receipt time, not against each evaluation's `now`, so the periodic
sweep keeps it absent after the clock has passed the claimed date: nothing shows the fact
happened when the profile said, and time passing still never makes a payee eligible by itself
(only a new profile version with a believable date does).

Time is always an argument (`now`), so a sweep can re-evaluate every payee at one instant and
tests can stand on either side of an expiry boundary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Literal

from services.compliance_gate.domain.accounts import (
    DEFAULT_COOLING_OFF,
    NO_ACCOUNT,
    AccountControl,
    is_unconfirmed,
)

EntityType = Literal["individual", "business"]
VerificationStatus = Literal["verified", "pending", "failed"]
AmlStatus = Literal["clear", "review", "hit"]
TaxFormType = Literal["W-9", "W-8BEN", "W-8BEN-E"]
TaxFormStatus = Literal["valid", "invalid", "missing"]
VatStatus = Literal["valid", "invalid", "unchecked"]


class Reason(StrEnum):
    """SPEC §7 reason codes; the string values are the public codes."""

    PAYEE_UNKNOWN = "payee_unknown"
    KYC_NOT_VERIFIED = "kyc_not_verified"
    KYB_NOT_VERIFIED = "kyb_not_verified"
    BENEFICIAL_OWNERS_UNVERIFIED = "beneficial_owners_unverified"
    AML_NOT_CLEAR = "aml_not_clear"
    AML_SCREENING_STALE = "aml_screening_stale"
    TAX_FORM_MISSING = "tax_form_missing"
    TAX_FORM_INVALID = "tax_form_invalid"
    TAX_FORM_EXPIRED = "tax_form_expired"
    TAX_FORM_WRONG_TYPE = "tax_form_wrong_type"
    VAT_INVALID = "vat_invalid"
    PAYOUT_ACCOUNT_UNCONFIRMED = "payout_account_unconfirmed"  # SPEC §13.3


UNITED_STATES = "US"

# The 27 EU member states by ISO 3166-1 alpha-2 (the `country` field's standard), which names
# Greece "GR". EU VAT numbers prefix Greece with "EL" instead, and an upstream system that copies
# the VAT prefix into `country` would otherwise silently skip the VAT rule, so "EL" counts too.
EU_MEMBER_STATES: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
        "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    }
)  # fmt: skip
GREECE_VAT_PREFIX = "EL"
EU_COUNTRIES: frozenset[str] = EU_MEMBER_STATES | {GREECE_VAT_PREFIX}

# A W-8 without an explicit expiry stays in force until the end of the third calendar year after
# the year it was signed (IRS rule for W-8BEN/W-8BEN-E; SPEC §7).
W8_VALIDITY_CALENDAR_YEARS = 3
W8_FORMS: frozenset[str] = frozenset({"W-8BEN", "W-8BEN-E"})

# Clocks disagree by seconds, not by more: anything dated further ahead was not done yet (SPEC §15).
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class CompliancePolicy:
    """The configurable parts of SPEC §7 (GateConfig loads them from the settings at start)."""

    aml_max_age: timedelta = timedelta(days=365)
    eu_vat_check: bool = True
    # SPEC §13.3: a changed payout account waits this long after the change, confirmed or not.
    account_cooling_off: timedelta = DEFAULT_COOLING_OFF


@dataclass(frozen=True)
class AmlScreening:
    status: AmlStatus
    screened_at: datetime


@dataclass(frozen=True)
class TaxForm:
    """The tax form on file. The TIN is deliberately not part of the model: no rule needs it."""

    type: TaxFormType
    status: TaxFormStatus
    signed_at: date | None = None
    expires_at: date | None = None


@dataclass(frozen=True)
class PayeeProfile:
    """What the rules need to know about a payee; names, tax ids and VAT numbers are left out.

    `vat_status` is None when the payee gave no VAT number (the inbound contract makes the
    number mandatory whenever a VAT block is present, so a status implies a number).
    """

    payee_id: str
    profile_version: int
    entity_type: EntityType
    country: str
    aml: AmlScreening
    kyc_status: VerificationStatus | None = None
    kyc_verified_at: datetime | None = None
    kyb_status: VerificationStatus | None = None
    beneficial_owners_verified: bool = False
    tax_form: TaxForm | None = None
    vat_status: VatStatus | None = None
    vat_checked_at: datetime | None = None
    payout_account_ref: str | None = None
    # When compliance_gate received this version (its own clock): what "in the future" is judged
    # against. None for a profile built elsewhere (tests, tools): judged at the evaluation's `now`.
    received_at: datetime | None = None
    # SPEC §13.3: who sent this version, and when it happened (its envelope's occurred_at): a
    # changed payout account cools off from then, and only someone else may confirm it.
    updated_by: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Eligibility:
    """The outcome of one evaluation; build it with `eligibility_from` so reasons are canonical."""

    reasons: tuple[Reason, ...]

    @property
    def eligible(self) -> bool:
        return not self.reasons

    @property
    def codes(self) -> list[str]:
        """The reason codes as plain strings, for events and log lines."""
        return [str(r) for r in self.reasons]

    @property
    def fingerprint(self) -> str:
        """A stable text naming the outcome; part of the sweep's deterministic event ids."""
        return "eligible" if self.eligible else "ineligible:" + ",".join(self.codes)


def eligibility_from(reasons: Iterable[Reason]) -> Eligibility:
    """Sorted and deduplicated, so equal outcomes compare equal and fingerprint identically."""
    return Eligibility(tuple(sorted(set(reasons))))


ELIGIBLE = eligibility_from(())
UNKNOWN_PAYEE = eligibility_from((Reason.PAYEE_UNKNOWN,))


def required_tax_form(country: str, entity_type: EntityType) -> TaxFormType:
    if country == UNITED_STATES:
        return "W-9"
    return "W-8BEN" if entity_type == "individual" else "W-8BEN-E"


def w8_valid_through(form: TaxForm) -> date | None:
    """The last day a W-8 is in force: its `expires_at`, else 31 December of the third calendar
    year after `signed_at` (signed 2024-03-10 → 2027-12-31). None when neither date is known."""
    if form.expires_at is not None:
        return form.expires_at
    if form.signed_at is not None:
        return date(form.signed_at.year + W8_VALIDITY_CALENDAR_YEARS, 12, 31)
    return None


def is_dated_in_future(moment: datetime | date | None, now: datetime) -> bool:
    """SPEC §15: dated more than FUTURE_TOLERANCE after `now` (the profile's receipt), so it
    counts as absent. A date
    (a signature's `signed_at`) stands for its first instant in UTC, the zone calendar days are
    judged in here; a date of today is never in the future."""
    if moment is None:
        return False
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return moment - now > FUTURE_TOLERANCE


def is_reportable_1099_nec(country: str) -> bool:
    """SPEC §7: US payees are tagged for 1099-NEC reporting (the ledger totals them per year)."""
    return country == UNITED_STATES


def is_newer_profile(stored_version: int | None, incoming_version: int) -> bool:
    """SPEC §3: a lower profile_version than the stored one is ignored; an equal one was already
    applied (a re-publish under a new event id), so only a strictly higher version counts."""
    return stored_version is None or incoming_version > stored_version


def evaluate(
    profile: PayeeProfile | None,
    now: datetime,
    policy: CompliancePolicy,
    account: AccountControl = NO_ACCOUNT,
) -> Eligibility:
    """Every failing SPEC §7 rule for `profile` at `now` (an aware datetime), and SPEC §13.3's
    `payout_account_unconfirmed` while a changed payout account is not confirmed yet."""
    if profile is None:
        return UNKNOWN_PAYEE
    received = profile.received_at or now
    unconfirmed = is_unconfirmed(account, now, policy.account_cooling_off)
    return eligibility_from(
        [
            *_identity_reasons(profile, received),
            *_aml_reasons(profile.aml, now, received, policy),
            *_tax_form_reasons(profile, now, received),
            *_vat_reasons(profile, received, policy),
            *([Reason.PAYOUT_ACCOUNT_UNCONFIRMED] if unconfirmed else []),
        ]
    )


def _identity_reasons(profile: PayeeProfile, received: datetime) -> list[Reason]:
    if profile.entity_type == "individual":
        # A verification dated in the future has not happened: the KYC is not verified.
        verified = profile.kyc_status == "verified" and not is_dated_in_future(
            profile.kyc_verified_at, received
        )
        return [] if verified else [Reason.KYC_NOT_VERIFIED]
    reasons = []
    if profile.kyb_status != "verified":
        reasons.append(Reason.KYB_NOT_VERIFIED)
    if not profile.beneficial_owners_verified:
        reasons.append(Reason.BENEFICIAL_OWNERS_UNVERIFIED)
    return reasons


def _aml_reasons(
    aml: AmlScreening, now: datetime, received: datetime, policy: CompliancePolicy
) -> list[Reason]:
    if is_dated_in_future(aml.screened_at, received):
        # No screening at all: nothing says the payee is clear, nor screened within the max age.
        return [Reason.AML_NOT_CLEAR, Reason.AML_SCREENING_STALE]
    reasons = []
    if aml.status != "clear":
        reasons.append(Reason.AML_NOT_CLEAR)
    # "Screened within the max age": an age exactly equal to the maximum still passes.
    if now - aml.screened_at > policy.aml_max_age:
        reasons.append(Reason.AML_SCREENING_STALE)
    return reasons


def _tax_form_reasons(profile: PayeeProfile, now: datetime, received: datetime) -> list[Reason]:
    form = profile.tax_form
    # A form marked "missing" is no form at all: its type and dates say nothing, so no more codes.
    if form is None or form.status == "missing":
        return [Reason.TAX_FORM_MISSING]
    reasons = []
    if form.type != required_tax_form(profile.country, profile.entity_type):
        reasons.append(Reason.TAX_FORM_WRONG_TYPE)
    if form.status == "invalid":
        reasons.append(Reason.TAX_FORM_INVALID)
    if is_dated_in_future(form.signed_at, received):
        # Not signed yet, so not a valid form; nor may a future signature date stretch a W-8's term.
        reasons.append(Reason.TAX_FORM_INVALID)
        form = TaxForm(form.type, form.status, signed_at=None, expires_at=form.expires_at)
    if form.type in W8_FORMS:
        valid_through = w8_valid_through(form)
        if valid_through is None:
            # Without signed_at or expires_at nobody can show the W-8 is in force: fail closed.
            reasons.append(Reason.TAX_FORM_INVALID)
        elif now.astimezone(UTC).date() > valid_through:  # calendar days are judged in UTC
            reasons.append(Reason.TAX_FORM_EXPIRED)
    # A W-9 does not expire: any expires_at on one is ignored.
    return reasons


def _vat_reasons(profile: PayeeProfile, received: datetime, policy: CompliancePolicy) -> list[Reason]:
    # A check dated in the future has not happened: the number counts as unchecked.
    status = "unchecked" if is_dated_in_future(profile.vat_checked_at, received) else profile.vat_status
    applies = (
        policy.eu_vat_check
        and profile.entity_type == "business"
        and profile.country in EU_COUNTRIES
        and profile.vat_status is not None
    )
    return [Reason.VAT_INVALID] if applies and status != "valid" else []


@dataclass(frozen=True)
class PayeeStatus:
    """What `payee.eligibility_changed` tells downstream about a payee, apart from the version
    and the evaluation time: payout release and the ledger need nothing else."""

    payee_id: str
    eligibility: Eligibility
    country: str
    entity_type: EntityType
    payout_account_ref: str | None
    reportable_1099_nec: bool


def status_of(profile: PayeeProfile, eligibility: Eligibility) -> PayeeStatus:
    return PayeeStatus(
        payee_id=profile.payee_id,
        eligibility=eligibility,
        country=profile.country,
        entity_type=profile.entity_type,
        payout_account_ref=profile.payout_account_ref,
        reportable_1099_nec=is_reportable_1099_nec(profile.country),
    )


def needs_publication(previous: PayeeStatus | None, current: PayeeStatus) -> bool:
    """The first evaluation of a payee always publishes; after that, only a change publishes.

    A change of (eligible, reasons) is the point of the event. A change of the payout account
    or of the 1099-NEC tag with eligibility unchanged also publishes: payout release pays to the
    account ref it last heard of, so keeping quiet would send money to a replaced account.
    """
    return previous is None or previous != current
