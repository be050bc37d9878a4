"""Intake's business rules (SPEC §3, §5), pure: dataclasses and functions, Decimal, no I/O,
one module per concept. Every check returns *all* the reasons it finds, each with a SPEC code,
the field it concerns and a readable message.

- common: reasons, the invoice-number key, money checks every document shares
- invoices: an invoice's form, its PO, duplicates and corrections; the batch's InvoiceBook
- purchase_orders: versions, approvals, closure; the batch's PoBook
- receipts, requisitions, flip (an invoice from a PO); outcome: what intake made of a record
"""

from services.intake.domain.common import (
    DEFAULT_MAX_AMOUNT,
    MAX_PAYLOAD_BYTES,
    Charge,
    DocumentType,
    NoPoAction,
    Reason,
    amount_range_reasons,
    amount_scale_reasons,
    currency_reasons,
    normalise_invoice_number,
    payload_too_large,
    section5_steps,
)
from services.intake.domain.flip import (
    FlipPo,
    FlipPoLine,
    build_flip_invoice,
    flip_invoice_id,
    remaining_quantities,
)
from services.intake.domain.invoices import (
    Invoice,
    InvoiceLine,
    InvoiceVerdict,
    KnownInvoice,
    KnownPo,
    NoPoPolicy,
    arithmetic_reasons,
    check_invoice,
    correction_reasons,
    exact_duplicate_reason,
    invoice_amounts,
    invoice_form_reasons,
    line_reasons,
    payable_part_reasons,
    po_identity_reasons,
    suspected_duplicates,
)
from services.intake.domain.purchase_orders import (
    PoLineTerms,
    PoTerms,
    VersionSlot,
    is_independent_approval,
    po_changes,
    po_terms_reasons,
    sod_reasons_for_issue,
    versions_coming_into_force,
)
from services.intake.domain.receipts import (
    ReceiptLineQty,
    receipt_reasons,
)
from services.intake.domain.requisitions import (
    requisition_reasons,
)

__all__ = [
    "DEFAULT_MAX_AMOUNT",
    "MAX_PAYLOAD_BYTES",
    "Charge",
    "DocumentType",
    "FlipPo",
    "FlipPoLine",
    "Invoice",
    "InvoiceLine",
    "InvoiceVerdict",
    "KnownInvoice",
    "KnownPo",
    "NoPoAction",
    "NoPoPolicy",
    "PoLineTerms",
    "PoTerms",
    "Reason",
    "ReceiptLineQty",
    "VersionSlot",
    "amount_range_reasons",
    "amount_scale_reasons",
    "arithmetic_reasons",
    "build_flip_invoice",
    "check_invoice",
    "correction_reasons",
    "currency_reasons",
    "exact_duplicate_reason",
    "flip_invoice_id",
    "invoice_amounts",
    "invoice_form_reasons",
    "is_independent_approval",
    "line_reasons",
    "normalise_invoice_number",
    "payable_part_reasons",
    "payload_too_large",
    "po_changes",
    "po_identity_reasons",
    "po_terms_reasons",
    "receipt_reasons",
    "remaining_quantities",
    "requisition_reasons",
    "section5_steps",
    "sod_reasons_for_issue",
    "suspected_duplicates",
    "versions_coming_into_force",
]
