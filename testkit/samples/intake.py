"""Documents as intake publishes them on concord.intake.documents, and commands as ops sends them,
for the handler tests of the services downstream of intake: PO-1 (one line, 10 × 100.00), its
receipts and invoices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from shared.consumer import RawRecord
from shared.topics import IN_COMMANDS, INTAKE_DOCUMENTS
from testkit import documents as doc
from testkit.records import record

PAYEE = "0088:5790000000001"
ENTITY = "9930:DE123456789"


def po_state(po_number: str = "PO-1", version: int = 1, **changes: Any) -> dict[str, Any]:
    data = doc.purchase_order(
        po_number,
        version=version,
        payee_id=PAYEE,
        legal_entity=ENTITY,
        currency="EUR",
        business_unit="engineering",
        effective_from="2026-01-01",
        effective_to="2026-12-31",
        requisition_id="REQ-1",
        created_by="buyer@example.com",
        approved_by="manager@example.com",
        approved_at="2026-01-02T09:00:00Z",
        lines=[doc.po_line("L1", "LAPTOP", "goods", "10", "100.00")],
        charges=[{"type": "freight", "amount": "50.00"}],
    )
    data.update(changes)
    return data


def po_in_force(po_number: str = "PO-1", version: int = 1, **changes: Any) -> RawRecord:
    data = doc.po_version_in_force(
        po_state(po_number, version, **changes),
        previous_version=version - 1 if version > 1 else None,
        in_force_since="2026-01-02T09:00:00Z",
    )
    return record(INTAKE_DOCUMENTS, "purchase_order.version_in_force", data, key=po_number)


def po_closed(po_number: str = "PO-1") -> RawRecord:
    data = doc.po_closure(po_number, closed_by="buyer@example.com", reason="done")
    return record(INTAKE_DOCUMENTS, "purchase_order.closure_accepted", data, key=po_number)


def receipt(
    receipt_id: str = "GR-1",
    quantity: str = "10",
    po_number: str = "PO-1",
    kind: str = "goods_receipt",
    po_line_id: str = "L1",
) -> RawRecord:
    data = doc.receipt(
        receipt_id,
        po_number,
        [doc.receipt_line(f"{receipt_id}-1", po_line_id, quantity)],
        kind=kind,
        received_at="2026-03-01T10:00:00Z",
        recorded_by="warehouse@example.com",
    )
    return record(INTAKE_DOCUMENTS, "receipt.accepted", data, key=po_number)


def receipt_reversed(receipt_id: str = "GR-1", po_number: str = "PO-1") -> RawRecord:
    data = doc.receipt_reversal(
        receipt_id, po_number, reversed_by="warehouse@example.com", reason="returned damaged"
    )
    return record(INTAKE_DOCUMENTS, "receipt.reversal_accepted", data, key=po_number)


def requisition(requisition_id: str = "REQ-1", requested_by: str = "requester@example.com") -> RawRecord:
    data = doc.requisition(
        requisition_id,
        legal_entity=ENTITY,
        business_unit="engineering",
        requested_by=requested_by,
        approved_by="manager@example.com",
        amount="1000.00",
        currency="EUR",
        approved_at="2026-01-01T09:00:00Z",
    )
    return record(INTAKE_DOCUMENTS, "requisition.accepted", data, key=requisition_id)


def invoice(
    invoice_id: str = "INV-1",
    quantity: str = "10",
    unit_price: str = "100.00",
    po_number: str | None = "PO-1",
    **changes: Any,
) -> RawRecord:
    """`invoice.accepted`: quantity × unit price on L1 plus 19 % tax."""
    line = doc.invoice_line("1", "L1", quantity, unit_price)
    line_amount = Decimal(line["line_amount"])
    tax = (line_amount * Decimal("0.19")).quantize(doc.CENT)
    data = doc.invoice(
        invoice_id,
        number=invoice_id,
        payee_id=PAYEE,
        legal_entity=ENTITY,
        currency="EUR",
        issue_date="2026-03-02",
        po_number=po_number,
        lines=[line],
        tax_total=str(tax),
        total_amount=str(line_amount + tax),
        normalised_invoice_number=invoice_id.replace("-", ""),
        payable_amount=str(line_amount + tax),
        origin="json",
    )
    data.update(changes)
    if data.get("po_number") is None:
        data.pop("po_number", None)
    return record(INTAKE_DOCUMENTS, "invoice.accepted", data, key=po_number or invoice_id)


def override(
    override_id: str = "OVR-1",
    invoice_id: str = "INV-1",
    hold_reasons: Any = "all",
    requested_by: str = "clerk@example.com",
    approved_by: str = "ap.lead@example.com",
    evidence: list[str] | None = None,
) -> RawRecord:
    data = doc.hold_override(
        override_id,
        invoice_id,
        hold_reasons=hold_reasons,
        reason_code="price_exception",
        justification="agreed by phone, contract clause 4.2",
        requested_by=requested_by,
        approved_by=approved_by,
        evidence=evidence if evidence is not None else ["https://dms.example.com/doc/42"],
    )
    return record(IN_COMMANDS, "hold.override_requested", data, key=invoice_id)


def rematch(invoice_id: str = "INV-1") -> RawRecord:
    data = doc.rematch(invoice_id, requested_by="clerk@example.com")
    return record(IN_COMMANDS, "invoice.rematch_requested", data, key=invoice_id)
