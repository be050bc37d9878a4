"""1099-NEC totals per US payee per year (SPEC §9; threshold configurable)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

ZERO = Decimal(0)


# --- 1099-NEC -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nec1099Total:
    payee_id: str
    country: str | None
    currency: str
    paid: Decimal  # settled minus returned within the calendar year
    payouts: int


def nec_totals(rows: Iterable[Mapping[str, Any]], threshold: Decimal) -> list[Nec1099Total]:
    """rows: (payee_id, country, currency, outcome, amount, payout_id); settled adds, returned
    subtracts. Payees at or above the threshold, largest first."""
    paid: dict[tuple[str, str | None, str], Decimal] = defaultdict(Decimal)
    payouts: dict[tuple[str, str | None, str], set[str]] = defaultdict(set)
    for r in rows:
        key = (r["payee_id"], r["country"], r["currency"])
        if r["outcome"] == "settled":
            paid[key] += r["amount"]
            payouts[key].add(r["payout_id"])
        elif r["outcome"] == "returned":
            paid[key] -= r["amount"]
    totals = [
        Nec1099Total(p, c, cur, amount, len(payouts[(p, c, cur)])) for (p, c, cur), amount in paid.items()
    ]
    return sorted((t for t in totals if t.paid >= threshold), key=lambda t: (-t.paid, t.payee_id))


async def totals_1099_nec(
    conn: asyncpg.Connection, year: int, threshold: Decimal, *, currency: str = "USD"
) -> list[Nec1099Total]:
    """Per payee tagged for 1099-NEC (latest eligibility): payouts settled in `year` minus
    those returned in `year`, in `currency`; only totals ≥ `threshold` (configurable: the IRS
    threshold changes)."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    rows = await conn.fetch(
        """SELECT o.payee_id, e.country, o.currency, o.outcome, o.amount, o.payout_id
             FROM payout_outcomes o JOIN payee_eligibility e USING (payee_id)
            WHERE e.reportable_1099_nec AND o.outcome IN ('settled', 'returned')
              AND o.currency = $3 AND o.at >= $1 AND o.at < $2""",
        start,
        end,
        currency,
    )
    return nec_totals(rows, threshold)
