"""SPEC §13.5 posting rules, pure: a discounted release clears the whole payable, and a failed or
returned one owes it all again; SPEC §13.2: the release entry links its expedite."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from services.ledger.domain.facts import PayoutRelease, RailOutcome
from services.ledger.domain.posting import post_payout_failed, post_payout_released, post_payout_returned

AP, IN_TRANSIT, INCOME = "liability:ap:P1", "liability:payouts_in_transit", "income:early_payment_discounts"


def lines(entry: object) -> dict[str, D]:
    """account → debit − credit."""
    assert entry is not None
    return {ln.account: ln.debit - ln.credit for ln in entry.lines}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("amount", "discount", "expected"),
    [
        ("980.00", "20.00", {AP: D("1000.00"), IN_TRANSIT: D("-980.00"), INCOME: D("-20.00")}),
        ("1000.00", "0", {AP: D("1000.00"), IN_TRANSIT: D("-1000.00")}),  # no income line at all
    ],
)
def test_release_clears_the_payable_and_books_the_discount(
    amount: str, discount: str, expected: dict[str, D]
) -> None:
    release = PayoutRelease("PAY-1", "P1", "F1", "EUR", D(amount), ("INV-1",), D(discount), "EXP-1")
    entry = post_payout_released(release)
    assert lines(entry) == expected
    assert entry is not None and entry.links.expedite_id == "EXP-1"


def test_a_failed_or_returned_discounted_payout_reinstates_the_whole_payable() -> None:
    outcome = RailOutcome("PAY-1", "R1", "P1", "F1", "EUR", D("980.00"), ("INV-1",), D("20.00"))
    assert lines(post_payout_failed(outcome)) == {
        IN_TRANSIT: D("980.00"),
        INCOME: D("20.00"),
        AP: D("-1000.00"),
    }
    assert lines(post_payout_returned(outcome)) == {
        "asset:funding:F1": D("980.00"),
        INCOME: D("20.00"),
        AP: D("-1000.00"),
    }
