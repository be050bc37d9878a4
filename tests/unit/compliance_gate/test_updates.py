"""compliance_gate, pure: several versions of one payee in a batch, each judged against the state
the one before it left; and the sweep's plan."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from services.compliance_gate.domain import (
    AmlScreening,
    CompliancePolicy,
    PayeeProfile,
    PayeeRecord,
    ProfileOutcome,
    Reason,
    TaxForm,
    decide_profile_updates,
    eligibility_from,
    evaluate,
    plan_sweep,
)

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
POLICY = CompliancePolicy()
V1 = PayeeProfile(
    payee_id="p-1",
    profile_version=1,
    entity_type="individual",
    country="DE",
    aml=AmlScreening("clear", datetime(2027, 5, 1, tzinfo=UTC)),
    kyc_status="verified",
    tax_form=TaxForm("W-8BEN", "valid", signed_at=date(2024, 3, 10)),
    payout_account_ref="tok-1",
)


def test_versions_of_one_payee_are_decided_in_order() -> None:
    v2 = replace(V1, profile_version=2, kyc_status="pending")
    v3 = replace(V1, profile_version=3, kyc_status="pending")
    decisions = decide_profile_updates({}, [V1, v2, v2, replace(V1), v3], NOW, POLICY)
    assert [d.outcome for d in decisions] == [
        ProfileOutcome.PUBLISHED,  # first evaluation
        ProfileOutcome.PUBLISHED,  # became ineligible
        ProfileOutcome.STALE_VERSION,  # the same version again
        ProfileOutcome.STALE_VERSION,  # older
        ProfileOutcome.UNCHANGED,  # newer, nothing downstream needs
    ]
    assert [d.stored_version for d in decisions] == [None, 1, 2, 2, 2]
    assert decisions[1].was_eligible is True
    assert decisions[1].status is not None and decisions[1].status.eligibility.reasons == (
        Reason.KYC_NOT_VERIFIED,
    )


def test_a_stored_payee_is_the_starting_point() -> None:
    stored = {"p-1": PayeeRecord(V1, evaluate(V1, NOW, POLICY))}
    [same, new_account] = decide_profile_updates(
        stored, [V1, replace(V1, profile_version=2, payout_account_ref="tok-2")], NOW, POLICY
    )
    assert same.outcome is ProfileOutcome.STALE_VERSION
    assert new_account.outcome is ProfileOutcome.PUBLISHED


def test_the_sweep_plans_only_what_changed() -> None:
    fresh = PayeeRecord(V1, eligibility_from([]))
    published_wrong = PayeeRecord(replace(V1, payee_id="p-2"), eligibility_from([Reason.AML_NOT_CLEAR]))
    [change] = plan_sweep([fresh, published_wrong], NOW, POLICY)
    assert change.profile.payee_id == "p-2" and change.eligibility.eligible
    # 2028: the W-8BEN signed in 2024 has expired for both.
    assert [c.eligibility.reasons for c in plan_sweep([fresh], datetime(2028, 1, 1, tzinfo=UTC), POLICY)] == [
        (Reason.TAX_FORM_EXPIRED,)
    ]
