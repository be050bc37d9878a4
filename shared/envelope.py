"""The v1 envelope (SPEC §2): every record on every concord.* topic is one of these."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

SCHEMA_VERSION = 1
# A Kafka header on the internal topics (shared.topics.INTERNAL_TOPICS): the record's event_type,
# set by Concord's own producers, read before the value is decoded (not part of the public contract).
EVENT_TYPE_HEADER = "concord-event-type"


def event_type_hints(headers: Iterable[tuple[str, bytes | None]]) -> tuple[str, ...]:
    """The values of a record's `concord-event-type` headers, decoded: the consumer's parse checks
    them against the envelope, and a reader that wants only some types passes a record over by them."""
    return tuple(v.decode("utf-8", "replace") for k, v in headers if k == EVENT_TYPE_HEADER and v is not None)


class Envelope(BaseModel):
    """Unknown extra fields are ignored (SPEC §3), so upstream can add fields safely."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(min_length=1, max_length=128)
    event_type: str = Field(min_length=1, max_length=128)
    schema_version: int
    occurred_at: AwareDatetime
    source: str = Field(min_length=1, max_length=256)
    correlation_id: str | None = Field(default=None, max_length=256)
    causation_id: str | None = Field(default=None, max_length=256)
    data: dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> str:
    """`evt_` and a random (version 4) UUID's hex, as `uuid.uuid4().hex` writes it, without
    building a UUID (2.9 → 1.6 µs; one per event emitted)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return "evt_" + raw.hex()


def derived_event_id(*parts: str) -> str:
    """A deterministic id: re-running the same step after a crash yields the same event id,
    so downstream dedupe recognises it even if the first attempt reached the outbox."""
    return "evt_" + uuid5_hex(uuid.NAMESPACE_URL, "concord:" + "|".join(parts))


def uuid5_hex(namespace: uuid.UUID, name: str) -> str:
    """`uuid.uuid5(namespace, name).hex`, byte for byte, without building a UUID (4.8 → 1.5 µs):
    SHA-1, then the version 5 and RFC 4122 variant bits. Ids already written must come out the
    same, or a step re-run across an upgrade would emit twice; tests compare the two."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


def uuid5_str(namespace: uuid.UUID, name: str) -> str:
    """`str(uuid.uuid5(namespace, name))`: the hex in 8-4-4-4-12 groups."""
    h = uuid5_hex(namespace, name)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_envelope(
    event_type: str,
    data: dict[str, Any],
    *,
    source: str,
    cause: Envelope | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """An outgoing envelope; keeps the upstream correlation id and names its cause (SPEC §2)."""
    return Envelope(
        event_id=event_id or new_event_id(),
        event_type=event_type,
        schema_version=SCHEMA_VERSION,
        occurred_at=occurred_at or utcnow(),
        source=source,
        correlation_id=(cause.correlation_id or cause.event_id) if cause else None,
        causation_id=cause.event_id if cause else None,
        data=data,
    )


def envelope_json(envelope: Envelope) -> bytes:
    """`envelope.model_dump_json()` as bytes, byte for byte, at orjson's speed (7 → 2 µs for one
    of intake's events; one per event emitted). The fields are written in the model's order, as
    pydantic writes them, and a UTC time ends in `Z`, as pydantic writes it; anything in `data`
    orjson would not write as pydantic does (a Decimal, an integer past 64 bits, a lone
    surrogate, a non-string key) makes it refuse, and pydantic writes the whole envelope. A unit
    test holds the two to each other.

    Copied into a bytes object of its own size (0.3 µs): orjson returns its whole working buffer,
    8 KiB for an 850-byte envelope, and a relay holds thousands of these while it catches up (intake
    peaked at 161 MiB in `make bench` with orjson's buffers kept, against ≤ 138 before)."""
    try:
        return bytes(memoryview(orjson.dumps(envelope.__dict__, option=orjson.OPT_UTC_Z)))
    except TypeError:  # orjson.JSONEncodeError
        return envelope.model_dump_json().encode()


class UndecodableEnvelope(ValueError):
    """A record value that is not one unambiguous v1 envelope; `reason` is its deadletter code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # rare: find which key, for the error
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_envelope(value: bytes) -> Envelope:
    """The one way a record's value becomes an envelope (SPEC §2, §15).

    Strict UTF-8, strict JSON (no NaN/Infinity), and no object anywhere in it may repeat a key:
    a parser that lets the last value win would let a sender show one amount to a reviewer and
    have another paid (`duplicate_json_key`). Raises UndecodableEnvelope.
    """
    obj = _fast_json(value)
    if obj is _SLOW:
        obj = _strict_json(value)
    try:
        return Envelope.model_validate(obj)
    except ValidationError as exc:
        raise UndecodableEnvelope(
            "invalid_envelope",
            "invalid envelope: "
            + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:10]
            ),
        ) from None


_SLOW: Any = object()


def _fast_json(value: bytes) -> Any:
    """The value parsed at C speed (pydantic-core's parser), or _SLOW when the strict parser must
    decide: anything the fast parser refuses (invalid UTF-8 or JSON, NaN, lone surrogates, deep
    nesting) and any value that may repeat a key. The fast parser lets the last value win, so the
    keys are counted: every key is followed by exactly one `:` outside strings, so the colons of
    the raw value minus those inside its strings are the keys it wrote. Re-serialised, the parsed
    value has one colon per key it kept plus the same colons inside strings — unless the raw value
    spelt a colon as an escape (`\\u003a`), then the strict parser decides. Equal counts: no key
    was dropped, so none was repeated."""
    if b"\\u003" in value:
        return _SLOW
    try:
        obj = from_json(value, allow_inf_nan=False)
        # orjson re-serialises in half of pydantic-core's time; what it cannot write (integers
        # past 64 bits, lone surrogates, deep nesting) the strict parser decides.
        if value.count(b":") != orjson.dumps(obj).count(b":"):
            return _SLOW
    except (ValueError, TypeError):  # orjson.JSONEncodeError is a TypeError
        return _SLOW
    return obj


def _strict_json(value: bytes) -> Any:
    """The stdlib parser with a duplicate-key hook: slow, exact, and the source of every error."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UndecodableEnvelope(
            "invalid_envelope", f"invalid envelope: value is not UTF-8 (byte {exc.start})"
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise UndecodableEnvelope("duplicate_json_key", f"duplicate JSON key {str(exc)[:200]!r}") from None
    except (ValueError, RecursionError) as exc:
        raise UndecodableEnvelope(
            "invalid_envelope", f"invalid envelope: value: Invalid JSON: {exc}"
        ) from None


def payload_fingerprint(envelope: Envelope) -> str:
    """What an event_id stands for, for the inbox (SPEC §15 `event_id_conflict`): its type, schema
    version and data as canonical JSON (sorted keys, no whitespace), hashed.

    Semantic, not byte-for-byte: a sender that re-serialises the same event (other key order,
    other spacing) or re-stamps its envelope (`occurred_at`, `source`, correlation) is still
    redelivering it; any change to what the event says is a conflict."""
    canonical = canonical_json(
        {"event_type": envelope.event_type, "schema_version": envelope.schema_version, "data": envelope.data}
    )
    return hashlib.sha256(canonical).hexdigest()


def canonical_json(value: Any) -> bytes:
    """`json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` as UTF-8
    (lone surrogates passed through), byte for byte: the inbox compares fingerprints with those
    of rows written before, so a redelivery across an upgrade must hash the same.

    orjson writes that form at C speed (2 against 17 µs for one of matching's records) for what a
    record decodes to — dicts, lists, str, int, float, bool, None — except in three places, where
    the stdlib encoder decides instead: orjson refuses what it cannot write (integers beyond 64
    bits, lone surrogates, nesting past 255, any other type), and it spells floats of magnitude
    1e-5…1e-9 otherwise (`0.00001` for `1e-05`, `1e-7` for `1e-07`), which `_repr_differs` finds
    in its output (a string holding such a spelling only costs the slow path). NaN and Infinity
    (orjson: `null`) never get here: decode_envelope refuses them. Hypothesis tests hold the two
    to each other (tests/unit/shared/test_envelope_decoding.py)."""
    try:
        out = orjson.dumps(value, option=_ORJSON_CANONICAL)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _stdlib_canonical(value)
    if _repr_differs(out):
        return _stdlib_canonical(value)
    return out


def _repr_differs(out: bytes) -> bool:
    """Whether orjson's output may hold a float it spells unlike repr(): 1e-05…9.9e-05 as
    `0.0000…`, 1e-06…1e-09 with a one-digit exponent (repr: `e-06`); found by comparing the two
    over millions of floats. (A search for a literal first: a pattern opening with a character
    class scans at 8 µs per record.)"""
    if b"0.0000" in out:
        return True
    return any(out[m.start() - 1 : m.start()].isdigit() for m in _ONE_DIGIT_EXPONENT.finditer(out))


def _stdlib_canonical(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode("utf-8", "surrogatepass")


# json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) builds this encoder on every
# call; made once, the bytes are the same (inbox rows written before must still compare equal).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# Datetimes, dataclasses and subclasses of str, int, dict or list go to the stdlib encoder too,
# so both refuse or write them alike. (orjson would still write a UUID or a plain Enum, which
# json.dumps refuses: neither is in a decoded record, the only thing fingerprinted.)
_ORJSON_CANONICAL = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_ONE_DIGIT_EXPONENT = re.compile(rb"e-[0-9](?![0-9])")
