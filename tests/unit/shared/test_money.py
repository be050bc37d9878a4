from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.money import (
    MAX_QUANTITY_DECIMALS,
    MAX_UNIT_PRICE_DECIMALS,
    MINOR_UNITS,
    CurrencyMismatch,
    InvalidDecimal,
    Money,
    UnknownCurrency,
    decimal_places,
    format_decimal,
    is_known_currency,
    is_valid_money_scale,
    minor_units,
    parse_decimal,
    quantize_money,
    quick_decimal,
)

D = Decimal


@pytest.mark.parametrize(
    ("currency", "units"),
    [
        ("EUR", 2),
        ("USD", 2),
        ("GBP", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("CLP", 0),
        ("ISK", 0),
        ("VND", 0),
        ("BHD", 3),
        ("KWD", 3),
        ("OMR", 3),
        ("JOD", 3),
        ("IQD", 3),
        ("LYD", 3),
        ("TND", 3),
        ("CLF", 4),
    ],
)
def test_minor_units(currency: str, units: int) -> None:
    assert minor_units(currency) == units
    assert is_known_currency(currency)


@pytest.mark.parametrize("code", ["XXX", "eur", "", "EURO", "ZZZ", "XAU"])
def test_unknown_currency(code: str) -> None:
    assert not is_known_currency(code)
    with pytest.raises(UnknownCurrency):
        minor_units(code)
    with pytest.raises(UnknownCurrency):
        quantize_money(D("1"), code)
    with pytest.raises(UnknownCurrency):
        Money(D("1"), code)


def test_constants() -> None:
    assert MAX_QUANTITY_DECIMALS == 6
    assert MAX_UNIT_PRICE_DECIMALS == 6
    assert len(MINOR_UNITS) > 150


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("2.345", "EUR", "2.35"),
        ("2.344", "EUR", "2.34"),
        ("-2.345", "EUR", "-2.35"),
        ("2", "EUR", "2.00"),
        ("0.005", "EUR", "0.01"),
        ("1234.5", "JPY", "1235"),
        ("1234.4", "JPY", "1234"),
        ("-0.5", "JPY", "-1"),
        ("1.2345", "BHD", "1.235"),
        ("1.2344", "BHD", "1.234"),
        ("1", "BHD", "1.000"),
        ("0.12345", "CLF", "0.1235"),
    ],
)
def test_quantize_money(amount: str, currency: str, expected: str) -> None:
    q = quantize_money(D(amount), currency)
    assert str(q) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "valid"),
    [
        ("1.23", "EUR", True),
        ("1.2", "EUR", True),
        ("1", "EUR", True),
        ("1.500", "EUR", True),  # trailing zeros are harmless: the value has 1 decimal
        ("1.234", "EUR", False),
        ("100", "JPY", True),
        ("100.0", "JPY", True),
        ("100.5", "JPY", False),
        ("1.234", "BHD", True),
        ("1.2345", "BHD", False),
        ("0", "JPY", True),
        ("-0.01", "EUR", True),
        ("-0.001", "EUR", False),
    ],
)
def test_is_valid_money_scale(amount: str, currency: str, valid: bool) -> None:
    assert is_valid_money_scale(D(amount), currency) is valid


def test_is_valid_money_scale_rejects_non_finite() -> None:
    assert not is_valid_money_scale(D("NaN"), "EUR")
    assert not is_valid_money_scale(D("Infinity"), "EUR")


@pytest.mark.parametrize(
    "text",
    [
        "1e3",
        "1E3",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        " 1",
        "1 ",
        "",
        "+1",
        ".5",
        "5.",
        "1,5",
        "--1",
        "1.2.3",
        "0x10",
        "１",
        "٣",
        "1\n",
        "1_000",
    ],
)
def test_parse_decimal_rejects(text: str) -> None:
    with pytest.raises(InvalidDecimal):
        parse_decimal(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "0"),
        ("-1", "-1"),
        ("12.50", "12.50"),
        ("0.1212", "0.1212"),
        ("-0.000001", "-0.000001"),
        ("007", "7"),
    ],
)
def test_parse_decimal_accepts(text: str, expected: str) -> None:
    assert str(parse_decimal(text)) == expected


def test_parse_decimal_max_decimals() -> None:
    assert parse_decimal("1.123456", 6) == D("1.123456")
    with pytest.raises(InvalidDecimal):
        parse_decimal("1.1234567", 6)
    with pytest.raises(InvalidDecimal):
        parse_decimal("1.5", 0)
    with pytest.raises(InvalidDecimal):
        parse_decimal("1" * 19)
    with pytest.raises(InvalidDecimal):
        parse_decimal(1.5)  # type: ignore[arg-type]


def test_format_decimal_never_uses_exponent() -> None:
    assert format_decimal(D("1E+2")) == "100"
    assert format_decimal(D("0.1212")) == "0.1212"
    assert format_decimal(D("1E-7")) == "0.0000001"


def test_money_arithmetic_and_comparison() -> None:
    a = Money(D("10.50"), "EUR")
    b = Money(D("0.25"), "EUR")
    assert a + b == Money(D("10.75"), "EUR")
    assert a - b == Money(D("10.25"), "EUR")
    assert -a == Money(D("-10.50"), "EUR")
    assert b < a and a > b and a >= a and b <= b
    assert Money.zero("JPY") == Money(D(0), "JPY")
    assert Money.zero("JPY").is_zero()
    assert Money(D("1"), "EUR") != Money(D("1"), "USD")


def test_money_rejects_mixed_currencies() -> None:
    eur, usd = Money(D("1"), "EUR"), Money(D("1"), "USD")
    with pytest.raises(CurrencyMismatch):
        _ = eur + usd
    with pytest.raises(CurrencyMismatch):
        _ = eur - usd
    with pytest.raises(CurrencyMismatch):
        _ = eur < usd


def test_money_rejects_floats_and_non_finite() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(InvalidDecimal):
        Money(D("NaN"), "EUR")


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        ("1234.5", "EUR", "1234.50 EUR"),
        ("1000", "JPY", "1000 JPY"),
        ("1.25", "BHD", "1.250 BHD"),
        ("-0.005", "EUR", "-0.01 EUR"),
    ],
)
def test_money_format(amount: str, currency: str, text: str) -> None:
    assert Money(D(amount), currency).format() == text
    assert str(Money(D(amount), currency)) == text


def test_money_parse() -> None:
    assert Money.parse("12.34", "EUR") == Money(D("12.34"), "EUR")
    with pytest.raises(InvalidDecimal):
        Money.parse("12.345", "EUR")


# --- properties ---------------------------------------------------------------------------

currencies = st.sampled_from(sorted(MINOR_UNITS))
finite_decimals = st.decimals(
    min_value=D("-1e15"), max_value=D("1e15"), allow_nan=False, allow_infinity=False, places=8
)


@given(finite_decimals, currencies)
def test_quantize_is_idempotent(amount: Decimal, currency: str) -> None:
    once = quantize_money(amount, currency)
    assert quantize_money(once, currency) == once
    assert is_valid_money_scale(once, currency)
    assert abs(once - amount) <= D(1).scaleb(-minor_units(currency)) / 2


@st.composite
def money_strings(draw: st.DrawFn) -> tuple[str, str]:
    currency = draw(currencies)
    integer = draw(st.integers(min_value=0, max_value=10**15))
    places = draw(st.integers(min_value=0, max_value=minor_units(currency)))
    sign = draw(st.sampled_from(["", "-"]))
    text = f"{sign}{integer}"
    if places:
        text += "." + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=places, max_size=places)))
    return text, currency


@given(money_strings())
def test_strings_within_minor_units_are_valid(case: tuple[str, str]) -> None:
    text, currency = case
    amount = parse_decimal(text, minor_units(currency))
    assert is_valid_money_scale(amount, currency)
    assert quantize_money(amount, currency) == amount
    assert format_decimal(amount) == text or amount == 0


@given(finite_decimals, finite_decimals, currencies)
def test_money_add_sub_round_trip(a: Decimal, b: Decimal, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert (x + y) - y == x
    assert (x - y) + y == x
    negated = -x
    assert -negated == x
    assert negated + x == Money.zero(currency)
    assert x + Money.zero(currency) == x
    assert (x < y) == (a < b)


def _parse_decimal_checked(text: str) -> Decimal:
    """parse_decimal before its fast path, every check spelt out (the reference)."""
    m = re.fullmatch(r"-?([0-9]+)(?:\.([0-9]+))?", text)
    if m is None:
        raise InvalidDecimal(f"not a plain decimal string: {text[:40]!r}")
    integer, fraction = m.group(1), m.group(2) or ""
    if len(integer.lstrip("0")) > 18:
        raise InvalidDecimal("more than 18 digits before the decimal point")
    if len(fraction) > 18:
        raise InvalidDecimal(f"at most 18 decimals allowed, got {len(fraction)}")
    return Decimal(text)


def _outcome(parse: Any, text: str) -> tuple[str, str]:
    try:
        return ("ok", str(parse(text)))  # str keeps the exponent: "1.50" stays "1.50"
    except InvalidDecimal as exc:
        return ("refused", str(exc))


@given(st.from_regex(r"-?[0-9]{1,22}(\.[0-9]{1,22})?", fullmatch=True) | st.text(max_size=24))
def test_the_fast_path_parses_exactly_what_every_check_would(text: str) -> None:
    assert _outcome(parse_decimal, text) == _outcome(_parse_decimal_checked, text)


def _validated_checked(value: Any, max_decimals: int | None) -> Decimal | None:
    """The contracts' decimal validator before its quick path (the reference): None where it refuses."""
    if isinstance(value, bool | float):
        return None
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = parse_decimal(value)
        except InvalidDecimal:
            return None
    elif isinstance(value, Decimal):
        if not value.is_finite():
            return None
        result = value
    else:
        return None
    if max_decimals is not None and decimal_places(result) > max_decimals:
        return None
    return result


_DECIMAL_INPUTS = (
    st.from_regex(r"-?[0-9]{1,22}(\.[0-9]{1,22})?", fullmatch=True)
    | st.text(max_size=24)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.decimals(places=8)
    | st.integers()
    | st.floats()
    | st.booleans()
)


@given(_DECIMAL_INPUTS, st.sampled_from([None, 0, 2, 6]))
def test_the_quick_decimal_path_answers_only_what_every_check_would(
    value: Any, max_decimals: int | None
) -> None:
    quick = quick_decimal(value, max_decimals)
    if quick is not None:
        reference = _validated_checked(value, max_decimals)
        assert reference is not None and str(quick) == str(reference)


@pytest.mark.parametrize("value", ["10.25", "-0.000", "123456789012345678", Decimal("1.50"), Decimal("-7")])
def test_the_quick_decimal_path_takes_the_common_inputs(value: Any) -> None:
    assert quick_decimal(value, None) is not None


@given(
    st.decimals(allow_nan=False, allow_infinity=False)
    | st.decimals(places=4, allow_nan=False, allow_infinity=False)
)
def test_format_decimal_is_plain_notation_whatever_the_exponent(amount: Decimal) -> None:
    assert format_decimal(amount) == format(amount, "f")
    assert format_decimal(amount.scaleb(9)) == format(amount.scaleb(9), "f")
    assert format_decimal(amount.scaleb(-9)) == format(amount.scaleb(-9), "f")
