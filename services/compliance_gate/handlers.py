"""compliance_gate's entry point: `payee.profile_updated`, a batch at a time (SPEC §3, §7).

translate (contract) → load every payee of the batch, locked (store) → decide each version in
order (domain) → write each table once (store) → emit `payee.eligibility_changed` on
concord.compliance.eligibility (key payee_id) for what downstream must hear.
"""

from __future__ import annotations

import structlog

from services.compliance_gate import contract, domain, store
from services.compliance_gate.config import GateConfig
from services.compliance_gate.domain import ProfileOutcome
from shared.consumer import BatchContext, Item, Router
from shared.contracts.inbound import PayeeProfileUpdated
from shared.contracts.internal import PayeeEligibilityChanged
from shared.contracts.registry import spec_of
from shared.envelope import derived_event_id
from shared.topics import IN_PAYEES

log = structlog.get_logger(__name__)

router = Router("compliance_gate", topics=[IN_PAYEES])
ELIGIBILITY_CHANGED = spec_of(PayeeEligibilityChanged)
router.emits(ELIGIBILITY_CHANGED.topic, ELIGIBILITY_CHANGED.type)


@router.handles_batch(PayeeProfileUpdated)
async def on_payee_profile_updated(ctx: BatchContext, items: list[Item[PayeeProfileUpdated]]) -> None:
    """Apply each newer profile version, re-evaluate, publish when what downstream knows changed."""
    config: GateConfig = ctx.config
    now = ctx.now
    profiles = [contract.profile_from(item.data, now) for item in items]
    stored = await store.load_payees_for_update(ctx.conn, sorted({p.payee_id for p in profiles}))
    decisions = domain.decide_profile_updates(stored, profiles, now, config.policy)
    applied = [
        store.AppliedProfile(d.profile, d.eligibility, item.envelope.event_id)
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
