"""The Invoice Response renderer (SPEC §12.3): every status and every reason of the spec's table,
each document valid against the UBL 2.1 ApplicationResponse schema and shaped like the Peppol
BIS Invoice Response 3 examples."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from shared import invoice_response as ir
from shared.contracts.outbound import InvoiceResponseIssued
from shared.contracts.registry import parse_data, spec_of
from shared.topics import ALL_TOPICS, OUT_INVOICE_RESPONSES
from tests.ubl_schema import PEPPOL_EXAMPLES, assert_valid, schema_errors

NS = {
    "r": ir.NS_DOC,
    "cac": ir.NS_CAC,
    "cbc": ir.NS_CBC,
}
AT = datetime(2026, 11, 30, 14, 5, 9, tzinfo=UTC)
REF = ir.InvoiceRef("inv-1", "INV-0042", "0192:987654325", "0088:7300010000001", "invoice")


def _xml(response: InvoiceResponseIssued) -> etree._Element:
    assert response.document is not None
    return etree.fromstring(response.document.encode())


def _text(root: etree._Element, path: str) -> list[str]:
    return [e.text for e in root.findall(path, NS)]


@pytest.mark.parametrize("example", sorted(PEPPOL_EXAMPLES.glob("*.xml")), ids=lambda p: p.name)
def test_the_schema_accepts_the_peppol_examples(example):
    # If these failed, a failure on our own documents would say nothing about them.
    assert schema_errors(example.read_bytes()) == []


@pytest.mark.parametrize("status", [ir.Status.ACKNOWLEDGED, ir.Status.ACCEPTED, ir.Status.PAID])
def test_a_status_without_reasons(status):
    response = ir.issue(REF, status, "evt_cause", AT)
    assert_valid(response.document)
    root = _xml(response)
    assert _text(root, "cbc:CustomizationID") == ["urn:fdc:peppol.eu:poacc:trns:invoice_response:3"]
    assert _text(root, "cbc:ProfileID") == ["urn:fdc:peppol.eu:poacc:bis:invoice_response:3"]
    assert _text(root, "cbc:ID") == [response.response_id]
    assert _text(root, "cbc:IssueDate") == ["2026-11-30"]
    sender = root.find("cac:SenderParty/cbc:EndpointID", NS)
    receiver = root.find("cac:ReceiverParty/cbc:EndpointID", NS)
    assert (sender.get("schemeID"), sender.text) == ("0088", "7300010000001")  # the buyer
    assert (receiver.get("schemeID"), receiver.text) == ("0192", "987654325")  # the supplier
    assert _text(root, "cac:DocumentResponse/cac:Response/cbc:ResponseCode") == [str(status)]
    assert root.findall("cac:DocumentResponse/cac:Response/cac:Status", NS) == []
    assert _text(root, "cac:DocumentResponse/cac:DocumentReference/cbc:ID") == ["INV-0042"]
    assert _text(root, "cac:DocumentResponse/cac:DocumentReference/cbc:DocumentTypeCode") == ["380"]
    assert response.reasons == []


REJECTIONS = [
    ("duplicate_invoice", "OTH", "NOA"),
    ("payee_mismatch", "REF", "NIN"),
    ("entity_mismatch", "REF", "NIN"),
    ("currency_mismatch", "REF", "NIN"),
    ("total_mismatch", "OTH", "NIN"),
    ("line_amount_mismatch", "OTH", "NIN"),
    ("sod_violation", "OTH", "NIN"),
    ("missing_field", "OTH", "NIN"),
]

HOLDS = [
    ("awaiting_po", "REF", "PIN"),
    ("po_not_in_force", "REF", "PIN"),
    ("invalid_po_line_ref", "REF", "NIN"),
    ("price_mismatch", "PRI", "CNA"),
    ("unexpected_charge", "PRI", "CNA"),
    ("qty_over_ordered", "QTY", "CNP"),
    ("qty_over_received", "QTY", "CNP"),
    ("missing_receipt", "DEL", "NOA"),
    ("duplicate_line_mapping", "ITM", "NIN"),
    ("header_total_mismatch", "OTH", "PIN"),
    ("suspected_duplicate", "OTH", "PIN"),
    ("tax_review", "OTH", "PIN"),
]


def _statuses(root: etree._Element) -> list[tuple[str | None, str | None, str | None]]:
    return [
        (
            s.find("cbc:StatusReasonCode", NS).get("listID"),
            s.findtext("cbc:StatusReasonCode", namespaces=NS),
            s.findtext("cbc:StatusReason", namespaces=NS),
        )
        for s in root.findall("cac:DocumentResponse/cac:Response/cac:Status", NS)
    ]


@pytest.mark.parametrize(("code", "reason", "action"), REJECTIONS)
def test_every_rejection_reason(code, reason, action):
    finding = ir.Finding(code, f"why {code}", "lines.0.unit_price")
    response = ir.issue(REF, ir.Status.REJECTED, "evt_cause", AT, [finding])
    assert_valid(response.document)
    assert [(r.code, r.action, r.concord) for r in response.reasons] == [(reason, action, code)]
    assert response.reasons[0].text == f"why {code} (lines.0.unit_price)"
    assert _statuses(_xml(response)) == [
        ("OPStatusReason", reason, f"why {code} (lines.0.unit_price)"),
        ("OPStatusAction", action, None),
    ]


@pytest.mark.parametrize(("code", "reason", "action"), HOLDS)
def test_every_hold_reason(code, reason, action):
    findings = ir.hold_findings([(code, "L2"), (code, "L1")])
    response = ir.issue(REF, ir.Status.UNDER_QUERY, "evt_cause", AT, findings)
    assert_valid(response.document)
    assert [(r.code, r.action, r.concord) for r in response.reasons] == [(reason, action, code)]
    assert response.reasons[0].text.endswith("(line L1, line L2)")
    codes = [(kind, value) for kind, value, _ in _statuses(_xml(response))]
    assert codes == [("OPStatusReason", reason), ("OPStatusAction", action)]


def test_several_hold_reasons_each_get_a_reason_and_an_action():
    findings = ir.hold_findings(
        [("qty_over_received", "L1"), ("price_mismatch", "L2"), ("missing_receipt", None)]
    )
    response = ir.issue(REF, ir.Status.UNDER_QUERY, "evt_cause", AT, findings)
    assert_valid(response.document)
    assert [r.concord for r in response.reasons] == ["missing_receipt", "price_mismatch", "qty_over_received"]
    assert len(_statuses(_xml(response))) == 6


def test_a_credit_note_is_referenced_as_381():
    response = ir.issue(
        ir.InvoiceRef("cn-1", "CN-7", REF.payee_id, REF.legal_entity, "credit_note"),
        ir.Status.ACCEPTED,
        "e",
        AT,
    )
    assert_valid(response.document)
    assert _text(_xml(response), "cac:DocumentResponse/cac:DocumentReference/cbc:DocumentTypeCode") == ["381"]


@pytest.mark.parametrize(
    ("payee_id", "legal_entity", "number"),
    [
        ("payee-17", REF.legal_entity, "INV-1"),  # a Concord payee id, not a Peppol identifier
        (REF.payee_id, "LE-EU", "INV-1"),
        ("0192:", REF.legal_entity, "INV-1"),
        ("GLN:7300010000001", REF.legal_entity, "INV-1"),
        (None, None, None),  # an unreadable UBL: nothing known but the invoice id
    ],
)
def test_no_document_when_a_party_is_not_a_peppol_id(payee_id, legal_entity, number):
    ref = ir.InvoiceRef("inv-9", number, payee_id, legal_entity)
    response = ir.issue(ref, ir.Status.REJECTED, "evt", AT, [ir.Finding("duplicate_invoice", "seen")])
    assert response.document is None
    assert response.status == "RE"
    assert [(r.code, r.action) for r in response.reasons] == [("OTH", "NOA")]


def test_text_xml_cannot_carry_is_replaced_not_fatal():
    finding = ir.Finding("invalid_characters", "supplier_invoice_number has \x00 and \x1b in it")
    response = ir.issue(REF, ir.Status.REJECTED, "evt", AT, [finding])
    assert_valid(response.document)
    assert "\ufffd and \ufffd" in response.document


def test_markup_in_text_is_escaped():
    finding = ir.Finding("missing_field", "<b>&amp;</b> ]]> and quotes \"'")
    response = ir.issue(REF, ir.Status.REJECTED, "evt", AT, [finding])
    assert_valid(response.document)
    assert _statuses(_xml(response))[0][2] == "<b>&amp;</b> ]]> and quotes \"'"


def test_the_response_id_is_derived_from_its_cause():
    one = ir.issue(REF, ir.Status.ACCEPTED, "evt_a", AT)
    assert (
        ir.issue(REF, ir.Status.ACCEPTED, "evt_a", datetime(2027, 1, 1, tzinfo=UTC)).response_id
        == one.response_id
    )
    assert ir.issue(REF, ir.Status.ACCEPTED, "evt_b", AT).response_id != one.response_id
    assert ir.issue(REF, ir.Status.PAID, "evt_a", AT).response_id != one.response_id
    other = ir.InvoiceRef("inv-2", "INV-2", REF.payee_id, REF.legal_entity)
    assert ir.issue(other, ir.Status.ACCEPTED, "evt_a", AT).response_id != one.response_id


@pytest.mark.parametrize("status", [ir.Status.REJECTED, ir.Status.UNDER_QUERY])
def test_rejected_or_under_query_without_a_reason_is_refused(status):
    with pytest.raises(ValueError, match="at least one reason"):
        ir.issue(REF, status, "evt", AT, [])


def test_the_event_is_on_its_topic_and_round_trips():
    response = ir.issue(REF, ir.Status.UNDER_QUERY, "evt", AT, ir.hold_findings([("awaiting_po", None)]))
    assert spec_of(response).type == "invoice_response.issued"
    assert spec_of(response).topic == OUT_INVOICE_RESPONSES
    assert OUT_INVOICE_RESPONSES in ALL_TOPICS
    wire = response.model_dump(mode="json", exclude_none=True)
    assert parse_data("invoice_response.issued", wire) == response
    assert wire["reasons"] == [
        {
            "code": "REF",
            "action": "PIN",
            "concord": "awaiting_po",
            "text": "The purchase order referenced has not been received by the buyer yet",
        }
    ]
