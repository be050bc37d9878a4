"""Field types and base models shared by every contract (SPEC §2–4).

Decimal fields (`dec` in the SPEC)
----------------------------------
On the wire a `dec` is a JSON **string** in plain decimal notation ("12.50", "-3", "0.1212").
Accepted inputs:
- a string matching ``-?digits(.digits)?`` (no '+', spaces, exponents, NaN/Infinity);
- a JSON *integer* number (``12``) — it has no fractional part, so SPEC §1.6 does not forbid it;
  it is accepted and normalised to a Decimal (it serialises back as the string "12");
- a finite ``decimal.Decimal`` (Python-side construction).
Rejected: any JSON number with a fractional part (a Python ``float``, even ``10.0``),
booleans, and everything else. The error message starts with "money must be a decimal string"
(or "quantity …" / "unit price …") and pydantic's error location names the field.

Serialisation: ``model_dump(mode="json")`` writes the string back exactly as it was given
("0.1212" stays "0.1212", "1.50" stays "1.50"); a computed Decimal is written in plain
notation, never with an exponent. ``model_dump()`` (python mode) keeps ``Decimal``.

Currency-dependent scale (3 decimals in EUR …) is **not** checked here: intake checks it and
reports every reason at once. Quantities and unit prices are limited to 6 decimals here.

Dates are ``YYYY-MM-DD`` strings (or ``date``); timestamps are RFC 3339 strings with an
offset (or aware ``datetime``); numbers are not accepted for either.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)

from shared.money import (
    MAX_QUANTITY_DECIMALS,
    MAX_UNIT_PRICE_DECIMALS,
    InvalidDecimal,
    decimal_places,
    format_decimal,
    parse_decimal,
    quick_decimal,
)
from shared.topics import Topic

__all__ = [
    "Approval",
    "CountryCode",
    "CurrencyCode",
    "DateStr",
    "DecimalStr",
    "InboundModel",
    "InternalModel",
    "MoneyStr",
    "NonEmptyStr",
    "OptStr",
    "OutboundModel",
    "QuantityStr",
    "Timestamp",
    "UnitPriceStr",
]


def _decimal_validator(kind: str, max_decimals: int | None) -> Callable[[Any], Decimal]:
    def validate(value: Any) -> Decimal:
        if (quick := quick_decimal(value, max_decimals)) is not None:  # every amount of every record
            return quick
        if isinstance(value, bool):
            raise ValueError(f"{kind} must be a decimal string, got a boolean")
        if isinstance(value, float):
            raise ValueError(
                f"{kind} must be a decimal string, not a JSON number with a fractional part"
                f' (got {value!r}; send "{value}")'
            )
        if isinstance(value, int):
            result = Decimal(value)
        elif isinstance(value, str):
            try:
                result = parse_decimal(value)
            except InvalidDecimal as exc:
                raise ValueError(f"{kind} must be a decimal string: {exc}") from None
        elif isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"{kind} must be a decimal string, not {value}")
            result = value
        else:
            raise ValueError(f"{kind} must be a decimal string, got {type(value).__name__}")
        if max_decimals is not None and decimal_places(result) > max_decimals:
            raise ValueError(f"{kind} may have at most {max_decimals} decimals, got {decimal_places(result)}")
        return result

    return validate


_DEC_JSON_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
    "description": "decimal string (plain notation, no exponent)",
}


def _dec_schema(max_decimals: int | None) -> WithJsonSchema:
    schema = dict(_DEC_JSON_SCHEMA)
    if max_decimals is not None:
        schema["pattern"] = r"^-?[0-9]+(\.[0-9]{1,N})?$".replace("N", str(max_decimals))
    return WithJsonSchema(schema)


_DEC_SERIALIZER = PlainSerializer(format_decimal, return_type=str, when_used="json")

# A money amount; scale per currency is checked by intake, not here.
DecimalStr = Annotated[
    Decimal,
    PlainValidator(_decimal_validator("money", None)),
    _DEC_SERIALIZER,
    _dec_schema(None),
]
MoneyStr = DecimalStr
# Quantities and unit prices: at most 6 decimals (SPEC §1.6).
QuantityStr = Annotated[
    Decimal,
    PlainValidator(_decimal_validator("quantity", MAX_QUANTITY_DECIMALS)),
    _DEC_SERIALIZER,
    _dec_schema(MAX_QUANTITY_DECIMALS),
]
UnitPriceStr = Annotated[
    Decimal,
    PlainValidator(_decimal_validator("unit price", MAX_UNIT_PRICE_DECIMALS)),
    _DEC_SERIALIZER,
    _dec_schema(MAX_UNIT_PRICE_DECIMALS),
]

# Strings: strict (a number is not coerced to a string).
NonEmptyStr = Annotated[str, StringConstraints(strict=True, min_length=1)]
OptStr = Annotated[str, StringConstraints(strict=True)]  # may be empty
CurrencyCode = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z]{2}$")]

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_input(value: Any) -> Any:
    if isinstance(value, datetime):
        raise ValueError("date must be a YYYY-MM-DD string, got a datetime")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        return value
    raise ValueError("date must be a YYYY-MM-DD string")


def _ts_input(value: Any) -> Any:
    if isinstance(value, datetime | str):
        return value
    raise ValueError("timestamp must be an RFC 3339 string with an offset")


DateStr = Annotated[date, BeforeValidator(_date_input)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_ts_input)]


@dataclass(frozen=True)
class EventSpec:
    """What an event class is on the wire: its `event_type` and the one topic it travels on.
    Set on every contract model by shared.contracts.registry, so a handler is registered by the
    class and an emitted event names its own type and topic."""

    type: str
    topic: Topic


class InboundModel(BaseModel):
    """What upstream publishes: unknown extra fields are ignored (SPEC §3)."""

    EVENT: ClassVar[EventSpec]

    model_config = ConfigDict(extra="ignore", frozen=True)


class InternalModel(BaseModel):
    """Our internal topics may evolve (SPEC §4): tolerate fields a newer producer adds."""

    EVENT: ClassVar[EventSpec]

    model_config = ConfigDict(extra="ignore", frozen=True)


class OutboundModel(BaseModel):
    """What Concord publishes for others: we produce it, so an unknown field is a bug."""

    EVENT: ClassVar[EventSpec]

    model_config = ConfigDict(extra="forbid", frozen=True)


class Approval(InternalModel):
    """A human decision behind a financial fact (who approved what, in which role, when)."""

    by: NonEmptyStr
    role: NonEmptyStr | None = None
    at: Timestamp | None = None
    what: NonEmptyStr
