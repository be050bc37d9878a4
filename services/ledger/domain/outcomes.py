"""What the ledger made of a record: a closed set, stored in the inbox and used as a metric label."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    RECORDED = "recorded"  # documents projection only
    PENDING_RECEIPTS_POSTED = "pending_receipts_posted"  # a PO version posted receipts that waited for it
    POSTED = "posted"
    NO_VALUE = "no_value"  # a receipt worth nothing at the PO's prices (or a two-way PO's receipt)
    PENDING_PO = "pending_po"  # a receipt waits for its PO
    ALREADY_POSTED = "already_posted"  # the business fact is in the journal under another event
    ALREADY_REVERSED = "already_reversed"  # a receipt reversed before the ledger saw it
    REVERSED = "reversed"
    DROPPED = "dropped"  # a reversal of a receipt that never posted
    NOTHING_TO_REVERSE = "nothing_to_reverse"
    NOTHING_TO_POST = "nothing_to_post"
    ACCOUNT_MISMATCH = "account_mismatch"  # funding for another owner of the account: not posted
