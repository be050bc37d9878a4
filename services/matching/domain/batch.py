"""A batch of matching's inputs as one plan, pure: every record is a step in its PO's history.

`plan_batch(loaded, steps, rules, now)` replays the batch's records in offset order over what was
loaded for every PO they touch, exactly as if each record had been handled alone: the step
applies its document (or decides its command), then rematches the PO (`evaluate` → `reconcile`),
and the next step sees the result. What comes out is data: per step, an outcome (`Result`) and
the notices to publish; for the batch, the final rows to write (`Writes`, one statement per table).

So a batch equals the same records handled one batch each (tests/integration/matching/
test_batch_equivalence.py): an invoice before its PO in one batch is held `awaiting_po` and then
released, as it would be one by one, and an override after the invoice it releases sees the
holds that invoice opened.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

from services.matching.domain import (
    Approved,
    Changes,
    Held,
    Invoice,
    Outcome,
    Override,
    OverrideDecision,
    OverrideRequest,
    Policy,
    PoState,
    PurchaseOrder,
    Receipt,
    ReceiptLine,
    Roles,
    StoredDecision,
    StoredHold,
    Superseded,
    decide_override,
    describe_hold,
    evaluate,
    reconcile,
)
from shared.envelope import derived_event_id


class Result(StrEnum):
    """What a record did (the inbox's `result`, a metric label: a closed set)."""

    PO_VERSION_APPLIED = "po_version_applied"
    PO_CLOSED = "po_closed"
    REQUESTER_NOTED = "requester_noted"
    RECEIPT_APPLIED = "receipt_applied"
    RECEIPT_REVERSED = "receipt_reversed"
    INVOICE_ACCEPTED = "invoice_accepted"
    INVOICE_ALREADY_KNOWN = "invoice_already_known"
    UNKNOWN_INVOICE = "unknown_invoice"
    REMATCHED = "rematched"
    REMATCHED_NO_CHANGE = "rematched_no_change"
    OVERRIDE_ACCEPTED = "override_accepted"
    OVERRIDE_REFUSED = "override_refused"
    OVERRIDE_ALREADY_ACCEPTED = "override_already_accepted"


def group_of(po_number: str | None, invoice_id: str) -> str:
    """The unit of rematch: a PO, or a lone no-PO invoice."""
    return po_number if po_number else f"invoice:{invoice_id}"


def hold_id_for(invoice_id: str, reason: str, line_id: str | None, occurrence: int) -> str:
    """The n-th hold ever opened for (invoice, reason, line): a redelivery derives the same id."""
    return "hold_" + derived_event_id("hold", invoice_id, reason, line_id or "", str(occurrence))[4:]


def decision_id_for(invoice_id: str, seq: int) -> str:
    return "dec_" + derived_event_id("decision", invoice_id, str(seq))[4:]


# --- what is stored, as domain objects ---------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    """A hold, whole: what its notices carry and what its row holds."""

    hold_id: str
    invoice_id: str
    group: str
    po_number: str | None
    line_id: str | None
    reason: str
    queue: str
    action: str
    owner: str
    opened_at: datetime
    due_by: datetime
    evidence_required: tuple[str, ...]
    next_action: str
    opened_by_event_id: str
    status: Literal["open", "released"] = "open"
    released_at: datetime | None = None
    released_by: Literal["rematch", "override", "correction"] | None = None
    releasing_event_id: str | None = None
    override_id: str | None = None
    approved_by: str | None = None
    lapsed_override_id: str | None = None  # SPEC §13.4: reopened because this override lapsed

    @property
    def stored(self) -> StoredHold:
        return StoredHold(self.hold_id, self.reason, self.line_id, self.queue, self.action)


@dataclass(frozen=True)
class StoredReceipt:
    """A receipt row: a reversal seen first leaves a tombstone (no lines) that the receipt fills."""

    receipt_id: str
    po_number: str
    kind: str | None = None
    received_at: datetime | None = None
    lines: tuple[ReceiptLine, ...] | None = None
    lines_document: tuple[Mapping[str, Any], ...] | None = None  # as received; None: keep stored
    event_id: str | None = None
    reversed_at: datetime | None = None
    reversed_by: str | None = None
    reversal_reason: str | None = None
    reversal_event_id: str | None = None


@dataclass(frozen=True)
class StoredInvoice:
    invoice: Invoice  # with its seq (acceptance order)
    group: str
    decision: StoredDecision = field(default_factory=StoredDecision)


@dataclass(frozen=True)
class StoredOverride:
    """An override request and how it was decided (accepted ones release holds, for good)."""

    override_id: str
    invoice_id: str
    status: Literal["accepted", "refused"]
    requested_by: str
    approved_by: str
    reason_code: str
    justification: str
    evidence: tuple[str, ...]
    hold_reasons: tuple[str, ...] | None  # None: "all"
    scope: frozenset[tuple[str, str | None]]
    refusal_reasons: tuple[str, ...]
    ledger_ref: str | None
    decided_at: datetime
    event_id: str
    # SPEC §13.4: accepted: per released hold, the facts its check compared at acceptance
    facts: tuple[tuple[tuple[str, str | None], str], ...] = ()

    @property
    def as_override(self) -> Override:
        return Override(
            override_id=self.override_id,
            invoice_id=self.invoice_id,
            approved_by=self.approved_by,
            scope=self.scope,
            at=self.decided_at,
            reason_code=self.reason_code,
            requested_by=self.requested_by,
            justification=self.justification,
            evidence=self.evidence,
            facts=self.facts,
        )


@dataclass
class Loaded:
    """Everything the batch's POs need, as stored before the batch (store.load)."""

    pos: dict[str, PurchaseOrder] = field(default_factory=dict)  # group → highest version
    closures: dict[str, int] = field(default_factory=dict)  # po_number → closed_after_seq
    requesters: dict[str, str] = field(default_factory=dict)  # requisition_id → requested_by
    receipts: dict[str, StoredReceipt] = field(default_factory=dict)
    invoices: dict[str, StoredInvoice] = field(default_factory=dict)
    replacements: dict[str, str] = field(default_factory=dict)  # original → first replacing invoice
    settled: set[str] = field(default_factory=set)  # invoices ever approved to pay
    open_holds: dict[str, list[Hold]] = field(default_factory=dict)  # invoice_id → open holds
    holds_opened: dict[tuple[str, str, str | None], int] = field(default_factory=dict)
    overrides: dict[str, StoredOverride] = field(default_factory=dict)
    free_seqs: list[int] = field(default_factory=list)  # acceptance numbers for new invoices


# --- steps: one per record ------------------------------------------------------------------


@dataclass(frozen=True)
class AddPoVersion:
    po: PurchaseOrder
    document: Mapping[str, Any]
    in_force_since: datetime
    event_id: str


@dataclass(frozen=True)
class ClosePo:
    po_number: str
    closed_by: str
    reason: str
    at: datetime
    event_id: str


@dataclass(frozen=True)
class NoteRequisition:
    requisition_id: str
    requested_by: str


@dataclass(frozen=True)
class AddReceipt:
    receipt: Receipt
    po_number: str
    lines_document: tuple[Mapping[str, Any], ...]
    event_id: str


@dataclass(frozen=True)
class ReverseReceipt:
    receipt_id: str
    po_number: str
    reversed_by: str
    reason: str
    at: datetime
    event_id: str


@dataclass(frozen=True)
class AddInvoice:
    invoice: Invoice  # seq unset (0): given at acceptance
    document: Mapping[str, Any]
    at: datetime
    event_id: str

    @property
    def group(self) -> str:
        return group_of(self.invoice.po_number, self.invoice.invoice_id)


@dataclass(frozen=True)
class RequestRematch:
    invoice_id: str
    event_id: str


@dataclass(frozen=True)
class RequestOverride:
    request: OverrideRequest
    justification: str
    ledger_ref: str | None
    event_id: str


Step = (
    AddPoVersion
    | ClosePo
    | NoteRequisition
    | AddReceipt
    | ReverseReceipt
    | AddInvoice
    | RequestRematch
    | RequestOverride
)


# --- what comes out -------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldOpened:
    hold: Hold


@dataclass(frozen=True)
class HoldReleased:
    hold: Hold  # as released


@dataclass(frozen=True)
class OverrideRefused:
    override_id: str
    invoice_id: str
    reasons: tuple[str, ...]
    event_id: str


@dataclass(frozen=True)
class Decided:
    """One decision event: revoked | superseded | held | approved (in that order per change)."""

    kind: Literal["approval_revoked", "superseded", "held", "approved_to_pay"]
    invoice: Invoice
    seq: int
    decision_id: str
    outcome: Outcome
    revoked_because: str = ""
    holds: tuple[Hold, ...] = ()  # held: the invoice's open holds
    po: PurchaseOrder | None = None  # approved against this version (None: no PO)
    overrides: tuple[StoredOverride, ...] = ()  # approved: the accepted overrides it rests on

    @property
    def event_type(self) -> str:
        return f"invoice.{self.kind}"

    @cached_property
    def event_id(self) -> str:
        return derived_event_id("matching", self.event_type, self.invoice.invoice_id, str(self.seq))


Notice = HoldOpened | HoldReleased | OverrideRefused | Decided


@dataclass(frozen=True)
class StepPlan:
    result: Result
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True)
class DecisionRow:
    decided: Decided
    cause_event_id: str
    decided_at: datetime


@dataclass
class Writes:
    """The batch's final rows, one statement per table (store.apply)."""

    po_versions: dict[tuple[str, int], AddPoVersion] = field(default_factory=dict)
    closures: dict[str, tuple[ClosePo, int]] = field(default_factory=dict)
    requisitions: dict[str, str] = field(default_factory=dict)
    receipts: dict[str, StoredReceipt] = field(default_factory=dict)  # changed rows, final
    new_invoices: dict[str, AddInvoice] = field(default_factory=dict)
    invoice_decisions: dict[str, StoredDecision] = field(default_factory=dict)  # final, any invoice
    new_holds: dict[str, Hold] = field(default_factory=dict)  # final
    released_holds: dict[str, Hold] = field(default_factory=dict)  # stored before, released now
    overrides: dict[str, StoredOverride] = field(default_factory=dict)  # final
    decisions: list[DecisionRow] = field(default_factory=list)
    decided_at: datetime | None = None


@dataclass(frozen=True)
class Rules:
    policy: Policy
    roles: Roles
    payout_run_interval_s: float


@dataclass(frozen=True)
class BatchPlan:
    steps: tuple[StepPlan, ...]
    writes: Writes
    seqs: Mapping[str, int]  # new invoice → its acceptance number


def plan_batch(loaded: Loaded, steps: Sequence[Step], rules: Rules, now: datetime) -> BatchPlan:
    planner = _Planner(loaded, rules, now)
    plans = tuple(planner.step(s) for s in steps)
    return BatchPlan(plans, planner.writes, planner.seqs)


class _Planner:
    """The batch's world: what was loaded, changed step by step in memory (local to plan_batch)."""

    def __init__(self, loaded: Loaded, rules: Rules, now: datetime) -> None:
        self.w = loaded
        self.rules = rules
        self.now = now
        self.writes = Writes(decided_at=now)
        self.seqs: dict[str, int] = {}
        self.free_seqs = sorted(loaded.free_seqs, reverse=True)
        self.by_group: dict[str, list[str]] = defaultdict(list)
        for si in sorted(loaded.invoices.values(), key=lambda si: si.invoice.seq):
            self.by_group[si.group].append(si.invoice.invoice_id)
        self.receipts_of: dict[str, set[str]] = defaultdict(set)  # po_number → receipt ids
        for r in loaded.receipts.values():
            self.receipts_of[r.po_number].add(r.receipt_id)
        self.overrides_of: dict[str, set[str]] = defaultdict(set)  # invoice_id → override ids
        for o in loaded.overrides.values():
            self.overrides_of[o.invoice_id].add(o.override_id)

    # -- one record ----------------------------------------------------------------------------
    def step(self, step: Step) -> StepPlan:
        if isinstance(step, AddPoVersion):
            self._add_po_version(step)
            return StepPlan(Result.PO_VERSION_APPLIED, self._rematch(step.po.po_number, step.event_id))
        if isinstance(step, ClosePo):
            self._close_po(step)
            return StepPlan(Result.PO_CLOSED, self._rematch(step.po_number, step.event_id))
        if isinstance(step, NoteRequisition):
            if step.requisition_id not in self.w.requesters:
                self.w.requesters[step.requisition_id] = step.requested_by
                self.writes.requisitions[step.requisition_id] = step.requested_by
            return StepPlan(Result.REQUESTER_NOTED)
        if isinstance(step, AddReceipt):
            self._add_receipt(step)
            return StepPlan(Result.RECEIPT_APPLIED, self._rematch(step.po_number, step.event_id))
        if isinstance(step, ReverseReceipt):
            self._reverse_receipt(step)
            return StepPlan(Result.RECEIPT_REVERSED, self._rematch(step.po_number, step.event_id))
        if isinstance(step, AddInvoice):
            return self._add_invoice(step)
        if isinstance(step, RequestRematch):
            known = self.w.invoices.get(step.invoice_id)
            if known is None:
                return StepPlan(Result.UNKNOWN_INVOICE)
            notices = self._rematch(known.group, step.event_id)
            return StepPlan(Result.REMATCHED if notices else Result.REMATCHED_NO_CHANGE, notices)
        return self._decide_override(step)

    def _add_po_version(self, step: AddPoVersion) -> None:
        po = step.po
        self.writes.po_versions.setdefault((po.po_number, po.version), step)
        current = self.w.pos.get(po.po_number)
        # The highest version is in force; a version seen again keeps its first copy.
        if current is None or po.version > current.version:
            self.w.pos[po.po_number] = po

    def _close_po(self, step: ClosePo) -> None:
        if step.po_number in self.w.closures:
            return
        # "No further invoices match": the ones in hand now keep matching.
        seqs = [self.w.invoices[i].invoice.seq for i in self.by_group.get(step.po_number, ())]
        after = max(seqs, default=0)
        self.w.closures[step.po_number] = after
        self.writes.closures[step.po_number] = (step, after)

    def _add_receipt(self, step: AddReceipt) -> None:
        r = step.receipt
        row = self.w.receipts.get(r.receipt_id) or StoredReceipt(r.receipt_id, step.po_number)
        if row.lines is not None:
            return  # known: the first copy stands
        self._save_receipt(
            replace(
                row,
                kind=r.kind,
                received_at=r.received_at,
                lines=r.lines,
                lines_document=step.lines_document,
                event_id=step.event_id,
            )
        )

    def _reverse_receipt(self, step: ReverseReceipt) -> None:
        row = self.w.receipts.get(step.receipt_id) or StoredReceipt(step.receipt_id, step.po_number)
        if row.reversed_at is not None:
            return
        self._save_receipt(
            replace(
                row,
                reversed_at=step.at,
                reversed_by=step.reversed_by,
                reversal_reason=step.reason,
                reversal_event_id=step.event_id,
            )
        )

    def _save_receipt(self, row: StoredReceipt) -> None:
        self.w.receipts[row.receipt_id] = row
        self.receipts_of[row.po_number].add(row.receipt_id)
        self.writes.receipts[row.receipt_id] = row

    def _add_invoice(self, step: AddInvoice) -> StepPlan:
        inv = step.invoice
        result = Result.INVOICE_ALREADY_KNOWN
        if inv.invoice_id not in self.w.invoices:
            result = Result.INVOICE_ACCEPTED
            seq = self.free_seqs.pop()
            self.seqs[inv.invoice_id] = seq
            self.w.invoices[inv.invoice_id] = StoredInvoice(replace(inv, seq=seq), step.group)
            self.by_group[step.group].append(inv.invoice_id)
            self.writes.new_invoices[inv.invoice_id] = step
            original = inv.replaces_invoice_id
            if original and original != inv.invoice_id:
                self.w.replacements.setdefault(original, inv.invoice_id)
        notices = self._rematch(step.group, step.event_id)
        if inv.replaces_invoice_id:
            # The original may belong to another PO (or none): close it there too.
            original_invoice = self.w.invoices.get(inv.replaces_invoice_id)
            if original_invoice is not None and original_invoice.group != step.group:
                notices += self._rematch(original_invoice.group, step.event_id)
        return StepPlan(result, tuple(notices))

    def _decide_override(self, step: RequestOverride) -> StepPlan:
        req = step.request
        previous = self.w.overrides.get(req.override_id)
        if previous is not None and previous.status == "accepted":
            return StepPlan(Result.OVERRIDE_ALREADY_ACCEPTED)
        known = self.w.invoices.get(req.invoice_id)
        decision: OverrideDecision
        if known is None:
            decision = decide_override(req, None, False, self.rules.roles)
        else:
            holds = sorted(self.w.open_holds.get(req.invoice_id, []), key=_hold_order)
            superseded = known.decision.kind == "superseded"
            decision = decide_override(req, [h.stored for h in holds], superseded, self.rules.roles)
        record = StoredOverride(
            override_id=req.override_id,
            invoice_id=req.invoice_id,
            status="accepted" if decision.accepted else "refused",
            requested_by=req.requested_by,
            approved_by=req.approved_by,
            reason_code=req.reason_code,
            justification=step.justification,
            evidence=req.evidence,
            hold_reasons=req.hold_reasons,
            scope=decision.scope,
            refusal_reasons=decision.reasons,
            ledger_ref=step.ledger_ref,
            decided_at=self.now,
            event_id=step.event_id,
            facts=self._facts_of(known.group, req.invoice_id, decision.scope)
            if decision.accepted and known
            else (),
        )
        self.w.overrides[req.override_id] = record
        self.overrides_of[req.invoice_id].add(req.override_id)
        self.writes.overrides[req.override_id] = record
        if not decision.accepted:
            refused_id = derived_event_id("matching", "override.refused", req.override_id, step.event_id)
            notice = OverrideRefused(req.override_id, req.invoice_id, decision.reasons, refused_id)
            return StepPlan(Result.OVERRIDE_REFUSED, (notice,))
        assert known is not None
        return StepPlan(Result.OVERRIDE_ACCEPTED, self._rematch(known.group, step.event_id))

    def _facts_of(
        self, group: str, invoice_id: str, scope: frozenset[tuple[str, str | None]]
    ) -> tuple[tuple[tuple[str, str | None], str], ...]:
        """SPEC §13.4: what each check the override releases compares right now."""
        outcome = evaluate(self._state(group, self.by_group.get(group, [])), self.rules.policy).get(
            invoice_id
        )
        findings = outcome.findings if isinstance(outcome, Held) else ()
        return tuple(
            sorted(
                ((f.key, f.facts) for f in findings if f.key in scope), key=lambda x: (x[0][0], x[0][1] or "")
            )
        )

    # -- the rematch of one PO -------------------------------------------------------------------
    def _rematch(self, group: str, cause: str) -> tuple[Notice, ...]:
        ids = self.by_group.get(group, [])
        if not ids:
            return ()
        state = self._state(group, ids)
        outcomes = evaluate(state, self.rules.policy)
        open_holds = {i: [h.stored for h in self.w.open_holds.get(i, [])] for i in ids}
        decisions = {i: self.w.invoices[i].decision for i in ids}
        changes = reconcile(outcomes, open_holds, decisions, state.overrides)
        return self._apply(group, changes, cause)

    def _state(self, group: str, ids: Sequence[str]) -> PoState:
        invoices = [self.w.invoices[i].invoice for i in ids]
        originals = {inv.replaces_invoice_id for inv in invoices if inv.replaces_invoice_id}
        po_number = None if group.startswith("invoice:") else group
        rows = (self.w.receipts[i] for i in sorted(self.receipts_of.get(po_number or "", ())))
        standing = tuple(r for r in map(_standing, rows) if r is not None)
        return PoState(
            po_number=po_number,
            po=self.w.pos.get(group),
            closed_after_seq=self.w.closures.get(group),
            receipts=standing,
            invoices=tuple(invoices),
            overrides=tuple(o.as_override for i in ids for o in self._accepted_overrides(i)),
            replacements={i: self.w.replacements[i] for i in ids if i in self.w.replacements},
            settled=frozenset(i for i in (*ids, *originals) if i in self.w.settled),
        )

    def _accepted_overrides(self, invoice_id: str) -> list[StoredOverride]:
        overrides = (self.w.overrides[o] for o in sorted(self.overrides_of.get(invoice_id, ())))
        return [o for o in overrides if o.status == "accepted"]

    def _apply(self, group: str, changes: Changes, cause: str) -> tuple[Notice, ...]:
        notices: list[Notice] = []
        for release in changes.releases:
            held = self._open_hold(release.invoice_id, release.hold.hold_id)
            override = release.override
            released = replace(
                held,
                status="released",
                released_at=self.now,
                released_by=release.released_by,
                releasing_event_id=cause,
                override_id=override.override_id if override else None,
                approved_by=override.approved_by if override else None,
            )
            self.w.open_holds[release.invoice_id].remove(held)
            self._save_hold(released)
            notices.append(HoldReleased(released))
        for opening in changes.openings:
            hold = self._new_hold(group, opening.invoice_id, opening.finding, cause)
            self.w.open_holds.setdefault(opening.invoice_id, []).append(hold)
            self._save_hold(hold)
            notices.append(HoldOpened(hold))
        for change in changes.decisions:
            notices += self._decide(
                group, change.invoice_id, change.seq, change.outcome, change.revokes_approval
            )
            stored = StoredDecision(_kind(change.outcome), change.fingerprint, change.seq)
            si = self.w.invoices[change.invoice_id]
            self.w.invoices[change.invoice_id] = replace(si, decision=stored)
            self.writes.invoice_decisions[change.invoice_id] = stored
            if isinstance(change.outcome, Approved):
                self.w.settled.add(change.invoice_id)
        for n in notices:
            if isinstance(n, Decided):
                self.writes.decisions.append(DecisionRow(n, cause, self.now))
        return tuple(notices)

    def _open_hold(self, invoice_id: str, hold_id: str) -> Hold:
        return next(h for h in self.w.open_holds[invoice_id] if h.hold_id == hold_id)

    def _save_hold(self, hold: Hold) -> None:
        if hold.hold_id in self.writes.new_holds or hold.status == "open":
            self.writes.new_holds[hold.hold_id] = hold
        else:
            self.writes.released_holds[hold.hold_id] = hold

    def _new_hold(self, group: str, invoice_id: str, finding: Any, cause: str) -> Hold:
        key = (invoice_id, finding.reason, finding.line_id)
        occurrence = self.w.holds_opened.get(key, 0)
        self.w.holds_opened[key] = occurrence + 1
        details = describe_hold(
            finding, self.rules.policy, self._requester(group), self.now, self.rules.payout_run_interval_s
        )
        return Hold(
            hold_id=hold_id_for(invoice_id, finding.reason, finding.line_id, occurrence),
            invoice_id=invoice_id,
            group=group,
            po_number=self.w.invoices[invoice_id].invoice.po_number,
            line_id=finding.line_id,
            reason=finding.reason,
            queue=finding.queue,
            action=finding.action,
            owner=details.owner,
            opened_at=self.now,
            due_by=details.due_by,
            evidence_required=details.evidence_required,
            next_action=details.next_action,
            opened_by_event_id=cause,
            lapsed_override_id=finding.lapsed_override_id,
        )

    def _requester(self, group: str) -> str | None:
        po = self.w.pos.get(group)
        if po is None:
            return None
        return self.w.requesters.get(po.requisition_id or "") or po.created_by

    def _decide(self, group: str, invoice_id: str, seq: int, outcome: Outcome, revokes: bool) -> list[Notice]:
        invoice = self.w.invoices[invoice_id].invoice
        decision_id = decision_id_for(invoice_id, seq)
        out: list[Notice] = []
        if revokes:
            why = (
                "superseded"
                if isinstance(outcome, Superseded)
                else "hold_reopened:"
                + ",".join(sorted({f.reason for f in outcome.findings}) if isinstance(outcome, Held) else [])
            )
            out.append(Decided("approval_revoked", invoice, seq, decision_id, outcome, revoked_because=why))
        if isinstance(outcome, Superseded):
            out.append(Decided("superseded", invoice, seq, decision_id, outcome))
        elif isinstance(outcome, Held):
            holds = tuple(sorted(self.w.open_holds.get(invoice_id, []), key=_hold_order))
            out.append(Decided("held", invoice, seq, decision_id, outcome, holds=holds))
        else:
            overrides = tuple(self._accepted_overrides(invoice_id))
            po = self.w.pos.get(group) if outcome.po_version is not None else None
            out.append(
                Decided("approved_to_pay", invoice, seq, decision_id, outcome, po=po, overrides=overrides)
            )
        return out


def _standing(r: StoredReceipt) -> Receipt | None:
    """A receipt that counts: recorded (not a reversal's tombstone) and not reversed."""
    if r.reversed_at is not None or r.lines is None or r.received_at is None:
        return None
    return Receipt(r.receipt_id, r.kind or "", r.received_at, r.lines)


def _hold_order(h: Hold) -> tuple[str, bool, str]:
    # As PostgreSQL orders (reason, line_id): NULL line ids last.
    return (h.reason, h.line_id is None, h.line_id or "")


def _kind(outcome: Outcome) -> Literal["approved", "held", "superseded"]:
    if isinstance(outcome, Approved):
        return "approved"
    return "held" if isinstance(outcome, Held) else "superseded"
