"""Rail responses, pure: what a settlement, failure or return does to a payout, and the
anomalies that are never applied (SPEC §8, §15 "Rails"). No I/O, no async."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final, Literal

from shared.contracts.outbound import RailAnomalyWhat
from shared.money import format_decimal

# --- rail responses ------------------------------------------------------------------------

PayoutStatus = Literal["released", "settled", "failed", "returned"]
RailKind = Literal["settled", "failed", "returned"]
FundingEffect = Literal["consume", "unreserve", "refund"]


@dataclass(frozen=True)
class RailOutcome:
    """What a rail response does to a payout. `result` is stored as the processing result."""

    result: str
    new_status: PayoutStatus | None = None
    # consume: a settlement spends the reservation for good; unreserve: a failure gives it
    # back; refund: a return puts settled money back into the account.
    funding: FundingEffect | None = None
    invoices_payable_again: bool = False
    exception_reason: Literal["payout_failed", "payout_returned"] | None = None


_TRANSITIONS: dict[tuple[PayoutStatus, RailKind], RailOutcome] = {
    ("released", "settled"): RailOutcome("settled", "settled", "consume"),
    ("released", "failed"): RailOutcome("failed", "failed", "unreserve", True, "payout_failed"),
    ("settled", "returned"): RailOutcome("returned", "returned", "refund", True, "payout_returned"),
    ("settled", "settled"): RailOutcome("already_settled"),
    ("failed", "failed"): RailOutcome("already_failed"),
    ("returned", "returned"): RailOutcome("already_returned"),
}


def apply_rail_event(status: PayoutStatus | None, kind: RailKind) -> RailOutcome:
    """SPEC §8 rail responses. Anything else (a failure after settlement, a return of an
    unsettled payout, a settlement of a failed one) changes nothing; `rail_anomaly` says why,
    for treasury."""
    if status is None:
        return RailOutcome("unknown_payout")
    return _TRANSITIONS.get((status, kind), RailOutcome(f"invalid_transition_{status}_to_{kind}"))


# --- rail anomalies (SPEC §15 "Rails") ---------------------------------------------------------

# Each is a closed code of `rail_anomaly.opened`'s `what`; nothing it concerns is applied.
UNKNOWN_PAYOUT: Final = "unknown_payout"  # no payout of ours has this id
CURRENCY_MISMATCH: Final = "currency_mismatch"  # settled/returned in another currency than the payout
AMOUNT_MISMATCH: Final = "amount_mismatch"  # settled/returned another amount: a short settlement is not one
STATUS_CONFLICT: Final = "status_conflict"  # e.g. a failure after settlement: expected released, got settled
RAIL_EVENT_ID_REUSED: Final = "rail_event_id_reused"  # the rail's id again, with a different body

# The status a rail response applies to; from any other (but its own result) it is a conflict.
_APPLIES_TO: dict[RailKind, PayoutStatus] = {
    "settled": "released",
    "failed": "released",
    "returned": "settled",
}


# SPEC §12.4: failure codes that say the payee's account itself is wrong (not the payment).
ACCOUNT_FAILURE_CODES = frozenset({"unknown_account", "AC01", "AC04", "AC06"})


@dataclass(frozen=True)
class RailEvent:
    """What a rail says about a payout. Two equal RailEvents are one event told twice."""

    kind: RailKind
    payout_id: str
    amount: Decimal | None = None  # settled and returned only
    currency: str | None = None
    at: datetime | None = None  # settled_at / returned_at
    failure_code: str | None = None
    detail: str | None = None  # the failure's message / the return's reason

    def describe(self) -> str:
        """One line for treasury: what the rail said, with every fact that can differ."""
        parts = [f"{self.kind} {self.payout_id}"]
        if self.amount is not None:
            parts.append(f"{format_decimal(self.amount)} {self.currency}")
        if self.at is not None:
            parts.append(f"at {self.at.astimezone(UTC).isoformat()}")
        parts += [p for p in (self.failure_code, self.detail) if p]
        return " ".join(parts)


@dataclass(frozen=True)
class PayoutFacts:
    """What the payout a rail event names was released as, and where it stands."""

    status: PayoutStatus
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class RailAnomaly:
    what: RailAnomalyWhat
    expected: str | None
    got: str | None


def rail_anomaly(payout: PayoutFacts | None, event: RailEvent) -> RailAnomaly | None:
    """Why `event` cannot be applied to `payout` as it stands (SPEC §15), or None when it can —
    or when it is the same outcome the payout already has (a replay under a new rail id)."""
    if payout is None:
        return RailAnomaly(UNKNOWN_PAYOUT, None, event.describe())
    if event.amount is not None:
        expected = f"{format_decimal(payout.amount)} {payout.currency}"
        got = f"{format_decimal(event.amount)} {event.currency}"
        if event.currency != payout.currency:
            return RailAnomaly(CURRENCY_MISMATCH, expected, got)
        if event.amount != payout.amount:
            return RailAnomaly(AMOUNT_MISMATCH, expected, got)
    if (payout.status, event.kind) not in _TRANSITIONS:
        return RailAnomaly(STATUS_CONFLICT, _APPLIES_TO[event.kind], payout.status)
    return None


def reused_rail_event_id(first: RailEvent, again: RailEvent) -> RailAnomaly | None:
    """A rail event id seen before: a replay when the bodies agree, an anomaly when not."""
    if first == again:
        return None
    return RailAnomaly(RAIL_EVENT_ID_REUSED, first.describe(), again.describe())


# --- a batch of rail events ------------------------------------------------------------------


@dataclass(frozen=True)
class Payout:
    """A released payout as a rail response sees it."""

    payout_id: str
    payee_id: str
    legal_entity: str
    currency: str
    funding_account_id: str
    amount: Decimal
    status: PayoutStatus
    invoice_ids: tuple[str, ...]
    discount: Decimal = Decimal(0)  # early-payment discounts taken at release (SPEC §13.5)


class RailResult(StrEnum):
    """What a rail record did (the inbox row's and the rail event's result)."""

    SETTLED = "settled"
    FAILED = "failed"
    RETURNED = "returned"
    ALREADY_SETTLED = "already_settled"
    ALREADY_FAILED = "already_failed"
    ALREADY_RETURNED = "already_returned"
    DUPLICATE_RAIL_EVENT = "duplicate_rail_event"
    UNKNOWN_PAYOUT = UNKNOWN_PAYOUT
    CURRENCY_MISMATCH = CURRENCY_MISMATCH
    AMOUNT_MISMATCH = AMOUNT_MISMATCH
    STATUS_CONFLICT = STATUS_CONFLICT
    RAIL_EVENT_ID_REUSED = RAIL_EVENT_ID_REUSED


@dataclass(frozen=True)
class RailStep:
    """What one rail record does, decided against the state the records before it left."""

    rail_event_id: str
    event: RailEvent
    result: RailResult
    payout: Payout | None  # as it stood before this record
    recorded: bool  # a new rail event id: kept with `result` (a replay or a reuse is not)
    anomaly: RailAnomaly | None = None
    transition: RailOutcome | None = None  # set when the payout changes status

    @property
    def reused(self) -> bool:
        """A reused rail id is reported under the record's own envelope, never applied."""
        return self.anomaly is not None and not self.recorded


def decide_rail_events(
    recorded: Mapping[str, RailEvent], payouts: Mapping[str, Payout], events: Sequence[tuple[str, RailEvent]]
) -> list[RailStep]:
    """SPEC §8/§15 for a run of rail records, in order. Rails replay with fresh envelopes: the
    rail's own id (`recorded`: what was first received under it) catches what the inbox cannot."""
    first = dict(recorded)
    current = dict(payouts)
    steps: list[RailStep] = []
    for rail_event_id, event in events:
        payout = current.get(event.payout_id)
        if rail_event_id in first:
            reused = reused_rail_event_id(first[rail_event_id], event)
            result = RailResult.DUPLICATE_RAIL_EVENT if reused is None else RailResult(reused.what)
            steps.append(RailStep(rail_event_id, event, result, payout, False, reused))
            continue
        first[rail_event_id] = event
        facts = PayoutFacts(payout.status, payout.amount, payout.currency) if payout else None
        anomaly = rail_anomaly(facts, event)
        if anomaly is not None:
            steps.append(RailStep(rail_event_id, event, RailResult(anomaly.what), payout, True, anomaly))
            continue
        assert payout is not None
        outcome = apply_rail_event(payout.status, event.kind)
        if outcome.new_status is None:  # the payout already has this outcome: a replay under another id
            steps.append(RailStep(rail_event_id, event, RailResult(outcome.result), payout, True))
            continue
        steps.append(RailStep(rail_event_id, event, RailResult(outcome.result), payout, True, None, outcome))
        current[payout.payout_id] = replace(payout, status=outcome.new_status)
    return steps


def funding_changes(steps: Sequence[RailStep]) -> dict[str, tuple[Decimal, Decimal]]:
    """Per funding account, the change of (reserved, consumed) the applied steps make: a
    settlement spends its reservation, a failure gives it back, a return refunds the money."""
    changes: dict[str, tuple[Decimal, Decimal]] = {}
    for s in steps:
        if s.transition is None or s.transition.funding is None or s.payout is None:
            continue
        amount = s.payout.amount
        reserved, consumed = {
            "consume": (-amount, amount),
            "unreserve": (-amount, Decimal(0)),
            "refund": (Decimal(0), -amount),
        }[s.transition.funding]
        r0, c0 = changes.get(s.payout.funding_account_id, (Decimal(0), Decimal(0)))
        changes[s.payout.funding_account_id] = (r0 + reserved, c0 + consumed)
    return changes
