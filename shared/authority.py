"""Approval authority (SPEC §13.1): who may approve a requisition or a PO version of what size.

The roles file's `approval_limits:` section, per person and document kind, lists
`{currency | "*", limit | "unlimited", business_units | "*"}`:

```yaml
approval_limits:
  manager@example.com:
    purchase_order: [{currency: "*", limit: "1000000.00", business_units: "*"}]
    requisition:    [{currency: "*", limit: "1000000.00", business_units: "*"}]
  controller@example.com:
    purchase_order: [{currency: "*", limit: unlimited, business_units: "*"}]
```

A document is approved only if one of its approver's entries covers its total in its currency
for its business unit (total ≤ limit: exactly at the limit passes). A person not in the file has
no authority. Parsed once at start; a negative or malformed limit, an unknown document kind or
key stops the start with a ConfigError naming the key. The decision (`covering_limit`) is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from shared.config import ConfigError
from shared.text import person_key

DocumentKind = Literal["requisition", "purchase_order"]
DOCUMENT_KINDS: tuple[DocumentKind, ...] = ("requisition", "purchase_order")
ANY = "*"
UNLIMITED = "unlimited"
SECTION = "approval_limits"


@dataclass(frozen=True)
class ApprovalLimit:
    """One entry of a person's authority; `limit` None = unlimited, `business_units` None = any."""

    person: str
    kind: DocumentKind
    currency: str  # an ISO code or "*"
    limit: Decimal | None
    business_units: frozenset[str] | None = None
    index: int = 0  # its position in the file, for the trace: approval_limits.<person>.<kind>[i]

    def covers(self, currency: str, business_unit: str, total: Decimal) -> bool:
        return (
            self.currency in (ANY, currency)
            and (self.business_units is None or business_unit in self.business_units)
            and (self.limit is None or total <= self.limit)
        )

    @property
    def key(self) -> str:
        return f"{SECTION}.{self.person}.{self.kind}[{self.index}]"

    def describe(self) -> str:
        limit = (
            UNLIMITED
            if self.limit is None
            else f"{self.limit} {self.currency if self.currency != ANY else '(any currency)'}"
        )
        units = ANY if self.business_units is None else ", ".join(sorted(self.business_units))
        return f"{self.key}: {limit}, business units {units}"

    def as_dict(self) -> dict[str, Any]:
        """What the emitted events carry (shared/contracts: ApprovalLimitUsed)."""
        return {
            "person": self.person,
            "kind": self.kind,
            "currency": self.currency,
            "limit": None if self.limit is None else str(self.limit),
            "business_units": ANY if self.business_units is None else sorted(self.business_units),
            "rule": self.key,
        }


@dataclass(frozen=True)
class Authority:
    """Everyone's limits, by person (compared like SPEC §15 compares people: case-insensitively)."""

    limits: Mapping[str, tuple[ApprovalLimit, ...]]

    def covering_limit(
        self, person: str | None, kind: DocumentKind, currency: str, business_unit: str, total: Decimal
    ) -> ApprovalLimit | None:
        """The entry that lets `person` approve this document, or None. Of several, the most
        specific (named currency over "*", named business units over "*"), then the first."""
        if not person:
            return None
        entries = [
            e
            for e in self.limits.get(person_key(person), ())
            if e.kind == kind and e.covers(currency, business_unit, total)
        ]
        if not entries:
            return None
        return min(entries, key=lambda e: (e.currency == ANY, e.business_units is None, e.index))


def po_total(lines: Iterable[tuple[Decimal, Decimal]], charges: Iterable[Decimal]) -> Decimal:
    """SPEC §13.1: a PO's total = Σ quantity × unit_price + allowed charges (not rounded)."""
    return sum((q * p for q, p in lines), Decimal(0)) + sum(charges, Decimal(0))


# --- parsing (start-up) ----------------------------------------------------------------------

_ENTRY_KEYS = ("currency", "limit", "business_units")


def _limit(value: Any, where: str) -> Decimal | None:
    if value == UNLIMITED:
        return None
    # YAML reads 1000000.00 as a float; its shortest repr is what the author wrote.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(where, f'must be a decimal amount or "{UNLIMITED}"')
    try:
        result = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise ConfigError(where, f'{value!r} is not a decimal amount or "{UNLIMITED}"') from None
    if not result.is_finite() or result < 0:
        raise ConfigError(where, f"{value!r}: a limit must be a finite amount ≥ 0")
    return result


def _entry(value: Any, person: str, kind: DocumentKind, index: int) -> ApprovalLimit:
    where = f"{SECTION}.{person}.{kind}[{index}]"
    if not isinstance(value, dict):
        raise ConfigError(where, "must be a mapping {currency, limit, business_units}")
    for key in value:
        if key not in _ENTRY_KEYS:
            raise ConfigError(f"{where}.{key}", f"unknown key (allowed: {', '.join(_ENTRY_KEYS)})")
    for key in _ENTRY_KEYS:
        if key not in value:
            raise ConfigError(f"{where}.{key}", "missing")
    currency = value["currency"]
    if not isinstance(currency, str) or not (currency == ANY or (len(currency) == 3 and currency.isupper())):
        raise ConfigError(f"{where}.currency", f'{currency!r} is not an ISO 4217 code or "*"')
    units = value["business_units"]
    if units == ANY:
        business_units = None
    elif isinstance(units, list) and units and all(isinstance(u, str) and u for u in units):
        business_units = frozenset(units)
    else:
        raise ConfigError(f"{where}.business_units", 'must be "*" or a non-empty list of business units')
    return ApprovalLimit(
        person, kind, currency, _limit(value["limit"], f"{where}.limit"), business_units, index
    )


def parse_authority(section: Any) -> Authority:
    """The roles file's `approval_limits:` section (None: absent, nobody has authority)."""
    if section is None:
        return Authority({})
    if not isinstance(section, dict):
        raise ConfigError(SECTION, "must be a mapping person → {requisition, purchase_order}")
    limits: dict[str, tuple[ApprovalLimit, ...]] = {}
    for person, kinds in section.items():
        if not isinstance(person, str) or not person.strip():
            raise ConfigError(f"{SECTION}.{person}", "a person must be a non-empty string")
        if not isinstance(kinds, dict):
            raise ConfigError(f"{SECTION}.{person}", "must be a mapping of document kind → list of limits")
        entries: list[ApprovalLimit] = []
        for kind, items in kinds.items():
            if kind not in DOCUMENT_KINDS:
                raise ConfigError(
                    f"{SECTION}.{person}.{kind}",
                    f"unknown document kind (allowed: {', '.join(DOCUMENT_KINDS)})",
                )
            if not isinstance(items, list):
                raise ConfigError(f"{SECTION}.{person}.{kind}", "must be a list of limits")
            entries += [_entry(v, person, kind, i) for i, v in enumerate(items)]
        key = person_key(person)
        if key in limits:
            raise ConfigError(f"{SECTION}.{person}", "the same person is listed twice")
        limits[key] = tuple(entries)
    return Authority(limits)


def _everyone(limit: str | None) -> dict[str, Any]:
    entry = {"currency": ANY, "limit": limit or UNLIMITED, "business_units": ANY}
    return {kind: [entry] for kind in DOCUMENT_KINDS}


# SPEC §13.1's shipped defaults (deploy/roles.yaml says the same; a test keeps them equal).
SPEC_DEFAULT_AUTHORITY = parse_authority(
    {
        "manager@example.com": _everyone("1000000.00"),
        "procurement.lead@example.com": _everyone("1000000.00"),
        "controller@example.com": _everyone(None),
    }
)
