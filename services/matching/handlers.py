"""One handler per message: save the document, then rematch its PO (load → evaluate → diff → save + outbox).

Every trigger ends in `rematch(ctx, group)`, which recomputes the whole PO from its documents and
publishes only what changed, so redeliveries and repeated rematches publish nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog

from services.matching import domain, store
from services.matching.policy import load_policy, load_roles
from shared.consumer import HandlerContext, Router
from shared.contracts.common import Approval
from shared.contracts.inbound import HoldOverrideRequested, InvoiceRematchRequested
from shared.contracts.internal import (
    AppliedOverride,
    ApprovedLine,
    HeldHold,
    InvoiceAccepted,
    InvoiceApprovalRevoked,
    InvoiceApprovedToPay,
    InvoiceHeld,
    InvoiceSuperseded,
    PurchaseOrderClosureAccepted,
    PurchaseOrderState,
    PurchaseOrderVersionInForce,
    ReceiptAccepted,
    ReceiptReversalAccepted,
    RequisitionAccepted,
)
from shared.contracts.outbound import HoldEscalated, HoldOpened, HoldReleased, OverrideRefused
from shared.envelope import Envelope, derived_event_id
from shared.metrics import HOLDS_OPEN, HOLDS_OVERDUE
from shared.settings import Settings, get_settings
from shared.topics import IN_COMMANDS, INTAKE_DOCUMENTS, MATCHING_DECISIONS, OUT_EXCEPTIONS
from shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

router = Router("matching", topics=[INTAKE_DOCUMENTS, IN_COMMANDS])
router.emits(
    MATCHING_DECISIONS,
    "invoice.approved_to_pay",
    "invoice.approval_revoked",
    "invoice.held",
    "invoice.superseded",
)
router.emits(OUT_EXCEPTIONS, "hold.opened", "hold.released", "hold.escalated", "override.refused")


# --- configuration: read once at start (Service on_startup), never half-read ------------------


@dataclass(frozen=True)
class Config:
    policy: domain.Policy
    roles: domain.Roles


_config: Config | None = None


def configure(
    settings: Settings | None = None,
    *,
    policy: domain.Policy | None = None,
    roles: domain.Roles | None = None,
) -> Config:
    """Load and validate the policy and roles files (raises PolicyError naming the bad key)."""
    global _config
    s = settings or get_settings()
    _config = Config(policy or load_policy(s.policy_file), roles or load_roles(s.roles_file))
    return _config


def config() -> Config:
    return _config or configure()


# --- contract → domain ------------------------------------------------------------------------


def to_purchase_order(state: dict[str, Any]) -> domain.PurchaseOrder:
    po = PurchaseOrderState.model_validate(state)
    return domain.PurchaseOrder(
        po_number=po.po_number,
        version=po.version,
        legal_entity=po.legal_entity,
        business_unit=po.business_unit,
        payee_id=po.payee_id,
        currency=po.currency,
        effective_from=po.effective_from,
        effective_to=po.effective_to,
        lines=tuple(domain.PoLine(pl.line_id, pl.category, pl.quantity, pl.unit_price) for pl in po.lines),
        charges=tuple(domain.Charge(c.type, c.amount) for c in po.charges),
        match_mode=po.match_mode,
        approved_by=po.approved_by,
        approved_at=po.approved_at,
        created_by=po.created_by,
    )


def to_invoice(inv: InvoiceAccepted, seq: int) -> domain.Invoice:
    return domain.Invoice(
        invoice_id=inv.invoice_id,
        seq=seq,
        payee_id=inv.payee_id,
        legal_entity=inv.legal_entity,
        currency=inv.currency,
        document_type=inv.document_type,
        issue_date=inv.issue_date,
        lines=tuple(
            domain.InvoiceLine(
                ln.line_id,
                ln.po_line_id,
                ln.quantity,
                ln.unit_price,
                ln.line_amount,
                ln.allowance_charge_amount or Decimal(0),
            )
            for ln in inv.lines
        ),
        tax_total=inv.tax_total,
        total_amount=inv.total_amount,
        payable_amount=inv.payable_amount,
        po_number=inv.po_number,
        charges=tuple(domain.Charge(c.type, c.amount) for c in inv.charges),
        replaces_invoice_id=inv.replaces_invoice_id,
        business_unit=inv.business_unit,
        suspected_duplicate_of=tuple(inv.suspected_duplicate_of),
        route_to_no_po_review=inv.route_to_no_po_review,
    )


def to_receipt(row: Any) -> domain.Receipt:
    return domain.Receipt(
        receipt_id=row["receipt_id"],
        kind=row["kind"],
        received_at=row["received_at"],
        lines=tuple(
            domain.ReceiptLine(ln["po_line_id"], Decimal(str(ln["quantity"]))) for ln in row["lines"]
        ),
    )


def to_override(row: Any) -> domain.Override:
    return domain.Override(
        override_id=row["override_id"],
        invoice_id=row["invoice_id"],
        approved_by=row["approved_by"],
        scope=frozenset((reason, line_id) for reason, line_id in row["scope"]),
        at=row["decided_at"],
        reason_code=row["reason_code"],
    )


def to_stored_hold(row: Any) -> domain.StoredHold:
    return domain.StoredHold(row["hold_id"], row["reason"], row["line_id"], row["queue"], row["action"])


# --- the one rematch ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    state: domain.PoState
    rows: store.GroupRows
    documents: dict[str, InvoiceAccepted]


def to_loaded(group: str, rows: store.GroupRows) -> Loaded:
    documents = {r["invoice_id"]: InvoiceAccepted.model_validate(r["document"]) for r in rows.invoices}
    state = domain.PoState(
        po_number=None if group.startswith("invoice:") else group,
        po=to_purchase_order(rows.po_state) if rows.po_state else None,
        closed_after_seq=rows.closed_after_seq,
        receipts=tuple(to_receipt(r) for r in rows.receipts),
        invoices=tuple(to_invoice(documents[r["invoice_id"]], r["seq"]) for r in rows.invoices),
        overrides=tuple(to_override(r) for r in rows.overrides),
        replacements=rows.replacements,
        settled=rows.settled,
    )
    return Loaded(state, rows, documents)


async def rematch(ctx: UnitOfWork, group: str, cause_event_id: str) -> domain.Changes:
    """Recompute every invoice of the group and publish only the changes (idempotent by construction)."""
    assert ctx.cause is not None
    return (await rematch_groups(ctx, [(group, ctx.cause)], cause_event_id))[group]


async def rematch_groups(
    uow: UnitOfWork, asks: Sequence[tuple[str, Envelope]], cause_event_id: str | None = None
) -> dict[str, domain.Changes]:
    """rematch for many groups, reading them all in a fixed number of round trips. Each group's
    events are caused by the envelope it was asked with (and its id is the releasing event of
    its holds) unless `cause_event_id` is given."""
    groups = [group for group, _ in asks]
    await store.lock_groups(uow.conn, groups)
    rows = await store.load_groups(uow.conn, groups)
    holds = await store.open_holds(uow.conn, groups)
    last = await store.last_decisions(uow.conn, groups)
    changes: dict[str, domain.Changes] = {}
    writes = store.DecisionWrites()
    for group, cause in asks:
        changes[group] = await _rematch_loaded(
            uow.caused_by(cause),
            group,
            to_loaded(group, rows[group]),
            holds.get(group, []),
            last.get(group, []),
            cause_event_id or cause.event_id,
            writes,
        )
    await store.save_decisions(uow.conn, writes)
    return changes


async def _rematch_loaded(
    ctx: UnitOfWork,
    group: str,
    loaded: Loaded,
    open_rows: Sequence[Any],
    last_rows: Sequence[Any],
    cause_event_id: str,
    writes: store.DecisionWrites,
) -> domain.Changes:
    if not loaded.state.invoices:
        return domain.Changes()
    outcomes = domain.evaluate(loaded.state, config().policy)
    open_holds: dict[str, list[domain.StoredHold]] = {}
    for row in open_rows:
        open_holds.setdefault(row["invoice_id"], []).append(to_stored_hold(row))
    decisions = {
        r["invoice_id"]: domain.StoredDecision(
            "none" if r["status"] == "new" else r["status"], r["decision_fingerprint"], r["decision_seq"]
        )
        for r in last_rows
    }
    changes = domain.reconcile(outcomes, open_holds, decisions, loaded.state.overrides)
    await publish(ctx, group, loaded, changes, cause_event_id, writes)
    if not changes.empty:
        log.debug(
            "rematched",
            po_number=loaded.state.po_number,
            invoice_ids=sorted({d.invoice_id for d in changes.decisions}),
            holds_opened=len(changes.openings),
            holds_released=len(changes.releases),
            decisions=len(changes.decisions),
        )
    return changes


def _hold_id(invoice_id: str, reason: str, line_id: str | None, occurrence: int) -> str:
    return "hold_" + derived_event_id("hold", invoice_id, reason, line_id or "", str(occurrence))[4:]


def _notice(row: Any) -> dict[str, Any]:
    return {
        "hold_id": row["hold_id"],
        "invoice_id": row["invoice_id"],
        "po_number": row["po_number"],
        "line_id": row["line_id"],
        "reason": row["reason"],
        "queue": row["queue"],
        "owner": row["owner"],
        "opened_at": row["opened_at"],
        "due_by": row["due_by"],
        "evidence_required": list(row["evidence_required"]),
        "next_action": row["next_action"],
    }


async def publish(
    ctx: UnitOfWork,
    group: str,
    loaded: Loaded,
    changes: domain.Changes,
    cause_event_id: str,
    writes: store.DecisionWrites,
) -> None:
    now = ctx.now
    policy = config().policy
    for release in changes.releases:
        override = release.override
        row = await store.release_hold(
            ctx.conn,
            release.hold.hold_id,
            release.released_by,
            now,
            cause_event_id,
            override.override_id if override else None,
            override.approved_by if override else None,
        )
        notice = HoldReleased(
            **_notice(row),
            released_by=release.released_by,
            released_at=now,
            releasing_event_id=cause_event_id,
            override_id=row["override_id"],
            approved_by=row["approved_by"],
        )
        ctx.emit(
            OUT_EXCEPTIONS,
            row["invoice_id"],
            "hold.released",
            notice,
            event_id=derived_event_id("matching", "hold.released", row["hold_id"]),
        )
    for opening in changes.openings:
        f = opening.finding
        details = domain.describe_hold(
            f, policy, loaded.rows.requester, now, ctx.settings.payout_run_interval_s
        )
        occurrence = await store.holds_ever_opened(ctx.conn, opening.invoice_id, f.reason, f.line_id)
        row = await store.insert_hold(
            ctx.conn,
            {
                "hold_id": _hold_id(opening.invoice_id, f.reason, f.line_id, occurrence),
                "invoice_id": opening.invoice_id,
                "match_group": group,
                "po_number": loaded.documents[opening.invoice_id].po_number,
                "line_id": f.line_id,
                "reason": f.reason,
                "queue": f.queue,
                "action": f.action,
                "owner": details.owner,
                "opened_at": now,
                "due_by": details.due_by,
                "evidence_required": list(details.evidence_required),
                "next_action": details.next_action,
                "opened_by_event_id": cause_event_id,
            },
        )
        ctx.emit(
            OUT_EXCEPTIONS,
            row["invoice_id"],
            "hold.opened",
            HoldOpened(**_notice(row)),
            event_id=derived_event_id("matching", "hold.opened", row["hold_id"]),
        )
    for change in changes.decisions:
        await publish_decision(ctx, loaded, change, cause_event_id, writes)


async def publish_decision(
    ctx: UnitOfWork,
    loaded: Loaded,
    change: domain.DecisionChange,
    cause_event_id: str,
    writes: store.DecisionWrites,
) -> None:
    now = ctx.now
    doc = loaded.documents[change.invoice_id]
    outcome = change.outcome
    decision_id = "dec_" + derived_event_id("decision", change.invoice_id, str(change.seq))[4:]

    pending: list[tuple[str, str, dict[str, Any]]] = []

    def emit(event_type: str, payload: Any) -> None:
        event_id = derived_event_id("matching", event_type, change.invoice_id, str(change.seq))
        out = ctx.emit(MATCHING_DECISIONS, change.invoice_id, event_type, payload, event_id=event_id)
        pending.append((event_type, event_id, out.data))  # the payload as published

    if change.revokes_approval:
        why = (
            "superseded"
            if isinstance(outcome, domain.Superseded)
            else "hold_reopened:"
            + ",".join(
                sorted({f.reason for f in outcome.findings}) if isinstance(outcome, domain.Held) else []
            )
        )
        emit(
            "invoice.approval_revoked",
            InvoiceApprovalRevoked(
                invoice_id=doc.invoice_id,
                po_number=doc.po_number,
                reason=why,
                decided_at=now,
                decision_id=decision_id,
            ),
        )
    if isinstance(outcome, domain.Superseded):
        emit(
            "invoice.superseded",
            InvoiceSuperseded(
                invoice_id=doc.invoice_id,
                superseded_by=outcome.by,
                po_number=doc.po_number,
            ),
        )
        status = "superseded"
    elif isinstance(outcome, domain.Held):
        holds = await store.open_holds_of(ctx.conn, doc.invoice_id)
        emit(
            "invoice.held",
            InvoiceHeld(
                invoice_id=doc.invoice_id,
                po_number=doc.po_number,
                payee_id=doc.payee_id,
                holds=[
                    HeldHold(
                        hold_id=h["hold_id"],
                        reason=h["reason"],
                        line_id=h["line_id"],
                        queue=h["queue"],
                        action=h["action"],
                    )
                    for h in holds
                ],
                decided_at=now,
            ),
        )
        status = "held"
    else:
        emit("invoice.approved_to_pay", approved_payload(loaded, doc, outcome, decision_id, now))
        status = "approved"
    writes.decisions.extend(
        (change.invoice_id, change.seq, event_type, decision_id, event_id, data, cause_event_id, now)
        for event_type, event_id, data in pending
    )
    writes.invoice_states.append((doc.invoice_id, status, change.seq, change.fingerprint, now))


def approved_payload(
    loaded: Loaded, doc: InvoiceAccepted, outcome: domain.Approved, decision_id: str, now: datetime
) -> InvoiceApprovedToPay:
    po = loaded.state.po if outcome.po_version is not None else None
    approvals: list[Approval] = []
    if po is not None:
        approvals.append(
            Approval(
                by=po.approved_by,
                role="po_approver",
                at=po.approved_at,
                what=f"purchase_order {po.po_number} v{po.version}",
            )
        )
    for o in loaded.state.overrides:
        if o.invoice_id == doc.invoice_id:
            released = ", ".join(f"{r}{'@' + ln if ln else ''}" for r, ln in sorted(o.scope, key=str))
            approvals.append(
                Approval(
                    by=o.approved_by,
                    role="override_approver",
                    at=o.at,
                    what=f"override {o.override_id} ({o.reason_code}) released {released}",
                )
            )
    applied = [
        AppliedOverride(
            override_id=r["override_id"],
            approved_by=r["approved_by"],
            requested_by=r["requested_by"],
            reason_code=r["reason_code"],
            justification=r["justification"],
            evidence=list(r["evidence"]),
            hold_reasons=sorted({reason for reason, _ in r["scope"]}),
        )
        for r in loaded.rows.overrides
        if r["invoice_id"] == doc.invoice_id
    ]
    return InvoiceApprovedToPay(
        invoice_id=doc.invoice_id,
        po_number=doc.po_number,
        po_version=outcome.po_version,
        payee_id=doc.payee_id,
        legal_entity=doc.legal_entity,
        business_unit=outcome.business_unit,
        currency=doc.currency,
        document_type=doc.document_type,
        issue_date=doc.issue_date,
        payable_amount=doc.payable_amount,
        tax_total=doc.tax_total,
        charges_total=outcome.charges_total,
        lines=[
            ApprovedLine(
                line_id=ln.line_id,
                po_line_id=ln.po_line_id,
                category=ln.category,
                match_mode=ln.match_mode,
                quantity=ln.quantity,
                invoice_unit_price=ln.invoice_unit_price,
                po_unit_price=ln.po_unit_price,
                matched_amount=ln.matched_amount,
                variance_amount=ln.variance_amount,
                line_amount=ln.line_amount,
            )
            for ln in outcome.lines
        ],
        receipt_ids=list(outcome.receipt_ids),
        override_ids=list(outcome.override_ids),
        approvals=approvals,
        decided_at=now,
        decision_id=decision_id,
        overrides=applied,
    )


def rematch_after_batch(ctx: HandlerContext, group: str) -> None:
    """Documents rematch their PO once per batch, however many of them arrive together: the
    outcome is the same (rematch reads the whole PO), at a third of the database round trips;
    and every PO of the batch is read in one go."""
    ctx.after_records("rematch", group, _rematch_asked)


async def _rematch_asked(uow: UnitOfWork, asks: Sequence[tuple[str, Envelope]]) -> None:
    await rematch_groups(uow, asks)


# --- documents on concord.intake.documents ----------------------------------------------------


@router.handles("purchase_order.version_in_force")
async def on_po_version_in_force(ctx: HandlerContext, data: PurchaseOrderVersionInForce) -> str:
    po = data.po
    await store.lock_group(ctx.conn, po.po_number)
    await store.save_po_version(
        ctx.conn,
        po.po_number,
        po.version,
        po.model_dump(mode="json", exclude_none=True),
        data.in_force_since,
        ctx.envelope.event_id,
    )
    rematch_after_batch(ctx, po.po_number)
    return "po_version_applied"


@router.handles("purchase_order.closure_accepted")
async def on_po_closed(ctx: HandlerContext, data: PurchaseOrderClosureAccepted) -> str:
    await store.lock_group(ctx.conn, data.po_number)
    await store.save_closure(
        ctx.conn, data.po_number, data.closed_by, data.reason, ctx.envelope.occurred_at, ctx.envelope.event_id
    )
    rematch_after_batch(ctx, data.po_number)
    return "po_closed"


@router.handles("requisition.accepted")
async def on_requisition_accepted(ctx: HandlerContext, data: RequisitionAccepted) -> str:
    await store.save_requisition(ctx.conn, data.requisition_id, data.requested_by)
    return "requester_noted"


@router.handles("receipt.accepted")
async def on_receipt_accepted(ctx: HandlerContext, data: ReceiptAccepted) -> str:
    await store.lock_group(ctx.conn, data.po_number)
    await store.save_receipt(
        ctx.conn,
        data.receipt_id,
        data.po_number,
        data.kind,
        data.received_at,
        [ln.model_dump(mode="json", exclude_none=True) for ln in data.lines],
        ctx.envelope.event_id,
    )
    rematch_after_batch(ctx, data.po_number)
    return "receipt_applied"


@router.handles("receipt.reversal_accepted")
async def on_receipt_reversed(ctx: HandlerContext, data: ReceiptReversalAccepted) -> str:
    await store.lock_group(ctx.conn, data.po_number)
    await store.reverse_receipt(
        ctx.conn,
        data.receipt_id,
        data.po_number,
        data.reversed_by,
        data.reason,
        ctx.envelope.occurred_at,
        ctx.envelope.event_id,
    )
    rematch_after_batch(ctx, data.po_number)
    return "receipt_reversed"


@router.handles("invoice.accepted")
async def on_invoice_accepted(ctx: HandlerContext, data: InvoiceAccepted) -> str:
    group = store.group_of(data.po_number, data.invoice_id)
    await store.lock_group(ctx.conn, group)
    inserted = await store.save_invoice(
        ctx.conn,
        data.invoice_id,
        group,
        data.po_number,
        data.replaces_invoice_id,
        data.model_dump(mode="json", exclude_none=True),
        ctx.envelope.occurred_at,
        ctx.envelope.event_id,
    )
    if not inserted:
        log.info("invoice_already_known", invoice_id=data.invoice_id)
    rematch_after_batch(ctx, group)
    if data.replaces_invoice_id:
        # The original may belong to another PO (or none): close it there too.
        original = await store.find_invoice(ctx.conn, data.replaces_invoice_id)
        if original is not None and original["match_group"] != group:
            rematch_after_batch(ctx, original["match_group"])
    return "invoice_accepted" if inserted else "invoice_already_known"


# --- commands on concord.in.commands ----------------------------------------------------------


@router.handles("invoice.rematch_requested")
async def on_rematch_requested(ctx: HandlerContext, data: InvoiceRematchRequested) -> str:
    invoice = await store.find_invoice(ctx.conn, data.invoice_id)
    if invoice is None:
        log.warning("rematch_of_unknown_invoice", invoice_id=data.invoice_id)
        return "unknown_invoice"
    changes = await rematch(ctx, invoice["match_group"], ctx.envelope.event_id)
    return _result("rematched", changes)


@router.handles("hold.override_requested")
async def on_override_requested(ctx: HandlerContext, data: HoldOverrideRequested) -> str:
    previous = await store.find_override(ctx.conn, data.override_id)
    if previous is not None and previous["status"] == "accepted":
        return "override_already_accepted"
    invoice = await store.find_invoice(ctx.conn, data.invoice_id)
    request = domain.OverrideRequest(
        override_id=data.override_id,
        invoice_id=data.invoice_id,
        hold_reasons=None if data.hold_reasons == "all" else tuple(data.hold_reasons),
        reason_code=data.reason_code,
        requested_by=data.requested_by,
        approved_by=data.approved_by,
        evidence=tuple(data.evidence),
    )
    if invoice is None:
        decision = domain.decide_override(request, None, False, config().roles)
    else:
        await store.lock_group(ctx.conn, invoice["match_group"])
        holds = [to_stored_hold(r) for r in await store.open_holds_of(ctx.conn, data.invoice_id)]
        decision = domain.decide_override(request, holds, invoice["status"] == "superseded", config().roles)
    await store.save_override(
        ctx.conn,
        {
            "override_id": data.override_id,
            "invoice_id": data.invoice_id,
            "status": "accepted" if decision.accepted else "refused",
            "requested_by": data.requested_by,
            "approved_by": data.approved_by,
            "reason_code": data.reason_code,
            "justification": data.justification,
            "evidence": list(data.evidence),
            "hold_reasons": data.hold_reasons if data.hold_reasons == "all" else list(data.hold_reasons),
            "scope": sorted([list(k) for k in decision.scope], key=lambda k: (k[0], k[1] or "")),
            "refusal_reasons": list(decision.reasons),
            "ledger_ref": data.ledger_ref,
            "decided_at": ctx.now,
            "event_id": ctx.envelope.event_id,
        },
    )
    if not decision.accepted:
        ctx.emit(
            OUT_EXCEPTIONS,
            data.invoice_id,
            "override.refused",
            OverrideRefused(
                override_id=data.override_id, invoice_id=data.invoice_id, reasons=list(decision.reasons)
            ),
            event_id=derived_event_id(
                "matching", "override.refused", data.override_id, ctx.envelope.event_id
            ),
        )
        log.info(
            "override_refused",
            override_id=data.override_id,
            invoice_id=data.invoice_id,
            reasons=list(decision.reasons),
        )
        return "override_refused"
    assert invoice is not None
    await rematch(ctx, invoice["match_group"], ctx.envelope.event_id)
    return "override_accepted"


def _result(what: str, changes: domain.Changes) -> str:
    if changes.empty:
        return f"{what}:no_change"
    counts = (
        f"{len(changes.openings)}_opened,{len(changes.releases)}_released,{len(changes.decisions)}_decided"
    )
    return f"{what}:{counts}"


# --- periodic: escalation and the open-holds gauge --------------------------------------------


async def escalate_overdue_holds(uow: UnitOfWork) -> None:
    """Holds still open after due_by are escalated once (hold.escalated); then refresh the gauges."""
    now = uow.now
    due = await store.holds_due(uow.conn, now)
    for row in due:
        uow.emit(
            OUT_EXCEPTIONS,
            row["invoice_id"],
            "hold.escalated",
            HoldEscalated(**_notice(row), escalated_at=now),
            event_id=derived_event_id("matching", "hold.escalated", row["hold_id"]),
        )
    if due:
        await store.mark_escalated(uow.conn, [r["hold_id"] for r in due], now)
        log.info("holds_escalated", count=len(due))
    counts = await store.open_holds_by_reason(uow.conn)
    for reason in sorted(set(domain.ALL_REASONS) | set(counts)):
        HOLDS_OPEN.labels(reason).set(counts.get(reason, 0))
    overdue = await store.overdue_holds_by_queue(uow.conn, now)
    for queue in sorted(set(domain.QUEUES) | set(overdue)):
        HOLDS_OVERDUE.labels(queue).set(overdue.get(queue, 0))
