"""compliance_gate configuration from the environment; a bad value fails at start and names its key.

| variable                               | default | meaning                                          |
|----------------------------------------|---------|--------------------------------------------------|
| `CONCORD_AML_MAX_AGE_DAYS`             | 365     | an AML screening older than this is stale        |
| `CONCORD_EU_VAT_CHECK`                 | true    | EU businesses with a VAT number need it valid    |
| `CONCORD_COMPLIANCE_SWEEP_INTERVAL_S`  | 60      | seconds between two eligibility sweeps           |

Booleans accept true/false, 1/0, yes/no, on/off (any case).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from services.compliance_gate.domain import CompliancePolicy

AML_MAX_AGE_DAYS_ENV = "CONCORD_AML_MAX_AGE_DAYS"
EU_VAT_CHECK_ENV = "CONCORD_EU_VAT_CHECK"
SWEEP_INTERVAL_ENV = "CONCORD_COMPLIANCE_SWEEP_INTERVAL_S"

DEFAULT_AML_MAX_AGE_DAYS = 365
DEFAULT_EU_VAT_CHECK = True
DEFAULT_SWEEP_INTERVAL_S = 60.0

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class ConfigurationError(ValueError):
    """A configuration variable has a value the service cannot run with."""


def load_policy(environ: Mapping[str, str]) -> CompliancePolicy:
    return CompliancePolicy(
        aml_max_age=timedelta(days=_positive_int(environ, AML_MAX_AGE_DAYS_ENV, DEFAULT_AML_MAX_AGE_DAYS)),
        eu_vat_check=_boolean(environ, EU_VAT_CHECK_ENV, DEFAULT_EU_VAT_CHECK),
    )


def sweep_interval_s(environ: Mapping[str, str]) -> float:
    raw = environ.get(SWEEP_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_SWEEP_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{SWEEP_INTERVAL_ENV} must be a number of seconds, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"{SWEEP_INTERVAL_ENV} must be a positive number of seconds, got {raw!r}")
    return value


def _positive_int(environ: Mapping[str, str], key: str, default: int) -> int:
    raw = environ.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{key} must be a whole number of days, got {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{key} must be positive, got {raw!r}")
    return value


def _boolean(environ: Mapping[str, str], key: str, default: bool) -> bool:
    raw = environ.get(key, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigurationError(f"{key} must be true or false, got {raw!r}")
