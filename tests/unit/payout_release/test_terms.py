"""SPEC §13.5 payment terms, pure: parsing (incl. text that does not parse), the due-date
schedule per policy, the discount-window boundaries and the discount's rounding."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.payout_release.domain.terms import (
    TermsKind,
    TermsPolicy,
    discount_amount,
    parse_terms,
    schedule,
)

ISSUE = date(2026, 11, 1)
CORPORATE = TermsPolicy(pay_on="due_date", take_early_discounts=True, lead_days=2)
DUE_DATE_NO_DISCOUNT = TermsPolicy(pay_on="due_date", take_early_discounts=False, lead_days=2)
ASAP = TermsPolicy()


@pytest.mark.parametrize(
    ("text", "kind", "net", "days", "percent"),
    [
        ("NET30", TermsKind.NET, 30, None, None),
        ("NET0", TermsKind.NET, 0, None, None),
        (" net 45 ", TermsKind.NET, 45, None, None),
        ("2/10 NET30", TermsKind.DISCOUNT_NET, 30, 10, Decimal("2")),
        ("1.5/15 NET60", TermsKind.DISCOUNT_NET, 60, 15, Decimal("1.5")),
        ("2/30 NET30", TermsKind.DISCOUNT_NET, 30, 30, Decimal("2")),
        ("DUE_ON_RECEIPT", TermsKind.DUE_ON_RECEIPT, 0, None, None),
        ("due_on_receipt", TermsKind.DUE_ON_RECEIPT, 0, None, None),
    ],
)
def test_understood_terms(
    text: str, kind: TermsKind, net: int, days: int | None, percent: Decimal | None
) -> None:
    terms = parse_terms(text)
    assert (terms.kind, terms.net_days, terms.discount_days, terms.discount_percent) == (
        kind,
        net,
        days,
        percent,
    )
    assert terms.note is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (None, "no payment terms"),
        ("", "no payment terms"),
        ("payable end of month", "not understood"),
        ("NET", "not understood"),
        ("NET-5", "not understood"),
        ("NET30 2/10", "not understood"),
        ("2/10NET30", "not understood"),
        ("2/40 NET30", "discount window longer than the net period"),
        ("0/10 NET30", "above 0"),
        ("100/10 NET30", "not understood"),
        ("NET1000", "not understood"),
    ],
)
def test_anything_else_is_due_on_receipt_and_says_why(text: str | None, why: str) -> None:
    terms = parse_terms(text)
    assert terms.kind is TermsKind.DUE_ON_RECEIPT
    assert terms.net_days == 0 and terms.discount_percent is None
    assert terms.note is not None and why in terms.note


def day(n: int) -> date:
    return ISSUE + timedelta(days=n)


@pytest.mark.parametrize(
    ("text", "policy", "today", "not_before", "discount_until"),
    [
        # asap: payable at once; discount only for a unit that takes them, inside the window
        ("2/10 NET30", ASAP, day(0), None, None),
        ("2/10 NET30", TermsPolicy(take_early_discounts=True), day(10), None, day(10)),
        ("2/10 NET30", TermsPolicy(take_early_discounts=True), day(11), None, None),
        # corporate on 2/10 NET30: release_by = window end (day 10); last run before day 8 = day 7
        ("2/10 NET30", CORPORATE, day(0), day(7), day(10)),
        ("2/10 NET30", CORPORATE, day(6), day(7), day(10)),
        ("2/10 NET30", CORPORATE, day(7), None, day(10)),
        ("2/10 NET30", CORPORATE, day(10), None, day(10)),  # last day of the window: discount
        # window passed: release_by = due date (day 30) → day 27, no discount
        ("2/10 NET30", CORPORATE, day(11), day(27), None),
        ("2/10 NET30", CORPORATE, day(27), None, None),
        ("2/10 NET30", CORPORATE, day(40), None, None),
        # due_date without discounts: by the due date
        ("2/10 NET30", DUE_DATE_NO_DISCOUNT, day(0), day(27), None),
        ("NET30", CORPORATE, day(26), day(27), None),
        ("NET30", CORPORATE, day(27), None, None),
        ("NET30", TermsPolicy(pay_on="due_date", lead_days=0), day(28), day(29), None),
        # due on receipt (and unreadable terms): payable at once
        ("DUE_ON_RECEIPT", CORPORATE, day(0), None, None),
        ("whenever", CORPORATE, day(0), None, None),
        (None, CORPORATE, day(0), None, None),
    ],
)
def test_schedule(
    text: str | None, policy: TermsPolicy, today: date, not_before: date | None, discount_until: date | None
) -> None:
    s = schedule(ISSUE, parse_terms(text), policy, today)
    assert (s.not_before, s.discount_until) == (not_before, discount_until)


def test_due_date_is_issue_plus_net_days() -> None:
    assert schedule(ISSUE, parse_terms("2/10 NET30"), CORPORATE, ISSUE).due_date == date(2026, 12, 1)


@pytest.mark.parametrize(
    ("payable", "text", "currency", "discount"),
    [
        ("1000.00", "2/10 NET30", "EUR", "20.00"),
        ("100.25", "2/10 NET30", "EUR", "2.01"),  # 2.005 rounds half-up
        ("100.24", "2/10 NET30", "EUR", "2.00"),  # 2.0048
        ("1001", "1.5/10 NET30", "JPY", "15"),  # 15.015 → 15 (no minor unit)
        ("1003", "1.5/10 NET30", "JPY", "15"),  # 15.045
        ("1010", "1.5/10 NET30", "JPY", "15"),  # 15.15
        ("1034", "1.5/10 NET30", "JPY", "16"),  # 15.51
        ("100.00", "NET30", "EUR", "0"),
    ],
)
def test_discount_rounds_half_up_to_the_minor_unit(
    payable: str, text: str, currency: str, discount: str
) -> None:
    assert discount_amount(Decimal(payable), parse_terms(text), currency) == Decimal(discount)
