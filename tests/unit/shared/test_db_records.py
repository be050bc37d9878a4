"""Records that return several tables' rows in one statement: jsonb columns travel as text (asyncpg
decodes no composite holding a text-format type) and are decoded as the pools' codec would."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from shared.db import loads_jsonb, record_values, text_columns


def test_only_the_jsonb_columns_are_cast() -> None:
    assert text_columns(("id", "state", "at"), {"state"}) == "id, state::text, at"


def test_a_record_comes_back_by_name_with_its_jsonb_decoded() -> None:
    at = datetime(2026, 12, 2, tzinfo=UTC)
    values = record_values(
        ("id", "state", "at", "note"), {"state", "note"}, ("PO-1", '{"lines": [1]}', at, None)
    )
    assert values == {"id": "PO-1", "state": {"lines": [1]}, "at": at, "note": None}


def test_an_integer_past_64_bits_stays_exact() -> None:
    # orjson would read it as a float, silently

    text = '{"n": 123456789012345678901234567890, "x": 1.5, "s": "\\u00e9"}'
    assert loads_jsonb(text) == json.loads(text)
    assert loads_jsonb("[1, 2.0, null]") == [1, 2.0, None]


def test_nesting_deeper_than_the_fast_parser_reads_is_still_decoded() -> None:
    # An envelope the strict parser accepted may be stored this deep; reading it back must not fail.
    text = "[" * 400 + "1" + "]" * 400
    value = loads_jsonb(text)
    for _ in range(400):
        value = value[0]
    assert value == 1


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(_json_values)
def test_the_codec_reads_what_json_loads_reads(value: object) -> None:
    """As PostgreSQL writes jsonb (`, ` and `: ` between items) and compactly: the same values, of
    the same types, as the stdlib parser the codec used before."""
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, separators=(",", ":"))):
        decoded = loads_jsonb(text)
        assert decoded == json.loads(text)
        assert repr(decoded) == repr(json.loads(text))  # 1 and 1.0, -0.0 and 0.0 told apart
