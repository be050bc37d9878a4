"""compliance_gate's configuration: one frozen object, built once at start (Service(config=…)).

| variable                               | default | meaning                                          |
|----------------------------------------|---------|--------------------------------------------------|
| `CONCORD_AML_MAX_AGE_DAYS`             | 365     | an AML screening older than this is stale        |
| `CONCORD_EU_VAT_CHECK`                 | true    | EU businesses with a VAT number need it valid    |
| `CONCORD_COMPLIANCE_SWEEP_INTERVAL_S`  | 60      | seconds between two eligibility sweeps           |
| `CONCORD_ACCOUNT_CHANGE_COOLING_OFF_HOURS` | —   | replaces the policy file's cooling-off (the demo)|

The policy file's `compliance_gate:` section holds `account_change_cooling_off_hours` (default
24, SPEC §13.3: a changed payout account is unconfirmed at least this long after the change;
fractions allowed, ≥ 0). A malformed value stops the start naming the key.

They are typed fields of shared.settings.Settings: a bad value stops the start naming the field.
The sweep's interval is read by its PeriodicTask (app.py), which the shared runtime hands Settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from services.compliance_gate.domain import DEFAULT_COOLING_OFF, CompliancePolicy
from shared import config
from shared.config import ConfigError
from shared.settings import Settings


@dataclass(frozen=True)
class GateConfig:
    policy: CompliancePolicy = field(default_factory=CompliancePolicy)

    @classmethod
    def load(cls, settings: Settings) -> GateConfig:
        hours = settings.account_change_cooling_off_hours
        if hours is None:
            hours = cooling_off_hours(config.section(settings, "compliance_gate"))
        return cls(
            policy=CompliancePolicy(
                aml_max_age=timedelta(days=settings.aml_max_age_days),
                eu_vat_check=settings.eu_vat_check,
                account_cooling_off=timedelta(hours=hours),
            )
        )


_KEYS = ("account_change_cooling_off_hours",)


def cooling_off_hours(section: Any) -> float:
    """The policy file's `compliance_gate:` section (None: absent → 24 hours)."""
    if section is None:
        return DEFAULT_COOLING_OFF / timedelta(hours=1)
    if not isinstance(section, dict):
        raise ConfigError("compliance_gate", "must be a mapping")
    for key in section:
        if key not in _KEYS:
            raise ConfigError(f"compliance_gate.{key}", f"unknown key (allowed: {', '.join(_KEYS)})")
    value = section.get("account_change_cooling_off_hours", DEFAULT_COOLING_OFF / timedelta(hours=1))
    where = "compliance_gate.account_change_cooling_off_hours"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(where, f"{value!r} is not a number of hours")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(where, f"{value!r}: must be a finite number of hours ≥ 0")
    return float(value)
