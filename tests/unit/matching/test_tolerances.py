"""Tolerance edges, per mismatch type: exactly at the tolerance passes, one minor unit over fails."""

from __future__ import annotations

import pytest

from services.matching import domain as d
from tests.unit.matching.factory import D, invoice, line, po, reasons, receipt, state, tolerant

GR = (receipt(),)
BIG_GR = (receipt(quantity="20"),)
FREIGHT_PO = po(charges=(d.Charge("freight", D("50.00")),))


def freight(amount: str) -> tuple[d.Charge, ...]:
    return (d.Charge("freight", D(amount)),)


CASES = [
    # (name, policy, state, reason that must (not) appear, passes)
    (
        "price +2% at 2%",
        tolerant("price_mismatch", percent="2"),
        state(invoice("INV-1", line(price="102.00")), receipts=GR),
        "price_mismatch",
        True,
    ),
    (
        "price +2% and one cent at 2%",
        tolerant("price_mismatch", percent="2"),
        state(invoice("INV-1", line(price="102.01")), receipts=GR),
        "price_mismatch",
        False,
    ),
    (
        "price variance 5.00 at amount 5.00",
        tolerant("price_mismatch", amount="5.00"),
        state(invoice("INV-1", line(price="100.50")), receipts=GR),
        "price_mismatch",
        True,
    ),
    (
        "price variance 5.01 at amount 5.00",
        tolerant("price_mismatch", amount="5.00"),
        state(invoice("INV-1", line(price="100.501", amount="1005.01")), receipts=GR),
        "price_mismatch",
        False,
    ),
    (
        "price within amount though beyond percent (either passes)",
        tolerant("price_mismatch", percent="1", amount="50.00"),
        state(invoice("INV-1", line(price="104.99")), receipts=GR),
        "price_mismatch",
        True,
    ),
    (
        "price beyond both percent and amount",
        tolerant("price_mismatch", percent="1", amount="50.00"),
        state(invoice("INV-1", line(price="105.01")), receipts=GR),
        "price_mismatch",
        False,
    ),
    (
        "price 10% under with under band 10%",
        tolerant("price_mismatch", under=d.Band(percent=D("10"))),
        state(invoice("INV-1", line(price="90.00")), receipts=GR),
        "price_mismatch",
        True,
    ),
    (
        "price 10% and a cent under with under band 10%",
        tolerant("price_mismatch", under=d.Band(percent=D("10"))),
        state(invoice("INV-1", line(price="89.99")), receipts=GR),
        "price_mismatch",
        False,
    ),
    (
        "under band leaves the upper bound exact",
        tolerant("price_mismatch", under=d.Band(percent=D("10"))),
        state(invoice("INV-1", line(price="100.01")), receipts=GR),
        "price_mismatch",
        False,
    ),
    (
        "ordered +10% at 10%",
        tolerant("qty_over_ordered", percent="10"),
        state(invoice("INV-1", line(quantity="11")), receipts=BIG_GR),
        "qty_over_ordered",
        True,
    ),
    (
        "ordered +10% and one millionth at 10%",
        tolerant("qty_over_ordered", percent="10"),
        state(invoice("INV-1", line(quantity="11.000001", amount="1100.00")), receipts=BIG_GR),
        "qty_over_ordered",
        False,
    ),
    (
        "ordered excess worth 100.00 at amount 100.00",
        tolerant("qty_over_ordered", amount="100.00"),
        state(invoice("INV-1", line(quantity="11")), receipts=BIG_GR),
        "qty_over_ordered",
        True,
    ),
    (
        "ordered excess worth 100.01 at amount 100.00",
        tolerant("qty_over_ordered", amount="100.00"),
        state(invoice("INV-1", line(quantity="11.0001", amount="1100.01")), receipts=BIG_GR),
        "qty_over_ordered",
        False,
    ),
    (
        "received +10% at 10%",
        tolerant("qty_over_received", percent="10"),
        state(invoice("INV-1", line(quantity="5.5")), receipts=(receipt(quantity="5"),)),
        "qty_over_received",
        True,
    ),
    (
        "received +10% and one millionth at 10%",
        tolerant("qty_over_received", percent="10"),
        state(
            invoice("INV-1", line(quantity="5.500001", amount="550.00")), receipts=(receipt(quantity="5"),)
        ),
        "qty_over_received",
        False,
    ),
    (
        "received excess worth 0.01 at amount 0.01",
        tolerant("qty_over_received", amount="0.01"),
        state(invoice("INV-1", line(quantity="5.0001", amount="500.01")), receipts=(receipt(quantity="5"),)),
        "qty_over_received",
        True,
    ),
    (
        "received excess worth 0.02 at amount 0.01",
        tolerant("qty_over_received", amount="0.01"),
        state(invoice("INV-1", line(quantity="5.0002", amount="500.02")), receipts=(receipt(quantity="5"),)),
        "qty_over_received",
        False,
    ),
    (
        "charge 55.00 against 50.00 allowed at amount 5.00",
        tolerant("unexpected_charge", amount="5.00"),
        state(invoice(charges=freight("55.00")), purchase_order=FREIGHT_PO, receipts=GR),
        "unexpected_charge",
        True,
    ),
    (
        "charge 55.01 against 50.00 allowed at amount 5.00",
        tolerant("unexpected_charge", amount="5.00"),
        state(invoice(charges=freight("55.01")), purchase_order=FREIGHT_PO, receipts=GR),
        "unexpected_charge",
        False,
    ),
    (
        "charge 55.00 against 50.00 allowed at 10%",
        tolerant("unexpected_charge", percent="10"),
        state(invoice(charges=freight("55.00")), purchase_order=FREIGHT_PO, receipts=GR),
        "unexpected_charge",
        True,
    ),
    (
        "charge 55.01 against 50.00 allowed at 10%",
        tolerant("unexpected_charge", percent="10"),
        state(invoice(charges=freight("55.01")), purchase_order=FREIGHT_PO, receipts=GR),
        "unexpected_charge",
        False,
    ),
    (
        "header off by 10.00 at 1%",
        tolerant("header_total_mismatch", percent="1"),
        state(invoice(total="1010.00"), receipts=GR),
        "header_total_mismatch",
        True,
    ),
    (
        "header off by 10.01 at 1%",
        tolerant("header_total_mismatch", percent="1"),
        state(invoice(total="1010.01"), receipts=GR),
        "header_total_mismatch",
        False,
    ),
    (
        "header off by 0.01 under the SPEC default",
        tolerant("header_total_mismatch", amount="0.01"),
        state(invoice(total="999.99"), receipts=GR),
        "header_total_mismatch",
        True,
    ),
    (
        "header off by 0.02 under the SPEC default",
        tolerant("header_total_mismatch", amount="0.01"),
        state(invoice(total="999.98"), receipts=GR),
        "header_total_mismatch",
        False,
    ),
]


@pytest.mark.parametrize(("name", "pol", "po_state", "reason", "passes"), CASES, ids=[c[0] for c in CASES])
def test_tolerance_edge(name: str, pol: d.Policy, po_state: d.PoState, reason: str, passes: bool) -> None:
    outcome = d.evaluate(po_state, pol)["INV-1"]
    failed = {r for r, _ in reasons(outcome)}
    assert (reason not in failed) == passes, failed
    if passes:
        assert isinstance(outcome, d.Approved), outcome


BANDS = [
    # (band, excess, reference, excess money, allowed)
    (d.Band(), D("0"), D("100"), D("0"), True),
    (d.Band(), D("0.000001"), D("100"), D("0.0001"), False),
    (d.Band(percent=D("0")), D("0.01"), D("100"), D("0.01"), False),
    (d.Band(percent=D("5")), D("5"), D("100"), D("999"), True),
    (d.Band(percent=D("5")), D("5"), D("-100"), D("999"), True),  # a credit's reference counts by size
    (d.Band(amount=D("1.00")), D("9"), D("1"), D("1.00"), True),
    (d.Band(amount=D("1.00")), D("9"), D("1"), D("1.001"), False),
    (d.Band(percent=D("1"), amount=D("1.00")), D("9"), D("1"), D("1.00"), True),
]


@pytest.mark.parametrize(("band", "excess", "reference", "money", "allowed"), BANDS)
def test_band_within_either_percent_or_amount(
    band: d.Band, excess: D, reference: D, money: D, allowed: bool
) -> None:
    assert band.allows(excess, reference, money) is allowed
