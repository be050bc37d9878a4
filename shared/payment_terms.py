"""Payment terms (SPEC §13.5), pure: what a PO's `payment_terms` text means. Shared because
payout_release pays by it and the ledger's trace and reconciliation show it.

Understood forms: `NET<n>` (due n days after the invoice's issue date), `<p>/<d> NET<n>` as in
`2/10 NET30` (p % off if paid within d days of issue, else due at n days; SPEC §13.5 names it
`<d>/<p>` but its example is the trade's percent-first form) and `DUE_ON_RECEIPT`. Anything else
— no terms, free text, a discount window longer than the net period — is due on receipt, and the
parsed terms say why (`note`), so the trace can show it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

_NET = re.compile(r"NET ?(\d{1,3})")
# Written as the trade writes it: `2/10 NET30` is 2 % off within 10 days (the SPEC's example),
# so the percent comes first and the window in days second.
_DISCOUNT_NET = re.compile(r"(\d{1,2}(?:\.\d{1,4})?)/(\d{1,3}) NET ?(\d{1,3})")
_HUNDRED = Decimal(100)


class TermsKind(StrEnum):
    NET = "net"
    DISCOUNT_NET = "discount_net"
    DUE_ON_RECEIPT = "due_on_receipt"


@dataclass(frozen=True)
class Terms:
    kind: TermsKind
    net_days: int = 0
    discount_days: int | None = None
    discount_percent: Decimal | None = None
    text: str | None = None  # as written on the PO
    note: str | None = None  # why text that did not parse counts as due on receipt


DUE_ON_RECEIPT = Terms(TermsKind.DUE_ON_RECEIPT, text="DUE_ON_RECEIPT")


def parse_terms(text: str | None) -> Terms:
    """A PO's payment_terms as the rules understand them. Whitespace around the text and the
    letter case are forgiven; anything else unreadable is due on receipt, with a note."""
    if text is None or not text.strip():
        return Terms(TermsKind.DUE_ON_RECEIPT, text=text, note="no payment terms: due on receipt")
    written = " ".join(text.split()).upper()
    if written == "DUE_ON_RECEIPT":
        return Terms(TermsKind.DUE_ON_RECEIPT, text=text)
    if m := _NET.fullmatch(written):
        return Terms(TermsKind.NET, net_days=int(m[1]), text=text)
    if m := _DISCOUNT_NET.fullmatch(written):
        percent, days, net = Decimal(m[1]), int(m[2]), int(m[3])
        if not 0 < percent < _HUNDRED:
            return _unreadable(text, "discount percent must be above 0 and below 100")
        if days > net:
            return _unreadable(text, "discount window longer than the net period")
        return Terms(TermsKind.DISCOUNT_NET, net, days, percent, text=text)
    return _unreadable(text, "not NET<n>, <p>/<d> NET<n> or DUE_ON_RECEIPT")


def _unreadable(text: str, why: str) -> Terms:
    return Terms(
        TermsKind.DUE_ON_RECEIPT,
        text=text,
        note=f"payment terms {text!r} not understood ({why}): due on receipt",
    )


def due_date(issue_date: date, terms: Terms) -> date:
    return issue_date + timedelta(days=terms.net_days)


def discount_window_end(issue_date: date, terms: Terms) -> date | None:
    """The last day of the early-payment window: paid within d days of the issue date."""
    if terms.kind is not TermsKind.DISCOUNT_NET or terms.discount_days is None:
        return None
    return issue_date + timedelta(days=terms.discount_days)
