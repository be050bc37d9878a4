"""Intake's business rules (SPEC §3, §5), pure: dataclasses and functions, Decimal, no I/O.

Every check returns *all* the reasons it finds (a rejection names every problem at once,
SPEC §5 "Rejections"), each with a SPEC code, the field it concerns and a readable message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from shared.money import (
    MAX_QUANTITY_DECIMALS,
    MAX_UNIT_PRICE_DECIMALS,
    decimal_places,
    is_known_currency,
    is_valid_money_scale,
    minor_units,
    quantize_money,
)
from shared.text import fold_lookalikes, same_person, skeleton

MAX_PAYLOAD_BYTES = 1024 * 1024  # 1 MiB: anything larger is refused before it is read

DocumentType = Literal["invoice", "credit_note"]
NoPoAction = Literal["reject", "no_po_review"]

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


# --- invoices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLine:
    line_id: str
    quantity: Decimal
    unit_price: Decimal
    line_amount: Decimal
    po_line_id: str | None = None
    allowance_charge_amount: Decimal | None = None
    item_ref: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Charge:
    type: str
    amount: Decimal


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    supplier_invoice_number: str
    payee_id: str
    legal_entity: str
    document_type: DocumentType
    issue_date: date
    currency: str
    lines: tuple[InvoiceLine, ...]
    tax_total: Decimal
    total_amount: Decimal
    charges: tuple[Charge, ...] = ()
    po_number: str | None = None
    replaces_invoice_id: str | None = None
    prepaid_amount: Decimal = Decimal(0)
    rounding_amount: Decimal = Decimal(0)
    # UBL states its PayableAmount; the computed one must equal it (SPEC §3).
    stated_payable_amount: Decimal | None = None

    @property
    def payable_amount(self) -> Decimal:
        """SPEC §3: payouts pay total − prepaid + rounding."""
        return self.total_amount - self.prepaid_amount + self.rounding_amount

    @property
    def normalised_number(self) -> str:
        return normalise_invoice_number(self.supplier_invoice_number)


@dataclass(frozen=True)
class KnownPo:
    """What intake knows of a PO's version in force, for the identity checks."""

    po_number: str
    payee_id: str
    legal_entity: str
    currency: str
    business_unit: str
    closed: bool = False


@dataclass(frozen=True)
class NoPoPolicy:
    """Per business unit: `reject` (the default) or route to the `no_po_review` queue (SPEC §5).
    A no-PO invoice names no business unit, so it is looked up by legal entity."""

    default: NoPoAction = "reject"
    by_business_unit: Mapping[str, NoPoAction] = field(default_factory=dict)
    business_unit_by_legal_entity: Mapping[str, str] = field(default_factory=dict)

    def business_unit_for(self, legal_entity: str) -> str | None:
        return self.business_unit_by_legal_entity.get(legal_entity)

    def action_for(self, business_unit: str | None) -> NoPoAction:
        if business_unit is None:
            return self.default
        return self.by_business_unit.get(business_unit, self.default)


# SPEC §15: no single amount on a document may exceed this many major units (policy `max_amount`).
DEFAULT_MAX_AMOUNT = Decimal(1_000_000_000)


@dataclass(frozen=True)
class InvoiceVerdict:
    reasons: tuple[Reason, ...]
    business_unit: str | None = None
    route_to_no_po_review: bool = False

    @property
    def accepted(self) -> bool:
        return not self.reasons


def _half_minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency)) / 2


def line_reasons(inv: Invoice, index: int, line: InvoiceLine) -> list[Reason]:
    where = f"lines[{index}]"
    out: list[Reason] = []
    if line.quantity == 0:
        out.append(Reason("zero_quantity", f"{where}.quantity", f"line {line.line_id}: quantity is zero"))
    if decimal_places(line.quantity.normalize()) > MAX_QUANTITY_DECIMALS and line.quantity != 0:
        out.append(Reason("invalid_quantity_scale", f"{where}.quantity", "at most 6 decimals"))
    if line.unit_price < 0:
        out.append(
            Reason("negative_unit_price", f"{where}.unit_price", f"line {line.line_id}: unit price < 0")
        )
    if line.unit_price != 0 and decimal_places(line.unit_price.normalize()) > MAX_UNIT_PRICE_DECIMALS:
        out.append(Reason("invalid_unit_price_scale", f"{where}.unit_price", "at most 6 decimals"))
    if inv.document_type == "credit_note":
        if line.quantity < 0 or line.line_amount < 0:
            out.append(
                Reason(
                    "negative_credit_note_line",
                    where,
                    f"line {line.line_id}: a credit note carries positive quantities and amounts",
                )
            )
    else:
        # SPEC §3: a negative line is a return inside an invoice — negative quantity and amount,
        # against the PO line whose invoiced quantity it reduces. Nothing else may go negative.
        if line.line_amount < 0 and line.quantity > 0:
            out.append(
                Reason(
                    "negative_line_amount",
                    f"{where}.line_amount",
                    f"line {line.line_id}: only a return (negative quantity) may have a negative amount",
                )
            )
        if line.quantity < 0 and line.po_line_id is None:
            out.append(
                Reason(
                    "return_without_po_line",
                    f"{where}.po_line_id",
                    f"line {line.line_id}: a return line must name the PO line it reduces",
                )
            )
    if is_known_currency(inv.currency) and line.quantity != 0:
        expected = line.quantity * line.unit_price + (line.allowance_charge_amount or Decimal(0))
        # "within the currency's rounding": the sender may round half-up or half-even, so any
        # stated amount within half a minor unit of the exact value is the same amount.
        if abs(line.line_amount - expected) > _half_minor_unit(inv.currency):
            out.append(
                Reason(
                    "line_amount_mismatch",
                    f"{where}.line_amount",
                    f"line {line.line_id}: {line.line_amount} != {line.quantity} × {line.unit_price}"
                    + (f" + {line.allowance_charge_amount}" if line.allowance_charge_amount else "")
                    + f" = {quantize_money(expected, inv.currency)}",
                )
            )
    return out


def arithmetic_reasons(inv: Invoice) -> list[Reason]:
    if not is_known_currency(inv.currency):
        return []
    out: list[Reason] = []
    computed = (
        sum((line.line_amount for line in inv.lines), Decimal(0))
        + sum((c.amount for c in inv.charges), Decimal(0))
        + inv.tax_total
    )
    if computed != inv.total_amount:
        out.append(
            Reason(
                "total_mismatch",
                "total_amount",
                f"total {inv.total_amount} != lines + charges + tax = {computed}",
            )
        )
    if inv.stated_payable_amount is not None and inv.stated_payable_amount != inv.payable_amount:
        out.append(
            Reason(
                "payable_amount_mismatch",
                "payable_amount",
                f"PayableAmount {inv.stated_payable_amount} != total − prepaid + rounding"
                f" = {inv.payable_amount}",
            )
        )
    if inv.payable_amount <= 0:
        message = (
            "an invoice must have a positive payable amount: send a credit note"
            if inv.document_type == "invoice"
            else "a credit note carries a positive amount"
        )
        out.append(Reason("non_positive_total", "total_amount", f"payable {inv.payable_amount}: {message}"))
    return out


def payable_part_reasons(inv: Invoice) -> list[Reason]:
    """SPEC §15: what lowers or adjusts the payable amount stays within its meaning — a prepaid
    amount is 0 to the total, a rounding is less than one major unit, tax is never negative.
    (Each of these once turned a 10.00 invoice into a 1,000.00 payment.)"""
    out: list[Reason] = []
    if inv.prepaid_amount < 0:
        out.append(
            Reason("invalid_prepaid_amount", "prepaid_amount", f"{inv.prepaid_amount}: cannot be negative")
        )
    elif inv.prepaid_amount > 0 and inv.prepaid_amount > inv.total_amount:
        out.append(
            Reason(
                "invalid_prepaid_amount",
                "prepaid_amount",
                f"{inv.prepaid_amount}: more than the total {inv.total_amount}",
            )
        )
    if abs(inv.rounding_amount) >= 1:
        out.append(
            Reason(
                "invalid_rounding_amount",
                "rounding_amount",
                f"{inv.rounding_amount}: a rounding must be less than one {inv.currency} either way",
            )
        )
    if inv.tax_total < 0:
        out.append(Reason("negative_tax_total", "tax_total", f"{inv.tax_total}: tax cannot be negative"))
    return out


def invoice_amounts(inv: Invoice, *, extended: bool = True) -> list[tuple[str, Decimal | None]]:
    """Every amount on the invoice by field; with `extended`, each line's quantity × unit price
    too (not an amount of the document's own scale, but bounded like one)."""
    amounts: list[tuple[str, Decimal | None]] = [
        ("tax_total", inv.tax_total),
        ("total_amount", inv.total_amount),
        ("prepaid_amount", inv.prepaid_amount),
        ("rounding_amount", inv.rounding_amount),
    ]
    for i, line in enumerate(inv.lines):
        amounts += [
            (f"lines[{i}].line_amount", line.line_amount),
            (f"lines[{i}].allowance_charge_amount", line.allowance_charge_amount),
        ]
        if extended:
            amounts.append((f"lines[{i}].unit_price", line.quantity * line.unit_price))
    amounts += [(f"charges[{i}].amount", c.amount) for i, c in enumerate(inv.charges)]
    return amounts


def invoice_form_reasons(inv: Invoice, max_amount: Decimal = DEFAULT_MAX_AMOUNT) -> list[Reason]:
    """Everything checkable from the invoice alone."""
    out: list[Reason] = []
    if not inv.normalised_number:
        out.append(
            Reason("invalid_invoice_number", "supplier_invoice_number", "nothing left after normalisation")
        )
    out += currency_reasons(inv.currency)
    out += amount_scale_reasons(inv.currency, invoice_amounts(inv, extended=False))
    out += amount_range_reasons(invoice_amounts(inv), max_amount, inv.currency)
    out += payable_part_reasons(inv)
    seen: set[str] = set()
    for i, line in enumerate(inv.lines):
        if line.line_id in seen:
            out.append(Reason("duplicate_line_id", f"lines[{i}].line_id", f"line_id {line.line_id} repeated"))
        seen.add(line.line_id)
        out += line_reasons(inv, i, line)
    out += arithmetic_reasons(inv)
    return out


def po_identity_reasons(inv: Invoice, po: KnownPo) -> list[Reason]:
    """SPEC §5: the contractor identity is the same record end to end — hard failures."""
    out = []
    if inv.payee_id != po.payee_id:
        out.append(Reason("payee_mismatch", "payee_id", f"PO {po.po_number} is for another payee"))
    if inv.legal_entity != po.legal_entity:
        out.append(
            Reason("entity_mismatch", "legal_entity", f"PO {po.po_number} is for another legal entity")
        )
    if inv.currency != po.currency:
        out.append(
            Reason(
                "currency_mismatch",
                "currency",
                f"invoice in {inv.currency}, PO {po.po_number} in {po.currency}",
            )
        )
    return out


def check_invoice(
    inv: Invoice, po: KnownPo | None, policy: NoPoPolicy, max_amount: Decimal = DEFAULT_MAX_AMOUNT
) -> InvoiceVerdict:
    """Validate an invoice against what intake knows.

    An invoice naming a PO intake has not seen yet is accepted (matching holds it awaiting_po
    and re-checks payee, entity and currency when the PO arrives).
    """
    reasons = invoice_form_reasons(inv, max_amount)
    business_unit: str | None = None
    route_to_review = False
    if inv.po_number is None:
        business_unit = policy.business_unit_for(inv.legal_entity)
        if policy.action_for(business_unit) == "reject":
            reasons.append(
                Reason(
                    "po_required",
                    "po_number",
                    f"no-PO invoices are not accepted for business unit {business_unit or '(default)'}",
                )
            )
        else:
            route_to_review = True
    elif po is not None:
        business_unit = po.business_unit
        reasons += po_identity_reasons(inv, po)
    return InvoiceVerdict(tuple(reasons), business_unit, route_to_review)


# --- duplicates and corrections ---------------------------------------------------------------


@dataclass(frozen=True)
class KnownInvoice:
    """An invoice intake accepted earlier (what duplicate and correction checks look at)."""

    invoice_id: str
    payee_id: str
    normalised_number: str
    document_type: DocumentType
    currency: str
    total_amount: Decimal
    issue_date: date
    superseded_by: str | None = None
    content_hash: str = ""


def exact_duplicate_reason(inv: Invoice, earlier_invoice_id: str) -> Reason:
    return Reason(
        "duplicate_invoice",
        "supplier_invoice_number",
        f"payee {inv.payee_id} already submitted {inv.document_type} {inv.supplier_invoice_number!r}"
        f" as {earlier_invoice_id}",
    )


def suspected_duplicates(inv: Invoice, candidates: Iterable[KnownInvoice]) -> list[str]:
    """SPEC §5: same payee + currency + total + issue date under a *different* number is a soft
    review, never a hard stop (the number alone is never the only key)."""
    return sorted(
        c.invoice_id
        for c in candidates
        if c.payee_id == inv.payee_id
        and c.currency == inv.currency
        and c.total_amount == inv.total_amount
        and c.issue_date == inv.issue_date
        and c.normalised_number != inv.normalised_number
        and c.invoice_id not in (inv.invoice_id, inv.replaces_invoice_id)
        and c.superseded_by is None
    )


def correction_reasons(inv: Invoice, original: KnownInvoice | None) -> list[Reason]:
    """A corrected invoice supersedes an earlier one of the same payee, once."""
    if inv.replaces_invoice_id is None:
        return []
    field_name = "replaces_invoice_id"
    if inv.replaces_invoice_id == inv.invoice_id:
        return [Reason("invalid_replacement", field_name, "an invoice cannot replace itself")]
    if original is None:
        return [
            Reason("unknown_replaced_invoice", field_name, f"{inv.replaces_invoice_id} was never accepted")
        ]
    out = []
    if original.payee_id != inv.payee_id:
        out.append(Reason("invalid_replacement", field_name, "the replaced invoice belongs to another payee"))
    if original.superseded_by is not None and original.superseded_by != inv.invoice_id:
        out.append(
            Reason(
                "already_superseded",
                field_name,
                f"{original.invoice_id} was already superseded by {original.superseded_by}",
            )
        )
    return out


# --- PO versions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PoLineTerms:
    line_id: str
    quantity: Decimal
    unit_price: Decimal


@dataclass(frozen=True)
class PoTerms:
    """The parts of a PO version the rules look at."""

    po_number: str
    version: int
    currency: str
    effective_from: date
    effective_to: date
    created_by: str
    lines: tuple[PoLineTerms, ...]
    charges: tuple[Charge, ...] = ()


def sod_reasons_for_issue(created_by: str, approved_by: str | None) -> list[Reason]:
    """SPEC §5: a PO approved by nobody, or by its own creator, is rejected. People compare
    case-insensitively (SPEC §15): `Buyer.Case@x` approving for `buyer.case@x` is self-approval."""
    if not approved_by or not approved_by.strip():
        return [Reason("sod_violation", "approved_by", "a PO must be approved")]
    if same_person(approved_by, created_by):
        return [
            Reason("sod_violation", "approved_by", "a PO cannot be approved by the person who created it")
        ]
    return []


def is_independent_approval(amended_by: str, approved_by: str | None) -> bool:
    """An amendment is in force only once approved by someone other than `amended_by`."""
    return bool(approved_by and approved_by.strip()) and not same_person(approved_by, amended_by)


def po_terms_reasons(po: PoTerms, max_amount: Decimal = DEFAULT_MAX_AMOUNT) -> list[Reason]:
    out = currency_reasons(po.currency)
    out += amount_range_reasons(
        [(f"lines[{i}].unit_price", ln.quantity * ln.unit_price) for i, ln in enumerate(po.lines)]
        + [(f"charges[{i}].amount", c.amount) for i, c in enumerate(po.charges)],
        max_amount,
        po.currency,
    )
    if po.effective_from > po.effective_to:
        out.append(Reason("invalid_effective_dates", "effective_to", "effective_to is before effective_from"))
    seen: set[str] = set()
    for i, line in enumerate(po.lines):
        where = f"lines[{i}]"
        if line.line_id in seen:
            out.append(Reason("duplicate_line_id", f"{where}.line_id", f"line_id {line.line_id} repeated"))
        seen.add(line.line_id)
        if line.quantity <= 0:
            code = "zero_quantity" if line.quantity == 0 else "negative_quantity"
            out.append(
                Reason(code, f"{where}.quantity", f"line {line.line_id}: ordered quantity must be > 0")
            )
        if line.unit_price < 0:
            out.append(
                Reason("negative_unit_price", f"{where}.unit_price", f"line {line.line_id}: unit price < 0")
            )
    for i, c in enumerate(po.charges):
        if c.amount < 0:
            out.append(
                Reason("negative_amount", f"charges[{i}].amount", "an allowed charge cannot be negative")
            )
    out += amount_scale_reasons(
        po.currency, [(f"charges[{i}].amount", c.amount) for i, c in enumerate(po.charges)]
    )
    return out


_IGNORED_KEYS = frozenset(
    {"version", "modification_id", "amended_by", "reason", "approved_by", "approved_at", "created_by"}
)


def _index(items: Sequence[Mapping[str, Any]], key: str) -> dict[str, Mapping[str, Any]]:
    return {str(item.get(key)): item for item in items}


def po_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Field paths that differ between two PO states, e.g. `lines[L1].unit_price`, `sow_ref`,
    `lines[L3]` (added or removed), `charges[freight]`. Lines are compared by line_id."""
    changes: list[str] = []
    for key in sorted((set(old) | set(new)) - _IGNORED_KEYS - {"lines", "charges"}):
        if _canon(old.get(key)) != _canon(new.get(key)):
            changes.append(key)
    old_lines, new_lines = _index(old.get("lines", []), "line_id"), _index(new.get("lines", []), "line_id")
    for line_id in sorted(set(old_lines) | set(new_lines)):
        a, b = old_lines.get(line_id), new_lines.get(line_id)
        if a is None or b is None:
            changes.append(f"lines[{line_id}]")
            continue
        for key in sorted(set(a) | set(b)):
            if _canon(a.get(key)) != _canon(b.get(key)):
                changes.append(f"lines[{line_id}].{key}")
    old_charges, new_charges = _index(old.get("charges", []), "type"), _index(new.get("charges", []), "type")
    for ctype in sorted(set(old_charges) | set(new_charges)):
        if _canon(old_charges.get(ctype)) != _canon(new_charges.get(ctype)):
            changes.append(f"charges[{ctype}]")
    return changes


def _canon(value: Any) -> Any:
    """Compare decimals by value ("10.0" = "10"), everything else as given."""
    if isinstance(value, Mapping):
        return {k: _canon(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_canon(v) for v in value]
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
        return Decimal(value).normalize()
    if isinstance(value, Decimal):
        return value.normalize()
    return value


@dataclass(frozen=True)
class VersionSlot:
    """One received version of a PO. Version 1 is approved on issue (or rejected); every
    amendment waits for an approval by someone other than its author (SPEC §5)."""

    version: int
    amended_by: str | None = None
    approved_by: str | None = None

    @property
    def approved(self) -> bool:
        if self.amended_by is None:
            return True
        return is_independent_approval(self.amended_by, self.approved_by)


def versions_coming_into_force(in_force: int | None, received: Mapping[int, VersionSlot]) -> list[int]:
    """SPEC §5: versions are applied strictly in order. Starting after the version in force,
    each next version comes into force if it has been received and approved; the first gap
    (not yet received) or pending approval stops the walk — later versions wait."""
    out: list[int] = []
    current = in_force
    while True:
        nxt = 1 if current is None else current + 1
        slot = received.get(nxt)
        if slot is None or not slot.approved:
            return out
        out.append(nxt)
        current = nxt


# --- receipts and requisitions ----------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptLineQty:
    receipt_line_id: str
    po_line_id: str
    quantity: Decimal


def receipt_reasons(lines: Sequence[ReceiptLineQty], known_po_lines: set[str] | None) -> list[Reason]:
    out: list[Reason] = []
    seen: set[str] = set()
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        if line.receipt_line_id in seen:
            out.append(
                Reason("duplicate_line_id", f"{where}.receipt_line_id", f"{line.receipt_line_id} repeated")
            )
        seen.add(line.receipt_line_id)
        if line.quantity <= 0:
            code = "zero_quantity" if line.quantity == 0 else "negative_quantity"
            out.append(
                Reason(code, f"{where}.quantity", "a received quantity must be > 0 (reverse the receipt)")
            )
        if known_po_lines is not None and line.po_line_id not in known_po_lines:
            out.append(Reason("invalid_po_line_ref", f"{where}.po_line_id", f"no PO line {line.po_line_id}"))
    return out


def requisition_reasons(
    requested_by: str,
    approved_by: str,
    amount: Decimal,
    currency: str,
    max_amount: Decimal = DEFAULT_MAX_AMOUNT,
) -> list[Reason]:
    out = currency_reasons(currency)
    out += amount_range_reasons([("amount", amount)], max_amount, currency)
    out += amount_scale_reasons(currency, [("amount", amount)])
    if amount <= 0:
        out.append(Reason("non_positive_amount", "amount", "a requisition must be for a positive amount"))
    if same_person(approved_by, requested_by):
        out.append(
            Reason("sod_violation", "approved_by", "a requisition cannot be approved by its requester")
        )
    return out


# --- PO flip ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlipPoLine:
    line_id: str
    item_ref: str
    description: str | None
    quantity: Decimal
    unit_price: Decimal


@dataclass(frozen=True)
class FlipPo:
    po_number: str
    payee_id: str
    legal_entity: str
    currency: str
    lines: tuple[FlipPoLine, ...]
    closed: bool = False


def flip_invoice_id(flip_id: str) -> str:
    """One flip_id names one invoice, ever: a retried flip finds the invoice already there."""
    return f"flip:{flip_id}"


def remaining_quantities(po: FlipPo, invoiced: Mapping[str, Decimal]) -> dict[str, Decimal]:
    return {line.line_id: line.quantity - invoiced.get(line.line_id, Decimal(0)) for line in po.lines}


def build_flip_invoice(
    flip_id: str,
    po: FlipPo,
    line_quantities: Mapping[str, Decimal] | None,
    invoiced: Mapping[str, Decimal],
    issue_date: date,
) -> tuple[Invoice | None, list[Reason]]:
    """SPEC §5 PO flip: an invoice from the in-force version — the quantities asked for, or the
    remaining uninvoiced quantity of every line. Tax is not on a PO, so a flip carries none."""
    reasons: list[Reason] = []
    if po.closed:
        reasons.append(Reason("po_closed", "po_number", f"PO {po.po_number} is closed"))
    by_id = {line.line_id: line for line in po.lines}
    wanted: list[tuple[FlipPoLine, Decimal]] = []
    if line_quantities is None:
        remaining = remaining_quantities(po, invoiced)
        wanted = [(line, remaining[line.line_id]) for line in po.lines if remaining[line.line_id] > 0]
        if not wanted:
            reasons.append(Reason("nothing_to_invoice", "po_number", "every PO line is fully invoiced"))
    else:
        for po_line_id, qty in line_quantities.items():
            where = f"line_quantities.{po_line_id}"
            line = by_id.get(po_line_id)
            if line is None:
                reasons.append(
                    Reason("invalid_po_line_ref", where, f"PO {po.po_number} has no line {po_line_id}")
                )
            elif qty <= 0:
                code = "zero_quantity" if qty == 0 else "negative_quantity"
                reasons.append(Reason(code, where, "a flipped quantity must be > 0"))
            else:
                wanted.append((line, qty))
        if not line_quantities:
            reasons.append(Reason("nothing_to_invoice", "line_quantities", "no quantities given"))
    if reasons or not is_known_currency(po.currency):
        return None, reasons
    lines = tuple(
        InvoiceLine(
            line_id=line.line_id,
            po_line_id=line.line_id,
            item_ref=line.item_ref,
            description=line.description,
            quantity=qty,
            unit_price=line.unit_price,
            line_amount=quantize_money(qty * line.unit_price, po.currency),
        )
        for line, qty in wanted
    )
    total = sum((line.line_amount for line in lines), Decimal(0))
    invoice = Invoice(
        invoice_id=flip_invoice_id(flip_id),
        supplier_invoice_number=f"FLIP-{flip_id}",
        payee_id=po.payee_id,
        legal_entity=po.legal_entity,
        document_type="invoice",
        issue_date=issue_date,
        currency=po.currency,
        lines=lines,
        tax_total=Decimal(0),
        total_amount=total,
        po_number=po.po_number,
    )
    return invoice, []
