"""Intake's configuration: the `intake:` section of the policy file, loaded once at start.

```yaml
intake:
  no_po_policy:            # per business unit: reject (default) | no_po_review
    default: reject
    marketing: no_po_review
  no_po_business_units:    # a no-PO invoice names no business unit: look it up by legal entity
    ACME-DE: marketing
  max_amount: "1000000000" # any single amount above this (major units) is amount_out_of_range
```

Approval authority (SPEC §13.1) comes from the roles file's `approval_limits:` section
(shared/authority.py); a negative or malformed limit stops the start naming the key.

A file without the section means "reject every no-PO invoice" and the default `max_amount`. A
malformed section stops the start with a ConfigError naming the key (shared/config.py), rather
than silently rejecting or accepting invoices.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from services.intake.domain import DEFAULT_MAX_AMOUNT, NoPoAction, NoPoPolicy
from shared import config
from shared.authority import SPEC_DEFAULT_AUTHORITY, Authority, parse_authority
from shared.config import ConfigError, section
from shared.settings import Settings

_ACTIONS: tuple[NoPoAction, ...] = ("reject", "no_po_review")
_KEYS = ("no_po_policy", "no_po_business_units", "max_amount")


@dataclass(frozen=True)
class IntakeConfig:
    no_po: NoPoPolicy = field(default_factory=NoPoPolicy)
    max_amount: Decimal = DEFAULT_MAX_AMOUNT
    authority: Authority = SPEC_DEFAULT_AUTHORITY

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
    return IntakeConfig(no_po, _max_amount(section.get("max_amount", DEFAULT_MAX_AMOUNT)))
