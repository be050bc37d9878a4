"""The policy and roles files: shipped defaults are the SPEC's; a bad key stops the service by name."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.matching import domain as d
from services.matching.config import MatchingConfig, parse_policy, parse_roles
from shared.config import DEFAULT_POLICY_FILE, DEFAULT_ROLES_FILE, ConfigError
from shared.settings import Settings


def shipped() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    return document


def test_shipped_policy_carries_the_spec_defaults() -> None:
    policy = MatchingConfig.load(Settings(policy_file=str(DEFAULT_POLICY_FILE))).policy
    goods = policy.for_line("engineering", "goods")
    services = policy.for_line("engineering", "services")
    assert (goods.mode, services.mode, services.receipt_kind) == (
        "three_way",
        "three_way",
        "service_completion",
    )
    price = goods.tolerance("price_mismatch")
    assert (price.over.percent, price.over.amount, price.under) == (Decimal(0), Decimal(0), None)
    assert goods.tolerance("qty_over_ordered").over.amount == Decimal(0)
    assert goods.tolerance("header_total_mismatch").over.amount == Decimal("0.01")
    assert goods.action("price_mismatch") == "soft_review"
    assert goods.action("unexpected_charge") == "soft_review"
    assert goods.action("header_total_mismatch") == "soft_review"


def test_shipped_roles_are_the_spec_defaults() -> None:
    roles = MatchingConfig.load(Settings(roles_file=str(DEFAULT_ROLES_FILE))).roles
    assert roles.may_release("ap.lead@example.com", "ap")
    assert not roles.may_release("ap.lead@example.com", "ops")
    assert roles.may_release("ops.lead@example.com", "ops")
    assert roles.may_release("procurement.lead@example.com", "procurement")
    assert all(roles.may_release("controller@example.com", q) for q in d.QUEUES)


def test_other_services_sections_are_ignored() -> None:
    document = {**shipped(), "intake": {"anything": 1}, "payout_release": {"automated": ["x"]}}
    assert parse_policy(document) == parse_policy(shipped())


def test_most_specific_rule_wins_knob_by_knob() -> None:
    document = {
        "matching": {
            "default": {"mode": "three_way"},
            "rules": [
                {"category": "software", "mode": "two_way", "actions": {"price_mismatch": "hard_fail"}},
                {"business_unit": "eu", "tolerances": {"price_mismatch": {"percent": "5"}}},
                {"business_unit": "eu", "category": "software", "mode": "three_way"},
            ],
        }
    }
    policy = parse_policy(document)
    eu_software = policy.for_line("eu", "software")
    assert eu_software.mode == "three_way"  # (eu, software) beats (*, software)
    assert eu_software.action("price_mismatch") == "hard_fail"  # only (*, software) sets it
    assert eu_software.tolerance("price_mismatch").over.percent == Decimal(5)  # from (eu, *)
    us_software = policy.for_line("us", "software")
    assert (us_software.mode, us_software.tolerance("price_mismatch").over.percent) == ("two_way", None)
    assert policy.for_line("us", "goods").mode == "three_way"


def test_po_match_mode_overrides_the_policy_mode() -> None:
    from tests.unit.matching.factory import invoice, po, state

    policy = parse_policy({"matching": {"default": {"mode": "three_way"}}})
    out = d.evaluate(state(invoice(), purchase_order=po(match_mode="two_way")), policy)["INV-1"]
    assert isinstance(out, d.Approved) and out.lines[0].match_mode == "two_way"


def test_a_file_without_a_matching_section_uses_the_spec_defaults() -> None:
    policy = parse_policy({"intake": {"no_po_policy": {"default": "reject"}}})
    assert policy.for_line("x", "services").receipt_kind == "service_completion"


BAD = [
    ({"matching": {"defaults": {}}}, "matching.defaults: unknown key"),
    ({"matching": {"default": {"mode": "four_way"}}}, "matching.default.mode: 'four_way' is not one of"),
    (
        {"matching": {"default": {"tolerances": {"price": {"percent": "1"}}}}},
        "matching.default.tolerances.price: unknown key",
    ),
    (
        {"matching": {"default": {"tolerances": {"price_mismatch": {"percnt": "1"}}}}},
        "matching.default.tolerances.price_mismatch.percnt: unknown key",
    ),
    (
        {"matching": {"default": {"tolerances": {"price_mismatch": {"percent": "-1"}}}}},
        "matching.default.tolerances.price_mismatch.percent: must be a finite number ≥ 0",
    ),
    (
        {"matching": {"default": {"tolerances": {"price_mismatch": {"amount": "lots"}}}}},
        "matching.default.tolerances.price_mismatch.amount: 'lots' is not a decimal number",
    ),
    (
        {"matching": {"default": {"tolerances": {"qty_over_ordered": {"under": {"percent": "1"}}}}}},
        "matching.default.tolerances.qty_over_ordered.under: unknown key",
    ),
    (
        {"matching": {"default": {"actions": {"price_mismatch": "ignore"}}}},
        "matching.default.actions.price_mismatch: 'ignore' is not one of",
    ),
    (
        {"matching": {"default": {"actions": {"missing_receipt": "hard_fail"}}}},
        "matching.default.actions.missing_receipt: unknown key",
    ),
    ({"matching": {"rules": {"category": "x"}}}, "matching.rules: must be a list"),
    (
        {"matching": {"rules": [{"mode": "two_way"}]}},
        "matching.rules[0]: names neither business_unit nor category",
    ),
    (
        {"matching": {"rules": [{"category": "x"}, {"category": "x", "mode": "two_way"}]}},
        "matching.rules[1]: same business_unit/category as matching.rules[0]",
    ),
    (
        {"matching": {"rules": [{"category": "x", "receipt_kind": "email"}]}},
        "matching.rules[0].receipt_kind: 'email' is not one of",
    ),
    ({"matching": {"queues": {"treasury": {"owner": "x"}}}}, "matching.queues.treasury: unknown key"),
    (
        {"matching": {"queues": {"ap": {"owner": ""}}}},
        "matching.queues.ap.owner: must name the queue's owner",
    ),
    (
        {"matching": {"holds": {"price_mismatch": {"next_action": "x", "evidence_required": "a doc"}}}},
        "matching.holds.price_mismatch.evidence_required: must be a list",
    ),
    ({"matching": ["not", "a", "mapping"]}, "matching: must be a mapping"),
]


@pytest.mark.parametrize(("document", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_key_is_named(document: Any, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_policy(document)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"approvers": {"x@example.com": ["treasury"]}},
            "approvers.x@example.com[]: 'treasury' is not one of",
        ),
        ({"approvers": {"x@example.com": []}}, "approvers.x@example.com: must be a non-empty list"),
        ({"rolez": {}}, "roles file.rolez: unknown key"),
    ],
)
def test_a_bad_roles_file_is_named(document: Any, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_roles(document)
    assert message in str(exc.value)


def test_the_service_refuses_to_start_on_a_bad_policy_file(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("matching:\n  default:\n    tolerances:\n      price_mismatch: {percent: 1, amont: 2}\n")
    with pytest.raises(ConfigError, match=r"matching.default.tolerances.price_mismatch.amont: .*policy.yaml"):
        MatchingConfig.load(Settings(policy_file=str(bad)))


def test_the_service_refuses_to_start_on_a_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        MatchingConfig.load(Settings(policy_file=str(tmp_path / "nope.yaml")))


def test_unquoted_yaml_numbers_are_read_as_written() -> None:
    policy = parse_policy(
        {"matching": {"default": {"tolerances": {"header_total_mismatch": {"amount": 0.1}}}}}
    )
    assert policy.default.tolerance("header_total_mismatch").over.amount == Decimal("0.1")
