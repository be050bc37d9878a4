"""SPEC §7 eligibility rules on the pure domain: every rule, every reason, and their boundaries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from services.compliance_gate.domain import (
    ELIGIBLE,
    EU_COUNTRIES,
    EU_MEMBER_STATES,
    AmlScreening,
    AmlStatus,
    CompliancePolicy,
    Eligibility,
    EntityType,
    PayeeProfile,
    PayeeStatus,
    Reason,
    TaxForm,
    VatStatus,
    VerificationStatus,
    eligibility_from,
    evaluate,
    is_newer_profile,
    is_reportable_1099_nec,
    needs_publication,
    required_tax_form,
    status_of,
    w8_valid_through,
)

R = Reason
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
POLICY = CompliancePolicy()
W8BEN = TaxForm("W-8BEN", "valid", signed_at=date(2025, 1, 15))
W8BENE = TaxForm("W-8BEN-E", "valid", signed_at=date(2025, 1, 15))
W9 = TaxForm("W-9", "valid", signed_at=date(2020, 5, 1))

# Fully compliant baselines: each test changes one thing and names the reasons it expects.
INDIVIDUAL_DE = PayeeProfile(
    payee_id="payee-ind-de",
    profile_version=1,
    entity_type="individual",
    country="DE",
    aml=AmlScreening("clear", NOW - timedelta(days=10)),
    kyc_status="verified",
    tax_form=W8BEN,
    payout_account_ref="acct_tok_1",
)
BUSINESS_DE = PayeeProfile(
    payee_id="payee-biz-de",
    profile_version=1,
    entity_type="business",
    country="DE",
    aml=AmlScreening("clear", NOW - timedelta(days=10)),
    kyb_status="verified",
    beneficial_owners_verified=True,
    tax_form=W8BENE,
    vat_status="valid",
)
INDIVIDUAL_US = replace(INDIVIDUAL_DE, payee_id="payee-ind-us", country="US", tax_form=W9)
BUSINESS_US = replace(BUSINESS_DE, payee_id="payee-biz-us", country="US", tax_form=W9, vat_status=None)


def reasons(
    profile: PayeeProfile | None, now: datetime = NOW, policy: CompliancePolicy = POLICY
) -> list[str]:
    return list(evaluate(profile, now, policy).reasons)


@pytest.mark.parametrize("profile", [INDIVIDUAL_DE, BUSINESS_DE, INDIVIDUAL_US, BUSINESS_US])
def test_a_fully_compliant_payee_is_eligible(profile: PayeeProfile) -> None:
    outcome = evaluate(profile, NOW, POLICY)
    assert outcome.eligible
    assert outcome.reasons == ()
    assert outcome == ELIGIBLE


def test_an_unknown_payee_is_ineligible_as_payee_unknown() -> None:
    outcome = evaluate(None, NOW, POLICY)
    assert not outcome.eligible
    assert outcome.reasons == (R.PAYEE_UNKNOWN,)


# --- identity: KYC for individuals, KYB + beneficial owners for businesses ------------------


@pytest.mark.parametrize(
    ("kyc_status", "expected"),
    [
        ("verified", []),
        ("pending", [R.KYC_NOT_VERIFIED]),
        ("failed", [R.KYC_NOT_VERIFIED]),
        (None, [R.KYC_NOT_VERIFIED]),
    ],
)
def test_an_individual_needs_verified_kyc(kyc_status: VerificationStatus | None, expected: list[str]) -> None:
    assert reasons(replace(INDIVIDUAL_DE, kyc_status=kyc_status)) == expected


@pytest.mark.parametrize(
    ("kyb_status", "owners_verified", "expected"),
    [
        ("verified", True, []),
        ("pending", True, [R.KYB_NOT_VERIFIED]),
        ("failed", True, [R.KYB_NOT_VERIFIED]),
        ("verified", False, [R.BENEFICIAL_OWNERS_UNVERIFIED]),
        ("failed", False, [R.BENEFICIAL_OWNERS_UNVERIFIED, R.KYB_NOT_VERIFIED]),
        # No KYB at all: neither the business nor its owners are verified.
        (None, False, [R.BENEFICIAL_OWNERS_UNVERIFIED, R.KYB_NOT_VERIFIED]),
    ],
)
def test_a_business_needs_verified_kyb_and_verified_beneficial_owners(
    kyb_status: VerificationStatus | None, owners_verified: bool, expected: list[str]
) -> None:
    profile = replace(BUSINESS_DE, kyb_status=kyb_status, beneficial_owners_verified=owners_verified)
    assert reasons(profile) == expected


def test_an_individual_is_not_judged_on_kyb_nor_a_business_on_kyc() -> None:
    assert reasons(replace(INDIVIDUAL_DE, kyb_status="failed", beneficial_owners_verified=False)) == []
    assert reasons(replace(BUSINESS_DE, kyc_status="failed")) == []


# --- AML: status clear and screening not older than the maximum age -------------------------


@pytest.mark.parametrize(
    ("status", "age", "expected"),
    [
        ("clear", timedelta(days=0), []),
        ("review", timedelta(days=1), [R.AML_NOT_CLEAR]),
        ("hit", timedelta(days=1), [R.AML_NOT_CLEAR]),
        ("clear", timedelta(days=365), []),  # exactly at the limit: still within it
        ("clear", timedelta(days=365, microseconds=1), [R.AML_SCREENING_STALE]),
        ("clear", timedelta(days=400), [R.AML_SCREENING_STALE]),
        ("hit", timedelta(days=400), [R.AML_NOT_CLEAR, R.AML_SCREENING_STALE]),
        ("clear", -timedelta(minutes=5), []),  # a clock ahead of ours by up to 5 minutes
        # Further ahead it has not happened yet: no screening at all (SPEC §15).
        ("clear", -timedelta(minutes=5, seconds=1), [R.AML_NOT_CLEAR, R.AML_SCREENING_STALE]),
        ("clear", -timedelta(days=365 * 70), [R.AML_NOT_CLEAR, R.AML_SCREENING_STALE]),
    ],
)
def test_aml_must_be_clear_and_screened_within_the_maximum_age(
    status: AmlStatus, age: timedelta, expected: list[str]
) -> None:
    profile = replace(INDIVIDUAL_DE, aml=AmlScreening(status, NOW - age))
    assert reasons(profile) == expected


def test_the_aml_maximum_age_is_configurable() -> None:
    profile = replace(INDIVIDUAL_DE, aml=AmlScreening("clear", NOW - timedelta(days=31)))
    assert reasons(profile, policy=CompliancePolicy(aml_max_age=timedelta(days=31))) == []
    assert reasons(profile, policy=CompliancePolicy(aml_max_age=timedelta(days=30))) == [
        R.AML_SCREENING_STALE
    ]


def test_aml_age_is_measured_across_time_zones() -> None:
    # 365 days to the instant, written with a +02:00 offset: exactly at the limit, not stale.
    plus_two = timezone(timedelta(hours=2))
    screened = (NOW - timedelta(days=365)).astimezone(plus_two)
    assert reasons(replace(INDIVIDUAL_DE, aml=AmlScreening("clear", screened))) == []


# --- tax forms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "entity_type", "required"),
    [
        ("US", "individual", "W-9"),
        ("US", "business", "W-9"),
        ("DE", "individual", "W-8BEN"),
        ("GB", "individual", "W-8BEN"),
        ("DE", "business", "W-8BEN-E"),
        ("JP", "business", "W-8BEN-E"),
    ],
)
def test_the_required_tax_form_depends_on_country_and_entity_type(
    country: str, entity_type: EntityType, required: str
) -> None:
    assert required_tax_form(country, entity_type) == required


@pytest.mark.parametrize(
    ("base", "form", "expected"),
    [
        (INDIVIDUAL_US, TaxForm("W-9", "valid"), []),
        (BUSINESS_US, TaxForm("W-9", "valid"), []),
        (INDIVIDUAL_DE, TaxForm("W-8BEN", "valid", signed_at=date(2025, 1, 1)), []),
        (BUSINESS_DE, TaxForm("W-8BEN-E", "valid", signed_at=date(2025, 1, 1)), []),
        (INDIVIDUAL_US, None, [R.TAX_FORM_MISSING]),
        (INDIVIDUAL_DE, None, [R.TAX_FORM_MISSING]),
        (INDIVIDUAL_US, TaxForm("W-9", "missing"), [R.TAX_FORM_MISSING]),
        # "missing" means no form: its type is not judged.
        (INDIVIDUAL_US, TaxForm("W-8BEN", "missing"), [R.TAX_FORM_MISSING]),
        (INDIVIDUAL_US, TaxForm("W-9", "invalid"), [R.TAX_FORM_INVALID]),
        (INDIVIDUAL_US, TaxForm("W-8BEN", "valid", signed_at=date(2025, 1, 1)), [R.TAX_FORM_WRONG_TYPE]),
        (BUSINESS_US, TaxForm("W-8BEN-E", "valid", signed_at=date(2025, 1, 1)), [R.TAX_FORM_WRONG_TYPE]),
        (INDIVIDUAL_DE, TaxForm("W-9", "valid"), [R.TAX_FORM_WRONG_TYPE]),
        (INDIVIDUAL_DE, TaxForm("W-8BEN-E", "valid", signed_at=date(2025, 1, 1)), [R.TAX_FORM_WRONG_TYPE]),
        (BUSINESS_DE, TaxForm("W-8BEN", "valid", signed_at=date(2025, 1, 1)), [R.TAX_FORM_WRONG_TYPE]),
        (BUSINESS_DE, TaxForm("W-9", "valid"), [R.TAX_FORM_WRONG_TYPE]),
        (INDIVIDUAL_DE, TaxForm("W-8BEN", "invalid", signed_at=date(2025, 1, 1)), [R.TAX_FORM_INVALID]),
        # Every failing reason, not just the first.
        (
            INDIVIDUAL_US,
            TaxForm("W-8BEN", "invalid", signed_at=date(2025, 1, 1)),
            [R.TAX_FORM_INVALID, R.TAX_FORM_WRONG_TYPE],
        ),
        (
            INDIVIDUAL_US,
            TaxForm("W-8BEN", "invalid", signed_at=date(2020, 1, 1)),
            [R.TAX_FORM_EXPIRED, R.TAX_FORM_INVALID, R.TAX_FORM_WRONG_TYPE],
        ),
        # A W-8 with neither signed_at nor expires_at cannot be shown to be in force.
        (INDIVIDUAL_DE, TaxForm("W-8BEN", "valid"), [R.TAX_FORM_INVALID]),
        (BUSINESS_DE, TaxForm("W-8BEN-E", "valid"), [R.TAX_FORM_INVALID]),
    ],
)
def test_tax_form_rules(base: PayeeProfile, form: TaxForm | None, expected: list[str]) -> None:
    assert reasons(replace(base, tax_form=form)) == expected


@pytest.mark.parametrize(
    ("signed_at", "valid_through"),
    [
        (date(2024, 3, 10), date(2027, 12, 31)),  # the SPEC's example
        (date(2024, 1, 1), date(2027, 12, 31)),
        (date(2024, 12, 31), date(2027, 12, 31)),
        (date(2024, 2, 29), date(2027, 12, 31)),
    ],
)
def test_a_w8_without_expiry_is_valid_through_the_end_of_the_third_calendar_year(
    signed_at: date, valid_through: date
) -> None:
    assert w8_valid_through(TaxForm("W-8BEN", "valid", signed_at=signed_at)) == valid_through


def test_an_explicit_w8_expiry_wins_over_the_signing_date() -> None:
    earlier = TaxForm("W-8BEN", "valid", signed_at=date(2024, 3, 10), expires_at=date(2025, 6, 30))
    later = TaxForm("W-8BEN", "valid", signed_at=date(2024, 3, 10), expires_at=date(2029, 6, 30))
    assert w8_valid_through(earlier) == date(2025, 6, 30)
    assert w8_valid_through(later) == date(2029, 6, 30)
    assert w8_valid_through(TaxForm("W-8BEN", "valid")) is None


def _at(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=UTC)


@pytest.mark.parametrize(
    ("base", "form", "now", "expected"),
    [
        # signed 2024-03-10 → valid through 2027-12-31, expired on 2028-01-01 (SPEC §7)
        (
            INDIVIDUAL_DE,
            TaxForm("W-8BEN", "valid", signed_at=date(2024, 3, 10)),
            _at(2027, 12, 31, 23, 59, 59),
            [],
        ),
        (
            INDIVIDUAL_DE,
            TaxForm("W-8BEN", "valid", signed_at=date(2024, 3, 10)),
            _at(2028, 1, 1),
            [R.TAX_FORM_EXPIRED],
        ),
        (
            BUSINESS_DE,
            TaxForm("W-8BEN-E", "valid", signed_at=date(2024, 3, 10)),
            _at(2027, 12, 31, 23, 59, 59),
            [],
        ),
        (
            BUSINESS_DE,
            TaxForm("W-8BEN-E", "valid", signed_at=date(2024, 3, 10)),
            _at(2028, 1, 1),
            [R.TAX_FORM_EXPIRED],
        ),
        # An explicit expires_at is the last valid day.
        (
            INDIVIDUAL_DE,
            TaxForm("W-8BEN", "valid", expires_at=date(2026, 6, 30)),
            _at(2026, 6, 30, 23, 59, 59),
            [],
        ),
        (
            INDIVIDUAL_DE,
            TaxForm("W-8BEN", "valid", expires_at=date(2026, 6, 30)),
            _at(2026, 7, 1),
            [R.TAX_FORM_EXPIRED],
        ),
        # A W-9 does not expire, even if upstream sends an expiry date.
        (INDIVIDUAL_US, TaxForm("W-9", "valid", signed_at=date(2001, 1, 1)), _at(2030, 1, 1), []),
        (INDIVIDUAL_US, TaxForm("W-9", "valid", expires_at=date(2020, 1, 1)), _at(2030, 1, 1), []),
    ],
)
def test_w8_expiry_boundaries(base: PayeeProfile, form: TaxForm, now: datetime, expected: list[str]) -> None:
    # AML is screened just before `now` so only the tax form can fail.
    profile = replace(base, tax_form=form, aml=AmlScreening("clear", now - timedelta(days=1)))
    assert reasons(profile, now=now) == expected


def test_the_w8_expiry_day_is_judged_in_utc() -> None:
    # 2028-01-01T00:30+01:00 is still 2027-12-31 in UTC: the form is in force.
    form = TaxForm("W-8BEN", "valid", signed_at=date(2024, 3, 10))
    now = datetime(2028, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    profile = replace(INDIVIDUAL_DE, tax_form=form, aml=AmlScreening("clear", now - timedelta(days=1)))
    assert reasons(profile, now=now) == []


# --- EU VAT ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "country", "vat_status", "switch_on", "expected"),
    [
        (BUSINESS_DE, "DE", "valid", True, []),
        (BUSINESS_DE, "DE", "invalid", True, [R.VAT_INVALID]),
        (BUSINESS_DE, "DE", "unchecked", True, [R.VAT_INVALID]),
        (BUSINESS_DE, "FR", "invalid", True, [R.VAT_INVALID]),
        (BUSINESS_DE, "GR", "invalid", True, [R.VAT_INVALID]),
        (BUSINESS_DE, "EL", "invalid", True, [R.VAT_INVALID]),  # Greece by its VAT prefix
        (BUSINESS_DE, "DE", "invalid", False, []),  # the policy switch is off
        (BUSINESS_DE, "DE", "unchecked", False, []),
        (BUSINESS_DE, "DE", None, True, []),  # no VAT number given: nothing to check
        (BUSINESS_DE, "GB", "invalid", True, []),  # not in the EU
        (BUSINESS_DE, "CH", "invalid", True, []),
        (BUSINESS_DE, "NO", "invalid", True, []),
        (INDIVIDUAL_DE, "DE", "invalid", True, []),  # only businesses
    ],
)
def test_an_eu_business_with_a_vat_number_needs_it_valid_while_the_switch_is_on(
    base: PayeeProfile, country: str, vat_status: VatStatus | None, switch_on: bool, expected: list[str]
) -> None:
    profile = replace(base, country=country, vat_status=vat_status)
    assert reasons(profile, policy=CompliancePolicy(eu_vat_check=switch_on)) == expected


def test_the_eu_has_27_member_states_and_greece_counts_under_both_codes() -> None:
    assert len(EU_MEMBER_STATES) == 27
    assert {"GR", "EL"} <= EU_COUNTRIES
    assert {"EL"} == EU_COUNTRIES - EU_MEMBER_STATES
    assert not {"GB", "CH", "NO", "IS", "LI", "US"} & EU_COUNTRIES


# --- all together ---------------------------------------------------------------------------


def test_every_failing_reason_is_listed_sorted() -> None:
    profile = replace(
        BUSINESS_DE,
        kyb_status="pending",
        beneficial_owners_verified=False,
        aml=AmlScreening("hit", NOW - timedelta(days=500)),
        tax_form=TaxForm("W-8BEN", "invalid", signed_at=date(2019, 5, 5)),
        vat_status="invalid",
    )
    assert reasons(profile) == [
        "aml_not_clear",
        "aml_screening_stale",
        "beneficial_owners_unverified",
        "kyb_not_verified",
        "tax_form_expired",
        "tax_form_invalid",
        "tax_form_wrong_type",
        "vat_invalid",
    ]
    assert not evaluate(profile, NOW, POLICY).eligible


def test_an_individual_failing_everything_lists_every_reason() -> None:
    profile = replace(
        INDIVIDUAL_US,
        kyc_status="failed",
        aml=AmlScreening("review", NOW - timedelta(days=366)),
        tax_form=None,
    )
    assert reasons(profile) == [
        "aml_not_clear",
        "aml_screening_stale",
        "kyc_not_verified",
        "tax_form_missing",
    ]


def test_reasons_are_sorted_and_deduplicated() -> None:
    outcome = eligibility_from([R.VAT_INVALID, R.AML_NOT_CLEAR, R.VAT_INVALID])
    assert outcome.reasons == (R.AML_NOT_CLEAR, R.VAT_INVALID)
    assert outcome == eligibility_from([R.AML_NOT_CLEAR, R.VAT_INVALID])


@pytest.mark.parametrize(
    ("outcome", "fingerprint"),
    [
        (ELIGIBLE, "eligible"),
        (eligibility_from([R.TAX_FORM_EXPIRED]), "ineligible:tax_form_expired"),
        (eligibility_from([R.VAT_INVALID, R.AML_NOT_CLEAR]), "ineligible:aml_not_clear,vat_invalid"),
    ],
)
def test_an_outcome_fingerprint_names_its_reasons(outcome: Eligibility, fingerprint: str) -> None:
    assert outcome.fingerprint == fingerprint


# --- 1099-NEC, versions, publication ------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "reportable"), [("US", True), ("DE", False), ("CA", False), ("PR", False)]
)
def test_us_payees_are_tagged_for_1099_nec(country: str, reportable: bool) -> None:
    assert is_reportable_1099_nec(country) is reportable
    assert status_of(replace(INDIVIDUAL_DE, country=country), ELIGIBLE).reportable_1099_nec is reportable


@pytest.mark.parametrize(
    ("stored", "incoming", "newer"),
    [(None, 0, True), (None, 7, True), (3, 4, True), (3, 3, False), (3, 2, False), (3, 0, False)],
)
def test_only_a_strictly_higher_profile_version_is_applied(
    stored: int | None, incoming: int, newer: bool
) -> None:
    assert is_newer_profile(stored, incoming) is newer


_BASE_STATUS = status_of(INDIVIDUAL_DE, ELIGIBLE)


@pytest.mark.parametrize(
    ("previous", "current", "publish"),
    [
        (None, _BASE_STATUS, True),  # first evaluation always publishes
        (_BASE_STATUS, _BASE_STATUS, False),
        # A new profile version with the same outcome is not a change.
        (_BASE_STATUS, status_of(replace(INDIVIDUAL_DE, profile_version=9), ELIGIBLE), False),
        (_BASE_STATUS, status_of(INDIVIDUAL_DE, eligibility_from([R.AML_NOT_CLEAR])), True),
        (
            status_of(INDIVIDUAL_DE, eligibility_from([R.AML_NOT_CLEAR])),
            status_of(INDIVIDUAL_DE, eligibility_from([R.AML_NOT_CLEAR, R.KYC_NOT_VERIFIED])),
            True,
        ),
        (status_of(INDIVIDUAL_DE, eligibility_from([R.AML_NOT_CLEAR])), _BASE_STATUS, True),
        # Payout release pays the account ref it last heard of: a new one must reach it.
        (_BASE_STATUS, status_of(replace(INDIVIDUAL_DE, payout_account_ref="acct_tok_2"), ELIGIBLE), True),
    ],
)
def test_publication_happens_on_the_first_evaluation_and_on_change_only(
    previous: PayeeStatus | None, current: PayeeStatus, publish: bool
) -> None:
    assert needs_publication(previous, current) is publish
