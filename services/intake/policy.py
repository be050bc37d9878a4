"""The `intake:` section of the policy file (CONCORD_POLICY_FILE): the no-PO policy and the
largest amount a document may carry.

```yaml
intake:
  no_po_policy:            # per business unit: reject (default) | no_po_review
    default: reject
    marketing: no_po_review
  no_po_business_units:    # a no-PO invoice names no business unit: look it up by legal entity
    ACME-DE: marketing
  max_amount: "1000000000" # any single amount above this (major units) is amount_out_of_range
```

A missing file or section means "reject every no-PO invoice". A malformed section fails at
start, naming the bad key, rather than silently rejecting or accepting invoices.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import yaml

from services.intake.domain import DEFAULT_MAX_AMOUNT, IntakePolicy, NoPoAction, NoPoPolicy

_ACTIONS: tuple[NoPoAction, ...] = ("reject", "no_po_review")


class PolicyError(ValueError):
    """The intake section of the policy file is malformed."""


_KEYS = ("no_po_policy", "no_po_business_units", "max_amount")


def _max_amount(value: Any) -> Decimal:
    # YAML reads an unquoted 1000000000 as an int and 1e9 as a float; both are read as written.
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise PolicyError("intake.max_amount: must be a decimal number")
    try:
        result = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise PolicyError(f"intake.max_amount: {value!r} is not a decimal number") from None
    if not result.is_finite() or result <= 0:
        raise PolicyError("intake.max_amount: must be a positive number")
    return result


def parse_intake_policy(document: Any) -> IntakePolicy:
    if document is None:
        return IntakePolicy()
    if not isinstance(document, dict):
        raise PolicyError("policy file: top level must be a mapping")
    section = document.get("intake")
    if section is None:
        return IntakePolicy()
    if not isinstance(section, dict):
        raise PolicyError("intake: must be a mapping")
    for key in section:
        if key not in _KEYS:
            raise PolicyError(f"intake.{key}: unknown key (allowed: {', '.join(_KEYS)})")
    rules = section.get("no_po_policy") or {}
    lookup = section.get("no_po_business_units") or {}
    if not isinstance(rules, dict):
        raise PolicyError("intake.no_po_policy: must be a mapping of business unit → reject|no_po_review")
    if not isinstance(lookup, dict):
        raise PolicyError("intake.no_po_business_units: must be a mapping of legal entity → business unit")
    actions: dict[str, NoPoAction] = {}
    for unit, action in rules.items():
        if action not in _ACTIONS:
            raise PolicyError(f"intake.no_po_policy.{unit}: {action!r} is not one of {', '.join(_ACTIONS)}")
        actions[str(unit)] = cast(NoPoAction, action)
    for entity, unit in lookup.items():
        if not isinstance(unit, str) or not unit:
            raise PolicyError(f"intake.no_po_business_units.{entity}: must name a business unit")
    default = actions.pop("default", "reject")
    no_po = NoPoPolicy(
        default=default,
        by_business_unit=actions,
        business_unit_by_legal_entity={str(k): v for k, v in lookup.items()},
    )
    return IntakePolicy(no_po, _max_amount(section.get("max_amount", DEFAULT_MAX_AMOUNT)))


@lru_cache(maxsize=8)
def load_intake_policy(path: str | None) -> IntakePolicy:
    """Read once per path (the policy is reloaded on restart, SPEC §6)."""
    if not path or not Path(path).is_file():
        return IntakePolicy()
    with open(path, encoding="utf-8") as fh:
        try:
            document = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    return parse_intake_policy(document)
