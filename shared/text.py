"""One text normaliser for everything Concord reads from upstream (SPEC §15 "Text").

- Every string is NFC-normalised, so the same text always has the same code points (what is
  stored, compared, hashed and published).
- Identifier fields (ids, references, codes and the people who act) may not contain control,
  format (zero-width, bidi) or whitespace characters: such a value looks like another one on
  every screen and compares unequal in every database. Any other text may not contain control
  characters other than tab and newline. Lone surrogates, which no database can store, count as
  control characters. A violation is reported as a `TextProblem` naming the field.
- People are compared by `person_key` (case-insensitive) wherever one person must differ from
  another (segregation of duties, SPEC §5, §6).
- Supplier invoice numbers are folded for duplicate detection by `fold_lookalikes` and the
  UTS #39 confusables `skeleton` (see `shared/unicode_data/confusables.txt`).

Pure functions; no I/O beyond reading the confusables table once.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from pydantic import BaseModel

T = TypeVar("T")

INVALID_CHARACTERS = "invalid_characters"

# Field names (the last part of a field's path) that hold identifiers. Besides these, every
# name ending in `_id` (invoice_id, po_line_id, modification_id…) or `_by` (created_by,
# approved_by…: a person is identified by that string, and a zero-width character in it would
# make two spellings of one person look like two people), and the keys of a mapping
# (`line_quantities`: PO line ids). Decided from the inbound models of SPEC §3.
IDENTIFIER_FIELDS = frozenset(
    {
        "id",  # sow_ref.id
        "po_number",
        "legal_entity",
        "business_unit",
        "currency",
        "category",
        "item_ref",
        "type",  # a charge type, compared with the PO's allowed types
        "kind",
        "document_type",
        "match_mode",
    }
)
# Free text that may span lines keeps these control characters.
_ALLOWED_CONTROLS = frozenset("\t\n")


def is_identifier_field(name: str) -> bool:
    return name in IDENTIFIER_FIELDS or name.endswith(("_id", "_by"))


@dataclass(frozen=True)
class TextProblem:
    field: str
    message: str
    code: str = INVALID_CHARACTERS


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


def _bad_in_identifier(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category in ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp") or ch.isspace()


def _bad_in_text(ch: str) -> bool:
    category = unicodedata.category(ch)
    return (category == "Cc" and ch not in _ALLOWED_CONTROLS) or category == "Cs"


# The ASCII characters each kind of field may not hold, decided by the same predicates as any
# other character: an ASCII string is its own NFC form, so one search tells whether it is clean.
def _ascii_where(bad: Callable[[str], bool]) -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(chr(c)) for c in range(128) if bad(chr(c))) + "]")


_ASCII_BAD_IN_IDENTIFIER = _ascii_where(_bad_in_identifier)
_ASCII_BAD_IN_TEXT = _ascii_where(_bad_in_text)


def _clean_ascii(value: str, identifier: bool) -> bool:
    """ASCII and free of what its field may not hold: already NFC, nothing to report."""
    bad = _ASCII_BAD_IN_IDENTIFIER if identifier else _ASCII_BAD_IN_TEXT
    return value.isascii() and bad.search(value) is None


def check_string(value: str, field: str, *, identifier: bool) -> tuple[str, TextProblem | None]:
    """The NFC form of `value`, and the problem with it if it holds characters its field may not."""
    # Fast path (nearly every string upstream sends): ASCII needs no normalising, and a clean
    # one no per-character walk. Anything else, or an ASCII string with a bad character (for
    # the message), takes the general path below.
    if _clean_ascii(value, identifier):
        return value, None
    return _check_any_string(value, field, identifier=identifier)


def _check_any_string(value: str, field: str, *, identifier: bool) -> tuple[str, TextProblem | None]:
    try:
        normal = unicodedata.normalize("NFC", value)
    except UnicodeError:  # pragma: no cover - normalize copes with surrogates; belt and braces
        normal = value
    bad = _bad_in_identifier if identifier else _bad_in_text
    offending = sorted({ch for ch in normal if bad(ch)})
    if not offending:
        return normal, None
    what = "an identifier may not contain" if identifier else "text may not contain"
    listed = ", ".join(_describe(ch) for ch in offending[:5])
    more = f" and {len(offending) - 5} more" if len(offending) > 5 else ""
    kinds = "control, format or whitespace characters" if identifier else "control characters"
    return normal, TextProblem(field, f"{what} {kinds}: {listed}{more}")


def check_text(value: T, *, skip: frozenset[str] = frozenset()) -> tuple[T, list[TextProblem]]:
    """Walk a payload (pydantic models, dataclasses, mappings, sequences, strings) and return it
    with every string NFC-normalised, plus every problem found (field paths like
    `lines[0].line_id`). Top-level fields named in `skip` are left as they are (a UBL document
    is checked after parsing, not as XML text). The input is not changed."""
    walker = _Walker()
    return walker.walk(value, "", "", skip), walker.problems


# Values that hold no text (exact types: a str subclass or an enum is still walked).
_SCALARS = frozenset({bool, int, float, Decimal, date, datetime})


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# Each class's fields with whether each holds an identifier, worked out once per class (every
# inbound document is walked, field by field: 2,500 name checks per 300 documents).
@cache
def _model_fields(cls: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    return tuple((name, is_identifier_field(name)) for name in cls.model_fields)


@cache
def _dataclass_fields(cls: type) -> tuple[tuple[str, bool], ...]:
    return tuple((f.name, is_identifier_field(f.name)) for f in dataclasses.fields(cls))


class _Walker:
    def __init__(self) -> None:
        self.problems: list[TextProblem] = []

    def walk(self, value: Any, path: str, name: str, skip: frozenset[str] = frozenset()) -> Any:
        """`name` is the field the value belongs to (list items belong to their list's field):
        it decides whether the value is an identifier."""
        if value is None or type(value) in _SCALARS:  # nothing to walk: most fields of a document
            return value
        if isinstance(value, str):
            return self._string(value, path or name, is_identifier_field(name))
        if isinstance(value, BaseModel):
            updates = self._fields(value, _model_fields(type(value)), path, skip)
            return value.model_copy(update=updates) if updates else value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = self._fields(value, _dataclass_fields(type(value)), path, skip)
            return dataclasses.replace(value, **changes) if changes else value
        if isinstance(value, Mapping):
            return self._mapping(value, path)
        if isinstance(value, list | tuple):
            items = [self.walk(v, f"{path}[{i}]", name) for i, v in enumerate(value)]
            unchanged = all(a is b for a, b in zip(items, value, strict=True))
            return value if unchanged else type(value)(items)
        return value

    def _string(self, value: str, field: str, identifier: bool) -> str:
        normal, problem = check_string(value, field, identifier=identifier)
        if problem is not None:
            self.problems.append(problem)
        return normal

    def _fields(
        self, obj: Any, names: tuple[tuple[str, bool], ...], path: str, skip: frozenset[str]
    ) -> dict[str, Any]:
        changes = {}
        for field_name, identifier in names:
            if field_name in skip:
                continue
            old = getattr(obj, field_name)
            if old is None or type(old) in _SCALARS:
                continue
            if type(old) is str and _clean_ascii(old, identifier):
                continue  # unchanged, no problem: no path to spell out
            new = self.walk(old, _join(path, field_name), field_name)
            if new is not old:
                changes[field_name] = new
        return changes

    def _mapping(self, value: Mapping[Any, Any], path: str) -> Mapping[Any, Any]:
        # The keys of a mapping in a document are ids (`line_quantities`: PO line ids).
        out = {}
        for key, item in value.items():
            where = _join(path, str(key))
            new_key = self._string(key, where, identifier=True) if isinstance(key, str) else key
            out[new_key] = self.walk(item, where, str(key))
        return value if out == value else out


# --- people ----------------------------------------------------------------------------------


def person_key(person: str) -> str:
    """The identity of a person as compared for segregation of duties: `Buyer.Case@x` and
    `buyer.case@x` are one person (e-mail addresses are case-insensitive in practice)."""
    return unicodedata.normalize("NFKC", person).strip().casefold()


def same_person(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return person_key(a) == person_key(b)


# --- look-alikes -----------------------------------------------------------------------------

# Unicode dashes (general category Pd) plus the minus signs, which are Sm.
_MINUS_SIGNS = frozenset("\u2212\u2796\ufe63\uff0d")


def _is_dash(ch: str) -> bool:
    return unicodedata.category(ch) == "Pd" or ch in _MINUS_SIGNS


def fold_lookalikes(text: str) -> str:
    """SPEC §15: NFKC (full-width digits → ASCII digits, ligatures apart), format characters
    (zero-width space, joiners, bidi marks) removed, every Unicode dash → `-`."""
    compatible = unicodedata.normalize("NFKC", text)
    return "".join("-" if _is_dash(ch) else ch for ch in compatible if unicodedata.category(ch) != "Cf")


@cache
def _confusables() -> dict[str, str]:
    """source character → prototype string, from the Unicode confusables data (UTS #39 §4)."""
    out: dict[str, str] = {}
    data = resources.files("shared.unicode_data").joinpath("confusables.txt").read_text(encoding="utf-8-sig")
    for line in data.splitlines():
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        source, target, *_ = (part.strip() for part in body.split(";"))
        out[chr(int(source, 16))] = "".join(chr(int(cp, 16)) for cp in target.split())
    return out


def load_confusables() -> int:
    """Reads the confusables table now (once per process; cached): a service that folds
    look-alikes calls it at start. Returns how many characters it maps."""
    return len(_confusables())


def skeleton(text: str) -> str:
    """UTS #39 §4: skeleton(X) = NFD(X) with every character replaced by its prototype, then NFD
    again. Two strings are confusable exactly when their skeletons are equal. Not for display."""
    table = _confusables()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", "".join(table.get(ch, ch) for ch in decomposed))
