"""The CLI shows every stored string escaped: no markup read, no terminal control passed on
(SPEC §15 "Operators")."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from tools.cli import views
from tools.cli.console import escaped
from tools.cli.dlq import DeadLetterEntry
from tools.cli.readers import OpenHoldRow

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HOSTILE = "INV-\x1b[2J\x1b[31mEVIL\x1b]0;pwned\x07 [/bold] [red]x[/red] :warning: \u202eRTL\r\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("INV-1", "INV-1"),
        (None, ""),
        (42, "42"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\r\nb\tc\x00", "a\\x0d\\x0ab\\x09c\\x00"),
        ("\x9b31m", "\\x9b31m"),  # the 8-bit CSI
        ("\u202eabc\u200b", "\\u202eabc\\u200b"),  # bidi override, zero-width space
        ("[/bold] :warning: ünïcödé ✓", "[/bold] :warning: ünïcödé ✓"),  # markup is shown, not read
    ],
)
def test_escaped_makes_every_invisible_character_visible(value: object, expected: str) -> None:
    assert escaped(value) == expected


def render(print_fn: object, *args: object) -> str:
    out = io.StringIO()
    print_fn(Console(file=out, width=400), *args)  # type: ignore[operator]
    return out.getvalue()


def assert_safely_shown(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\u202e" not in text
    assert "INV-\\x1b[2J\\x1b[31mEVIL\\x1b]0;pwned\\x07 [/bold] [red]x[/red] :warning: \\u202eRTL" in text


def test_holds_list_shows_stored_text_escaped() -> None:
    hold = OpenHoldRow(
        hold_id="H-1",
        invoice_id=HOSTILE,
        po_number="[bold]PO",
        line_id=None,
        reason="price_mismatch",
        queue="ap",
        owner=HOSTILE,
        opened_at=NOW - timedelta(days=2),
        due_by=NOW,
        escalated=False,
        next_action="[/]",
    )
    text = render(views.print_holds, [hold], NOW)
    assert_safely_shown(text)
    assert "[bold]PO" in text and "[/]" in text


def test_deadletter_list_shows_stored_text_escaped() -> None:
    entry = DeadLetterEntry(
        event_id="evt_1",
        occurred_at="2026-11-21T12:00:00Z",
        origin={"topic": "concord.in.invoices", "partition": 0, "offset": 7, "key": HOSTILE},
        error=f"invalid invoice.submitted data: invoice_id: {HOSTILE}",
        value=b"",
        headers={},
    )
    assert_safely_shown(render(views.print_deadletters, [entry], 50))
