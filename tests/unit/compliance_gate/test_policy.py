"""compliance_gate configuration: defaults, overrides, and bad values refused at start by name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.compliance_gate.policy import ConfigurationError, load_policy, sweep_interval_s


def test_defaults_are_365_days_of_aml_age_vat_check_on_and_a_60_second_sweep() -> None:
    policy = load_policy({})
    assert policy.aml_max_age == timedelta(days=365)
    assert policy.eu_vat_check is True
    assert sweep_interval_s({}) == 60.0


def test_overrides_are_read_from_the_environment() -> None:
    env = {
        "CONCORD_AML_MAX_AGE_DAYS": "180",
        "CONCORD_EU_VAT_CHECK": "false",
        "CONCORD_COMPLIANCE_SWEEP_INTERVAL_S": "2.5",
    }
    policy = load_policy(env)
    assert policy.aml_max_age == timedelta(days=180)
    assert policy.eu_vat_check is False
    assert sweep_interval_s(env) == 2.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("", True),
    ],
)
def test_the_vat_switch_accepts_common_boolean_spellings(raw: str, expected: bool) -> None:
    assert load_policy({"CONCORD_EU_VAT_CHECK": raw}).eu_vat_check is expected


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CONCORD_AML_MAX_AGE_DAYS": "a year"}, "CONCORD_AML_MAX_AGE_DAYS"),
        ({"CONCORD_AML_MAX_AGE_DAYS": "0"}, "CONCORD_AML_MAX_AGE_DAYS"),
        ({"CONCORD_AML_MAX_AGE_DAYS": "-5"}, "CONCORD_AML_MAX_AGE_DAYS"),
        ({"CONCORD_AML_MAX_AGE_DAYS": "36.5"}, "CONCORD_AML_MAX_AGE_DAYS"),
        ({"CONCORD_EU_VAT_CHECK": "maybe"}, "CONCORD_EU_VAT_CHECK"),
    ],
)
def test_a_bad_policy_value_fails_naming_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        load_policy(env)


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "nan", "inf"])
def test_a_bad_sweep_interval_fails_naming_its_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="CONCORD_COMPLIANCE_SWEEP_INTERVAL_S"):
        sweep_interval_s({"CONCORD_COMPLIANCE_SWEEP_INTERVAL_S": raw})
