"""Payment terms and due dates (SPEC §13.5), pure: what a PO's `payment_terms` text means, when
an approved invoice falls due under its business unit's payout policy, and the early-payment
discount a release takes.

Understood forms: `NET<n>` (due n days after the invoice's issue date), `<d>/<p> NET<n>` (p % off
if paid within d days of issue, else due at n days) and `DUE_ON_RECEIPT`. Anything else — no
terms, free text, a discount window longer than the net period — is due on receipt, and the
parsed terms say why (`note`), so the trace can show it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from shared.money import quantize_money

NOT_DUE = "not_due"

PayOn = Literal["asap", "due_date"]

_NET = re.compile(r"NET ?(\d{1,3})")
# Written as the trade writes it: `2/10 NET30` is 2 % off within 10 days (the SPEC's example),
# so the percent comes first and the window in days second.
_DISCOUNT_NET = re.compile(r"(\d{1,2}(?:\.\d{1,4})?)/(\d{1,3}) NET ?(\d{1,3})")
_HUNDRED = Decimal(100)


class TermsKind(StrEnum):
    NET = "net"
    DISCOUNT_NET = "discount_net"
    DUE_ON_RECEIPT = "due_on_receipt"


@dataclass(frozen=True)
class Terms:
    kind: TermsKind
    net_days: int = 0
    discount_days: int | None = None
    discount_percent: Decimal | None = None
    text: str | None = None  # as written on the PO
    note: str | None = None  # why text that did not parse counts as due on receipt


DUE_ON_RECEIPT = Terms(TermsKind.DUE_ON_RECEIPT, text="DUE_ON_RECEIPT")


def parse_terms(text: str | None) -> Terms:
    """A PO's payment_terms as the rules understand them. Whitespace around the text and the
    letter case are forgiven; anything else unreadable is due on receipt, with a note."""
    if text is None or not text.strip():
        return Terms(TermsKind.DUE_ON_RECEIPT, text=text, note="no payment terms: due on receipt")
    written = " ".join(text.split()).upper()
    if written == "DUE_ON_RECEIPT":
        return Terms(TermsKind.DUE_ON_RECEIPT, text=text)
    if m := _NET.fullmatch(written):
        return Terms(TermsKind.NET, net_days=int(m[1]), text=text)
    if m := _DISCOUNT_NET.fullmatch(written):
        percent, days, net = Decimal(m[1]), int(m[2]), int(m[3])
        if not 0 < percent < _HUNDRED:
            return _unreadable(text, "discount percent must be above 0 and below 100")
        if days > net:
            return _unreadable(text, "discount window longer than the net period")
        return Terms(TermsKind.DISCOUNT_NET, net, days, percent, text=text)
    return _unreadable(text, "not NET<n>, <d>/<p> NET<n> or DUE_ON_RECEIPT")


def _unreadable(text: str, why: str) -> Terms:
    return Terms(
        TermsKind.DUE_ON_RECEIPT,
        text=text,
        note=f"payment terms {text!r} not understood ({why}): due on receipt",
    )


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


def due_date(issue_date: date, terms: Terms) -> date:
    return issue_date + timedelta(days=terms.net_days)


def discount_window_end(issue_date: date, terms: Terms) -> date | None:
    """The last day of the early-payment window: paid within d days of the issue date."""
    if terms.kind is not TermsKind.DISCOUNT_NET or terms.discount_days is None:
        return None
    return issue_date + timedelta(days=terms.discount_days)


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
