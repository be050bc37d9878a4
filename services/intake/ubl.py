"""UBL 2.1 Invoice / CreditNote (Peppol BIS Billing 3.0) → intake's Invoice, as SPEC §3 maps it;
the safe parsing and the reader every UBL document of intake shares (orders and receipt advice:
ubl_order.py, ubl_receipt.py).

Parsed with defusedxml: a DTD, an entity declaration or an external reference is refused,
never expanded or fetched; the document is size-capped before the parser sees it.
Pure: no I/O, no async.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from services.intake.domain import MAX_PAYLOAD_BYTES, Charge, Invoice, InvoiceLine, Reason
from services.intake.domain.charges import DEFAULT_CHARGE_CODES, document_charge
from shared.money import MAX_UNIT_PRICE_DECIMALS, InvalidDecimal, parse_decimal

CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
ROOTS: dict[str, Literal["invoice", "credit_note"]] = {
    "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice": "invoice",
    "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote": "credit_note",
}
NS = {"cbc": CBC, "cac": CAC}
_UNIT_PRICE_STEP = Decimal(1).scaleb(-MAX_UNIT_PRICE_DECIMALS)


def per_unit(price: Decimal, base: Decimal) -> Decimal:
    """PriceAmount ÷ BaseQuantity, which may not terminate: a unit price carries at most 6
    decimals, and is written without an exponent (1500 ÷ 3 is 500, not 5E+2)."""
    exact = (price / base).quantize(_UNIT_PRICE_STEP).normalize()
    return exact.quantize(Decimal(1)) if exact.as_tuple().exponent > 0 else exact  # type: ignore[operator]


@dataclass(frozen=True)
class UblResult:
    invoice: Invoice | None
    reasons: tuple[Reason, ...]


def parse_xml(document: str, roots: Mapping[str, str], expected: str) -> tuple[Element | None, list[Reason]]:
    """The document's root element when it is safe, well-formed, within the size cap and one of
    `roots` (tag → kind); else why not. Shared by every UBL document intake reads (SPEC §3, §12.2)."""
    size = len(document.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        return None, [Reason("payload_too_large", "document", f"{size} bytes; limit {MAX_PAYLOAD_BYTES}")]
    try:
        root = fromstring(document, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        return None, [Reason("unsafe_document", "document", f"refused: {type(exc).__name__}")]
    except (ParseError, ValueError) as exc:
        return None, [Reason("invalid_document", "document", f"not well-formed XML: {exc}"[:300])]
    if root.tag not in roots:
        return None, [Reason("invalid_document", "document", f"root {root.tag} is not a UBL {expected}")]
    return root, []


def parse_ubl(
    invoice_id: str, document: str, charge_codes: Mapping[str, str] = DEFAULT_CHARGE_CODES
) -> UblResult:
    root, reasons = parse_xml(document, ROOTS, "Invoice or CreditNote")
    if root is None:
        return UblResult(None, tuple(reasons))
    return _Mapper(invoice_id, root, ROOTS[root.tag], charge_codes).run()


class UblReader:
    """Reads elements of one UBL document, collecting every missing or malformed one (as a
    Reason whose `field` is `document:<XML path>`) instead of stopping at the first."""

    def __init__(self, root: Element) -> None:
        self.root = root
        self.reasons: list[Reason] = []
        self.where = ""  # the line being read, so a reason names it

    def fail(self, code: str, path: str, message: str) -> None:
        self.reasons.append(Reason(code, self.path(path), message))

    def path(self, path: str) -> str:
        return f"document:{self.where}{path}"

    def text(self, el: Element | None, path: str, *, required: bool = True) -> str | None:
        node = el.find(path, NS) if el is not None else None
        value = (node.text or "").strip() if node is not None else ""
        if not value:
            if required:
                self.fail("missing_field", path, f"{path} is required")
            return None
        return value

    def decimal(
        self, el: Element | None, path: str, *, required: bool = True, max_decimals: int | None = None
    ) -> Decimal | None:
        raw = self.text(el, path, required=required)
        if raw is None:
            return None
        try:
            return parse_decimal(raw, max_decimals)
        except InvalidDecimal as exc:
            self.fail("invalid_field", path, str(exc))
            return None

    def iso_date(self, el: Element | None, path: str, *, required: bool = True) -> date | None:
        raw = self.text(el, path, required=required)
        if raw is None:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            self.fail("invalid_field", path, "must be YYYY-MM-DD")
            return None

    def indicator(self, ac: Element, prefix: str = "") -> bool | None:
        """cbc:ChargeIndicator, an xs:boolean (true/false or 1/0): True for a charge. `prefix`:
        the AllowanceCharge's path below `where`, for the reason's field."""
        node = ac.find("cbc:ChargeIndicator", NS)
        raw = (node.text or "").strip() if node is not None else ""
        if not raw:
            self.fail("missing_field", f"{prefix}cbc:ChargeIndicator", "cbc:ChargeIndicator is required")
            return None
        if raw.lower() not in ("true", "false", "1", "0"):
            self.fail("invalid_field", f"{prefix}cbc:ChargeIndicator", "must be true or false")
            return None
        return raw.lower() in ("true", "1")

    def document_charges(self, charge_codes: Mapping[str, str]) -> tuple[Charge, ...]:
        """Document-level AllowanceCharge → charges typed through the UNCL7161 mapping (SPEC §12.1)."""
        out = []
        for i, ac in enumerate(self.root.findall("cac:AllowanceCharge", NS)):
            self.where = f"cac:AllowanceCharge[{i}]/"
            is_charge = self.indicator(ac)
            amount = self.decimal(ac, "cbc:Amount")
            code = self.text(ac, "cbc:AllowanceChargeReasonCode", required=False)
            self.where = ""
            if is_charge is not None and amount is not None:
                out.append(document_charge(is_charge, amount, code, charge_codes))
        return tuple(out)

    def party_id(self, role: str) -> str | None:
        """`<schemeID>:<EndpointID>`; documents without an EndpointID (older UBL) fall back to
        the party's first identification, so the same party always maps to the same id."""
        party = self.root.find(f"cac:{role}/cac:Party", NS)
        if party is None:
            self.fail("missing_field", f"cac:{role}", f"cac:{role}/cac:Party is required")
            return None
        for path in (
            "cbc:EndpointID",
            "cac:PartyIdentification/cbc:ID",
            "cac:PartyLegalEntity/cbc:CompanyID",
            "cac:PartyTaxScheme/cbc:CompanyID",
            "cac:PartyLegalEntity/cbc:RegistrationName",
            "cac:PartyName/cbc:Name",
        ):
            node = party.find(path, NS)
            if node is not None and (node.text or "").strip():
                scheme = (node.get("schemeID") or "").strip()
                value = (node.text or "").strip()
                return f"{scheme}:{value}" if scheme else value
        self.fail("missing_field", f"cac:{role}/cac:Party/cbc:EndpointID", "the party has no identifier")
        return None


class _Mapper(UblReader):
    """A UBL Invoice or CreditNote → intake's Invoice (SPEC §3)."""

    def __init__(
        self,
        invoice_id: str,
        root: Element,
        document_type: Literal["invoice", "credit_note"],
        charge_codes: Mapping[str, str],
    ) -> None:
        super().__init__(root)
        self.invoice_id = invoice_id
        self.document_type = document_type
        self.charge_codes = charge_codes

    def amount_currency(self) -> str | None:
        """Older UBL omits DocumentCurrencyCode; the PayableAmount's currencyID then says it."""
        node = self.root.find("cac:LegalMonetaryTotal/cbc:PayableAmount", NS)
        currency = node.get("currencyID") if node is not None else None
        if not currency:
            self.fail("missing_field", "cbc:DocumentCurrencyCode", "cbc:DocumentCurrencyCode is required")
        return currency

    def tax_total(self, currency: str | None) -> Decimal:
        """The TaxTotal whose TaxAmount is in the document currency (a second one may be in the
        tax currency); absent → zero."""
        for tt in self.root.findall("cac:TaxTotal", NS):
            amount = tt.find("cbc:TaxAmount", NS)
            if amount is not None and (currency is None or amount.get("currencyID", currency) == currency):
                value = self.decimal(tt, "cbc:TaxAmount")
                return value if value is not None else Decimal(0)
        return Decimal(0)

    def allowance_charge(self, ac: Element, path: str) -> Decimal | None:
        is_charge = self.indicator(ac, f"{path}/")
        amount = self.decimal(ac, "cbc:Amount")
        if is_charge is None or amount is None:
            return None
        return amount if is_charge else -amount

    def line(self, el: Element, index: int) -> InvoiceLine | None:
        qty_tag = "cbc:InvoicedQuantity" if self.document_type == "invoice" else "cbc:CreditedQuantity"
        before = len(self.reasons)
        self.where = (
            f"{'cac:InvoiceLine' if self.document_type == 'invoice' else 'cac:CreditNoteLine'}[{index}]/"
        )
        try:
            return self._line(el, index, qty_tag, before)
        finally:
            self.where = ""

    def _line(self, el: Element, index: int, qty_tag: str, before: int) -> InvoiceLine | None:
        line_id = self.text(el, "cbc:ID")
        quantity = self.decimal(el, qty_tag)
        line_amount = self.decimal(el, "cbc:LineExtensionAmount")
        price = self.decimal(el, "cac:Price/cbc:PriceAmount")
        base = self.decimal(el, "cac:Price/cbc:BaseQuantity", required=False)
        if base is not None and base <= 0:
            self.fail("invalid_field", "cac:Price/cbc:BaseQuantity", "must be > 0")
            base = None
        allowance_charge: Decimal | None = None
        for j, ac in enumerate(el.findall("cac:AllowanceCharge", NS)):
            signed = self.allowance_charge(ac, f"cac:AllowanceCharge[{j}]")
            if signed is not None:
                allowance_charge = (allowance_charge or Decimal(0)) + signed
        if len(self.reasons) > before:
            return None
        assert line_id is not None and quantity is not None and line_amount is not None and price is not None
        unit_price = price
        if base is not None and base != 1:
            # PriceAmount ÷ BaseQuantity may not terminate; a unit price carries at most 6 decimals.
            unit_price = per_unit(price, base)
        return InvoiceLine(
            line_id=line_id,
            po_line_id=self.text(el, "cac:OrderLineReference/cbc:LineID", required=False),
            item_ref=self.text(el, "cac:Item/cac:SellersItemIdentification/cbc:ID", required=False),
            description=self.text(el, "cac:Item/cbc:Name", required=False),
            quantity=quantity,
            unit_price=unit_price,
            allowance_charge_amount=allowance_charge,
            line_amount=line_amount,
        )

    def run(self) -> UblResult:
        root = self.root
        number = self.text(root, "cbc:ID")
        issue_raw = self.text(root, "cbc:IssueDate")
        issue: date | None = None
        if issue_raw is not None:
            try:
                issue = date.fromisoformat(issue_raw)
            except ValueError:
                self.fail("invalid_field", "cbc:IssueDate", "must be YYYY-MM-DD")
        currency = self.text(root, "cbc:DocumentCurrencyCode", required=False) or self.amount_currency()
        payee_id = self.party_id("AccountingSupplierParty")
        legal_entity = self.party_id("AccountingCustomerParty")
        line_tag = "cac:InvoiceLine" if self.document_type == "invoice" else "cac:CreditNoteLine"
        line_elements = root.findall(line_tag, NS)
        if not line_elements:
            self.fail("missing_field", line_tag, "at least one line is required")
        lines = [self.line(el, i) for i, el in enumerate(line_elements)]
        charges = self.document_charges(self.charge_codes)
        tax_total = self.tax_total(currency)
        totals = root.find("cac:LegalMonetaryTotal", NS)
        if totals is None:
            self.fail("missing_field", "cac:LegalMonetaryTotal", "cac:LegalMonetaryTotal is required")
        total = self.decimal(totals, "cbc:TaxInclusiveAmount", required=False) if totals is not None else None
        prepaid = self.decimal(totals, "cbc:PrepaidAmount", required=False) if totals is not None else None
        rounding = (
            self.decimal(totals, "cbc:PayableRoundingAmount", required=False) if totals is not None else None
        )
        payable = self.decimal(totals, "cbc:PayableAmount") if totals is not None else None
        if total is None and payable is not None:
            # UBL 2.0 documents may omit TaxInclusiveAmount; it is what the payable adds back to.
            total = payable + (prepaid or Decimal(0)) - (rounding or Decimal(0))
        if self.reasons:
            return UblResult(None, tuple(self.reasons))
        assert number and issue and currency and payee_id and legal_entity and total is not None
        try:
            invoice = Invoice(
                invoice_id=self.invoice_id,
                supplier_invoice_number=number,
                payee_id=payee_id,
                legal_entity=legal_entity,
                document_type=self.document_type,
                issue_date=issue,
                currency=currency,
                po_number=self.text(root, "cac:OrderReference/cbc:ID", required=False),
                lines=tuple(line for line in lines if line is not None),
                charges=charges,
                tax_total=tax_total,
                total_amount=total,
                prepaid_amount=prepaid or Decimal(0),
                rounding_amount=rounding or Decimal(0),
                stated_payable_amount=payable,
            )
        except InvalidOperation as exc:  # pragma: no cover - parse_decimal already bounds every value
            return UblResult(None, (Reason("invalid_document", "document", str(exc)),))
        return UblResult(invoice, ())
