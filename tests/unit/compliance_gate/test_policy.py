"""compliance_gate configuration: defaults, overrides, and bad values refused at start by name."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.compliance_gate.config import GateConfig
from shared.settings import Settings

VARIABLES = ("CONCORD_AML_MAX_AGE_DAYS", "CONCORD_EU_VAT_CHECK", "CONCORD_COMPLIANCE_SWEEP_INTERVAL_S")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_365_days_of_aml_age_vat_check_on_and_a_60_second_sweep() -> None:
    config = GateConfig.load(Settings())
    assert config.policy.aml_max_age == timedelta(days=365)
    assert config.policy.eu_vat_check is True
    assert Settings().compliance_sweep_interval_s == 60.0
    assert config == GateConfig()


def test_overrides_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCORD_AML_MAX_AGE_DAYS", "180")
    monkeypatch.setenv("CONCORD_EU_VAT_CHECK", "false")
    monkeypatch.setenv("CONCORD_COMPLIANCE_SWEEP_INTERVAL_S", "2.5")
    config = GateConfig.load(Settings())
    assert config.policy.aml_max_age == timedelta(days=180)
    assert config.policy.eu_vat_check is False
    assert Settings().compliance_sweep_interval_s == 2.5


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
    ],
)
def test_the_vat_switch_accepts_common_boolean_spellings(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("CONCORD_EU_VAT_CHECK", raw)
    assert GateConfig.load(Settings()).policy.eu_vat_check is expected


@pytest.mark.parametrize(
    ("variable", "raw", "field"),
    [
        ("CONCORD_AML_MAX_AGE_DAYS", "a year", "aml_max_age_days"),
        ("CONCORD_AML_MAX_AGE_DAYS", "0", "aml_max_age_days"),
        ("CONCORD_AML_MAX_AGE_DAYS", "-5", "aml_max_age_days"),
        ("CONCORD_AML_MAX_AGE_DAYS", "36.5", "aml_max_age_days"),
        ("CONCORD_EU_VAT_CHECK", "maybe", "eu_vat_check"),
        ("CONCORD_COMPLIANCE_SWEEP_INTERVAL_S", "soon", "compliance_sweep_interval_s"),
        ("CONCORD_COMPLIANCE_SWEEP_INTERVAL_S", "0", "compliance_sweep_interval_s"),
        ("CONCORD_COMPLIANCE_SWEEP_INTERVAL_S", "-1", "compliance_sweep_interval_s"),
        ("CONCORD_COMPLIANCE_SWEEP_INTERVAL_S", "nan", "compliance_sweep_interval_s"),
        ("CONCORD_COMPLIANCE_SWEEP_INTERVAL_S", "inf", "compliance_sweep_interval_s"),
    ],
)
def test_a_bad_value_fails_at_start_naming_its_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, field: str
) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ValidationError, match=field):
        Settings()
