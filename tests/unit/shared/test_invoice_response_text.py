"""The Invoice Response document is written as text (shared.invoice_response.render); these tests
hold it to what lxml writes for the same tree, byte for byte, over arbitrary text — the markup a
supplier's invoice number or a rejection's quoted input may carry, characters XML cannot carry,
non-ASCII, carriage returns — and to the UBL 2.1 schema."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from shared import invoice_response as ir
from shared.contracts.outbound import InvoiceResponseReason
from tests.ubl_schema import schema_errors

_NSMAP = {None: ir.NS_DOC, "cac": ir.NS_CAC, "cbc": ir.NS_CBC}


def render_with_lxml(
    rid: str, ref: ir.InvoiceRef, status: ir.Status, reasons: Sequence[InvoiceResponseReason], at: datetime
) -> str | None:
    """The renderer as it was written with lxml's element tree (until stop 33): the oracle."""
    sender, receiver = ir.peppol_party(ref.legal_entity), ir.peppol_party(ref.payee_id)
    if sender is None or receiver is None or not ref.supplier_invoice_number:
        return None
    root = etree.Element(f"{{{ir.NS_DOC}}}ApplicationResponse", nsmap=_NSMAP)
    _cbc(root, "CustomizationID", ir.CUSTOMIZATION_ID)
    _cbc(root, "ProfileID", ir.PROFILE_ID)
    _cbc(root, "ID", rid)
    _cbc(root, "IssueDate", at.date().isoformat())
    _cbc(root, "IssueTime", at.strftime("%H:%M:%S"))
    _party(root, "SenderParty", sender)
    _party(root, "ReceiverParty", receiver)
    doc_response = _cac(root, "DocumentResponse")
    response = _cac(doc_response, "Response")
    _cbc(response, "ResponseCode", str(status))
    _cbc(response, "EffectiveDate", at.date().isoformat())
    for r in reasons:
        reason_status = _cac(response, "Status")
        _cbc(reason_status, "StatusReasonCode", r.code, listID="OPStatusReason")
        _cbc(reason_status, "StatusReason", r.text)
        action_status = _cac(response, "Status")
        _cbc(action_status, "StatusReasonCode", r.action, listID="OPStatusAction")
    reference = _cac(doc_response, "DocumentReference")
    _cbc(reference, "ID", ref.supplier_invoice_number)
    _cbc(reference, "DocumentTypeCode", ir.DOCUMENT_TYPE_CODES.get(ref.document_type, "380"))
    text: str = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode()
    return text


def _party(parent: Any, name: str, party: tuple[str, str]) -> None:
    scheme, value = party
    node = _cac(parent, name)
    _cbc(node, "EndpointID", value, schemeID=scheme)
    _cbc(_cac(node, "PartyLegalEntity"), "RegistrationName", f"{scheme}:{value}")


def _cac(parent: Any, name: str) -> Any:
    return etree.SubElement(parent, f"{{{ir.NS_CAC}}}{name}")


def _cbc(parent: Any, name: str, text: str, **attrs: str) -> Any:
    node = etree.SubElement(parent, f"{{{ir.NS_CBC}}}{name}", attrs)
    node.text = ir._XML_UNSAFE.sub("\ufffd", text)
    return node


# Text with what needs escaping or replacing well represented: markup, quotes, CR/LF/tab, controls,
# lone surrogates, non-characters, non-ASCII and astral characters.
_TRICKY = st.sampled_from(list("&<>\"'\r\n\t\x00\x01\x0b\x7f\ud800\udfff\ufffe\uffff€ü\U0001f600]]>;#"))
_TEXT = st.lists(st.one_of(_TRICKY, st.characters()), min_size=1, max_size=40).map("".join)
_ID_CHAR = st.one_of(_TRICKY, st.characters()).filter(lambda c: not c.isspace())
# `<scheme>:<value>`, the value without whitespace and not starting with a colon (_PEPPOL_ID).
_ID_VALUE = st.builds(
    lambda first, rest: first + "".join(rest),
    _ID_CHAR.filter(lambda c: c != ":"),
    st.lists(_ID_CHAR, max_size=30),
)
_PARTY = st.builds(lambda scheme, value: f"{scheme:04d}:{value}", st.integers(0, 9999), _ID_VALUE)
# Built without validation: the model refuses a lone surrogate, the renderer must not care.
_REASON = st.builds(
    InvoiceResponseReason.model_construct,
    code=st.sampled_from([str(r) for r in ir.Reason]),
    action=st.sampled_from([str(a) for a in ir.Action]),
    concord=st.just("price_mismatch"),
    text=_TEXT,
)
_AT = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    number=_TEXT,
    payee=_PARTY,
    entity=_PARTY,
    document_type=st.sampled_from(["invoice", "credit_note", "other"]),
    status=st.sampled_from(list(ir.Status)),
    reasons=st.lists(_REASON, max_size=3),
    at=_AT,
)
def test_the_text_is_lxmls_byte_for_byte(
    number: str,
    payee: str,
    entity: str,
    document_type: str,
    status: ir.Status,
    reasons: list[InvoiceResponseReason],
    at: datetime,
) -> None:
    ref = ir.InvoiceRef("inv-1", number, payee, entity, document_type)
    rid = ir.response_id(status, "evt_cause", "inv-1")
    ours = ir.render(rid, ref, status, reasons, at)
    assert ours is not None
    assert ours == render_with_lxml(rid, ref, status, reasons, at)
    etree.fromstring(ours.encode())  # well-formed, whatever the text held


def test_hostile_text_still_gives_a_schema_valid_document() -> None:
    ref = ir.InvoiceRef("inv-1", 'A&B <x> "q" \r\x00 ü', "0088:57<&>\"'", "0192:9&9", "credit_note")
    reasons = ir.clarifications(
        ir.Status.UNDER_QUERY, [ir.Finding("price_mismatch", "<script>&amp;\r\x1f</script>", "line 1")]
    )
    at = datetime(2026, 12, 3, 16, 30, tzinfo=UTC)
    ours = ir.render("rid", ref, ir.Status.UNDER_QUERY, reasons, at)
    assert ours is not None
    assert ours == render_with_lxml("rid", ref, ir.Status.UNDER_QUERY, reasons, at)
    assert schema_errors(ours.encode()) == []
    root = etree.fromstring(ours.encode())
    ns = {"cbc": ir.NS_CBC, "cac": ir.NS_CAC}
    assert root.findtext("cac:DocumentResponse/cac:DocumentReference/cbc:ID", namespaces=ns) == (
        'A&B <x> "q" \r\ufffd ü'
    )
    assert root.findtext("cac:ReceiverParty/cbc:EndpointID", namespaces=ns) == "57<&>\"'"
