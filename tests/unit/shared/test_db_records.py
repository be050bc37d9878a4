"""Records that return several tables' rows in one statement: jsonb columns travel as text (asyncpg
decodes no composite holding a text-format type) and are decoded as the pools' codec would."""

from __future__ import annotations

import json
from datetime import UTC, datetime

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
