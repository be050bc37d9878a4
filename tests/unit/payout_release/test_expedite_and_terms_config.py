"""SPEC §13.2 refusal rules and §13.5 policy parsing and planning, pure."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.payout_release.config import parse_terms_policies, parse_treasury
from services.payout_release.domain import (
    ALL_AUTOMATED,
    Block,
    Candidate,
    Expedite,
    ExpediteSubject,
    FundingAccount,
    PayeeStanding,
    PoInForce,
    RunPlan,
    TermsPolicies,
    TermsPolicy,
    plan_run,
    plan_violations,
    refusal_reasons,
)
from shared.config import DEFAULT_ROLES_FILE, ConfigError, read_yaml

TREASURY = frozenset({"treasurer@example.com"})
APPROVED = ExpediteSubject(approved=True)


def exp(requested_by: str = "clerk@example.com", approved_by: str = "treasurer@example.com") -> Expedite:
    return Expedite("E1", "INV-1", requested_by, approved_by, "why")


@pytest.mark.parametrize(
    ("expedite", "subject", "plan", "reasons"),
    [
        (exp(), APPROVED, RunPlan(), ["not_approved"]),  # the run could not see it
        (exp("t@x", "t@x"), APPROVED, None, ["self_approval", "approver_not_treasury"]),
        (exp("Treasurer@Example.com "), APPROVED, None, ["self_approval"]),
        (exp(approved_by="controller@example.com"), APPROVED, None, ["approver_not_treasury"]),
        (exp(), None, None, ["invoice_unknown"]),
        (exp(), ExpediteSubject(True, released=True), None, ["already_released"]),
        (
            exp(),
            ExpediteSubject(False, hold_reasons=("price_mismatch", "missing_receipt")),
            None,
            ["not_approved", "price_mismatch", "missing_receipt"],
        ),
        (
            exp("a@x", "a@x"),
            ExpediteSubject(False, hold_reasons=("price_mismatch",)),
            RunPlan(blocks=(Block("INV-1", "P", ("not_approved", "payee_ineligible", "tax_form_missing")),)),
            [
                "self_approval",
                "approver_not_treasury",
                "not_approved",
                "price_mismatch",
                "payee_ineligible",
                "tax_form_missing",
            ],
        ),
        (
            exp(),
            APPROVED,
            RunPlan(blocks=(Block("INV-1", "P", ("insufficient_funds",)),)),
            ["insufficient_funds"],
        ),
    ],
)
def test_every_refusal_reason(
    expedite: Expedite, subject: ExpediteSubject | None, plan: RunPlan | None, reasons: list[str]
) -> None:
    assert refusal_reasons(expedite, subject, TREASURY, plan) == reasons


def test_an_accepted_expedite_has_no_reason() -> None:
    plan = plan_for(TermsPolicies(), date(2026, 11, 1), expedite=exp())
    assert plan.releases and refusal_reasons(exp(), APPROVED, TREASURY, plan) == []


NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
CORPORATE = TermsPolicies(business_units={"corporate": TermsPolicy("due_date", True, 2)})


def plan_for(
    terms: TermsPolicies, issue: date, *, expedite: Expedite | None = None, amount: str = "100.25"
) -> RunPlan:
    c = Candidate(
        "INV-1",
        "P",
        True,
        "LE",
        "corporate",
        "EUR",
        "invoice",
        Decimal(amount),
        issue,
        "PO-1",
        1,
    )
    return plan_run(
        [c],
        {"P": PayeeStanding(True)},
        {"PO-1": PoInForce(1, False, date(2026, 1, 1), date(2027, 1, 1), "2/10 NET30")},
        [FundingAccount("F", "LE", "EUR", Decimal("1000"))],
        ALL_AUTOMATED,
        NOW,
        "run",
        terms=terms,
        expedite=expedite,
    )


def test_a_plan_inside_the_window_pays_less_the_discount_and_keeps_its_invariants() -> None:
    plan = plan_for(CORPORATE, date(2026, 11, 13))  # window ends 11-23; last day 11-20 has passed
    [payout] = plan.releases
    assert (payout.amount, payout.lines[0].discount) == (Decimal("98.24"), Decimal("2.01"))
    assert plan.reservations == {"F": Decimal("98.24")}
    c = Candidate(
        "INV-1",
        "P",
        True,
        "LE",
        "corporate",
        "EUR",
        "invoice",
        Decimal("100.25"),
        date(2026, 11, 13),
        "PO-1",
        1,
    )
    assert plan_violations(plan, [c], [FundingAccount("F", "LE", "EUR", Decimal("1000"))]) == []


def test_a_plan_blocks_not_due_with_its_date_unless_expedited() -> None:
    plan = plan_for(CORPORATE, date(2026, 11, 20))  # window ends 11-30 → not before 11-27
    assert plan.blocks == (Block("INV-1", "P", ("not_due",), date(2026, 11, 27)),)
    assert plan_for(CORPORATE, date(2026, 11, 20), expedite=exp()).releases[0].lines[0].discount == Decimal(
        "2.01"
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"terms": {"default": {"pay_on": "later"}}}, "payout_release.terms.default.pay_on"),
        ({"terms": {"default": {"lead_days": -1}}}, "payout_release.terms.default.lead_days"),
        ({"terms": {"default": {"lead_days": "2"}}}, "payout_release.terms.default.lead_days"),
        (
            {"terms": {"business_units": {"corporate": {"take_early_discounts": "yes"}}}},
            "payout_release.terms.business_units.corporate.take_early_discounts",
        ),
        (
            {"terms": {"business_units": {"corporate": {"pay_by": "x"}}}},
            "payout_release.terms.business_units.corporate.pay_by",
        ),
        ({"terms": {"units": {}}}, "payout_release.terms"),
    ],
)
def test_a_bad_terms_policy_names_its_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_terms_policies(section)
    assert exc.value.key == key


def test_a_unit_names_only_what_differs_from_the_default() -> None:
    policies = parse_terms_policies(
        {"terms": {"default": {"lead_days": 5}, "business_units": {"corporate": {"pay_on": "due_date"}}}}
    )
    assert policies.of("corporate") == TermsPolicy("due_date", False, 5)
    assert policies.of("marketing") == TermsPolicy("asap", False, 5)
    assert parse_terms_policies(None) == TermsPolicies()


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"roles": {"t@x": ["treasurer"]}}, "roles.t@x[]"),
        ({"roles": {"t@x": []}}, "roles.t@x"),
        ({"roles": ["t@x"]}, "roles"),
    ],
)
def test_a_bad_roles_section_names_its_key(document: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_treasury(document)
    assert exc.value.key == key


def test_the_shipped_roles_file_grants_treasury_to_the_treasurer() -> None:
    assert parse_treasury(read_yaml(str(DEFAULT_ROLES_FILE))) == frozenset({"treasurer@example.com"})
