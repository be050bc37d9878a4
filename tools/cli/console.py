"""One console for the CLI, and the one way it shows a stored string.

Tables stay readable when the output is piped to a file or CI log. Every string that came from
outside the CLI — an id, a justification, a deadletter error, anything a database or a topic
holds — is shown through `shown`: SPEC §15 "Operators" (a trace always renders). Rich would
otherwise read `[/bold]` in an override justification as markup (and crash on it with a
MarkupError), turn `:warning:` into an emoji, and pass an invoice id's ESC sequences straight to
the operator's terminal, where they can repaint the screen or forge lines of output.
"""

from __future__ import annotations

import os
import sys
import unicodedata

from rich.console import Console
from rich.text import Text

# Control (Cc: C0, DEL, C1 — ESC, CR, BEL…), format (Cf: bidi overrides, zero-width), line and
# paragraph separators, surrogates, private use and unassigned characters: none of them may reach
# the terminal as themselves. Newline and tab too: a stored value is one cell or one line.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=int(os.environ.get("COLUMNS", "132")))


def escaped(value: object) -> str:
    """`value` as text with every invisible or terminal-controlling character written out as a
    visible escape (ESC → `\\x1b`, U+202E → `\\u202e`); None is the empty string."""
    if value is None:
        return ""
    text = str(value)
    return "".join(_escape(ch) if unicodedata.category(ch) in _HIDDEN_CATEGORIES else ch for ch in text)


def shown(value: object) -> Text:
    """A stored value as the operator sees it: `escaped`, and a plain Text, so rich never reads
    it as markup or emoji codes and never highlights it."""
    return Text(escaped(value))


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
