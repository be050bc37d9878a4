"""Documents as intake publishes them on concord.intake.documents, and commands as ops sends them."""

from __future__ import annotations

from typing import Any

from shared.consumer import RawRecord
from shared.topics import IN_COMMANDS, INTAKE_DOCUMENTS
from tests.support import record

PAYEE = "0088:5790000000001"
ENTITY = "9930:DE123456789"


def po_state(po_number: str = "PO-1", version: int = 1, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "po_number": po_number,
        "version": version,
        "legal_entity": ENTITY,
        "business_unit": "engineering",
        "payee_id": PAYEE,
        "currency": "EUR",
        "effective_from": "2026-01-01",
        "effective_to": "2026-12-31",
        "requisition_id": "REQ-1",
        "created_by": "buyer@example.com",
        "approved_by": "manager@example.com",
        "approved_at": "2026-01-02T09:00:00Z",
        "lines": [
            {
                "line_id": "L1",
                "item_ref": "LAPTOP",
                "category": "goods",
                "quantity": "10",
                "unit_price": "100.00",
            },
        ],
        "charges": [{"type": "freight", "amount": "50.00"}],
    }
    data.update(changes)
    return data


def po_in_force(po_number: str = "PO-1", version: int = 1, **changes: Any) -> RawRecord:
    data = {
        "po": po_state(po_number, version, **changes),
        "previous_version": version - 1 if version > 1 else None,
        "changes": [],
        "in_force_since": "2026-01-02T09:00:00Z",
    }
    return record(INTAKE_DOCUMENTS, "purchase_order.version_in_force", data, key=po_number)


def po_closed(po_number: str = "PO-1") -> RawRecord:
    data = {"po_number": po_number, "closed_by": "buyer@example.com", "reason": "done"}
    return record(INTAKE_DOCUMENTS, "purchase_order.closure_accepted", data, key=po_number)


def receipt(
    receipt_id: str = "GR-1",
    quantity: str = "10",
    po_number: str = "PO-1",
    kind: str = "goods_receipt",
    po_line_id: str = "L1",
) -> RawRecord:
    data = {
        "receipt_id": receipt_id,
        "po_number": po_number,
        "kind": kind,
        "received_at": "2026-03-01T10:00:00Z",
        "recorded_by": "warehouse@example.com",
        "lines": [{"receipt_line_id": f"{receipt_id}-1", "po_line_id": po_line_id, "quantity": quantity}],
    }
    return record(INTAKE_DOCUMENTS, "receipt.accepted", data, key=po_number)


def receipt_reversed(receipt_id: str = "GR-1", po_number: str = "PO-1") -> RawRecord:
    data = {
        "receipt_id": receipt_id,
        "po_number": po_number,
        "reversed_by": "warehouse@example.com",
        "reason": "returned damaged",
    }
    return record(INTAKE_DOCUMENTS, "receipt.reversal_accepted", data, key=po_number)


def requisition(requisition_id: str = "REQ-1", requested_by: str = "requester@example.com") -> RawRecord:
    data = {
        "requisition_id": requisition_id,
        "legal_entity": ENTITY,
        "business_unit": "engineering",
        "requested_by": requested_by,
        "approved_by": "manager@example.com",
        "amount": "1000.00",
        "currency": "EUR",
        "approved_at": "2026-01-01T09:00:00Z",
    }
    return record(INTAKE_DOCUMENTS, "requisition.accepted", data, key=requisition_id)


def invoice(
    invoice_id: str = "INV-1",
    quantity: str = "10",
    unit_price: str = "100.00",
    po_number: str | None = "PO-1",
    **changes: Any,
) -> RawRecord:
    from decimal import Decimal

    line_amount = (Decimal(quantity) * Decimal(unit_price)).quantize(Decimal("0.01"))
    tax = (line_amount * Decimal("0.19")).quantize(Decimal("0.01"))
    data: dict[str, Any] = {
        "invoice_id": invoice_id,
        "supplier_invoice_number": invoice_id,
        "normalised_invoice_number": invoice_id.replace("-", ""),
        "payee_id": PAYEE,
        "legal_entity": ENTITY,
        "document_type": "invoice",
        "issue_date": "2026-03-02",
        "currency": "EUR",
        "po_number": po_number,
        "lines": [
            {
                "line_id": "1",
                "po_line_id": "L1",
                "quantity": quantity,
                "unit_price": unit_price,
                "line_amount": str(line_amount),
            }
        ],
        "tax_total": str(tax),
        "total_amount": str(line_amount + tax),
        "payable_amount": str(line_amount + tax),
        "origin": "json",
    }
    data.update(changes)
    if data["po_number"] is None:
        del data["po_number"]
    return record(INTAKE_DOCUMENTS, "invoice.accepted", data, key=po_number or invoice_id)


def override(
    override_id: str = "OVR-1",
    invoice_id: str = "INV-1",
    hold_reasons: Any = "all",
    requested_by: str = "clerk@example.com",
    approved_by: str = "ap.lead@example.com",
    evidence: list[str] | None = None,
) -> RawRecord:
    data = {
        "override_id": override_id,
        "invoice_id": invoice_id,
        "hold_reasons": hold_reasons,
        "reason_code": "price_exception",
        "justification": "agreed by phone, contract clause 4.2",
        "requested_by": requested_by,
        "approved_by": approved_by,
        "evidence": evidence if evidence is not None else ["https://dms.example.com/doc/42"],
    }
    return record(IN_COMMANDS, "hold.override_requested", data, key=invoice_id)


def rematch(invoice_id: str = "INV-1") -> RawRecord:
    data = {"invoice_id": invoice_id, "requested_by": "clerk@example.com"}
    return record(IN_COMMANDS, "invoice.rematch_requested", data, key=invoice_id)
