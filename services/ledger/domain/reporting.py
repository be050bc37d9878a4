"""Pure comparisons the read side (reconciliation, invariants) needs."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from services.ledger.domain.journal import ZERO


def balance_differences(
    expected: Mapping[tuple[str, ...], Decimal], actual: Mapping[tuple[str, ...], Decimal]
) -> list[tuple[tuple[str, ...], Decimal, Decimal]]:
    """Keys where the journal's balance differs from the documents' (missing keys count as 0)."""
    out = []
    for key in sorted(set(expected) | set(actual)):
        exp, act = expected.get(key, ZERO), actual.get(key, ZERO)
        if exp != act:
            out.append((key, exp, act))
    return out


def ageing_bucket(days: int) -> str:
    """The usual AP ageing buckets."""
    if days <= 30:
        return "0-30"
    if days <= 60:
        return "31-60"
    if days <= 90:
        return "61-90"
    return "90+"
