"""The `data` of every document Concord is sent or passes on, one builder each.

Each builder returns the JSON-ready dict a producer puts in an envelope's `data`. Everything a
caller varies is an argument; optional fields are left out when None, so a builder writes exactly
the fields its caller gave. Money and quantities are strings, as on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

Data = dict[str, Any]

CENT = Decimal("0.01")


def ts(d: date, hour: int = 9) -> str:
    """`d` at `hour`:00 UTC, as upstream systems write instants (`…T09:00:00Z`)."""
    return datetime(d.year, d.month, d.day, hour, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def money(x: Decimal) -> str:
    return str(x.quantize(CENT))


def _without_none(data: Data) -> Data:
    return {k: v for k, v in data.items() if v is not None}


# --- procurement ---------------------------------------------------------------------------------


def requisition(
    requisition_id: str,
    *,
    legal_entity: str,
    business_unit: str,
    requested_by: str,
    approved_by: str,
    amount: str,
    currency: str,
    approved_at: str | None = None,
) -> Data:
    return _without_none(
        {
            "requisition_id": requisition_id,
            "legal_entity": legal_entity,
            "business_unit": business_unit,
            "requested_by": requested_by,
            "approved_by": approved_by,
            "amount": amount,
            "currency": currency,
            "approved_at": approved_at,
        }
    )


def po_line(
    line_id: str,
    item_ref: str,
    category: str,
    quantity: str,
    unit_price: str,
    unit_of_measure: str | None = None,
) -> Data:
    return _without_none(
        {
            "line_id": line_id,
            "item_ref": item_ref,
            "category": category,
            "quantity": quantity,
            "unit_price": unit_price,
            "unit_of_measure": unit_of_measure,
        }
    )


def purchase_order(
    po_number: str,
    *,
    payee_id: str,
    legal_entity: str,
    currency: str,
    lines: list[Data],
    effective_from: str,
    effective_to: str,
    approved_by: str | None,
    approved_at: str | None,
    version: int = 1,
    business_unit: str = "engineering",
    created_by: str = "buyer@example.com",
    payment_terms: str | None = None,
    sow_ref: Mapping[str, str] | None = None,
    requisition_id: str | None = None,
    charges: list[Data] | None = None,
    match_mode: str | None = None,
) -> Data:
    """`purchase_order.issued` (and, with intake's additions, the PO state intake publishes)."""
    return _without_none(
        {
            "po_number": po_number,
            "version": version,
            "legal_entity": legal_entity,
            "business_unit": business_unit,
            "payee_id": payee_id,
            "currency": currency,
            "payment_terms": payment_terms,
            "effective_from": effective_from,
            "effective_to": effective_to,
            "sow_ref": dict(sow_ref) if sow_ref is not None else None,
            "requisition_id": requisition_id,
            "created_by": created_by,
            "approved_by": approved_by,
            "approved_at": approved_at,
            "lines": lines,
            "charges": charges,
            "match_mode": match_mode,
        }
    )


def po_amendment(
    po: Data,
    *,
    version: int,
    modification_id: str,
    amended_by: str,
    reason: str,
    lines: list[Data] | None = None,
    approved_by: str | None = None,
    approved_at: str | None = None,
) -> Data:
    """`purchase_order.amended`: the PO as amended, its approval only if given with it."""
    data = {k: v for k, v in po.items() if k not in ("approved_by", "approved_at")}
    data |= {
        "version": version,
        "modification_id": modification_id,
        "amended_by": amended_by,
        "reason": reason,
    }
    if lines is not None:
        data["lines"] = lines
    if approved_by is not None:
        data |= {"approved_by": approved_by, "approved_at": approved_at}
    return data


def amendment_approval(po_number: str, version: int, *, approved_by: str, approved_at: str) -> Data:
    """`purchase_order.amendment_approved`."""
    return {
        "po_number": po_number,
        "version": version,
        "approved_by": approved_by,
        "approved_at": approved_at,
    }


def receipt_line(receipt_line_id: str, po_line_id: str, quantity: str) -> Data:
    return {"receipt_line_id": receipt_line_id, "po_line_id": po_line_id, "quantity": quantity}


def receipt(
    receipt_id: str,
    po_number: str,
    lines: list[Data],
    *,
    received_at: str,
    kind: str = "goods_receipt",
    recorded_by: str = "warehouse@example.com",
) -> Data:
    """`receipt.recorded` (and intake's `receipt.accepted`, the same fields)."""
    return {
        "receipt_id": receipt_id,
        "po_number": po_number,
        "kind": kind,
        "received_at": received_at,
        "recorded_by": recorded_by,
        "lines": lines,
    }


def receipt_reversal(
    receipt_id: str, po_number: str, *, reversed_by: str = "warehouse@example.com", reason: str = "returned"
) -> Data:
    """`receipt.reversed` (and intake's `receipt.reversal_accepted`)."""
    return {"receipt_id": receipt_id, "po_number": po_number, "reversed_by": reversed_by, "reason": reason}


# --- invoices ------------------------------------------------------------------------------------


def invoice_line(
    line_id: str, po_line_id: str, quantity: str, unit_price: str, line_amount: str | None = None
) -> Data:
    """An invoice line; its amount is quantity × unit price to the cent unless given."""
    amount = line_amount if line_amount is not None else money(Decimal(quantity) * Decimal(unit_price))
    return {
        "line_id": line_id,
        "po_line_id": po_line_id,
        "quantity": quantity,
        "unit_price": unit_price,
        "line_amount": amount,
    }


def invoice(
    invoice_id: str,
    *,
    number: str,
    payee_id: str,
    legal_entity: str,
    currency: str,
    issue_date: str,
    lines: list[Data],
    tax_total: str,
    po_number: str | None = None,
    total_amount: str | None = None,
    document_type: str = "invoice",
    **extra: Any,
) -> Data:
    """`invoice.submitted` (`document_type="credit_note"` for a credit note). The total is the
    lines' amounts plus tax unless given; `extra` adds fields after it (`replaces_invoice_id`,
    `prepaid_amount`, intake's `normalised_invoice_number`, …)."""
    if total_amount is None:
        lines_total = sum((Decimal(line["line_amount"]) for line in lines), Decimal(0))
        total_amount = str(lines_total + Decimal(tax_total))
    data = _without_none(
        {
            "invoice_id": invoice_id,
            "supplier_invoice_number": number,
            "payee_id": payee_id,
            "legal_entity": legal_entity,
            "document_type": document_type,
            "issue_date": issue_date,
            "currency": currency,
            "po_number": po_number,
            "lines": lines,
            "tax_total": tax_total,
            "total_amount": total_amount,
        }
    )
    return data | extra


def credit_note(invoice_id: str, **fields: Any) -> Data:
    """A credit note: an invoice document of type `credit_note` (same fields)."""
    return invoice(invoice_id, document_type="credit_note", **fields)


def ubl_submission(invoice_id: str, document: str) -> Data:
    """`invoice.submitted_ubl`: a UBL 2.1 XML document as a string."""
    return {"invoice_id": invoice_id, "document": document}


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
"""A UBL 2.1 invoice (PEPPOL BIS 3) against PO-1, L1: 800.00 + 20.00 freight + 205.00 tax − 25.00
prepaid = 1000.00 payable. `{number}` is the supplier's invoice number."""


# --- payees and money ----------------------------------------------------------------------------


def tax_form(form_type: str, signed_at: str, status: str = "valid") -> Data:
    return {"type": form_type, "status": status, "signed_at": signed_at}


def payee_profile(
    payee_id: str,
    *,
    country: str,
    screened_at: str,
    entity_type: str = "business",
    version: int = 1,
    tax: Data | None = None,
    vat_number: str | None = None,
    payout_account_ref: str | None = None,
    updated_by: str | None = None,
) -> Data:
    """`payee.profile_updated`: a business is KYB-verified with its owners, an individual
    KYC-verified at `screened_at`; AML clear at `screened_at`."""
    identity = (
        {"kyb": {"status": "verified", "beneficial_owners_verified": True}}
        if entity_type == "business"
        else {"kyc": {"status": "verified", "verified_at": screened_at}}
    )
    data: Data = {
        "payee_id": payee_id,
        "profile_version": version,
        "entity_type": entity_type,
        "country": country,
        **identity,
        "aml": {"status": "clear", "screened_at": screened_at},
    }
    if tax is not None:
        data["tax_form"] = tax
    if vat_number is not None:
        data["vat"] = {"number": vat_number, "status": "valid", "checked_at": screened_at}
    if payout_account_ref is not None:
        data["payout_account_ref"] = payout_account_ref
    if updated_by is not None:
        data["updated_by"] = updated_by
    return data


def funding(
    funding_id: str, *, account_id: str, legal_entity: str, currency: str, amount: str, received_at: str
) -> Data:
    """`funding.received`."""
    return {
        "funding_id": funding_id,
        "account_id": account_id,
        "legal_entity": legal_entity,
        "currency": currency,
        "amount": amount,
        "received_at": received_at,
    }


def payout_settled(
    payout_id: str, *, rail_event_id: str, amount: str, currency: str, settled_at: str
) -> Data:
    """The rail's `payout.settled`."""
    return {
        "payout_id": payout_id,
        "rail_event_id": rail_event_id,
        "amount": amount,
        "currency": currency,
        "settled_at": settled_at,
    }


def payout_failed(
    payout_id: str, *, rail_event_id: str, failure_code: str, message: str | None = None
) -> Data:
    """The rail's `payout.failed`."""
    data: Data = {"payout_id": payout_id, "rail_event_id": rail_event_id, "failure_code": failure_code}
    if message is not None:
        data["message"] = message
    return data


# --- commands (signed by ops) --------------------------------------------------------------------


def hold_override(
    override_id: str,
    invoice_id: str,
    *,
    hold_reasons: Any,
    reason_code: str,
    justification: str,
    requested_by: str,
    approved_by: str,
    evidence: Iterable[str],
) -> Data:
    """`hold.override_requested`; `hold_reasons` is a list of reasons or "all"."""
    return {
        "override_id": override_id,
        "invoice_id": invoice_id,
        "hold_reasons": hold_reasons,
        "reason_code": reason_code,
        "justification": justification,
        "requested_by": requested_by,
        "approved_by": approved_by,
        "evidence": list(evidence),
    }


def payout_run(run_id: str, *, requested_by: str, **extra: Any) -> Data:
    """`payout_run.requested`."""
    return {"run_id": run_id, "requested_by": requested_by} | extra


def rematch(invoice_id: str, *, requested_by: str = "clerk@example.com") -> Data:
    """`invoice.rematch_requested`."""
    return {"invoice_id": invoice_id, "requested_by": requested_by}


def po_flip(
    flip_id: str, po_number: str, *, requested_by: str, line_quantities: Mapping[str, str] | None = None
) -> Data:
    """`po_flip.requested`: an invoice drafted from a PO (all lines, or the quantities given)."""
    data: Data = {"flip_id": flip_id, "po_number": po_number, "requested_by": requested_by}
    if line_quantities is not None:
        data["line_quantities"] = dict(line_quantities)
    return data


# --- what intake publishes (concord.intake.documents) --------------------------------------------


def po_version_in_force(po: Data, *, in_force_since: str, previous_version: int | None, **extra: Any) -> Data:
    """`purchase_order.version_in_force`: the PO state and what changed."""
    return {
        "po": po,
        "previous_version": previous_version,
        "changes": [],
        "in_force_since": in_force_since,
    } | extra


def po_closure(po_number: str, *, closed_by: str, reason: str) -> Data:
    """`purchase_order.closure_accepted`."""
    return {"po_number": po_number, "closed_by": closed_by, "reason": reason}


def payout_account_confirmation(payee_id: str, payout_account_ref: str, *, confirmed_by: str) -> Data:
    """`payee.payout_account_confirmed` (SPEC §13.3; a signed command, key payee_id)."""
    return {"payee_id": payee_id, "payout_account_ref": payout_account_ref, "confirmed_by": confirmed_by}


# --- UBL orders and receipt advice (SPEC §12.2) ----------------------------------------------------

_UBL_NS = (
    'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"\n'
    '  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"'
)


def ubl_order_line(
    line_id: str,
    quantity: str,
    price: str | None,
    *,
    item_id: str | None = None,
    name: str = "Item",
    unit: str = "EA",
    base_quantity: str | None = None,
    currency: str = "EUR",
) -> str:
    """A Peppol Order's `cac:OrderLine` (price None: the line carries none)."""
    base = f'<cbc:BaseQuantity unitCode="{unit}">{base_quantity}</cbc:BaseQuantity>' if base_quantity else ""
    price_el = (
        f'<cac:Price><cbc:PriceAmount currencyID="{currency}">{price}</cbc:PriceAmount>{base}</cac:Price>'
        if price is not None
        else ""
    )
    seller = (
        f"<cac:SellersItemIdentification><cbc:ID>{item_id}</cbc:ID></cac:SellersItemIdentification>"
        if item_id
        else ""
    )
    return (
        f"  <cac:OrderLine><cac:LineItem>\n    <cbc:ID>{line_id}</cbc:ID>\n"
        f'    <cbc:Quantity unitCode="{unit}">{quantity}</cbc:Quantity>\n    {price_el}\n'
        f"    <cac:Item><cbc:Name>{name}</cbc:Name>{seller}</cac:Item>\n  </cac:LineItem></cac:OrderLine>\n"
    )


def ubl_charge(code: str | None, amount: str, *, charge: bool = True, currency: str = "EUR") -> str:
    """A document-level `cac:AllowanceCharge` (charge=False: an allowance)."""
    reason = f"<cbc:AllowanceChargeReasonCode>{code}</cbc:AllowanceChargeReasonCode>" if code else ""
    return (
        f"  <cac:AllowanceCharge><cbc:ChargeIndicator>{'true' if charge else 'false'}</cbc:ChargeIndicator>"
        f'{reason}<cbc:Amount currencyID="{currency}">{amount}</cbc:Amount></cac:AllowanceCharge>\n'
    )


def _endpoint(party: str) -> str:
    """`cbc:EndpointID` of a party id as intake names parties: `<schemeID>:<value>`, or a bare value."""
    scheme, _, value = party.rpartition(":")
    attribute = f' schemeID="{scheme}"' if scheme else ""
    return f"<cbc:EndpointID{attribute}>{value}</cbc:EndpointID>"


def ubl_order(
    po_number: str,
    lines: Iterable[str],
    *,
    buyer: str = "9930:DE123456789",
    seller: str = "0088:5790000000001",
    currency: str | None = "EUR",
    issue_date: str = "2026-01-02",
    end_date: str | None = "2026-12-31",
    contract_id: str | None = None,
    payment_terms: str | None = None,
    charges: Iterable[str] = (),
) -> str:
    """A UBL 2.1 Order (Peppol BIS Ordering 3), lines from `ubl_order_line`, charges from `ubl_charge`."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"\n  {_UBL_NS}>\n',
        "  <cbc:CustomizationID>urn:fdc:peppol.eu:poacc:trns:order:3</cbc:CustomizationID>\n",
        "  <cbc:ProfileID>urn:fdc:peppol.eu:poacc:bis:order_only:3</cbc:ProfileID>\n",
        f"  <cbc:ID>{po_number}</cbc:ID>\n  <cbc:IssueDate>{issue_date}</cbc:IssueDate>\n",
        f"  <cbc:DocumentCurrencyCode>{currency}</cbc:DocumentCurrencyCode>\n" if currency else "",
        f"  <cac:ValidityPeriod><cbc:EndDate>{end_date}</cbc:EndDate></cac:ValidityPeriod>\n"
        if end_date
        else "",
        f"  <cac:Contract><cbc:ID>{contract_id}</cbc:ID></cac:Contract>\n" if contract_id else "",
        f"  <cac:BuyerCustomerParty><cac:Party>{_endpoint(buyer)}</cac:Party></cac:BuyerCustomerParty>\n",
        f"  <cac:SellerSupplierParty><cac:Party>{_endpoint(seller)}</cac:Party></cac:SellerSupplierParty>\n",
        f"  <cac:PaymentTerms><cbc:Note>{payment_terms}</cbc:Note></cac:PaymentTerms>\n"
        if payment_terms
        else "",
        *charges,  # UBL's Order sequence: PaymentTerms, then AllowanceCharge, then the lines
        *lines,
        "</Order>\n",
    ]
    return "".join(parts)


def ubl_receipt_line(
    line_id: str,
    po_line_id: str | None,
    received: str,
    *,
    rejected: str | None = None,
    po_number: str | None = None,
    unit: str = "EA",
) -> str:
    """A ReceiptAdvice's `cac:ReceiptLine` (po_line_id None: no OrderLineReference; po_number:
    the line names its order)."""
    rejected_el = (
        f'<cbc:RejectedQuantity unitCode="{unit}">{rejected}</cbc:RejectedQuantity>' if rejected else ""
    )
    order = f"<cac:OrderReference><cbc:ID>{po_number}</cbc:ID></cac:OrderReference>" if po_number else ""
    reference = (
        f"<cac:OrderLineReference><cbc:LineID>{po_line_id}</cbc:LineID>{order}</cac:OrderLineReference>"
        if po_line_id
        else ""
    )
    return (
        f"  <cac:ReceiptLine><cbc:ID>{line_id}</cbc:ID>"
        f'<cbc:ReceivedQuantity unitCode="{unit}">{received}</cbc:ReceivedQuantity>{rejected_el}'
        f"{reference}</cac:ReceiptLine>\n"
    )


def ubl_receipt_advice(
    receipt_id: str,
    po_number: str | None,
    lines: Iterable[str],
    *,
    issue_date: str = "2026-03-01",
    issue_time: str | None = "10:00:00Z",
) -> str:
    """A UBL 2.1 ReceiptAdvice (po_number None: no header OrderReference), lines from
    `ubl_receipt_line`."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        '<ReceiptAdvice xmlns="urn:oasis:names:specification:ubl:schema:xsd:ReceiptAdvice-2"\n',
        f"  {_UBL_NS}>\n",
        "  <cbc:CustomizationID>urn:fdc:peppol.eu:logistics:trns:receipt_advice:1</cbc:CustomizationID>\n",
        f"  <cbc:ID>{receipt_id}</cbc:ID>\n  <cbc:IssueDate>{issue_date}</cbc:IssueDate>\n",
        f"  <cbc:IssueTime>{issue_time}</cbc:IssueTime>\n" if issue_time else "",
        f"  <cac:OrderReference><cbc:ID>{po_number}</cbc:ID></cac:OrderReference>\n" if po_number else "",
        *lines,
        "</ReceiptAdvice>\n",
    ]
    return "".join(parts)


def po_submitted_ubl(
    document: str, *, business_unit: str, created_by: str, approved_by: str, approved_at: str, **extra: Any
) -> Data:
    """`purchase_order.submitted_ubl`: a Peppol Order and its approval."""
    return {
        "document": document,
        "business_unit": business_unit,
        "created_by": created_by,
        "approved_by": approved_by,
        "approved_at": approved_at,
        **extra,
    }


def receipt_recorded_ubl(document: str, *, recorded_by: str, **extra: Any) -> Data:
    """`receipt.recorded_ubl`: a UBL ReceiptAdvice."""
    return {"document": document, "recorded_by": recorded_by, **extra}
