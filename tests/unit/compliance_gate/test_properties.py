"""Properties of every evaluation: canonical reasons, eligible iff none, and known codes only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.compliance_gate.domain import (
    AmlScreening,
    CompliancePolicy,
    PayeeProfile,
    Reason,
    TaxForm,
    eligibility_from,
    evaluate,
)

_instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
)
_dates = st.dates(min_value=date(1995, 1, 1), max_value=date(2060, 1, 1))
_tax_forms = st.builds(
    TaxForm,
    type=st.sampled_from(["W-9", "W-8BEN", "W-8BEN-E"]),
    status=st.sampled_from(["valid", "invalid", "missing"]),
    signed_at=st.none() | _dates,
    expires_at=st.none() | _dates,
)
_profiles = st.builds(
    PayeeProfile,
    payee_id=st.just("payee-1"),
    profile_version=st.integers(min_value=0, max_value=10**6),
    entity_type=st.sampled_from(["individual", "business"]),
    country=st.sampled_from(["US", "DE", "GR", "EL", "FR", "GB", "CH", "JP", "CA"]),
    aml=st.builds(AmlScreening, status=st.sampled_from(["clear", "review", "hit"]), screened_at=_instants),
    kyc_status=st.none() | st.sampled_from(["verified", "pending", "failed"]),
    kyc_verified_at=st.none() | _instants,
    kyb_status=st.none() | st.sampled_from(["verified", "pending", "failed"]),
    beneficial_owners_verified=st.booleans(),
    tax_form=st.none() | _tax_forms,
    vat_status=st.none() | st.sampled_from(["valid", "invalid", "unchecked"]),
    vat_checked_at=st.none() | _instants,
    payout_account_ref=st.none() | st.just("acct_tok"),
    # Every stored profile has its receipt time: what "dated in the future" is judged against.
    received_at=_instants,
)
_policies = st.builds(
    CompliancePolicy,
    aml_max_age=st.integers(min_value=1, max_value=2000).map(lambda d: timedelta(days=d)),
    eu_vat_check=st.booleans(),
)


@given(profile=st.none() | _profiles, now=_instants, policy=_policies)
def test_reasons_are_sorted_unique_and_eligible_iff_there_are_none(
    profile: PayeeProfile | None, now: datetime, policy: CompliancePolicy
) -> None:
    outcome = evaluate(profile, now, policy)
    assert list(outcome.reasons) == sorted(set(outcome.reasons))
    assert outcome.eligible is (len(outcome.reasons) == 0)
    assert set(outcome.reasons) <= set(Reason)
    # payee_unknown is reserved for "never heard of this payee".
    assert (Reason.PAYEE_UNKNOWN in outcome.reasons) is (profile is None)


@given(profile=_profiles, now=_instants, policy=_policies, later=st.integers(min_value=0, max_value=5000))
def test_time_passing_never_makes_a_payee_eligible(
    profile: PayeeProfile, now: datetime, policy: CompliancePolicy, later: int
) -> None:
    # Expiries and stale screenings only accumulate with time, which is why a sweep needs no
    # new event to block a payee and never unblocks one by itself — not even once the clock
    # passes a date that was in the future when the profile arrived (SPEC §15).
    before = set(evaluate(profile, now, policy).reasons)
    after = set(evaluate(profile, now + timedelta(days=later), policy).reasons)
    assert before <= after


@given(st.lists(st.sampled_from(list(Reason))))
def test_eligibility_from_any_reasons_is_canonical(reasons: list[Reason]) -> None:
    outcome = eligibility_from(reasons)
    assert list(outcome.reasons) == sorted(set(reasons))
    assert outcome.eligible is (not reasons)
    assert outcome == eligibility_from(reversed(reasons))
