"""Invoice Responses back to the supplier (SPEC §12.3): the one renderer every service uses.

A response is `invoice_response.issued` on `concord.out.invoice-responses` (key invoice_id), and
its `document` is a UBL 2.1 ApplicationResponse conforming to Peppol BIS Invoice Response 3
(transaction T111). Each status comes from the service that decides it: intake `AB` (accepted)
and `RE` (document.rejected), matching `UQ` (a hold opened or its reasons changed) and `AP`
(approved to pay), payout_release `PD` (the payout that pays it settled).

The document follows the Peppol examples (`T111-uc003`… in the spec's standards folder): a
Response with its UNCL4343 `ResponseCode`, then per clarification one `cac:Status` with the
OPStatusReason code and a text and one with the OPStatusAction code; the referenced document is
the supplier's invoice number with type 380 (invoice) or 381 (credit note). Sender is the buyer
(`legal_entity`), receiver the supplier (`payee_id`), both as `cbc:EndpointID` with the Peppol
scheme. When either party id is not a Peppol identifier (`<schemeID>:<value>`), or the invoice's
number is unknown (an unparseable UBL), nothing can be addressed: `document` is null and the event
still carries the status and reasons.

`response_id` is a UUID derived from the status, the event that caused it and the invoice, so a
redelivered cause can only ever produce the same response (the outbox and every reader dedupe it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from shared.contracts.outbound import InvoiceResponseIssued, InvoiceResponseReason
from shared.envelope import uuid5_str

CUSTOMIZATION_ID: Final = "urn:fdc:peppol.eu:poacc:trns:invoice_response:3"
PROFILE_ID: Final = "urn:fdc:peppol.eu:poacc:bis:invoice_response:3"

NS_DOC: Final = "urn:oasis:names:specification:ubl:schema:xsd:ApplicationResponse-2"
NS_CAC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"

_RESPONSE_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "concord:invoice_response")

# A Peppol participant identifier as Concord carries it: `<schemeID>:<value>`, the scheme an ICD
# of the Peppol EAS code list (four digits, e.g. 0088, 0192) and a value without spaces.
_PEPPOL_ID: Final = re.compile(r"^(?P<scheme>[0-9]{4}):(?P<value>[^\s:][^\s]*)$")

# Characters XML 1.0 cannot carry (a rejection may quote the control character it refused).
_XML_UNSAFE: Final = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

DOCUMENT_TYPE_CODES: Final = {"invoice": "380", "credit_note": "381"}  # UNCL1001


class Status(StrEnum):
    """UNCL4343 subset T111: the statuses Concord sends, in the order an invoice reaches them."""

    ACKNOWLEDGED = "AB"
    REJECTED = "RE"
    UNDER_QUERY = "UQ"
    ACCEPTED = "AP"
    PAID = "PD"


class Reason(StrEnum):
    """OPStatusReason: why the invoice is rejected or under query."""

    REFERENCES = "REF"
    DELIVERY = "DEL"
    PRICES = "PRI"
    QUANTITY = "QTY"
    ITEMS = "ITM"
    OTHER = "OTH"


class Action(StrEnum):
    """OPStatusAction: what the supplier is asked to do."""

    NO_ACTION = "NOA"
    PROVIDE_INFORMATION = "PIN"
    ISSUE_NEW_INVOICE = "NIN"
    CREDIT_PARTIALLY = "CNP"
    CREDIT_AMOUNT = "CNA"


# SPEC §12.3's table: a rejection's Concord code → (reason, action). Identity mismatches are
# references the supplier got wrong; anything else (arithmetic included) asks for a new invoice.
REJECTION_CLARIFICATIONS: Final[Mapping[str, tuple[Reason, Action]]] = {
    "duplicate_invoice": (Reason.OTHER, Action.NO_ACTION),
    "payee_mismatch": (Reason.REFERENCES, Action.ISSUE_NEW_INVOICE),
    "entity_mismatch": (Reason.REFERENCES, Action.ISSUE_NEW_INVOICE),
    "currency_mismatch": (Reason.REFERENCES, Action.ISSUE_NEW_INVOICE),
}
REJECTION_DEFAULT: Final = (Reason.OTHER, Action.ISSUE_NEW_INVOICE)

# SPEC §12.3's table: a hold's reason → (reason, action). A hold reason the table does not name
# (tax_review, replaces_settled_invoice, no_po_review…) asks the supplier for information.
HOLD_CLARIFICATIONS: Final[Mapping[str, tuple[Reason, Action]]] = {
    "awaiting_po": (Reason.REFERENCES, Action.PROVIDE_INFORMATION),
    "po_not_in_force": (Reason.REFERENCES, Action.PROVIDE_INFORMATION),
    "invalid_po_line_ref": (Reason.REFERENCES, Action.ISSUE_NEW_INVOICE),
    "price_mismatch": (Reason.PRICES, Action.CREDIT_AMOUNT),
    "unexpected_charge": (Reason.PRICES, Action.CREDIT_AMOUNT),
    "qty_over_ordered": (Reason.QUANTITY, Action.CREDIT_PARTIALLY),
    "qty_over_received": (Reason.QUANTITY, Action.CREDIT_PARTIALLY),
    "missing_receipt": (Reason.DELIVERY, Action.NO_ACTION),
    "duplicate_line_mapping": (Reason.ITEMS, Action.ISSUE_NEW_INVOICE),
    "header_total_mismatch": (Reason.OTHER, Action.PROVIDE_INFORMATION),
    "suspected_duplicate": (Reason.OTHER, Action.PROVIDE_INFORMATION),
}
HOLD_DEFAULT: Final = (Reason.OTHER, Action.PROVIDE_INFORMATION)

# What a supplier reads for a hold (no amounts, names or internal owners: the reason and its lines).
_HOLD_TEXT: Final[Mapping[str, str]] = {
    "awaiting_po": "The purchase order referenced has not been received by the buyer yet",
    "po_not_in_force": "The purchase order is closed or the invoice is outside its validity period",
    "invalid_po_line_ref": "An invoice line does not reference a line of the purchase order",
    "price_mismatch": "A unit price differs from the purchase order's",
    "unexpected_charge": "A charge is not allowed by the purchase order or exceeds it",
    "qty_over_ordered": "More is invoiced than was ordered",
    "qty_over_received": "More is invoiced than has been received",
    "missing_receipt": "The goods or services have not been received yet",
    "duplicate_line_mapping": "Two invoice lines reference the same purchase order line",
    "header_total_mismatch": "The invoice total does not equal its lines, charges and tax",
    "suspected_duplicate": "The invoice looks like one already received under another number",
}


@dataclass(frozen=True)
class InvoiceRef:
    """The invoice a response is about, as the deciding service knows it. Identity fields are
    None only for a rejected document Concord could not read (an unparseable UBL)."""

    invoice_id: str
    supplier_invoice_number: str | None
    payee_id: str | None
    legal_entity: str | None
    document_type: str = "invoice"


@dataclass(frozen=True)
class Finding:
    """One thing the supplier is told: Concord's code, the field or line it concerns, a text."""

    code: str
    text: str
    where: str | None = None


def response_id(status: Status, cause: str, invoice_id: str) -> str:
    """Derived from what caused it: the same cause can never issue a second, different response."""
    return uuid5_str(_RESPONSE_NAMESPACE, f"{status}|{cause}|{invoice_id}")


def peppol_party(party_id: str | None) -> tuple[str, str] | None:
    """(schemeID, value) of a `<schemeID>:<value>` party id; None when it is not a Peppol id."""
    m = _PEPPOL_ID.match(party_id or "")
    return (m["scheme"], m["value"]) if m else None


def clarifications(status: Status, findings: Iterable[Finding]) -> list[InvoiceResponseReason]:
    """One reason per Concord code (first text wins, lines named), mapped per SPEC §12.3."""
    if status not in (Status.REJECTED, Status.UNDER_QUERY):
        return []
    table, default = (
        (REJECTION_CLARIFICATIONS, REJECTION_DEFAULT)
        if status is Status.REJECTED
        else (HOLD_CLARIFICATIONS, HOLD_DEFAULT)
    )
    by_code: dict[str, list[Finding]] = {}
    for f in findings:
        by_code.setdefault(f.code, []).append(f)
    out = []
    for code, group in by_code.items():
        reason, action = table.get(code, default)
        where = sorted({f.where for f in group if f.where})
        text = group[0].text + (f" ({', '.join(where)})" if where else "")
        out.append(InvoiceResponseReason(code=reason, action=action, concord=code, text=text))
    return out


def hold_findings(holds: Iterable[tuple[str, str | None]]) -> list[Finding]:
    """(reason, line_id) of an invoice's open holds → what the supplier reads, sorted by reason."""
    return [
        Finding(
            reason, _HOLD_TEXT.get(reason, f"Held for review: {reason}"), f"line {line}" if line else None
        )
        for reason, line in sorted(holds, key=lambda h: (h[0], h[1] or ""))
    ]


def issue(
    ref: InvoiceRef, status: Status, cause: str, at: datetime, findings: Sequence[Finding] = ()
) -> InvoiceResponseIssued:
    """The event for one status change of one invoice, its document rendered when addressable."""
    reasons = clarifications(status, findings)
    if status in (Status.REJECTED, Status.UNDER_QUERY) and not reasons:
        raise ValueError(f"a {status} response needs at least one reason")
    rid = response_id(status, cause, ref.invoice_id)
    return InvoiceResponseIssued(
        response_id=rid,
        invoice_id=ref.invoice_id,
        supplier_invoice_number=ref.supplier_invoice_number,
        payee_id=ref.payee_id,
        legal_entity=ref.legal_entity,
        document_type=ref.document_type if ref.document_type in DOCUMENT_TYPE_CODES else "invoice",
        status=status,
        reasons=reasons,
        issued_at=at,
        document=render(rid, ref, status, reasons, at),
    )


def render(
    rid: str, ref: InvoiceRef, status: Status, reasons: Sequence[InvoiceResponseReason], at: datetime
) -> str | None:
    """The ApplicationResponse as UTF-8 XML text, or None when it cannot be addressed.

    Written as text: 16 against 117 µs with lxml's SubElement calls for an `AB` (`python -m
    bench.hot_path`, stop 33). The document's shape is fixed; what varies is element text, escaped
    as libxml2 escapes it. The bytes are lxml's (`tostring(pretty_print=True,
    xml_declaration=True, encoding="UTF-8")` of the same tree): tests hold the two to each other
    over arbitrary text and validate against the UBL schema."""
    sender, receiver = peppol_party(ref.legal_entity), peppol_party(ref.payee_id)
    if sender is None or receiver is None or not ref.supplier_invoice_number:
        return None
    day = at.date().isoformat()
    type_code = DOCUMENT_TYPE_CODES.get(ref.document_type, "380")
    statuses = "".join(
        "      <cac:Status>\n"
        f'        <cbc:StatusReasonCode listID="OPStatusReason">{_text(r.code)}</cbc:StatusReasonCode>\n'
        f"        <cbc:StatusReason>{_text(r.text)}</cbc:StatusReason>\n"
        "      </cac:Status>\n"
        "      <cac:Status>\n"
        f'        <cbc:StatusReasonCode listID="OPStatusAction">{_text(r.action)}</cbc:StatusReasonCode>\n'
        "      </cac:Status>\n"
        for r in reasons
    )
    return (
        f"{_HEAD}"
        f"  <cbc:ID>{_text(rid)}</cbc:ID>\n"
        f"  <cbc:IssueDate>{day}</cbc:IssueDate>\n"
        f"  <cbc:IssueTime>{at.strftime('%H:%M:%S')}</cbc:IssueTime>\n"
        f"{_party('SenderParty', sender)}"
        f"{_party('ReceiverParty', receiver)}"
        "  <cac:DocumentResponse>\n"
        "    <cac:Response>\n"
        f"      <cbc:ResponseCode>{_text(str(status))}</cbc:ResponseCode>\n"
        f"      <cbc:EffectiveDate>{day}</cbc:EffectiveDate>\n"
        f"{statuses}"
        "    </cac:Response>\n"
        "    <cac:DocumentReference>\n"
        f"      <cbc:ID>{_text(ref.supplier_invoice_number)}</cbc:ID>\n"
        f"      <cbc:DocumentTypeCode>{type_code}</cbc:DocumentTypeCode>\n"
        "    </cac:DocumentReference>\n"
        "  </cac:DocumentResponse>\n"
        "</ApplicationResponse>\n"
    )


_HEAD: Final = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    f'<ApplicationResponse xmlns="{NS_DOC}" xmlns:cac="{NS_CAC}" xmlns:cbc="{NS_CBC}">\n'
    f"  <cbc:CustomizationID>{CUSTOMIZATION_ID}</cbc:CustomizationID>\n"
    f"  <cbc:ProfileID>{PROFILE_ID}</cbc:ProfileID>\n"
)


def _party(name: str, party: tuple[str, str]) -> str:
    # The scheme is four digits (_PEPPOL_ID): an attribute value with nothing to escape.
    scheme, value = party
    # BIS T111 requires a legal entity with a registration name; Concord knows the party by its
    # identifier only, so the identifier is the name (the receiving access point routes by EndpointID).
    return (
        f"  <cac:{name}>\n"
        f'    <cbc:EndpointID schemeID="{scheme}">{_text(value)}</cbc:EndpointID>\n'
        "    <cac:PartyLegalEntity>\n"
        f"      <cbc:RegistrationName>{_text(f'{scheme}:{value}')}</cbc:RegistrationName>\n"
        "    </cac:PartyLegalEntity>\n"
        f"  </cac:{name}>\n"
    )


def _text(text: str) -> str:
    """Element text as libxml2 writes it: what XML 1.0 cannot carry replaced (a rejection may quote
    the control character it refused), then `&`, `<`, `>` and carriage return escaped."""
    text = _XML_UNSAFE.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
