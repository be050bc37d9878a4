"""Holds: who owns one, until when, what it takes; and `reconcile`, the diff of fresh outcomes
against the stored holds and decisions (only changes come out)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from services.matching.domain.checks import Approved, Finding, Held, Outcome, Superseded
from services.matching.domain.documents import HoldKey, Override
from services.matching.domain.policy import Policy

# --- holds: who, until when, what it takes -------------------------------------------------------


def next_run_cutoff(opened_at: datetime, interval_s: float) -> datetime:
    """due_by: payout runs start at every multiple of the run interval since the Unix epoch, so the
    next run the invoice would miss is the first multiple strictly after the hold opened."""
    interval = Decimal(str(interval_s))
    if interval <= 0:
        raise ValueError("payout run interval must be positive")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    elapsed = Decimal((opened_at - epoch) // timedelta(microseconds=1)) / Decimal(1_000_000)
    runs = int(elapsed // interval) + 1
    return epoch + timedelta(microseconds=int(runs * interval * 1_000_000))


@dataclass(frozen=True)
class HoldDetails:
    owner: str
    due_by: datetime
    evidence_required: tuple[str, ...]
    next_action: str


def describe_hold(
    finding: Finding, policy: Policy, requester: str | None, opened_at: datetime, run_interval_s: float
) -> HoldDetails:
    text = policy.text(finding.reason)
    return HoldDetails(
        owner=policy.owner(finding.reason, finding.queue, requester),
        due_by=next_run_cutoff(opened_at, run_interval_s),
        evidence_required=text.evidence_required,
        next_action=text.next_action,
    )


# --- reconcile: what changed since the last decision ---------------------------------------------


@dataclass(frozen=True)
class StoredHold:
    hold_id: str
    reason: str
    line_id: str | None
    queue: str
    action: str

    @property
    def key(self) -> HoldKey:
        return (self.reason, self.line_id)


@dataclass(frozen=True)
class StoredDecision:
    """The last decision published for an invoice (`kind` none|approved|held|superseded)."""

    kind: str = "none"
    fingerprint: str = ""
    seq: int = 0


@dataclass(frozen=True)
class HoldOpening:
    invoice_id: str
    finding: Finding


@dataclass(frozen=True)
class HoldRelease:
    invoice_id: str
    hold: StoredHold
    released_by: Literal["rematch", "override", "correction"]
    override: Override | None = None


@dataclass(frozen=True)
class DecisionChange:
    invoice_id: str
    seq: int
    outcome: Outcome
    fingerprint: str
    revokes_approval: bool  # the invoice was approved to pay and no longer is


@dataclass(frozen=True)
class Changes:
    openings: tuple[HoldOpening, ...] = ()
    releases: tuple[HoldRelease, ...] = ()
    decisions: tuple[DecisionChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.openings or self.releases or self.decisions)


def fingerprint(outcome: Outcome) -> str:
    """Equal fingerprints ⇔ the same decision: a rematch that finds the same result publishes nothing."""
    if isinstance(outcome, Superseded):
        return f"superseded:{outcome.by}"
    if isinstance(outcome, Held):
        return "held:" + ";".join(f"{f.reason}@{f.line_id or ''}" for f in outcome.findings)
    lines = ";".join(
        f"{ln.line_id}|{ln.po_line_id}|{ln.match_mode}|{ln.quantity.normalize()}|{ln.po_unit_price}|"
        f"{ln.matched_amount}|{ln.variance_amount}"
        for ln in outcome.lines
    )
    return (
        f"approved:v{outcome.po_version}:{outcome.business_unit}:{lines}:{outcome.charges_total}:"
        f"{','.join(outcome.receipt_ids)}:{','.join(outcome.override_ids)}"
    )


def _kind(outcome: Outcome) -> str:
    return (
        "approved" if isinstance(outcome, Approved) else "held" if isinstance(outcome, Held) else "superseded"
    )


def reconcile(
    outcomes: Mapping[str, Outcome],
    open_holds: Mapping[str, list[StoredHold]],
    decisions: Mapping[str, StoredDecision],
    overrides: Iterable[Override] = (),
) -> Changes:
    """Diff the fresh outcomes against the stored holds and decisions; only changes come out."""
    by_invoice: dict[str, list[Override]] = defaultdict(list)
    for o in overrides:
        by_invoice[o.invoice_id].append(o)
    openings: list[HoldOpening] = []
    releases: list[HoldRelease] = []
    changes: list[DecisionChange] = []
    for invoice_id in sorted(outcomes):
        outcome = outcomes[invoice_id]
        stored = {h.key: h for h in open_holds.get(invoice_id, [])}
        wanted = {f.key: f for f in outcome.findings} if isinstance(outcome, Held) else {}
        for key in sorted(stored, key=lambda k: (k[1] or "", k[0])):
            if key in wanted:
                continue
            hold = stored[key]
            # The latest override naming the hold releases it: after a lapse (SPEC §13.4) that is
            # the one accepted on the new facts, not the one that lapsed.
            by = max(
                (o for o in by_invoice[invoice_id] if key in o.scope),
                key=lambda o: (o.at or datetime.min.replace(tzinfo=UTC), o.override_id),
                default=None,
            )
            if isinstance(outcome, Superseded):
                releases.append(HoldRelease(invoice_id, hold, "correction"))
            elif by is not None:
                releases.append(HoldRelease(invoice_id, hold, "override", by))
            else:
                releases.append(HoldRelease(invoice_id, hold, "rematch"))
        for key, finding in wanted.items():
            if key not in stored:
                openings.append(HoldOpening(invoice_id, finding))
        previous = decisions.get(invoice_id, StoredDecision())
        fp = fingerprint(outcome)
        if fp != previous.fingerprint:
            changes.append(
                DecisionChange(
                    invoice_id,
                    previous.seq + 1,
                    outcome,
                    fp,
                    revokes_approval=previous.kind == "approved" and not isinstance(outcome, Approved),
                )
            )
    return Changes(tuple(openings), tuple(releases), tuple(changes))


def apply_changes(
    changes: Changes,
    open_holds: Mapping[str, list[StoredHold]],
    decisions: Mapping[str, StoredDecision],
    new_hold_id: Callable[[str, Finding], str] | None = None,
) -> tuple[dict[str, list[StoredHold]], dict[str, StoredDecision]]:
    """The stored state after `changes` (the pure mirror of what the store persists)."""
    holds = {k: list(v) for k, v in open_holds.items()}
    for r in changes.releases:
        holds[r.invoice_id] = [h for h in holds.get(r.invoice_id, []) if h.hold_id != r.hold.hold_id]
    for o in changes.openings:
        f = o.finding
        hold_id = new_hold_id(o.invoice_id, f) if new_hold_id else f"{o.invoice_id}:{f.reason}:{f.line_id}"
        holds.setdefault(o.invoice_id, []).append(StoredHold(hold_id, f.reason, f.line_id, f.queue, f.action))
    decided = dict(decisions)
    for d in changes.decisions:
        decided[d.invoice_id] = StoredDecision(_kind(d.outcome), d.fingerprint, d.seq)
    return holds, decided
