"""Property-based checks: invoice-number normalisation and decimal/currency arithmetic."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import assume, given
from hypothesis import strategies as st

from services.intake import domain
from services.intake.domain import FlipPo, FlipPoLine, Invoice, InvoiceLine
from shared.money import MINOR_UNITS, minor_units, quantize_money

SEPARATORS = " -./_"
numbers = st.text(alphabet="ABCXYZabcxyz0123456789" + SEPARATORS, min_size=1, max_size=24)
currencies = st.sampled_from(sorted(MINOR_UNITS))
quantities = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("100000"), places=6)
# The arithmetic properties, apart from the max_amount guard (tested on its own).
NO_LIMIT = Decimal(10**15)
prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=6)


@given(numbers)
def test_normalising_twice_changes_nothing(number: str) -> None:
    once = domain.normalise_invoice_number(number)
    assert domain.normalise_invoice_number(once) == once


@given(numbers)
def test_case_and_separators_never_matter(number: str) -> None:
    n = domain.normalise_invoice_number(number)
    assert domain.normalise_invoice_number(number.lower()) == n
    assert domain.normalise_invoice_number("-".join(number)) == n
    assert not set(n) & set(SEPARATORS) and n == n.upper()


@given(
    st.text(alphabet="ABCXYZ", min_size=0, max_size=5),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=6),
)
def test_zero_padding_of_a_number_never_matters(prefix: str, value: int, padding: int) -> None:
    assert domain.normalise_invoice_number(
        f"{prefix}{'0' * padding}{value}"
    ) == domain.normalise_invoice_number(f"{prefix}{value}")


def _invoice(currency: str, lines: tuple[InvoiceLine, ...], tax: Decimal = Decimal(0)) -> Invoice:
    total = sum((ln.line_amount for ln in lines), Decimal(0)) + tax
    return Invoice(
        "I", "N-1", "P", "E", "invoice", date(2026, 1, 1), currency, lines, tax, total, po_number="PO"
    )


@given(currencies, quantities, prices)
def test_a_line_rounded_to_the_currency_minor_unit_always_passes(
    currency: str, qty: Decimal, price: Decimal
) -> None:
    amount = quantize_money(qty * price, currency)
    line = InvoiceLine("1", qty, price, amount, po_line_id="L1")
    assert [r.code for r in domain.line_reasons(_invoice(currency, (line,)), 0, line)] == []


@given(currencies, quantities, prices, st.sampled_from([-1, 1]))
def test_a_line_one_minor_unit_off_always_fails(
    currency: str, qty: Decimal, price: Decimal, sign: int
) -> None:
    unit = Decimal(1).scaleb(-minor_units(currency))
    amount = quantize_money(qty * price, currency) + sign * unit
    # Exactly half-way values may be rounded either way by the sender (half-even): not "off".
    assume(amount > 0 and abs(amount - qty * price) > unit / 2)
    line = InvoiceLine("1", qty, price, amount, po_line_id="L1")
    assert "line_amount_mismatch" in [
        r.code for r in domain.line_reasons(_invoice(currency, (line,)), 0, line)
    ]


@given(currencies, st.integers(min_value=-(10**12), max_value=10**12))
def test_amount_scale_follows_iso_4217_minor_units(currency: str, minor: int) -> None:
    units = minor_units(currency)
    exact = Decimal(minor).scaleb(-units)
    assert domain.amount_scale_reasons(currency, [("a", exact)]) == []
    one_more = exact + Decimal(1).scaleb(-units - 1)
    assert [r.code for r in domain.amount_scale_reasons(currency, [("a", one_more)])] == [
        "invalid_amount_scale"
    ]


@given(
    currencies,
    st.lists(st.tuples(quantities, prices), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=10**6),
)
def test_totals_built_from_lines_and_tax_always_balance(
    currency: str, raw: list[tuple[Decimal, Decimal]], tax_minor: int
) -> None:
    lines = tuple(
        InvoiceLine(str(i), q, p, quantize_money(q * p, currency), po_line_id="L")
        for i, (q, p) in enumerate(raw)
    )
    tax = Decimal(tax_minor).scaleb(-minor_units(currency))
    inv = _invoice(currency, lines, tax)
    codes = {r.code for r in domain.invoice_form_reasons(inv, NO_LIMIT)}
    assert codes <= {"non_positive_total"}
    assert ("non_positive_total" in codes) == (inv.payable_amount <= 0)


@given(currencies, st.lists(st.tuples(quantities, prices), min_size=1, max_size=4))
def test_a_po_flip_always_produces_a_valid_invoice_or_says_why(
    currency: str, raw: list[tuple[Decimal, Decimal]]
) -> None:
    po = FlipPo(
        "PO", "P", "E", currency, tuple(FlipPoLine(f"L{i}", "X", None, q, p) for i, (q, p) in enumerate(raw))
    )
    invoice, reasons = domain.build_flip_invoice("F", po, None, {}, date(2026, 1, 1))
    assert invoice is not None and reasons == []
    codes = {r.code for r in domain.invoice_form_reasons(invoice, NO_LIMIT)}
    assert codes <= {"non_positive_total"}  # a PO of zero-priced lines flips to nothing payable
