"""Invoices (SPEC §3, §5): their rules, and decided in memory a batch at a time — duplicates,
corrections, the number registry.

A batch's invoices are checked against one `InvoiceBook`, loaded once for the whole batch and
updated as each invoice is accepted, so the second of two invoices with one number in a batch
is a duplicate exactly as if it had come alone after the first. What changed is written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from services.intake.domain.common import (
    DEFAULT_MAX_AMOUNT,
    Charge,
    DocumentType,
    NoPoAction,
    Reason,
    amount_range_reasons,
    amount_scale_reasons,
    currency_reasons,
    normalise_invoice_number,
)
from services.intake.domain.outcome import Outcome
from shared.money import (
    MAX_QUANTITY_DECIMALS,
    MAX_UNIT_PRICE_DECIMALS,
    decimal_places,
    is_known_currency,
    minor_units,
    quantize_money,
)

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


# --- decided in memory, a batch at a time ---------------------------------------------------

# (payee_id, normalised number, document type): one holder each, ever (the registry's key)
NumberKey = tuple[str, str, str]
# (payee_id, currency, total, issue date): what makes two invoices suspected duplicates
SuspectKey = tuple[str, str, Decimal, date]


def number_key(inv: Invoice) -> NumberKey:
    return (inv.payee_id, inv.normalised_number, inv.document_type)


def suspect_key(inv: Invoice | KnownInvoice) -> SuspectKey:
    return (inv.payee_id, inv.currency, inv.total_amount, inv.issue_date)


@dataclass(frozen=True)
class Submission:
    """An invoice as it arrived: JSON, UBL or a PO flip."""

    invoice: Invoice
    origin: str  # json | ubl | po_flip
    content_hash: str
    flip_id: str | None = None


@dataclass(frozen=True)
class AcceptedInvoice:
    submission: Submission
    verdict: InvoiceVerdict
    suspected_duplicate_of: list[str]


@dataclass(frozen=True)
class InvoiceDecision:
    outcome: Outcome
    reasons: list[Reason] = field(default_factory=list)
    accepted: AcceptedInvoice | None = None


@dataclass
class InvoiceBook:
    """What the batch's invoices are checked against: invoices by id (the ones named and the
    suspected-duplicate candidates), POs in force, and the number registry."""

    invoices: dict[str, KnownInvoice]
    pos: dict[str, KnownPo]
    numbers: dict[NumberKey, str]
    no_po: NoPoPolicy
    max_amount: Decimal = DEFAULT_MAX_AMOUNT
    accepted: list[AcceptedInvoice] = field(default_factory=list)
    loaded_numbers: dict[NumberKey, str] = field(init=False)
    loaded_ids: frozenset[str] = field(init=False)
    # invoices stored before this batch and superseded in it: (invoice_id, superseded_by)
    superseded_earlier: list[tuple[str, str]] = field(default_factory=list)
    _by_suspect_key: dict[SuspectKey, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.loaded_numbers = dict(self.numbers)
        self.loaded_ids = frozenset(self.invoices)
        self._by_suspect_key = {}
        for known in self.invoices.values():
            self._by_suspect_key.setdefault(suspect_key(known), []).append(known.invoice_id)

    def submit(self, s: Submission) -> InvoiceDecision:
        """Every invoice — JSON, UBL or PO flip — passes the same checks (SPEC §5)."""
        inv = s.invoice
        earlier = self.invoices.get(inv.invoice_id)
        if earlier is not None:
            if earlier.content_hash == s.content_hash:
                return InvoiceDecision(Outcome.DUPLICATE)
            reason = Reason("duplicate_invoice_id", "invoice_id", f"{inv.invoice_id} was already accepted")
            return InvoiceDecision(Outcome.REJECTED, [reason])
        po = self.pos.get(inv.po_number) if inv.po_number else None
        verdict = check_invoice(inv, po, self.no_po, self.max_amount)
        original = self.invoices.get(inv.replaces_invoice_id) if inv.replaces_invoice_id else None
        reasons = list(verdict.reasons) + correction_reasons(inv, original)
        key = number_key(inv)
        if reasons and inv.normalised_number:
            # Refused anyway: say too whether the number is taken, without claiming it.
            holder = self.numbers.get(key)
            if holder is not None and holder != inv.replaces_invoice_id:
                reasons.append(exact_duplicate_reason(inv, holder))
        if reasons:
            return InvoiceDecision(Outcome.REJECTED, reasons)
        if inv.replaces_invoice_id is not None and self.numbers.get(key) == inv.replaces_invoice_id:
            self.numbers[key] = inv.invoice_id  # a correction may reuse the number it supersedes
        holder = self.numbers.setdefault(key, inv.invoice_id)
        if holder != inv.invoice_id:
            return InvoiceDecision(Outcome.REJECTED, [exact_duplicate_reason(inv, holder)])
        candidates = [self.invoices[i] for i in self._by_suspect_key.get(suspect_key(inv), [])]
        accepted = AcceptedInvoice(s, verdict, suspected_duplicates(inv, candidates))
        self._record(accepted)
        return InvoiceDecision(Outcome.ACCEPTED, accepted=accepted)

    def _record(self, accepted: AcceptedInvoice) -> None:
        inv = accepted.submission.invoice
        self.accepted.append(accepted)
        self.invoices[inv.invoice_id] = KnownInvoice(
            invoice_id=inv.invoice_id,
            payee_id=inv.payee_id,
            normalised_number=inv.normalised_number,
            document_type=inv.document_type,
            currency=inv.currency,
            total_amount=inv.total_amount,
            issue_date=inv.issue_date,
            content_hash=accepted.submission.content_hash,
        )
        self._by_suspect_key.setdefault(suspect_key(inv), []).append(inv.invoice_id)
        original = self.invoices.get(inv.replaces_invoice_id) if inv.replaces_invoice_id else None
        if original is not None and original.superseded_by is None:
            self.invoices[original.invoice_id] = replace(original, superseded_by=inv.invoice_id)
            if original.invoice_id in self.loaded_ids:
                self.superseded_earlier.append((original.invoice_id, inv.invoice_id))

    # -- what to write --------------------------------------------------------------------

    def claimed_numbers(self) -> list[tuple[NumberKey, str]]:
        """Numbers no one held when the batch began, with their holder now."""
        return [(k, v) for k, v in self.numbers.items() if k not in self.loaded_numbers]

    def moved_numbers(self) -> list[tuple[NumberKey, str, str]]:
        """Numbers handed from a superseded invoice to its correction: key, from, to."""
        return [
            (k, self.loaded_numbers[k], v)
            for k, v in self.numbers.items()
            if k in self.loaded_numbers and self.loaded_numbers[k] != v
        ]

    def superseded_by(self, invoice_id: str) -> str | None:
        known = self.invoices.get(invoice_id)
        return known.superseded_by if known is not None else None
