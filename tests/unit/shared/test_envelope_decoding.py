"""decode_envelope parses at C speed, yet refuses exactly what the strict parser refuses (SPEC §15):
a repeated key anywhere, NaN/Infinity, bytes that are not UTF-8, JSON that is not JSON."""

from __future__ import annotations

import hashlib
import json
import math
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import PydanticSerializationError

from shared.envelope import (
    _SLOW,
    UndecodableEnvelope,
    _fast_json,
    _strict_json,
    canonical_json,
    decode_envelope,
    derived_event_id,
    envelope_json,
    new_envelope,
    new_event_id,
    payload_fingerprint,
    uuid5_hex,
    uuid5_str,
)


def _value(data_json: str) -> bytes:
    head = new_envelope("invoice.submitted", {}, source="test").model_dump_json()
    return head.replace('"data":{}', f'"data":{data_json}').encode()


def _reason(value: bytes) -> str:
    with pytest.raises(UndecodableEnvelope) as refused:
        decode_envelope(value)
    return refused.value.reason


@pytest.mark.parametrize(
    "data",
    [
        '{"amount":"1.00","amount":"1000.00"}',
        '{"a":"x:y","a":"z"}',  # the dropped value holds a colon
        '{"a":"z","a":"x:y"}',  # the kept one does
        '{"lines":[{"n":1,"q":"2"},{"n":2,"n":3}]}',  # nested, in a list
        '{"a" : "1" , "a" : "2"}',  # spaces around the colon
        '{"a:b":"1","a:b":"2"}',  # a key that holds a colon
        '{"a":"1","\\u0061":"2"}',  # the same key spelt with an escape
        '{"a":"\\u003a","a":"\\u003A"}',  # colons spelt as escapes
    ],
)
def test_a_repeated_key_anywhere_is_refused(data: str) -> None:
    assert _reason(_value(data)) == "duplicate_json_key"


def test_a_repeated_envelope_field_is_refused() -> None:
    value = _value("{}").replace(b'"event_type":', b'"event_type":"x","event_type":', 1)
    assert _reason(value) == "duplicate_json_key"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b'{"a":NaN}', "Invalid JSON"),
        (b'{"a":Infinity}', "Invalid JSON"),
        (b'{"a":"\xff"}', "value is not UTF-8 (byte 6)"),
        (b'{"a":1} x', "Invalid JSON"),
        (b"[" * 5000 + b"]" * 5000, "Invalid JSON"),
    ],
)
def test_what_is_not_json_is_refused_with_the_strict_parsers_message(value: bytes, message: str) -> None:
    with pytest.raises(UndecodableEnvelope) as refused:
        decode_envelope(value)
    assert refused.value.reason == "invalid_envelope"
    assert message in str(refused.value)


def test_what_only_the_strict_parser_reads_still_decodes() -> None:
    """Lone surrogates, colons spelt as escapes: the fast parser steps aside, nothing is refused
    that the strict parser accepted before."""
    env = decode_envelope(_value('{"note":"\\ud800","t":"12\\u003a00"}'))
    assert env.data == {"note": "\ud800", "t": "12:00"}


def test_a_well_formed_envelope_takes_the_fast_path() -> None:
    value = _value('{"invoice_id":"INV-1","at":"2026-01-01T10:00:00+00:00","lines":[{"q":"1"}]}')
    assert _fast_json(value) == json.loads(value)
    assert decode_envelope(value).data["at"] == "2026-01-01T10:00:00+00:00"


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_keys = st.sampled_from(["a", "b", "a:b", ":", "é", "\\u0061", "\\u003a", " "])


@st.composite
def _json_texts(draw: Any, depth: int = 0) -> str:
    """JSON text written by hand, so a key can repeat and keys or strings hold colons/escapes."""
    if depth > 2 or draw(st.booleans()):
        scalar = draw(_scalars)
        return json.dumps(scalar, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        items = draw(st.lists(_json_texts(depth + 1), max_size=3))
        return "[" + ",".join(items) + "]"
    pairs = draw(st.lists(st.tuples(_keys, _json_texts(depth + 1)), max_size=4))
    sep = draw(st.sampled_from([":", " : ", ":\n"]))
    return "{" + ",".join(f'"{k}"{sep}{v}' for k, v in pairs) + "}"


def _strict_or_reason(value: bytes) -> Any:
    try:
        return ("ok", _strict_json(value))
    except UndecodableEnvelope as exc:
        return ("refused", exc.reason)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json_texts())
def test_the_fast_parser_agrees_with_the_strict_one(text: str) -> None:
    value = text.encode("utf-8", "surrogatepass")
    fast = _fast_json(value)
    strict = _strict_or_reason(value)
    if fast is not _SLOW:
        # Whatever the fast path returns, the strict parser returns too, equal (no duplicate hidden).
        assert strict == ("ok", fast)


def test_the_fingerprint_ignores_key_order_and_spacing_and_sees_any_change() -> None:
    a = decode_envelope(_value('{"x":"1","y":[1,2.5,{"z":null}]}'))
    b = decode_envelope(_value('{ "y" : [1, 2.5, {"z": null}], "x" : "1" }'))
    c = decode_envelope(_value('{"x":"1","y":[1,2.5,{"z":0}]}'))
    assert payload_fingerprint(a) == payload_fingerprint(b) != payload_fingerprint(c)


@given(st.lists(st.text(max_size=12), max_size=4))
def test_derived_event_ids_are_the_uuid5_ids_written_before(parts: list[str]) -> None:
    """Deterministic ids are how a re-run step is recognised downstream: the faster derivation
    must give the ids the uuid module gave, or a step re-run across an upgrade would emit twice."""
    name = "concord:" + "|".join(parts)
    try:
        expected = "evt_" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            derived_event_id(*parts)
        return
    assert derived_event_id(*parts) == expected


def test_the_fingerprint_hashes_the_canonical_json_inbox_rows_were_written_with() -> None:
    env = decode_envelope(_value('{"b":"é\\u0000","a":[1.5,1e+16,null,true],"c":{"z":"\\ud800"}}'))
    canonical = json.dumps(
        {"event_type": env.event_type, "schema_version": env.schema_version, "data": env.data},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    expected = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    assert payload_fingerprint(env) == expected


@given(st.uuids(), st.text(max_size=40))
def test_uuid5_ids_are_the_uuid_modules(namespace: uuid.UUID, name: str) -> None:
    """Journal entry ids, payout ids and Invoice Response ids are derived this way: the same
    inputs must give the ids the uuid module gave, or a re-run would post, pay or answer twice."""
    try:
        expected = uuid.uuid5(namespace, name)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            uuid5_hex(namespace, name)
        return
    assert uuid5_hex(namespace, name) == expected.hex
    assert uuid5_str(namespace, name) == str(expected)


def _stdlib_form(value: Any) -> bytes | type[BaseException]:
    """What the inbox's fingerprints were written with before orjson: json.dumps' canonical form."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return type(exc)
    return text.encode("utf-8", "surrogatepass")


def _canonical_or_error(value: Any) -> bytes | type[BaseException]:
    try:
        return canonical_json(value)
    except (TypeError, ValueError, RecursionError) as exc:
        return type(exc)


# Everything a record's value can decode to, including what orjson cannot write (lone
# surrogates, integers past 64 bits) or writes otherwise (small floats).
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1e-12, max_value=1e-3)
    | st.text()
    | st.text(st.characters(codec=None, blacklist_categories=()))
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(_json_values)
def test_the_fast_canonical_form_is_the_one_inbox_rows_were_written_with(value: Any) -> None:
    """A redelivery across the upgrade must hash as before, or it would read as event_id_conflict."""
    assert _canonical_or_error({"data": value, "event_type": "x.y", "schema_version": 1}) == _stdlib_form(
        {"data": value, "event_type": "x.y", "schema_version": 1}
    )


@pytest.mark.parametrize("exponent", range(-330, 309))
@pytest.mark.parametrize("mantissa", [1.0, 1.5, -2.25, 9.999999999999998, 1.2345678901234567])
def test_every_float_magnitude_has_the_canonical_spelling(mantissa: float, exponent: int) -> None:
    value = mantissa * 10.0**exponent
    if math.isinf(value):
        return  # decode_envelope refuses Infinity and NaN: never fingerprinted
    assert canonical_json([value, {"k": value}]) == _stdlib_form([value, {"k": value}])


@pytest.mark.parametrize(
    "value",
    [
        {"s": "\ud800"},  # a lone surrogate: orjson refuses, the stdlib writes it
        {"n": 2**64},  # past 64 bits
        {"n": -(2**63) - 1},
        {"f": 1e-05, "g": 5.5e-07},  # orjson spells these otherwise
        {"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
        {"b": True, "n": None, "e": 'é\u2028\x00\x7f"\\', "z": 1e16},
        {"looks like a small float": ["line-1", "2e-5", "x0.00001", 3e-7, 12.5]},
        {"key ordering": {"b": 1, "a": 2, "é": 3, "\U0001f600": 4, "\uffff": 5, "A": 6}},
    ],
)
def test_what_orjson_cannot_write_alike_is_written_by_the_stdlib(value: dict[str, Any]) -> None:
    assert canonical_json(value) == _stdlib_form(value)


def test_nesting_deeper_than_orjson_allows_still_hashes_as_before() -> None:
    value: Any = 0
    for _ in range(400):
        value = [value]
    assert canonical_json(value) == _stdlib_form(value)


_tz = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)), ZoneInfo("UTC")]
)
_emitted_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.dates()
    | st.datetimes(timezones=st.none() | _tz),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=8), _emitted_values, max_size=4), st.datetimes(timezones=_tz))
def test_the_outbox_bytes_are_pydantics_byte_for_byte(data: dict[str, Any], occurred_at: datetime) -> None:
    """What a handler emits (its data dumped in JSON mode, or a dict it built: amounts as Decimal,
    times with any offset, integers past 64 bits, lone surrogates) is written as pydantic writes
    it, whichever serialiser wrote it."""
    env = new_envelope("invoice.held", data, source="test", occurred_at=occurred_at)
    assert envelope_json(env) == env.model_dump_json().encode()


def test_a_lone_surrogate_in_emitted_data_fails_as_pydantic_fails() -> None:
    env = new_envelope("invoice.held", {"s": "\ud800", "n": 2**65}, source="test")
    with pytest.raises(PydanticSerializationError):
        env.model_dump_json()
    with pytest.raises(PydanticSerializationError):
        envelope_json(env)


def test_new_event_ids_are_random_version_4_uuids() -> None:
    ids = {new_event_id() for _ in range(1000)}
    assert len(ids) == 1000
    for event_id in ids:
        assert event_id.startswith("evt_") and len(event_id) == 36
        as_uuid = uuid.UUID(event_id[4:])
        assert as_uuid.version == 4 and as_uuid.variant == uuid.RFC_4122


def test_the_outbox_bytes_take_their_own_size_in_memory() -> None:
    """A relay holds thousands of values while it catches up: each must cost about its length,
    not the serialiser's working buffer (orjson's is 8 KiB for an 850-byte envelope)."""
    data = {"invoice_id": "INV-1", "lines": [{"line_id": str(n), "amount": "10.00"} for n in range(12)]}
    envelopes = [new_envelope("invoice.held", data, source="test") for _ in range(200)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        values = [envelope_json(env) for env in envelopes]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    length = len(values[0])
    assert 500 < length < 2000
    assert held / len(values) < 1.5 * length + 200
