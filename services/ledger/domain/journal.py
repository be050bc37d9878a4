"""The journal's vocabulary (SPEC §9): accounts, lines, entries that refuse to exist unbalanced.

Pure: dataclasses and functions, Decimal only, no I/O. An `Entry` checks when it is built that its
lines balance per currency, so an unbalanced entry can never reach the database (which checks it
again at commit: the deferred constraint trigger of migration 0001).

Account names (SPEC §9 table):
  expense:{business_unit}        liability:grni            expense:price_variance
  expense:charges                asset:input_tax           liability:ap:{payee}
  asset:prepayments              liability:payouts_in_transit
  asset:funding:{account}        equity:funding:{legal_entity}
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property

from shared.envelope import uuid5_hex

ZERO = Decimal(0)

GRNI = "liability:grni"
PRICE_VARIANCE = "expense:price_variance"
CHARGES = "expense:charges"
INPUT_TAX = "asset:input_tax"
PREPAYMENTS = "asset:prepayments"
IN_TRANSIT = "liability:payouts_in_transit"
EARLY_PAYMENT_DISCOUNTS = "income:early_payment_discounts"  # SPEC §13.5


def expense(business_unit: str) -> str:
    return f"expense:{business_unit}"


def accounts_payable(payee_id: str) -> str:
    return f"liability:ap:{payee_id}"


def funding_account(account_id: str) -> str:
    return f"asset:funding:{account_id}"


def funding_equity(legal_entity: str) -> str:
    return f"equity:funding:{legal_entity}"


AP_PREFIX = "liability:ap:"


class UnbalancedEntry(ValueError):
    """A posting rule produced lines that do not balance per currency: never posted."""


# --- the journal's vocabulary ------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One side of one account in one currency; exactly one of debit/credit is non-zero."""

    account: str
    currency: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO

    def signed(self) -> Decimal:
        """Debit positive, credit negative: the sum over a balanced entry is zero per currency."""
        return self.debit - self.credit

    def reversed(self) -> Line:
        return Line(self.account, self.currency, debit=self.credit, credit=self.debit)


@dataclass(frozen=True)
class Approval:
    """A human decision behind a fact (copied onto the entry's links for tracing)."""

    by: str
    what: str
    role: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Links:
    po_number: str | None = None
    po_version: int | None = None
    invoice_ids: tuple[str, ...] = ()
    receipt_ids: tuple[str, ...] = ()
    payout_id: str | None = None
    override_ids: tuple[str, ...] = ()
    approvals: tuple[Approval, ...] = ()
    expedite_id: str | None = None  # SPEC §13.2: the urgent payout a release paid


@dataclass(frozen=True)
class Entry:
    """A journal entry before it gets its ids (they come from the source event).

    `fact_key` names the business fact (receipt R1, decision D7, rail event E3): the same fact
    re-published under another event id still posts once.
    """

    kind: str
    fact_key: str
    description: str
    lines: tuple[Line, ...]
    links: Links = field(default_factory=Links)
    reverses_entry_id: str | None = None

    def __post_init__(self) -> None:
        if len(self.lines) < 2:
            raise UnbalancedEntry(f"{self.fact_key}: an entry needs at least two lines")
        for line in self.lines:
            if line.debit < 0 or line.credit < 0 or (line.debit == 0) == (line.credit == 0):
                raise UnbalancedEntry(f"{self.fact_key}: line {line} must have exactly one positive side")
        off = imbalances(self.lines)
        if off:
            raise UnbalancedEntry(f"{self.fact_key}: does not balance per currency: {off}")


def imbalances(lines: Iterable[Line]) -> dict[str, Decimal]:
    """Currency → debits − credits, only for currencies that do not net to zero."""
    net: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        net[line.currency] += line.signed()
    return {c: v for c, v in net.items() if v != 0}


def entry_id_for(source_event_id: str) -> str:
    """Deterministic: a redelivered source event, or a re-run, names the same entry."""
    return "je_" + uuid5_hex(uuid.NAMESPACE_URL, "concord:journal|" + source_event_id)


def net_lines(currency: str, postings: Iterable[tuple[str, Decimal]]) -> tuple[Line, ...]:
    """Signed postings (debit +, credit −) netted per account, in first-seen account order.

    Netting keeps one line per account: a negative price variance on one line and a positive
    one on another become one line, and AP for the payee ends as one credit.
    """
    net: dict[str, Decimal] = {}
    for account, amount in postings:
        net[account] = net.get(account, ZERO) + amount
    return tuple(
        Line(account, currency, debit=amount) if amount > 0 else Line(account, currency, credit=-amount)
        for account, amount in net.items()
        if amount != 0
    )


def _entry_or_none(
    kind: str,
    fact_key: str,
    description: str,
    lines: Sequence[Line],
    links: Links | None = None,
    reverses: str | None = None,
) -> Entry | None:
    if not lines:
        return None  # the fact moves no money (e.g. a receipt of zero value)
    return Entry(kind, fact_key, description, tuple(lines), links or Links(), reverses)


def reverse_entry(
    original: Entry, original_entry_id: str, *, kind: str, fact_key: str, description: str
) -> Entry:
    """The mirror image of an entry (receipt reversed, approval revoked); links are kept."""
    return Entry(
        kind,
        fact_key,
        description,
        tuple(ln.reversed() for ln in original.lines),
        original.links,
        original_entry_id,
    )


@dataclass(frozen=True)
class Posting:
    """An entry with the ids it gets from the event it is posted for: its id is derived from the
    source event id, so a redelivery or a re-run names the same entry."""

    entry: Entry
    source_event_id: str
    source_event_type: str

    @cached_property
    def entry_id(self) -> str:
        return entry_id_for(self.source_event_id)


def posting_of(entry: Entry | None, source_event_id: str, source_event_type: str) -> Posting | None:
    return Posting(entry, source_event_id, source_event_type) if entry is not None else None
