"""payout_release's configuration: one frozen object, built once at start (Service(config=…)).

The policy file's `payout_release:` section holds the rollout cohorts (SPEC §8 gate 5, §10):

```yaml
payout_release:
  automated_business_units: all        # or a list: [marketing, engineering]
```

Payouts are automated for every business unit unless the policy file says otherwise: a missing
section means "all". A business unit outside the list is paid only by an operator's
`payout_run.requested`. A malformed section, or a CONCORD_POLICY_FILE that cannot be read, stops
the start with a ConfigError naming the key, instead of silently paying or not paying.
`CONCORD_PAYOUT_RUN_INTERVAL_S` (default 30) is the schedule of payout runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.payout_release.domain import ALL_AUTOMATED, Cohorts
from shared import config
from shared.config import ConfigError
from shared.settings import Settings

SECTION = "payout_release"


@dataclass(frozen=True)
class PayoutConfig:
    cohorts: Cohorts = field(default_factory=Cohorts)
    run_interval_s: float = 30.0

    @classmethod
    def load(cls, settings: Settings) -> PayoutConfig:
        return cls(
            cohorts=parse_cohorts(config.section(settings, SECTION)),
            run_interval_s=settings.payout_run_interval_s,
        )


def parse_cohorts(section: Any) -> Cohorts:
    if section is None:
        return ALL_AUTOMATED
    if not isinstance(section, dict):
        raise ConfigError(SECTION, "must be a mapping")
    units = section.get("automated_business_units", "all")
    if units == "all":
        return ALL_AUTOMATED
    if not isinstance(units, list) or not all(isinstance(u, str) and u for u in units):
        raise ConfigError(f"{SECTION}.automated_business_units", "must be 'all' or a list of business units")
    return Cohorts(frozenset(units))
