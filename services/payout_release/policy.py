"""The `payout_release:` section of the policy file: rollout cohorts (SPEC §8 gate 5, §10).

```yaml
payout_release:
  automated_business_units: all        # or a list: [marketing, engineering]
```

Payouts are automated for every business unit unless the policy file says otherwise (SPEC §10):
a missing default file or a missing section means "all". A business unit outside the list is
paid only by an operator's `payout_run.requested`. A malformed section, or a
CONCORD_POLICY_FILE that does not exist, fails at start instead of silently paying or not paying.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from services.payout_release.domain import ALL_AUTOMATED, Cohorts
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY_FILE = ROOT / "deploy" / "policy.yaml"


class PolicyError(ValueError):
    """The payout_release section of the policy file is malformed."""


def parse_cohorts(document: Any) -> Cohorts:
    if document is None:
        return ALL_AUTOMATED
    if not isinstance(document, dict):
        raise PolicyError("policy file: top level must be a mapping")
    section = document.get("payout_release")
    if section is None:
        return ALL_AUTOMATED
    if not isinstance(section, dict):
        raise PolicyError("payout_release: must be a mapping")
    units = section.get("automated_business_units", "all")
    if units == "all":
        return ALL_AUTOMATED
    if not isinstance(units, list) or not all(isinstance(u, str) and u for u in units):
        raise PolicyError(
            "payout_release.automated_business_units: must be 'all' or a list of business units"
        )
    return Cohorts(frozenset(units))


@lru_cache(maxsize=8)
def _load(path: str, required: bool) -> Cohorts:
    file = Path(path)
    if not file.is_file():
        if required:
            raise PolicyError(f"CONCORD_POLICY_FILE {path} does not exist")
        return ALL_AUTOMATED
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    return parse_cohorts(document)


def load_cohorts(settings: Settings) -> Cohorts:
    """Read once per path (the policy is reloaded on restart, SPEC §6)."""
    if settings.policy_file:
        return _load(settings.policy_file, True)
    return _load(str(DEFAULT_POLICY_FILE), False)
