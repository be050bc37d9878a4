"""Payment terms and due dates (SPEC §13.5), pure: when an approved invoice falls due under its
business unit's payout policy, and the early-payment discount a release takes. The terms text
itself is read by shared.payment_terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from shared.money import quantize_money
from shared.payment_terms import (
    DUE_ON_RECEIPT,
    Terms,
    TermsKind,
    discount_window_end,
    due_date,
    parse_terms,
)

__all__ = [
    "DUE_ON_RECEIPT",
    "NOT_DUE",
    "PayOn",
    "Schedule",
    "Terms",
    "TermsKind",
    "TermsPolicies",
    "TermsPolicy",
    "discount_amount",
    "discount_window_end",
    "due_date",
    "parse_terms",
    "schedule",
]

NOT_DUE = "not_due"

PayOn = Literal["asap", "due_date"]
_HUNDRED = Decimal(100)


# --- policy per business unit ----------------------------------------------------------------


@dataclass(frozen=True)
class TermsPolicy:
    """How one business unit pays invoices on terms (policy file, payout_release.terms)."""

    pay_on: PayOn = "asap"
    take_early_discounts: bool = False
    lead_days: int = 2


@dataclass(frozen=True)
class TermsPolicies:
    default: TermsPolicy = field(default_factory=TermsPolicy)
    business_units: Mapping[str, TermsPolicy] = field(default_factory=dict)

    def of(self, business_unit: str | None) -> TermsPolicy:
        return self.business_units.get(business_unit or "", self.default)


# --- the schedule ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """When one invoice may be released and what a release today takes off."""

    due_date: date
    discount_until: date | None  # last day a release takes the discount (None: no discount)
    not_before: date | None  # None: payable today


def schedule(issue_date: date, terms: Terms, policy: TermsPolicy, today: date) -> Schedule:
    """SPEC §13.5. With `pay_on: due_date` an invoice is released by the last scheduled run
    before `release_by − lead_days`: on the day before it, or at once if that day has passed.
    `release_by` is the end of the discount window while discounts are taken and the window is
    open, else the due date. A discount is only ever taken by a unit that takes them."""
    due = due_date(issue_date, terms)
    window = discount_window_end(issue_date, terms) if policy.take_early_discounts else None
    discount_until = window if window is not None and today <= window else None
    if policy.pay_on == "asap":
        return Schedule(due, discount_until, None)
    release_by = discount_until if discount_until is not None else due
    last_day = release_by - timedelta(days=policy.lead_days + 1)
    return Schedule(due, discount_until, last_day if today < last_day else None)


def discount_amount(payable: Decimal, terms: Terms, currency: str) -> Decimal:
    """p % of the payable amount, rounded half-up to the currency's minor unit."""
    if terms.discount_percent is None:
        return Decimal(0)
    return quantize_money(payable * terms.discount_percent / _HUNDRED, currency)
