"""Intake's configuration: the `intake:` section of the policy file, loaded once at start.

```yaml
intake:
  no_po_policy:            # per business unit: reject (default) | no_po_review
    default: reject
    marketing: no_po_review
  no_po_business_units:    # a no-PO invoice names no business unit: look it up by legal entity
    ACME-DE: marketing
  max_amount: "1000000000" # any single amount above this (major units) is amount_out_of_range
  charge_codes:            # UNCL7161 reason code → freight | handling | other (SPEC §12.1)
    FC: freight            # the shipped defaults; any code not listed, or none, is `other`
  order_validity_days: 365 # a Peppol Order without ValidityPeriod/EndDate: issue date + this
```

Approval authority (SPEC §13.1) comes from the roles file's `approval_limits:` section
(shared/authority.py); a negative or malformed limit stops the start naming the key.

A file without the section means "reject every no-PO invoice" and the default `max_amount`. A
malformed section stops the start with a ConfigError naming the key (shared/config.py), rather
than silently rejecting or accepting invoices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from services.intake.domain import DEFAULT_MAX_AMOUNT, NoPoAction, NoPoPolicy
from services.intake.domain.charges import DEFAULT_CHARGE_CODES, PO_CHARGE_TYPES
from services.intake.ubl_order import DEFAULT_ORDER_VALIDITY_DAYS
from shared import config
from shared.authority import SPEC_DEFAULT_AUTHORITY, Authority, parse_authority
from shared.config import ConfigError, section
from shared.settings import Settings

_ACTIONS: tuple[NoPoAction, ...] = ("reject", "no_po_review")
_KEYS = ("no_po_policy", "no_po_business_units", "max_amount", "charge_codes", "order_validity_days")


@dataclass(frozen=True)
class IntakeConfig:
    no_po: NoPoPolicy = field(default_factory=NoPoPolicy)
    max_amount: Decimal = DEFAULT_MAX_AMOUNT
    authority: Authority = SPEC_DEFAULT_AUTHORITY
    # SPEC §12.1: UNCL7161 charge reason code → PO charge type (any other code: `other`)
    charge_codes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CHARGE_CODES))
    # SPEC §12.2: a Peppol Order without a validity end date is in force this many days
    order_validity_days: int = DEFAULT_ORDER_VALIDITY_DAYS

    @classmethod
    def load(cls, settings: Settings) -> IntakeConfig:
        parsed = parse_intake_section(section(settings, "intake"))
        try:
            authority = parse_authority(config.roles_document(settings).get("approval_limits"))
        except ConfigError as exc:
            message = str(exc).removeprefix(f"{exc.key}: ")
            raise ConfigError(exc.key, f"{message} (roles file {config.roles_path(settings)})") from None
        return replace(parsed, authority=authority)


def _max_amount(value: Any) -> Decimal:
    # YAML reads an unquoted 1000000000 as an int and 1e9 as a float; both are read as written.
    key = "intake.max_amount"
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ConfigError(key, "must be a decimal number")
    try:
        result = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise ConfigError(key, f"{value!r} is not a decimal number") from None
    if not result.is_finite() or result <= 0:
        raise ConfigError(key, "must be a positive number")
    return result


def parse_intake_section(section: Any) -> IntakeConfig:
    """The `intake:` section as read from YAML (None: absent)."""
    if section is None:
        return IntakeConfig()
    if not isinstance(section, dict):
        raise ConfigError("intake", "must be a mapping")
    for key in section:
        if key not in _KEYS:
            raise ConfigError(f"intake.{key}", f"unknown key (allowed: {', '.join(_KEYS)})")
    rules = section.get("no_po_policy") or {}
    lookup = section.get("no_po_business_units") or {}
    if not isinstance(rules, dict):
        raise ConfigError("intake.no_po_policy", "must be a mapping of business unit → reject|no_po_review")
    if not isinstance(lookup, dict):
        raise ConfigError("intake.no_po_business_units", "must be a mapping of legal entity → business unit")
    actions: dict[str, NoPoAction] = {}
    for unit, action in rules.items():
        if action not in _ACTIONS:
            raise ConfigError(
                f"intake.no_po_policy.{unit}", f"{action!r} is not one of {', '.join(_ACTIONS)}"
            )
        actions[str(unit)] = cast(NoPoAction, action)
    for entity, unit in lookup.items():
        if not isinstance(unit, str) or not unit:
            raise ConfigError(f"intake.no_po_business_units.{entity}", "must name a business unit")
    default = actions.pop("default", "reject")
    no_po = NoPoPolicy(
        default=default,
        by_business_unit=actions,
        business_unit_by_legal_entity={str(k): v for k, v in lookup.items()},
    )
    return IntakeConfig(
        no_po,
        _max_amount(section.get("max_amount", DEFAULT_MAX_AMOUNT)),
        charge_codes=_charge_codes(section.get("charge_codes")),
        order_validity_days=_order_validity_days(
            section.get("order_validity_days", DEFAULT_ORDER_VALIDITY_DAYS)
        ),
    )


def _charge_codes(value: Any) -> dict[str, str]:
    """The section's mapping replaces the shipped defaults as a whole (absent: the defaults), so
    the file says every code that is not `other`."""
    if value is None:
        return dict(DEFAULT_CHARGE_CODES)
    if not isinstance(value, dict):
        raise ConfigError("intake.charge_codes", "must be a mapping of UNCL7161 code → charge type")
    out: dict[str, str] = {}
    for code, kind in value.items():
        key = f"intake.charge_codes.{code}"
        if not isinstance(code, str) or not code.strip():
            raise ConfigError(key, "a UNCL7161 code is a non-empty string")
        if kind not in PO_CHARGE_TYPES:
            raise ConfigError(key, f"{kind!r} is not one of {', '.join(PO_CHARGE_TYPES)}")
        out[code.strip().upper()] = kind
    return out


def _order_validity_days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("intake.order_validity_days", "must be a whole number of days ≥ 1")
    return value
