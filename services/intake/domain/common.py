"""What every document's rules share (SPEC §5, §15): reasons, the invoice-number key, money checks.

Every check returns *all* the reasons it finds (a rejection names every problem at once,
SPEC §5 "Rejections"), each with a SPEC code, the field it concerns and a readable message.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

from shared.money import is_known_currency, is_valid_money_scale, minor_units
from shared.text import fold_lookalikes, skeleton

MAX_PAYLOAD_BYTES = 1024 * 1024  # 1 MiB: anything larger is refused before it is read

DocumentType = Literal["invoice", "credit_note"]
NoPoAction = Literal["reject", "no_po_review"]

# SPEC §15: no single amount on a document may exceed this many major units (policy `max_amount`).
DEFAULT_MAX_AMOUNT = Decimal(1_000_000_000)


def content_hash(payload: Any) -> str:
    """Same document → same hash, whatever the key order (tells a redelivery from a conflict)."""
    text = payload if isinstance(payload, str) else _HASH_JSON.encode(payload)
    return hashlib.sha256(text.encode()).hexdigest()


# json.dumps(payload, sort_keys=True, default=str) builds this encoder on every call; made once, the
# text is the same (hashes stored before must still compare equal), and one object fewer per hash.
_HASH_JSON = json.JSONEncoder(sort_keys=True, default=str)


# --- reasons ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    code: str
    field: str | None
    message: str

    def as_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


def payload_too_large(size: int) -> Reason:
    return Reason("payload_too_large", None, f"record is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}")


# --- invoice numbers -------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s\-./_]+")
_LEADING_ZEROS = re.compile(r"(?<![0-9])0+(?=[0-9])")


def section5_steps(number: str) -> str:
    """SPEC §5: upper-cased; spaces, dashes, dots, slashes, underscores removed; then the zeros
    leading every run of digits removed (a run of only zeros keeps one) — `INV-0042` = `inv 42`."""
    compact = _SEPARATORS.sub("", number.upper())
    return _LEADING_ZEROS.sub("", compact)


# One invoice asks for its key six times on its way through intake (form checks, the duplicate
# and look-alike loads, the decision, the store, the accepted event): 6.6 µs each, a pure
# function of the string, so it is remembered (bounded: a redelivered batch hits it too).
@lru_cache(maxsize=4096)
def normalise_invoice_number(number: str) -> str:
    """The duplicate-detection key of a supplier invoice number (SPEC §5, §15).

    First the look-alike folding of §15 (NFKC, format characters removed, Unicode dashes → `-`),
    so `INV‐1` (U+2010), `INV-1` with a zero-width space and `ＩＮＶ-１` are `INV-1`; then the §5
    steps; then the UTS #39 confusables skeleton, so a Cyrillic `І` is a Latin `I`.

    The §5 steps come before the skeleton, not after as §15 lists them, because the skeleton is
    neither case- nor digit-preserving (`I` → `l` but `i` → `i`; `0` → `O`, `1` → `l`): applied
    first it would make `INV-0042` ≠ `inv 42`. Upper-casing and dropping separators once more
    after it keeps the key stable: normalising a key changes nothing. The key is for comparing
    only; it is never shown as the number.
    """
    compact = section5_steps(fold_lookalikes(number))
    return _SEPARATORS.sub("", skeleton(compact).upper())


# --- money checks shared by every document ----------------------------------------------------


def currency_reasons(currency: str, field_name: str = "currency") -> list[Reason]:
    if is_known_currency(currency):
        return []
    return [Reason("unknown_currency", field_name, f"{currency!r} is not an ISO 4217 currency we know")]


def amount_scale_reasons(currency: str, amounts: Iterable[tuple[str, Decimal | None]]) -> list[Reason]:
    """Money may not carry more decimals than the currency's minor unit (JPY 0, EUR 2, BHD 3)."""
    if not is_known_currency(currency):
        return []  # reported once as unknown_currency
    units = minor_units(currency)
    return [
        Reason("invalid_amount_scale", name, f"{value} has more than {units} decimals allowed in {currency}")
        for name, value in amounts
        if value is not None and not is_valid_money_scale(value, currency)
    ]


def amount_range_reasons(
    amounts: Iterable[tuple[str, Decimal | None]], max_amount: Decimal, currency: str
) -> list[Reason]:
    """SPEC §15: any amount (a quantity × unit price too) above `max_amount` major units, either
    way, is refused before it can reach the journal."""
    return [
        Reason(
            "amount_out_of_range",
            name,
            f"{value} is beyond the limit of {max_amount} {currency} for any single amount",
        )
        for name, value in amounts
        if value is not None and abs(value) > max_amount
    ]


@dataclass(frozen=True)
class Charge:
    type: str
    amount: Decimal
