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

from services.payout_release.domain import ALL_AUTOMATED, Cohorts, TermsPolicies, TermsPolicy
from shared import config
from shared.config import ConfigError
from shared.settings import Settings

SECTION = "payout_release"


@dataclass(frozen=True)
class PayoutConfig:
    cohorts: Cohorts = field(default_factory=Cohorts)
    run_interval_s: float = 30.0
    terms: TermsPolicies = field(default_factory=TermsPolicies)
    treasury: frozenset[str] = frozenset()  # who may approve an expedite (SPEC §13.2)

    @classmethod
    def load(cls, settings: Settings) -> PayoutConfig:
        section = config.section(settings, SECTION)
        return cls(
            cohorts=parse_cohorts(section),
            run_interval_s=settings.payout_run_interval_s,
            terms=parse_terms_policies(section),
            treasury=parse_treasury(config.roles_document(settings)),
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


_TERMS_KEYS = {"pay_on", "take_early_discounts", "lead_days"}


def parse_terms_policies(section: Any) -> TermsPolicies:
    """`payout_release.terms` (SPEC §13.5): a `default` and per-`business_units` policies; a unit
    names only what differs from the default. Missing: every unit pays asap, no discounts."""
    terms = section.get("terms") if isinstance(section, dict) else None
    if terms is None:
        return TermsPolicies()
    where = f"{SECTION}.terms"
    if not isinstance(terms, dict) or set(terms) - {"default", "business_units"}:
        raise ConfigError(where, "must be a mapping with `default` and/or `business_units`")
    default = _terms_policy(terms.get("default") or {}, TermsPolicy(), f"{where}.default")
    units = terms.get("business_units") or {}
    if not isinstance(units, dict):
        raise ConfigError(f"{where}.business_units", "must map business units to policies")
    return TermsPolicies(
        default,
        {str(u): _terms_policy(p, default, f"{where}.business_units.{u}") for u, p in units.items()},
    )


def _terms_policy(raw: Any, base: TermsPolicy, where: str) -> TermsPolicy:
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a mapping")
    for key in sorted(set(raw) - _TERMS_KEYS):
        raise ConfigError(f"{where}.{key}", "unknown key")
    pay_on = raw.get("pay_on", base.pay_on)
    if pay_on not in ("asap", "due_date"):
        raise ConfigError(f"{where}.pay_on", "must be asap or due_date")
    discounts = raw.get("take_early_discounts", base.take_early_discounts)
    if not isinstance(discounts, bool):
        raise ConfigError(f"{where}.take_early_discounts", "must be true or false")
    lead = raw.get("lead_days", base.lead_days)
    if isinstance(lead, bool) or not isinstance(lead, int) or not 0 <= lead <= 365:
        raise ConfigError(f"{where}.lead_days", "must be a whole number of days from 0 to 365")
    return TermsPolicy(pay_on, discounts, lead)


ROLES = ("treasury",)


def parse_treasury(document: Any) -> frozenset[str]:
    """The roles file's `roles:` section (person → [role]): the people with the role `treasury`.
    Matching reads `approvers:` and the console `users:` from the same file."""
    roles = (document or {}).get("roles") or {}
    if not isinstance(roles, dict):
        raise ConfigError("roles", "must map people to a list of roles")
    people = set()
    for person, granted in roles.items():
        if not isinstance(granted, list) or not granted:
            raise ConfigError(f"roles.{person}", f"must be a non-empty list of roles {list(ROLES)}")
        for role in granted:
            if role not in ROLES:
                raise ConfigError(f"roles.{person}[]", f"unknown role {role!r} (known: {', '.join(ROLES)})")
        if "treasury" in granted:
            people.add(str(person))
    return frozenset(people)
