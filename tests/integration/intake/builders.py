"""Inbound documents as upstream would publish them (JSON `data`), for intake's handler tests."""

from __future__ import annotations

from typing import Any

from shared.consumer import RawRecord
from shared.topics import IN_COMMANDS, IN_INVOICES, IN_PURCHASE_ORDERS, IN_RECEIPTS, IN_REQUISITIONS
from tests.support import record

PAYEE = "0088:5790000000001"
ENTITY = "9930:DE123456789"


def po_issued(po_number: str = "PO-1", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "po_number": po_number,
        "version": 1,
        "legal_entity": ENTITY,
        "business_unit": "engineering",
        "payee_id": PAYEE,
        "currency": "EUR",
        "effective_from": "2026-01-01",
        "effective_to": "2026-12-31",
        "sow_ref": {"id": "SOW-7", "version": "1"},
        "created_by": "buyer@example.com",
        "approved_by": "manager@example.com",
        "approved_at": "2026-01-02T09:00:00Z",
        "lines": [
            {
                "line_id": "L1",
                "item_ref": "DEV-DAY",
                "category": "services",
                "quantity": "10",
                "unit_price": "800.00",
            },
            {
                "line_id": "L2",
                "item_ref": "LAPTOP",
                "category": "goods",
                "quantity": "2",
                "unit_price": "0.1212",
            },
        ],
        "charges": [{"type": "freight", "amount": "50.00"}],
    }
    data.update(changes)
    return data


def po_amended(version: int, po_number: str = "PO-1", **changes: Any) -> dict[str, Any]:
    data = po_issued(po_number)
    data.pop("approved_by")
    data.pop("approved_at")
    data.update(
        version=version,
        modification_id=f"MOD-{version}",
        amended_by="buyer@example.com",
        reason=f"scope change {version}",
    )
    data["lines"] = [dict(data["lines"][0], quantity=str(10 + version)), data["lines"][1]]
    data["sow_ref"] = {"id": "SOW-7", "version": str(version)}
    data.update(changes)
    return data


def amendment_approved(
    version: int, po_number: str = "PO-1", by: str = "director@example.com"
) -> dict[str, Any]:
    return {
        "po_number": po_number,
        "version": version,
        "approved_by": by,
        "approved_at": "2026-02-01T10:00:00Z",
    }


def invoice(invoice_id: str = "INV-A", number: str = "INV-0042", **changes: Any) -> dict[str, Any]:
    """2 days × 800.00 + 1 × 0.1212 (rounds to 0.12) + 25 % tax on L1."""
    data: dict[str, Any] = {
        "invoice_id": invoice_id,
        "supplier_invoice_number": number,
        "payee_id": PAYEE,
        "legal_entity": ENTITY,
        "document_type": "invoice",
        "issue_date": "2026-03-01",
        "currency": "EUR",
        "po_number": "PO-1",
        "lines": [
            {
                "line_id": "1",
                "po_line_id": "L1",
                "quantity": "2",
                "unit_price": "800.00",
                "line_amount": "1600.00",
            },
            {
                "line_id": "2",
                "po_line_id": "L2",
                "quantity": "1",
                "unit_price": "0.1212",
                "line_amount": "0.12",
            },
        ],
        "tax_total": "400.00",
        "total_amount": "2000.12",
    }
    data.update(changes)
    return data


def requisition(requisition_id: str = "REQ-1", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "requisition_id": requisition_id,
        "legal_entity": ENTITY,
        "business_unit": "engineering",
        "requested_by": "engineer@example.com",
        "approved_by": "manager@example.com",
        "amount": "8000.00",
        "currency": "EUR",
    }
    data.update(changes)
    return data


def po_rec(event_type: str, data: dict[str, Any], **kw: Any) -> RawRecord:
    return record(IN_PURCHASE_ORDERS, event_type, data, key=data["po_number"], **kw)


def inv_rec(data: dict[str, Any], **kw: Any) -> RawRecord:
    kw.setdefault("key", data.get("payee_id", PAYEE))
    return record(IN_INVOICES, "invoice.submitted", data, **kw)


def ubl_rec(invoice_id: str, document: str, **kw: Any) -> RawRecord:
    return record(
        IN_INVOICES,
        "invoice.submitted_ubl",
        {"invoice_id": invoice_id, "document": document},
        key=PAYEE,
        **kw,
    )


def receipt_rec(event_type: str, data: dict[str, Any], **kw: Any) -> RawRecord:
    kw.setdefault("key", data["po_number"])
    return record(IN_RECEIPTS, event_type, data, **kw)


def req_rec(event_type: str, data: dict[str, Any], **kw: Any) -> RawRecord:
    return record(IN_REQUISITIONS, event_type, data, key=data["requisition_id"], **kw)


def flip_rec(
    flip_id: str, po_number: str = "PO-1", line_quantities: dict[str, str] | None = None, **kw: Any
) -> RawRecord:
    data: dict[str, Any] = {"flip_id": flip_id, "po_number": po_number, "requested_by": "ops@example.com"}
    if line_quantities is not None:
        data["line_quantities"] = line_quantities
    return record(IN_COMMANDS, "po_flip.requested", data, key=flip_id, **kw)


UBL_INVOICE = """<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
         xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
         xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0</cbc:CustomizationID>
  <cbc:ID>{number}</cbc:ID>
  <cbc:IssueDate>2026-03-02</cbc:IssueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cac:OrderReference><cbc:ID>PO-1</cbc:ID></cac:OrderReference>
  <cac:AccountingSupplierParty><cac:Party>
    <cbc:EndpointID schemeID="0088">5790000000001</cbc:EndpointID>
  </cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party>
    <cbc:EndpointID schemeID="9930">DE123456789</cbc:EndpointID>
  </cac:Party></cac:AccountingCustomerParty>
  <cac:AllowanceCharge>
    <cbc:ChargeIndicator>true</cbc:ChargeIndicator>
    <cbc:AllowanceChargeReasonCode>FC</cbc:AllowanceChargeReasonCode>
    <cbc:Amount currencyID="EUR">20.00</cbc:Amount>
  </cac:AllowanceCharge>
  <cac:TaxTotal><cbc:TaxAmount currencyID="EUR">205.00</cbc:TaxAmount></cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="EUR">800.00</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="EUR">820.00</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">1025.00</cbc:TaxInclusiveAmount>
    <cbc:PrepaidAmount currencyID="EUR">25.00</cbc:PrepaidAmount>
    <cbc:PayableAmount currencyID="EUR">1000.00</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:InvoiceLine>
    <cbc:ID>1</cbc:ID>
    <cbc:InvoicedQuantity unitCode="DAY">1</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">800.00</cbc:LineExtensionAmount>
    <cac:OrderLineReference><cbc:LineID>L1</cbc:LineID></cac:OrderLineReference>
    <cac:Item><cbc:Name>Developer day</cbc:Name></cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">800.00</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
</Invoice>
"""
