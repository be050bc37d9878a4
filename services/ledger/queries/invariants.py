"""The SPEC §9 invariants (TigerBeetle style: named once, checked in one function that the
CLI, the chaos run and the tests call)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from services.ledger import domain as d

ZERO = Decimal(0)


# --- invariants (SPEC §9; TigerBeetle style: named once, checked in one function) -------------

INVARIANTS: dict[str, str] = {
    "entry_balances_per_currency": "every journal entry has ≥ 2 lines and debits = credits in each currency",
    "ap_is_approved_minus_released_plus_failed_returned": (
        "per payee and currency, the liability:ap balance = approved payables (net of revocations and credit"
        " notes) − payouts released + payouts failed + payouts returned"
    ),
    "in_transit_is_released_minus_settled_failed": (
        "per currency, liability:payouts_in_transit = payouts released − settled − failed"
    ),
    "no_source_event_posted_twice": (
        "a source event, a business fact, and a reversed entry each appear in at most one entry"
    ),
}


# The discounts a payout took, from its payout.released invoices (SPEC §13.5), as SQL over `p`.
_DISCOUNT = """(SELECT coalesce(sum((i ->> 'discount')::numeric), 0)
                 FROM jsonb_array_elements(p.invoices) AS i)"""


@dataclass(frozen=True)
class Violation:
    invariant: str  # a key of INVARIANTS
    detail: str


def current_approvals(rows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str, Decimal]]:
    """invoice_id → (payee, currency, signed payable) for invoices whose latest approval is not
    revoked; a credit note's payable counts negative. Rows in arrival order."""
    current: dict[str, tuple[str, str, Decimal]] = {}
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        # A decision re-published under a new event id posts nothing (its fact key is taken):
        # count each decision once, as the journal does.
        key = (row["invoice_id"], row["kind"], row["decision_id"] or "")
        if row["decision_id"] is not None and key in seen:
            continue
        seen.add(key)
        if row["kind"] == "approved_to_pay":
            sign = -1 if row["document_type"] == "credit_note" else 1
            current[row["invoice_id"]] = (row["payee_id"], row["currency"], sign * row["payable_amount"])
        elif row["kind"] == "approval_revoked":
            current.pop(row["invoice_id"], None)
    return current


def expected_ap(
    approvals: Mapping[str, tuple[str, str, Decimal]],
    released: Iterable[tuple[str, str, Decimal]],
    reinstated: Iterable[tuple[str, str, Decimal]],
) -> dict[tuple[str, ...], Decimal]:
    """(payee, currency) → approved − released + failed/returned."""
    out: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    for payee, currency, amount in approvals.values():
        out[(payee, currency)] += amount
    for payee, currency, amount in released:
        out[(payee, currency)] -= amount
    for payee, currency, amount in reinstated:
        out[(payee, currency)] += amount
    return dict(out)


async def check_invariants(conn: asyncpg.Connection) -> list[Violation]:
    """Every SPEC §9 invariant, checked against the journal and the documents it was posted
    from. An empty list means the ledger proves them all right now."""
    violations: list[Violation] = []

    # entry_balances_per_currency
    for r in await conn.fetch(
        """SELECT entry_id, currency, sum(debit) - sum(credit) AS net FROM journal_lines
            GROUP BY entry_id, currency HAVING sum(debit) <> sum(credit)"""
    ):
        violations.append(
            Violation(
                "entry_balances_per_currency", f"{r['entry_id']} is off by {r['net']} {r['currency'].strip()}"
            )
        )
    for r in await conn.fetch(
        """SELECT e.entry_id, count(l.line_no) AS n FROM journal_entries e
             LEFT JOIN journal_lines l USING (entry_id) GROUP BY e.entry_id HAVING count(l.line_no) < 2"""
    ):
        violations.append(Violation("entry_balances_per_currency", f"{r['entry_id']} has {r['n']} line(s)"))

    # ap_is_approved_minus_released_plus_failed_returned
    approvals = current_approvals(await conn.fetch("SELECT * FROM decisions ORDER BY seq"))
    # A payout clears its invoices' payable: what it paid plus the early-payment discounts it took
    # (SPEC §13.5); a failed or returned payout owes both again.
    released = [
        (r["payee_id"], r["currency"], r["amount"] + r["discount"])
        for r in await conn.fetch(
            f"SELECT payee_id, currency, amount, {_DISCOUNT} AS discount FROM payouts p"
        )
    ]
    reinstated = [
        (r["payee_id"], r["currency"], r["amount"] + r["discount"])
        for r in await conn.fetch(
            f"""SELECT o.payee_id, o.currency, o.amount, coalesce({_DISCOUNT}, 0) AS discount
                  FROM payout_outcomes o LEFT JOIN payouts p USING (payout_id)
                 WHERE o.outcome IN ('failed', 'returned')"""
        )
    ]
    actual_ap: dict[tuple[str, ...], Decimal] = {
        (r["account"].removeprefix(d.AP_PREFIX), r["currency"].strip()): r["balance"]
        for r in await conn.fetch(
            """SELECT account, currency, sum(credit) - sum(debit) AS balance FROM journal_lines
                WHERE account LIKE 'liability:ap:%' GROUP BY account, currency"""
        )
    }
    for (payee, currency), exp, act in d.balance_differences(
        expected_ap(approvals, released, reinstated), actual_ap
    ):
        violations.append(
            Violation(
                "ap_is_approved_minus_released_plus_failed_returned",
                f"payee {payee} {currency}: documents say {exp}, journal says {act}",
            )
        )

    # in_transit_is_released_minus_settled_failed
    expected_transit: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    for r in await conn.fetch("SELECT currency, sum(amount) AS s FROM payouts GROUP BY currency"):
        expected_transit[(r["currency"],)] += r["s"]
    for r in await conn.fetch(
        """SELECT currency, sum(amount) AS s FROM payout_outcomes
            WHERE outcome IN ('settled', 'failed') GROUP BY currency"""
    ):
        expected_transit[(r["currency"],)] -= r["s"]
    actual_transit: dict[tuple[str, ...], Decimal] = {
        (r["currency"].strip(),): r["balance"]
        for r in await conn.fetch(
            """SELECT currency, sum(credit) - sum(debit) AS balance FROM journal_lines
                WHERE account = $1 GROUP BY currency""",
            d.IN_TRANSIT,
        )
    }
    for (currency,), exp, act in d.balance_differences(expected_transit, actual_transit):
        violations.append(
            Violation(
                "in_transit_is_released_minus_settled_failed",
                f"{currency}: documents say {exp}, journal says {act}",
            )
        )

    # no_source_event_posted_twice
    for column in ("source_event_id", "fact_key", "reverses_entry_id"):
        for r in await conn.fetch(
            f"""SELECT {column} AS k, count(*) AS n FROM journal_entries
                 WHERE {column} IS NOT NULL GROUP BY {column} HAVING count(*) > 1"""
        ):
            violations.append(
                Violation("no_source_event_posted_twice", f"{column} {r['k']} posted {r['n']} times")
            )
    return violations
