"""SPEC §13.3, pure: a changed payout account is unconfirmed until someone other than its author
confirms it AND the cooling-off since the change has passed; the first account needs neither."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.compliance_gate.domain import (
    NO_ACCOUNT,
    AccountControl,
    AmlScreening,
    CompliancePolicy,
    Confirmation,
    ConfirmationOutcome,
    ConfirmationRefusal,
    PayeeProfile,
    PayeeRecord,
    PendingAccount,
    ProfileOutcome,
    Reason,
    TaxForm,
    decide_confirmations,
    decide_profile_updates,
    plan_sweep,
)
from services.compliance_gate.domain.accounts import confirm, is_unconfirmed, on_profile_account

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
POLICY = CompliancePolicy(account_cooling_off=DAY)
V1 = PayeeProfile(
    payee_id="p-1",
    profile_version=1,
    entity_type="individual",
    country="DE",
    aml=AmlScreening("clear", datetime(2027, 5, 1, tzinfo=UTC)),
    kyc_status="verified",
    tax_form=TaxForm("W-8BEN", "valid", signed_at=date(2026, 3, 10)),
    payout_account_ref="tok-1",
    updated_by="vendor.admin@example.com",
)
CHANGE = replace(V1, profile_version=2, payout_account_ref="tok-2", occurred_at=NOW)


def change_of(ref: str = "tok-2", by: str | None = "vendor.admin@example.com") -> AccountControl:
    return AccountControl("tok-1", PendingAccount(ref, NOW, by))


def test_the_first_account_needs_no_confirmation() -> None:
    [d] = decide_profile_updates({}, [V1], NOW, POLICY)
    assert d.eligibility is not None and d.eligibility.eligible
    assert d.account == AccountControl(confirmed_ref="tok-1")
    # also for a known payee naming an account for the first time
    no_account = replace(V1, payout_account_ref=None)
    [first, named] = decide_profile_updates({}, [no_account, replace(CHANGE, profile_version=2)], NOW, POLICY)
    assert first.account == NO_ACCOUNT and named.account == AccountControl(confirmed_ref="tok-2")
    assert named.eligibility is not None and named.eligibility.eligible


def test_a_changed_account_makes_the_payee_ineligible_with_the_single_reason() -> None:
    [_, d] = decide_profile_updates({}, [V1, CHANGE], NOW, POLICY)
    assert d.outcome is ProfileOutcome.PUBLISHED and d.status is not None
    assert d.status.eligibility.codes == ["payout_account_unconfirmed"]
    assert d.account == AccountControl("tok-1", PendingAccount("tok-2", NOW, "vendor.admin@example.com"))
    # with other failing rules, every reason is listed: the account adds exactly one code
    [_, both] = decide_profile_updates({}, [V1, replace(CHANGE, kyc_status="pending")], NOW, POLICY)
    assert both.eligibility is not None
    assert both.eligibility.codes == ["kyc_not_verified", "payout_account_unconfirmed"]


def test_changing_back_to_the_confirmed_account_ends_the_pending_change() -> None:
    back = replace(V1, profile_version=3, occurred_at=NOW)
    [_, _, d] = decide_profile_updates({}, [V1, CHANGE, back], NOW, POLICY)
    assert d.account == AccountControl(confirmed_ref="tok-1") and d.eligibility is not None
    assert d.eligibility.eligible


@pytest.mark.parametrize(
    ("confirmed", "elapsed", "unconfirmed"),
    [
        (False, DAY * 10, True),  # time alone never confirms
        (True, DAY - timedelta(microseconds=1), True),  # one instant short of the cooling-off
        (True, DAY, False),  # exactly at its end
        (True, DAY + timedelta(seconds=1), False),
        (True, timedelta(0), True),
    ],
)
def test_the_cooling_off_boundary(confirmed: bool, elapsed: timedelta, unconfirmed: bool) -> None:
    pending = PendingAccount("tok-2", NOW, "a@x", "b@x" if confirmed else None)
    assert is_unconfirmed(AccountControl("tok-1", pending), NOW + elapsed, DAY) is unconfirmed


@pytest.mark.parametrize(
    ("account", "ref", "by", "outcome", "refusals"),
    [
        (change_of(), "tok-2", "treasurer@example.com", ConfirmationOutcome.CONFIRMED, ()),
        (change_of(), "tok-9", "treasurer@example.com", ConfirmationOutcome.REFUSED,
         (ConfirmationRefusal.ACCOUNT_NOT_CURRENT,)),
        (change_of(), "tok-1", "treasurer@example.com", ConfirmationOutcome.REFUSED,
         (ConfirmationRefusal.ACCOUNT_NOT_CURRENT,)),  # the old account is not the current one
        (change_of(), "tok-2", "Vendor.Admin@Example.com", ConfirmationOutcome.REFUSED,
         (ConfirmationRefusal.SELF_CONFIRMATION,)),
        (change_of(by=None), "tok-2", "treasurer@example.com", ConfirmationOutcome.CONFIRMED, ()),
        (AccountControl("tok-1"), "tok-1", "treasurer@example.com",
         ConfirmationOutcome.ALREADY_CONFIRMED, ()),
        (AccountControl("tok-1"), "tok-2", "treasurer@example.com", ConfirmationOutcome.REFUSED,
         (ConfirmationRefusal.ACCOUNT_NOT_CURRENT,)),
        (None, "tok-2", "treasurer@example.com", ConfirmationOutcome.REFUSED,
         (ConfirmationRefusal.PAYEE_UNKNOWN,)),
    ],
)  # fmt: skip
def test_confirmations(
    account: AccountControl | None,
    ref: str,
    by: str,
    outcome: ConfirmationOutcome,
    refusals: tuple[ConfirmationRefusal, ...],
) -> None:
    decision = confirm(account, ref, by, NOW + timedelta(hours=1), DAY)
    assert (decision.outcome, decision.refusals) == (outcome, refusals)
    if outcome is not ConfirmationOutcome.CONFIRMED:
        assert decision.account == (account or NO_ACCOUNT)


def test_a_confirmation_then_the_sweep_at_the_end_of_the_cooling_off() -> None:
    [_, changed] = decide_profile_updates({}, [V1, CHANGE], NOW, POLICY)
    assert changed.eligibility is not None
    record = PayeeRecord(CHANGE, changed.eligibility, changed.account)
    [r] = decide_confirmations(
        {"p-1": record},
        [Confirmation("p-1", "tok-2", "treasurer@example.com")],
        NOW + timedelta(hours=2),
        POLICY,
    )
    assert r.outcome is ConfirmationOutcome.CONFIRMED and r.status is None  # still cooling off
    assert r.record is not None and r.record.eligibility.codes == ["payout_account_unconfirmed"]
    assert plan_sweep([r.record], NOW + DAY - timedelta(seconds=1), POLICY) == []
    [swept] = plan_sweep([r.record], NOW + DAY, POLICY)
    assert swept.eligibility.eligible and swept.status.payout_account_ref == "tok-2"


def test_a_confirmation_after_the_cooling_off_makes_the_payee_eligible_at_once() -> None:
    [_, changed] = decide_profile_updates({}, [V1, CHANGE], NOW, POLICY)
    assert changed.eligibility is not None
    record = PayeeRecord(CHANGE, changed.eligibility, changed.account)
    [r] = decide_confirmations(
        {"p-1": record}, [Confirmation("p-1", "tok-2", "treasurer@example.com")], NOW + 2 * DAY, POLICY
    )
    assert r.status is not None and r.status.eligibility.eligible and r.status.payout_account_ref == "tok-2"
    assert r.record is not None and r.record.account == AccountControl(confirmed_ref="tok-2")


def test_a_new_change_while_one_is_pending_restarts_the_cooling_off() -> None:
    later = NOW + timedelta(hours=20)
    account = on_profile_account(
        change_of(), "tok-3", changed_at=later, updated_by="x@example.com", now=later, cooling_off=DAY
    )
    assert account == AccountControl("tok-1", PendingAccount("tok-3", later, "x@example.com"))
    assert str(Reason.PAYOUT_ACCOUNT_UNCONFIRMED) == "payout_account_unconfirmed"
