"""The intake section of the policy file, loaded once at start (IntakeConfig.load)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from services.intake.config import IntakeConfig, parse_intake_section
from services.intake.domain import NoPoPolicy
from shared.config import ConfigError
from shared.settings import Settings


def test_missing_section_rejects_every_no_po_invoice(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("matching: {}\n")
    assert IntakeConfig.load(Settings(service="intake", policy_file=str(path))).no_po == NoPoPolicy()
    assert parse_intake_section(None).no_po == NoPoPolicy()
    assert NoPoPolicy().action_for("anything") == "reject"


def test_unset_means_the_shipped_file_and_a_missing_file_stops_the_start(tmp_path: Path) -> None:
    shipped = IntakeConfig.load(Settings(service="intake", policy_file=None))
    assert shipped == IntakeConfig()  # deploy/policy.yaml's intake section is the defaults
    with pytest.raises(ConfigError, match=r"absent\.yaml"):
        IntakeConfig.load(Settings(service="intake", policy_file=str(tmp_path / "absent.yaml")))


def test_section_is_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "matching: {}\n"
        "intake:\n"
        "  no_po_policy: {default: reject, marketing: no_po_review}\n"
        "  no_po_business_units: {ACME-DE: marketing}\n"
    )
    policy = IntakeConfig.load(Settings(service="intake", policy_file=str(path))).no_po
    assert policy.business_unit_for("ACME-DE") == "marketing"
    assert policy.action_for("marketing") == "no_po_review"
    assert policy.action_for("finance") == "reject"
    assert policy.action_for(None) == "reject"


@pytest.mark.parametrize(
    ("section", "names"),
    [
        ({"no_po_policy": {"marketing": "allow"}}, "intake.no_po_policy.marketing"),
        ({"no_po_policy": ["reject"]}, "intake.no_po_policy"),
        ({"no_po_business_units": {"ACME": ""}}, "intake.no_po_business_units.ACME"),
        ("reject", "intake"),
        ({"max_amount": "-1"}, "intake.max_amount"),
        ({"max_amount": "lots"}, "intake.max_amount"),
        ({"max_amout": "10"}, "intake.max_amout"),
    ],
)
def test_a_malformed_section_fails_naming_the_key(section: object, names: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_intake_section(section)
    assert raised.value.key == names


def test_max_amount_defaults_to_a_billion_and_is_read() -> None:
    assert parse_intake_section(None).max_amount == Decimal(1_000_000_000)
    assert parse_intake_section({"max_amount": "250000.00"}).max_amount == Decimal("250000.00")


def test_a_roles_file_with_a_bad_approval_limit_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    roles = tmp_path / "roles.yaml"
    roles.write_text(
        "approval_limits:\n"
        "  manager@example.com:\n"
        '    purchase_order: [{currency: "*", limit: "-5.00", business_units: "*"}]\n'
    )
    with pytest.raises(ConfigError) as exc:
        IntakeConfig.load(Settings(service="intake", roles_file=str(roles)))
    assert exc.value.key == "approval_limits.manager@example.com.purchase_order[0].limit"
    assert str(roles) in str(exc.value)
    roles.write_text(
        "approval_limits:\n  manager@example.com:\n    purchase_order: [{currency: '*', limit: 1e3x}]\n"
    )
    with pytest.raises(ConfigError, match=r"purchase_order\[0\]"):
        IntakeConfig.load(Settings(service="intake", roles_file=str(roles)))
