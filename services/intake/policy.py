"""The `intake:` section of the policy file (CONCORD_POLICY_FILE): the no-PO policy.

```yaml
intake:
  no_po_policy:            # per business unit: reject (default) | no_po_review
    default: reject
    marketing: no_po_review
  no_po_business_units:    # a no-PO invoice names no business unit: look it up by legal entity
    ACME-DE: marketing
```

A missing file or section means "reject every no-PO invoice". A malformed section fails at
start, naming the bad key, rather than silently rejecting or accepting invoices.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import yaml

from services.intake.domain import NoPoAction, NoPoPolicy

_ACTIONS: tuple[NoPoAction, ...] = ("reject", "no_po_review")


class PolicyError(ValueError):
    """The intake section of the policy file is malformed."""


def parse_intake_policy(document: Any) -> NoPoPolicy:
    if document is None:
        return NoPoPolicy()
    if not isinstance(document, dict):
        raise PolicyError("policy file: top level must be a mapping")
    section = document.get("intake")
    if section is None:
        return NoPoPolicy()
    if not isinstance(section, dict):
        raise PolicyError("intake: must be a mapping")
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
    return NoPoPolicy(
        default=default,
        by_business_unit=actions,
        business_unit_by_legal_entity={str(k): v for k, v in lookup.items()},
    )


@lru_cache(maxsize=8)
def load_intake_policy(path: str | None) -> NoPoPolicy:
    """Read once per path (the policy is reloaded on restart, SPEC §6)."""
    if not path or not Path(path).is_file():
        return NoPoPolicy()
    with open(path, encoding="utf-8") as fh:
        try:
            document = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    return parse_intake_policy(document)
