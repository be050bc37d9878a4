"""Invoices decided in memory (SPEC §5): duplicates, corrections, the number registry.

A batch's invoices are checked against one `InvoiceBook`, loaded once for the whole batch and
updated as each invoice is accepted, so the second of two invoices with one number in a batch
is a duplicate exactly as if it had come alone after the first. What changed is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from services.intake.domain import (
    DEFAULT_MAX_AMOUNT,
    Invoice,
    InvoiceVerdict,
    KnownInvoice,
    KnownPo,
    NoPoPolicy,
    Reason,
    check_invoice,
    correction_reasons,
    exact_duplicate_reason,
    suspected_duplicates,
)
from services.intake.domain.outcome import Outcome

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
