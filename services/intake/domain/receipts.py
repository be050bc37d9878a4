"""Receipts decided in memory (SPEC §3, §5): recorded once, reversed once."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.intake.domain import Reason, ReceiptLineQty, receipt_reasons
from services.intake.domain.outcome import Outcome


@dataclass(frozen=True)
class Receipt:
    """A receipts row."""

    receipt_id: str
    po_number: str
    kind: str
    received_at: datetime
    lines: list[dict[str, Any]]
    content_hash: str
    reversed_by: str | None = None
    reversal_reason: str | None = None
    reversed_at: datetime | None = None


@dataclass
class ReceiptDecision:
    outcome: Outcome
    reasons: list[Reason] = field(default_factory=list)


@dataclass
class ReceiptBook:
    receipts: dict[str, Receipt]
    # po_number → line ids of every version received (a receipt may name a line of a pending
    # amendment); a PO absent here has no version yet, and its lines are not checked
    po_lines: dict[str, set[str]]
    now: datetime
    recorded: list[Receipt] = field(default_factory=list)
    reversed: list[Receipt] = field(default_factory=list)

    def record(self, receipt: Receipt, lines: list[ReceiptLineQty]) -> ReceiptDecision:
        reasons = receipt_reasons(lines, self.po_lines.get(receipt.po_number))
        existing = self.receipts.get(receipt.receipt_id)
        if existing is not None:
            if existing.content_hash == receipt.content_hash:
                return ReceiptDecision(Outcome.DUPLICATE)
            message = f"{receipt.receipt_id} exists with other content"
            reasons.append(Reason("duplicate_receipt", "receipt_id", message))
        if reasons:
            return ReceiptDecision(Outcome.REJECTED, reasons)
        self.receipts[receipt.receipt_id] = receipt
        self.recorded.append(receipt)
        return ReceiptDecision(Outcome.ACCEPTED)

    def reverse(self, receipt_id: str, po_number: str, reversed_by: str, reason: str) -> ReceiptDecision:
        existing = self.receipts.get(receipt_id)
        if existing is None:
            return ReceiptDecision(
                Outcome.REJECTED, [Reason("unknown_receipt", "receipt_id", f"no receipt {receipt_id}")]
            )
        if existing.po_number != po_number:
            return ReceiptDecision(
                Outcome.REJECTED,
                [Reason("invalid_po_reference", "po_number", "the receipt is for another PO")],
            )
        if existing.reversed_at is not None:
            return ReceiptDecision(Outcome.DUPLICATE)
        done = replace(existing, reversed_by=reversed_by, reversal_reason=reason, reversed_at=self.now)
        self.receipts[receipt_id] = done
        self.reversed.append(done)
        return ReceiptDecision(Outcome.ACCEPTED)
