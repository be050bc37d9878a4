"""MatchingConfig: the `matching:` section of the policy file and the roles file, typed and
validated once at start by the shared loader (SPEC §6, §10; shared/config.py).

Anything malformed stops the service with a ConfigError naming the bad key (e.g.
`matching.rules[2].tolerances.price_mismatch.percnt: unknown key`), so it never runs on a
half-read policy. Other top-level sections (`intake:`, `payout_release:`) belong to other
services and are ignored here. The shipped `deploy/policy.yaml` documents every knob.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from services.matching.domain import (
    ALL_REASONS,
    ANY_RECEIPT,
    HARD_FAIL,
    PRICE_MISMATCH,
    QUEUES,
    RECEIPT_KINDS,
    SOFT_REVIEW,
    THREE_WAY,
    TOLERATED,
    TWO_WAY,
    Action,
    Band,
    HoldText,
    LinePolicy,
    Policy,
    Roles,
    Rule,
    Tolerance,
)
from services.matching.domain.batch import Rules
from shared import config
from shared.authority import parse_authority
from shared.config import ConfigError
from shared.settings import Settings


@dataclass(frozen=True)
class MatchingConfig:
    policy: Policy
    roles: Roles
    # Hold due_by is the cutoff of the next payout run: runs start on this grid.
    payout_run_interval_s: float

    @classmethod
    def load(cls, settings: Settings) -> MatchingConfig:
        try:
            policy = parse_policy(config.policy_document(settings))
        except ConfigError as exc:
            raise ConfigError(
                exc.key, f"{_message(exc)} (policy file {config.policy_path(settings)})"
            ) from None
        try:
            roles = parse_roles(config.roles_document(settings))
        except ConfigError as exc:
            raise ConfigError(
                exc.key, f"{_message(exc)} (roles file {config.roles_path(settings)})"
            ) from None
        return cls(policy, roles, settings.payout_run_interval_s)

    @property
    def rules(self) -> Rules:
        return Rules(self.policy, self.roles, self.payout_run_interval_s)


def _message(exc: ConfigError) -> str:
    return str(exc).removeprefix(f"{exc.key}: ")


_MODES = (TWO_WAY, THREE_WAY)
_ACTIONS = (HARD_FAIL, SOFT_REVIEW)

# The SPEC §6 defaults, used when a policy file has no `matching:` section at all.
SPEC_DEFAULT = LinePolicy(
    mode=THREE_WAY,
    receipt_kind=ANY_RECEIPT,
    tolerances={"header_total_mismatch": Tolerance(over=Band(amount=Decimal("0.01")))},
    actions={
        "price_mismatch": SOFT_REVIEW,
        "qty_over_ordered": HARD_FAIL,
        "qty_over_received": SOFT_REVIEW,
        "unexpected_charge": SOFT_REVIEW,
        "header_total_mismatch": SOFT_REVIEW,
    },
)
SPEC_RULES = (Rule("*", "services", receipt_kind="service_completion"),)
SPEC_DEFAULT_ROLES = Roles(
    {
        "ap.lead@example.com": frozenset({"ap"}),
        "ops.lead@example.com": frozenset({"ops"}),
        "procurement.lead@example.com": frozenset({"procurement"}),
        "controller@example.com": frozenset({"*"}),
    }
)


def _mapping(value: Any, where: str, allowed: tuple[str, ...] | None = None) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}", "must be a mapping")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{where}.{key}", "keys must be strings")
        if allowed is not None and key not in allowed:
            raise ConfigError(f"{where}.{key}", f"unknown key (allowed: {', '.join(allowed)})")
    return cast(Mapping[str, Any], value)


def _choice(value: Any, where: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(f"{where}", f"{value!r} is not one of {', '.join(options)}")
    return cast(str, value)


def _non_negative(value: Any, where: str) -> Decimal:
    # YAML reads 0.01 as a float; its shortest repr is the decimal the author wrote.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where}", "must be a decimal number")
    try:
        result = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}", f"{value!r} is not a decimal number") from None
    if not result.is_finite() or result < 0:
        raise ConfigError(f"{where}", "must be a finite number ≥ 0")
    return result


def _band(value: Any, where: str) -> Band:
    m = _mapping(value, where, ("percent", "amount"))
    return Band(
        percent=_non_negative(m["percent"], f"{where}.percent") if "percent" in m else None,
        amount=_non_negative(m["amount"], f"{where}.amount") if "amount" in m else None,
    )


def _tolerances(value: Any, where: str) -> dict[str, Tolerance]:
    out: dict[str, Tolerance] = {}
    for reason, spec in _mapping(value, where, TOLERATED).items():
        here = f"{where}.{reason}"
        allowed = ("percent", "amount", "under") if reason == PRICE_MISMATCH else ("percent", "amount")
        m = _mapping(spec, here, allowed)
        over = _band({k: v for k, v in m.items() if k != "under"}, here)
        under = _band(m["under"], f"{here}.under") if "under" in m else None
        out[reason] = Tolerance(over=over, under=under)
    return out


def _actions(value: Any, where: str) -> dict[str, Action]:
    return {
        reason: cast(Action, _choice(action, f"{where}.{reason}", _ACTIONS))
        for reason, action in _mapping(value, where, TOLERATED).items()
    }


_KNOBS = ("mode", "receipt_kind", "tolerances", "actions")


def _line_policy(value: Any, where: str, base: LinePolicy) -> LinePolicy:
    m = _mapping(value, where, _KNOBS)
    return LinePolicy(
        mode=_choice(m["mode"], f"{where}.mode", _MODES) if "mode" in m else base.mode,
        receipt_kind=_choice(m["receipt_kind"], f"{where}.receipt_kind", (ANY_RECEIPT, *RECEIPT_KINDS))
        if "receipt_kind" in m
        else base.receipt_kind,
        tolerances={**base.tolerances, **_tolerances(m.get("tolerances", {}), f"{where}.tolerances")},
        actions={**base.actions, **_actions(m.get("actions", {}), f"{where}.actions")},
    )


def _rule(value: Any, where: str) -> Rule:
    m = _mapping(value, where, ("business_unit", "category", *_KNOBS))
    if "business_unit" not in m and "category" not in m:
        raise ConfigError(f"{where}", "names neither business_unit nor category")
    for key in ("business_unit", "category"):
        if key in m and (not isinstance(m[key], str) or not m[key]):
            raise ConfigError(f"{where}.{key}", 'must be a non-empty string ("*" for any)')
    return Rule(
        business_unit=m.get("business_unit", "*"),
        category=m.get("category", "*"),
        mode=_choice(m["mode"], f"{where}.mode", _MODES) if "mode" in m else None,
        receipt_kind=_choice(m["receipt_kind"], f"{where}.receipt_kind", (ANY_RECEIPT, *RECEIPT_KINDS))
        if "receipt_kind" in m
        else None,
        tolerances=_tolerances(m.get("tolerances", {}), f"{where}.tolerances"),
        actions=_actions(m.get("actions", {}), f"{where}.actions"),
    )


def _hold_texts(value: Any, where: str) -> dict[str, HoldText]:
    out: dict[str, HoldText] = {}
    for reason, spec in _mapping(value, where, ALL_REASONS).items():
        here = f"{where}.{reason}"
        m = _mapping(spec, here, ("evidence_required", "next_action"))
        evidence = m.get("evidence_required", [])
        if not isinstance(evidence, list) or not all(isinstance(e, str) and e for e in evidence):
            raise ConfigError(f"{here}.evidence_required", "must be a list of non-empty strings")
        action = m.get("next_action")
        if not isinstance(action, str) or not action:
            raise ConfigError(f"{here}.next_action", "must be a non-empty string")
        out[reason] = HoldText(tuple(evidence), action)
    return out


# SPEC §15: tax above 30 % of the net lines is reviewed unless the policy says otherwise.
DEFAULT_MAX_TAX_RATE = "30"


def parse_policy(document: Any) -> Policy:
    """The `matching:` section of a parsed policy document; other sections are not ours."""
    if document is None:
        document = {}
    top = _mapping(document, "policy file")
    if top.get("matching") is None:
        return Policy(default=SPEC_DEFAULT, rules=SPEC_RULES)
    section = _mapping(top["matching"], "matching", ("default", "rules", "queues", "holds", "max_tax_rate"))
    default = _line_policy(section.get("default", {}), "matching.default", SPEC_DEFAULT)
    raw_rules = section.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ConfigError("matching.rules", "must be a list")
    rules = tuple(_rule(r, f"matching.rules[{i}]") for i, r in enumerate(raw_rules))
    seen: dict[tuple[str, str], int] = {}
    for i, r in enumerate(rules):
        key = (r.business_unit, r.category)
        if key in seen:
            raise ConfigError(
                f"matching.rules[{i}]", f"same business_unit/category as matching.rules[{seen[key]}]"
            )
        seen[key] = i
    owners: dict[str, str] = {}
    for queue, spec in _mapping(section.get("queues", {}), "matching.queues", QUEUES).items():
        m = _mapping(spec, f"matching.queues.{queue}", ("owner",))
        if not isinstance(m.get("owner"), str) or not m["owner"]:
            raise ConfigError(f"matching.queues.{queue}.owner", "must name the queue's owner")
        owners[queue] = m["owner"]
    return Policy(
        default=default,
        rules=rules,
        queue_owners=owners,
        hold_texts=_hold_texts(section.get("holds", {}), "matching.holds"),
        max_tax_rate=_non_negative(
            section.get("max_tax_rate", DEFAULT_MAX_TAX_RATE), "matching.max_tax_rate"
        ),
    )


def parse_roles(document: Any) -> Roles:
    # `users:` (who may sign in to the console, with password hashes) is the console's to check;
    # `approval_limits:` (SPEC §13.1) is intake's (shared/authority.py); `roles:` (§13.2) payout_release's.
    top = _mapping(
        document if document is not None else {},
        "roles file",
        ("approvers", "users", "roles", "approval_limits"),
    )
    # Every service that reads the roles file refuses a bad approval limit at start, naming it.
    parse_authority(top.get("approval_limits"))
    grants: dict[str, frozenset[str]] = {}
    for person, queues in _mapping(top.get("approvers", {}), "approvers").items():
        where = f"approvers.{person}"
        if not isinstance(queues, list) or not queues:
            raise ConfigError(where, 'must be a non-empty list of queues (or ["*"])')
        for q in queues:
            _choice(q, f"{where}[]", (*QUEUES, "*"))
        grants[person] = frozenset(queues)
    return Roles(grants)
