"""Receipts over a batch: arrivals, reversals, and receipts that waited for their PO.

Each plan takes what the store loaded for the whole batch and walks the batch's records in
order, keeping what an earlier record changed (a receipt posted, reversed, a PO version in
force), so a batch ends exactly where the same records one by one would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.ledger.domain.facts import PurchaseOrder, Receipt, ReceiptState
from services.ledger.domain.journal import Entry, Posting, reverse_entry
from services.ledger.domain.outcomes import Outcome
from services.ledger.domain.posting import post_receipt

RECEIPT_ACCEPTED = "receipt.accepted"


def on_receipt_reversed(state: ReceiptState | None) -> str:
    """What a reversal does: 'reverse_entry' | 'drop' | 'remember' (receipt not seen yet) | 'nothing'."""
    if state is None:
        return "remember"
    if state.status == "posted" and state.entry_id is not None:
        return "reverse_entry"
    if state.status == "pending":
        return "drop"
    return "nothing"


@dataclass(frozen=True)
class ReceiptStep:
    """One record's part of a plan. `status` is what to remember about the receipt (None: write
    nothing); a `posting` that the journal already had (its fact posted before) turns POSTED into
    NO_VALUE, as one record alone would (`settled`)."""

    outcome: Outcome
    status: str | None = None
    entry_id: str | None = None
    posting: Posting | None = None
    true_up: bool = False

    def settled(self, inserted: set[str]) -> ReceiptStep:
        if self.status == "posted" and (self.posting is None or self.posting.entry_id not in inserted):
            outcome = Outcome.NO_VALUE if self.outcome is Outcome.POSTED else self.outcome
            return ReceiptStep(outcome, "no_value", None, self.posting, self.true_up)
        return self


def _posted_state(receipt_id: str, posting: Posting | None) -> ReceiptState:
    if posting is None:
        return ReceiptState(receipt_id, "no_value")
    return ReceiptState(receipt_id, "posted", posting.entry_id)


def plan_arrivals(
    arrivals: Sequence[tuple[Receipt, str]],
    states: Mapping[str, ReceiptState],
    pos: Mapping[str, PurchaseOrder],
) -> list[ReceiptStep]:
    """`receipt.accepted` records (receipt, source event id) in order: post at the PO price in
    force, wait for an unknown PO, never post a receipt reversed first or posted already."""
    known = dict(states)
    steps = []
    for receipt, event_id in arrivals:
        existing = known.get(receipt.receipt_id)
        if existing is not None and existing.status in ("dropped", "reversed"):
            steps.append(ReceiptStep(Outcome.ALREADY_REVERSED, existing.status, existing.entry_id))
            continue
        if existing is not None and existing.status in ("posted", "no_value"):
            steps.append(ReceiptStep(Outcome.ALREADY_POSTED))
            continue
        po = pos.get(receipt.po_number)
        if po is None:
            steps.append(ReceiptStep(Outcome.PENDING_PO, "pending"))
            known.setdefault(receipt.receipt_id, ReceiptState(receipt.receipt_id, "pending"))
            continue
        entry = post_receipt(receipt, po)
        posting = Posting(entry, event_id, RECEIPT_ACCEPTED) if entry is not None else None
        state = _posted_state(receipt.receipt_id, posting)
        steps.append(
            ReceiptStep(
                Outcome.POSTED if posting else Outcome.NO_VALUE, state.status, state.entry_id, posting, True
            )
        )
        known[receipt.receipt_id] = state
    return steps


@dataclass(frozen=True)
class Reversal:
    receipt_id: str
    reversed_by: str
    reason: str


def plan_reversals(
    reversals: Sequence[tuple[Reversal, str, str]],
    states: Mapping[str, tuple[ReceiptState, Entry | None]],
) -> list[ReceiptStep]:
    """`receipt.reversal_accepted` records (reversal, source event id, event type) in order:
    reverse a posted receipt's entry; a pending or unseen receipt is dropped, never posts."""
    known = dict(states)
    steps = []
    for reversal, event_id, event_type in reversals:
        state, original = known.get(reversal.receipt_id, (None, None))
        action = on_receipt_reversed(state)
        if action == "reverse_entry":
            assert state is not None and state.entry_id is not None and original is not None
            entry = reverse_entry(
                original,
                state.entry_id,
                kind="receipt_reversal",
                fact_key=f"receipt_reversal:{reversal.receipt_id}",
                description=(
                    f"Receipt {reversal.receipt_id} reversed by {reversal.reversed_by}: {reversal.reason}"
                ),
            )
            posting = Posting(entry, event_id, event_type)
            steps.append(ReceiptStep(Outcome.REVERSED, "reversed", posting=posting, true_up=True))
            known[reversal.receipt_id] = (ReceiptState(reversal.receipt_id, "reversed", state.entry_id), None)
        elif action in ("drop", "remember"):
            steps.append(ReceiptStep(Outcome.DROPPED, "dropped"))
            entry_id = state.entry_id if state is not None else None
            known[reversal.receipt_id] = (ReceiptState(reversal.receipt_id, "dropped", entry_id), None)
        else:
            steps.append(ReceiptStep(Outcome.NOTHING_TO_REVERSE, state.status if state else "dropped"))
    return steps


@dataclass(frozen=True)
class PendingReceipt:
    """A receipt that arrived before its PO, with the event that carried it (its entry's source)."""

    receipt: Receipt
    source_event_id: str
    source_event_type: str


@dataclass
class VersionStep:
    outcome: Outcome
    postings: list[tuple[str, Posting | None]] = field(default_factory=list)  # (receipt_id, posting)


def plan_versions_in_force(
    versions: Sequence[PurchaseOrder],
    in_force: Mapping[str, PurchaseOrder],
    pending: Mapping[str, Sequence[PendingReceipt]],
) -> list[VersionStep]:
    """`purchase_order.version_in_force` records in order: the latest version known is in force
    (intake publishes versions in order; a redelivered older one changes nothing), and receipts
    that waited for the PO post at its prices, under their own source event, so the journal is
    the same whichever came first."""
    current = dict(in_force)
    waiting = {po: list(receipts) for po, receipts in pending.items()}
    steps = []
    for version in versions:
        known = current.get(version.po_number)
        if known is None or version.version > known.version:
            current[version.po_number] = known = version
        step = VersionStep(Outcome.RECORDED)
        for p in waiting.pop(version.po_number, ()):
            entry = post_receipt(p.receipt, known)
            posting = Posting(entry, p.source_event_id, p.source_event_type) if entry is not None else None
            step.postings.append((p.receipt.receipt_id, posting))
            step.outcome = Outcome.PENDING_RECEIPTS_POSTED
        steps.append(step)
    return steps


def pending_statuses(steps: Sequence[VersionStep], inserted: set[str]) -> list[tuple[str, str, str | None]]:
    """(receipt_id, status, entry_id) of the receipts that waited: posted, or no_value when they
    were worth nothing or their fact was in the journal already."""
    return [
        (receipt_id, "posted", p.entry_id)
        if p is not None and p.entry_id in inserted
        else (receipt_id, "no_value", None)
        for step in steps
        for receipt_id, p in step.postings
    ]
