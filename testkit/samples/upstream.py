"""Inbound documents as upstream would publish them (JSON `data`), for intake's handler tests:
PO-1 (two lines, a freight charge), its amendments, its invoice, a requisition, and their records."""

from __future__ import annotations

from typing import Any

from shared.consumer import RawRecord
from shared.topics import IN_COMMANDS, IN_INVOICES, IN_PURCHASE_ORDERS, IN_RECEIPTS, IN_REQUISITIONS
from testkit import documents as doc
from testkit.documents import UBL_INVOICE
from testkit.records import record

__all__ = ["UBL_INVOICE"]

PAYEE = "0088:5790000000001"
ENTITY = "9930:DE123456789"


def po_issued(po_number: str = "PO-1", **changes: Any) -> dict[str, Any]:
    data = doc.purchase_order(
        po_number,
        payee_id=PAYEE,
        legal_entity=ENTITY,
        currency="EUR",
        business_unit="engineering",
        effective_from="2026-01-01",
        effective_to="2026-12-31",
        sow_ref={"id": "SOW-7", "version": "1"},
        created_by="buyer@example.com",
        approved_by="manager@example.com",
        approved_at="2026-01-02T09:00:00Z",
        lines=[
            doc.po_line("L1", "DEV-DAY", "services", "10", "800.00"),
            doc.po_line("L2", "LAPTOP", "goods", "2", "0.1212"),
        ],
        charges=[{"type": "freight", "amount": "50.00"}],
    )
    data.update(changes)
    return data


def po_amended(version: int, po_number: str = "PO-1", **changes: Any) -> dict[str, Any]:
    issued = po_issued(po_number)
    data = doc.po_amendment(
        issued,
        version=version,
        modification_id=f"MOD-{version}",
        amended_by="buyer@example.com",
        reason=f"scope change {version}",
        lines=[dict(issued["lines"][0], quantity=str(10 + version)), issued["lines"][1]],
    )
    data["sow_ref"] = {"id": "SOW-7", "version": str(version)}
    data.update(changes)
    return data


def amendment_approved(
    version: int, po_number: str = "PO-1", by: str = "controller@example.com"
) -> dict[str, Any]:
    return doc.amendment_approval(po_number, version, approved_by=by, approved_at="2026-02-01T10:00:00Z")


def invoice(invoice_id: str = "INV-A", number: str = "INV-0042", **changes: Any) -> dict[str, Any]:
    """2 days × 800.00 + 1 × 0.1212 (rounds to 0.12) + 25 % tax on L1."""
    data = doc.invoice(
        invoice_id,
        number=number,
        payee_id=PAYEE,
        legal_entity=ENTITY,
        currency="EUR",
        issue_date="2026-03-01",
        po_number="PO-1",
        lines=[
            doc.invoice_line("1", "L1", "2", "800.00", "1600.00"),
            doc.invoice_line("2", "L2", "1", "0.1212", "0.12"),
        ],
        tax_total="400.00",
        total_amount="2000.12",
    )
    data.update(changes)
    return data


def requisition(requisition_id: str = "REQ-1", **changes: Any) -> dict[str, Any]:
    data = doc.requisition(
        requisition_id,
        legal_entity=ENTITY,
        business_unit="engineering",
        requested_by="engineer@example.com",
        approved_by="manager@example.com",
        amount="8000.00",
        currency="EUR",
    )
    data.update(changes)
    return data


def po_rec(event_type: str, data: dict[str, Any], **kw: Any) -> RawRecord:
    return record(IN_PURCHASE_ORDERS, event_type, data, key=data["po_number"], **kw)


def inv_rec(data: dict[str, Any], **kw: Any) -> RawRecord:
    kw.setdefault("key", data.get("payee_id", PAYEE))
    return record(IN_INVOICES, "invoice.submitted", data, **kw)


def ubl_rec(invoice_id: str, document: str, **kw: Any) -> RawRecord:
    return record(
        IN_INVOICES, "invoice.submitted_ubl", doc.ubl_submission(invoice_id, document), key=PAYEE, **kw
    )


def receipt_rec(event_type: str, data: dict[str, Any], **kw: Any) -> RawRecord:
    kw.setdefault("key", data["po_number"])
    return record(IN_RECEIPTS, event_type, data, **kw)


def req_rec(event_type: str, data: dict[str, Any], **kw: Any) -> RawRecord:
    return record(IN_REQUISITIONS, event_type, data, key=data["requisition_id"], **kw)


def flip_rec(
    flip_id: str, po_number: str = "PO-1", line_quantities: dict[str, str] | None = None, **kw: Any
) -> RawRecord:
    data = doc.po_flip(flip_id, po_number, requested_by="ops@example.com", line_quantities=line_quantities)
    return record(IN_COMMANDS, "po_flip.requested", data, key=flip_id, **kw)


def po_ubl(document: str, **changes: Any) -> dict[str, Any]:
    """`purchase_order.submitted_ubl`: a Peppol Order (`doc.ubl_order`) and its approval."""
    data = doc.po_submitted_ubl(
        document,
        business_unit="engineering",
        created_by="buyer@example.com",
        approved_by="manager@example.com",
        approved_at="2026-01-02T09:00:00Z",
    )
    data.update(changes)
    return data


def po_ubl_rec(document: str, key: str, **changes: Any) -> RawRecord:
    return record(IN_PURCHASE_ORDERS, "purchase_order.submitted_ubl", po_ubl(document, **changes), key=key)


def receipt_ubl_rec(document: str, key: str, **changes: Any) -> RawRecord:
    """`receipt.recorded_ubl`: a UBL ReceiptAdvice (`doc.ubl_receipt_advice`)."""
    data = doc.receipt_recorded_ubl(document, recorded_by="dock@example.com")
    data.update(changes)
    return record(IN_RECEIPTS, "receipt.recorded_ubl", data, key=key)
