"""Deciding what a bank report means for the payouts it names (SPEC §12.4), as data.

A file is applied whole or not at all: `decide` returns either every rail event and recorded
status, or the reasons the whole file is refused. Pure: the caller loads the payouts first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from services.bank_gateway.domain.ids import rail_event_id
from services.bank_gateway.domain.reports import (
    BookedTx,
    Notification,
    Refusal,
    Report,
    StatusLine,
    StatusReport,
)


class RailOutcome(StrEnum):
    FAILED = "payout.failed"
    SETTLED = "payout.settled"
    RETURNED = "payout.returned"
    RECORDED = "recorded"  # accepted / pending statuses: kept, not published


@dataclass(frozen=True)
class KnownPayout:
    payout_id: str
    end_to_end_id: str
    uetr: str
    amount: Decimal
    currency: str
    file_msg_id: str | None
    pmt_inf_id: str | None


@dataclass(frozen=True)
class Line:
    """One thing the file said about one payout."""

    payout_id: str
    rail_event_id: str
    outcome: RailOutcome
    status: str
    code: str | None = None
    message: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    date: str | None = None


@dataclass
class Decision:
    lines: list[Line] = field(default_factory=list)
    refusals: list[tuple[Refusal, str]] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.refusals


REJECTED = "RJCT"


def decide(report: Report, payouts: list[KnownPayout]) -> Decision:
    by_e2e = {p.end_to_end_id: p for p in payouts}
    by_uetr = {p.uetr: p for p in payouts}
    if isinstance(report, StatusReport):
        return _decide_status(report, payouts, by_e2e, by_uetr)
    return _decide_notification(report, by_e2e, by_uetr)


def _find(
    e2e: str | None, uetr: str | None, by_e2e: dict[str, KnownPayout], by_uetr: dict[str, KnownPayout]
) -> KnownPayout | None:
    found = by_e2e.get(e2e) if e2e else None
    if found is None and uetr:
        found = by_uetr.get(uetr)
    if found is not None and uetr and found.uetr != uetr:
        return None  # EndToEndId and UETR name different payouts: trust neither
    return found


def _decide_status(
    report: StatusReport,
    payouts: list[KnownPayout],
    by_e2e: dict[str, KnownPayout],
    by_uetr: dict[str, KnownPayout],
) -> Decision:
    decision = Decision()
    in_file = [p for p in payouts if p.file_msg_id == report.original_msg_id]
    if not in_file:
        decision.refusals.append(
            (Refusal.UNKNOWN_ORIGINAL, f"no file with MsgId {report.original_msg_id} was sent")
        )
        return decision
    # The most specific status wins: transaction over payment over group.
    decided: dict[str, tuple[int, StatusLine]] = {}
    for ln in report.lines:
        if ln.level == "transaction":
            p = _find(ln.end_to_end_id, ln.uetr, by_e2e, by_uetr)
            if p is None or p.file_msg_id != report.original_msg_id:
                ref = ln.end_to_end_id or ln.uetr
                decision.refusals.append(
                    (Refusal.UNKNOWN_PAYOUT, f"transaction {ref} is not a payout of {report.original_msg_id}")
                )
                continue
            decided[p.payout_id] = (3, ln)
        elif ln.level == "payment":
            covered = [p for p in in_file if p.pmt_inf_id == ln.pmt_inf_id]
            if not covered:
                decision.refusals.append(
                    (
                        Refusal.UNKNOWN_PAYOUT,
                        f"payment information {ln.pmt_inf_id} is not in {report.original_msg_id}",
                    )
                )
            for p in covered:
                if decided.get(p.payout_id, (0, ln))[0] < 2:
                    decided[p.payout_id] = (2, ln)
        else:
            for p in in_file:
                if p.payout_id not in decided:
                    decided[p.payout_id] = (1, ln)
    if decision.refusals:
        return decision
    for payout_id in sorted(decided):
        _, ln = decided[payout_id]
        p = next(q for q in in_file if q.payout_id == payout_id)
        # A group- or payment-level status applies only when it is a rejection or nothing more
        # specific was said; PART at group level says nothing about one transaction.
        if ln.status == "PART":
            continue
        outcome = RailOutcome.FAILED if ln.status == REJECTED else RailOutcome.RECORDED
        code = (
            (ln.reason.code if ln.reason else "NARR")
            if outcome is RailOutcome.FAILED
            else (ln.reason.code if ln.reason else None)
        )
        decision.lines.append(
            Line(
                payout_id,
                rail_event_id(report.msg_id, p.end_to_end_id),
                outcome,
                ln.status,
                code=code,
                message=ln.reason.text if ln.reason else None,
            )
        )
    return decision


def _decide_notification(
    report: Notification, by_e2e: dict[str, KnownPayout], by_uetr: dict[str, KnownPayout]
) -> Decision:
    decision = Decision()
    for tx in report.txs:
        p = _find(tx.end_to_end_id, tx.uetr, by_e2e, by_uetr)
        if p is None:
            decision.refusals.append(
                (
                    Refusal.UNKNOWN_PAYOUT,
                    f"entry {tx.ref}: EndToEndId {tx.end_to_end_id} is not a payout we sent",
                )
            )
            continue
        line = _booked_line(report.msg_id, tx, p)
        if isinstance(line, tuple):
            decision.refusals.append(line)
        else:
            decision.lines.append(line)
    if decision.refusals:
        decision.lines.clear()
    return decision


def _booked_line(msg_id: str, tx: BookedTx, p: KnownPayout) -> Line | tuple[Refusal, str]:
    rid = rail_event_id(msg_id, tx.ref)
    if (tx.amount, tx.currency) != (p.amount, p.currency):
        return (
            Refusal.AMOUNT_MISMATCH,
            f"entry {tx.ref}: {tx.amount} {tx.currency} booked for payout {p.payout_id}"
            f" of {p.amount} {p.currency}",
        )
    if not tx.booked:
        return Line(p.payout_id, rid, RailOutcome.RECORDED, "PDNG")
    if tx.credit_debit == "DBIT":
        return Line(
            p.payout_id,
            rid,
            RailOutcome.SETTLED,
            "BOOK",
            amount=tx.amount,
            currency=tx.currency,
            date=tx.booking_date,
        )
    if tx.return_reason is not None:
        return Line(
            p.payout_id,
            rid,
            RailOutcome.RETURNED,
            "BOOK",
            code=tx.return_reason.code,
            message=tx.return_reason.text,
            amount=tx.amount,
            currency=tx.currency,
            date=tx.booking_date,
        )
    return Line(p.payout_id, rid, RailOutcome.RECORDED, "BOOK")
