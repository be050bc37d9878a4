"""The intake section of the policy file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from services.intake.domain import NoPoPolicy
from services.intake.policy import PolicyError, load_intake_policy, parse_intake_policy


def test_missing_file_or_section_rejects_every_no_po_invoice(tmp_path: Path) -> None:
    assert load_intake_policy(None).no_po == NoPoPolicy()
    assert load_intake_policy(str(tmp_path / "absent.yaml")).no_po == NoPoPolicy()
    assert parse_intake_policy({"matching": {"mode": "three_way"}}).no_po == NoPoPolicy()
    assert NoPoPolicy().action_for("anything") == "reject"


def test_section_is_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "matching: {}\n"
        "intake:\n"
        "  no_po_policy: {default: reject, marketing: no_po_review}\n"
        "  no_po_business_units: {ACME-DE: marketing}\n"
    )
    policy = load_intake_policy(str(path)).no_po
    assert policy.business_unit_for("ACME-DE") == "marketing"
    assert policy.action_for("marketing") == "no_po_review"
    assert policy.action_for("finance") == "reject"
    assert policy.action_for(None) == "reject"


@pytest.mark.parametrize(
    ("document", "names"),
    [
        ({"intake": {"no_po_policy": {"marketing": "allow"}}}, "intake.no_po_policy.marketing"),
        ({"intake": {"no_po_policy": ["reject"]}}, "intake.no_po_policy"),
        ({"intake": {"no_po_business_units": {"ACME": ""}}}, "intake.no_po_business_units.ACME"),
        ({"intake": "reject"}, "intake"),
        ({"intake": {"max_amount": "-1"}}, "intake.max_amount"),
        ({"intake": {"max_amount": "lots"}}, "intake.max_amount"),
        ({"intake": {"max_amout": "10"}}, "intake.max_amout"),
        (["not", "a", "mapping"], "top level"),
    ],
)
def test_a_malformed_section_fails_naming_the_key(document: object, names: str) -> None:
    with pytest.raises(PolicyError, match=names.replace(".", r"\.")):
        parse_intake_policy(document)


def test_max_amount_defaults_to_a_billion_and_is_read(tmp_path: Path) -> None:
    assert parse_intake_policy(None).max_amount == Decimal(1_000_000_000)
    assert parse_intake_policy({"intake": {"max_amount": "250000.00"}}).max_amount == Decimal("250000.00")
    shipped = load_intake_policy(str(Path(__file__).parents[3] / "deploy" / "policy.yaml"))
    assert shipped.max_amount == Decimal(1_000_000_000)
