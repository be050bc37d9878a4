"""Receipts decided in memory (SPEC §3, §5): recorded once, reversed once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.intake.domain.common import Reason
from services.intake.domain.outcome import Outcome

# --- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptLineQty:
    receipt_line_id: str
    po_line_id: str
    quantity: Decimal


def receipt_reasons(lines: Sequence[ReceiptLineQty], known_po_lines: set[str] | None) -> list[Reason]:
    out: list[Reason] = []
    seen: set[str] = set()
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        if line.receipt_line_id in seen:
            out.append(
                Reason("duplicate_line_id", f"{where}.receipt_line_id", f"{line.receipt_line_id} repeated")
            )
        seen.add(line.receipt_line_id)
        if line.quantity <= 0:
            code = "zero_quantity" if line.quantity == 0 else "negative_quantity"
            out.append(
                Reason(code, f"{where}.quantity", "a received quantity must be > 0 (reverse the receipt)")
            )
        if known_po_lines is not None and line.po_line_id not in known_po_lines:
            out.append(Reason("invalid_po_line_ref", f"{where}.po_line_id", f"no PO line {line.po_line_id}"))
    return out


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
