"""compliance_gate's entry point: `payee.profile_updated`, a batch at a time (SPEC §3, §7).

translate (contract) → load every payee of the batch, locked (store) → decide each version in
order (domain) → write each table once (store) → emit `payee.eligibility_changed` on
concord.compliance.eligibility (key payee_id) for what downstream must hear.
"""

from __future__ import annotations

import structlog

from services.compliance_gate import contract, domain, store
from services.compliance_gate.config import GateConfig
from services.compliance_gate.domain import ConfirmationOutcome, ProfileOutcome
from shared.consumer import BatchContext, Item, Router
from shared.contracts.inbound import PayeePayoutAccountConfirmed, PayeeProfileUpdated
from shared.contracts.internal import PayeeEligibilityChanged
from shared.contracts.registry import spec_of
from shared.envelope import derived_event_id
from shared.topics import IN_COMMANDS, IN_PAYEES

log = structlog.get_logger(__name__)

router = Router("compliance_gate", topics=[IN_PAYEES, IN_COMMANDS])
ELIGIBILITY_CHANGED = spec_of(PayeeEligibilityChanged)
router.emits(ELIGIBILITY_CHANGED.topic, ELIGIBILITY_CHANGED.type)


@router.handles_batch(PayeeProfileUpdated)
async def on_payee_profile_updated(ctx: BatchContext, items: list[Item[PayeeProfileUpdated]]) -> None:
    """Apply each newer profile version, re-evaluate, publish when what downstream knows changed."""
    config: GateConfig = ctx.config
    now = ctx.now
    profiles = [contract.profile_from(item.data, now, item.envelope.occurred_at) for item in items]
    stored = await store.load_payees_for_update(ctx.conn, sorted({p.payee_id for p in profiles}))
    decisions = domain.decide_profile_updates(stored, profiles, now, config.policy)
    applied = [
        store.AppliedProfile(d.profile, d.eligibility, item.envelope.event_id, d.account)
        for item, d in zip(items, decisions, strict=True)
        if d.eligibility is not None
    ]
    await store.save_profiles(ctx.conn, applied, now)
    for item, d in zip(items, decisions, strict=True):
        item.outcome = d.outcome
        if d.status is not None:
            # The inbox already drops a redelivery; a derived id also makes a re-run harmless downstream.
            event_id = derived_event_id(ELIGIBILITY_CHANGED.type, item.envelope.event_id)
            event = contract.eligibility_changed(d.status, d.profile.profile_version, now)
            ctx.emit_for(item, event, key=d.status.payee_id, event_id=event_id)
    _log_batch(decisions)


@router.handles_batch(PayeePayoutAccountConfirmed)
async def on_payout_account_confirmed(
    ctx: BatchContext, items: list[Item[PayeePayoutAccountConfirmed]]
) -> None:
    """SPEC §13.3: confirm a changed payout account; refuse (document.rejected) any other."""
    config: GateConfig = ctx.config
    confirmations = [contract.confirmation_from(item.data) for item in items]
    stored = await store.load_payees_for_update(ctx.conn, sorted({c.payee_id for c in confirmations}))
    results = domain.decide_confirmations(stored, confirmations, ctx.now, config.policy)
    await store.save_confirmations(ctx.conn, [r.record for r in results if r.record is not None], ctx.now)
    for item, r in zip(items, results, strict=True):
        item.outcome = r.outcome
        item.business_ref = f"payee_id={item.data.payee_id}"
        if r.outcome is ConfirmationOutcome.REFUSED:
            ctx.reject(item, contract.refusal_reasons(r.refusals))
        if r.status is not None and r.record is not None:
            event_id = derived_event_id(ELIGIBILITY_CHANGED.type, item.envelope.event_id)
            event = contract.eligibility_changed(r.status, r.record.profile.profile_version, ctx.now)
            ctx.emit_for(item, event, key=r.status.payee_id, event_id=event_id)
        log.info(
            "payout_account_confirmation",
            payee_id=item.data.payee_id,
            outcome=str(r.outcome),
            refusals=[str(x) for x in r.refusals],
        )


def _log_batch(decisions: list[domain.ProfileDecision]) -> None:
    for d in decisions:
        log.debug(
            "payee_profile_handled",
            payee_id=d.profile.payee_id,
            profile_version=d.profile.profile_version,
            stored_version=d.stored_version,
            outcome=str(d.outcome),
            eligible=d.eligibility.eligible if d.eligibility is not None else None,
            reasons=d.eligibility.codes if d.eligibility is not None else None,
            was_eligible=d.was_eligible,
        )
    published = sum(d.outcome is ProfileOutcome.PUBLISHED for d in decisions)
    stale = sum(d.outcome is ProfileOutcome.STALE_VERSION for d in decisions)
    log.info("payee_profiles_applied", records=len(decisions), published=published, stale=stale)
