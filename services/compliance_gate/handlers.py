"""compliance_gate entry points: `payee.profile_updated` and the periodic eligibility sweep.

Both load → evaluate (pure, domain.py) → save → emit `payee.eligibility_changed` on
concord.compliance.eligibility (key payee_id) in one transaction. Neither a tax id nor a VAT
number nor a name reaches the domain, the database, a log line or an event: the translation
below drops them at the edge. `payout_account_ref` is an opaque token and is forwarded.

Invariant: a payee's row always describes exactly what was last published for it (profile
facts and eligibility), so "changed" is always judged against what downstream already knows.
"""

from __future__ import annotations

import os
from datetime import datetime

import structlog

from services.compliance_gate import domain, store
from services.compliance_gate.domain import CompliancePolicy, Eligibility, PayeeProfile, PayeeStatus
from services.compliance_gate.policy import load_policy
from shared.consumer import HandlerContext, Router
from shared.contracts.inbound import PayeeProfileUpdated
from shared.contracts.internal import PayeeEligibilityChanged
from shared.envelope import derived_event_id
from shared.topics import COMPLIANCE_ELIGIBILITY, IN_PAYEES
from shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

router = Router("compliance_gate", topics=[IN_PAYEES])
router.emits(COMPLIANCE_ELIGIBILITY, "payee.eligibility_changed")

ELIGIBILITY_CHANGED = "payee.eligibility_changed"

# Read once at import, i.e. at process start: a bad value stops the service before it consumes.
policy: CompliancePolicy = load_policy(os.environ)


@router.handles("payee.profile_updated")
async def on_payee_profile_updated(ctx: HandlerContext, data: PayeeProfileUpdated) -> str:
    """Apply a newer profile version, re-evaluate, publish if what downstream knows changed.

    Results (the inbox row's `result`): "stale_version" (not newer than the stored version:
    nothing changes), "unchanged" (applied, nothing to publish), "published".
    """
    log_ = log.bind(payee_id=data.payee_id, profile_version=data.profile_version)
    stored = await store.load_payee_for_update(ctx.conn, data.payee_id)
    stored_version = stored.profile.profile_version if stored is not None else None
    if not domain.is_newer_profile(stored_version, data.profile_version):
        log_.info("payee_profile_stale", stored_version=stored_version)
        return "stale_version"

    now = ctx.now
    profile = profile_from_contract(data, now)
    eligibility = domain.evaluate(profile, now, policy)
    await store.save_profile(ctx.conn, profile, eligibility, now, ctx.envelope.event_id)

    previous = domain.status_of(stored.profile, stored.eligibility) if stored is not None else None
    current = domain.status_of(profile, eligibility)
    if not domain.needs_publication(previous, current):
        log_.info("payee_profile_applied", eligible=eligibility.eligible, reasons=eligibility.codes)
        return "unchanged"
    _publish(
        ctx,
        current,
        profile.profile_version,
        now,
        # The inbox already drops a redelivery; a derived id also makes a re-run harmless downstream.
        event_id=derived_event_id(ELIGIBILITY_CHANGED, ctx.envelope.event_id),
    )
    log_.info(
        "payee_eligibility_changed",
        eligible=eligibility.eligible,
        reasons=eligibility.codes,
        was_eligible=previous.eligibility.eligible if previous is not None else None,
    )
    return "published"


async def sweep_eligibility(
    uow: UnitOfWork, now: datetime, sweep_policy: CompliancePolicy | None = None
) -> int:
    """Re-evaluate every payee at `now` and publish each change (W-8 expiries, stale AML
    screenings, a policy changed at restart) without any new event. Returns how many it published.

    Event ids derive from (payee, profile version, outcome), so a sweep re-run after a crash
    emits the very same ids (dropped by the outbox and by downstream dedupe), and a re-run after
    a commit finds nothing changed and emits nothing.
    """
    rules = sweep_policy or policy
    payees = await store.load_payees(uow.conn)
    published = 0
    for stored in payees:
        profile = stored.profile
        eligibility = domain.evaluate(profile, now, rules)
        previous = domain.status_of(profile, stored.eligibility)
        current = domain.status_of(profile, eligibility)
        if not domain.needs_publication(previous, current):
            continue
        saved = await store.save_swept_eligibility(
            uow.conn, profile.payee_id, profile.profile_version, eligibility, now
        )
        if not saved:
            continue  # a newer profile was applied meanwhile; its own evaluation published
        _publish(uow, current, profile.profile_version, now, event_id=sweep_event_id(profile, eligibility))
        published += 1
        log.info(
            "payee_eligibility_changed",
            payee_id=profile.payee_id,
            profile_version=profile.profile_version,
            eligible=eligibility.eligible,
            reasons=eligibility.codes,
            by="sweep",
        )
    log.info("eligibility_sweep_done", payees=len(payees), published=published, at=now.isoformat())
    return published


def sweep_event_id(profile: PayeeProfile, eligibility: Eligibility) -> str:
    return derived_event_id(
        ELIGIBILITY_CHANGED, "sweep", profile.payee_id, str(profile.profile_version), eligibility.fingerprint
    )


def _publish(
    uow: UnitOfWork, status: PayeeStatus, profile_version: int, evaluated_at: datetime, *, event_id: str
) -> None:
    uow.emit(
        COMPLIANCE_ELIGIBILITY,
        status.payee_id,
        ELIGIBILITY_CHANGED,
        eligibility_changed(status, profile_version, evaluated_at),
        event_id=event_id,
    )


def eligibility_changed(
    status: PayeeStatus, profile_version: int, evaluated_at: datetime
) -> PayeeEligibilityChanged:
    return PayeeEligibilityChanged(
        payee_id=status.payee_id,
        eligible=status.eligibility.eligible,
        reasons=status.eligibility.codes,
        profile_version=profile_version,
        evaluated_at=evaluated_at,
        country=status.country,
        entity_type=status.entity_type,
        payout_account_ref=status.payout_account_ref,
        reportable_1099_nec=status.reportable_1099_nec,
    )


def profile_from_contract(data: PayeeProfileUpdated, received_at: datetime) -> PayeeProfile:
    """The inbound profile as the rules see it; tin_last4 and the VAT number stop here."""
    return PayeeProfile(
        payee_id=data.payee_id,
        profile_version=data.profile_version,
        entity_type=data.entity_type,
        country=data.country,
        aml=domain.AmlScreening(data.aml.status, data.aml.screened_at),
        kyc_status=data.kyc.status if data.kyc is not None else None,
        kyc_verified_at=data.kyc.verified_at if data.kyc is not None else None,
        kyb_status=data.kyb.status if data.kyb is not None else None,
        beneficial_owners_verified=data.kyb.beneficial_owners_verified if data.kyb is not None else False,
        tax_form=None
        if data.tax_form is None
        else domain.TaxForm(
            type=data.tax_form.type,
            status=data.tax_form.status,
            signed_at=data.tax_form.signed_at,
            expires_at=data.tax_form.expires_at,
        ),
        vat_status=data.vat.status if data.vat is not None else None,
        vat_checked_at=data.vat.checked_at if data.vat is not None else None,
        payout_account_ref=data.payout_account_ref,
        received_at=received_at,
    )
