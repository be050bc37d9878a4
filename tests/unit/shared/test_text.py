"""The one text normaliser (SPEC §15 "Text"): NFC, the character rules by field, people, look-alikes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import text
from shared.contracts.inbound import PoFlipRequested, ReceiptRecorded


@pytest.mark.parametrize(
    ("value", "skeleton"),
    [
        ("paypal", "paypal"),
        ("\u0440\u0430ypal", "paypal"),  # Cyrillic р and а
        ("\u0406", "l"),  # CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I
        ("I", "l"),
        ("1", "l"),
        ("0", "O"),
        ("m", "rn"),  # a multi-character prototype
        ("\u2010", "-"),  # HYPHEN
        ("\u00e9", "e\u0301"),  # NFD on the way in and out
    ],
)
def test_skeleton_follows_the_unicode_confusables_data(value: str, skeleton: str) -> None:
    assert text.skeleton(value) == skeleton


def test_skeleton_is_stable() -> None:
    for value in ("INV-1-A", "\u0406NV\u20101", "rn m \u00e9"):
        once = text.skeleton(value)
        assert text.skeleton(once) == once


@pytest.mark.parametrize(
    ("value", "folded"),
    [
        ("INV\u20101", "INV-1"),  # HYPHEN
        ("INV\u20141", "INV-1"),  # EM DASH
        ("INV\u22121", "INV-1"),  # MINUS SIGN
        ("INV-\u200b1", "INV-1"),  # ZERO WIDTH SPACE
        ("\u202eINV-1", "INV-1"),  # RIGHT-TO-LEFT OVERRIDE
        ("\uff29\uff2e\uff36-\uff11", "INV-1"),  # full-width
    ],
)
def test_fold_lookalikes(value: str, folded: str) -> None:
    assert text.fold_lookalikes(value) == folded


def test_people_compare_case_insensitively() -> None:
    assert text.same_person("Buyer.Case@example.com", "buyer.case@EXAMPLE.com")
    assert text.same_person(" buyer@example.com", "buyer@example.com")
    assert not text.same_person("buyer@example.com", "buyer2@example.com")
    assert not text.same_person(None, "buyer@example.com")


@pytest.mark.parametrize(
    ("name", "identifier"),
    [
        ("invoice_id", True),
        ("po_line_id", True),
        ("po_number", True),
        ("legal_entity", True),
        ("approved_by", True),
        ("type", True),
        ("supplier_invoice_number", False),  # may contain spaces (SPEC §15)
        ("description", False),
        ("justification", False),
    ],
)
def test_which_fields_are_identifiers(name: str, identifier: bool) -> None:
    assert text.is_identifier_field(name) is identifier


@pytest.mark.parametrize(
    ("value", "identifier", "bad"),
    [
        ("PO-1", True, False),
        ("PO 1", True, True),
        ("PO-1\u200b", True, True),  # format
        ("PO-1\u00a0", True, True),  # no-break space
        ("PO-1\x00", True, True),
        ("two\twords\nand lines", False, False),
        ("a\rb", False, True),
        ("bell\x07", False, True),
        ("\x1b[31mred", False, True),
        ("zero\u200bwidth", False, False),  # free text may hold format characters
        ("lone \ud800 surrogate", False, True),
    ],
)
def test_character_rules(value: str, identifier: bool, bad: bool) -> None:
    _, problem = text.check_string(value, "f", identifier=identifier)
    assert (problem is not None) is bad
    if problem is not None:
        assert problem.code == "invalid_characters" and problem.field == "f" and "U+" in problem.message


def test_check_text_walks_models_names_fields_and_nfc_normalises() -> None:
    receipt = ReceiptRecorded.model_validate(
        {
            "receipt_id": "GR-1",
            "po_number": "PO-1",
            "kind": "goods_receipt",
            "received_at": "2026-03-01T10:00:00Z",
            "recorded_by": "Jose\u0301@example.com",
            "lines": [{"receipt_line_id": "R1", "po_line_id": "L1 ", "quantity": "1"}],
        }
    )
    clean, problems = text.check_text(receipt)
    assert [(p.field, p.code) for p in problems] == [("lines[0].po_line_id", "invalid_characters")]
    assert clean.recorded_by == "Jos\u00e9@example.com"
    assert receipt.recorded_by == "Jose\u0301@example.com"  # the input is not changed


def test_check_text_checks_mapping_keys_as_identifiers() -> None:
    flip = PoFlipRequested.model_validate(
        {"flip_id": "F1", "po_number": "PO-1", "line_quantities": {"L1\u200b": "1"}, "requested_by": "ops"}
    )
    _, problems = text.check_text(flip)
    assert [p.field for p in problems] == ["line_quantities.L1\u200b"]


def test_check_text_walks_dataclasses_and_skips_named_fields() -> None:
    @dataclass(frozen=True)
    class Doc:
        invoice_id: str
        document: str

    clean, problems = text.check_text(Doc("I\u0301", "<x>\r\n</x>"), skip=frozenset({"document"}))
    assert problems == [] and clean.invoice_id == "\u00cd"


# The ASCII fast path (most strings upstream sends) must answer exactly as the general path:
# the same normal form and the same problem, message included.
@given(st.text(alphabet=st.characters(max_codepoint=127)), st.booleans())
@settings(max_examples=500)
def test_ascii_fast_path_answers_as_the_general_path(value: str, identifier: bool) -> None:
    fast = text.check_string(value, "f", identifier=identifier)
    assert fast == text._check_any_string(value, "f", identifier=identifier)


@given(st.text(), st.booleans())
@settings(max_examples=300)
def test_any_string_answers_as_the_general_path(value: str, identifier: bool) -> None:
    assert text.check_string(value, "f", identifier=identifier) == text._check_any_string(
        value, "f", identifier=identifier
    )


def test_check_text_skips_values_that_hold_no_text_and_still_names_bad_fields() -> None:
    @dataclass(frozen=True)
    class Line:
        line_id: str
        quantity: Decimal
        note: str | None
        at: date

    clean = Line("L1", Decimal("2"), "ok", date(2026, 11, 30))
    assert text.check_text(clean) == (clean, [])
    bad, problems = text.check_text([clean, Line("L 2", Decimal("1"), "tab\tok\x07", date(2026, 1, 1))])
    assert [p.field for p in problems] == ["[1].line_id", "[1].note"]
    assert bad[0] is clean


def test_intake_reads_the_confusables_table_at_start_not_on_its_first_invoice() -> None:
    from services.intake.app import service
    from shared.settings import Settings
    from shared.text import _confusables

    _confusables.cache_clear()
    assert service.on_startup_hook is not None
    service.on_startup_hook(Settings())
    assert _confusables.cache_info().currsize == 1  # loaded by the start-up hook
    assert text.load_confusables() > 6000  # the whole UTS #39 table (Cyrillic, Greek, full-width, …)
    assert text.skeleton("І") == text.skeleton("I")  # Cyrillic І and Latin I, from the loaded table
