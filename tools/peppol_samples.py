"""Feed every UBL sample of a folder through intake's translation and its record-level rules, and
print what intake would answer for each: a Markdown table (file → outcome → why).

    .venv/bin/python -m tools.peppol_samples ../shared/samples/peppol > docs/peppol-samples.md

Reads only the folder it is given (the samples are not part of this repository). Orders go
through `purchase_order.submitted_ubl` as a procurement tool would send them (created and approved
by two different people), receipt advice through `receipt.recorded_ubl`, invoices and credit notes
through `invoice.submitted_ubl`; then the §5 rules that need no earlier document (segregation of
duties, the PO's terms; a receipt's lines; an invoice's form, arithmetic and no-PO policy with
the shipped policy file). What needs intake's database (an earlier version, a duplicate, the PO a
receipt names) is not decided here.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from services.intake import contract
from services.intake.config import IntakeConfig
from services.intake.domain import (
    Reason,
    check_invoice,
    po_terms_reasons,
    receipt_reasons,
    sod_reasons_for_issue,
)
from services.intake.domain.receipts import ReceiptLineQty
from services.intake.ubl import parse_ubl
from services.intake.ubl_order import parse_order
from services.intake.ubl_receipt import parse_receipt_advice
from shared import text
from shared.contracts import inbound as i
from shared.settings import Settings

FOLDERS = ("order", "receipt", "invoice", "creditnote")
APPROVED_AT = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)


def _why(reasons: list[Reason] | tuple[Reason, ...]) -> str:
    return "; ".join(f"`{r.code}` {r.field or ''}: {r.message}".replace("|", "/") for r in reasons)


def check_order(document: str, config: IntakeConfig) -> tuple[str, str]:
    envelope = i.PurchaseOrderSubmittedUbl(
        document=document,
        business_unit="procurement",
        created_by="buyer@example.com",
        approved_by="manager@example.com",
        approved_at=APPROVED_AT,
    )
    translation = parse_order(envelope, config.charge_codes, config.order_validity_days)
    if not isinstance(translation.model, i.PurchaseOrderIssued):
        return "rejected", _why(translation.reasons)
    po, problems = text.check_text(translation.model)
    terms = contract.issued_version(po).terms
    reasons = translation.locate(
        contract.text_reasons(problems)
        + sod_reasons_for_issue(po.created_by, po.approved_by)
        + po_terms_reasons(terms, config.max_amount)
    )
    if reasons:
        return "rejected", _why(reasons)
    charges = ", ".join(f"{c.type} {c.amount}" for c in po.charges) or "none"
    return "accepted", (
        f"PO `{po.po_number}` v1, payee `{po.payee_id}`, entity `{po.legal_entity}`, {po.currency}, "
        f"{len(po.lines)} line(s), in force {po.effective_from}..{po.effective_to}, "
        f"allowed charges: {charges}"
    )


def check_receipt(document: str) -> tuple[str, str]:
    translation = parse_receipt_advice(
        i.ReceiptRecordedUbl(document=document, recorded_by="dock@example.com")
    )
    if not isinstance(translation.model, i.ReceiptRecorded):
        return "rejected", _why(translation.reasons)
    receipt, problems = text.check_text(translation.model)
    lines = [ReceiptLineQty(ln.receipt_line_id, ln.po_line_id, ln.quantity) for ln in receipt.lines]
    reasons = translation.locate(contract.text_reasons(problems) + receipt_reasons(lines, None))
    if reasons:
        return "rejected", _why(reasons)
    got = ", ".join(f"{ln.po_line_id}×{ln.quantity}" for ln in receipt.lines)
    return (
        "accepted",
        f"receipt `{receipt.receipt_id}` for PO `{receipt.po_number}` at {receipt.received_at}: {got}",
    )


def check_invoice_document(document: str, config: IntakeConfig) -> tuple[str, str]:
    parsed = parse_ubl("sample", document, config.charge_codes)
    if parsed.invoice is None:
        return "rejected", _why(parsed.reasons)
    inv, problems = text.check_text(parsed.invoice)
    verdict = check_invoice(inv, None, config.no_po, config.max_amount)
    reasons = contract.text_reasons(problems) + list(verdict.reasons)
    if reasons:
        return "rejected", _why(reasons)
    charges = ", ".join(f"{c.type} {c.amount}" for c in inv.charges) or "none"
    return "accepted", (
        f"{inv.document_type} `{inv.supplier_invoice_number}`, PO `{inv.po_number}`, {inv.currency}, "
        f"payable {inv.payable_amount}, charges: {charges}"
    )


def outcome(folder: str, document: str, config: IntakeConfig) -> tuple[str, str]:
    if folder == "order":
        return check_order(document, config)
    if folder == "receipt":
        return check_receipt(document)
    return check_invoice_document(document, config)


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path("../shared/samples/peppol")
    config = IntakeConfig.load(Settings(service="intake"))
    print("| sample | outcome | why |")
    print("|---|---|---|")
    for folder in FOLDERS:
        for path in sorted((root / folder).glob("*"), key=lambda p: p.name.lower()):
            document = path.read_text(encoding="utf-8")
            result, why = outcome(folder, document, config)
            print(f"| `{folder}/{path.name}` | {result} | {why} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
